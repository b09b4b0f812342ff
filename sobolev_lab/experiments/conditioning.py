"""Hessian conditioning of empirical L2 and H1 losses along training, and gradient descent at each
loss's own stable step η = c/λ_max (arXiv 2509.19773's conditioning claim, on real networks).

Student–teacher setting as in ``student-teacher`` (x ~ N(0, I_d), n samples, teacher of the same
family). For each activation and seed, the same initial student is trained by full-batch gradient
descent on the L2 loss and on the H1 loss, each with η = c/λ_max of its own loss's Hessian at the
initial point (c < 2: the seed paper's η < 2/L). At every logged step the extreme eigenvalues of
*both* empirical Hessians are measured at the current parameters (:mod:`sobolev.curvature`: dense
for small P, else Lanczos); for shallow ReLU students the exact population Hessians of
:mod:`sobolev.theory` are evaluated at the same weights (×2: the empirical losses here are means of
squares, the theory's carry a ½). The measured convergence rate of each run (slope of log loss)
is set against the rate its spectrum predicts, 2·log max(|1 − ηλ_min|, |1 − ηλ_max|) per step.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sobolev.curvature import LossHessian, fitted_rate, gd_contraction, spectrum_edges
from sobolev.derivatives import derivatives
from sobolev.losses import SobolevLoss, loss_order
from sobolev.metrics import heldout_evaluator, reach_over_seeds
from sobolev.theory import hessian_spectrum
from sobolev.training import fit, seed_everything

from ..report import (
    LOSS_COLORS,
    band_plot,
    json_safe,
    markdown_table,
    reach_cell,
    save,
    seed_band,
    spread_cell,
    style_axes,
    subplots,
    wins_cell,
)
from ..seeds import over_seeds, paired_runs, paired_wins
from .seeded import config_of, setting_note, train_config
from .student_teacher import MODELS, make_network


@dataclass
class Config:
    """Student–teacher settings as in ``student-teacher``; ``eta_factor`` c sets η = c/λ_max(init);
    spectra are measured at ``n_checkpoints`` evenly spaced steps (dense when P ≤ ``dense_max``,
    else Lanczos); ``rate_window`` (hi, lo): the convergence rate is fitted while the loss is
    between lo and hi times its initial value."""

    activations: tuple[str, ...] = ("relu", "leaky_relu", "gelu", "tanh", "sine")
    losses: tuple[str, ...] = ("L2", "H1")
    model: str = "shallow"
    d: int = 10
    width: int = 4
    teacher_width: int = 4
    depth: int = 2
    n_train: int = 2000
    n_test: int = 2000
    steps: int = 2000
    eta_factor: float = 1.0
    n_checkpoints: int = 100
    rate_window: tuple[float, float] = (1e-2, 1e-12)
    seeds: int = 3
    dense_max: int = 600
    thresholds: tuple[float, ...] = (0.1, 0.03, 0.01, 0.001)
    dtype: str = "float64"
    device: str = "cpu"

    @classmethod
    def quick(cls) -> Config:
        return cls(n_train=500, n_test=500, steps=400, n_checkpoints=40, seeds=1)


def _spectra_evaluator(
    cfg: Config, x_train, stacks: dict, x_test, teacher: nn.Module, activation: str
) -> Callable:
    """``evaluate`` callback: held-out errors plus the spectrum edges of every loss's empirical
    Hessian at the current parameters (and the population ones for shallow ReLU students)."""
    errors = heldout_evaluator(teacher, x_test, 1)
    population = _population_available(cfg.model, activation)

    def evaluate(model: nn.Module) -> dict[str, float]:
        out = errors(model)
        for name, stack in stacks.items():
            e = spectrum_edges(
                LossHessian(model, SobolevLoss(loss_order(name)), (x_train, *stack)),
                dense_max=cfg.dense_max,
            )
            out |= {
                f"{name}_lmin": e.lambda_min,
                f"{name}_lmax": e.lambda_max,
                f"{name}_cond": e.condition,
            }
        if population:
            W, W_star = model.W.detach().double().cpu(), teacher.W.detach().double().cpu()
            for part, name in (("L", "L2"), ("H", "H1")):
                try:
                    s = hessian_spectrum(W, W_star, part)
                    lo, hi, cond = 2 * s.lam_min, 2 * s.lam_max, s.cond
                except ValueError:  # degenerate angle: the population Hessian is undefined there
                    lo = hi = cond = math.nan
                out |= {f"pop_{name}_lmin": lo, f"pop_{name}_lmax": hi, f"pop_{name}_cond": cond}
        return out

    return evaluate


def validate(cfg: Config) -> None:
    """Settings the shared config checks do not cover; ``ValueError`` naming the setting."""
    if cfg.n_checkpoints < 2 or cfg.steps < cfg.n_checkpoints:
        raise ValueError(
            f"need 2 ≤ n_checkpoints ≤ steps, got n_checkpoints={cfg.n_checkpoints}, "
            f"steps={cfg.steps}"
        )
    if not 1 >= cfg.rate_window[0] > cfg.rate_window[1] > 0:
        raise ValueError(
            f"rate_window must be (hi, lo) with 1 ≥ hi > lo > 0, got {cfg.rate_window}"
        )
    if not 0 < cfg.eta_factor < 2:
        raise ValueError(
            f"eta_factor must be in (0, 2) (stable gradient descent), got {cfg.eta_factor}"
        )
    if cfg.model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {cfg.model!r}")
    every = cfg.steps // cfg.n_checkpoints
    train_config(
        cfg, seed=0, optimizer="sgd", log_every=every, checkpoint_every=every, progress=False
    )


def run(cfg: Config, out: Path) -> dict:
    validate(cfg)
    records: dict[str, dict[str, list]] = {}
    results: dict[str, dict] = {}
    rates: list[dict[str, Any]] = []
    for act in cfg.activations:
        runs = _compare(cfg, act, out)
        records[act] = {name: [recs for recs, _ in per] for name, per in runs.items()}
        own = [runs[name][s][1] for s in range(cfg.seeds) for name in cfg.losses]  # seed-major
        rates += own
        results[act] = _summarise(cfg, records[act], own)
    figures = [
        _spectra_figure(cfg, records, out),
        _convergence_figure(cfg, records, out),
        _rate_figure(cfg, rates, out),
    ]
    return json_safe(
        {
            "results": results,
            "rates": rates,
            "theory_available": any(_population_available(cfg.model, a) for a in cfg.activations),
            "figures": figures,
        }
    )


def _population_available(model: str, activation: str) -> bool:
    """Whether :func:`sobolev.theory.hessian_spectrum` applies: shallow ReLU students."""
    return model == "shallow" and activation == "relu"


def _compare(cfg: Config, act: str, out: Path) -> dict[str, list[tuple[list[dict], dict]]]:
    """Gradient descent on every loss with activation ``act`` over paired seeds, each at η =
    ``eta_factor``/λ_max of its own loss's Hessian at the initial student: per loss, per seed,
    the records and the run's rates (:func:`_rate`, with its activation, loss, seed and η)."""
    dtype = getattr(torch, cfg.dtype)

    def prepare(s: int) -> tuple[torch.Tensor, dict, Callable]:
        seed_everything(10_000 + s)
        teacher = make_network(cfg.model, cfg.d, cfg.teacher_width, act, cfg.depth).to(dtype)
        gen = torch.Generator().manual_seed(20_000 + s)
        x_train = torch.randn(cfg.n_train, cfg.d, generator=gen, dtype=dtype)
        x_test = torch.randn(cfg.n_test, cfg.d, generator=gen, dtype=dtype)
        full = derivatives(teacher, x_train, max(map(loss_order, cfg.losses)), create_graph=False)
        stacks = {name: tuple(full[: loss_order(name) + 1]) for name in cfg.losses}
        evaluate = _spectra_evaluator(cfg, x_train, stacks, x_test, teacher, act)
        return x_train, stacks, evaluate

    def train(name: str, s: int, shared: tuple) -> tuple[list[dict], dict[str, Any]]:
        x_train, stacks, evaluate = shared
        student = make_network(cfg.model, cfg.d, cfg.width, act, cfg.depth).to(dtype)
        loss = SobolevLoss(loss_order(name))
        lam_max0 = spectrum_edges(
            LossHessian(student, loss, (x_train, *stacks[name])), dense_max=cfg.dense_max
        ).lambda_max
        eta = cfg.eta_factor / lam_max0
        every = cfg.steps // cfg.n_checkpoints
        hist = fit(
            student,
            loss,
            (x_train, *stacks[name]),
            train_config(
                cfg,
                seed=s,
                optimizer="sgd",
                lr=eta,
                log_every=every,
                checkpoint_every=every,
                progress=False,
            ),
            out_dir=out / act / name / f"seed{s}",
            evaluate=evaluate,
            desc=f"{act} {name} seed {s}",
        )
        rate = _rate(hist.records, name, eta, cfg.rate_window)
        return hist.records, {"activation": act, "loss": name, "seed": s, "eta": eta, **rate}

    return paired_runs(cfg.losses, range(cfg.seeds), train, prepare)


def _rate(recs: list[dict], name: str, eta: float, window: tuple[float, float]) -> dict[str, float]:
    """Measured log-loss slope per step while the loss is within ``window`` (relative to its initial
    value; the asymptotic linear regime above the round-off floor), and the slope predicted from the
    median spectrum of the run's own loss over the same records."""
    loss0 = recs[0]["loss"]
    sel = [r for r in recs if window[1] * loss0 <= r["loss"] <= window[0] * loss0]
    if len(sel) < 2:
        return {
            "measured": math.nan,
            "predicted": math.nan,
            "lambda_min": math.nan,
            "lambda_max": math.nan,
            "window_steps": len(sel),
        }
    lo = statistics.median(r[f"{name}_lmin"] for r in sel)
    hi = statistics.median(r[f"{name}_lmax"] for r in sel)
    return {
        "measured": fitted_rate([r["step"] for r in sel], [r["loss"] for r in sel]),
        "predicted": 2 * math.log(max(gd_contraction(lo, hi, eta), 1e-300)),
        "lambda_min": lo,
        "lambda_max": hi,
        "window_steps": len(sel),
    }


def _median(xs) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


SPECTRUM = ("lmin", "lmax", "cond")


def _per_seed(cfg: Config, run: list[dict], rate: dict[str, float]) -> dict[str, float]:
    """One seed's numbers: its step size, rates, final loss and errors, and the spectrum edges of
    every loss's Hessian at its first and last checkpoint (``init_H1_cond``, ``final_L2_lmin``,
    …)."""
    return {
        "eta": rate["eta"],
        "rate_measured": rate["measured"],
        "rate_predicted": rate["predicted"],
        "final_loss": run[-1]["loss"],
        "value_rel_err": run[-1]["d0_rel"],
        "grad_rel_err": run[-1]["d1_rel"],
        **{
            f"{when}_{l}_{q}": rec[f"{l}_{q}"]
            for when, rec in (("init", run[0]), ("final", run[-1]))
            for l in cfg.losses
            for q in SPECTRUM
        },
    }


def _summarise(cfg: Config, per_loss: dict[str, list], rates: list[dict]) -> dict[str, Any]:
    """Per loss: :func:`sobolev_lab.seeds.over_seeds` of the seeds' numbers (see
    :func:`_per_seed`), with the medians of the spectrum edges also under ``init`` and ``final``,
    the time to each value error, and the population spectra (shallow ReLU)."""
    out: dict[str, Any] = {}
    for name, runs in per_loss.items():
        own = [r for r in rates if r["loss"] == name]  # in seed order, like runs
        res = over_seeds([_per_seed(cfg, run, rate) for run, rate in zip(runs, own)])
        out[name] = {
            **res,
            **{
                when: {f"{l}_{q}": res[f"{when}_{l}_{q}"] for l in cfg.losses for q in SPECTRUM}
                for when in ("init", "final")
            },
            "reach_value_err": reach_over_seeds(runs, "d0_rel", cfg.thresholds),
        }
        if (
            "pop_L2_cond" in runs[0][0]
        ):  # "final": the last checkpoint where the population Hessians exist
            last = [
                next((r for r in reversed(run) if math.isfinite(r["pop_H1_lmax"])), run[0])
                for run in runs
            ]
            out[name]["population"] = {
                when: {k: _median(r[k] for r in at) for k in runs[0][0] if k.startswith("pop_")}
                for when, at in (("init", [run[0] for run in runs]), ("final", last))
            }
    return out


def _spectra_figure(cfg: Config, records: dict, out: Path) -> str:
    fig, axes = subplots(3, len(cfg.activations))
    for c, act in enumerate(cfg.activations):
        for r, q in enumerate(("lmax", "lmin", "cond")):
            ax = axes[r, c]
            for name, runs in records[act].items():  # each run's own loss along its own trajectory
                color = LOSS_COLORS.get(name)
                for i, recs in enumerate(runs):
                    ax.plot(
                        [x["step"] for x in recs],
                        [abs(x[f"{name}_{q}"]) for x in recs],
                        color=color,
                        alpha=0.8,
                        label=f"{name} (empirical)" if i == 0 else None,
                    )
                    if f"pop_{name}_{q}" in recs[0]:
                        ax.plot(
                            [x["step"] for x in recs],
                            [x[f"pop_{name}_{q}"] for x in recs],
                            color=color,
                            ls="--",
                            alpha=0.8,
                            label=f"{name} (population ×2)" if i == 0 else None,
                        )
            style_axes(
                ax,
                "GD step",
                {"lmax": "λ_max", "lmin": "|λ_min|", "cond": "λ_max / λ_min"}[q],
                act,
                legend_size=7,
            )
    return save(fig, out / "spectra.png")


def _convergence_figure(cfg: Config, records: dict, out: Path) -> str:
    fig, axes = subplots(2, len(cfg.activations))
    for c, act in enumerate(cfg.activations):
        for r, (key, label) in enumerate(
            (("loss", "training loss (own)"), ("d0_rel", "test value rel. error"))
        ):
            band_plot(
                axes[r, c],
                {f"{l} (η = c/λ_max)": seed_band(records[act][l], key) for l in cfg.losses},
                xlabel="GD step",
                ylabel=label,
                title=act,
            )
    return save(fig, out / "convergence.png")


def _rate_figure(cfg: Config, rates: list[dict], out: Path) -> str:
    fig, axes = subplots(1, 1, size=(4.8, 4.2))
    ax = axes[0, 0]
    markers = dict(zip(cfg.activations, "osD^vP*X"))
    for r in rates:
        ax.scatter(
            -r["predicted"],
            -r["measured"],
            color=LOSS_COLORS.get(r["loss"]),
            marker=markers[r["activation"]],
            s=30,
            alpha=0.8,
        )
    vals = [
        v for r in rates for v in (-r["predicted"], -r["measured"]) if math.isfinite(v) and v > 0
    ]
    if vals:
        lo, hi = min(vals), max(vals)
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
    for name in cfg.losses:
        ax.scatter([], [], color=LOSS_COLORS.get(name), label=name)
    for act, m in markers.items():
        ax.scatter([], [], color="gray", marker=m, label=act)
    ax.set_xlabel("predicted −d log(loss)/step  (from λ_min, λ_max, η)")
    ax.set_ylabel("measured −d log(loss)/step")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save(fig, out / "rates.png")


def tables(summary: dict[str, Any]) -> str:
    """Step sizes, spectra, predicted and measured rates and errors (median [min, max] over seeds,
    with the seeds in which H1 beat L2), condition numbers of both losses along each run, and the
    population spectra (shallow ReLU), from a run's summary."""
    cfg = config_of(Config, summary)
    results = summary["results"]
    rows, thr = [], [f"{t:g}" for t in cfg.thresholds]
    for act, per in results.items():
        for name, r in per.items():
            vs = [
                wins_cell(paired_wins(r, per["L2"], k)) if name != "L2" and "L2" in per else "–"
                for k in ("rate_measured", "value_rel_err")
            ]
            rows.append(
                [
                    act,
                    name,
                    spread_cell(r, "eta"),
                    spread_cell(r, f"init_{name}_lmin"),
                    spread_cell(r, f"init_{name}_lmax"),
                    spread_cell(r, f"init_{name}_cond"),
                    spread_cell(r, f"final_{name}_cond"),
                    spread_cell(r, "rate_predicted"),
                    spread_cell(r, "rate_measured"),
                    vs[0],
                    spread_cell(r, "value_rel_err"),
                    vs[1],
                    *(reach_cell(r["reach_value_err"][t]) for t in thr),
                ]
            )
    note = setting_note(summary, cfg.seeds)
    md = (
        f"### Gradient descent at η = {cfg.eta_factor:g}/λ_max(init) per loss ({note}): "
        f"{cfg.model}, d = {cfg.d}, "
        f"width {cfg.width}, n = {cfg.n_train}, {cfg.steps} full-batch steps; median [min, max] "
        "over seeds; "
        f"rates are d log(loss)/step (more negative = faster)\n\n"
    )
    md += markdown_table(
        [
            "activation",
            "loss",
            "η",
            "λ_min init",
            "λ_max init",
            "κ init",
            "κ final",
            "pred. rate",
            "meas. rate",
            "rate faster than L2's (seeds)",
            "test value err",
            "value err < L2's (seeds)",
            *(f"value err ≤ {t}: steps / s (seeds)" for t in thr),
        ],
        rows,
    )
    both = []
    for act, per in results.items():
        for name, r in per.items():
            cells = [
                spread_cell(r, f"{when}_{l}_cond")
                for when in ("init", "final")
                for l in ("L2", "H1")
            ]
            wins = [
                _paired_within(r, f"{when}_H1_cond", f"{when}_L2_cond")
                for when in ("init", "final")
            ]
            both.append([act, name, cells[0], cells[1], wins[0], cells[2], cells[3], wins[1]])
    if all(l in cfg.losses for l in ("L2", "H1")):
        md += (
            "\n### Condition numbers of both empirical losses at the same parameters, along each "
            f"run ({note})\n\n"
            + markdown_table(
                [
                    "activation",
                    "trajectory",
                    "κ(L2) init",
                    "κ(H1) init",
                    "κ(H1) < κ(L2) init (seeds)",
                    "κ(L2) final",
                    "κ(H1) final",
                    "κ(H1) < κ(L2) final (seeds)",
                ],
                both,
            )
        )
    pop = [
        [act, name, p[w].get("pop_L2_cond"), p[w].get("pop_H1_cond"), w]
        for act, per in results.items()
        for name, r in per.items()
        if (p := r.get("population"))
        for w in ("init", "final")
    ]
    if pop:
        md += (
            "\n### Population Hessians (sobolev.theory) at the same weights, shallow ReLU "
            f"({note}; medians)\n\n"
            + markdown_table(
                ["activation", "trajectory", "κ(L) population", "κ(H) population", "at"], pop
            )
        )
    return md


def _paired_within(result: dict[str, Any], a: str, b: str) -> str:
    """``k/n``: of the n seeds of one :func:`sobolev_lab.seeds.over_seeds` result where entries
    ``a`` and ``b`` are both finite (a condition number is not, where the Hessian is indefinite),
    those with ``a`` < ``b``; ``–`` where there are none."""
    pairs = [
        (p[a], p[b])
        for p in result["per_seed"]
        if all(isinstance(p.get(k), (int, float)) and math.isfinite(p[k]) for k in (a, b))
    ]
    return f"{sum(x < y for x, y in pairs)}/{len(pairs)}" if pairs else "–"
