"""Denoising autoencoder (arXiv 2509.19773, §4 "denoising autoencoder"): L2 vs H^s losses between
the reconstruction of a corrupted image and the clean image.

Two settings. ``Config()`` ("ours"): a small conv autoencoder (sigmoid output), the fixed
sinusoid ``0.3·sin(2π(x + y))`` on the periodic grid and additive Gaussian noise (fresh each step),
our symmetric H^s losses, the finite-difference H1 and the official H1. ``Config.paper()``: the
official code (``Denoising Autoencoder/``): its model (z = 32), Adam 5e-3, batch 128, 20 epochs,
the sinusoid on ``linspace(0, 1, W)``, L2 vs the official H1 loss (``method="paper"`` of
:func:`sobolev.image_sobolev_loss`) vs our H^s, s ∈ {0.5, 1, 2}; the official test also feeds an
unseen 10π sinusoid. Fashion-MNIST 28×28 by default (MNIST in the paper, same format).

Every loss starts from the same initial network and sees the same batches within a seed
(paired seeds). Test MSE, PSNR and SSIM against the clean test images are logged every epoch
(for the training corruption and, for the sinusoid, the unseen frequency); time per epoch comes
from the training records (training steps only) and peak memory from one training step
(:func:`sobolev.memory.training_step_peak`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from sobolev.data.images import CORRUPTIONS, GRIDS, DataSplit, corrupt, load_data
from sobolev.image_losses import LOSS_NAMES as IMAGE_LOSS_NAMES
from sobolev.image_losses import ImageSobolevLoss, loss_from_name
from sobolev.image_metrics import image_errors
from sobolev.memory import training_step_peak
from sobolev.models.conv import ConvAutoencoder, PaperAutoencoder
from sobolev.training import fit, resolve_device

from ..report import (
    cost_table,
    json_safe,
    markdown_table,
    plot_curves,
    save,
    seed_band,
    spread_cell,
    subplots,
    wins_cell,
)
from ..seeds import over_seeds, paired_runs, paired_wins
from .seeded import train_config

EXTRA_COLORS = [
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
]
#: the names ``--set losses=…`` accepts (checked by :mod:`sobolev_lab.experiments.checks`)
LOSS_NAMES = IMAGE_LOSS_NAMES
MODELS = ("ours", "paper")
METRICS = ("mse", "psnr", "ssim")


@dataclass
class Config:
    data: str = "fashion-mnist"  # "fashion-mnist", "digits", or a folder of IDX or PNG/JPEG files
    image_size: int | None = None  # None: the data's own size; N: resize to N×N
    channels: int = 1
    n_train: int | None = 12000  # a fixed random subset that fits a CPU (None: all 60,000)
    n_test: int | None = 1000  # test images evaluated each epoch (None: all)
    model: str = "ours"  # "ours": ConvAutoencoder; "paper": the official autoencoder
    corruptions: tuple[str, ...] = ("sinusoid", "gaussian")
    sinusoid_amplitude: float = 0.3
    noise_frequency: float = 2.0  # the training sinusoid's frequency in units of π (official: 2)
    ood_frequency: float = (
        10.0  # an unseen sinusoid at test time, units of π (official test: 10); 0: none
    )
    grid: str = "periodic"  # sinusoid grid: "periodic" (j/W) or "linspace" (j/(W−1), official)
    noise_sigma: float = 0.3
    losses: tuple[str, ...] = ("L2", "H1", "H0.5", "H2", "H1-fd", "H1-paper")
    z_dim: int = 32
    width: int = 32  # ConvAutoencoder only
    epochs: int = 10
    batch_size: int = 128
    lr: float = 5e-3
    seeds: int = 3
    n_show: int = 8
    device: str = "auto"

    @classmethod
    def quick(cls) -> Config:
        return cls(
            data="digits",
            n_train=None,
            n_test=None,
            losses=("L2", "H1"),
            width=16,
            epochs=6,
            seeds=2,
        )

    @classmethod
    def paper(cls, quick: bool = False) -> Config:
        """The official settings; ``quick``: the same on 128 digits upsampled to 28×28, 2 epochs,
        2 seeds."""
        cfg = cls(
            model="paper",
            n_train=None,
            n_test=None,
            corruptions=("sinusoid",),
            grid="linspace",
            losses=("L2", "H1-paper", "H0.5", "H1", "H2"),
            epochs=20,
            seeds=3,
        )
        return (
            replace(cfg, data="digits", image_size=28, n_train=128, n_test=64, epochs=2, seeds=2)
            if quick
            else cfg
        )


def validate(cfg: Config) -> None:
    """Checks beyond the shared ones (:mod:`sobolev_lab.experiments.checks`), before anything
    runs."""
    if cfg.model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {cfg.model!r}")
    for kind in cfg.corruptions:
        if kind not in CORRUPTIONS:
            raise ValueError(f"corruptions must be among {CORRUPTIONS}, got {kind!r}")
    if cfg.grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {cfg.grid!r}")
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {cfg.batch_size!r}")
    steps_per_epoch = _load(cfg).train.batches_per_epoch(cfg.batch_size)
    train_config(
        cfg,
        seed=0,
        steps=cfg.epochs * steps_per_epoch,
        log_every=steps_per_epoch,
        checkpoint_every=5 * steps_per_epoch,
    )


def _load(cfg: Config) -> DataSplit:
    """The config's train and test images."""
    return load_data(
        cfg.data,
        image_size=cfg.image_size,
        channels=cfg.channels,
        n_train=cfg.n_train,
        n_test=cfg.n_test,
    )


def _make_model(cfg: Config, channels: int, size: int) -> nn.Module:
    if cfg.model == "paper":
        return PaperAutoencoder(channels, size, cfg.z_dim)
    return ConvAutoencoder(channels, size, cfg.width, cfg.z_dim)


def _corrupter(cfg: Config, kind: str, frequency_pi: float | None = None):
    """images -> corrupted images for ``kind`` (the sinusoid at ``frequency_pi``·π, default the
    training frequency; Gaussian noise from the generator passed)."""
    level = cfg.sinusoid_amplitude if kind == "sinusoid" else cfg.noise_sigma
    freq = math.pi * (cfg.noise_frequency if frequency_pi is None else frequency_pi)
    return lambda images, generator=None: corrupt(
        images, kind, level, generator, frequency=freq, grid=cfg.grid
    )


def _objective(loss_fn: ImageSobolevLoss, corrupter):
    """Reconstruct the clean batch (x,) from its corruption (Gaussian noise from torch's global
    RNG)."""

    def objective(model: nn.Module, batch: tuple[Tensor, ...]):
        clean = batch[0]
        return loss_fn(model(corrupter(clean)), clean, return_terms=True)

    return objective


def _to_model(model: nn.Module, t: Tensor) -> Tensor:
    return t.to(next(model.parameters()))


def _test_sets(cfg: Config, kind: str, clean: Tensor) -> dict[str, Tensor]:
    """Corrupted test images: ``"test"`` (the training corruption, fixed Gaussian draw) and, for
    the sinusoid with ``ood_frequency`` > 0, ``"ood"`` (the unseen frequency)."""
    g = torch.Generator().manual_seed(12345)
    sets = {"test": _corrupter(cfg, kind)(clean, g)}
    if kind == "sinusoid" and cfg.ood_frequency > 0:
        sets["ood"] = _corrupter(cfg, kind, cfg.ood_frequency)(clean)
    return sets


def _compare(cfg: Config, kind: str, train, test, out: Path) -> tuple[dict, dict, dict]:
    """Every loss on corruption ``kind`` over paired seeds: per loss the final test errors over
    seeds (:func:`sobolev_lab.seeds.over_seeds`) and the test curves (median and band over seeds),
    and the reconstructions of the first ``n_show`` test images by each loss's first seed."""
    channels, size = train.images.shape[1], train.images.shape[-1]
    steps_per_epoch = train.batches_per_epoch(cfg.batch_size)
    noisy = _test_sets(cfg, kind, test.images)

    def evaluate(model: nn.Module) -> dict[str, float]:
        clean = _to_model(model, test.images)
        with torch.no_grad():
            recs = {name: model(_to_model(model, x)) for name, x in noisy.items()}
        return {
            f"{name}_{k}": v
            for name, rec in recs.items()
            for k, v in image_errors(rec, clean).items()
        }

    shown = {f"noisy {n}": x[: cfg.n_show] for n, x in noisy.items()} | {
        "clean": test.images[: cfg.n_show]
    }
    loss_fns = {name: loss_from_name(name) for name in cfg.losses}

    def train_one(name: str, seed: int, _: None) -> tuple[dict, list]:
        model = _make_model(cfg, channels, size)
        objective = _objective(loss_fns[name], _corrupter(cfg, kind))
        tc = train_config(
            cfg,
            seed=seed,
            steps=cfg.epochs * steps_per_epoch,
            log_every=steps_per_epoch,
            checkpoint_every=5 * steps_per_epoch,
        )
        hist = fit(
            model,
            objective,
            (train.images,),
            tc,
            out_dir=out / kind / name / f"seed{seed}",
            evaluate=evaluate,
            desc=f"DAE {kind} {name} seed {seed}",
        )
        final = hist.records[-1]
        batch = (_to_model(model, train.images[: cfg.batch_size]),)
        per_seed = {
            **{k: final[k] for k in final if k.startswith(("test_", "ood_"))},
            "time_per_epoch_s": final["time"] / cfg.epochs,
            "peak_step_memory_mb": training_step_peak(model, objective, batch) / 2**20,
        }
        records = [
            {**r, "epoch": r["step"] / steps_per_epoch} for r in hist.records if "test_mse" in r
        ]
        if seed == 0:
            with torch.no_grad():
                shown[name] = {
                    n: model(_to_model(model, x[: cfg.n_show])).cpu() for n, x in noisy.items()
                }
        return per_seed, records

    runs = paired_runs(cfg.losses, range(cfg.seeds), train_one)
    results, curves = {}, {}
    for name, per in runs.items():
        records = [recs for _, recs in per]
        results[name] = over_seeds([p for p, _ in per])
        curves[name] = {
            key: seed_band(records, key, x="epoch")
            for key in records[0][0]
            if key.startswith(("test_", "ood_"))
        }
    return results, curves, shown


def run(cfg: Config, out: Path) -> dict:
    data = _load(cfg)
    train, test = data.train, data.test
    device = resolve_device(cfg.device)
    results: dict = {}
    curves: dict = {}
    shown: dict = {}
    for kind in cfg.corruptions:
        results[kind], curves[kind], shown[kind] = _compare(cfg, kind, train, test, out)
    memory_note = (
        "CUDA allocator peak"
        if device.type == "cuda"
        else "torch-profiler peak of live tensor memory"
    ) + " of one training step (forward, loss, backward)"
    figures = [_reconstructions(cfg, shown, out), _curves(cfg, curves, out)]
    return json_safe(
        {
            "results": results,
            "curves": curves,
            "data": data.info(),
            "memory_method": memory_note,
            "figures": figures,
        }
    )


def tables(summary: dict) -> str:
    """Markdown tables of a run from its summary alone: final test errors (median [min, max] over
    seeds), wins against the first loss in paired seeds, and cost per epoch."""
    cfg = summary["config"]
    data = summary["data"]
    seeds, base = cfg["seeds"], cfg["losses"][0]
    setting = summary.get("setting", "ours")
    head = (
        f"setting: {setting}; data: {data['name']} {'×'.join(map(str, data['shape']))}, n_train = "
        f"{data['n_train']}, "
        f"n_test = {data['n_test']}; model: {cfg['model']}; {cfg['epochs']} epochs, batch "
        f"{cfg['batch_size']}, "
        f"Adam lr {cfg['lr']:g}; {seeds} seed(s), median [min, max]"
    )
    parts = []
    for kind, res in summary["results"].items():
        sets = [
            (
                "test",
                f"{kind} {cfg['noise_frequency']:g}π"
                if kind == "sinusoid"
                else f"{kind} σ = {cfg['noise_sigma']:g}",
            )
        ]
        if any("ood_mse" in r for r in res.values()):
            sets.append(("ood", f"unseen sinusoid {cfg['ood_frequency']:g}π"))
        for prefix, label in sets:
            rows = []
            for name, r in res.items():
                wins = (
                    "–" if name == base else wins_cell(paired_wins(r, res[base], f"{prefix}_mse"))
                )
                rows.append(
                    [
                        name,
                        spread_cell(r, f"{prefix}_mse", 4),
                        spread_cell(r, f"{prefix}_psnr", 4),
                        spread_cell(r, f"{prefix}_ssim", 4),
                        wins,
                    ]
                )
            parts.append(
                f"### Denoising autoencoder, test on {label}, after {cfg['epochs']} "
                f"epochs\n\n{head}\n\n"
                + markdown_table(
                    ["loss", "test MSE", "PSNR (dB)", "SSIM", f"seeds with lower MSE than {base}"],
                    rows,
                )
            )
        parts.append(
            f"### Denoising autoencoder, {kind}: cost per epoch\n\n{head}. Time: wall time of the "
            "training "
            "steps (on a shared machine it varies with the load; `benchmarks/bench_image.py` "
            "measures step "
            f"ratios). Memory: {summary['memory_method']}.\n\n" + cost_table(res, base)
        )
    return "\n".join(parts) + "\n"


def _strip(imgs: Tensor):
    return torch.cat(list(imgs.clamp(0, 1)), dim=-1).permute(1, 2, 0).squeeze(-1).numpy()


def _reconstructions(cfg: Config, shown: dict, out: Path) -> str:
    columns = [(kind, n) for kind in cfg.corruptions for n in shown[kind] if n.startswith("noisy ")]
    rows = ["noisy", *cfg.losses, "clean"]
    fig, axes = subplots(len(rows), len(columns), size=(0.9 * cfg.n_show, 1.0))
    for c, (kind, noisy_name) in enumerate(columns):
        which = noisy_name.removeprefix("noisy ")
        for r, label in enumerate(rows):
            imgs = (
                shown[kind][noisy_name]
                if label == "noisy"
                else shown[kind]["clean"]
                if label == "clean"
                else shown[kind][label][which]
            )
            ax = axes[r, c]
            ax.imshow(_strip(imgs), cmap="gray" if imgs.shape[1] == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_ylabel(label, fontsize=8)
            if r == 0:
                ax.set_title(
                    f"{kind} ({'unseen frequency' if which == 'ood' else 'training corruption'})",
                    fontsize=9,
                )
    return save(fig, out / "reconstructions.png")


def _curves(cfg: Config, curves: dict, out: Path) -> str:
    panels = [
        (kind, prefix)
        for kind in cfg.corruptions
        for prefix in ("test", "ood")
        if f"{prefix}_mse" in next(iter(curves[kind].values()))
    ]
    keys = (("psnr", "PSNR (dB)", False), ("ssim", "SSIM", False), ("mse", "MSE", True))
    fig, axes = subplots(len(keys), len(panels))
    for c, (kind, prefix) in enumerate(panels):
        test_name = f"unseen {cfg.ood_frequency:g}π" if prefix == "ood" else "training"
        for r, (key, label, logy) in enumerate(keys):
            ax = axes[r, c]
            ax.set_prop_cycle(color=EXTRA_COLORS)  # for losses without a colour in LOSS_COLORS
            bands = {name: b[f"{prefix}_{key}"] for name, b in curves[kind].items()}
            plot_curves(
                ax,
                {n: (b["x"], b["median"]) for n, b in bands.items()},
                xlabel="epoch",
                ylabel=f"test {label}",
                title=f"{kind}, {test_name} noise (median of {cfg.seeds})",
                logy=logy,
            )
            for line, b in zip(ax.get_lines(), bands.values()):
                ax.fill_between(b["x"], b["lo"], b["hi"], color=line.get_color(), alpha=0.15, lw=0)
    return save(fig, out / "curves.png")
