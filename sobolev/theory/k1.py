r"""Explicit Hessians for a single student and teacher unit (K = K* = 1), in the paper's notation.

Notation (arXiv 2509.19773): t = angle(w, w*), u = w*/|w*|, v = w/|w|, and here
α = |w*| / (2π |w| sin t). Let e = (u − cos t v)/sin t (unit, ⊥ v), P = I − vvᵀ, Q = P − eeᵀ.

Derivation. For K = 1, L = ½[|w|²/2 − 2k(w,w*) + |w*|²/2] and J = ½[|w|²/2 − 2m(w,w*) + |w*|²/2]
(kernels k, m of :mod:`sobolev.theory.kernels`), so ∇²L = ½I − ∇²k, ∇²J = ½I − ∇²m (∇ w.r.t. w).

* Angle: c = cos t = v·u, ∇c = (u − c v)/|w| = (sin t/|w|) e, ∇t = −e/|w|, and
  ∇²c = −[c P + sin t (e vᵀ + v eᵀ)]/|w|², so ∇²t = −∇²c/sin t − (c/sin³t) ∇c∇cᵀ
  = [(c/sin t) Q + e vᵀ + v eᵀ] / |w|².
* ReLU kernel: ∇k = [(π − t) w* + |w*| sin t v]/(2π). Differentiating, with
  w* = |w*|(c v + sin t e), the e vᵀ terms cancel and ∇²k = |w*| sin t (P + eeᵀ)/(2π|w|).
  Since sin²t eeᵀ = (u − c v)(u − c v)ᵀ:
      ∇²L = ½I − α [sin²t P + (u − c v)(u − c v)ᵀ]
          = ½I − α (uuᵀ − c v uᵀ + sin²t I) P                          (the paper's form; see below)
  It is bounded as t → 0 or π (the curvature terms vanish like sin t).
* Gradient kernel: m = (w·w*)(π − t)/(2π), ∇m = [(π − t) w* − (w·w*) ∇t]/(2π), and
  ∇²m = −[w* ∇tᵀ + ∇t w*ᵀ + (w·w*) ∇²t]/(2π) = −|w*| [c² Q/sin t − 2 sin t eeᵀ]/(2π|w|)
  (again the e vᵀ terms cancel), so
      ∇²J = ½I + α [c² Q − 2 sin²t eeᵀ] = ½I + α [c² P − (1 + sin²t)/sin²t (u − c v)(u − c v)ᵀ].
  In the d − 2 directions of Q (⊥ w, w*) the curvature ½ + α cos²t → ∞ as t → 0 or π: J has a
  cone-shaped kink along the teacher's ray (m ≈ |w||w*|(π − t)/(2π), t ≈ |w_⊥|/|w|).
* Eigenpairs: v: ½ (L), ½ (J); e: ½ − 2α sin²t (L and J alike); Q: ½ − α sin²t (L), ½ + α cos²t (J).

Comparison with the paper. A third-party review of arXiv 2509.19773 (themoonlight.io; the paper
itself was not available offline) quotes, with α = |w*|²/(2π|w| sin t),
      ∇²L = ½I − α (uuᵀ − cos t v uᵀ + sin²t I)(I − vvᵀ),
      ∇²H = I − α (2uuᵀ − cos t v uᵀ + sin²t I)(I − vvᵀ).
(1) The L formula equals ours, except that its α carries |w*|² where the dimensions (and tests
against autodiff and finite differences) require |w*|; both agree for |w*| = 1.
(2) The quoted ∇²H − ∇²L = ½I − α u (u − c v)ᵀ is *not symmetric*; it is exactly the Jacobian of
the expected autodiff gradient E[1(w·x>0)(∇_x g − ∇_x g*)] = w/2 − (π − t) w*/(2π), i.e. the J part
without the indicator's boundary term (``hessian_k1_quoted`` implements the quote; tests check it
equals ``expected_autodiff_jacobian`` and differs from the true Hessian of J).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import as_weights, check_part
from .kernels import DEGENERATE_SINE


def _frame(w, w_star) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Validated (d,) vectors → (u, v, cos t, sin t, |w|, |w*|); raises at t ∈ {0, π}."""
    w, w_star = as_weights(w, "w", ndim=1), as_weights(w_star, "w_star", ndim=1)
    if w.shape != w_star.shape:
        raise ValueError(
            f"w and w_star must have the same shape (d,), got {tuple(w.shape)} and "
            f"{tuple(w_star.shape)}"
        )
    nw, ns = torch.linalg.vector_norm(w), torch.linalg.vector_norm(w_star)
    u, v = w_star / ns, w / nw
    t = 2 * torch.atan2(torch.linalg.vector_norm(u - v), torch.linalg.vector_norm(u + v))
    if torch.sin(t) <= DEGENERATE_SINE:
        raise ValueError(
            "w and w_star are aligned or opposite (t ∈ {0, π}): "
            "the K = 1 Hessian formulas need 0 < t < π"
        )
    return u, v, torch.cos(t), torch.sin(t), nw, ns


def hessian_k1_explicit(w, w_star, part: str = "L", lam: float = 1.0) -> Tensor:
    """Explicit Hessian (d, d) of L, J or H_λ = L + λJ for K = K* = 1 (w, w_star of shape (d,))."""
    lam = check_part(part, lam)
    u, v, c, s, nw, ns = _frame(w, w_star)
    alpha = ns / (2 * math.pi * nw * s)
    eye = torch.eye(v.numel(), dtype=v.dtype)
    P, r = eye - torch.outer(v, v), u - c * v  # r = sin t · e
    hess_L = 0.5 * eye - alpha * (s**2 * P + torch.outer(r, r))
    hess_J = 0.5 * eye + alpha * (c**2 * P - (1 + s**2) / s**2 * torch.outer(r, r))
    return {"L": hess_L, "J": hess_J, "H": hess_L + lam * hess_J}[part]


def hessian_k1_quoted(w, w_star, part: str = "L") -> Tensor:
    """The K = 1 "Hessians" of L and H (λ = 1) as quoted from the paper by a third-party
    review (d, d).

    Verbatim, including α = |w*|²/(2π|w| sin t). For part "H" it is not symmetric and is not the
    Hessian of H (see the module docstring); kept to make that comparison testable.
    """
    if part not in ("L", "H"):
        raise ValueError(f"part must be 'L' or 'H', got {part!r}")
    u, v, c, s, nw, ns = _frame(w, w_star)
    alpha = ns**2 / (2 * math.pi * nw * s)
    eye = torch.eye(v.numel(), dtype=v.dtype)
    k, base = (1.0, 0.5) if part == "L" else (2.0, 1.0)
    return base * eye - alpha * (k * torch.outer(u, u) - c * torch.outer(v, u) + s**2 * eye) @ (
        eye - torch.outer(v, v)
    )
