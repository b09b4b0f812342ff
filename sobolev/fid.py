"""Fréchet distance (the formula of FID) and kernel distance (the formula of KID) between image
feature sets.

Inception weights cannot be had offline, so the features are the penultimate activations of a
small classifier (:class:`sobolev.models.conv.ConvClassifier`) trained here on the same data —
on its classes, or, for unlabelled images, on predicting which of four rotations was applied
(:func:`rotation_task`). The numbers are therefore "FD / KD in classifier feature space, not
Inception FID / KID": comparable between runs that share the classifier and the reference set,
not with published scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models.conv import ConvClassifier
from .training import TrainConfig, fit


def gaussian_fit(features: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and population covariance (d, d), float64, of features (N, d)."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N, d) with N ≥ 2, got {tuple(features.shape)}")
    f = features.detach().double().cpu().numpy()
    return f.mean(0), np.cov(f, rowvar=False, bias=True).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}), via symmetric eigendecompositions
    (so singular covariances, e.g. from fewer samples than dimensions, are handled)."""
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"shapes do not match: mu {mu1.shape}, {mu2.shape}; cov {cov1.shape}, {cov2.shape}"
        )
    vals, vecs = np.linalg.eigh(cov1)
    root1 = (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T
    cross = np.linalg.eigvalsh(root1 @ cov2 @ root1).clip(min=0)
    return float(
        np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.sqrt(cross).sum()
    )


def kernel_distance(x: Tensor, y: Tensor) -> float:
    """Unbiased squared MMD between feature sets x (m, d) and y (n, d), m, n ≥ 2, with the cubic
    polynomial kernel ``k(a, b) = (a·b/d + 1)³`` of KID (Bińkowski et al. 2018), in float64:
    ``Σ_{i≠j} k(x_i, x_j)/(m(m−1)) + Σ_{i≠j} k(y_i, y_j)/(n(n−1)) − 2 Σ_{i,j} k(x_i, y_j)/(mn)``.
    Its expectation is 0 when x and y come from the same distribution (it can be negative)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(x.shape[0], y.shape[0]) < 2:
        raise ValueError(
            f"x and y must be (m, d) and (n, d) with m, n ≥ 2, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    return _self_kernel_mean(x) + _self_kernel_mean(y) - 2 * _cross_kernel_mean(x, y)


def _kernel(x: Tensor, y: Tensor) -> Tensor:
    return (x.double() @ y.double().T / x.shape[1] + 1) ** 3


def _self_kernel_mean(x: Tensor) -> float:
    k = _kernel(x, x)
    m = x.shape[0]
    return float((k.sum() - k.diagonal().sum()) / (m * (m - 1)))


def _cross_kernel_mean(x: Tensor, y: Tensor) -> float:
    return float(_kernel(x, y).mean())


def rotation_task(images: Tensor) -> tuple[Tensor, Tensor]:
    """Each image (N, C, S, S) rotated by 0, 90, 180 and 270 degrees: (4N, C, S, S) and the
    rotation index (4N,) as labels — a classification task for images without classes."""
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation_task needs square images, got {tuple(images.shape[-2:])}")
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
    labels = torch.arange(4).repeat_interleave(images.shape[0])
    return rotated, labels


def train_classifier(
    images: Tensor,
    labels: Tensor,
    n_classes: int,
    *,
    steps: int = 500,
    batch_size: int = 128,
    lr: float = 1e-3,
    feature_dim: int = 32,
    seed: int = 0,
    out_dir: str | Path | None = None,
    device: str = "auto",
) -> ConvClassifier:
    """A :class:`ConvClassifier` trained by cross-entropy through :func:`sobolev.fit` on images
    (N, C, H, W) in [0, 1] with labels (N,); returned in eval mode on the CPU."""
    torch.manual_seed(seed)
    model = ConvClassifier(images.shape[1], images.shape[-1], n_classes, feature_dim=feature_dim)

    def objective(m: nn.Module, batch: tuple[Tensor, ...]):
        x, y = batch
        logits = m(x)
        return F.cross_entropy(logits, y), {"accuracy": (logits.argmax(1) == y).float().mean()}

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        log_every=max(steps // 5, 1),
        seed=seed,
        progress=False,
        device=device,
        checkpoint_every=0,
    )
    fit(model, objective, (images, labels), cfg, out_dir=out_dir, desc="feature classifier")
    return model.cpu().eval()


class FeatureDistances:
    """Fréchet distance (``"fd"``) and kernel distance (``"kd"``, ×10³ as KID is usually quoted)
    of generated images to a reference set, in a classifier's feature space.

    ``reference``: real images (N, C, H, W) in [0, 1]; their Gaussian fit is computed once, and
    the kernel term on at most ``kd_reference`` of them (a seeded random subset). For the kernel,
    features are divided by one scalar, the reference's root-mean-square feature, so that
    ``a·b/d`` is of order one as for Inception features (the FD uses the raw features).
    """

    def __init__(
        self,
        classifier: ConvClassifier,
        reference: Tensor,
        batch_size: int = 512,
        kd_reference: int = 5000,
    ) -> None:
        self.classifier, self.batch_size = classifier.eval(), batch_size
        feats = self.features(reference)
        self.mu, self.cov = gaussian_fit(feats)
        self.scale = float(feats.double().square().mean().sqrt().clamp_min(1e-12))
        keep = torch.randperm(feats.shape[0], generator=torch.Generator().manual_seed(0))[
            :kd_reference
        ]
        self.kd_feats = feats[keep] / self.scale
        self.kd_self = _self_kernel_mean(self.kd_feats)

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Features (N, d) of images (N, C, H, W) in [0, 1] (computed on the CPU, float32)."""
        x = images.detach().float().cpu()
        return torch.cat([self.classifier.features(b) for b in x.split(self.batch_size)])

    def __call__(self, images: Tensor) -> dict[str, float]:
        """``{"fd", "kd"}`` of ``images`` (N ≥ 2, C, H, W) in [0, 1] to the reference."""
        f = self.features(images)
        g = f / self.scale
        kd = _self_kernel_mean(g) + self.kd_self - 2 * _cross_kernel_mean(g, self.kd_feats)
        return {"fd": frechet_distance(*gaussian_fit(f), self.mu, self.cov), "kd": 1e3 * kd}
