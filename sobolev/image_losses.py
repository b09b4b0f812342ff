"""Sobolev (H^s) losses between images: the error's norm weighted towards its spatial derivatives.

For an error image ``e = pred − target`` of N = H·W pixels, the periodic H^s norm is

    ‖e‖²_{H^s} = (1/N²) Σ_ξ (1 + |ξ|²)^s |ê(ξ)|²,     ê = fft2(e),  ξ = 2π·fftfreq(n, d=spacing) per axis,

i.e. the mean over pixels of |(1 − Δ)^{s/2} e|²; by Parseval s = 0 is the mean squared error, and
s = 1 is ``mean(e²) + mean(|∇e|²)`` with spectral derivatives (ξ in radians per unit of
``spacing``). ``method="fd"`` computes the same kind of norm for non-periodic images from finite
differences (:func:`sobolev.numdiff.fd_derivative`): value, gradient and Hessian terms with
explicit boundary handling and a weight per order.

``paper_compatible=True`` reproduces the multiplier of the official code of "Sobolev acceleration
for neural networks" (arXiv 2509.19773) for side-by-side comparison; see :func:`image_sobolev_loss`.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import check_weights, reduce_batch
from .numdiff import fd_derivative

Reduction = Literal["mean", "sum", "none"]
METHODS = ("fourier", "fd")


def _check_images(pred: Tensor, target: Tensor) -> None:
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, Tensor) or t.ndim != 4 or not t.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor of shape (B, C, H, W), got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")


def _spacings(spacing: float | Sequence[float]) -> tuple[float, float]:
    """(h_y, h_x) from one spacing or a pair; positive and finite."""
    hs = (spacing, spacing) if isinstance(spacing, (int, float)) else tuple(spacing)
    if len(hs) != 2 or not all(isinstance(h, (int, float)) and math.isfinite(h) and h > 0 for h in hs):
        raise ValueError(f"spacing must be a positive number or a pair (h_y, h_x) of them, got {spacing!r}")
    return float(hs[0]), float(hs[1])


def sobolev_multiplier(
    height: int, width: int, s: float, spacing: float | Sequence[float] = 1.0, *,
    paper_compatible: bool = False, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
) -> Tensor:
    """The (H, W) weight applied to |fft2(e)|² by :func:`image_sobolev_loss` (before normalisation).

    Symmetric (default): ``(1 + ξ_y² + ξ_x²)^s`` with ``ξ = 2π·fftfreq(n, d=h)``.
    ``paper_compatible``: ``(1 + ξ_y²)^s · (1 + ξ_x²)^s`` with the one-sided ``ξ = 2π k/n``,
    k = 0…n−1 (grid units; ``spacing`` is ignored) — the square of the per-axis amplitude
    multiplier ``m_y·m_x``, ``m = (1 + ξ²)^{s/2}``.
    """
    hy, hx = _spacings(spacing)
    if paper_compatible:
        xi_y = 2 * math.pi * torch.arange(height, dtype=torch.float64) / height
        xi_x = 2 * math.pi * torch.arange(width, dtype=torch.float64) / width
        w = (1 + xi_y[:, None] ** 2) ** s * (1 + xi_x[None, :] ** 2) ** s
    else:
        xi_y = 2 * math.pi * torch.fft.fftfreq(height, d=hy, dtype=torch.float64)
        xi_x = 2 * math.pi * torch.fft.fftfreq(width, d=hx, dtype=torch.float64)
        w = (1 + xi_y[:, None] ** 2 + xi_x[None, :] ** 2) ** s
    return w.to(dtype=dtype, device=device)


@lru_cache(maxsize=32)
def _half_spectrum_weights(height: int, width: int, s: float, spacing: tuple[float, float], paper: bool,
                           dtype: torch.dtype, device: torch.device) -> Tensor:
    """Weights on the ``rfft2`` half spectrum (H, W//2+1) whose weighted sum of |·|² equals the full
    weighted sum: each kept column k (0 < k < W/2) also carries its dropped mirror (−k_y, W−k)."""
    w = sobolev_multiplier(height, width, s, spacing, paper_compatible=paper)
    half = w[:, : width // 2 + 1].clone()
    cols = torch.arange(1, (width - 1) // 2 + 1)
    mirror_rows = (-torch.arange(height)) % height
    half[:, cols] += w[mirror_rows][:, width - cols]
    # Normalisation: symmetric → mean over pixels (Parseval: Σ|e|² = Σ|ê|²/N); paper → mean over
    # the N unnormalised FFT coefficients, as the official code does.
    n = height * width
    return (half / (n * n if not paper else n)).to(dtype=dtype, device=device)


def _fourier_per_sample(err: Tensor, s: float, spacing: tuple[float, float], paper: bool) -> Tensor:
    """(B,) weighted spectral energy, averaged over channels."""
    b, c, h, w = err.shape
    weights = _half_spectrum_weights(h, w, float(s), spacing, paper, err.dtype, err.device)
    spec = torch.fft.rfft2(err)
    energy = spec.real.square() + spec.imag.square()
    return (energy * weights).sum((-2, -1)).mean(1)


def _center_crop(t: Tensor, height: int, width: int) -> Tensor:
    dy, dx = (t.shape[-2] - height) // 2, (t.shape[-1] - width) // 2
    return t[..., dy : dy + height, dx : dx + width]


def image_derivatives(img: Tensor, order: int, spacing: tuple[float, float] = (1.0, 1.0), *,
                      boundary: str = "one-sided", accuracy: int = 2) -> list[list[Tensor]]:
    """Finite-difference derivatives of images (B, C, H, W): ``[[u], [u_y, u_x], [u_yy, u_yx, u_xy, u_xx]]``
    up to ``order`` ≤ 2 (the entries of the gradient and of the full Hessian tensor).

    ``boundary`` as in :func:`sobolev.numdiff.fd_derivative`: ``"one-sided"`` (same size, one-sided
    stencils at the edges), ``"periodic"``, or ``"interior"`` (each order cropped to the pixels
    where all its stencils fit).
    """
    if order not in (0, 1, 2):
        raise ValueError(f"the finite-difference image loss supports s ∈ {{0, 1, 2}}, got order {order}")
    hy, hx = spacing
    d = lambda t, k, axis: fd_derivative(t, hy if axis == -2 else hx, k, axis=axis, accuracy=accuracy,
                                         boundary=boundary)
    out = [[img]]
    if order >= 1:
        dy, dx = d(img, 1, -2), d(img, 1, -1)
        out.append([dy, dx])
    if order >= 2:
        out.append([d(img, 2, -2), d(dx, 1, -2), d(dy, 1, -1), d(img, 2, -1)])
    if boundary == "interior":  # one pixel set per order: the intersection of its entries' interiors
        for j in range(1, len(out)):
            hh, ww = min(t.shape[-2] for t in out[j]), min(t.shape[-1] for t in out[j])
            out[j] = [_center_crop(t, hh, ww) for t in out[j]]
    return out


def _fd_terms(err: Tensor, order: int, spacing: tuple[float, float], boundary: str, accuracy: int) -> list[Tensor]:
    """(B,) per-order terms: mean over channels and pixels of Σ_entries (Dʲe)²."""
    stack = image_derivatives(err, order, spacing, boundary=boundary, accuracy=accuracy)
    return [sum(t.square() for t in entries).mean((1, 2, 3)) for entries in stack]


def image_sobolev_loss(
    pred: Tensor, target: Tensor, *, s: float = 1.0, method: str = "fourier",
    spacing: float | Sequence[float] = 1.0, weights: Sequence[float] | None = None,
    reduction: Reduction = "mean", boundary: str = "one-sided", accuracy: int = 2,
    paper_compatible: bool = False, return_terms: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Squared H^s norm of ``pred − target`` for images (B, C, H, W), averaged over channels.

    ``method="fourier"`` (periodic): ``(1/N²) Σ_ξ (1 + |ξ|²)^s |fft2(e)(ξ)|²`` with symmetric
    frequencies ``ξ = 2π·fftfreq(n, d=spacing)`` (``spacing``: one number or ``(h_y, h_x)``),
    any real ``s ≥ 0``; ``s = 0`` is exactly ``F.mse_loss`` (computed as such). ``weights`` must be
    ``None`` (the norm is set by ``s``).

    ``method="fd"`` (non-periodic): ``Σ_j λ_j · mean_pixels Σ_entries (Dʲe)²`` for j ≤ s ∈ {0, 1, 2},
    Dʲ the finite-difference value / gradient / full Hessian (see :func:`image_derivatives`;
    ``boundary``, ``accuracy`` as in :func:`sobolev.numdiff.fd_derivative`), ``weights`` = λ_0..λ_s
    (default ones). With weights (1, 2, 1) at s = 2, or ones at s = 1, it approximates the Fourier
    norm for smooth periodic images.

    ``paper_compatible=True`` (Fourier only) reproduces the official code of arXiv 2509.19773:
    ``E = fft2(e)`` (unnormalised), per-axis amplitude multipliers ``m_y = (1 + ξ_y²)^{s/2}``,
    ``m_x = (1 + ξ_x²)^{s/2}`` on the one-sided grid ``ξ = 2πk/n``, k = 0…n−1 (grid units, one
    separable product ``E·m_y·m_x``), and loss ``mean |E·m_y·m_x|²`` over the N coefficients. So
    at s = 0 it is N × the MSE; the weight of frequency −k is that of n − k, and the product adds a
    mixed term ``ξ_y²ξ_x²`` absent from (1 + |ξ|²). For a real error, ê(−k) = conj ê(k), so the
    weights of k and n − k act together: at s = 1 the effective per-axis weight (÷N) is
    ``1 + 2π²(k² + (n−k)²)/n²`` — 1 for the mean, largest (≈ 1 + 2π²) at |k| = 1 and smallest
    (1 + π², equal to the symmetric weight) at the Nyquist frequency. It does not grow with |k|:
    it up-weights every non-constant error component by a roughly constant factor ≈ 10–20.

    ``reduction`` over the batch of per-image values: ``"mean"``, ``"sum"`` or ``"none"`` (B,).
    With ``return_terms``, also returns ``{"mse": …}`` (Fourier) or the per-order terms
    ``{"D0", "D1", …}`` (FD, unweighted).
    """
    _check_images(pred, target)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not (math.isfinite(s) and s >= 0):
        raise ValueError(f"s must be a finite number ≥ 0, got {s!r}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    hs = _spacings(spacing)
    err = pred - target
    terms: dict[str, Tensor] = {}
    if method == "fd":
        if paper_compatible:
            raise ValueError("paper_compatible applies to method='fourier' only")
        if s not in (0, 1, 2):
            raise ValueError(f"method='fd' needs an integer s in {{0, 1, 2}}, got {s!r}")
        order = int(s)
        lam = check_weights(weights, order + 1, "order")
        per_order = _fd_terms(err, order, hs, boundary, accuracy)
        total = reduce_batch(sum(w * t for w, t in zip(lam, per_order)), reduction)
        terms = {f"D{j}": reduce_batch(t, reduction) for j, t in enumerate(per_order)}
    else:
        if weights is not None:
            raise ValueError("weights apply to method='fd' only; the Fourier norm is set by s")
        if s == 0 and not paper_compatible:
            total = F.mse_loss(pred, target, reduction=reduction) if reduction != "none" else err.square().mean((1, 2, 3))
            if reduction == "sum":  # per-image means summed over the batch
                total = total / (err[0].numel())
        else:
            total = reduce_batch(_fourier_per_sample(err, s, hs, paper_compatible), reduction)
        if return_terms:
            terms = {"mse": reduce_batch(err.detach().square().mean((1, 2, 3)), reduction)}
    return (total, terms) if return_terms else total


class ImageSobolevLoss(nn.Module):
    """:func:`image_sobolev_loss` as a module: ``loss_fn(pred, target)`` on (B, C, H, W)."""

    def __init__(self, s: float = 1.0, method: str = "fourier", *, spacing: float | Sequence[float] = 1.0,
                 weights: Sequence[float] | None = None, reduction: Reduction = "mean",
                 boundary: str = "one-sided", accuracy: int = 2, paper_compatible: bool = False) -> None:
        super().__init__()
        self.kwargs = dict(s=s, method=method, spacing=spacing, weights=weights, reduction=reduction,
                           boundary=boundary, accuracy=accuracy, paper_compatible=paper_compatible)
        # Validate once, on a dummy pair large enough for the stencils.
        dummy = torch.zeros(1, 1, 32, 32)
        image_sobolev_loss(dummy, dummy, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())

    def forward(self, pred: Tensor, target: Tensor, *, return_terms: bool = False):
        return image_sobolev_loss(pred, target, return_terms=return_terms, **self.kwargs)


_NAME = re.compile(r"^H(?P<s>\d+(?:\.\d+)?)(?:-(?P<variant>fd|paper))?$")


def loss_from_name(name: str) -> ImageSobolevLoss:
    """``"L2"`` (= H0), ``"H<s>"`` (Fourier, e.g. ``H1``, ``H0.5``), ``"H<s>-fd"`` (finite
    differences, s ∈ {1, 2}) or ``"H<s>-paper"`` (the official code's multiplier)."""
    if name == "L2":
        return ImageSobolevLoss(0.0)
    m = _NAME.match(name)
    if m is None:
        raise ValueError(f"loss name must be 'L2', 'H<s>', 'H<s>-fd' or 'H<s>-paper' (e.g. 'H1', 'H0.5', "
                         f"'H1-fd'), got {name!r}")
    s, variant = float(m["s"]), m["variant"]
    if variant == "fd":
        if s not in (1.0, 2.0):
            raise ValueError(f"finite-difference losses need s ∈ {{1, 2}}, got {name!r}")
        return ImageSobolevLoss(int(s), "fd")
    return ImageSobolevLoss(s, paper_compatible=variant == "paper")
