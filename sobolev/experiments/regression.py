"""Regression demo (seed paper's worked examples): fit sin x and e^{-x} with L2, H1 and H2 losses.

Same MLP, same initialisation, same optimiser and budget for every loss; the training loss is
tabulated every ``log_every`` epochs (the seed paper's Tables 1 and 2), and the held-out value
and derivative errors are reported for each loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import get_function
from ..derivatives import derivatives
from ..losses import SobolevLoss, loss_order
from ..metrics import heldout_evaluator
from ..models import MLP
from ..report import LOSS_COLORS, markdown_table, plot_curves, save, style_axes, subplots
from ..training import TrainConfig, fit, seed_everything



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
    log_every: int = 100
    table_every: int = 500
    checkpoint_every: int = 1000
    seed: int = 0
    dtype: str = "float64"
    device: str = "auto"

    @classmethod
    def quick(cls) -> "Config":
        return cls(epochs=1000, log_every=50, table_every=100)


def run(cfg: Config, out: Path) -> dict:
    summary: dict = {}
    curves: dict[str, dict] = {}
    fits: dict[str, dict] = {}
    plot_x: dict[str, torch.Tensor] = {}
    table_md = []
    dtype = getattr(torch, cfg.dtype)
    for name in cfg.functions:
        fn = get_function(name)
        x_train = fn.linspace(cfg.n_train, dtype)
        x_test = fn.uniform(cfg.n_test, generator=torch.Generator().manual_seed(cfg.seed + 1), dtype=dtype)
        x_plot = fn.linspace(400, dtype)
        evaluate = heldout_evaluator(fn, x_test, order=1)
        summary[name] = {}
        curves[name], fits[name] = {}, {}
        rows: dict[str, list[float]] = {}
        for loss_name in cfg.losses:
            k = loss_order(loss_name)
            seed_everything(cfg.seed)  # the same initial network for every loss
            model = MLP(1, 1, cfg.width, cfg.depth, cfg.activation)
            target = derivatives(fn, x_train, k, create_graph=False)
            tc = TrainConfig(steps=cfg.epochs, optimizer=cfg.optimizer, lr=cfg.lr, log_every=cfg.log_every,
                             checkpoint_every=cfg.checkpoint_every, seed=cfg.seed, dtype=cfg.dtype, device=cfg.device)
            hist = fit(model, SobolevLoss(k), (x_train, *target), tc, out_dir=out / name / loss_name,
                       evaluate=evaluate, desc=f"{name} {loss_name}")
            final = hist.records[-1]
            summary[name][loss_name] = {
                "train_loss": final["loss"], "value_rel_l2": final["d0_rel"], "value_max": final["d0_max"],
                "deriv_rel_l2": final["d1_rel"], "deriv_max": final["d1_max"], "train_time_s": final["time"],
            }
            rows[loss_name] = [r["loss"] for r in hist.records]
            curves[name][loss_name] = hist
            model.cpu()
            fits[name][loss_name] = [t.squeeze(-1).squeeze(-1) for t in derivatives(model, x_plot.to(next(model.parameters())), 1, create_graph=False)]
        steps = [r["step"] for r in curves[name][cfg.losses[0]].records]
        table_md.append(f"### {fn.description}: training loss\n\n" + markdown_table(
            ["epoch", *cfg.losses],
            [[s, *(rows[l][i] for l in cfg.losses)] for i, s in enumerate(steps) if s % cfg.table_every == 0 or s == cfg.epochs]))
        table_md.append(f"### {fn.description}: held-out errors after {cfg.epochs} epochs\n\n" + markdown_table(
            ["loss", "value rel. L2", "value max", "derivative rel. L2", "derivative max", "train time (s)"],
            [[l, *(summary[name][l][k] for k in ("value_rel_l2", "value_max", "deriv_rel_l2", "deriv_max", "train_time_s"))]
             for l in cfg.losses]))
        plot_x[name] = x_plot
    figures = [_fit_figure(cfg, plot_x, fits, out), _curve_figure(cfg, curves, out)]
    (out / "table.md").write_text("\n".join(table_md))
    return {"results": summary, "figures": figures}


def _fit_figure(cfg: Config, plot_x: dict, fits: dict, out: Path) -> str:
    fig, axes = subplots(2, len(cfg.functions))
    for c, name in enumerate(cfg.functions):
        x_plot = plot_x[name]
        true = [t.squeeze(-1).squeeze(-1) for t in derivatives(get_function(name), x_plot, 1, create_graph=False)]
        xs = x_plot.squeeze(1)
        for r, label in enumerate(("u", "u'")):
            ax = axes[r, c]
            for loss_name in cfg.losses:
                ax.plot(xs, (fits[name][loss_name][r] - true[r]).abs(), label=loss_name, color=LOSS_COLORS.get(loss_name))
            style_axes(ax, "x", f"|error of {label}|", f"{name}: pointwise error of {label}")
    return save(fig, out / "fit.png")


def _curve_figure(cfg: Config, curves: dict, out: Path) -> str:
    fig, axes = subplots(3, len(cfg.functions))
    for c, name in enumerate(cfg.functions):
        for r, (key, label) in enumerate((("loss", "training loss"), ("d0_rel", "held-out value rel. error"),
                                          ("d1_rel", "held-out derivative rel. error"))):
            plot_curves(axes[r, c], {l: curves[name][l].series(key) for l in cfg.losses},
                        xlabel="epoch", ylabel=label, title=name)
    return save(fig, out / "curves.png")
