"""Cost of one DDPM training step (``pred_x0``, the official setting) at the paper's CelebA-HQ
size, 128×128 RGB, with L2, the official H1 loss (``H1-paper-l1``) and our H1: CPU seconds per
step (process time, so that other jobs on a shared machine inflate it little) and peak memory,
with the per-epoch cost for 30,000 images at the official batch of 48 extrapolated from it.

The UNet is ``sobolev.models.unet.UNet`` with base width 16 and widths ×(1, 2, 4) (the
experiment's CPU size; the official ``denoising_diffusion_pytorch`` UNet has base 64, two blocks
per level and attention, roughly 16× the convolution work). ``--quick``: 32×32.
"""

from __future__ import annotations

import statistics
import time

import torch

from sobolev.diffusion import DDPMSchedule, diffusion_objective
from sobolev.image_losses import loss_from_name
from sobolev.models.unet import UNet

from .timing import peak_memory_bytes

LOSSES = ("L2", "H1-paper-l1", "H1")
BATCH = 8
EPOCH_IMAGES, OFFICIAL_BATCH = 30_000, 48


def _steps(size: int) -> dict[str, tuple]:
    """Per loss: (training step, forward + backward) closures on one seeded batch and model."""
    schedule = DDPMSchedule(1000)
    x0 = torch.rand(BATCH, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = {}
    for name in LOSSES:
        torch.manual_seed(0)
        model = UNet(3, 16, (1, 2, 4))
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        objective = diffusion_objective(schedule, loss_from_name(name), "pred_x0")

        def forward_backward(model=model, objective=objective) -> None:
            model.zero_grad(set_to_none=True)
            objective(model, (x0,))[0].backward()

        def step(forward_backward=forward_backward, opt=opt) -> None:
            forward_backward()
            opt.step()

        out[name] = (step, forward_backward)
    return out


def run(quick: bool = False) -> dict:
    size = 32 if quick else 128
    steps = _steps(size)
    times: dict[str, list[float]] = {name: [] for name in LOSSES}
    for r in range(3 if quick else 4):  # interleaved; the first round is warm-up
        for name, (step, _) in steps.items():
            t0 = time.process_time()
            step()
            if r:
                times[name].append(time.process_time() - t0)
    cpu = {name: statistics.median(t) for name, t in times.items()}
    mem = {name: peak_memory_bytes(fb) / 2**20 for name, (_, fb) in steps.items()}
    rows = []
    for name in LOSSES:
        per_image = cpu[name] / BATCH
        rows.append(
            {
                "image": f"3x{size}x{size}",
                "batch": BATCH,
                "loss": name,
                "cpu_s_per_step": cpu[name],
                "ratio_to_L2": cpu[name] / cpu["L2"],
                "peak_step_MB": mem[name],
                "memory_ratio_to_L2": mem[name] / mem["L2"],
                "cpu_s_per_official_step": per_image * OFFICIAL_BATCH,
                "cpu_h_per_30k_epoch": per_image * EPOCH_IMAGES / 3600,
            }
        )
    notes = (
        f"One training step (forward, loss, backward, Adam) on a batch of {BATCH}, one torch "
        "thread, median CPU process time of interleaved repeats after one warm-up round; per "
        "official step (batch 48) and per epoch of 30,000 images scale it linearly in the batch. "
        "Peak memory: torch-profiler tensor memory of forward + loss + backward."
    )
    return {
        "title": "DDPM training step at CelebA-HQ size (128x128 RGB, UNet base 16)",
        "rows": rows,
        "notes": notes,
    }
