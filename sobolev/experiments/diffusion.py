"""Diffusion model trained with L2 vs a Sobolev loss (arXiv 2509.19773, §4 "diffusion"): a small
DDPM (compact UNet, 1000 steps, ``pred_x0`` as in the paper's code, and ``pred_noise``), the loss
applied to ``model_out − target``; sample quality over epochs as the Fréchet distance (FD) in the
feature space of a small classifier trained on the same data — not Inception FID — with 20-step
DDIM sampling from the same initial noise for every run; time and peak memory per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data.images import load_images
from ..diffusion import DDPMSchedule, ddim_sample, diffusion_objective
from ..fid import FrechetEvaluator, train_classifier
from ..image_losses import loss_from_name
from ..memory import training_step_peak
from ..models.unet import UNet
from ..report import markdown_table, plot_curves, save, subplots
from ..training import TrainConfig, fit, resolve_device, seed_everything

FD_LABEL = "FD in classifier feature space, not Inception FID"


@dataclass
class Config:
    image_dir: str = ""  # empty: scikit-learn's bundled digits; else a folder of PNG/JPEG images (sub-folders = classes)
    size: int = 16
    channels: int = 1
    n_test: int = 297
    objectives: tuple[str, ...] = ("pred_x0", "pred_noise")
    losses: tuple[str, ...] = ("L2", "H1")
    timesteps: int = 1000
    schedule: str = "linear"
    sample_steps: int = 20
    base: int = 16
    mults: tuple[int, ...] = (1, 2)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    eval_every: int = 5  # epochs between FD evaluations
    n_fd_samples: int = 300
    classifier_steps: int = 600
    n_show: int = 16
    seed: int = 0
    device: str = "auto"

    @classmethod
    def quick(cls) -> "Config":
        return cls(objectives=("pred_x0",), epochs=4, eval_every=2, n_fd_samples=128, classifier_steps=100)


def run(cfg: Config, out: Path) -> dict:
    data = load_images(cfg.image_dir, cfg.size, cfg.channels)
    train, test = data.split(cfg.n_test, cfg.seed)
    steps_per_epoch = train.batches_per_epoch(cfg.batch_size)
    if len(data.classes) < 2:
        raise ValueError("the FD feature classifier needs labelled images: put the images of each class in its own sub-folder")
    device = resolve_device(cfg.device)
    classifier = train_classifier(train.images, train.labels, len(data.classes), steps=cfg.classifier_steps,
                                  seed=cfg.seed, out_dir=out / "classifier", device=cfg.device)
    with torch.no_grad():
        accuracy = float((classifier(test.images).argmax(1) == test.labels).float().mean())
    fd_of = FrechetEvaluator(classifier, train.images)
    fd_test = fd_of(test.images)  # reference level: held-out real images against the training set
    schedule = DDPMSchedule(cfg.timesteps, cfg.schedule)
    x0 = train.images * 2 - 1
    shape = (cfg.n_fd_samples, data.images.shape[1], cfg.size, cfg.size)
    results: dict = {}
    histories: dict = {}
    grids: dict = {}
    for objective_name in cfg.objectives:
        results[objective_name], histories[objective_name], grids[objective_name] = {}, {}, {}
        for loss_name in cfg.losses:
            snapshots: list[Tensor] = []

            def evaluate(model: nn.Module) -> dict[str, float]:
                samples = ddim_sample(model, schedule, shape, steps=cfg.sample_steps, objective=objective_name,
                                      generator=torch.Generator().manual_seed(cfg.seed + 2))
                images = ((samples + 1) / 2).clamp(0, 1).cpu()
                snapshots.append(images[: cfg.n_show])
                return {"fd": fd_of(images)}

            seed_everything(cfg.seed)  # same initial network for every run
            model = UNet(data.images.shape[1], cfg.base, cfg.mults)
            objective = diffusion_objective(schedule, loss_from_name(loss_name), objective_name)
            tc = TrainConfig(steps=cfg.epochs * steps_per_epoch, lr=cfg.lr, batch_size=cfg.batch_size,
                             log_every=cfg.eval_every * steps_per_epoch, checkpoint_every=cfg.eval_every * steps_per_epoch,
                             seed=cfg.seed, device=cfg.device)
            hist = fit(model, objective, (x0,), tc, out_dir=out / objective_name / loss_name, evaluate=evaluate,
                       desc=f"DDPM {objective_name} {loss_name}")
            batch = (x0[: cfg.batch_size].to(next(model.parameters())),)
            epochs, fds = hist.series("fd")
            results[objective_name][loss_name] = {
                "fd_by_epoch": {str(s // steps_per_epoch): v for s, v in zip(epochs, fds)},
                "final_fd": fds[-1], "best_fd": min(fds),
                "time_per_epoch_s": hist.records[-1]["time"] / cfg.epochs,
                "peak_step_memory_mb": training_step_peak(model, objective, batch) / 2**20,
            }
            histories[objective_name][loss_name] = hist
            grids[objective_name][loss_name] = (epochs, snapshots)  # on resume, only the evaluations run here
        base = results[objective_name][cfg.losses[0]]
        for r in results[objective_name].values():
            r["time_ratio"] = r["time_per_epoch_s"] / base["time_per_epoch_s"]
            r["memory_ratio"] = r["peak_step_memory_mb"] / max(base["peak_step_memory_mb"], 1e-12)
    device_note = "CUDA allocator peak" if device.type == "cuda" else "torch-profiler peak of live tensor memory"
    (out / "table.md").write_text(_tables(cfg, results, steps_per_epoch, fd_test, accuracy, device_note, data.source))
    figures = [_fd_curves(cfg, histories, steps_per_epoch, fd_test, out), *_sample_grids(cfg, grids, steps_per_epoch, out)]
    return {"results": results, "fd_label": FD_LABEL, "fd_test_vs_train": fd_test, "classifier_test_accuracy": accuracy,
            "data": data.source, "n_train": len(train), "memory_method": f"{device_note} of one training step",
            "figures": figures}


def _tables(cfg: Config, results: dict, steps_per_epoch: int, fd_test: float, accuracy: float, mem: str, source: str) -> str:
    parts = []
    for obj, res in results.items():
        epochs = list(next(iter(res.values()))["fd_by_epoch"])
        parts.append(f"### DDPM ({obj}): {FD_LABEL}, {cfg.n_fd_samples} samples, {cfg.sample_steps} DDIM steps\n\n"
                     + markdown_table(["epoch", *res], [[e, *(res[l]["fd_by_epoch"].get(e) for l in res)] for e in epochs]))
        parts.append(f"### DDPM ({obj}): cost per epoch\n\n" + markdown_table(
            ["loss", "time/epoch (s)", f"× {cfg.losses[0]}", "peak step memory (MB)", f"× {cfg.losses[0]}"],
            [[l, r["time_per_epoch_s"], r["time_ratio"], r["peak_step_memory_mb"], r["memory_ratio"]] for l, r in res.items()]))
    parts.append(f"Data: {source}. Feature classifier test accuracy {accuracy:.3f}; FD of the held-out real images to "
                 f"the training set: {fd_test:.4g} (the floor a perfect model could reach with this many samples "
                 f"is of that order). Memory: {mem} of one training step (forward, loss, backward).\n")
    return "\n".join(parts)


def _fd_curves(cfg: Config, histories: dict, steps_per_epoch: int, fd_test: float, out: Path) -> str:
    fig, axes = subplots(1, len(cfg.objectives))
    for c, obj in enumerate(cfg.objectives):
        curves = {}
        for loss_name, hist in histories[obj].items():
            steps, fds = hist.series("fd")
            curves[loss_name] = ([s / steps_per_epoch for s in steps], fds)
        ax = axes[0, c]
        plot_curves(ax, curves, xlabel="epoch", ylabel="FD (classifier features)", title=f"DDPM {obj}")
        ax.axhline(fd_test, color="gray", ls=":", label="real test vs train")
        ax.legend(fontsize=8)
    return save(fig, out / "fd_curves.png")


def _sample_grids(cfg: Config, grids: dict, steps_per_epoch: int, out: Path) -> list[str]:
    names = []
    for obj, by_loss in grids.items():
        fig, axes = subplots(max(len(s) for _, s in by_loss.values()), len(by_loss), size=(0.6 * cfg.n_show, 0.9))
        for c, (loss_name, (steps, snaps)) in enumerate(by_loss.items()):
            for r, imgs in enumerate(snaps):
                ax = axes[r, c]
                strip = torch.cat(list(imgs), dim=-1).permute(1, 2, 0).squeeze(-1).numpy()
                ax.imshow(strip, cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([]), ax.set_yticks([])
                epoch = steps[len(steps) - len(snaps) + r] // steps_per_epoch
                ax.set_ylabel(f"epoch {epoch}", fontsize=7)
                if r == 0:
                    ax.set_title(f"{obj}, {loss_name}", fontsize=9)
        names.append(save(fig, out / f"samples_{obj}.png"))
    return names
