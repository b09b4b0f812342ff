"""Input/output standardisation for training on values and derivatives, undone at prediction.

With x_n = (x − μ_x)/σ_x and y_n = (y − μ_y)/σ_y (per input and per output), the chain rule
gives the derivative targets in normalised units,

    ∂y_n,c/∂x_n,i = ∂y_c/∂x_i · σ_x,i / σ_y,c,

and a derivative along a direction v becomes one along w = v/σ_x, divided by σ_y. A network
trained on (x_n, y_n, ∂y_n/∂x_n) is wrapped by :meth:`Normalizer.wrap` into a module of the
original units, so autodiff of the wrapper gives the deltas in original units directly.

Shapes: x (N, d); y (N, m) or (N,) for m = 1; gradients (N, m, d) (a :class:`sobolev.SobolevLoss`
stack) or (N, d) for m = 1; directional derivatives (N, m, S) with directions (N, d).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .derivatives import derivatives


def _tensor(a: Any, name: str) -> Tensor:
    """``a`` (array-like or tensor) as a floating tensor; float64 unless it already is a
    float tensor."""
    if isinstance(a, Tensor):
        t = a.detach()
        return t if t.is_floating_point() else t.to(torch.float64)
    try:
        return torch.as_tensor(np.asarray(a, dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array, got {type(a).__name__}") from e


def _as_x(x: Any, d: int | None = None) -> Tensor:
    x = _tensor(x, "x")
    if x.ndim != 2 or (d is not None and x.shape[1] != d):
        raise ValueError(
            f"x must have shape (N, {d if d is not None else 'd'}), got {tuple(x.shape)}"
        )
    return x


def _as_y(y: Any, n: int | None = None, m: int | None = None) -> Tensor:
    y = _tensor(y, "y")
    if y.ndim == 1:
        y = y.unsqueeze(1)
    if y.ndim != 2 or (n is not None and y.shape[0] != n) or (m is not None and y.shape[1] != m):
        raise ValueError(
            f"y must have shape ({n if n is not None else 'N'}, {m if m is not None else 'm'}) "
            f"or (N,) for one output, got {tuple(y.shape)}"
        )
    return y


class Normalizer:
    """Per-column standardisation of inputs and outputs (zero mean, unit standard deviation;
    a constant column keeps scale 1), fitted on training data with :meth:`fit`.

    Attributes ``x_mean``, ``x_std`` (d,) and ``y_mean``, ``y_std`` (m,), float64.
    """

    def __init__(self, x_mean: Tensor, x_std: Tensor, y_mean: Tensor, y_std: Tensor) -> None:
        self.x_mean, self.x_std = x_mean.to(torch.float64), x_std.to(torch.float64)
        self.y_mean, self.y_std = y_mean.to(torch.float64), y_std.to(torch.float64)
        for name in ("x_std", "y_std"):
            s = getattr(self, name)
            if not (torch.isfinite(s).all() and (s > 0).all()):
                raise ValueError(f"{name} must be positive and finite, got {s.tolist()}")

    @classmethod
    def fit(cls, x: Any, y: Any) -> Normalizer:
        """Means and standard deviations of the columns of x (N, d) and y (N, m) or (N,)."""
        x = _as_x(x).to(torch.float64)
        y = _as_y(y, x.shape[0]).to(torch.float64)
        if x.shape[0] < 2:
            raise ValueError(
                f"x must hold at least 2 samples to fit a Normalizer, got {x.shape[0]}"
            )
        for name, t in (("x", x), ("y", y)):
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN or Inf")

        def scale(t: Tensor) -> Tensor:
            s = t.std(0)
            return torch.where(s > 0, s, torch.ones_like(s))

        return cls(x.mean(0), scale(x), y.mean(0), scale(y))

    @property
    def d(self) -> int:
        return self.x_mean.shape[0]

    @property
    def m(self) -> int:
        return self.y_mean.shape[0]

    def _as_grad(self, g: Any, n: int) -> Tensor:
        g = _tensor(g, "dydx")
        if g.ndim == 2 and self.m == 1:
            g = g.unsqueeze(1)
        if g.shape != (n, self.m, self.d):
            raise ValueError(
                f"dydx must have shape ({n}, {self.m}, {self.d})"
                f"{f' or ({n}, {self.d})' if self.m == 1 else ''}, got {tuple(g.shape)}"
            )
        return g

    def _cast(self, t: Tensor, *stats: Tensor) -> tuple[Tensor, ...]:
        return tuple(s.to(dtype=t.dtype, device=t.device) for s in stats)

    def x_to(self, x: Any) -> Tensor:
        """Normalised inputs (N, d)."""
        x = _as_x(x, self.d)
        mu, sd = self._cast(x, self.x_mean, self.x_std)
        return (x - mu) / sd

    def y_to(self, y: Any) -> Tensor:
        """Normalised outputs (N, m)."""
        y = _as_y(y, m=self.m)
        mu, sd = self._cast(y, self.y_mean, self.y_std)
        return (y - mu) / sd

    def y_from(self, y_n: Tensor) -> Tensor:
        """Outputs (N, m) in original units."""
        y_n = _as_y(y_n, m=self.m)
        mu, sd = self._cast(y_n, self.y_mean, self.y_std)
        return mu + sd * y_n

    def dydx_to(self, dydx: Any) -> Tensor:
        """Normalised gradients ∂y_n/∂x_n = ∂y/∂x · σ_x/σ_y, (N, m, d)."""
        g = _tensor(dydx, "dydx")
        g = self._as_grad(g, g.shape[0] if g.ndim else 0)
        sx, sy = self._cast(g, self.x_std, self.y_std)
        return g * sx[None, None, :] / sy[None, :, None]

    def dydx_from(self, dydx_n: Tensor) -> Tensor:
        """Gradients (N, m, d) in original units."""
        g = self._as_grad(dydx_n, dydx_n.shape[0] if dydx_n.ndim else 0)
        sx, sy = self._cast(g, self.x_std, self.y_std)
        return g * sy[None, :, None] / sx[None, None, :]

    def derivative_weights(self, dydx: Any) -> Tensor:
        """Per-input weights of the derivative term, (d,) float64: λ_j = 1 / rms of the
        normalised derivative labels ∂y_n/∂x_n,j over samples (and outputs), so that every
        input's derivative errors count alike (differential ML's ``lambda_j``; pass them as
        ``SobolevLoss(input_weights=…)``). ``dydx`` (N, m, d) or (N, d) in original units; an
        input whose labels are all zero has no scale: a ValueError names it."""
        g = self.dydx_to(dydx).to(torch.float64)
        rms = g.square().mean(dim=(0, 1)).sqrt()
        if not torch.isfinite(rms).all():
            raise ValueError("dydx contains NaN or Inf")
        if (rms == 0).any():
            j = int(torch.nonzero(rms == 0)[0, 0])
            raise ValueError(
                f"dydx is zero for input {j} in every sample: no scale for its weight (drop the "
                "input, or give input_weights yourself)"
            )
        return 1 / rms

    def directional_to(self, v: Any, dv: Any) -> tuple[Tensor, Tensor]:
        """A derivative ``dv`` (N, m, S) or (N,) along directions ``v`` (N, d) as the normalised
        derivative along w = v/σ_x: returns ``(w (N, d), dv/σ_y (N, m, S))``."""
        v = _as_x(v, self.d)
        dv = _tensor(dv, "dv")
        if dv.ndim == 1 and self.m == 1:
            dv = dv.reshape(-1, 1, 1)
        if dv.ndim != 3 or dv.shape[:2] != (v.shape[0], self.m):
            raise ValueError(
                f"dv must have shape ({v.shape[0]}, {self.m}, S), got {tuple(dv.shape)}"
            )
        (sx,) = self._cast(v, self.x_std)
        (sy,) = self._cast(dv, self.y_std)
        return v / sx, dv / sy[None, :, None]

    def transform(self, x: Any, y: Any, dydx: Any | None = None) -> tuple[Tensor, ...]:
        """Normalised training data ``(x_n, y_n)`` or ``(x_n, y_n, dydx_n)``: the data of a
        :class:`sobolev.SobolevLoss` of order 0 or 1."""
        x_n = self.x_to(x)
        y_n = self.y_to(_as_y(y, x_n.shape[0]))
        if dydx is None:
            return x_n, y_n
        return x_n, y_n, self.dydx_to(self._as_grad(dydx, x_n.shape[0]))

    def wrap(self, model: nn.Module) -> Surrogate:
        """``model`` (trained on normalised data) as a module of the original units."""
        return Surrogate(model, self)


class Surrogate(nn.Module):
    """x ↦ μ_y + σ_y · model((x − μ_x)/σ_x): a network trained on normalised data, in
    original units.

    ``forward`` maps (B, d) to (B, m); :meth:`predict` returns the values and their gradients
    (the deltas) in original units, by autodiff through the affine maps.
    """

    def __init__(self, model: nn.Module, normalizer: Normalizer) -> None:
        super().__init__()
        self.model, self.normalizer = model, normalizer
        for name in ("x_mean", "x_std", "y_mean", "y_std"):
            self.register_buffer(name, getattr(normalizer, name).clone())

    def _dtype(self) -> torch.dtype:
        p = next(self.model.parameters(), None)
        return p.dtype if p is not None else torch.float64

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self._dtype())
        y_n = self.model((x - self.x_mean.to(x.dtype)) / self.x_std.to(x.dtype))
        return self.y_mean.to(y_n.dtype) + self.y_std.to(y_n.dtype) * y_n

    def predict(self, x: Any) -> tuple[Tensor, Tensor]:
        """Values (B, m) and gradients (B, m, d) at x (B, d) (array-like), in original units."""
        p = next(self.model.parameters(), None)
        x = _as_x(x, self.normalizer.d).to(
            dtype=self._dtype(), device=p.device if p is not None else None
        )
        u, du = derivatives(self, x, 1, create_graph=False)
        return u, du
