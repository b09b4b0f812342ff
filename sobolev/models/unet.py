"""A compact UNet with sinusoidal timestep embedding, for DDPM-style diffusion on small images."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding (B, dim) of integer or real timesteps t (B,) (Transformer /
    DDPM style)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return nn.functional.pad(emb, (0, dim % 2))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv ×2 with the timestep embedding added in between; 1×1 skip if
    widths differ."""

    def __init__(self, c_in: int, c_out: int, t_dim: int) -> None:
        super().__init__()
        self.block1 = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(t_dim, c_out))
        self.block2 = nn.Sequential(_norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.block1(x) + self.time(temb)[:, :, None, None]
        return self.block2(h) + self.skip(x)


class UNet(nn.Module):
    """UNet ε/x₀-predictor: ``model(x, t)`` with x (B, C, H, W), t (B,) → (B, C, H, W).

    One residual block per resolution, widths ``base·mults[i]``, average-pool down / nearest
    up-sampling, skip connections by concatenation. H and W must be divisible by 2^(len(mults)−1).
    """

    def __init__(
        self, channels: int = 1, base: int = 32, mults: tuple[int, ...] = (1, 2, 2), t_dim: int = 64
    ) -> None:
        super().__init__()
        if not mults or any(m < 1 for m in mults):
            raise ValueError(f"mults must be a non-empty tuple of positive ints, got {mults!r}")
        self.t_dim, self.levels = t_dim, len(mults)
        self.time_mlp = nn.Sequential(nn.Linear(t_dim, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        widths = [base * m for m in mults]
        self.down = nn.ModuleList()
        c = base
        for w in widths:
            self.down.append(ResBlock(c, w, t_dim))
            c = w
        self.mid = ResBlock(c, c, t_dim)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(ResBlock(c + w, w, t_dim))
            c = w
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        factor = 2 ** (self.levels - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"image sides must be divisible by {factor}, got {tuple(x.shape[-2:])}"
            )
        temb = self.time_mlp(timestep_embedding(t, self.t_dim).to(x.dtype))
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, temb)
            skips.append(h)
            if i < self.levels - 1:
                h = nn.functional.avg_pool2d(h, 2)
        h = self.mid(h, temb)
        for i, block in enumerate(self.up):
            if i > 0:
                h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
        return self.out(h)
