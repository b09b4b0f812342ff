"""Fourier-feature networks (Tancik et al. 2020): a fixed random Fourier embedding, then an MLP."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .mlp import MLP


class FourierFeatures(nn.Module):
    """γ(x) = [cos(2π x Bᵀ), sin(2π x Bᵀ)], (B, d) → (B, 2·n_features).

    ``B`` (n_features, d) ~ N(0, σ²) is a fixed buffer (not trained; saved in the state dict).
    """

    def __init__(
        self,
        d_in: int,
        n_features: int = 64,
        sigma: float = 1.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("d_in", d_in), ("n_features", n_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        self.sigma = float(sigma)
        self.register_buffer("B", sigma * torch.randn(n_features, d_in, generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        z = 2 * math.pi * x @ self.B.T
        return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)


class FourierFeatureMLP(nn.Module):
    """:class:`FourierFeatures` followed by an :class:`MLP` on the 2·n_features embedding, (B, d_in)
    → (B, d_out)."""

    def __init__(
        self,
        d_in: int,
        d_out: int = 1,
        n_features: int = 64,
        sigma: float = 1.0,
        width: int = 64,
        depth: int = 3,
        activation: str = "tanh",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.features = FourierFeatures(d_in, n_features, sigma, generator=generator)
        self.mlp = MLP(2 * n_features, d_out, width, depth, activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.features(x))
