"""Differential machine learning (Huge & Savine 2020): pricing surrogates from noisy pathwise
labels.

Each training sample is one Monte-Carlo path (:mod:`sobolev.finance`): spot x at t1, the payoff
at t2 and its pathwise derivative ∂payoff/∂x. *Standard* training fits the payoffs (L2);
*differential* training fits payoffs and pathwise deltas (H1 with the dimension-aware weighting,
value weight 1/(1+d), derivative weight d/(1+d) on per-entry means). Both train the same network
from the same initialisation on the same paths (paired seeds), on standardised data
(:class:`sobolev.normalize.Normalizer`), and are scored against the closed-form price and deltas
on a held-out test set, for d ∈ ``dims`` (1: Black–Scholes call; >1: correlated Bachelier basket)
and training sizes ``sizes``. "Sample efficiency": the training size at which standard training
matches differential training at each size in ``match_at`` (log–log interpolation per seed).

A higher-dimensional case (``high_d``) compares, at equal cost of the network's derivative:
full pathwise gradients; one derivative label per sample along a fixed random direction
(forward mode through the simulation, what a simulator with tangent mode gives cheaply); the full
gradients seen along one fresh random direction per step (``SobolevLoss(directions=1)``).

Training follows the paper's protocol in shape: Adam, ``epochs`` epochs of ``batches_per_epoch``
batches (batch ≥ ``min_batch``), here with a cosine-decaying learning rate and the batch and
number of steps capped (``max_batch``, ``max_steps``) to fit the CPU budget.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sobolev.derivatives import DerivativeStack, derivatives
from sobolev.ensemble_training import fit_ensemble
from sobolev.finance import MODELS, HeldOutSet, PricingModel, pricing_model
from sobolev.losses import SobolevLoss, sobolev_loss
from sobolev.models import MLP, Ensemble, EnsembleMean
from sobolev.normalize import Normalizer, Surrogate
from sobolev.training import ONE_CYCLE_KNOTS, fit

from ..report import (
    fmt,
    json_safe,
    markdown_table,
    save,
    spread_cell,
    style_axes,
    subplots,
    wins_cell,
)
from ..seeds import over_seeds, paired_runs, paired_wins
from .seeded import config_of, fit_seeds, train_config

#: training methods of the main comparison: name -> Sobolev order
METHODS = {"standard": 0, "differential": 1}
#: label variants of the high-dimensional case
HIGH_D_VARIANTS = ("standard", "differential", "directional labels", "random direction per step")
COLORS = {
    "standard": "tab:blue",
    "differential": "tab:orange",
    "directional labels": "tab:green",
    "random direction per step": "tab:red",
}
METRICS = {"price_rmse": "test price RMSE", "delta_rmse": "test delta RMSE"}
#: the learning-rate schedules of the experiment (``Config.schedule``)
DML_SCHEDULES = ("cosine", "one-cycle")
#: initialisations of the network (``Config.init``)
INITS = ("torch", "glorot")


@dataclass
class Config:
    """``dims``: with ``model="auto"`` 1 is the Black–Scholes call, >1 the Bachelier basket
    (``"bachelier"``: the basket at every d, d = 1 the one-asset Bachelier call); ``antithetic``:
    labels averaged over the antithetic pair of paths (:mod:`sobolev.finance`); ``sizes``:
    training set sizes (nested: the first n paths of one simulation per seed); network ``depth``
    × ``width`` ``activation``; ``high_d`` = 0 skips the high-dimensional case. ``schedule``:
    ``"cosine"`` (to ``lr·lr_min_factor``) or ``"one-cycle"`` (the notebooks' rates, constant
    within an epoch, peak ``lr``); ``input_weights``: the derivative term weighs each input by
    λ_j (:meth:`sobolev.Normalizer.derivative_weights`, the notebooks' ``lambda_j``; seed by
    seed, as λ_j depend on each seed's labels); ``init``: ``"torch"`` (PyTorch's default) or
    ``"glorot"`` (Glorot-uniform weights, zero biases: TensorFlow's dense layers, the
    notebooks'). Seeds: ``basket_seed`` (the basket's correlation, weights and volatilities),
    ``paths_seed`` (seed s simulates its paths from ``paths_seed + s``), ``test_seed`` (the test
    states)."""

    dims: tuple[int, ...] = (1, 7, 20)
    model: str = "auto"
    antithetic: bool = True
    sizes: tuple[int, ...] = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
    match_at: tuple[int, ...] = (1024, 8192)
    seeds: int = 5
    width: int = 20
    depth: int = 4
    activation: str = "softplus"
    members: int = 1
    epochs: int = 100
    min_steps: int = 0
    batches_per_epoch: int = 16
    min_batch: int = 256
    max_batch: int = 1024
    max_steps: int = 1600
    lr: float = 1e-2
    lr_min_factor: float = 0.01
    n_test: int = 4096
    high_d: int = 100
    high_d_sizes: tuple[int, ...] = (1024, 8192)
    basket_seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    ensemble: bool = True
    schedule: str = "cosine"
    input_weights: bool = False
    init: str = "torch"
    paths_seed: int = 1000
    test_seed: int = 7

    @classmethod
    def paper(cls, quick: bool = False) -> Config:
        """The reference notebooks' recipe (Huge & Savine, ``DifferentialMLTF2.ipynb``): 4×20
        softplus, Glorot-uniform weights and zero biases, float32, standardised data, λ_j,
        α = 1/(1+d) (``weighting="dimension"``), Adam with the one-cycle rates (peak 0.1,
        constant within an epoch), batch max(256, m/16), 100 epochs, antithetic labels; the
        Black–Scholes call (d = 1) and baskets d = 7 and 20 at the notebooks' sizes (1024 to
        16384) and at 65536 samples, 5 seeds; tables put the notebook's stored errors
        (:data:`NOTEBOOK`) beside ours. With ``quick``: d = 1 and 7,
        1024 and 4096 samples, 10 epochs, 2 seeds."""
        full = cls(
            dims=(1, 7, 20),
            sizes=(1024, 4096, 8192, 16384, 65536),
            match_at=(1024,),
            seeds=5,
            width=20,
            depth=4,
            activation="softplus",
            epochs=100,
            batches_per_epoch=16,
            min_batch=256,
            max_batch=2**30,
            max_steps=2**30,
            lr=0.1,
            n_test=4096,
            high_d=0,
            antithetic=True,
            dtype="float32",
            schedule="one-cycle",
            input_weights=True,
            init="glorot",
        )
        if quick:
            return dataclasses.replace(
                full, dims=(1, 7), sizes=(1024, 4096), epochs=10, seeds=2, n_test=1024
            )
        return full

    @classmethod
    def quick(cls) -> Config:
        return cls(
            dims=(1, 7),
            sizes=(1024, 4096),
            match_at=(1024,),
            seeds=2,
            max_steps=400,
            n_test=1024,
            high_d=20,
            high_d_sizes=(1024,),
        )

    def __post_init__(self) -> None:
        for name in ("dims", "sizes", "high_d_sizes"):
            vals = getattr(self, name)
            if not vals or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in vals
            ):
                raise ValueError(
                    f"{name} must be a non-empty tuple of positive integers, got {vals!r}"
                )
        if list(self.sizes) != sorted(set(self.sizes)) or self.sizes[0] < 2:
            raise ValueError(f"sizes must be increasing and ≥ 2, got {self.sizes!r}")
        if any(n not in self.sizes for n in self.match_at):
            raise ValueError(f"match_at must be among sizes {self.sizes}, got {self.match_at!r}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be ≥ 1, got {self.seeds}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.model == "black-scholes" and set(self.dims) != {1}:
            raise ValueError(
                f"model 'black-scholes' has one asset: dims must be 1, got {self.dims}"
            )
        if self.schedule not in DML_SCHEDULES:
            raise ValueError(f"schedule must be one of {DML_SCHEDULES}, got {self.schedule!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.min_batch > self.max_batch:
            raise ValueError(f"min_batch ({self.min_batch}) must be ≤ max_batch ({self.max_batch})")

    def plan(self, n: int) -> tuple[int, int]:
        """(batch size, Adam steps) for n samples: :meth:`epochs_at` epochs of batches of
        n/``batches_per_epoch`` (clipped to [min_batch, max_batch]), at most ``max_steps``."""
        bs = self._batch(n)
        return bs, min(self.epochs_at(n) * math.ceil(n / bs), self.max_steps)

    def epochs_at(self, n: int) -> int:
        """Epochs on n samples: ``epochs``, or more where that many epochs would be fewer than
        ``min_steps`` steps (small training sets)."""
        return max(self.epochs, math.ceil(self.min_steps / math.ceil(n / self._batch(n))))

    def _batch(self, n: int) -> int:
        return min(max(self.min_batch, n // self.batches_per_epoch), self.max_batch, n)


def validate(cfg: Config) -> None:
    """Checks beyond the shared ones, before anything is written: the training settings of every
    training size, as :func:`_train` builds them."""
    for n in {*cfg.sizes, *(cfg.high_d_sizes if cfg.high_d else ())}:
        bs, steps = cfg.plan(n)
        train_config(
            cfg,
            seed=0,
            steps=steps,
            schedule=cfg.schedule,
            batch_size=bs,
            log_every=max(steps, 1),
            checkpoint_every=0,
            progress=False,
        )


def directional_objective(
    d: int,
) -> Callable[[nn.Module, tuple[Tensor, ...]], tuple[Tensor, dict[str, Tensor]]]:
    """H1 objective on labels given along one fixed direction per sample: batch ``(x, y, w, dw)``
    with x, w (B, d), y (B, 1), dw (B, 1, 1) = ∂y/∂x·w; divided by 1 + d like
    ``SobolevLoss(weighting="dimension")`` (E(e·w)² = ‖e‖² for w ~ N(0, I)). On an
    :class:`sobolev.models.Ensemble` (member-major rows), one loss per member."""

    def objective(model: nn.Module, batch: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Tensor]]:
        x, y, w, dw = batch
        V = w[None, None]  # (S=1, k=1, B, d)
        n = model.members if isinstance(model, Ensemble) else 0
        total, terms = sobolev_loss(
            derivatives(model, x, 1, directions=V),
            DerivativeStack((y, dw), V),
            reduction="none" if n else "mean",
            return_terms=True,
        )
        if n:  # per-sample values → one mean per member
            total = total.reshape(n, -1).mean(1)
            terms = {k: v.reshape(n, -1).mean(1) for k, v in terms.items()}
        return total / (1 + d), terms

    return objective


def heldout_errors(surrogate: Surrogate, test: HeldOutSet) -> dict[str, float]:
    """RMSE of the surrogate's price, of its deltas (all entries) and of its first asset's delta
    (the notebooks' delta error) against the closed form; ``price_spread``: the standard
    deviation of the predicted prices over that of the true ones (≈ 1 for a fit, ≈ 0 for a
    collapsed, flat prediction)."""
    price, delta = surrogate.predict(test.x)
    err = delta.double() - test.delta
    return {
        "price_rmse": float((price.double() - test.price).square().mean().sqrt()),
        "delta_rmse": float(err.square().mean().sqrt()),
        "delta1_rmse": float(err[..., 0].square().mean().sqrt()),
        "price_spread": float(price.double().std() / test.price.std()),
    }


def match_size(sizes: tuple[int, ...], errors: list[float], target: float) -> float | None:
    """The smallest training size at which the error curve reaches ``target``, interpolated
    linearly on the log–log curve between the sizes around the first crossing; ``sizes[0]`` if
    the curve starts below target, ``None`` if it never reaches it."""
    if errors[0] <= target:
        return float(sizes[0])
    for (n0, e0), (n1, e1) in zip(zip(sizes, errors), zip(sizes[1:], errors[1:])):
        if e1 <= target:
            t = (math.log(target) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
    return None


def power_law_size(sizes: tuple[int, ...], errors: list[float], target: float) -> float | None:
    """The size at which a least-squares power law err = c·nᵃ through the curve reaches ``target``
    (an extrapolation; ``None`` unless the fitted error decreases with n)."""
    lx = [math.log(n) for n in sizes]
    ly = [math.log(e) for e in errors]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if len(sizes) < 2 or sxx == 0:
        return None
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx
    return math.exp(mx + (math.log(target) - my) / slope) if slope < 0 else None


class EpochOneCycle:
    """The notebooks' one-cycle rate factor, constant within an epoch: ``ONE_CYCLE_KNOTS``
    interpolated at ``epoch / epochs`` (:data:`sobolev.training.ONE_CYCLE_KNOTS`)."""

    def __init__(self, steps_per_epoch: int, epochs: int) -> None:
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs

    def __call__(self, step: int) -> float:
        t = (step // self.steps_per_epoch) / self.epochs
        return float(np.interp(t, *zip(*ONE_CYCLE_KNOTS)))


def _settings(cfg: Config, seed: int, n: int) -> Any:
    """The training settings of a network on ``n`` samples."""
    bs, steps = cfg.plan(n)
    schedule = (
        EpochOneCycle(math.ceil(n / bs), cfg.epochs_at(n))
        if cfg.schedule == "one-cycle"
        else "cosine"
    )
    return train_config(
        cfg,
        seed=seed,
        steps=steps,
        schedule=schedule,
        batch_size=bs,
        log_every=max(steps, 1),
        checkpoint_every=0,
        progress=False,
    )


def network(cfg: Config, d: int) -> nn.Module:
    """A fresh ``depth`` × ``width`` MLP on d inputs, initialised as ``cfg.init`` says."""
    net = MLP(d, 1, cfg.width, cfg.depth, cfg.activation)
    if cfg.init == "glorot":
        for layer in net.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    return net


def _train(
    cfg: Config, d: int, seed: int, objective: Any, data: tuple[Tensor, ...]
) -> tuple[nn.Module, float]:
    """A fresh network trained on ``data`` (in a :func:`sobolev_lab.seeds.paired_runs` run, which
    seeds its initialisation); returns it and its training seconds."""
    settings = _settings(cfg, seed, data[0].shape[0])
    if cfg.members > 1:  # the mean of networks from their own initialisations and data orders
        nets = [network(cfg, d) for _ in range(cfg.members)]
        member_seeds = [cfg.members * seed + j for j in range(cfg.members)]
        hists = fit_ensemble(nets, objective, data, settings, seeds=member_seeds)
        return EnsembleMean(nets).cpu(), hists[0].records[-1]["time"]
    net = network(cfg, d)
    hist = fit(net, objective, data, settings)
    return net.cpu(), hist.records[-1]["time"]


def _train_seeds(
    cfg: Config, d: int, seeds: list[int], objective: Any, data: list[tuple[Tensor, ...]]
) -> list[tuple[nn.Module, float]] | None:
    """:func:`_train` for every seed at once (``data`` per seed; an ensemble, whose seconds are
    those of all seeds together), or ``None`` where an ensemble does not apply."""
    if not cfg.ensemble or cfg.members > 1 or not isinstance(objective, SobolevLoss):
        return None
    by_seed = dict(zip(seeds, data))
    nets, records = fit_seeds(
        lambda: network(cfg, d),
        objective,
        lambda s: by_seed[s],
        _settings(cfg, seeds[0], data[0][0].shape[0]),
        seeds,
    )
    return [(net.cpu(), r[-1]["time"]) for net, r in zip(nets, records)]


def _paths(model: PricingModel, n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return model.draw_spots(n, g), model.draw_noise(n, g)


def _timed(f: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def _labelled_paths(
    model: PricingModel, n: int, seed: int, direction_seed: int | None = None
) -> dict[str, Any]:
    """One seed's ``n`` training paths (simulated from ``seed``): spots ``x``, payoffs ``y``,
    pathwise deltas ``dydx`` and the seconds their simulation took (``label_s``); with
    ``direction_seed``, also one random direction ``w`` per path (drawn in normalised
    coordinates, w ~ N(0, I)), its directional derivative ``dv`` along ``σ_x·w`` (the
    simulator's units; forward mode) and their seconds (``dir_s``), and the normaliser of all
    ``n`` paths (``norm_all``)."""
    x, z = _paths(model, n, seed)
    model.labels(x[:2], z[:2])  # warm-up: time the simulation, not the first call's set-up
    if direction_seed is not None:
        model.labels(x[:2], z[:2], x[:2])  # and of the directional mode
    (y, dydx), label_s = _timed(lambda: model.labels(x, z))
    paths = {"x": x, "y": y, "dydx": dydx, "label_s": label_s}
    if direction_seed is not None:
        norm_all = Normalizer.fit(x, y)
        gen = torch.Generator().manual_seed(direction_seed)
        w = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        (_, dv), dir_s = _timed(lambda: model.labels(x, z, w * norm_all.x_std))
        paths |= {"w": w, "dv": dv, "dir_s": dir_s, "norm_all": norm_all}
    return paths


def label_noise(model: PricingModel, x: Tensor, y: Tensor, dydx: Tensor) -> dict[str, float]:
    """RMS of the labels' Monte-Carlo noise around the closed form at the training states: the
    price labels against the price, the delta labels against the deltas (all entries, and the
    first asset's)."""
    err = dydx - model.delta(x)
    return {
        "price_rmse": float((y - model.price(x)).square().mean().sqrt()),
        "delta_rmse": float(err.square().mean().sqrt()),
        "delta1_rmse": float(err[..., 0].square().mean().sqrt()),
    }


def _compare(cfg: Config, d: int) -> dict[str, Any]:
    """Standard vs differential for one dimension: errors per method and size, and sample
    efficiency."""
    model = pricing_model(d, seed=cfg.basket_seed, kind=cfg.model, antithetic=cfg.antithetic)
    test = model.test_set(cfg.n_test, torch.Generator().manual_seed(cfg.test_seed))
    n_max = max(cfg.sizes)

    def problem(setting: tuple[int, str], p: dict[str, Any]) -> tuple:
        n, name = setting
        norm = Normalizer.fit(p["x"][:n], p["y"][:n])
        k = METHODS[name]
        return norm, norm.transform(p["x"][:n], p["y"][:n], p["dydx"][:n])[: 2 + k]

    def loss(setting: tuple[int, str], p: dict[str, Any], norm: Normalizer) -> SobolevLoss:
        n, name = setting
        lam = (
            norm.derivative_weights(p["dydx"][:n]) if cfg.input_weights and METHODS[name] else None
        )
        return SobolevLoss(METHODS[name], weighting="dimension", input_weights=lam)

    def result(setting: tuple[int, str], p: dict[str, Any], norm, net, secs) -> dict[str, float]:
        return {
            **heldout_errors(norm.wrap(net), test),
            "train_time_s": secs,
            "label_time_s": p["label_s"] * setting[0] / n_max,
        }

    def train(setting: tuple[int, str], s: int, p: dict[str, Any]) -> dict[str, float]:
        norm, data = problem(setting, p)
        return result(setting, p, norm, *_train(cfg, d, s, loss(setting, p, norm), data))

    def train_seeds(setting: tuple[int, str], seeds: list[int], ps: list) -> list | None:
        if cfg.input_weights and METHODS[setting[1]]:
            return None  # λ_j differ from seed to seed: one objective cannot serve every member
        problems = [problem(setting, p) for p in ps]
        objective = loss(setting, ps[0], problems[0][0])
        trained = _train_seeds(cfg, d, seeds, objective, [data for _, data in problems])
        if trained is None:
            return None
        return [result(setting, p, pr[0], *t) for p, pr, t in zip(ps, problems, trained)]

    noise: list[dict[str, float]] = []

    def prepare(s: int) -> dict[str, Any]:
        p = _labelled_paths(model, n_max, cfg.paths_seed + s)
        noise.append(label_noise(model, p["x"], p["y"], p["dydx"]))
        return p

    settings = [(n, m) for n in cfg.sizes for m in METHODS]
    runs = paired_runs(
        settings,
        range(cfg.seeds),
        train,
        prepare,
        train_seeds=train_seeds,
    )
    res: dict[str, Any] = {
        m: {str(n): over_seeds(runs[(n, m)]) for n in cfg.sizes} for m in METHODS
    }
    eff: dict[str, Any] = {}
    for metric in METRICS:
        eff[metric] = {}
        for n0 in cfg.match_at:
            rows = []
            for s in range(cfg.seeds):
                std = [runs[(n, "standard")][s][metric] for n in cfg.sizes]
                target = runs[(n0, "differential")][s][metric]
                hit = match_size(cfg.sizes, std, target)
                rows.append(
                    {
                        "standard_size": hit,
                        "ratio": None if hit is None else hit / n0,
                        "power_law_size": power_law_size(cfg.sizes, std, target),
                    }
                )
            r = over_seeds(rows)
            r["reached"] = sum(row["standard_size"] is not None for row in rows)
            eff[metric][str(n0)] = r
    res["efficiency"] = eff
    res["label_noise"] = over_seeds(noise)
    return res


def _high_d_problem(
    variant: str, n: int, p: dict[str, Any], d: int
) -> tuple[Any, tuple[Tensor, ...], Normalizer, float]:
    """Objective, normalised training data, normaliser and label seconds of ``variant`` on the
    first ``n`` of one seed's paths (:func:`_labelled_paths` with directions)."""
    norm = Normalizer.fit(p["x"][:n], p["y"][:n])
    x_n, y_n, g_n = norm.transform(p["x"][:n], p["y"][:n], p["dydx"][:n])
    if variant == "directional labels":
        w_n, dv_n = norm.directional_to(p["w"][:n] * p["norm_all"].x_std, p["dv"][:n])
        return directional_objective(d), (x_n, y_n, w_n, dv_n), norm, p["dir_s"]
    losses = {
        "standard": SobolevLoss(0, weighting="dimension"),
        "differential": SobolevLoss(1, weighting="dimension"),
        "random direction per step": SobolevLoss(1, weighting="dimension", directions=1),
    }
    data = (x_n, y_n) if variant == "standard" else (x_n, y_n, g_n)
    return losses[variant], data, norm, p["label_s"]


def _high_d(cfg: Config) -> dict[str, Any]:
    """Full pathwise gradients vs one derivative label per sample (fixed direction) vs the full
    gradient along one fresh random direction per step, at d = ``high_d``."""
    d = cfg.high_d
    model = pricing_model(d, seed=cfg.basket_seed, kind=cfg.model, antithetic=cfg.antithetic)
    test = model.test_set(cfg.n_test, torch.Generator().manual_seed(cfg.test_seed))
    n_max = max(cfg.high_d_sizes)

    def prepare(s: int) -> dict[str, Any]:
        return _labelled_paths(model, n_max, cfg.paths_seed + s, direction_seed=2_000 + s)

    def result(n: int, norm: Normalizer, label_s: float, net, secs: float) -> dict[str, float]:
        return {
            **heldout_errors(norm.wrap(net), test),
            "train_time_s": secs,
            "label_time_s": label_s * n / n_max,
        }

    def train(setting: tuple[int, str], s: int, p: dict[str, Any]) -> dict[str, float]:
        n, variant = setting
        objective, data, norm, label_s = _high_d_problem(variant, n, p, d)
        return result(n, norm, label_s, *_train(cfg, d, s, objective, data))

    def train_seeds(setting: tuple[int, str], seeds: list[int], ps: list) -> list | None:
        n, variant = setting
        problems = [_high_d_problem(variant, n, p, d) for p in ps]
        trained = _train_seeds(cfg, d, seeds, problems[0][0], [pr[1] for pr in problems])
        if trained is None:
            return None
        return [result(n, pr[2], pr[3], *t) for pr, t in zip(problems, trained)]

    settings = [(n, v) for n in cfg.high_d_sizes for v in HIGH_D_VARIANTS]
    runs = paired_runs(settings, range(cfg.seeds), train, prepare, train_seeds=train_seeds)
    return {
        v: {str(n): over_seeds(runs[(n, v)]) for n in cfg.high_d_sizes} for v in HIGH_D_VARIANTS
    }


def run(cfg: Config, out: Path) -> dict:
    results = {str(d): _compare(cfg, d) for d in cfg.dims}
    summary: dict[str, Any] = {"results": results}
    if cfg.high_d:
        summary["high_d"] = _high_d(cfg)
    summary["figures"] = [_figure(cfg, results, out)]
    if cfg.high_d:
        summary["figures"].append(_high_d_figure(cfg, summary["high_d"], out))
    return json_safe(summary)


def merge(summaries: list[dict]) -> tuple[dict, dict]:
    """Runs that differ only in their ``dims`` (one dimension per session, say) as one run: the
    merged config (the dims in the order of the runs) and results; a ValueError names a setting
    that differs. Runs with a high-dimensional case do not merge."""
    cfgs = [s["config"] for s in summaries]
    dims = [d for c in cfgs for d in c["dims"]]
    if len(set(dims)) != len(dims):
        raise ValueError(f"the runs to merge must cover different dims, got {dims}")
    if any(c["high_d"] for c in cfgs):
        raise ValueError("runs with a high-dimensional case (high_d) do not merge: set high_d=0")
    for i, c in enumerate(cfgs[1:], 1):
        differ = sorted(k for k in {*cfgs[0], *c} - {"dims"} if cfgs[0].get(k) != c.get(k))
        if differ:
            raise ValueError(
                f"run {i + 1} differs from run 1 in {', '.join(differ)}: only runs that differ "
                "in their dims merge"
            )
    results = {k: v for s in summaries for k, v in s["results"].items()}
    return {**cfgs[0], "dims": dims}, {"results": results}


def merge_figures(summary: dict, run_dirs: list[Path], out: Path) -> list[str]:
    """The merged run's error-vs-size figure, drawn from its summary."""
    return [_figure(config_of(Config, summary), summary["results"], out)]


def _band(ax, sizes: tuple[int, ...], per_size: dict[str, Any], metric: str, label: str) -> None:
    med = [per_size[str(n)][metric] for n in sizes]
    lo = [per_size[str(n)]["range"][metric][0] for n in sizes]
    hi = [per_size[str(n)]["range"][metric][1] for n in sizes]
    ax.plot(sizes, med, "o-", color=COLORS[label], label=label, ms=3)
    ax.fill_between(sizes, lo, hi, color=COLORS[label], alpha=0.2, lw=0)


def _figure(cfg: Config, results: dict[str, Any], out: Path) -> str:
    fig, axes = subplots(len(METRICS), len(cfg.dims))
    for c, d in enumerate(cfg.dims):
        for r, (metric, label) in enumerate(METRICS.items()):
            ax = axes[r, c]
            for m in METHODS:
                _band(ax, cfg.sizes, results[str(d)][m], metric, m)
            ax.set_xscale("log", base=2)
            title = "Black–Scholes call (d = 1)" if d == 1 else f"Bachelier basket (d = {d})"
            style_axes(ax, "training size", label, title)
    return save(fig, out / "error_vs_size.png")


def _high_d_figure(cfg: Config, high: dict[str, Any], out: Path) -> str:
    fig, axes = subplots(1, len(METRICS))
    for c, (metric, label) in enumerate(METRICS.items()):
        ax = axes[0, c]
        for v in HIGH_D_VARIANTS:
            _band(ax, cfg.high_d_sizes, high[v], metric, v)
        ax.set_xscale("log", base=2)
        style_axes(ax, "training size", label, f"Bachelier basket (d = {cfg.high_d})")
    return save(fig, out / "high_d.png")


def _size_cell(r: dict[str, Any], key: str, missing: str) -> str:
    """``median [min, max]`` of a matched size, with ``missing`` where a seed has none."""

    def one(v: Any) -> str:
        return missing if v is None else fmt(float(v), 2)

    lo, hi = r["range"].get(key, (r[key], r[key]))
    if len(r["per_seed"]) <= 1 or lo == hi:
        return one(r[key])
    return f"{one(r[key])} [{one(lo)}, {one(hi)}]"


def tables(summary: dict) -> str:
    cfg = Config(
        **{
            "antithetic": False,  # runs from before antithetic labels had one path per label
            **{k: tuple(v) if isinstance(v, list) else v for k, v in summary["config"].items()},
        }
    )
    setting = summary.get("setting", "ours")
    net = f"{cfg.depth} hidden layers × {cfg.width} {cfg.activation}" + (
        " (Glorot-uniform weights, zero biases)" if cfg.init == "glorot" else ""
    )
    rate = (
        f"one-cycle to peak {cfg.lr:g} (per epoch)"
        if cfg.schedule == "one-cycle"
        else f"{cfg.lr:g} cosine to {cfg.lr * cfg.lr_min_factor:g}"
    )
    caps = (
        f" clipped to [{cfg.min_batch}, {cfg.max_batch}]"
        if cfg.max_batch < 2**30
        else (f" (at least {cfg.min_batch})")
    )
    head = (
        f"setting: {setting}; {cfg.seeds} seeds (paired: same paths and initialisation for every "
        f"method); network {net}; Adam lr {rate}, {cfg.epochs} epochs"
        + (f" (at least {cfg.min_steps} steps)" if cfg.min_steps else "")
        + f", batch n/{cfg.batches_per_epoch}{caps}"
        + (f", at most {cfg.max_steps} steps" if cfg.max_steps < 2**30 else "")
        + ("; labels: antithetic pairs" if cfg.antithetic else "; labels: one path each")
        + ("; derivative term weighted per input (λ_j)" if cfg.input_weights else "")
        + f"; {cfg.n_test} test points; cells: median [min, max] over seeds; wall-clock seconds "
        "on one CPU thread"
    )
    out = [f"### Differential ML: test error vs training size ({head})\n"]
    first = "delta1_rmse" in summary["results"][str(cfg.dims[0])]["standard"][str(cfg.sizes[0])]
    rows = []
    for d in cfg.dims:
        r = summary["results"][str(d)]
        for n in cfg.sizes:
            a, b = r["standard"][str(n)], r["differential"][str(n)]
            rows.append(
                [
                    d,
                    n,
                    spread_cell(a, "price_rmse"),
                    spread_cell(b, "price_rmse"),
                    wins_cell(paired_wins(b, a, "price_rmse")),
                    spread_cell(a, "delta_rmse"),
                    spread_cell(b, "delta_rmse"),
                    wins_cell(paired_wins(b, a, "delta_rmse")),
                    *(
                        [f"{spread_cell(a, 'delta1_rmse')} / {spread_cell(b, 'delta1_rmse')}"]
                        if first
                        else []
                    ),
                    f"{fmt(a['train_time_s'], 2)} / {fmt(b['train_time_s'], 2)}",
                ]
            )
    out.append(
        markdown_table(
            [
                "d",
                "n",
                "price RMSE standard",
                "price RMSE differential",
                "differential lower (seeds)",
                "delta RMSE standard",
                "delta RMSE differential",
                "differential lower (seeds)",
                *(["first asset's delta RMSE standard / differential"] if first else []),
                "train wall s standard / differential",
            ],
            rows,
        )
    )
    out.append(_collapse_note(summary["results"], cfg))
    rows = []
    for d in cfg.dims:
        for metric, label in METRICS.items():
            for n0 in cfg.match_at:
                e = summary["results"][str(d)]["efficiency"][metric][str(n0)]
                rows.append(
                    [
                        d,
                        label,
                        n0,
                        _size_cell(e, "standard_size", f"> {max(cfg.sizes)}"),
                        _size_cell(e, "ratio", f"> {max(cfg.sizes) // n0}"),
                        f"{e['reached']}/{len(e['per_seed'])}",
                        _size_cell(e, "power_law_size", "–"),
                    ]
                )
    out.append(
        "\n### Sample efficiency: training size at which standard training matches differential "
        "training "
        f"at n ({setting}; {cfg.seeds} seeds; log–log interpolation of each seed's standard "
        "curve)\n"
    )
    out.append(
        markdown_table(
            [
                "d",
                "error",
                "differential at n",
                "standard needs",
                "ratio",
                f"seeds matched within {max(cfg.sizes)}",
                "power-law extrapolation",
            ],
            rows,
        )
    )
    if "high_d" in summary:
        h = summary["high_d"]
        rows = []
        for n in cfg.high_d_sizes:
            base = h["standard"][str(n)]
            for v in HIGH_D_VARIANTS:
                r = h[v][str(n)]
                rows.append(
                    [
                        n,
                        v,
                        spread_cell(r, "price_rmse"),
                        spread_cell(r, "delta_rmse"),
                        "–" if v == "standard" else wins_cell(paired_wins(r, base, "price_rmse")),
                        spread_cell(r, "train_time_s"),
                        spread_cell(r, "label_time_s"),
                    ]
                )
        out.append(
            f"\n### Basket d = {cfg.high_d}: full pathwise gradients vs one directional derivative "
            "per "
            f"sample ({setting}; {cfg.seeds} seeds; same network and steps)\n"
        )
        out.append(
            markdown_table(
                [
                    "n",
                    "labels",
                    "price RMSE",
                    "delta RMSE",
                    "price lower than standard (seeds)",
                    "train wall s",
                    "label wall s",
                ],
                rows,
            )
        )
    if summary.get("setting") == "paper":
        out.append(notebook_table(cfg, summary["results"]))
    if all("label_noise" in summary["results"][str(d)] for d in cfg.dims):
        rows = [
            [
                d,
                *(
                    spread_cell(summary["results"][str(d)]["label_noise"], k)
                    for k in ("price_rmse", "delta_rmse", "delta1_rmse")
                ),
            ]
            for d in cfg.dims
        ]
        out.append(
            "\n### Noise of the training labels: RMS of label − closed form at the training "
            f"states ({max(cfg.sizes)} paths"
            + (", antithetic pairs" if cfg.antithetic else "")
            + "; median [min, max] over seeds; ×100 for the notebook's units)\n"
            + markdown_table(
                ["d", "price labels", "delta labels", "first asset's delta labels"], rows
            )
        )
    return "".join(out)


#: a trained network whose predicted prices spread less than this fraction of the true prices'
#: spread (``price_spread``) has collapsed to a (nearly) flat prediction
FLAT = 0.5


def _collapse_note(results: dict[str, Any], cfg: Config) -> str:
    """A line naming the trained networks that collapsed to a flat prediction (``price_spread``
    below :data:`FLAT`), per dimension, size and method; empty where none did or where the run
    predates the measure."""
    cells = []
    for d in cfg.dims:
        for m in METHODS:
            for n in cfg.sizes:
                per = results[str(d)][m][str(n)]["per_seed"]
                if any("price_spread" not in p for p in per):
                    return ""
                flat = sum(p["price_spread"] < FLAT for p in per)
                if flat:
                    cells.append(f"d = {d}, n = {n}, {m}: {flat}/{len(per)} seeds")
    if not cells:
        return (
            f"\nNo network collapsed to a flat prediction (predicted prices' spread ≥ {FLAT:g} × "
            "the true prices' in every run).\n"
        )
    return (
        f"\nCollapsed to a flat prediction (predicted prices' spread < {FLAT:g} × the true "
        "prices'): " + "; ".join(cells) + ".\n"
    )


def versus(summary: dict, reference: dict) -> str:
    """Our run against a reference run (``--paper``) cell by cell, where both ran the same
    dimension, size and method: the medians of price and delta RMSE (all entries), their ratio
    ours ÷ reference, and in how many seeds ours is lower (paired: the same paths and test set
    per seed when both runs use the same basket, paths and test seeds)."""
    ca, cb = summary["config"], reference["config"]
    default = Config()  # a run from before a seed was a setting used its default
    paired = all(
        ca.get(k, getattr(default, k)) == cb.get(k, getattr(default, k))
        for k in ("basket_seed", "paths_seed", "test_seed", "model")
    )
    ra, rb = summary["results"], reference["results"]
    rows, held, cells = [], 0, 0
    for d in (d for d in ca["dims"] if d in cb["dims"]):
        for m in METHODS:
            for n in (n for n in ca["sizes"] if n in cb["sizes"]):
                a, b = ra[str(d)][m][str(n)], rb[str(d)][m][str(n)]
                row = [d, n, m]
                for key in ("price_rmse", "delta_rmse"):
                    ratio = a[key] / b[key]
                    cells += 1
                    held += ratio <= 1
                    row += [
                        f"{fmt(a[key], 2)} / {fmt(b[key], 2)}",
                        f"{fmt(ratio, 2)}×",
                        wins_cell(paired_wins(a, b, key)) if paired else "–",
                    ]
                rows.append(row)
    setting = lambda s: s.get("setting", "ours")
    head = (
        f"\n### {setting(summary)} against {setting(reference)}: median test RMSE per cell "
        f"({'paired seeds: the same paths and test states' if paired else 'unpaired'}; "
        f"median of {setting(summary)} at most that of {setting(reference)} in {held} of "
        f"{cells} cells)\n"
    )
    return head + markdown_table(
        [
            "d",
            "n",
            "method",
            f"price RMSE {setting(summary)} / {setting(reference)}",
            "ratio",
            f"{setting(summary)} lower (seeds)",
            f"delta RMSE {setting(summary)} / {setting(reference)}",
            "ratio",
            f"{setting(summary)} lower (seeds)",
        ],
        rows,
    )


#: The errors in the stored outputs of the reference notebook ``DifferentialML.ipynb``
#: (differential-machine-learning/notebooks at 155055eb, the figures of cells 36, 42, 45 and 48,
#: one run each with an unrecorded seed), in its units: 100 × RMSE with spot 1, the delta of the
#: first asset; (case, d) -> n -> method -> (price, delta). Its baskets are drawn from its own
#: random seed, not ours.
NOTEBOOK: dict[tuple[str, int], dict[int, dict[str, tuple[float, float]]]] = {
    ("black-scholes", 1): {
        1024: {"standard": (0.59, 3.89), "differential": (0.35, 2.47)},
        8192: {"standard": (0.13, 2.18), "differential": (0.13, 2.13)},
    },
    ("bachelier", 1): {
        1024: {"standard": (0.17, 0.65), "differential": (0.11, 0.54)},
        8192: {"standard": (0.07, 0.77), "differential": (0.06, 0.28)},
    },
    ("bachelier", 7): {
        4096: {"standard": (0.77, 0.70), "differential": (0.24, 0.30)},
        8192: {"standard": (0.50, 0.40), "differential": (0.14, 0.10)},
        16384: {"standard": (0.21, 0.30), "differential": (0.11, 0.09)},
    },
    ("bachelier", 20): {
        4096: {"standard": (2.02, 1.29), "differential": (0.23, 0.16)},
        8192: {"standard": (1.19, 0.70), "differential": (0.13, 0.07)},
        16384: {"standard": (0.62, 0.41), "differential": (0.10, 0.05)},
    },
}


def notebook_case(model: str, d: int) -> tuple[str, int]:
    """The :data:`NOTEBOOK` case of a run's pricing ``model`` setting at dimension d."""
    return ("black-scholes" if model in ("auto", "black-scholes") and d == 1 else "bachelier", d)


def notebook_table(cfg: Config, results: dict[str, Any]) -> str:
    """Ours beside the notebook's stored outputs, in its units (100 × RMSE; delta of the first
    asset), at the cases and sizes both ran: where the notebook's one run falls in our seeds'
    range, and its ratio to our median."""
    rows = []
    for d in cfg.dims:
        ref = NOTEBOOK.get(notebook_case(cfg.model, d), {})
        for n, per in ref.items():
            if str(n) not in results[str(d)]["standard"]:
                continue
            for m, (price, delta) in per.items():
                r = results[str(d)][m][str(n)]
                for label, key, nb in (
                    ("price", "price_rmse", price),
                    ("delta", "delta1_rmse", delta),
                ):
                    if key not in r:
                        continue
                    lo, hi = (100 * v for v in r["range"][key])
                    med = 100 * r[key]
                    where = "within" if lo <= nb <= hi else "below" if nb < lo else "above"
                    rows.append(
                        [
                            notebook_case(cfg.model, d)[0],
                            d,
                            n,
                            m,
                            label,
                            fmt(nb, 3),
                            f"{fmt(med, 3)} [{fmt(lo, 3)}, {fmt(hi, 3)}]",
                            where,
                            f"{fmt(nb / med, 2)}×",
                        ]
                    )
    if not rows:
        return ""
    return (
        f"\n### Against the reference notebook's stored outputs (100 × RMSE, spot 1; delta of the "
        f"first asset; the notebook: one run, its own basket and seed; ours: median [min, max] "
        f"over {cfg.seeds} seeds)\n"
        + markdown_table(
            [
                "case",
                "d",
                "n",
                "method",
                "error",
                "notebook",
                "ours",
                "notebook vs our seeds",
                "notebook ÷ our median",
            ],
            rows,
        )
    )
