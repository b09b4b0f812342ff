"""Fréchet distance between Gaussian fits of image features (the formula of FID).

Inception weights cannot be had offline, so the features are the penultimate activations of a
small classifier (:class:`sobolev.models.conv.ConvClassifier`) trained here on the same data.
The numbers are therefore "FD in classifier feature space, not Inception FID": comparable between
runs that share the classifier and the reference set, not with published FIDs.
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
        raise ValueError(f"shapes do not match: mu {mu1.shape}, {mu2.shape}; cov {cov1.shape}, {cov2.shape}")
    vals, vecs = np.linalg.eigh(cov1)
    root1 = (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T
    cross = np.linalg.eigvalsh(root1 @ cov2 @ root1).clip(min=0)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.sqrt(cross).sum())


def train_classifier(images: Tensor, labels: Tensor, n_classes: int, *, steps: int = 500, batch_size: int = 128,
                     lr: float = 1e-3, feature_dim: int = 32, seed: int = 0, out_dir: str | Path | None = None,
                     device: str = "auto") -> ConvClassifier:
    """A :class:`ConvClassifier` trained by cross-entropy through :func:`sobolev.fit` on images
    (N, C, H, W) in [0, 1] with labels (N,); returned in eval mode on the CPU."""
    torch.manual_seed(seed)
    model = ConvClassifier(images.shape[1], images.shape[-1], n_classes, feature_dim=feature_dim)

    def objective(m: nn.Module, batch: tuple[Tensor, ...]):
        x, y = batch
        logits = m(x)
        return F.cross_entropy(logits, y), {"accuracy": (logits.argmax(1) == y).float().mean()}

    cfg = TrainConfig(steps=steps, lr=lr, batch_size=batch_size, log_every=max(steps // 5, 1), seed=seed,
                      progress=False, device=device, checkpoint_every=0)
    fit(model, objective, (images, labels), cfg, out_dir=out_dir, desc="feature classifier")
    return model.cpu().eval()


class FrechetEvaluator:
    """Fréchet distance of generated images to a reference set, in a classifier's feature space.

    ``reference``: real images (N, C, H, W) in [0, 1]; their statistics are computed once.
    """

    def __init__(self, classifier: ConvClassifier, reference: Tensor, batch_size: int = 512) -> None:
        self.classifier, self.batch_size = classifier.eval(), batch_size
        self.mu, self.cov = gaussian_fit(self.features(reference))

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Features (N, d) of images (N, C, H, W) in [0, 1] (computed on the CPU, float32)."""
        x = images.detach().float().cpu()
        return torch.cat([self.classifier.features(b) for b in x.split(self.batch_size)])

    def __call__(self, images: Tensor) -> float:
        return frechet_distance(*gaussian_fit(self.features(images)), self.mu, self.cov)
