"""1-D targets × architectures × losses: L2 vs H1 vs H2 with Adam then L-BFGS (arXiv 2509.19773, Fig. 4).

Targets f1 = sin(2πx) + sin(20πx), f2 = x + sin(2πx⁴), f3 = eˣ sin(20x) on [-1, 1] with exact
derivatives; equispaced collocation points, uniform random test points; an MLP (tanh), a
Fourier-feature MLP and a SIREN; Adam, then L-BFGS from half the budget on. Every loss trains the
same initial network with the same optimisers and budget; reported are the held-out relative errors
of value, first and second derivative, and the steps and seconds to reach given value errors.

Scaling of the published setting (Adam lr 1e-5 for 25,000 epochs, then L-BFGS lr 0.01 for 25,000
epochs, 20 repeats) to this machine: see ``Config`` and the README.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data import get_function
from ..derivatives import derivatives
from ..losses import SobolevLoss, loss_order
from ..metrics import heldout_evaluator, reach_over_seeds
from ..models import MLP, SIREN, FourierFeatureMLP
from ..report import band_plot, json_safe, markdown_table, reach_cell, save, seed_band, subplots
from ..training import TrainConfig, fit, seed_everything

MODELS = ("mlp", "fourier", "siren")


@dataclass
class Config:
    functions: tuple[str, ...] = ("f1", "f2", "f3")
    models: tuple[str, ...] = MODELS
    losses: tuple[str, ...] = ("L2", "H1", "H2")
    n_train: int = 1000
    n_test: int = 100
    width: int = 64
    depth: int = 3
    ff_features: int = 32
    ff_sigma: float = 3.0
    siren_w0: float = 30.0
    steps: int = 1030
    lbfgs_at: int = 1000
    lr: float = 1e-3
    lbfgs_lr: float = 0.01
    lbfgs_max_iter: int = 20
    lbfgs_line_search: str = "none"
    repeats: int = 2
    log_every: int = 20
    thresholds: tuple[float, ...] = (0.1, 0.03, 0.01, 0.003)
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"

    @classmethod
    def quick(cls) -> "Config":
        return cls(functions=("f1",), n_train=256, steps=210, lbfgs_at=200, lbfgs_max_iter=10, repeats=1,
                   width=32, ff_features=16, log_every=10)


def make_model(name: str, cfg: Config) -> nn.Module:
    """The 1-D network ``name`` (one of ``MODELS``) with the config's sizes."""
    if name == "mlp":
        return MLP(1, 1, cfg.width, cfg.depth, "tanh")
    if name == "fourier":
        return FourierFeatureMLP(1, 1, cfg.ff_features, cfg.ff_sigma, cfg.width, cfg.depth, "tanh")
    if name == "siren":
        return SIREN(1, 1, cfg.width, cfg.depth, cfg.siren_w0)
    raise ValueError(f"models must be among {MODELS}, got {name!r}")


def run(cfg: Config, out: Path) -> dict:
    if cfg.lbfgs_line_search not in ("none", "strong_wolfe"):
        raise ValueError(f"lbfgs_line_search must be 'none' or 'strong_wolfe', got {cfg.lbfgs_line_search!r}")
    dtype = getattr(torch, cfg.dtype)
    records: dict[tuple[str, str], dict[str, list]] = {}
    results: dict[str, dict] = {}
    for fname in cfg.functions:
        fn = get_function(fname)
        x_train = fn.linspace(cfg.n_train, dtype)
        x_test = fn.uniform(cfg.n_test, generator=torch.Generator().manual_seed(cfg.seed + 1), dtype=dtype)
        evaluate = heldout_evaluator(fn, x_test, order=2)
        results[fname] = {}
        for mname in cfg.models:
            results[fname][mname] = {}
            for lname in cfg.losses:
                k = loss_order(lname)
                target = derivatives(fn, x_train, k, create_graph=False)
                runs = []
                for rep in range(cfg.repeats):
                    seed = cfg.seed + rep
                    seed_everything(seed)  # the same initial network for every loss
                    model = make_model(mname, cfg)
                    tc = TrainConfig(
                        steps=cfg.steps, optimizer="adam", lr=cfg.lr, lbfgs_at=cfg.lbfgs_at, lbfgs_lr=cfg.lbfgs_lr,
                        lbfgs_max_iter=cfg.lbfgs_max_iter,
                        lbfgs_line_search=None if cfg.lbfgs_line_search == "none" else cfg.lbfgs_line_search,
                        log_every=cfg.log_every, checkpoint_every=max(cfg.steps // 4, 1), seed=seed,
                        dtype=cfg.dtype, device=cfg.device, progress=False)
                    hist = fit(model, SobolevLoss(k), (x_train, *target), tc,
                               out_dir=out / fname / mname / lname / f"rep{rep}", evaluate=evaluate,
                               desc=f"{fname} {mname} {lname} #{rep}")
                    runs.append(hist.records)
                records[(fname, mname)] = {**records.get((fname, mname), {}), lname: runs}
                finals = [r[-1] for r in runs]
                results[fname][mname][lname] = {
                    **{f"d{j}_rel_err": statistics.median(f[f"d{j}_rel"] for f in finals) for j in range(3)},
                    "d0_rel_err_range": [min(f["d0_rel"] for f in finals), max(f["d0_rel"] for f in finals)],
                    "train_time_s": statistics.median(f["time"] for f in finals),
                    "reach_value_err": reach_over_seeds(runs, "d0_rel", cfg.thresholds),
                }
    figures = [_curves(cfg, records, out, x) for x in ("step", "time")]
    (out / "table.md").write_text(_tables(cfg, results))
    return json_safe({"results": results, "figures": figures})


def _curves(cfg: Config, records: dict, out: Path, x: str) -> str:
    fig, axes = subplots(len(cfg.functions), len(cfg.models))
    for r, fname in enumerate(cfg.functions):
        for c, mname in enumerate(cfg.models):
            ax = axes[r, c]
            band_plot(ax, {l: seed_band(records[(fname, mname)][l], "d0_rel", x) for l in cfg.losses},
                      xlabel="step" if x == "step" else "training time (s)", ylabel="test value rel. error",
                      title=f"{fname}, {mname}")
            ax.axvline(cfg.lbfgs_at if x == "step" else _switch_time(records[(fname, mname)], cfg), color="gray",
                       ls=":", lw=1)
    return save(fig, out / f"curves_{x}.png")


def _switch_time(per_loss: dict, cfg: Config) -> float:
    """Median training time at the Adam → L-BFGS switch, over losses and repeats (for the figure)."""
    times = [rec["time"] for runs in per_loss.values() for recs in runs for rec in recs if rec["step"] == cfg.lbfgs_at]
    return statistics.median(times) if times else float("nan")


def _tables(cfg: Config, results: dict) -> str:
    thr = [f"{t:g}" for t in cfg.thresholds]
    rows = [[f, m, l, r["d0_rel_err"], r["d1_rel_err"], r["d2_rel_err"], r["train_time_s"],
             *(reach_cell(r["reach_value_err"][t]) for t in thr)]
            for f, per_m in results.items() for m, per_l in per_m.items() for l, r in per_l.items()]
    head = (f"### 1-D targets: Adam (lr {cfg.lr:g}) for {cfg.lbfgs_at} steps, then L-BFGS (lr {cfg.lbfgs_lr:g}, "
            f"{cfg.lbfgs_max_iter} iterations/step) to {cfg.steps}; {cfg.repeats} repeats (medians)\n\n")
    return head + markdown_table(
        ["target", "model", "loss", "value err", "u' err", "u'' err", "train time (s)",
         *(f"value err ≤ {t}: steps / s" for t in thr)], rows)
