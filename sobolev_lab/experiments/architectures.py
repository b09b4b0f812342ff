"""1-D targets × architectures × losses: L2 vs H1 vs H2 with Adam then L-BFGS.

arXiv 2509.19773, Fig. 4.

Targets f1 = sin(2πx) + sin(20πx), f2 = x + sin(2πx⁴), f3 = eˣ sin(20x) on [-1, 1] with exact
derivatives; equispaced collocation points, uniform random test points; an MLP (tanh), a
Fourier-feature MLP and a SIREN; Adam, then L-BFGS from half the budget on. Every loss trains the
same initial network with the same optimisers and budget; reported are the held-out relative errors
of value, first and second derivative, and the steps and seconds to reach given value errors.

``Config.paper()`` is the official setting (the official networks, Adam lr 1e-5 for 25,000 epochs,
then L-BFGS lr 0.01 for 25,000 epochs, 20 repeats); the default is ours, scaled to this machine.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sobolev.data import get_function
from sobolev.derivatives import derivatives
from sobolev.losses import SobolevLoss, loss_order
from sobolev.metrics import heldout_evaluator, reach_over_seeds
from sobolev.models import MLP, SIREN, FourierFeatureMLP
from sobolev.models.paper import paper_model
from sobolev.training import fit

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
    finite_band,
    records_or_diverged,
    setting_note,
    train_config,
)

MODELS = ("mlp", "fourier", "siren")
VARIANTS = ("ours", "official")
REACH_KEYS = {"d0_rel": "value rel. err", "d0_mse": "value MSE"}
FINALS = {
    "d0_rel_err": "d0_rel",
    "d1_rel_err": "d1_rel",
    "d2_rel_err": "d2_rel",
    "d0_mse": "d0_mse",
    "train_time_s": "time",
}
"""Summary key -> record key of the final values stored per seed."""


@dataclass
class Config:
    """``model_variant``: ``"ours"`` (tanh MLP with PyTorch's default initialisation; fixed cos+sin
    Fourier features of scale ``ff_sigma`` before a tanh MLP; SIREN with ω₀ = ``siren_w0``) or
    ``"official"`` (the networks of the official code, :mod:`sobolev.models.paper`; ``depth``,
    ``ff_features``, ``ff_sigma`` and ``siren_w0`` do not apply). Adam (``lr``) until step
    ``lbfgs_at``, then L-BFGS (``lbfgs_lr``, ``lbfgs_max_iter`` iterations per step) to ``steps``.
    ``reach_on``: the test error the ``thresholds`` apply to."""

    functions: tuple[str, ...] = ("f1", "f2", "f3")
    models: tuple[str, ...] = MODELS
    losses: tuple[str, ...] = ("L2", "H1", "H2")
    model_variant: str = "ours"
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
    seeds: int = 3
    log_every: int = 20
    thresholds: tuple[float, ...] = (0.1, 0.03, 0.01, 0.003)
    reach_on: str = "d0_rel"
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"

    @classmethod
    def quick(cls) -> Config:
        return cls(
            functions=("f1",),
            n_train=256,
            steps=210,
            lbfgs_at=200,
            lbfgs_max_iter=10,
            seeds=1,
            width=32,
            ff_features=16,
            log_every=10,
        )

    @classmethod
    def paper(cls, quick: bool = False) -> Config:
        """The official ``Architecture/`` code: f1–f3 on 1000 equispaced points of [-1, 1], test MSE
        on 100 uniform random points; the official networks (width 64); unweighted L2 / H1 / H2;
        Adam lr 1e-5 for 25,000 epochs, then L-BFGS (lr 0.01, 20 iterations per epoch, no line
        search, PyTorch's defaults otherwise) for 25,000; 20 repeats; float32. The thresholds on
        the test MSE are ours (the official code reports the mean MSE curve). With ``quick``:
        f1 only, 24 Adam + 6 L-BFGS epochs, 2 repeats."""
        full = cls(
            functions=("f1", "f2", "f3"),
            models=MODELS,
            losses=("L2", "H1", "H2"),
            model_variant="official",
            n_train=1000,
            n_test=100,
            width=64,
            steps=50_000,
            lbfgs_at=25_000,
            lr=1e-5,
            lbfgs_lr=0.01,
            lbfgs_max_iter=20,
            lbfgs_line_search="none",
            seeds=20,
            log_every=100,
            thresholds=(1e-2, 1e-3, 1e-4, 1e-5),
            reach_on="d0_mse",
            dtype="float32",
        )
        return (
            dataclasses.replace(
                full, functions=("f1",), steps=30, lbfgs_at=24, seeds=2, log_every=3
            )
            if quick
            else full
        )


def siren_w0(name: str, cfg: Config) -> float | None:
    """ω₀ of the SIREN model ``name``: ``"siren"`` has ``cfg.siren_w0``, ``"siren@W"`` has W
    (several ω₀ in one comparison, e.g. ``models=siren@1,siren@30``); ``None`` for another
    model or a W that is not a positive number."""
    if name == "siren":
        return cfg.siren_w0
    if not name.startswith("siren@"):
        return None
    try:
        w0 = float(name.removeprefix("siren@"))
    except ValueError:
        return None
    return w0 if math.isfinite(w0) and w0 > 0 else None


def validate(cfg: Config) -> None:
    """Settings the shared config checks do not cover; ``ValueError`` naming the setting."""
    bad = [m for m in cfg.models if m not in MODELS and siren_w0(m, cfg) is None]
    if bad or not cfg.models or len(set(cfg.models)) != len(cfg.models):
        raise ValueError(
            f"models must be distinct names among {MODELS} or 'siren@W' (SIREN with ω₀ = W > 0), "
            f"got {cfg.models}"
        )
    if cfg.model_variant == "official" and any(m not in MODELS for m in cfg.models):
        raise ValueError("models: 'siren@W' is a network of ours, not of model_variant 'official'")
    for name, value, allowed in (
        ("model_variant", (cfg.model_variant,), VARIANTS),
        ("reach_on", (cfg.reach_on,), tuple(REACH_KEYS)),
        ("lbfgs_line_search", (cfg.lbfgs_line_search,), ("none", "strong_wolfe")),
    ):
        if not value or any(v not in allowed for v in value):
            raise ValueError(
                f"{name} must be among {allowed}, got {value if name == 'models' else value[0]!r}"
            )
    if not 0 <= cfg.lbfgs_at <= cfg.steps:
        raise ValueError(f"lbfgs_at must be between 0 and steps ({cfg.steps}), got {cfg.lbfgs_at}")
    train_config(cfg, seed=0, checkpoint_every=max(cfg.steps // 4, 1), progress=False)


def make_model(name: str, cfg: Config) -> nn.Module:
    """The 1-D network ``name`` (one of ``MODELS``, or ``"siren@W"``) of the config's variant and
    sizes."""
    if name not in MODELS and siren_w0(name, cfg) is None:
        raise ValueError(f"models must be among {MODELS} or 'siren@W', got {name!r}")
    if cfg.model_variant == "official":
        return paper_model(name, cfg.width)
    if name == "mlp":
        return MLP(1, 1, cfg.width, cfg.depth, "tanh")
    if name == "fourier":
        return FourierFeatureMLP(1, 1, cfg.ff_features, cfg.ff_sigma, cfg.width, cfg.depth, "tanh")
    return SIREN(1, 1, cfg.width, cfg.depth, siren_w0(name, cfg))


def _compare(cfg: Config, fname: str, mname: str, out: Path) -> dict[str, list]:
    """Every loss on target ``fname`` with network ``mname`` over paired seeds: per loss, each
    seed's records (continued as +inf where a seed diverged)."""
    dtype = getattr(torch, cfg.dtype)
    fn = get_function(fname)
    x_train = fn.linspace(cfg.n_train, dtype)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    evaluate = heldout_evaluator(fn, fn.uniform(cfg.n_test, generator=gen, dtype=dtype), order=2)
    targets = {l: derivatives(fn, x_train, loss_order(l), create_graph=False) for l in cfg.losses}

    def train(lname: str, seed: int, _: None) -> list[dict]:
        rep = seed - cfg.seed
        model = make_model(mname, cfg)
        run_dir = out / fname / mname / lname / f"rep{rep}"
        tc = train_config(cfg, seed=seed, checkpoint_every=max(cfg.steps // 4, 1), progress=False)
        return records_or_diverged(
            lambda: fit(
                model,
                SobolevLoss(loss_order(lname)),
                (x_train, *targets[lname]),
                tc,
                out_dir=run_dir,
                evaluate=evaluate,
                desc=f"{fname} {mname} {lname} #{rep}",
            ),
            run_dir,
            cfg.steps,
            cfg.log_every,
        )

    return paired_runs(cfg.losses, range(cfg.seed, cfg.seed + cfg.seeds), train)


def run(cfg: Config, out: Path) -> dict:
    validate(cfg)
    records: dict[tuple[str, str], dict[str, list]] = {}
    results: dict[str, dict] = {}
    for fname in cfg.functions:
        results[fname] = {}
        for mname in cfg.models:
            records[(fname, mname)] = _compare(cfg, fname, mname, out)
            results[fname][mname] = {
                lname: {
                    **finals_over_seeds(runs, FINALS),
                    "reach_value_err": reach_over_seeds(runs, cfg.reach_on, cfg.thresholds),
                }
                for lname, runs in records[(fname, mname)].items()
            }
    figures = [_curves(cfg, records, out, x) for x in ("step", "time")]
    return json_safe({"results": results, "figures": figures})


def _curves(cfg: Config, records: dict, out: Path, x: str) -> str:
    fig, axes = subplots(len(cfg.functions), len(cfg.models))
    for r, fname in enumerate(cfg.functions):
        for c, mname in enumerate(cfg.models):
            ax = axes[r, c]
            band_plot(
                ax,
                {
                    l: finite_band(seed_band(records[(fname, mname)][l], cfg.reach_on, x))
                    for l in cfg.losses
                },
                xlabel="step" if x == "step" else "training time (s)",
                ylabel=f"test {REACH_KEYS[cfg.reach_on]}",
                title=f"{fname}, {mname} ({cfg.model_variant})",
            )
            ax.axvline(
                cfg.lbfgs_at if x == "step" else _switch_time(records[(fname, mname)], cfg),
                color="gray",
                ls=":",
                lw=1,
            )
    return save(fig, out / f"curves_{x}.png")


def _switch_time(per_loss: dict, cfg: Config) -> float:
    """Median training time at the Adam → L-BFGS switch, over losses and seeds (for the figure)."""
    times = [
        rec["time"]
        for runs in per_loss.values()
        for recs in runs
        for rec in recs
        if rec["step"] == cfg.lbfgs_at
    ]
    return statistics.median(times) if times else float("nan")


def tables(summary: dict[str, Any]) -> str:
    """Final test errors (median [min, max] over seeds), in how many seeds each Sobolev loss ended
    below L2 in value error, and the time to each test-error level, from a run's summary."""
    cfg = config_of(Config, summary)
    thr = [f"{t:g}" for t in cfg.thresholds]
    rows = []
    for f, per_m in summary["results"].items():
        for m, per_l in per_m.items():
            for l, r in per_l.items():
                vs = (
                    wins_cell(paired_wins(r, per_l["L2"], "d0_mse"))
                    if l != "L2" and "L2" in per_l
                    else "–"
                )
                rows.append(
                    [
                        f,
                        m,
                        l,
                        spread_cell(r, "d0_mse"),
                        spread_cell(r, "d0_rel_err"),
                        spread_cell(r, "d1_rel_err"),
                        spread_cell(r, "d2_rel_err"),
                        vs,
                        diverged_seeds(r, "d0_mse"),
                        spread_cell(r, "train_time_s"),
                        *(reach_cell(r["reach_value_err"][t]) for t in thr),
                    ]
                )
    described = {
        "mlp": f"tanh MLP {cfg.width}×{cfg.depth}",
        "fourier": f"Fourier features ({cfg.ff_features}, σ = {cfg.ff_sigma:g}) + tanh MLP",
        "siren": f"SIREN ω₀ = {cfg.siren_w0:g}",
    }
    models = (
        "the official networks (trainable sin(2π·) features, plain sine MLP, Kaiming/Xavier init)"
        if cfg.model_variant == "official"
        else ", ".join(
            described[m] if m in described else f"SIREN ω₀ = {siren_w0(m, cfg):g}"
            for m in cfg.models
        )
    )
    head = (
        f"### 1-D targets × architectures ({setting_note(summary, cfg.seeds)}): {models}; Adam lr "
        f"{cfg.lr:g} for "
        f"{cfg.lbfgs_at} steps, then L-BFGS lr {cfg.lbfgs_lr:g} ({cfg.lbfgs_max_iter} "
        f"iterations/step) to {cfg.steps}; "
        f"{cfg.n_train} training, {cfg.n_test} test points; median [min, max] over seeds; time to "
        "a test "
        f"{REACH_KEYS[cfg.reach_on]}: median over the seeds that reach it\n\n"
    )
    return head + markdown_table(
        [
            "target",
            "model",
            "loss",
            "test value MSE",
            "value rel. err",
            "u' rel. err",
            "u'' rel. err",
            "value MSE < L2's (seeds)",
            "diverged (seeds)",
            "train time (s)",
            *(f"{REACH_KEYS[cfg.reach_on]} ≤ {t}: steps / s (seeds)" for t in thr),
        ],
        rows,
    )
