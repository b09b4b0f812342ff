"""Image H^1 losses (Fourier, finite differences, the official autoencoder and diffusion losses) vs
L2 for the small conv autoencoder: time and peak memory of one training step, and the loss alone,
with ratios to L2.

An epoch is ``n_train // batch`` identical steps, so the per-epoch ratio is the per-step ratio.
"""

from __future__ import annotations

import torch

from sobolev.image_losses import loss_from_name
from sobolev.memory import peak_memory_bytes
from sobolev.models.conv import ConvAutoencoder

from .timing import interleaved_times

LOSSES = ("L2", "H1", "H1-fd", "H1-paper", "H1-paper-l1")


def _cases(size: int, batch: int):
    torch.manual_seed(0)
    model = ConvAutoencoder(1, size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    clean = torch.rand(batch, 1, size, size)
    noisy = clean + 0.3 * torch.randn_like(clean)
    out = model(noisy).detach().requires_grad_(True)
    steps, alone = {}, {}
    for name in LOSSES:
        loss_fn = loss_from_name(name)

        def step(loss_fn=loss_fn) -> None:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(noisy), clean).backward()
            opt.step()

        def loss_only(loss_fn=loss_fn) -> None:
            torch.autograd.grad(loss_fn(out, clean), out)

        steps[name], alone[name] = step, loss_only
    return steps, alone


def run(quick: bool = False) -> dict:
    repeats = 5 if quick else 15
    rows = []
    for size in (16,) if quick else (16, 28):
        batch = 128
        steps, alone = _cases(size, batch)
        t_step = interleaved_times(steps, repeats=repeats, warmup=2)
        t_loss = interleaved_times(alone, repeats=repeats, warmup=2)
        mem = {k: peak_memory_bytes(fn) for k, fn in steps.items()}
        for name in LOSSES:
            rows.append(
                {
                    "image": f"{size}x{size}",
                    "batch": batch,
                    "loss": name,
                    "step_ms": 1e3 * t_step[name],
                    "step_ratio_to_L2": t_step[name] / t_step["L2"],
                    "loss_fwd_bwd_ms": 1e3 * t_loss[name],
                    "loss_share_of_L2_step": t_loss[name] / t_step["L2"],
                    "peak_step_MB": mem[name] / 2**20,
                    "memory_ratio_to_L2": mem[name] / mem["L2"],
                }
            )
    notes = (
        "Training step = zero_grad, autoencoder forward, loss, backward, Adam step; medians of "
        "interleaved repeats (ratios measured in the same process). loss_fwd_bwd_ms is the loss "
        "and its gradient alone on a fixed output; loss_share_of_L2_step puts it against the whole "
        "L2 step, which bounds the overhead the loss can add. Peak memory: CUDA allocator on GPU, "
        "torch-profiler tensor memory on CPU (sobolev.memory.peak_memory_bytes)."
    )
    return {"title": "Image Sobolev losses vs L2 (conv autoencoder)", "rows": rows, "notes": notes}
