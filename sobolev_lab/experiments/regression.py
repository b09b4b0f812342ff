"""Regression demo (seed paper's worked examples): fit sin x and e^{-x} with L2, H1 and H2 losses.

The seed paper's setting: 100 equispaced points, an MLP with 2 hidden layers of 32 tanh units,
Adam, 5000 full-batch epochs, the training loss tabulated every 500 epochs (its Tables 1 and 2).
Ours adds what makes the comparison decidable: the learning rate anneals (cosine, to 0) so that
the final numbers do not depend on where Adam's oscillation stops, and every loss trains from the
same initialisation in each of ``seeds`` paired seeds; held-out value and derivative errors are
reported as median [min, max] over seeds, with the number of seeds in which H1/H2 beat L2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sobolev.data import get_function
from sobolev.derivatives import derivatives
from sobolev.losses import SobolevLoss, loss_order
from sobolev.metrics import heldout_evaluator
from sobolev.models import MLP
from sobolev.training import fit

from ..report import (
    LOSS_COLORS,
    band_plot,
    fmt,
    json_safe,
    markdown_table,
    save,
    seed_band,
    spread_cell,
    style_axes,
    subplots,
    wins_cell,
)
from ..seeds import paired_runs, paired_wins
from .seeded import finals_over_seeds, fit_seeds, train_config


@dataclass
class Config:
    functions: tuple[str, ...] = ("sin", "exp")
    losses: tuple[str, ...] = ("L2", "H1", "H2")
    n_train: int = 100
    n_test: int = 1000
    width: int = 32
    depth: int = 2
    activation: str = "tanh"
    epochs: int = 5000
    lr: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "cosine"
    seeds: int = 5
    log_every: int = 100
    table_every: int = 500
    checkpoint_every: int = 1000
    seed: int = 0
    dtype: str = "float64"
    device: str = "auto"
    ensemble: bool = True

    @classmethod
    def quick(cls) -> Config:
        return cls(epochs=1000, seeds=2, log_every=50, table_every=250)


FINALS = {
    "train_loss": "loss",
    "value_rel_l2": "d0_rel",
    "value_max": "d0_max",
    "deriv_rel_l2": "d1_rel",
    "deriv_max": "d1_max",
    "train_time_s": "time",
}
"""Summary key -> record key of the final values stored per seed."""


def _fit_function(cfg: Config, name: str, out: Path) -> dict[str, list]:
    """Every loss on function ``name`` over paired seeds: per loss, per seed, the training
    records and the fitted value and derivative on 400 plotting points."""
    dtype = getattr(torch, cfg.dtype)
    fn = get_function(name)
    x_train = fn.linspace(cfg.n_train, dtype)
    x_plot = fn.linspace(400, dtype)

    def prepare(seed: int):
        gen = torch.Generator().manual_seed(10_000 + seed)
        return heldout_evaluator(fn, fn.uniform(cfg.n_test, generator=gen, dtype=dtype), order=1)

    def make_model() -> MLP:
        return MLP(1, 1, cfg.width, cfg.depth, cfg.activation).to(dtype)

    def fitted(model: MLP) -> list:
        model.cpu()
        stack = derivatives(model, x_plot.to(next(model.parameters())), 1, create_graph=False)
        return [t.squeeze(-1).squeeze(-1) for t in stack]

    def train(loss_name: str, seed: int, evaluate) -> tuple[list, list]:
        k = loss_order(loss_name)
        model = make_model()
        target = derivatives(fn, x_train, k, create_graph=False)
        hist = fit(
            model,
            SobolevLoss(k),
            (x_train, *target),
            train_config(cfg, seed=seed, steps=cfg.epochs),
            out_dir=out / name / loss_name / f"seed{seed}",
            evaluate=evaluate,
            desc=f"{name} {loss_name} seed {seed}",
        )
        return hist.records, fitted(model)

    def train_seeds(loss_name: str, seeds: list[int], evaluators: list) -> list:
        k = loss_order(loss_name)
        models, records = fit_seeds(
            make_model,
            SobolevLoss(k),
            (x_train, *derivatives(fn, x_train, k, create_graph=False)),
            train_config(cfg, seed=seeds[0], steps=cfg.epochs),
            seeds,
            out_dir=out / name / loss_name / "ensemble",
            evaluate=evaluators,
            desc=f"{name} {loss_name} {len(seeds)} seeds",
        )
        return [(r, fitted(m)) for r, m in zip(records, models)]

    return paired_runs(
        cfg.losses,
        range(cfg.seed, cfg.seed + cfg.seeds),
        train,
        prepare,
        train_seeds=train_seeds if cfg.ensemble else None,
    )


def validate(cfg: Config) -> None:
    """Checks beyond the shared ones, before anything is written: the training settings
    (optimizer, schedule, …) of every run, as :func:`run` builds them."""
    train_config(cfg, seed=cfg.seed, steps=cfg.epochs)


def run(cfg: Config, out: Path) -> dict:
    results: dict[str, dict] = {}
    loss_tables: dict[str, dict] = {}
    records: dict[str, dict[str, list]] = {}
    fits: dict[str, dict[str, list]] = {}
    for name in cfg.functions:
        runs = _fit_function(cfg, name, out)
        records[name] = {l: [r for r, _ in per] for l, per in runs.items()}
        fits[name] = {l: [f for _, f in per] for l, per in runs.items()}
        results[name] = {l: finals_over_seeds(records[name][l], FINALS) for l in cfg.losses}
        steps = [r["step"] for r in records[name][cfg.losses[0]][0]]
        epochs = [st for st in steps if st % cfg.table_every == 0 or st == cfg.epochs]
        loss_tables[name] = {"epoch": epochs}
        for loss_name in cfg.losses:
            band = seed_band(records[name][loss_name], "loss")
            loss_tables[name][loss_name] = [
                m for st, m in zip(steps, band["median"]) if st in epochs
            ]
    figures = [_fit_figure(cfg, fits, out), _curve_figure(cfg, records, out)]
    return json_safe({"results": results, "loss_tables": loss_tables, "figures": figures})


def tables(summary: dict) -> str:
    """The seed paper's loss tables (medians over seeds) and the held-out errors with spread."""
    cfg = summary["config"]
    losses, res = cfg["losses"], summary["results"]
    setting = (
        f"{summary.get('setting', 'ours')}, {cfg['n_train']} points, {cfg['depth']}×{cfg['width']} "
        f"{cfg['activation']}, {cfg['optimizer']} lr {cfg['lr']:g} ({cfg['schedule']}), "
        f"{cfg['epochs']} epochs, "
        f"{cfg['seeds']} seeds"
    )
    out = [f"Setting: {setting}.\n"]
    for name in cfg["functions"]:
        fn = get_function(name)
        lt = summary["loss_tables"][name]
        out.append(
            f"**{fn.description}: training loss, median over seeds**\n\n"
            + markdown_table(
                ["epoch", *losses],
                [[e, *(lt[l][i] for l in losses)] for i, e in enumerate(lt["epoch"])],
            )
        )
        rows = []
        for l in losses:
            r = res[name][l]
            beat = (
                ["–", "–"]
                if l == losses[0]
                else [
                    wins_cell(paired_wins(r, res[name][losses[0]], key))
                    for key in ("value_rel_l2", "deriv_rel_l2")
                ]
            )
            rows.append(
                [
                    l,
                    spread_cell(r, "value_rel_l2"),
                    spread_cell(r, "deriv_rel_l2"),
                    spread_cell(r, "deriv_max"),
                    *beat,
                    fmt(r["train_time_s"], 2),
                ]
            )
        out.append(
            f"**{fn.description}: held-out errors after {cfg['epochs']} epochs, median [min, max] "
            "over "
            f"seeds**\n\n"
            + markdown_table(
                [
                    "loss",
                    "value rel. L2",
                    "derivative rel. L2",
                    "derivative max",
                    f"value: seeds better than {losses[0]}",
                    f"derivative: seeds better than {losses[0]}",
                    "train time (s)",
                ],
                rows,
            )
        )
    return "\n".join(out)


def _fit_figure(cfg: Config, fits: dict, out: Path) -> str:
    """Pointwise |error| of value and derivative of the first seed's fits."""
    fig, axes = subplots(2, len(cfg.functions))
    for c, name in enumerate(cfg.functions):
        fn = get_function(name)
        x_plot = fn.linspace(400, getattr(torch, cfg.dtype))
        true = [t.squeeze(-1).squeeze(-1) for t in derivatives(fn, x_plot, 1, create_graph=False)]
        xs = x_plot.squeeze(1)
        for r, label in enumerate(("u", "u'")):
            ax = axes[r, c]
            for loss_name in cfg.losses:
                ax.plot(
                    xs,
                    (fits[name][loss_name][0][r] - true[r]).abs(),
                    label=loss_name,
                    color=LOSS_COLORS.get(loss_name),
                )
            style_axes(
                ax,
                "x",
                f"|error of {label}|",
                f"{name}: pointwise error of {label} (seed {cfg.seed})",
            )
    return save(fig, out / "fit.png")


def _curve_figure(cfg: Config, records: dict, out: Path) -> str:
    """Training loss and held-out errors over epochs: median and min–max band over seeds."""
    fig, axes = subplots(3, len(cfg.functions))
    for c, name in enumerate(cfg.functions):
        for r, (key, label) in enumerate(
            (
                ("loss", "training loss"),
                ("d0_rel", "held-out value rel. error"),
                ("d1_rel", "held-out derivative rel. error"),
            )
        ):
            band_plot(
                axes[r, c],
                {l: seed_band(records[name][l], key) for l in cfg.losses},
                xlabel="epoch",
                ylabel=label,
                title=name,
            )
    return save(fig, out / "curves.png")
