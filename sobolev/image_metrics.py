"""Image quality metrics against a reference: PSNR and SSIM (Gaussian window), per image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must be (B, C, H, W) of the same shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image: (B,) ``10·log10(data_range² / MSE)``."""
    _check_pair(pred, target)
    mse = (pred - target).square().mean((1, 2, 3))
    return 10 * torch.log10(data_range**2 / mse.clamp_min(torch.finfo(mse.dtype).tiny))


def gaussian_window(
    sigma: float = 1.5, truncate: float = 3.5, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Normalised 1-D Gaussian of radius ``int(truncate·sigma + 0.5)`` (scikit-image's choice)."""
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-x.square() / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def ssim(
    pred: Tensor,
    target: Tensor,
    data_range: float = 1.0,
    *,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Structural similarity per image (B,), averaged over channels and the valid pixels.

    Wang et al. (2004) with a Gaussian window (σ = 1.5, radius 5) and population statistics,
    i.e. ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range)`` on each channel. Images need at least
    2·radius + 1 = 11 pixels per side.
    """
    _check_pair(pred, target)
    c, h, w = pred.shape[1:]
    g = gaussian_window(sigma, dtype=pred.dtype).to(pred.device)
    if min(h, w) < g.numel():
        raise ValueError(
            f"images must be at least {g.numel()} pixels per side for SSIM with sigma={sigma}, got "
            f"{h}×{w}"
        )
    kernel = (g[:, None] * g[None, :]).expand(c, 1, -1, -1)
    filt = lambda t: F.conv2d(t, kernel, groups=c)
    mx, my = filt(pred), filt(target)
    vx = filt(pred * pred) - mx * mx
    vy = filt(target * target) - my * my
    cxy = filt(pred * target) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean((1, 2, 3))


def image_errors(pred: Tensor, target: Tensor, data_range: float = 1.0) -> dict[str, float]:
    """Mean ``mse``, ``psnr`` (dB) and ``ssim`` over a batch of images (B, C, H, W)."""
    with torch.no_grad():
        return {
            "mse": float((pred - target).square().mean()),
            "psnr": float(psnr(pred, target, data_range).mean()),
            "ssim": float(ssim(pred, target, data_range).mean()),
        }
