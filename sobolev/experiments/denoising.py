"""Denoising autoencoder on real images (arXiv 2509.19773, §4 "denoising autoencoder"): L2 vs H^s
losses between the reconstruction of a corrupted image and the clean image.

Same autoencoder, initialisation, data order and budget for every loss. Corruptions: the paper's
fixed sinusoid ``0.3·sin(2π(x + y))`` and additive Gaussian noise (fresh each step). Test MSE,
PSNR and SSIM against the clean test images are logged every epoch; time per epoch comes from the
training records and peak memory from one training step (:func:`sobolev.memory.training_step_peak`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data.images import corrupt, load_images
from ..image_losses import ImageSobolevLoss, loss_from_name
from ..image_metrics import image_errors
from ..memory import training_step_peak
from ..models.conv import ConvAutoencoder
from ..report import markdown_table, plot_curves, save, subplots
from ..training import TrainConfig, fit, resolve_device, seed_everything

EXTRA_COLORS = ["tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan"]


@dataclass
class Config:
    image_dir: str = ""  # empty: scikit-learn's bundled digits; else a folder of PNG/JPEG images
    size: int = 16
    channels: int = 1
    n_test: int = 297
    corruptions: tuple[str, ...] = ("sinusoid", "gaussian")
    sinusoid_amplitude: float = 0.3
    noise_sigma: float = 0.3
    losses: tuple[str, ...] = ("L2", "H1", "H0.5", "H2", "H1-fd", "H1-paper")
    z_dim: int = 32
    width: int = 32
    epochs: int = 30
    batch_size: int = 128
    lr: float = 5e-3
    n_show: int = 8
    seed: int = 0
    device: str = "auto"

    @classmethod
    def quick(cls) -> "Config":
        return cls(losses=("L2", "H1"), width=16, epochs=10)


def _objective(loss_fn: ImageSobolevLoss, kind: str, level: float):
    """Reconstruct the clean batch (x,) from its corruption (Gaussian noise from torch's global RNG)."""
    def objective(model: nn.Module, batch: tuple[Tensor, ...]):
        clean = batch[0]
        return loss_fn(model(corrupt(clean, kind, level)), clean, return_terms=True)
    return objective


def _to_model(model: nn.Module, t: Tensor) -> Tensor:
    return t.to(next(model.parameters()))


def run(cfg: Config, out: Path) -> dict:
    data = load_images(cfg.image_dir, cfg.size, cfg.channels)
    train, test = data.split(cfg.n_test, cfg.seed)
    steps_per_epoch = train.batches_per_epoch(cfg.batch_size)
    levels = {"sinusoid": cfg.sinusoid_amplitude, "gaussian": cfg.noise_sigma}
    loss_fns = {name: loss_from_name(name) for name in cfg.losses}
    device = resolve_device(cfg.device)
    results: dict = {}
    histories: dict = {}
    shown: dict = {}
    tables = []
    for kind in cfg.corruptions:
        noisy_test = corrupt(test.images, kind, levels[kind], torch.Generator().manual_seed(cfg.seed + 1))

        def evaluate(model: nn.Module) -> dict[str, float]:
            with torch.no_grad():
                rec = model(_to_model(model, noisy_test))
            return {f"test_{k}": v for k, v in image_errors(rec, _to_model(model, test.images)).items()}

        results[kind], histories[kind] = {}, {}
        shown[kind] = {"noisy": noisy_test[: cfg.n_show], "clean": test.images[: cfg.n_show]}
        for name, loss_fn in loss_fns.items():
            seed_everything(cfg.seed)  # same initial network for every loss
            model = ConvAutoencoder(data.images.shape[1], cfg.size, cfg.width, cfg.z_dim)
            objective = _objective(loss_fn, kind, levels[kind])
            tc = TrainConfig(steps=cfg.epochs * steps_per_epoch, lr=cfg.lr, batch_size=cfg.batch_size,
                             log_every=steps_per_epoch, checkpoint_every=10 * steps_per_epoch, seed=cfg.seed,
                             device=cfg.device)
            hist = fit(model, objective, (train.images,), tc, out_dir=out / kind / name, evaluate=evaluate,
                       desc=f"DAE {kind} {name}")
            batch = (_to_model(model, train.images[: cfg.batch_size]),)
            final = hist.records[-1]
            results[kind][name] = {
                "test_mse": final["test_mse"], "test_psnr": final["test_psnr"], "test_ssim": final["test_ssim"],
                "time_per_epoch_s": final["time"] / cfg.epochs,
                "peak_step_memory_mb": training_step_peak(model, objective, batch) / 2**20,
            }
            histories[kind][name] = hist
            with torch.no_grad():
                shown[kind][name] = model(_to_model(model, shown[kind]["noisy"])).cpu()
        base = results[kind][cfg.losses[0]]
        for r in results[kind].values():
            r["time_ratio"] = r["time_per_epoch_s"] / base["time_per_epoch_s"]
            r["memory_ratio"] = r["peak_step_memory_mb"] / max(base["peak_step_memory_mb"], 1e-12)
        tables.append(f"### Denoising autoencoder, {kind} corruption: test set after {cfg.epochs} epochs\n\n" + markdown_table(
            ["loss", "test MSE", "PSNR (dB)", "SSIM", "time/epoch (s)", f"× {cfg.losses[0]}", "peak step memory (MB)", f"× {cfg.losses[0]}"],
            [[n, r["test_mse"], r["test_psnr"], r["test_ssim"], r["time_per_epoch_s"], r["time_ratio"],
              r["peak_step_memory_mb"], r["memory_ratio"]] for n, r in results[kind].items()]))
    memory_note = ("CUDA allocator peak" if device.type == "cuda" else
                   "torch-profiler peak of live tensor memory") + " of one training step (forward, loss, backward)"
    tables.append(f"Data: {data.source}, {len(train)} train / {len(test)} test images at {cfg.size}×{cfg.size}. "
                  f"Memory: {memory_note}.\n")
    (out / "table.md").write_text("\n".join(tables))
    figures = [_reconstructions(cfg, shown, out), _curves(cfg, histories, steps_per_epoch, out)]
    return {"results": results, "data": data.source, "n_train": len(train), "n_test": len(test),
            "memory_method": memory_note, "figures": figures}


def _reconstructions(cfg: Config, shown: dict, out: Path) -> str:
    rows = ["noisy", *cfg.losses, "clean"]
    fig, axes = subplots(len(rows), len(cfg.corruptions), size=(0.9 * cfg.n_show, 1.0))
    for c, kind in enumerate(cfg.corruptions):
        for r, label in enumerate(rows):
            imgs = shown[kind][label].clamp(0, 1)
            strip = torch.cat(list(imgs), dim=-1).permute(1, 2, 0).squeeze(-1).numpy()
            ax = axes[r, c]
            ax.imshow(strip, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_ylabel(label, fontsize=8)
            if r == 0:
                ax.set_title(f"{kind} corruption", fontsize=9)
    return save(fig, out / "reconstructions.png")


def _curves(cfg: Config, histories: dict, steps_per_epoch: int, out: Path) -> str:
    keys = (("test_psnr", "test PSNR (dB)", False), ("test_ssim", "test SSIM", False), ("test_mse", "test MSE", True))
    fig, axes = subplots(len(keys), len(cfg.corruptions))
    for c, kind in enumerate(cfg.corruptions):
        for r, (key, label, logy) in enumerate(keys):
            curves = {}
            for name, hist in histories[kind].items():
                steps, vals = hist.series(key)
                curves[name] = ([s / steps_per_epoch for s in steps], vals)
            axes[r, c].set_prop_cycle(color=EXTRA_COLORS)  # for losses without a colour in LOSS_COLORS
            plot_curves(axes[r, c], curves, xlabel="epoch", ylabel=label, title=f"{kind} corruption", logy=logy)
    return save(fig, out / "curves.png")
