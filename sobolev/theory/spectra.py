"""Hessian spectra and conditioning of the population losses.

Condition number. ``cond`` = λ_max/λ_min when the Hessian is positive definite (λ_min > 0) and
+inf otherwise; λ_min is always reported as is (negative at saddles). ``cond_positive`` =
λ_max / (smallest eigenvalue > ``rtol``·λ_max) ignores (near-)null directions: they occur on
continuous families of equivalent students (e.g. K > K*, a teacher row split between two
aligned students), whereas the permutation symmetry of the rows is discrete and adds none.

For J and H the Hessian grows like 1/sin t as a student row approaches a teacher row's ray
(:mod:`sobolev.theory.k1`), so λ_max of H diverges near the teacher in d ≥ 3, while λ_min of H
is about twice that of L. Scans put NaN at degenerate configurations, where it is not defined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import as_weights, check_part
from .kernels import DEGENERATE_SINE
from .population import min_pair_sine, population_hessian


@dataclass
class Spectrum:
    """Eigenvalues (ascending, shape (K·d,)) of a Hessian and its conditioning summary."""

    eigenvalues: np.ndarray
    lam_min: float
    lam_max: float
    cond: float
    cond_positive: float


def spectrum_of(hess: torch.Tensor, *, rtol: float = 1e-10) -> Spectrum:
    """Spectrum of a symmetric matrix (n, n) by dense ``eigh``."""
    ev = torch.linalg.eigvalsh(hess).numpy()
    lo, hi = float(ev[0]), float(ev[-1])
    positive = ev[ev > rtol * max(hi, 0.0)]
    return Spectrum(
        eigenvalues=ev,
        lam_min=lo,
        lam_max=hi,
        cond=hi / lo if lo > 0 else math.inf,
        cond_positive=hi / float(positive[0]) if hi > 0 and positive.size else math.inf,
    )


def hessian_spectrum(
    W, W_star, part: str = "L", lam: float = 1.0, *, rtol: float = 1e-10
) -> Spectrum:
    """Spectrum of ``population_hessian(W, W_star, part, lam)``."""
    return spectrum_of(population_hessian(W, W_star, part, lam), rtol=rtol)


@dataclass
class SpectrumScan:
    """Spectra along a family of students: arrays with one row per student (NaN if degenerate)."""

    eigenvalues: np.ndarray  # (n, K·d)
    lam_min: np.ndarray  # (n,)
    lam_max: np.ndarray
    cond: np.ndarray
    cond_positive: np.ndarray


def spectrum_scan(Ws: Sequence, W_star, part: str = "L", lam: float = 1.0) -> SpectrumScan:
    """Spectra of the Hessian at each student in ``Ws`` (each (K, d)), e.g. a flow trajectory."""
    check_part(part, lam)
    spectra = []
    for W in Ws:
        if min_pair_sine(W, W_star) <= DEGENERATE_SINE:
            spectra.append(None)
        else:
            spectra.append(hessian_spectrum(W, W_star, part, lam))
    size = next(
        (s.eigenvalues.size for s in spectra if s is not None), as_weights(Ws[0], "Ws[0]").numel()
    )
    nan = Spectrum(np.full(size, np.nan), *([math.nan] * 4))
    spectra = [s or nan for s in spectra]
    return SpectrumScan(
        eigenvalues=np.stack([s.eigenvalues for s in spectra]),
        **{
            f: np.array([getattr(s, f) for s in spectra])
            for f in ("lam_min", "lam_max", "cond", "cond_positive")
        },
    )


def _directions(
    W_star: torch.Tensor, directions, generator: torch.Generator | None
) -> torch.Tensor:
    """Unit vectors e_i ⊥ w*_i, shape (K*, d): from ``directions`` or random."""
    u = W_star / W_star.norm(dim=1, keepdim=True)
    if directions is None:
        directions = torch.randn(W_star.shape, dtype=W_star.dtype, generator=generator)
    e = as_weights(directions, "directions")
    if e.shape != W_star.shape:
        raise ValueError(f"directions must have shape {tuple(W_star.shape)}, got {tuple(e.shape)}")
    perp = e - (e * u).sum(1, keepdim=True) * u
    norm = perp.norm(dim=1, keepdim=True)
    parallel = (norm <= 1e-12 * e.norm(dim=1, keepdim=True))[:, 0]
    if parallel.any():
        raise ValueError(
            f"directions rows {parallel.nonzero().flatten().tolist()} are parallel to their W_star "
            "rows: no component ⊥ W_star to rotate towards"
        )
    return perp / norm


def rotated_students(
    W_star,
    angle: float,
    scale: float = 1.0,
    directions=None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Students w_i = scale·|w*_i|·(cos(angle) u_i + sin(angle) e_i), shape (K*, d).

    u_i = w*_i/|w*_i|; e_i ⊥ u_i unit vectors: from ``directions`` (K*, d) after removing their u_i
    component, else random (``generator``). Every row is at ``angle`` to its teacher row.
    """
    W_star = as_weights(W_star, "W_star")
    e = _directions(W_star, directions, generator)
    u = W_star / W_star.norm(dim=1, keepdim=True)
    return scale * W_star.norm(dim=1, keepdim=True) * (math.cos(angle) * u + math.sin(angle) * e)


def angle_scan(
    W_star,
    angles: Sequence[float],
    part: str = "L",
    lam: float = 1.0,
    *,
    scale: float = 1.0,
    directions=None,
    generator: torch.Generator | None = None,
) -> SpectrumScan:
    """Spectra at ``rotated_students(W_star, t, scale, e)`` for t in ``angles`` (same e for all)."""
    W_star = as_weights(W_star, "W_star")
    e = _directions(W_star, directions, generator)
    return spectrum_scan([rotated_students(W_star, t, scale, e) for t in angles], W_star, part, lam)


def distance_scan(
    W_star,
    scales: Sequence[float],
    part: str = "L",
    lam: float = 1.0,
    *,
    angle: float = 0.5,
    directions=None,
    generator: torch.Generator | None = None,
) -> SpectrumScan:
    """Spectra at ``rotated_students(W_star, angle, s, e)`` for norm ratios s in ``scales``."""
    W_star = as_weights(W_star, "W_star")
    e = _directions(W_star, directions, generator)
    return spectrum_scan([rotated_students(W_star, angle, s, e) for s in scales], W_star, part, lam)
