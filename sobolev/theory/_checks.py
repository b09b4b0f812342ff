"""Input validation shared by the theory modules: clear ``ValueError``s naming the argument."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

PARTS = ("L", "J", "H")


def as_weights(x: Any, name: str, *, ndim: int = 2) -> Tensor:
    """``x`` as a float64 tensor of shape (K, d) (or (d,) when ``ndim=1``): finite, no zero rows.

    Accepts tensors (autograd graphs are kept), NumPy arrays and nested sequences.
    """
    if isinstance(x, Tensor):
        t = x.to(torch.float64)
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a real array, got {type(x).__name__}") from err
    shape = "(K, d)" if ndim == 2 else "(d,)"
    if t.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape}, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite (no NaN/Inf)")
    rows = t.reshape(-1, t.shape[-1])
    zero = (rows.detach().abs().amax(dim=1) == 0).nonzero().flatten().tolist()
    if zero:
        raise ValueError(
            f"{name} has zero row(s) {zero}: the ReLU kernels are not differentiable at w = 0 "
            "(the angle to other rows is undefined)"
        )
    return t


def as_pair(W: Any, W_star: Any) -> tuple[Tensor, Tensor]:
    """Validated student ``W`` (K, d) and teacher ``W_star`` (K*, d) with matching d."""
    W, W_star = as_weights(W, "W"), as_weights(W_star, "W_star")
    if W.shape[1] != W_star.shape[1]:
        raise ValueError(
            f"W and W_star must have the same input dimension d, got W {tuple(W.shape)} "
            f"and W_star {tuple(W_star.shape)}"
        )
    return W, W_star


def check_part(part: str, lam: float) -> float:
    """Validate ``part`` ∈ {"L", "J", "H"} and the weight ``lam`` (finite, ≥ 0);
    return float(lam)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    try:
        lam = float(lam)
    except (TypeError, ValueError) as err:
        raise ValueError(f"lam must be a real number, got {lam!r}") from err
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be finite and ≥ 0, got {lam}")
    return lam


def part_weights(part: str, lam: float) -> tuple[float, float]:
    """Weights (c_L, c_J) with part = c_L·L + c_J·J."""
    lam = check_part(part, lam)
    return {"L": (1.0, 0.0), "J": (0.0, 1.0), "H": (1.0, lam)}[part]


def check_positive_int(n: Any, name: str) -> int:
    """``n`` as a positive int."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)
