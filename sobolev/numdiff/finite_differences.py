"""Finite-difference derivatives of gridded values along one axis (torch, batched, differentiable).

A derivative is a weighted sum of shifted slices of the input along the axis: the central stencil
for the interior, small dense blocks for the edge points (see :mod:`sobolev.numdiff.stencils` for
the coefficient layout). No Python loop runs over grid points; the loop runs over the stencil's
few offsets. Gradients flow to ``values`` (not to the coordinates).
"""

from __future__ import annotations

import numpy as np
import torch

from sobolev.numdiff.grids import uniform_spacing
from sobolev.numdiff.stencils import GridKey, nonuniform_stencil, stencil_sizes, uniform_stencil
from sobolev.numdiff.validation import (
    check_accuracy,
    check_axis,
    check_boundary,
    check_coords,
    check_order,
    check_values,
)

Spacing = float | torch.Tensor
"""Grid along the axis: a uniform spacing ``h > 0``, or the 1-D tensor of its coordinates."""


def resolve_spacing(
    coords_or_spacing: float | torch.Tensor, n: int, name: str = "coords_or_spacing"
) -> Spacing:
    """Validated grid: ``float`` spacing if uniform (detected from coordinates), else
    float64 coordinates."""
    if isinstance(coords_or_spacing, torch.Tensor) and coords_or_spacing.ndim == 1:
        coords = check_coords(coords_or_spacing, n, name)
        h = uniform_spacing(coords)
        return h if h is not None else coords.detach().to(torch.float64)
    if isinstance(coords_or_spacing, torch.Tensor) and coords_or_spacing.ndim == 0:
        coords_or_spacing = float(coords_or_spacing)
    if isinstance(coords_or_spacing, (int, float)) and not isinstance(coords_or_spacing, bool):
        if not (np.isfinite(coords_or_spacing) and coords_or_spacing > 0):
            raise ValueError(
                f"{name} as a spacing must be a finite number > 0, got {coords_or_spacing!r}"
            )
        return float(coords_or_spacing)
    raise ValueError(
        f"{name} must be a spacing h > 0 or a 1-D tensor of {n} coordinates, got "
        f"{coords_or_spacing!r}"
    )


def fd_half_width(order: int, accuracy: int, uniform: bool = True) -> int:
    """Points dropped at each end by ``boundary="interior"`` (0 for ``order == 0``)."""
    return stencil_sizes(order, accuracy, uniform)[0] if order > 0 else 0


def fd_points_needed(order: int, accuracy: int, uniform: bool, boundary: str) -> int:
    """Fewest points along an axis for the derivative of ``order`` with this ``accuracy``
    and ``boundary``."""
    s, p = stencil_sizes(order, accuracy, uniform)
    return max(p, 2 * s + 1) if boundary == "one-sided" else 2 * s + 1


def fd_derivative(
    values: torch.Tensor,
    coords_or_spacing: float | torch.Tensor,
    order: int = 1,
    axis: int = -1,
    accuracy: int = 2,
    boundary: str = "one-sided",
) -> torch.Tensor:
    """``order``-th derivative along ``axis`` with error ``O(h**accuracy)``.

    ``values``: any shape ``(..., n, ...)`` with ``n`` points along ``axis``; all other axes are
    batch axes. ``coords_or_spacing``: a spacing ``h`` or the ``(n,)`` strictly increasing
    coordinates (uniformity is detected; non-uniform grids use per-point Fornberg weights).
    ``boundary``:

    * ``"one-sided"``: same shape as ``values``; edge points use the nearest points on one side;
    * ``"periodic"``: same shape; uniform grids only, ``values[n]`` is taken to equal ``values[0]``;
    * ``"interior"``: only points where the central stencil fits: ``n - 2*s`` along ``axis`` with
      ``s = fd_half_width(order, accuracy, uniform)``.
    """
    check_values(values)
    axis = check_axis(axis, values.ndim)
    check_order(order)
    check_accuracy(accuracy)
    check_boundary(boundary)
    grid = resolve_spacing(coords_or_spacing, values.shape[axis])
    return apply_fd(values, grid, order, axis, accuracy, boundary)


def apply_fd(
    values: torch.Tensor, grid: Spacing, order: int, axis: int, accuracy: int, boundary: str
) -> torch.Tensor:
    """:func:`fd_derivative` on already validated arguments (``axis`` non-negative)."""
    if order == 0:
        return values
    n = values.shape[axis]
    uniform = isinstance(grid, float)
    s, p = stencil_sizes(order, accuracy, uniform)
    needed = fd_points_needed(order, accuracy, uniform, boundary)
    if n < needed:
        raise ValueError(
            f"values has {n} points along axis {axis}, but order={order}, accuracy={accuracy} with "
            f"boundary={boundary!r} needs at least {needed}"
        )
    if uniform:
        stencil = uniform_stencil(order, accuracy)
        scale = grid**-order
        center = [float(c) * scale for c in stencil.center]
        edges = _edge_tensors(order, accuracy, scale, values.dtype, values.device)
    else:
        if boundary == "periodic":
            raise ValueError("boundary='periodic' needs uniformly spaced coordinates")
        key = GridKey(grid.cpu().numpy())
        weights, *edges = _nonuniform_tensors(order, accuracy, key, values.dtype, values.device)
        trailing = (1,) * (values.ndim - axis - 1)
        center = [w.reshape(-1, *trailing) for w in weights]

    if boundary == "periodic":
        padded = torch.cat(
            [values.narrow(axis, n - s, s), values, values.narrow(axis, 0, s)], dim=axis
        )
        return _shifted_sum(padded, axis, center, n)
    interior = _shifted_sum(values, axis, center, n - 2 * s)
    if boundary == "interior":
        return interior
    left = _apply_block(values.narrow(axis, 0, p), axis, edges[0])
    right = _apply_block(values.narrow(axis, n - p, p), axis, edges[1])
    return torch.cat([left, interior, right], dim=axis)


def _shifted_sum(values: torch.Tensor, axis: int, weights: list, length: int) -> torch.Tensor:
    """``sum_k weights[k] * values[k : k + length]`` along ``axis``; zero float weights skipped."""
    out = None
    for k, w in enumerate(weights):
        if isinstance(w, float) and w == 0.0:
            continue
        term = values.narrow(axis, k, length)
        if out is None:
            out = term * w
        elif isinstance(w, float):
            out.add_(term, alpha=w)
        else:
            out.addcmul_(term, w)
    return out


def _apply_block(values: torch.Tensor, axis: int, block: torch.Tensor) -> torch.Tensor:
    """Apply an ``(s, p)`` matrix along ``axis`` (of length ``p``), giving length ``s``."""
    if axis == values.ndim - 1:
        return torch.nn.functional.linear(values, block)
    return torch.nn.functional.linear(values.movedim(axis, -1), block).movedim(-1, axis)


def _edge_tensors(
    order: int, accuracy: int, scale: float, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    stencil = uniform_stencil(order, accuracy)
    return tuple(
        torch.as_tensor(m * scale, dtype=dtype, device=device)
        for m in (stencil.left, stencil.right)
    )


def _nonuniform_tensors(
    order: int, accuracy: int, grid: GridKey, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Central weights transposed to ``(2s+1, n-2s)`` (one contiguous row per offset), edge blocks:
    fresh tensors of the cached NumPy stencils on every call (a tensor cached inside one torch.func
    transform would trip the next one)."""
    center, left, right = nonuniform_stencil(order, accuracy, grid)
    return tuple(
        torch.as_tensor(m, dtype=dtype, device=device) for m in (center.T.copy(), left, right)
    )
