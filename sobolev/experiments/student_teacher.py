"""Student–teacher regression over activations: L2 vs H1 on the empirical risk (arXiv 2509.19773, §4).

Teacher: a random network of the student's family (shallow g(x) = Σ_i σ(w_i·x), or an MLP);
inputs x ~ N(0, I_d); n training samples; H1 targets are the teacher's exact input gradients.
Every loss trains the same initial student on the same data with the same optimiser, step budget
and seeds; reported are the held-out value and gradient errors against the teacher vs step and vs
training time (median and min–max band over seeds), and the steps and seconds to reach given
value errors (:func:`sobolev.metrics.first_reach`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..derivatives import derivatives
from ..losses import SobolevLoss, loss_order
from ..metrics import heldout_evaluator, reach_over_seeds
from ..models import MLP, TwoLayer
from ..report import band_plot, json_safe, markdown_table, reach_cell, save, seed_band, subplots
from ..training import TrainConfig, fit, seed_everything

MODELS = ("shallow", "mlp")


@dataclass
class Config:
    """``model``: ``"shallow"`` (Σ_i σ(w_i·x), a_i = 1) or ``"mlp"`` (``depth`` hidden layers) for
    student (``width``) and teacher (``teacher_width``); ``batch_size`` 0 = full batch; the
    ``thresholds`` are test value relative errors for the time-to-accuracy table."""

    activations: tuple[str, ...] = ("relu", "leaky_relu", "gelu", "tanh", "sine")
    losses: tuple[str, ...] = ("L2", "H1")
    model: str = "shallow"
    d: int = 10
    width: int = 8
    teacher_width: int = 8
    depth: int = 2
    n_train: int = 1000
    n_test: int = 2000
    steps: int = 8000
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 100
    seeds: int = 5
    log_every: int = 50
    thresholds: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01)
    dtype: str = "float64"
    device: str = "auto"

    @classmethod
    def quick(cls) -> "Config":
        return cls(n_train=400, n_test=500, steps=500, seeds=2, log_every=25)


def make_network(model: str, d: int, width: int, activation: str, depth: int = 2) -> nn.Module:
    """A student or teacher: ``"shallow"`` :class:`TwoLayer` (a_i = 1) or ``"mlp"`` (ω₀ = 1 for sine)."""
    if model == "shallow":
        return TwoLayer(d, width, activation)
    if model == "mlp":
        return MLP(d, 1, width, depth, activation, w0=1.0)
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")




def run(cfg: Config, out: Path) -> dict:
    dtype = getattr(torch, cfg.dtype)
    records: dict[str, dict[str, list]] = {}
    results: dict[str, dict] = {}
    for act in cfg.activations:
        records[act], results[act] = {}, {}
        for name in cfg.losses:
            k = loss_order(name)
            runs = []
            for s in range(cfg.seeds):
                seed_everything(10_000 + s)
                teacher = make_network(cfg.model, cfg.d, cfg.teacher_width, act, cfg.depth).to(dtype)
                gen = torch.Generator().manual_seed(20_000 + s)
                x_train = torch.randn(cfg.n_train, cfg.d, generator=gen, dtype=dtype)
                x_test = torch.randn(cfg.n_test, cfg.d, generator=gen, dtype=dtype)
                seed_everything(s)  # the same initial student for every loss
                student = make_network(cfg.model, cfg.d, cfg.width, act, cfg.depth)
                tc = TrainConfig(steps=cfg.steps, optimizer=cfg.optimizer, lr=cfg.lr, batch_size=cfg.batch_size or None,
                                 log_every=cfg.log_every, checkpoint_every=max(cfg.steps // 4, 1), seed=s,
                                 dtype=cfg.dtype, device=cfg.device, progress=False)
                hist = fit(student, SobolevLoss(k), (x_train, *derivatives(teacher, x_train, k, create_graph=False)), tc,
                           out_dir=out / act / name / f"seed{s}", evaluate=heldout_evaluator(teacher, x_test, 1),
                           desc=f"{act} {name} seed {s}")
                runs.append(hist.records)
            records[act][name] = runs
            finals = [r[-1] for r in runs]
            results[act][name] = {
                "value_rel_err": statistics.median(f["d0_rel"] for f in finals),
                "value_rel_err_range": [min(f["d0_rel"] for f in finals), max(f["d0_rel"] for f in finals)],
                "grad_rel_err": statistics.median(f["d1_rel"] for f in finals),
                "grad_rel_err_range": [min(f["d1_rel"] for f in finals), max(f["d1_rel"] for f in finals)],
                "train_time_s": statistics.median(f["time"] for f in finals),
                "reach_value_err": reach_over_seeds(runs, "d0_rel", cfg.thresholds),
                "reach_grad_err": reach_over_seeds(runs, "d1_rel", cfg.thresholds),
            }
    figures = [_curves(cfg, records, out, x, f"curves_{x}.png") for x in ("step", "time")]
    (out / "table.md").write_text(_tables(cfg, results))
    return json_safe({"results": results, "figures": figures})


def _curves(cfg: Config, records: dict, out: Path, x: str, fname: str) -> str:
    fig, axes = subplots(2, len(cfg.activations))
    for c, act in enumerate(cfg.activations):
        for r, (key, label) in enumerate((("d0_rel", "test value rel. error"), ("d1_rel", "test gradient rel. error"))):
            band_plot(axes[r, c], {l: seed_band(records[act][l], key, x) for l in cfg.losses},
                      xlabel="step" if x == "step" else "training time (s)", ylabel=label, title=act)
    return save(fig, out / fname)


def _tables(cfg: Config, results: dict) -> str:
    thr = [f"{t:g}" for t in cfg.thresholds]
    rows = []
    for act, per in results.items():
        for name, r in per.items():
            rows.append([act, name, r["value_rel_err"], r["grad_rel_err"], r["train_time_s"],
                         *(reach_cell(r["reach_value_err"][t]) for t in thr)])
    head = (f"### Student–teacher ({cfg.model}, d = {cfg.d}, width {cfg.width}, n = {cfg.n_train}, "
            f"{cfg.optimizer} lr {cfg.lr:g}, {cfg.steps} steps, {cfg.seeds} seeds): medians over seeds\n\n")
    return head + markdown_table(
        ["activation", "loss", "test value err", "test grad err", "train time (s)",
         *(f"value err ≤ {t}: steps / s (seeds)" for t in thr)], rows)
