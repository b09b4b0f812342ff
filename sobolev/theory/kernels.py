"""Gaussian arc-cosine kernels of ReLU units, for x ~ N(0, I_d).

For a, b ∈ R^d at angle t:

    E[σ(a·x) σ(b·x)]           = (|a||b| sin t + (π − t) a·b) / (2π)     (``relu_kernel``)
    E[1(a·x>0) 1(b·x>0)]       = (π − t) / (2π)                          (``step_kernel``)
    E[1(a·x>0) 1(b·x>0)] a·b   = (π − t) a·b / (2π)                      (``grad_kernel``)

``grad_kernel`` is the kernel of ∇_x σ(w·x) = 1(w·x>0) w, so J is built from it as L is from
``relu_kernel``. All three equal |a|²/2 at a = b.

The angle is computed with Kahan's formula t = 2·atan2(|â − b̂|, |â + b̂|) (â = a/|a|), accurate
to a few ulps for every t, including t ≈ 0 and t ≈ π where arccos(â·b̂) loses half its digits
and has an infinite derivative. Its autodiff derivative is finite for 0 < t < π. At t = 0 or π
exactly the angle is not differentiable (the norm of a zero vector); callers treat those pairs
separately (self-pairs analytically, see :mod:`sobolev.theory.population`).

All functions broadcast over leading dimensions: inputs (..., d), outputs (...).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: sin t at or below which a pair of distinct rows counts as aligned (t = 0) or opposite (t = π).
DEGENERATE_SINE = 1e-12


def _unit(a: Tensor) -> Tensor:
    return a / torch.linalg.vector_norm(a, dim=-1, keepdim=True)


def pair_angles(a: Tensor, b: Tensor) -> Tensor:
    """Angles t ∈ [0, π] between a and b, shape (...), by Kahan's stable formula."""
    ua, ub = _unit(a), _unit(b)
    return 2 * torch.atan2(
        torch.linalg.vector_norm(ua - ub, dim=-1), torch.linalg.vector_norm(ua + ub, dim=-1)
    )


def relu_kernel(a: Tensor, b: Tensor) -> Tensor:
    """E[σ(a·x)σ(b·x)] = (|a||b| sin t + (π − t) a·b) / (2π), shape (...)."""
    t = pair_angles(a, b)
    norms = torch.linalg.vector_norm(a, dim=-1) * torch.linalg.vector_norm(b, dim=-1)
    return (norms * torch.sin(t) + (math.pi - t) * (a * b).sum(-1)) / (2 * math.pi)


def step_kernel(a: Tensor, b: Tensor) -> Tensor:
    """E[1(a·x>0) 1(b·x>0)] = (π − t) / (2π), shape (...)."""
    return (math.pi - pair_angles(a, b)) / (2 * math.pi)


def grad_kernel(a: Tensor, b: Tensor) -> Tensor:
    """E[(1(a·x>0) a)·(1(b·x>0) b)] = (π − t) a·b / (2π), shape (...)."""
    return step_kernel(a, b) * (a * b).sum(-1)


def orthogonal_direction(a: Tensor, b: Tensor, *, sine_tol: float = DEGENERATE_SINE) -> Tensor:
    """Unit vector e of b's component orthogonal to a, shape (..., d), shrunk to (sin t/sine_tol)·e
    where sin t < sine_tol (so 0 at t ∈ {0, π}, where e is undefined and 0 is the
    minimal-norm choice).

    ∇_a t = −e/|a| for 0 < t < π.
    """
    ua = _unit(a)
    perp = b - (b * ua).sum(-1, keepdim=True) * ua  # |perp| = |b| sin t
    floor = sine_tol * torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    return perp / torch.maximum(torch.linalg.vector_norm(perp, dim=-1, keepdim=True), floor)
