"""Student–teacher regression over activations: L2 vs H1 on the empirical risk.

arXiv 2509.19773, §4.

Teacher: a random network of the student's family (shallow g(x) = Σ_i σ(w_i·x), or an MLP);
inputs x ~ N(0, I_d); n training samples; H1 targets are the teacher's exact input gradients.
Every loss trains the same initial student on the same data with the same optimiser, step budget
and seeds; reported are the held-out value and gradient errors against the teacher vs step and vs
training time (median and min–max band over seeds), and the steps and seconds to reach given
value errors (:func:`sobolev.metrics.first_reach`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sobolev.derivatives import derivatives
from sobolev.losses import SobolevLoss, loss_order
from sobolev.metrics import heldout_evaluator, reach_over_seeds
from sobolev.models import MLP, TwoLayer
from sobolev.training import fit, seed_everything

from ..report import (
    band_plot,
    json_safe,
    markdown_table,
    reach_cell,
    save,
    seed_band,
    spread_cell,
    subplots,
    wins_cell,
)
from ..seeds import paired_runs, paired_wins
from .seeded import (
    config_of,
    diverged_seeds,
    finals_over_seeds,
    fit_seeds,
    records_or_diverged,
    setting_note,
    train_config,
)

MODELS = ("shallow", "mlp")


@dataclass
class Config:
    """``model``: ``"shallow"`` (Σ_i σ(w_i·x), a_i = 1) or ``"mlp"`` (``depth`` hidden layers) for
    student (``width``) and teacher (``teacher_width``); ``batch_size`` 0 = full batch; the
    ``thresholds`` are test value relative errors for the time-to-accuracy table.

    ``lrs``: learning rates to sweep. Each loss is then trained at every rate (same seeds, data
    and initialisations) and compared at its own best rate: the one with the lowest median final
    value error on ``n_val`` validation points (fresh teacher samples, not the test points);
    empty: ``lr`` alone."""

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
    ensemble: bool = True
    lrs: tuple[float, ...] = ()
    n_val: int = 1000

    @classmethod
    def quick(cls) -> Config:
        return cls(n_train=400, n_test=500, steps=500, seeds=2, log_every=25)

    @classmethod
    def paper(cls, quick: bool = False) -> Config:
        """The paper's statement: plain minibatch SGD on the empirical risk, L2 vs H1, for ReLU,
        LeakyReLU, GELU, tanh and sine. No official code exists for this experiment: everything
        else (d, widths, n, batch, steps, seeds) is our choice, see the README; the paper states
        no learning rate, so each loss is compared at its best of a sweep (``lrs``). With
        ``quick``: 400 steps, 2 seeds, 3 rates, smaller data."""
        full = cls(
            optimizer="sgd",
            lr=0.05,
            lrs=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
            batch_size=100,
            steps=8000,
            seeds=5,
        )
        return (
            dataclasses.replace(
                full,
                n_train=400,
                n_test=500,
                steps=400,
                seeds=2,
                log_every=25,
                lrs=(0.02, 0.1, 0.5),
            )
            if quick
            else full
        )


def make_network(model: str, d: int, width: int, activation: str, depth: int = 2) -> nn.Module:
    """A student or teacher: ``"shallow"`` :class:`TwoLayer` (a_i = 1) or ``"mlp"`` (ω₀ = 1 for
    sine)."""
    if model == "shallow":
        return TwoLayer(d, width, activation)
    if model == "mlp":
        return MLP(d, 1, width, depth, activation, w0=1.0)
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


FINALS = {"value_rel_err": "d0_rel", "grad_rel_err": "d1_rel", "train_time_s": "time"}
"""Summary key -> record key of the final values stored per seed."""


def _evaluator(teacher: nn.Module, x_test: Tensor, x_val: Tensor | None) -> Callable:
    """Test errors (``d0_rel``, ``d1_rel``) and, with ``x_val``, validation errors (``val_…``)."""
    test = heldout_evaluator(teacher, x_test, 1)
    if x_val is None:
        return test
    val = heldout_evaluator(teacher, x_val, 0)
    return lambda model: {**test(model), **{f"val_{k}": v for k, v in val(model).items()}}


def _compare(cfg: Config, act: str, out: Path, lr: float | None = None) -> dict[str, list]:
    """Every loss with activation ``act`` over paired seeds (at learning rate ``lr`` of a sweep,
    also evaluated on the validation points): per loss, each seed's records."""
    dtype = getattr(torch, cfg.dtype)
    if lr is not None:
        cfg, out = dataclasses.replace(cfg, lr=lr), out / act / f"lr{lr:g}"
    else:
        out = out / act

    def prepare(s: int) -> tuple[nn.Module, Tensor, Tensor, Tensor | None]:
        seed_everything(10_000 + s)
        teacher = make_network(cfg.model, cfg.d, cfg.teacher_width, act, cfg.depth).to(dtype)
        gen = torch.Generator().manual_seed(20_000 + s)
        x_train = torch.randn(cfg.n_train, cfg.d, generator=gen, dtype=dtype)
        x_test = torch.randn(cfg.n_test, cfg.d, generator=gen, dtype=dtype)
        x_val = (
            torch.randn(cfg.n_val, cfg.d, generator=gen, dtype=dtype) if lr is not None else None
        )
        return teacher, x_train, x_test, x_val

    def train(name: str, s: int, shared: tuple) -> list[dict]:
        teacher, x_train, x_test, x_val = shared
        k = loss_order(name)
        student = make_network(cfg.model, cfg.d, cfg.width, act, cfg.depth)
        return records_or_diverged(
            lambda: fit(
                student,
                SobolevLoss(k),
                (x_train, *derivatives(teacher, x_train, k, create_graph=False)),
                train_config(cfg, seed=s, checkpoint_every=max(cfg.steps // 4, 1), progress=False),
                out_dir=out / name / f"seed{s}",
                evaluate=_evaluator(teacher, x_test, x_val),
                desc=f"{act} {name} seed {s}",
            ),
            out / name / f"seed{s}",
            cfg.steps,
            cfg.log_every,
        )

    def train_seeds(name: str, seeds: list[int], shared: list[tuple]) -> list[list[dict]]:
        k = loss_order(name)
        per_seed = dict(zip(seeds, shared))

        def data(s: int) -> tuple:
            teacher, x_train, _, _ = per_seed[s]
            return (x_train, *derivatives(teacher, x_train, k, create_graph=False))

        return fit_seeds(
            lambda: make_network(cfg.model, cfg.d, cfg.width, act, cfg.depth),
            SobolevLoss(k),
            data,
            train_config(
                cfg, seed=seeds[0], checkpoint_every=max(cfg.steps // 4, 1), progress=False
            ),
            seeds,
            out_dir=out / name / "ensemble",
            evaluate=[_evaluator(t, x_test, x_val) for t, _, x_test, x_val in shared],
            desc=f"{act} {name} {len(seeds)} seeds",
        )[1]

    return paired_runs(
        cfg.losses,
        range(cfg.seeds),
        train,
        prepare,
        train_seeds=train_seeds if cfg.ensemble else None,
    )


def validate(cfg: Config) -> None:
    """Checks beyond the shared ones, before anything is written: the network and the training
    settings of every run, as :func:`run` builds them."""
    if cfg.model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {cfg.model!r}")
    if not all(math.isfinite(lr) and lr > 0 for lr in cfg.lrs) or len(set(cfg.lrs)) != len(cfg.lrs):
        raise ValueError(f"lrs must be distinct positive learning rates, got {list(cfg.lrs)}")
    if cfg.lrs and cfg.n_val < 1:
        raise ValueError(f"n_val must be ≥ 1 to choose among lrs, got {cfg.n_val}")
    train_config(cfg, seed=0, checkpoint_every=max(cfg.steps // 4, 1), progress=False)


def _finals(cfg: Config, runs: list[list[dict]]) -> dict[str, Any]:
    return {
        **finals_over_seeds(runs, FINALS),
        "reach_value_err": reach_over_seeds(runs, "d0_rel", cfg.thresholds),
        "reach_grad_err": reach_over_seeds(runs, "d1_rel", cfg.thresholds),
    }


def _best_lr(swept: dict[float, list[list[dict]]]) -> float:
    """The rate whose median final validation value error is lowest (a diverged seed counts as
    +inf; ties: the smaller rate)."""
    return min(
        swept,
        key=lambda lr: (statistics.median(r[-1]["val_d0_rel"] for r in swept[lr]), lr),
    )


def run(cfg: Config, out: Path) -> dict:
    records: dict[str, dict[str, list]] = {}
    results: dict[str, dict] = {}
    sweep: dict[str, dict] = {}
    for act in cfg.activations:
        if not cfg.lrs:
            records[act] = _compare(cfg, act, out)
            results[act] = {name: _finals(cfg, runs) for name, runs in records[act].items()}
            continue
        by_lr = {lr: _compare(cfg, act, out, lr) for lr in cfg.lrs}
        records[act], results[act], sweep[act] = {}, {}, {}
        for name in cfg.losses:
            swept = {lr: by_lr[lr][name] for lr in cfg.lrs}
            best = _best_lr(swept)
            records[act][name] = swept[best]
            results[act][name] = {**_finals(cfg, swept[best]), "lr": best}
            sweep[act][name] = {
                f"{lr:g}": finals_over_seeds(runs, {**FINALS, "val_value_rel_err": "val_d0_rel"})
                for lr, runs in swept.items()
            }
    figures = [_curves(cfg, records, out, x, f"curves_{x}.png") for x in ("step", "time")]
    summary = {"results": results, "figures": figures}
    return json_safe({**summary, "sweep": sweep} if cfg.lrs else summary)


def _curves(cfg: Config, records: dict, out: Path, x: str, fname: str) -> str:
    fig, axes = subplots(2, len(cfg.activations))
    for c, act in enumerate(cfg.activations):
        for r, (key, label) in enumerate(
            (("d0_rel", "test value rel. error"), ("d1_rel", "test gradient rel. error"))
        ):
            band_plot(
                axes[r, c],
                {l: seed_band(records[act][l], key, x) for l in cfg.losses},
                xlabel="step" if x == "step" else "training time (s)",
                ylabel=label,
                title=act,
            )
    return save(fig, out / fname)


def tables(summary: dict[str, Any]) -> str:
    """Final errors (median [min, max] over seeds), in how many seeds H1 ended below L2, and the
    steps and seconds to reach each value error, from a run's summary."""
    cfg = config_of(Config, summary)
    thr = [f"{t:g}" for t in cfg.thresholds]
    swept = "sweep" in summary
    rows = []
    for act, per in summary["results"].items():
        for name, r in per.items():
            vs = [
                wins_cell(paired_wins(r, per["L2"], k)) if name != "L2" and "L2" in per else "–"
                for k in ("value_rel_err", "grad_rel_err")
            ]
            rows.append(
                [
                    act,
                    name,
                    *([f"{r['lr']:g}"] if swept else []),
                    spread_cell(r, "value_rel_err"),
                    spread_cell(r, "grad_rel_err"),
                    *vs,
                    spread_cell(r, "train_time_s"),
                    *(reach_cell(r["reach_value_err"][t]) for t in thr),
                ]
            )
    head = (
        f"### Student–teacher ({setting_note(summary, cfg.seeds)}): {cfg.model}, d = {cfg.d}, "
        f"width {cfg.width}, "
        f"n = {cfg.n_train}, {cfg.optimizer} "
        + (
            f"at each loss's best lr of {', '.join(f'{lr:g}' for lr in cfg.lrs)} (lowest median "
            f"final value error on {cfg.n_val} validation points)"
            if swept
            else f"lr {cfg.lr:g}"
        )
        + f", batch {cfg.batch_size or 'full'}, "
        f"{cfg.steps} steps; "
        "test errors relative to the teacher, median [min, max] over seeds; time to a value "
        "error: median over "
        f"the seeds that reach it\n\n"
    )
    table = head + markdown_table(
        [
            "activation",
            "loss",
            *(["lr"] if swept else []),
            "test value err",
            "test grad err",
            "value err < L2's (seeds)",
            "grad err < L2's (seeds)",
            "train time (s)",
            *(f"value err ≤ {t}: steps / s (seeds)" for t in thr),
        ],
        rows,
    )
    if not swept:
        return table
    lrs = [f"{lr:g}" for lr in cfg.lrs]
    sweep_rows = [
        [
            act,
            name,
            *(
                spread_cell(sw[lr], "val_value_rel_err")
                + (
                    f" ({k}/{cfg.seeds} diverged)"
                    if (k := diverged_seeds(sw[lr], "val_value_rel_err"))
                    else ""
                )
                + (" ←" if float(lr) == summary["results"][act][name]["lr"] else "")
                for lr in lrs
            ),
        ]
        for act, per in summary["sweep"].items()
        for name, sw in per.items()
    ]
    return (
        table + f"\n### Student–teacher learning-rate sweep ({setting_note(summary, cfg.seeds)}): "
        f"final validation value error by lr, median [min, max] over seeds (← the rate the "
        "comparison uses; a diverged seed counts as ∞)\n\n"
        + markdown_table(["activation", "loss", *(f"lr {lr}" for lr in lrs)], sweep_rows)
    )
