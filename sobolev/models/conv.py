"""Small convolutional networks for images: a denoising autoencoder and a classifier whose
penultimate layer is the feature space of the Fréchet distance (:mod:`sobolev.fid`)."""

from __future__ import annotations

from torch import Tensor, nn


def _check(channels: int, size: int) -> None:
    if channels < 1:
        raise ValueError(f"channels must be ≥ 1, got {channels}")
    if size < 4 or size % 4:
        raise ValueError(f"size must be a multiple of 4 (two stride-2 stages), got {size}")


class ConvAutoencoder(nn.Module):
    """Conv encoder (two stride-2 stages) → latent of ``z_dim`` → mirrored decoder (nearest
    upsampling + 3×3 conv, much faster on CPU than transposed convolutions); sigmoid output.

    Input and output (B, C, size, size) with values in [0, 1]; ``size`` a multiple of 4.
    """

    def __init__(self, channels: int = 1, size: int = 16, width: int = 32, z_dim: int = 32) -> None:
        super().__init__()
        _check(channels, size)
        self.shape = (2 * width, size // 4, size // 4)
        flat = 2 * width * (size // 4) ** 2
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, z_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(z_dim, flat),
            nn.ReLU(),
            nn.Unflatten(1, self.shape),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * width, width, 3, padding=1),
            nn.ReLU(),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, channels, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class ConvClassifier(nn.Module):
    """Two conv–ReLU–pool stages → ``feature_dim`` features (:meth:`features`) → class logits."""

    def __init__(
        self,
        channels: int = 1,
        size: int = 16,
        n_classes: int = 10,
        width: int = 32,
        feature_dim: int = 32,
    ) -> None:
        super().__init__()
        _check(channels, size)
        if n_classes < 2:
            raise ValueError(f"n_classes must be ≥ 2, got {n_classes}")
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (size // 4) ** 2, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (B, feature_dim)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class PaperAutoencoder(nn.Module):
    """The official denoising autoencoder of arXiv 2509.19773 (``Denoising Autoencoder/model.py``):
    conv 32 → conv 64 stride 2 → conv 64 stride 2 (3×3, LeakyReLU) → Linear to ``z_dim``
    (LeakyReLU), mirrored by a Linear and three transposed convolutions; no output activation.
    PyTorch's default initialisation, as there. Input and output (B, C, size, size), ``size`` a
    multiple of 4 (28 in the paper: a 7×7 bottleneck)."""

    def __init__(self, channels: int = 1, size: int = 28, z_dim: int = 32) -> None:
        super().__init__()
        _check(channels, size)
        q = size // 4
        act = nn.LeakyReLU
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            act(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2),
            act(),
            nn.Conv2d(64, 64, 3, padding=1, stride=2),
            act(),
            nn.Flatten(),
            nn.Linear(64 * q * q, z_dim),
            act(),
        )
        self.decoder = nn.Sequential(
            nn.Linear(z_dim, 64 * q * q),
            nn.Unflatten(1, (64, q, q)),
            act(),
            nn.ConvTranspose2d(64, 64, 3, padding=1, output_padding=1, stride=2),
            act(),
            nn.ConvTranspose2d(64, 32, 3, padding=1, output_padding=1, stride=2),
            act(),
            nn.ConvTranspose2d(32, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))
