"""DDPM (Ho et al. 2020) training objectives and a deterministic DDIM sampler with few steps.

Images live in [−1, 1]. The forward process is ``x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε``; the network
``model(x_t, t)`` predicts x₀ (``"pred_x0"``, as in the official code of arXiv 2509.19773) or ε
(``"pred_noise"``), and the training loss compares its output with that target through any image
loss ``loss_fn(output, target)`` — the MSE or an H^s loss (:mod:`sobolev.image_losses`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

OBJECTIVES = ("pred_x0", "pred_noise")


class DDPMSchedule:
    """Noise schedule of ``timesteps`` steps: ``"linear"`` β from 1e-4 to 0.02 (scaled by 1000/T),
    or ``"cosine"`` (Nichol & Dhariwal 2021). Holds β, ᾱ (float64, CPU) as (T,) tensors."""

    def __init__(self, timesteps: int = 1000, kind: str = "linear") -> None:
        if timesteps < 2:
            raise ValueError(f"timesteps must be ≥ 2, got {timesteps}")
        if kind == "linear":
            scale = 1000 / timesteps
            betas = torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
        elif kind == "cosine":
            s = 0.008
            x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
            ac = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - ac[1:] / ac[:-1]).clamp(0, 0.999)
        else:
            raise ValueError(f"kind must be 'linear' or 'cosine', got {kind!r}")
        self.timesteps, self.kind = timesteps, kind
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)

    def coefficients(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """(√ᾱ_t, √(1−ᾱ_t)) at integer steps t (B,), shaped (B, 1, 1, 1) like ``like``."""
        ac = (
            self.alphas_cumprod.to(like.device)[t]
            .to(like.dtype)
            .reshape(-1, *(1,) * (like.ndim - 1))
        )
        return ac.sqrt(), (1 - ac).sqrt()


def q_sample(schedule: DDPMSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """Sample of the forward process x_t (B, C, H, W) given x₀, steps t (B,) and noise ε."""
    a, b = schedule.coefficients(t, x0)
    return a * x0 + b * noise


def diffusion_objective(
    schedule: DDPMSchedule,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    objective: str = "pred_x0",
) -> Callable[[nn.Module, tuple[Tensor, ...]], tuple[Tensor, dict[str, Tensor]]]:
    """A :func:`sobolev.fit` objective for batches ``(x0,)`` (B, C, H, W) in [−1, 1].

    Draws t ~ U{0, …, T−1} and ε ~ N(0, I) from torch's global generator (which ``fit``
    checkpoints, so resumed runs are exact) and returns ``loss_fn(model(x_t, t), target)`` with
    target x₀ or ε, and the MSE of the same pair as the logged term ``"mse"``.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")

    def obj(model: nn.Module, batch: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Tensor]]:
        x0 = batch[0]
        t = torch.randint(0, schedule.timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        out = model(q_sample(schedule, x0, t, noise), t)
        target = x0 if objective == "pred_x0" else noise
        return loss_fn(out, target), {"mse": (out.detach() - target).square().mean()}

    return obj


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    schedule: DDPMSchedule,
    shape: tuple[int, ...],
    *,
    steps: int = 20,
    objective: str = "pred_x0",
    generator: torch.Generator | None = None,
    clip: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Deterministic DDIM (η = 0) samples (B, C, H, W) in [−1, 1] with ``steps`` network calls on
    evenly spaced timesteps from T−1 to 0. ``clip`` clamps the predicted x₀ to [−1, 1] each step.
    The initial noise comes from ``generator`` (CPU; default: torch's global generator)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not 1 <= steps <= schedule.timesteps:
        raise ValueError(f"steps must be in [1, {schedule.timesteps}], got {steps}")
    p = next(model.parameters())
    device, dtype = device or p.device, dtype or p.dtype
    x = torch.randn(shape, generator=generator, dtype=dtype).to(device)
    ts = torch.linspace(schedule.timesteps - 1, 0, steps).round().long().tolist()
    ac = schedule.alphas_cumprod
    for i, t in enumerate(ts):
        tt = torch.full((shape[0],), t, device=device, dtype=torch.long)
        out = model(x, tt)
        a_t = float(ac[t])
        if objective == "pred_x0":
            x0 = out
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        else:
            eps = out
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        a_prev = float(ac[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    return x
