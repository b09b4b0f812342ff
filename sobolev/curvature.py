"""Curvature of empirical losses: Hessian-vector products w.r.t. a model's parameters, dense
Hessians, and the extreme eigenvalues (Lanczos, via SciPy's ARPACK ``eigsh``).

The loss is θ ↦ objective(model_θ, batch) with θ (P,) the model's trainable parameters flattened
in ``model.parameters()`` order. Hessian-vector products use double backward: the gradient is
built once with ``create_graph=True`` and each product is one more backward pass through it. For a
Sobolev loss, which already holds input derivatives ∂ₓu_θ taken with ``create_graph=True``, a
product is a third-order nested derivative (∂θ∂θ∂ₓ for H1). ``torch.func`` transforms
(forward-over-reverse) cannot be used here: :func:`sobolev.derivatives` takes its full input
derivatives with ``torch.autograd.grad``, which functorch does not allow inside ``grad``/``jvp``.

For ReLU networks the Hessian is that of the loss with the activation pattern held fixed (what
autodiff differentiates): the jump of σ′ contributes nothing. For Sobolev losses it is therefore not
the Hessian of the population loss (see :mod:`sobolev.theory`), which has indicator-boundary terms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ._registry import lookup
from .losses import SobolevLoss
from .training import Objective, as_objective, call_objective


class LossHessian:
    """Hessian operator of ``objective(model, batch)`` w.r.t. ``model``'s trainable parameters.

    Args:
        model: the network, at the parameters where the Hessian is taken (not modified).
        objective: a :class:`SobolevLoss` (``batch = (x, u, Du, …)`` or ``(x, target_fn)``) or a
            callable ``objective(model, batch) -> loss | (loss, terms)``, as for
            :func:`sobolev.fit`.
        batch: the data tensors the loss is evaluated on (the whole empirical sample).

    The gradient graph is built once; :meth:`hvp` reuses it, so each product costs one backward.
    """

    def __init__(
        self, model: nn.Module, objective: Objective | SobolevLoss, batch: Sequence
    ) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("model has no trainable parameters")
        self.n_params = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        with torch.enable_grad():
            loss, _ = call_objective(as_objective(objective), model, tuple(batch))
            if loss.ndim != 0:
                raise ValueError(
                    f"objective must return a scalar loss, got shape {tuple(loss.shape)}"
                )
            grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        self.loss = float(loss.detach())
        self._grad = torch.cat(
            [
                (torch.zeros_like(p) if g is None else g).reshape(-1)
                for p, g in zip(self.params, grads)
            ]
        )

    @property
    def grad(self) -> Tensor:
        """∇_θ loss, shape (P,), detached."""
        return self._grad.detach()

    def hvp(self, v: Tensor) -> Tensor:
        """H v for v of shape (P,) (or (P, r): r products, one backward each); detached."""
        if not isinstance(v, Tensor):
            raise TypeError(
                f"v must be a torch.Tensor of shape (P,) = ({self.n_params},), got "
                f"{type(v).__name__}"
            )
        if v.shape[0] != self.n_params or v.ndim not in (1, 2):
            raise ValueError(
                f"v must have shape (P,) or (P, r) with P = {self.n_params}, got {tuple(v.shape)}"
            )
        if v.ndim == 2:
            return torch.stack([self.hvp(c) for c in v.T], dim=1)
        v = v.to(dtype=self.dtype, device=self.device)
        if not self._grad.requires_grad:  # the loss is at most linear in θ
            return torch.zeros_like(v)
        hv = torch.autograd.grad(
            self._grad, self.params, grad_outputs=v, retain_graph=True, allow_unused=True
        )
        return torch.cat(
            [(torch.zeros_like(p) if h is None else h).reshape(-1) for p, h in zip(self.params, hv)]
        ).detach()

    def dense(self) -> Tensor:
        """The full (P, P) Hessian, symmetrised, from P products (for small P)."""
        eye = torch.eye(self.n_params, dtype=self.dtype, device=self.device)
        try:  # all P products in one vectorised backward
            hv = torch.autograd.grad(
                self._grad,
                self.params,
                grad_outputs=eye,
                retain_graph=True,
                allow_unused=True,
                is_grads_batched=True,
            )
            H = torch.cat(
                [
                    (
                        torch.zeros(self.n_params, *p.shape, dtype=self.dtype, device=self.device)
                        if h is None
                        else h
                    ).reshape(self.n_params, -1)
                    for p, h in zip(self.params, hv)
                ],
                dim=1,
            )
        except RuntimeError:  # an op without a batching rule: one product at a time
            H = torch.stack([self.hvp(e) for e in eye], dim=1)
        return 0.5 * (H + H.T)


@dataclass
class SpectrumEdges:
    """Extreme Hessian eigenvalues; ``condition`` = λ_max/λ_min if λ_min > 0, else ``inf``."""

    lambda_min: float
    lambda_max: float
    condition: float
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def condition_number(lambda_min: float, lambda_max: float) -> float:
    """λ_max/λ_min for a positive definite spectrum, ``inf`` otherwise."""
    return lambda_max / lambda_min if lambda_min > 0 else math.inf


def lanczos_extremes(
    matvec: Callable[[Tensor], Tensor],
    n: int,
    *,
    k: int = 1,
    tol: float = 1e-6,
    maxiter: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest and ``k`` largest (algebraic) eigenvalues of a symmetric operator of
    size n.

    Implicitly restarted Lanczos (ARPACK ``eigsh`` on a ``LinearOperator``); ``matvec`` maps a (n,)
    tensor to a (n,) tensor; ``tol`` is ARPACK's relative accuracy of each Ritz value. Returns two
    ascending float64 arrays of length k.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    if n < 2 * k + 1:
        raise ValueError(f"Lanczos needs n > 2k (n = {n}, k = {k}); use a dense eigendecomposition")
    rng = np.random.default_rng(seed)

    def mv(x: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.ascontiguousarray(x).reshape(-1), dtype=dtype, device=device)
        return matvec(t).detach().cpu().double().numpy()

    op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
    ends = {
        which: np.sort(
            eigsh(
                op,
                k=k,
                which=which,
                tol=tol,
                maxiter=maxiter,
                v0=rng.standard_normal(n),
                return_eigenvectors=False,
            )
        )
        for which in ("SA", "LA")
    }
    low, top = ends["SA"], ends["LA"]
    return low, top


def _dense_edges(hessian: LossHessian, tol: float, seed: int) -> tuple[float, float]:
    """Exact extreme eigenvalues of the dense (P, P) Hessian."""
    ev = torch.linalg.eigvalsh(hessian.dense())
    return float(ev[0]), float(ev[-1])


def _lanczos_edges(hessian: LossHessian, tol: float, seed: int) -> tuple[float, float]:
    """Extreme eigenvalues by :func:`lanczos_extremes` on Hessian-vector products."""
    low, top = lanczos_extremes(
        hessian.hvp,
        hessian.n_params,
        tol=tol,
        seed=seed,
        dtype=hessian.dtype,
        device=hessian.device,
    )
    return float(low[0]), float(top[-1])


#: eigenvalue methods of :func:`spectrum_edges` by name: (hessian, tol, seed) -> (λ_min, λ_max)
SPECTRUM_METHODS: dict[str, Callable[[LossHessian, float, int], tuple[float, float]]] = {
    "dense": _dense_edges,
    "lanczos": _lanczos_edges,
}


def spectrum_edges(
    hessian: LossHessian,
    *,
    method: str = "auto",
    dense_max: int = 1000,
    tol: float = 1e-6,
    seed: int = 0,
) -> SpectrumEdges:
    """λ_min, λ_max and condition number of a :class:`LossHessian`.

    ``method``: a key of :data:`SPECTRUM_METHODS`, ``"dense"`` (exact eigendecomposition of the
    (P, P) Hessian) or ``"lanczos"`` (:func:`lanczos_extremes`), or ``"auto"``: dense when
    P ≤ ``dense_max``.
    """
    if method == "auto":
        method = "dense" if hessian.n_params <= dense_max else "lanczos"
    lo, hi = lookup(SPECTRUM_METHODS, method, "method (or 'auto')")(hessian, tol, seed)
    return SpectrumEdges(lo, hi, condition_number(lo, hi), method)


def gd_contraction(lambda_min: float, lambda_max: float, lr: float) -> float:
    """Per-step contraction factor max(|1 − η λ_min|, |1 − η λ_max|) of the error of gradient
    descent with step ``lr`` = η on a quadratic with these extreme Hessian eigenvalues
    (< 1 iff 0 < η λ < 2); the loss contracts by its square."""
    return max(abs(1 - lr * lambda_min), abs(1 - lr * lambda_max))


def fitted_rate(steps: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(value) against step: the measured log-contraction per step
    (negative when the values decay geometrically). Non-positive values are skipped."""
    pts = [(s, math.log(v)) for s, v in zip(steps, values) if v > 0 and math.isfinite(v)]
    if len(pts) < 2:
        return math.nan
    s, y = np.array(pts).T
    return float(np.polyfit(s, y, 1)[0])
