"""Diffusion model trained with L2 vs Sobolev losses (arXiv 2509.19773, §4 "diffusion"): a DDPM
(compact UNet, 1000 steps, ``pred_x0`` as in the official code, or ``pred_noise``), the loss
applied to ``model_out − target``.

Sample quality over epochs: the Fréchet distance (FD) and the kernel distance (KD, the formula of
KID, ×10³) in the feature space of a small classifier trained here on the training images (on
their classes; on predicting rotations when the images have no classes) — not Inception
FID/KID — with 20-step DDIM sampling from the same initial noise for every run, and the floor:
the same distances for as many held-out real images. Time and peak memory per epoch per loss.

``Config.paper()``: the official ``DIffusion_Models/`` settings that fit a CPU — ``pred_x0``,
1000 linear-schedule steps, 20 sampling steps, Adam 1e-4, batch 48, UNet widths ×(1, 2, 4) —
with L2 vs the official loss (``H1-paper-l1``: ``mean(dx) + mean(dy)``,
:func:`sobolev.image_sobolev_loss` ``method="paper-l1"``) vs our squared H1, on Fashion-MNIST
28×28 (the paper: CelebA-HQ 128² RGB, base width 64, 100 epochs). The same command runs on a
folder of RGB images (``data=PATH channels=3 image_size=128``) and on a GPU (``device=cuda``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from sobolev.data.images import DataSplit, load_data
from sobolev.diffusion import OBJECTIVES, DDPMSchedule, ddim_sample, diffusion_objective
from sobolev.fid import FeatureDistances, rotation_task, train_classifier
from sobolev.image_losses import LOSS_NAMES as IMAGE_LOSS_NAMES
from sobolev.image_losses import loss_from_name
from sobolev.memory import training_step_peak
from sobolev.models.unet import UNet
from sobolev.training import fit, resolve_device

from ..report import (
    cost_table,
    fmt,
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
from .denoising import EXTRA_COLORS
from .seeded import config_of, train_config

#: the names ``--set losses=…`` accepts (checked by :mod:`sobolev_lab.experiments.checks`)
LOSS_NAMES = IMAGE_LOSS_NAMES
FD_LABEL = "FD and KD (×10³) in the features of a classifier trained here, not Inception FID/KID"


@dataclass
class Config:
    # "fashion-mnist", "digits", or a folder of IDX or PNG/JPEG files (sub-folders = classes)
    data: str = "fashion-mnist"
    image_size: int | None = None  # None: the data's own size; N: resize to N×N
    channels: int = 1
    n_train: int | None = 12000  # a fixed random subset that fits a CPU (None: all)
    n_test: int | None = (
        None  # held-out images for the classifier's accuracy and the real-vs-real floor (None: all)
    )
    objectives: tuple[str, ...] = ("pred_x0", "pred_noise")
    losses: tuple[str, ...] = ("L2", "H1")
    timesteps: int = 1000
    schedule: str = "linear"
    sample_steps: int = 20
    base: int = 16
    mults: tuple[int, ...] = (1, 2, 4)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    eval_every: int = 2  # epochs between sample-quality evaluations
    n_fd_samples: int = 300
    classifier_steps: int = 600
    seeds: int = 2
    n_show: int = 16
    device: str = "auto"

    @classmethod
    def quick(cls) -> Config:
        return cls(
            data="digits",
            n_train=None,
            objectives=("pred_x0",),
            epochs=4,
            eval_every=2,
            n_fd_samples=128,
            classifier_steps=100,
            mults=(1, 2),
            seeds=2,
        )

    @classmethod
    def paper(cls, quick: bool = False) -> Config:
        """The official settings that fit a CPU (see the module doc); ``quick``: 96 digits at 16×16,
        2 epochs, 2 seeds, 32 samples per evaluation."""
        cfg = cls(
            n_train=None,
            objectives=("pred_x0",),
            losses=("L2", "H1-paper-l1", "H1"),
            base=16,
            mults=(1, 2, 4),
            batch_size=48,
            lr=1e-4,
            epochs=100,
            eval_every=1,
            seeds=2,
        )
        if quick:
            return replace(
                cfg,
                data="digits",
                n_train=96,
                epochs=2,
                n_fd_samples=32,
                classifier_steps=30,
                mults=(1, 2),
            )
        return cfg


def validate(cfg: Config) -> None:
    """Checks beyond the shared ones (:mod:`sobolev_lab.experiments.checks`), before anything
    runs."""
    if cfg.n_fd_samples < 2:
        raise ValueError(f"n_fd_samples must be an integer ≥ 2, got {cfg.n_fd_samples!r}")
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {cfg.batch_size!r}")
    for o in cfg.objectives:
        if o not in OBJECTIVES:
            raise ValueError(f"objectives must be among {OBJECTIVES}, got {o!r}")
    if any(m < 1 for m in cfg.mults):
        raise ValueError(f"mults must be positive integers, got {cfg.mults!r}")
    try:
        DDPMSchedule(cfg.timesteps, cfg.schedule)
    except ValueError as e:
        raise ValueError(f"schedule (the noise schedule): {e}") from None
    data = _load(cfg)
    if len(data.test) < 2:
        raise ValueError(
            f"n_test must be ≥ 2 for the real-vs-real floor, got {len(data.test)} test images"
        )
    steps_per_epoch = data.train.batches_per_epoch(cfg.batch_size)
    train_config(
        cfg,
        seed=0,
        schedule="constant",
        steps=cfg.epochs * steps_per_epoch,
        log_every=cfg.eval_every * steps_per_epoch,
        checkpoint_every=cfg.eval_every * steps_per_epoch,
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


def _feature_classifier(train, test, out: Path, cfg: Config):
    """The classifier whose features the distances use, trained with seed 0 on the training
    images' classes (or rotations when there are fewer than 2 classes), and its test accuracy."""
    tasks = []
    for s in (train, test):
        tasks.append((s.images, s.labels) if len(s.classes) >= 2 else rotation_task(s.images))
    task = "classes" if len(train.classes) >= 2 else "rotations"
    n_classes = len(train.classes) if task == "classes" else 4
    clf = train_classifier(
        *tasks[0],
        n_classes,
        steps=cfg.classifier_steps,
        seed=0,
        out_dir=out / "classifier",
        device=cfg.device,
    )
    with torch.no_grad():
        x, y = tasks[1]
        accuracy = float(torch.cat([clf(b).argmax(1) for b in x.split(512)]).eq(y).float().mean())
    return clf, task, accuracy


def _compare(
    cfg: Config,
    objective_name: str,
    schedule: DDPMSchedule,
    x0: Tensor,
    steps_per_epoch: int,
    distances: FeatureDistances,
    out: Path,
) -> tuple[dict, dict, dict]:
    """Every loss with diffusion objective ``objective_name`` over paired seeds: per loss the
    final and best sample distances over seeds (:func:`sobolev_lab.seeds.over_seeds`), their
    curves (median and band over seeds), and the first seed's samples at each evaluation."""
    shape = (cfg.n_fd_samples, *x0.shape[1:])
    objectives = {
        name: diffusion_objective(schedule, loss_from_name(name), objective_name)
        for name in cfg.losses
    }
    grids: dict = {}

    def train(loss_name: str, seed: int, _: None) -> tuple[dict, list]:
        snapshots: list[Tensor] = []

        def evaluate(model: nn.Module) -> dict[str, float]:
            samples = ddim_sample(
                model,
                schedule,
                shape,
                steps=cfg.sample_steps,
                objective=objective_name,
                generator=torch.Generator().manual_seed(1000 + seed),
            )
            images = ((samples + 1) / 2).clamp(0, 1).cpu()
            snapshots.append(images[: cfg.n_show])
            return distances(images)

        model = UNet(x0.shape[1], cfg.base, cfg.mults)
        objective = objectives[loss_name]
        tc = train_config(
            cfg,
            seed=seed,
            schedule="constant",  # cfg.schedule is the noise schedule, not the learning rate's
            steps=cfg.epochs * steps_per_epoch,
            log_every=cfg.eval_every * steps_per_epoch,
            checkpoint_every=cfg.eval_every * steps_per_epoch,
        )
        hist = fit(
            model,
            objective,
            (x0,),
            tc,
            out_dir=out / objective_name / loss_name / f"seed{seed}",
            evaluate=evaluate,
            desc=f"DDPM {objective_name} {loss_name} seed {seed}",
        )
        batch = (x0[: cfg.batch_size].to(next(model.parameters())),)
        evals = [{**r, "epoch": r["step"] / steps_per_epoch} for r in hist.records if "fd" in r]
        per_seed = {
            "final_fd": evals[-1]["fd"],
            "final_kd": evals[-1]["kd"],
            "best_fd": min(r["fd"] for r in evals),
            "best_kd": min(r["kd"] for r in evals),
            "time_per_epoch_s": hist.records[-1]["time"] / cfg.epochs,
            "peak_step_memory_mb": training_step_peak(model, objective, batch) / 2**20,
        }
        if seed == 0:  # on resume, only the evaluations run here
            grids[loss_name] = ([r["epoch"] for r in evals][-len(snapshots) :], snapshots)
        return per_seed, evals

    runs = paired_runs(cfg.losses, range(cfg.seeds), train)
    results, curves = {}, {}
    for name, per in runs.items():
        records = [evals for _, evals in per]
        results[name] = over_seeds([p for p, _ in per])
        curves[name] = {key: seed_band(records, key, x="epoch") for key in ("fd", "kd")}
    return results, curves, grids


def run(cfg: Config, out: Path) -> dict:
    data = _load(cfg)
    train, test = data.train, data.test
    steps_per_epoch = train.batches_per_epoch(cfg.batch_size)
    if len(test) < 2:
        raise ValueError(
            f"n_test must be ≥ 2 for the real-vs-real floor, got {len(test)} test images"
        )
    device = resolve_device(cfg.device)
    classifier, task, accuracy = _feature_classifier(train, test, out, cfg)
    distances = FeatureDistances(classifier, train.images)
    floor = distances(test.images[: cfg.n_fd_samples])  # held-out real images vs the training set
    schedule = DDPMSchedule(cfg.timesteps, cfg.schedule)
    x0 = train.images * 2 - 1
    results: dict = {}
    curves: dict = {}
    grids: dict = {}
    for name in cfg.objectives:
        results[name], curves[name], grids[name] = _compare(
            cfg, name, schedule, x0, steps_per_epoch, distances, out
        )
    memory = (
        "CUDA allocator peak"
        if device.type == "cuda"
        else "torch-profiler peak of live tensor memory"
    ) + " of one training step"
    figures = [_distance_curves(cfg, curves, floor, out), *_sample_grids(cfg, grids, out)]
    return json_safe(
        {
            "results": results,
            "curves": curves,
            "floor": floor,
            "fd_label": FD_LABEL,
            "classifier": {"task": task, "test_accuracy": accuracy, "steps": cfg.classifier_steps},
            "data": data.info(),
            "memory_method": memory,
            "figures": figures,
        }
    )


def merge(summaries: list[dict]) -> tuple[dict, dict]:
    """Runs that differ only in their losses (one loss per process, say, several processes on one
    GPU) as one comparison: the merged config (the losses in the order of the runs) and results.
    Each run trained its own feature classifier, so the first run's classifier and floor stand for
    all, and each run's are kept under ``runs``; a ValueError names a setting that differs."""
    cfgs = [s["config"] for s in summaries]
    losses = [name for c in cfgs for name in c["losses"]]
    if len(set(losses)) != len(losses):
        raise ValueError(f"the runs to merge must train different losses, got {losses}")
    for i, s in enumerate(summaries[1:], 1):
        differ = sorted(
            k for k in {*cfgs[0], *cfgs[i]} - {"losses"} if cfgs[0].get(k) != cfgs[i].get(k)
        )
        if differ or s["data"] != summaries[0]["data"]:
            raise ValueError(
                f"run {i + 1} differs from run 1 in {', '.join(differ) or 'its data'}: only runs "
                "that differ in their losses merge"
            )
    results = {
        obj: {k: v for s in summaries for k, v in s["results"][obj].items()}
        for obj in cfgs[0]["objectives"]
    }
    curves = {
        obj: {k: v for s in summaries for k, v in s["curves"][obj].items()}
        for obj in cfgs[0]["objectives"]
    }
    first = summaries[0]
    body = {
        "results": results,
        "curves": curves,
        "floor": first["floor"],
        "fd_label": first["fd_label"],
        "classifier": first["classifier"],
        "data": first["data"],
        "memory_method": first["memory_method"],
        "runs": [
            {"losses": s["config"]["losses"], "classifier": s["classifier"], "floor": s["floor"]}
            for s in summaries
        ],
    }
    return {**cfgs[0], "losses": losses}, body


def merge_figures(summary: dict, run_dirs: list[Path], out: Path) -> list[str]:
    """The merged run's figures in ``out``: the distance curves of every loss (drawn from the
    summary; the floor line is the first run's) and each objective's sample grids of the runs
    side by side (their images, equal in height)."""
    import numpy as np
    from PIL import Image

    cfg = config_of(Config, summary)
    names = [_distance_curves(cfg, summary["curves"], summary["floor"], out)]
    for obj in cfg.objectives:
        grids = [
            np.asarray(Image.open(Path(d) / f"samples_{obj}.png").convert("RGB")) for d in run_dirs
        ]  # no alpha to commit
        if len({g.shape[0] for g in grids}) != 1:
            raise ValueError(f"the runs' samples_{obj}.png differ in height: cannot join them")
        strip = np.concatenate(grids, axis=1)
        if np.array_equal(strip.min(-1), strip.max(-1)):  # gray images: one channel
            strip = strip[..., 0]
        Image.fromarray(strip).save(out / f"samples_{obj}.png", optimize=True)
        names.append(f"samples_{obj}.png")
    return names


def tables(summary: dict) -> str:
    """Markdown tables from the summary alone: FD/KD by epoch (median [min, max] over seeds), final
    and best values with paired wins against the first loss, and cost per epoch."""
    cfg, data, clf, floor = (
        summary["config"],
        summary["data"],
        summary["classifier"],
        summary["floor"],
    )
    base = cfg["losses"][0]
    head = (
        f"setting: {summary.get('setting', 'ours')}; data: {data['name']} "
        f"{'×'.join(map(str, data['shape']))}, "
        f"n_train = {data['n_train']}; UNet base {cfg['base']}, mults {tuple(cfg['mults'])}; "
        f"{cfg['epochs']} epochs, "
        f"batch {cfg['batch_size']}, Adam lr {cfg['lr']:g}; {cfg['n_fd_samples']} samples, "
        f"{cfg['sample_steps']} DDIM steps; "
        f"{cfg['seeds']} seed(s), median [min, max]. {FD_LABEL}: classifier on {clf['task']}, test "
        "accuracy "
        f"{clf['test_accuracy']:.3f}; real-vs-real floor ({cfg['n_fd_samples']} held-out images): "
        f"FD {floor['fd']:.4g}, KD {floor['kd']:.4g}."
    )
    if "runs" in summary:  # merged from runs that each trained their own classifier
        head += (
            f" Merged from {len(summary['runs'])} runs, one per loss group, each with its own "
            "classifier (test accuracy / floor FD: "
            + "; ".join(
                f"{', '.join(r['losses'])} {r['classifier']['test_accuracy']:.4f} / "
                f"{r['floor']['fd']:.3g}"
                for r in summary["runs"]
            )
            + "): the epoch-0 row (the same initial network for every loss) shows that "
            "classifier noise."
        )

    parts = [f"Provenance: {summary['provenance']}\n"] if summary.get("provenance") else []
    for obj, res in summary["results"].items():
        bands = summary["curves"][obj]
        epochs = next(iter(bands.values()))["fd"]["x"]
        for key, label in (("fd", "FD"), ("kd", "KD ×10³")):
            rows = [
                [f"{e:g}", *(_band_cell(bands[l][key], i) for l in res)]
                for i, e in enumerate(epochs)
            ]
            parts.append(
                f"### DDPM ({obj}): {label} by epoch\n\n{head}\n\n"
                + markdown_table(["epoch", *res], rows)
            )
        rows = []
        for name, r in res.items():
            wins = (
                ["–", "–"]
                if name == base
                else [wins_cell(paired_wins(r, res[base], k)) for k in ("final_fd", "final_kd")]
            )
            rows.append(
                [
                    name,
                    spread_cell(r, "final_fd", 4),
                    spread_cell(r, "final_kd", 4),
                    spread_cell(r, "best_fd", 4),
                    *wins,
                ]
            )
        parts.append(
            f"### DDPM ({obj}): final sample quality\n\n"
            + markdown_table(
                [
                    "loss",
                    "final FD",
                    "final KD ×10³",
                    "best FD",
                    f"seeds FD < {base}",
                    f"seeds KD < {base}",
                ],
                rows,
            )
        )
        parts.append(
            f"### DDPM ({obj}): cost per epoch (device {cfg['device']})\n\nTime: wall time of the "
            "training steps "
            "(on a shared machine it varies with the load; `benchmarks/bench_image_diffusion.py` "
            "measures step "
            f"costs). Memory: {summary['memory_method']}.\n\n" + cost_table(res, base)
        )
    return "\n".join(parts) + "\n"


def _band_cell(band: dict, i: int) -> str:
    """``median [min, max]`` at the i-th evaluation of a :func:`sobolev_lab.report.seed_band`."""
    med, lo, hi = band["median"][i], band["lo"][i], band["hi"][i]
    return fmt(med, 4) if lo == hi else f"{fmt(med, 4)} [{fmt(lo, 4)}, {fmt(hi, 4)}]"


def _distance_curves(cfg: Config, curves: dict, floor: dict, out: Path) -> str:
    fig, axes = subplots(2, len(cfg.objectives))
    for c, obj in enumerate(cfg.objectives):
        for r, (key, label) in enumerate((("fd", "FD"), ("kd", "KD ×10³"))):
            ax = axes[r, c]
            bands = {name: b[key] for name, b in curves[obj].items()}
            ax.set_prop_cycle(color=EXTRA_COLORS)  # for losses without a colour in LOSS_COLORS
            plot_curves(
                ax,
                {n: (b["x"], b["median"]) for n, b in bands.items()},
                xlabel="epoch",
                ylabel=f"{label} (classifier features)",
                title=f"DDPM {obj} (median of {cfg.seeds})",
                logy=key == "fd",
            )
            for line, b in zip(ax.get_lines(), bands.values()):
                ax.fill_between(b["x"], b["lo"], b["hi"], color=line.get_color(), alpha=0.15, lw=0)
            ax.axhline(floor[key], color="gray", ls=":", label="real vs real")
            ax.legend(fontsize=8)
    return save(fig, out / "fd_curves.png")


def _sample_grids(cfg: Config, grids: dict, out: Path) -> list[str]:
    names = []
    for obj, by_loss in grids.items():
        fig, axes = subplots(
            max(len(s) for _, s in by_loss.values()), len(by_loss), size=(0.6 * cfg.n_show, 0.9)
        )
        for c, (loss_name, (epochs, snaps)) in enumerate(by_loss.items()):
            for r, imgs in enumerate(snaps):
                ax = axes[r, c]
                strip = torch.cat(list(imgs), dim=-1).permute(1, 2, 0).squeeze(-1).numpy()
                ax.imshow(strip, cmap="gray" if imgs.shape[1] == 1 else None, vmin=0, vmax=1)
                ax.set_xticks([]), ax.set_yticks([])
                ax.set_ylabel(f"epoch {epochs[r]:g}", fontsize=7)
                if r == 0:
                    ax.set_title(f"{obj}, {loss_name} (seed 0)", fontsize=9)
        names.append(save(fig, out / f"samples_{obj}.png"))
    return names
