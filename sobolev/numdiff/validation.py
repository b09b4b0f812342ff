"""Argument checks shared by the numerical-differentiation modules.

Every check raises ``ValueError`` naming the offending argument and what was expected
(``TypeError`` where the argument is not a tensor at all).
"""

from __future__ import annotations

import torch

FD_BOUNDARIES = ("one-sided", "periodic", "interior")


def check_values(values: torch.Tensor, name: str = "values") -> None:
    """Require a real floating tensor with only finite entries."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(values).__name__}")
    if not values.is_floating_point():
        raise ValueError(
            f"{name} must have a real floating dtype (float32/float64), got {values.dtype}"
        )
    if values.ndim == 0:
        raise ValueError(f"{name} must have at least one axis, got a 0-d tensor")
    # One cheap reduction first; only if it is non-finite do the exact element-wise check
    # (a finite array whose sum overflows is not an error).
    if not bool(torch.isfinite(values.detach().sum())) and not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or Inf entries")


def check_order(order: int) -> int:
    """Require a non-negative integer derivative order."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    return order


def check_accuracy(accuracy: int) -> int:
    """Require a positive even integer accuracy order (finite differences)."""
    if isinstance(accuracy, bool) or not isinstance(accuracy, int) or accuracy <= 0 or accuracy % 2:
        raise ValueError(f"accuracy must be a positive even integer, got {accuracy!r}")
    return accuracy


def check_axis(axis: int, ndim: int) -> int:
    """Return ``axis`` normalised to ``0 <= axis < ndim``."""
    if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(
            f"axis must be an integer in [{-ndim}, {ndim - 1}] for a {ndim}-d tensor, got {axis!r}"
        )
    return axis % ndim


def check_boundary(boundary: str) -> str:
    """Require one of the finite-difference boundary treatments."""
    if boundary not in FD_BOUNDARIES:
        raise ValueError(f"boundary must be one of {FD_BOUNDARIES}, got {boundary!r}")
    return boundary


def check_coords(
    coords: torch.Tensor, n: int | None, name: str = "coords", *, descending_ok: bool = False
) -> torch.Tensor:
    """Require a finite, strictly increasing 1-D coordinate tensor (of length ``n`` unless None);
    with ``descending_ok`` strictly decreasing is accepted too."""
    if not isinstance(coords, torch.Tensor):
        raise TypeError(
            f"{name} must be a 1-D torch.Tensor of coordinates, got {type(coords).__name__}"
        )
    if coords.ndim != 1 or (n is not None and coords.shape[0] != n):
        expected = "1-D" if n is None else f"1-D with {n} entries to match values"
        raise ValueError(f"{name} must be {expected}, got shape {tuple(coords.shape)}")
    if not coords.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {coords.dtype}")
    x = coords.detach()
    steps = torch.diff(x)
    # Cheap reductions first: a NaN/Inf coordinate makes the sum of steps non-finite.
    if not (bool(torch.isfinite(x[0])) and bool(torch.isfinite(steps.sum()))) and not bool(
        torch.isfinite(x).all()
    ):
        raise ValueError(f"{name} contains NaN or Inf entries")
    if (
        steps.numel()
        and not float(steps.min()) > 0
        and not (descending_ok and float(steps.max()) < 0)
    ):
        raise ValueError(
            f"{name} must be strictly increasing"
            + (" or strictly decreasing" if descending_ok else "")
        )
    return coords
