"""Sobolev W^{k,p} losses on derivative stacks.

    L = Σ_{j=0..k} λ_j · E_x ‖Dʲu_θ(x) − Dʲu(x)‖_p^p

The order-j term sums |error|^p over all m·dʲ entries of the j-th derivative tensor and averages
over the batch (``reduction="mean"``); for m = 1 the order-0 term is the mean squared error.
For directional stacks (see :mod:`sobolev.derivatives`) the order-j term averages the squared
directional error over the S direction sets, an unbiased estimate of the full term (p = 2 only).

Conventions shared by every loss of the library (:func:`sobolev_loss`, :class:`SobolevLoss`,
:func:`sobolev.image_losses.image_sobolev_loss`, :class:`sobolev.image_losses.ImageSobolevLoss`):

* the return value is the loss tensor; with ``return_terms=True`` it is ``(loss, terms)``, where
  ``terms: dict[str, Tensor]`` holds the unweighted parts of the loss under their log names
  (``"D0"``, ``"D1"``, … per order, ``"D(1,0)"`` per partial, ``"mse"`` for spectral image losses);
* ``reduction`` (:data:`Reduction`, a key of :data:`REDUCTIONS`) reduces the per-sample values over
  the batch: ``"mean"`` and ``"sum"`` give a scalar, ``"none"`` the per-sample values (B,); the
  terms are reduced the same way.
"""

from __future__ import annotations

import math
from collections.abc import (
    Callable,
    Mapping,
    Sequence,
)  # not typing's: cheaper isinstance checks per call
from typing import Literal

import torch
from torch import Tensor, nn

from ._registry import lookup
from .derivatives import (
    MultiIndex,
    check_input,
    derivatives,
    directional_stack,
    partial_derivatives,
    sample_directions,
)

__all__ = [
    "LOSS_ORDERS",
    "REDUCTIONS",
    "WEIGHTINGS",
    "Reduction",
    "SobolevLoss",
    "loss_order",
    "sobolev_loss",
    "term_name",
]

Reduction = Literal["mean", "sum", "none"]
"""How per-sample values (B,) become the loss: a key of :data:`REDUCTIONS`."""

#: batch reductions by name: per-sample values (B,) -> the loss
REDUCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "mean": torch.mean,
    "sum": torch.sum,
    "none": lambda t: t,
}

#: order balancing of :class:`SobolevLoss` by name: (d, order) -> the divisor of the total
WEIGHTINGS: dict[str, Callable[[int, int], int]] = {
    "none": lambda d, order: 1,
    "dimension": lambda d, order: sum(d**j for j in range(order + 1)),
}

Target = Sequence[Tensor] | Mapping[MultiIndex, Tensor] | Callable[[Tensor], Tensor] | Tensor


#: derivative order of the named losses used across the experiments
LOSS_ORDERS = {"L2": 0, "H1": 1, "H2": 2}


def loss_order(name: str) -> int:
    """Derivative order of a loss name (L2 → 0, H1 → 1, H2 → 2)."""
    if name not in LOSS_ORDERS:
        raise ValueError(f"losses must be among {tuple(LOSS_ORDERS)}, got {name!r}")
    return LOSS_ORDERS[name]


def term_name(key: int | MultiIndex) -> str:
    """Log name of a loss term: ``D0``, ``D1``, … for orders; ``D(1,0)`` for a partial."""
    return f"D{key}" if isinstance(key, int) else "D(" + ",".join(map(str, key)) + ")"


def _check_p(p: float) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 1:
        raise ValueError(f"p must be a number ≥ 1, got {p!r}")


def check_weights(weights: Sequence[float] | None, n: int, what: str) -> list[float]:
    if weights is None:
        return [1.0] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise ValueError(f"weights must have one entry per {what} ({n}), got {len(weights)}")
    if any(not 0 <= w < math.inf for w in weights):
        raise ValueError(f"weights must be non-negative and finite, got {weights}")
    return weights


def _check_input_weights(lam: Sequence[float] | Tensor | None, partials: bool) -> Tensor | None:
    if lam is None:
        return None
    if partials:
        raise ValueError("input_weights weigh whole orders; with partials give explicit weights")
    try:
        t = torch.as_tensor(lam, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        t = None
    ok = t is not None and t.ndim == 1 and t.numel() > 0
    if not (ok and torch.isfinite(t).all() and (t > 0).all()):
        raise ValueError(f"input_weights must be a sequence of d positive numbers, got {lam!r}")
    return t


def _weigh_inputs(stack: Sequence[Tensor], lam: Tensor) -> list[Tensor]:
    """Dʲu (B, m, d, …, d) times λ along each of its j input axes."""
    out = [stack[0]]
    for j, t in enumerate(stack[1:], 1):
        w = lam
        for _ in range(j - 1):
            w = w[..., None] * lam
        out.append(t * w)
    return out


def _per_sample(err: Tensor, p: float, directional: bool) -> Tensor:
    """Σ |err|^p over all non-batch axes (averaged over the last, direction axis if
    directional): (B,)."""
    a = err * err if p == 2 else err.abs().pow(p)
    if directional:
        a = a.mean(-1)
    return a.reshape(a.shape[0], -1).sum(1)


def _term(err: Tensor, p: float, directional: bool, reduction: Reduction) -> Tensor:
    """One order's term: ``_per_sample`` reduced over the batch. For ``"mean"`` and ``"sum"`` it is
    one reduction over all entries, divided by the batch size (and the number of directions)."""
    if reduction == "none":
        return _per_sample(err, p, directional)
    a = err * err if p == 2 else err.abs().pow(p)
    count = (err.shape[0] if reduction == "mean" else 1) * (err.shape[-1] if directional else 1)
    if count == a.numel():  # one entry per sample (and direction): a plain mean
        return a.mean()
    return a.sum() if count == 1 else a.sum() / count


def check_reduction(reduction: object) -> Callable[[Tensor], Tensor]:
    """The batch reduction named ``reduction`` (a key of :data:`REDUCTIONS`)."""
    return lookup(REDUCTIONS, reduction, "reduction")


def sobolev_loss(
    pred_stack: Sequence[Tensor] | Mapping[MultiIndex, Tensor],
    target_stack: Sequence[Tensor] | Mapping[MultiIndex, Tensor],
    *,
    p: float = 2,
    weights: Sequence[float] | None = None,
    reduction: Reduction = "mean",
    check_finite: bool = True,
    return_terms: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """W^{k,p} loss between two derivative stacks of the same layout.

    Args:
        pred_stack: ``(u, Du, …, Dᵏu)`` with shapes (B, m), (B, m, d), …; or a directional stack
            (order j: (B, m, S)); or a dict ``{multi-index: (B, m)}`` of selected partials.
        target_stack: same layout and shapes as ``pred_stack``.
        p: exponent ≥ 1 of the L^p norm.
        weights: λ_j per order (or per partial, in dict order); default all ones.
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for per-sample (B,) terms.
        check_finite: raise ``ValueError`` if a target entry holds NaN or Inf.
        return_terms: also return the unweighted per-order terms.

    Returns:
        ``total = Σ λ_j term_j``; with ``return_terms`` the pair ``(total, terms)``, ``terms`` keyed
        ``"D0"``, ``"D1"``, … (``"D(1,0)"`` for partials).
    """
    _check_p(p)
    if isinstance(pred_stack, Mapping) != isinstance(target_stack, Mapping):
        raise TypeError(
            "pred_stack and target_stack must both be sequences (orders) or both dicts (partials)"
        )
    if isinstance(pred_stack, Mapping):
        if set(pred_stack) != set(target_stack):
            raise ValueError(
                f"partials differ: pred has {sorted(pred_stack)}, target has {sorted(target_stack)}"
            )
        keys: list = list(pred_stack)
        preds, targets = [pred_stack[k] for k in keys], [target_stack[k] for k in keys]
        directional = False
    else:
        if len(pred_stack) != len(target_stack):
            raise ValueError(
                f"pred_stack has orders 0..{len(pred_stack) - 1} but target_stack has orders "
                f"0..{len(target_stack) - 1}: stacks must have the same length"
            )
        keys, preds, targets = list(range(len(pred_stack))), list(pred_stack), list(target_stack)
        directional = getattr(pred_stack, "directional", False)
        if directional != getattr(target_stack, "directional", directional):
            raise ValueError(
                "pred_stack is directional but target_stack is not (or vice versa): "
                "contract full targets with sobolev.directional_stack first"
            )
        if directional and p != 2:
            raise ValueError(
                f"directional stacks give unbiased estimates only for p = 2, got p={p}"
            )
    if not preds:
        raise ValueError("stacks must hold at least the order-0 values")
    check_reduction(reduction)
    lam = check_weights(
        weights, len(keys), "order" if not isinstance(pred_stack, Mapping) else "partial"
    )
    terms: dict[str, Tensor] = {}
    total = None
    for key, w, a, b in zip(keys, lam, preds, targets):
        if a.shape != b.shape:
            raise ValueError(
                f"shape mismatch at {term_name(key)}: prediction {tuple(a.shape)} vs target "
                f"{tuple(b.shape)}"
            )
        if check_finite and not torch.isfinite(b).all():
            raise ValueError(f"target {term_name(key)} contains NaN or Inf")
        t = _term(a - b, p, directional and key != 0, reduction)
        terms[term_name(key)] = t
        wt = t if w == 1 else w * t
        total = wt if total is None else total + wt
    return (total, terms) if return_terms else total


class SobolevLoss(nn.Module):
    """W^{k,p} training loss called as ``loss_fn(model, x, target)``.

    ``target`` is a derivative stack ``(u, Du, …)`` matching ``order`` (supplied labels or
    numerical estimates), a dict of partials when ``partials`` is set, or a callable whose
    derivatives are taken exactly by autodiff. ``order=0`` is plain L^p regression, so L2 and
    Sobolev runs share one code path.

    Args:
        order: highest derivative order k ≥ 0.
        p: exponent ≥ 1.
        weights: λ_0..λ_k (or one per partial); default all ones.
        directions: ``None`` (full derivative tensors) or the number S of random direction sets
            per step: each order-j term then is the unbiased directional estimate (p = 2).
        partials: train only these partials, e.g. ``[(0, 0), (1, 0), (0, 2)]``.
        weighting: ``"dimension"`` divides the total by Σ_j dʲ (the number of derivative entries
            per output), as differential machine learning does for k = 1 (value weight
            1/(1+d), derivative weight d/(1+d) on per-entry means), so the balance between
            orders and the loss scale do not drift with the input dimension d.
        input_weights: λ (d,), per input: an order-j error entry at inputs (i₁, …, iⱼ) is
            weighted by λ_{i₁}···λ_{iⱼ} inside the norm, i.e. derivatives are matched in the
            coordinates x_i/λ_i (for k = 1, differential ML's ``(λ_j (ŷ'_j − y'_j))²``; see
            :meth:`sobolev.Normalizer.derivative_weights`). Directional terms use the directions
            λ∘v, an unbiased estimate of the same weighted term. Not with ``partials``.
        generator: random source for directions (default: torch's global generator).
    """

    def __init__(
        self,
        order: int = 1,
        p: float = 2,
        weights: Sequence[float] | None = None,
        *,
        directions: int | None = None,
        partials: Sequence[Sequence[int]] | None = None,
        weighting: Literal["none", "dimension"] = "none",
        reduction: Reduction = "mean",
        input_weights: Sequence[float] | Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(order, int) or isinstance(order, bool) or order < 0:
            raise ValueError(f"order must be a non-negative integer, got {order!r}")
        _check_p(p)
        if directions is not None:
            if isinstance(directions, bool) or not isinstance(directions, int) or directions < 1:
                raise ValueError(f"directions must be None or a positive int, got {directions!r}")
            if p != 2:
                raise ValueError(
                    "directional estimates are unbiased only for p = 2; "
                    "use full derivatives for p ≠ 2"
                )
        if partials is not None:
            partials = [tuple(int(i) for i in a) for a in partials]
            if not partials:
                raise ValueError(
                    "partials must be a non-empty list of multi-indices, e.g. [(0, 0), (1, 0)]"
                )
            if directions is not None:
                raise ValueError("pass either partials or directions, not both")
            if weighting != "none":
                raise ValueError(
                    "weighting='dimension' balances whole orders; "
                    "with partials give explicit weights"
                )
            order = max(sum(a) for a in partials)
        lookup(WEIGHTINGS, weighting, "weighting")
        check_reduction(reduction)
        self.order, self.p, self.directions, self.partials = order, p, directions, partials
        self.weights = check_weights(
            weights, len(partials) if partials else order + 1, "partial" if partials else "order"
        )
        self.weighting, self.reduction, self.generator = weighting, reduction, generator
        self.input_weights = _check_input_weights(input_weights, partials is not None)

    def extra_repr(self) -> str:
        return (
            f"order={self.order}, p={self.p}, weights={self.weights}, directions={self.directions}"
        )

    def forward(
        self,
        model: Callable[[Tensor], Tensor],
        x: Tensor,
        target: Target,
        *,
        return_terms: bool = False,
        check_finite: bool = True,
        direction_sets: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Loss of ``model`` at ``x`` (B, d) against ``target``; with ``return_terms`` also the
        per-order terms.

        ``direction_sets`` (S, k ≥ max(order, 1), B, d): the directions of this call, in place of
        S·k·B·d fresh draws (a loss built with ``directions=S`` only).

        Targets are constants: a supplied stack is detached (a graph it carries is not
        differentiated) and one computed from a callable has no graph. ``check_finite=False``
        skips the NaN/Inf checks of ``x`` and of a supplied stack (for data already checked, as
        ``fit`` does); a stack computed from a callable is always checked.
        """
        check_input(x, check_finite)  # once here: the derivative calls below skip it
        d = x.shape[-1]
        create_graph = torch.is_grad_enabled()  # the model's graph, for the parameter gradient
        if self.partials is not None:
            pred = partial_derivatives(
                model, x, self.partials, create_graph=create_graph, check_finite=False
            )
            tgt = self._target_partials(target, x)
        else:
            V = direction_sets
            if V is not None:
                self._check_direction_sets(V, x)
            elif self.directions is not None:
                V = sample_directions(
                    self.directions,
                    max(self.order, 1),
                    x.shape[0],
                    d,
                    generator=self.generator,
                    dtype=x.dtype,
                    device=x.device,
                )
            lam = self._input_weights(x)
            if lam is not None and V is not None:
                V = V * lam  # D^j e[λ∘v₁, …]: the weighted term, estimated
            pred = derivatives(
                model, x, self.order, directions=V, create_graph=create_graph, check_finite=False
            )
            tgt = self._target_stack(target, x, V)
            if lam is not None and V is None:
                pred, tgt = _weigh_inputs(pred, lam), _weigh_inputs(tgt, lam)
        check_targets = check_finite or callable(target) and not isinstance(target, Tensor)
        total, terms = sobolev_loss(
            pred,
            tgt,
            p=self.p,
            weights=self.weights,
            reduction=self.reduction,
            check_finite=check_targets,
            return_terms=True,
        )
        divisor = WEIGHTINGS[self.weighting](d, self.order)
        if divisor != 1:
            total = total / divisor
        return (total, terms) if return_terms else total

    def _input_weights(self, x: Tensor) -> Tensor | None:
        """λ as a tensor of ``x``'s dtype and device; a ValueError when its length is not d."""
        lam = self.input_weights
        if lam is None:
            return None
        if lam.shape[0] != x.shape[-1]:
            raise ValueError(
                f"input_weights has {lam.shape[0]} entries but x has d = {x.shape[-1]} inputs"
            )
        return lam.to(dtype=x.dtype, device=x.device)

    def _check_direction_sets(self, V: Tensor, x: Tensor) -> None:
        want = (self.directions, max(self.order, 1), x.shape[0], x.shape[1])
        if self.directions is None:
            raise ValueError(
                "direction_sets needs a directional loss: build it with SobolevLoss(directions=S)"
            )
        if (
            not isinstance(V, Tensor)
            or V.ndim != 4
            or V.shape[0] != want[0]
            or (V.shape[1] < want[1] or V.shape[2:] != x.shape)
        ):
            got = tuple(V.shape) if isinstance(V, Tensor) else type(V).__name__
            raise ValueError(f"direction_sets must have shape (S, ≥k, B, d) = {want}, got {got}")

    def _target_stack(self, target: Target, x: Tensor, V: Tensor | None) -> Sequence[Tensor]:
        if callable(target) and not isinstance(target, Tensor):
            return derivatives(
                target, x, self.order, directions=V, create_graph=False, check_finite=False
            )
        if isinstance(target, Tensor):
            if self.order != 0:
                raise ValueError(
                    f"a Tensor target gives values only; order={self.order} needs a derivative "
                    "stack (u, Du, …) or a callable target"
                )
            target = (target,)
        if not isinstance(target, Sequence) or isinstance(target, (str, bytes)):
            raise TypeError(
                "target must be a derivative stack, a Tensor or a callable, got "
                f"{type(target).__name__}"
            )
        if len(target) != self.order + 1:
            raise ValueError(
                f"target stack has {len(target)} entries but order={self.order} needs "
                f"{self.order + 1}"
            )
        target = [
            (t.unsqueeze(-1) if j == 0 and t.ndim == 1 else t).detach()
            for j, t in enumerate(target)
        ]
        return target if V is None else directional_stack(target, V)

    def _target_partials(self, target: Target, x: Tensor) -> Mapping[MultiIndex, Tensor]:
        if callable(target) and not isinstance(target, Tensor):
            return partial_derivatives(
                target, x, self.partials, create_graph=False, check_finite=False
            )
        if not isinstance(target, Mapping):
            raise TypeError(
                "with partials, target must be a dict {multi-index: (B, m)} or a callable"
            )
        return {tuple(k): v.detach() for k, v in target.items()}
