"""Sobolev training on numerically estimated derivatives (arXiv 2509.19773, differentiation study).

Only values of the target on a grid are given; H1 training uses derivative targets estimated by
:func:`sobolev.numdiff.grid_derivatives`. Target: the Ackley function on [-2, 2]^d.

1. **2-D study**: the same MLP (same initialisation per seed), optimiser and step budget trained
   with L2, H1 with exact gradients, H1 with finite-difference gradients (uniform ``n_grid²`` grid,
   ``fd_accuracy``, ``fd_boundary``) and H1 with Chebyshev spectral gradients (``n_cheb²``
   Chebyshev–Gauss–Lobatto grid); L2 and H1-exact on the grid ``l2_exact_grid``. Reported over
   seeds: held-out value and gradient errors vs step and vs training time, the training-grid value
   MSE, and the steps and seconds each needs to bring the value MSE (held-out, or on the training
   grid as in the official code: ``reach_on``) below ``thresholds``. ``Config.paper()`` is the
   official setting (see there); the default is ours (fewer steps, cosine schedule, one grid).
2. **Dimension study**: the same comparison for each ``d`` in ``dims`` on ``dim_points[i]^d``
   tensor grids (few points per axis as d grows); from ``directions_from`` on the H1 losses match
   ``directions`` random directional derivatives per point (the full target gradient contracted
   along the model's directions). Reported: final held-out errors and the target-side gradient
   error of each estimate vs d.
3. **Accuracy study** (target side only): relative L2 error of the estimated first derivative vs
   the number of grid points N for FD of accuracy 2/4/6, Chebyshev and Fourier, on the Ackley
   gradient, on the analytic non-periodic ``f3`` = eˣ sin(20x) and on the band-limited periodic
   ``f1`` = sin(2πx) + sin(20πx), with fitted convergence orders.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sobolev.data import get_function
from sobolev.data.functions import ackley
from sobolev.derivatives import derivatives
from sobolev.losses import SobolevLoss
from sobolev.metrics import heldout_evaluator, reach_over_seeds, stack_errors
from sobolev.models import MLP
from sobolev.numdiff import (
    chebyshev_grid,
    fd_derivative,
    grid_derivatives,
    grid_points,
    interior_grid,
    uniform_grid,
)
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
from .seeded import config_of, finals_over_seeds, fit_seeds, setting_note, train_config

METHODS = {"L2": "L2", "exact": "H1-exact", "fd": "H1-FD", "chebyshev": "H1-Chebyshev"}
"""Config method name -> label in tables and figures."""

DOMAIN = (-2.0, 2.0)
"""Each axis of the Ackley domain [-2, 2]^d."""

COLORS = {
    "L2": "tab:blue",
    "H1-exact": "tab:orange",
    "H1-FD": "tab:green",
    "H1-Chebyshev": "tab:red",
}
"""One colour per method label in every figure (L2 keeps the report's blue)."""

STUDIES = ("2d", "dims", "accuracy")
FD_BOUNDARIES = ("interior", "per-axis", "one-sided")
GRIDS = ("uniform", "chebyshev")
REACH_ON = {"heldout": ("d0_mse", "held-out value MSE"), "train": ("D0", "training-grid value MSE")}
"""``reach_on`` -> (record key, label) of the value MSE the thresholds apply to."""

FINALS = {
    "d0_mse": "d0_mse",
    "d0_rel": "d0_rel",
    "d1_mse": "d1_mse",
    "d1_rel": "d1_rel",
    "train_mse": "D0",
    "time": "time",
}
"""Summary key -> record key of the final values stored per seed."""


@dataclass
class Config:
    """``studies``: which of the three parts run. 2-D study: FD and the methods on ``l2_exact_grid``
    use the uniform ``n_grid × n_grid`` grid, Chebyshev an ``n_cheb × n_cheb`` CGL grid;
    ``fd_boundary`` ``"interior"`` trains every term on the common interior ((n−2)² points for
    accuracy 2), ``"per-axis"`` (the official code) values on all n² points and each partial on its
    own axis' interior ((n−2)·n points), ``"one-sided"`` everything on all n² points; ``reach_on``
    is the value MSE the ``thresholds`` apply to (held-out points, or the training grid as in the
    official code)."""

    studies: tuple[str, ...] = STUDIES
    methods: tuple[str, ...] = ("L2", "exact", "fd", "chebyshev")
    # 2-D study (paper: see Config.paper)
    n_grid: int = 100
    n_cheb: int = 100
    l2_exact_grid: str = "uniform"
    fd_accuracy: int = 2
    fd_boundary: str = "interior"
    width: int = 64
    depth: int = 4
    activation: str = "tanh"
    steps: int = 1500
    optimizer: str = "adam"
    lr: float = 3e-3
    schedule: str = "cosine"
    seeds: int = 3
    n_test: int = 4000
    log_every: int = 25
    thresholds: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)  # value-MSE levels to reach
    reach_on: str = "heldout"
    # dimension study
    dims: tuple[int, ...] = (2, 3, 4, 5, 6)
    dim_points: tuple[int, ...] = (48, 14, 7, 5, 4)  # grid points per axis for each d
    dim_steps: int = 600
    dim_batch_size: int = 0  # 0: full batch
    directions_from: int = 5  # from this d on, H1 matches random directional derivatives
    directions: int = 2  # direction sets per point and step
    # accuracy study (target side)
    accuracy_ns: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512, 1024)
    accuracy_orders: tuple[int, ...] = (2, 4, 6)
    dtype: str = "float32"
    device: str = "auto"
    ensemble: bool = True

    @classmethod
    def quick(cls) -> Config:
        return cls(
            n_grid=32,
            n_cheb=32,
            depth=3,
            steps=600,
            seeds=2,
            n_test=1000,
            log_every=20,
            thresholds=(1e-1, 1e-2, 1e-3),
            dims=(2, 3, 5),
            dim_points=(24, 10, 4),
            dim_steps=300,
            accuracy_ns=(8, 16, 32, 64, 128, 256),
        )

    @classmethod
    def paper(cls, quick: bool = False) -> Config:
        """The official ``Differentiation/`` code: Ackley on [-2, 2]², 4×64 tanh MLP (PyTorch's
        default initialisation), Adam lr 1e-4 constant, 200,000 full-batch epochs, 5 repeats; L2,
        exact and Chebyshev on the 101×101 CGL grid (N = 100), FD (3-point central, per axis on the
        interior) on the uniform 100×100 grid; time to training-grid value MSE 1e-3, 1e-4, 1e-5.
        With ``quick``: the same, 40 epochs, 2 seeds."""
        full = cls(
            studies=("2d",),
            n_grid=100,
            n_cheb=101,
            l2_exact_grid="chebyshev",
            fd_accuracy=2,
            fd_boundary="per-axis",
            width=64,
            depth=4,
            activation="tanh",
            steps=200_000,
            optimizer="adam",
            lr=1e-4,
            schedule="constant",
            seeds=5,
            log_every=50,
            thresholds=(1e-3, 1e-4, 1e-5),
            reach_on="train",
            dtype="float32",
        )
        return (
            dataclasses.replace(full, steps=40, seeds=2, log_every=10, n_test=1000)
            if quick
            else full
        )


def validate(cfg: Config) -> None:
    """Settings the shared config checks do not cover; ``ValueError`` naming the setting."""

    def one_of(name: str, value: Any, allowed: Sequence[Any]) -> None:
        if value not in allowed:
            raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")

    if not cfg.studies or any(s not in STUDIES for s in cfg.studies):
        raise ValueError(f"studies must be a non-empty selection of {STUDIES}, got {cfg.studies!r}")
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown or not cfg.methods:
        raise ValueError(
            f"methods must be a non-empty selection of {tuple(METHODS)}, got {cfg.methods!r}"
        )
    one_of("fd_boundary", cfg.fd_boundary, FD_BOUNDARIES)
    one_of("l2_exact_grid", cfg.l2_exact_grid, GRIDS)
    one_of("reach_on", cfg.reach_on, tuple(REACH_ON))
    if len(cfg.dims) != len(cfg.dim_points):
        raise ValueError(
            f"dim_points needs one grid size per entry of dims ({len(cfg.dims)}), got "
            f"{cfg.dim_points!r}"
        )
    if any(d < 1 for d in cfg.dims) or any(
        n < 2 for n in (cfg.n_grid, cfg.n_cheb, *cfg.dim_points)
    ):
        raise ValueError("dims must be ≥ 1 and grid sizes (n_grid, n_cheb, dim_points) ≥ 2")
    if not cfg.thresholds or any(not t > 0 for t in cfg.thresholds):
        raise ValueError(f"thresholds must be positive value-MSE levels, got {cfg.thresholds!r}")
    if cfg.seeds < 1:
        raise ValueError(f"seeds must be ≥ 1, got {cfg.seeds}")
    if (
        cfg.fd_boundary == "per-axis"
        and "dims" in cfg.studies
        and any(d >= cfg.directions_from for d in cfg.dims)
    ):
        raise ValueError(
            "fd_boundary='per-axis' needs full gradients in the dimension study: "
            "set directions_from above the largest of dims"
        )
    for name, order in (
        ("fd_accuracy", cfg.fd_accuracy),
        *(("accuracy_orders", a) for a in cfg.accuracy_orders),
    ):
        if order < 2 or order % 2:
            raise ValueError(f"{name} must be positive even integers (2, 4, …), got {order!r}")
    if any(n < 2 for n in cfg.accuracy_ns):
        raise ValueError(f"accuracy_ns must be grid sizes ≥ 2, got {cfg.accuracy_ns!r}")
    for steps, batch_size in ((cfg.steps, 0), (cfg.dim_steps, cfg.dim_batch_size)):
        train_config(
            cfg,
            seed=0,
            steps=steps,
            batch_size=batch_size,
            checkpoint_every=max(steps // 4, 1),
            progress=False,
        )


# --------------------------------------------------------------------------- training targets


def on_chebyshev_grid(method: str, cfg: Config) -> bool:
    """Whether ``method`` trains on the Chebyshev–Gauss–Lobatto grid (else the uniform one)."""
    return method == "chebyshev" or (method in ("L2", "exact") and cfg.l2_exact_grid == "chebyshev")


def _grid(method: str, n: int, cfg: Config) -> Tensor:
    """The 1-D training grid of ``method``, ``n`` points (float64)."""
    return (chebyshev_grid if on_chebyshev_grid(method, cfg) else uniform_grid)(
        n, *DOMAIN, dtype=torch.float64
    )


def training_set(
    method: str, d: int, n: int, cfg: Config
) -> tuple[Tensor, tuple[Tensor, ...], Tensor | None]:
    """Points ``X`` (P, d), target stack ``(u, Du)`` (order 0 for L2) and, for estimated
    gradients, the exact gradient at ``X`` (P, 1, d), all float64, from Ackley values on an
    ``n^d`` grid (for Chebyshev ``n`` is the number of CGL points per axis). FD with
    ``fd_boundary="per-axis"``: see :func:`per_axis_fd_set`."""
    grid = [_grid(method, n, cfg)] * d
    X = grid_points(grid)
    values = ackley(X).reshape((n,) * d)
    if method == "L2":
        return X, (values.reshape(-1, 1),), None
    if method == "exact":
        return X, tuple(derivatives(ackley, X, 1, create_graph=False)), None
    if method == "fd":
        if cfg.fd_boundary == "per-axis":
            raise ValueError(
                "fd_boundary='per-axis' trains each partial on its own points: use per_axis_fd_set"
            )
        stack = grid_derivatives(
            values, grid, 1, "fd", accuracy=cfg.fd_accuracy, boundary=cfg.fd_boundary
        )
        if cfg.fd_boundary == "interior":
            X = grid_points(interior_grid(grid, 1, cfg.fd_accuracy))
    else:
        stack = grid_derivatives(values, grid, 1, "chebyshev")
    return X, tuple(stack), derivatives(ackley, X, 1, create_graph=False)[1]


def per_axis_fd_set(d: int, n: int, accuracy: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The official FD targets on the uniform ``n^d`` grid: ``(X, u, G, M, exact)``, X (P, d),
    u (P, 1) on all P = n^d points; G (P, d) the central-difference partial ∂_i u where axis i's
    stencil fits (0 elsewhere), M (P, d) the 0/1 mask of those points ((n − 2s)·n^{d−1} per
    axis), exact (P, d) the true gradient; float64."""
    grid = [uniform_grid(n, *DOMAIN, dtype=torch.float64)] * d
    X = grid_points(grid)
    values = ackley(X).reshape((n,) * d)
    G, M = (
        torch.zeros((n,) * d + (d,), dtype=torch.float64),
        torch.zeros((n,) * d + (d,), dtype=torch.float64),
    )
    for i in range(d):
        gi = fd_derivative(values, grid[i], 1, axis=i, accuracy=accuracy, boundary="interior")
        s = (n - gi.shape[i]) // 2
        G[..., i].narrow(i, s, gi.shape[i]).copy_(gi)
        M[..., i].narrow(i, s, gi.shape[i]).fill_(1.0)
    exact = derivatives(ackley, X, 1, create_graph=False)[1][:, 0, :]
    return X, values.reshape(-1, 1), G.reshape(-1, d), M.reshape(-1, d), exact


class PerAxisLoss(nn.Module):
    """The official FD loss: mean over all points of the squared value error plus, per axis i, the
    mean over that axis' points (mask ``M[:, i]``) of the squared ∂_i error; called as
    ``loss(model, (X, u, G, M))`` with the tensors of :func:`per_axis_fd_set`. Terms ``D0`` (value
    MSE on the whole grid) and ``D1`` (sum of the per-axis means).

    (``SobolevLoss(partials=..., reduction="none")`` with the same masks gives the same loss but
    takes one derivative pass per partial, 2.7× the time of this one gradient pass.)"""

    def forward(
        self, model: nn.Module, batch: tuple[Tensor, ...]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        X, u, G, M = batch
        pred, grad = derivatives(model, X, 1)
        d0 = (pred - u).square().mean()
        d1 = ((grad[:, 0, :] - G).square() * M).sum(0).div(M.sum(0)).sum()
        return d0 + d1, {"D0": d0, "D1": d1}


def _training_problem(
    method: str, d: int, n: int, cfg: Config
) -> tuple[Any, tuple[Tensor, ...], int, float | None]:
    """``(objective, data, n_points, target-side gradient rel. error)`` of ``method`` on the
    ``n^d`` grid."""
    directional = cfg.directions if d >= cfg.directions_from else None
    if method == "fd" and cfg.fd_boundary == "per-axis":
        X, u, G, M, exact = per_axis_fd_set(d, n, cfg.fd_accuracy)
        err = float(((G - exact) * M).norm() / (exact * M).norm())
        return PerAxisLoss(), (X, u, G, M), X.shape[0], err
    X, stack, exact_grad = training_set(method, d, n, cfg)
    err = {"L2": None, "exact": 0.0}.get(method)
    if exact_grad is not None:
        err = stack_errors(stack[1:], (exact_grad,))["d0_rel"]
    loss = SobolevLoss(len(stack) - 1, directions=directional if len(stack) > 1 else None)
    return loss, (X, *stack), X.shape[0], err


def compare(
    cfg: Config, d: int, n: int, n_cheb: int, steps: int, batch_size: int, out: Path
) -> dict[str, Any]:
    """Train every method of ``cfg`` over paired seeds on an Ackley grid of ``n^d`` uniform or
    ``n_cheb^d`` CGL points; per method its label, records per seed, training-set size and
    target-side gradient error."""
    x_test = torch.rand(
        cfg.n_test, d, generator=torch.Generator().manual_seed(12345 + d), dtype=torch.float64
    )
    x_test = DOMAIN[0] + (DOMAIN[1] - DOMAIN[0]) * x_test
    evaluate = heldout_evaluator(ackley, x_test, 1)
    problems = {
        method: _training_problem(method, d, n_cheb if on_chebyshev_grid(method, cfg) else n, cfg)
        for method in cfg.methods
    }

    def make_model() -> MLP:
        return MLP(d, 1, cfg.width, cfg.depth, cfg.activation)

    def settings(s: int) -> Any:
        return train_config(
            cfg,
            seed=s,
            steps=steps,
            batch_size=batch_size,
            checkpoint_every=max(steps // 4, 1),
            progress=False,
        )

    def train(method: str, s: int, _: None) -> list[dict[str, Any]]:
        objective, data = problems[method][:2]
        hist = fit(
            make_model(),
            objective,
            data,
            settings(s),
            out_dir=out / METHODS[method] / f"seed{s}",
            evaluate=evaluate,
            desc=f"d={d} {METHODS[method]} seed {s}",
        )
        return hist.records

    def train_seeds(method: str, seeds: list[int], _: list) -> list[list[dict[str, Any]]] | None:
        objective, data = problems[method][:2]
        if not isinstance(objective, SobolevLoss):  # the per-axis loss: seed by seed
            return None
        return fit_seeds(
            make_model,
            objective,
            data,
            settings(seeds[0]),
            seeds,
            out_dir=out / METHODS[method] / "ensemble",
            evaluate=evaluate,
            desc=f"d={d} {METHODS[method]} {len(seeds)} seeds",
        )[1]

    runs = paired_runs(
        cfg.methods, range(cfg.seeds), train, train_seeds=train_seeds if cfg.ensemble else None
    )
    return {
        method: {
            "label": METHODS[method],
            "runs": runs[method],
            "n_points": n_points,
            "target_grad_rel_err": target_err,
            "directional": isinstance(objective, SobolevLoss) and objective.directions is not None,
        }
        for method, (objective, _, n_points, target_err) in problems.items()
    }


# --------------------------------------------------------------------------- accuracy study


def fitted_order(
    ns: Sequence[int], errs: Sequence[float | None], floor: float = 1e-10
) -> float | None:
    """Convergence order ``-slope`` of log err vs log N, fitted over the upper half of the N range
    where the error is above ``floor`` (rounding plateau excluded); None if under 2 such points."""
    pts = [
        (n, e)
        for n, e in zip(ns, errs)
        if n >= statistics.median(ns) and e is not None and floor < e
    ]
    if len(pts) < 2:
        return None
    return float(-np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])


def _estimate_error(fn: Callable[[Tensor], Tensor], grid: list[Tensor], **kwargs) -> float:
    """Relative L2 error of the first derivative estimated by ``grid_derivatives(**kwargs)``."""
    stack = grid_derivatives(
        fn(grid_points(grid)).reshape([g.shape[0] for g in grid]), grid, 1, **kwargs
    )
    if kwargs.get("boundary") == "interior":
        grid = interior_grid(grid, 1, kwargs["accuracy"])
    X = grid_points(grid)
    return stack_errors(stack[1:], derivatives(fn, X, 1, create_graph=False)[1:])["d0_rel"]


def accuracy_study(cfg: Config) -> dict[str, dict[str, list[float | None]]]:
    """Errors vs N: ``{panel: {estimator: [err per N in accuracy_ns]}}`` (None: too few points)."""
    f1, f3 = get_function("f1"), get_function("f3")
    panels: dict[str, dict[str, list[float]]] = {"ackley2d": {}, "f3": {}, "f1": {}}
    f64 = {"dtype": torch.float64}
    for n in cfg.accuracy_ns:
        u2, c2 = [uniform_grid(n, *DOMAIN, **f64)] * 2, [chebyshev_grid(n, *DOMAIN, **f64)] * 2
        u1, c1, p1 = (
            [uniform_grid(n, -1.0, 1.0, **f64)],
            [chebyshev_grid(n, -1.0, 1.0, **f64)],
            [uniform_grid(n, -1.0, 1.0, periodic=True, **f64)],
        )
        rows = {
            "ackley2d": {
                "FD acc 2, interior": (
                    ackley,
                    u2,
                    {"method": "fd", "accuracy": 2, "boundary": "interior"},
                ),
                "Chebyshev": (ackley, c2, {"method": "chebyshev"}),
            },
            "f3": {"Chebyshev": (f3, c1, {"method": "chebyshev"})},
            "f1": {"Fourier": (f1, p1, {"method": "fourier"})},
        }
        for a in cfg.accuracy_orders:
            rows["ackley2d"][f"FD acc {a}"] = (ackley, u2, {"method": "fd", "accuracy": a})
            rows["f3"][f"FD acc {a}"] = (f3, u1, {"method": "fd", "accuracy": a})
            rows["f1"][f"FD acc {a}, periodic"] = (
                f1,
                p1,
                {"method": "fd", "accuracy": a, "boundary": "periodic"},
            )
        for panel, estimators in rows.items():
            for name, (fn, grid, kw) in estimators.items():
                try:
                    err = _estimate_error(fn, grid, **kw)
                except ValueError:  # too few points for this stencil
                    err = None
                panels[panel].setdefault(name, []).append(err)
    return panels


# --------------------------------------------------------------------------- run


def run(cfg: Config, out: Path) -> dict:
    validate(cfg)
    reach_key = REACH_ON[cfg.reach_on][0]
    summary: dict[str, Any] = {"figures": []}
    if "2d" in cfg.studies:
        main = compare(cfg, 2, cfg.n_grid, cfg.n_cheb, cfg.steps, 0, out / "2d")
        summary["results_2d"] = {
            r["label"]: {
                "n_points": r["n_points"],
                "target_grad_rel_err": r["target_grad_rel_err"],
                **finals_over_seeds(r["runs"], FINALS),
                "reach_value_mse": reach_over_seeds(r["runs"], reach_key, cfg.thresholds),
            }
            for r in main.values()
        }
        summary["figures"].append(_curves(main, cfg, out))
    if "dims" in cfg.studies:
        dims: dict[str, Any] = {}
        for d, n in zip(cfg.dims, cfg.dim_points):
            res = compare(cfg, d, n, n, cfg.dim_steps, cfg.dim_batch_size, out / f"d{d}")
            dims[str(d)] = {
                r["label"]: {
                    "grid": f"{n}^{d}",
                    "n_points": r["n_points"],
                    "directional": r["directional"],
                    "target_grad_rel_err": r["target_grad_rel_err"],
                    **finals_over_seeds(r["runs"], FINALS),
                }
                for r in res.values()
            }
        summary["dims"] = dims
        summary["figures"].append(_dims_figure(dims, out))
    if "accuracy" in cfg.studies:
        accuracy = accuracy_study(cfg)
        orders = {
            panel: {name: fitted_order(cfg.accuracy_ns, errs) for name, errs in est.items()}
            for panel, est in accuracy.items()
        }
        summary["accuracy"] = {
            "N": list(cfg.accuracy_ns),
            "errors": accuracy,
            "fitted_order": orders,
        }
        summary["figures"].append(_accuracy_figure(cfg, accuracy, orders, out))
    return json_safe(summary)


def _curves(main: dict, cfg: Config, out: Path) -> str:
    fig, axes = subplots(2, 2)
    value_key, value_label = REACH_ON[cfg.reach_on]
    for c, x in enumerate(("step", "time")):
        for r, (key, label) in enumerate(
            ((value_key, value_label), ("d1_mse", "held-out gradient MSE"))
        ):
            ax = axes[r, c]
            # band_plot colours L2 itself (not drawing from the cycle); the H1 runs take theirs in
            # order
            ax.set_prop_cycle(
                color=[COLORS[m["label"]] for m in main.values() if m["label"] != "L2"]
                or ["tab:blue"]
            )
            band_plot(
                ax,
                {m["label"]: seed_band(m["runs"], key, x) for m in main.values()},
                xlabel="step" if x == "step" else "training time (s)",
                ylabel=label,
                title=f"Ackley 2-D, {cfg.n_grid}² uniform / {cfg.n_cheb}² CGL",
            )
            for line, band in zip(
                ax.lines, ax.collections
            ):  # each seed band in its median line's colour
                band.set_facecolor(line.get_color())
            if key == value_key:
                for t in cfg.thresholds:
                    ax.axhline(t, color="gray", lw=0.6, ls=":")
    return save(fig, out / "curves.png")


def _dims_figure(dims: dict, out: Path) -> str:
    fig, axes = subplots(1, 3)
    ds = [int(d) for d in dims]
    labels = list(next(iter(dims.values())))
    for ax, (key, title) in zip(
        axes[0],
        (
            ("d0_rel", "held-out value rel. error"),
            ("d1_rel", "held-out gradient rel. error"),
            ("target_grad_rel_err", "gradient target rel. error"),
        ),
    ):
        for label in labels:
            ys = [dims[str(d)][label][key] for d in ds]
            if all(y is not None and y > 0 for y in ys):
                ax.semilogy(ds, ys, "o-", label=label, color=COLORS[label])
        ax.set_xlabel("input dimension d")
        ax.set_title(title + " (median over seeds)" if key != "target_grad_rel_err" else title)
        ax.set_xticks(ds, [f"{d}\n{dims[str(d)][labels[0]]['grid']}" for d in ds])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, out / "dims.png")


def _accuracy_figure(cfg: Config, accuracy: dict, orders: dict, out: Path) -> str:
    titles = {
        "ackley2d": "Ackley ∇u on [-2,2]², N per axis",
        "f3": "eˣ sin(20x) on [-1,1] (analytic)",
        "f1": "sin(2πx)+sin(20πx), periodic",
    }
    fig, axes = subplots(1, 3)
    for ax, (panel, est) in zip(axes[0], accuracy.items()):
        for name, errs in est.items():
            p = orders[panel][name]
            pts = [(n, max(e, 1e-17)) for n, e in zip(cfg.accuracy_ns, errs) if e is not None]
            ax.loglog(
                *zip(*pts), "o-", ms=3, label=name if p is None else f"{name} (order {p:.2g})"
            )
        ax.set_xlabel("grid points N")
        ax.set_ylabel("rel. L2 error of u'")
        ax.set_title(titles[panel])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return save(fig, out / "accuracy.png")


def _wins_vs_l2(per: dict[str, Any], label: str, key: str) -> str:
    """``k/n``: seeds in which ``label`` ended below L2 on ``key`` (– for L2 itself or without
    L2)."""
    if label == "L2" or "L2" not in per:
        return "–"
    return wins_cell(paired_wins(per[label], per["L2"], key))


def tables(summary: dict[str, Any]) -> str:
    """The Markdown tables of a run (2-D study, dimension study, estimate accuracy), from its
    summary."""
    cfg = config_of(Config, summary)
    note = setting_note(summary, cfg.seeds)
    thr = [f"{t:g}" for t in cfg.thresholds]
    parts = []
    if "results_2d" in summary:
        r2 = summary["results_2d"]
        reach_label = REACH_ON[cfg.reach_on][1]
        head = (
            f"### Ackley 2-D ({note}): {cfg.width}×{cfg.depth} {cfg.activation} MLP, "
            f"{cfg.optimizer} lr {cfg.lr:g} "
            f"({cfg.schedule}), {cfg.steps} full-batch steps; grids {cfg.n_grid}² uniform, "
            f"{cfg.n_cheb}² CGL "
            f"(L2 and H1-exact on the {cfg.l2_exact_grid} grid); FD accuracy {cfg.fd_accuracy}, "
            "boundary "
            f"{cfg.fd_boundary}; errors on {cfg.n_test} held-out random points; median [min, max] "
            "over seeds; "
            f"time to {reach_label}: median over the seeds that reach it\n\n"
        )
        rows = [
            [
                label,
                r["n_points"],
                r["target_grad_rel_err"],
                spread_cell(r, "d0_mse"),
                spread_cell(r, "train_mse"),
                spread_cell(r, "d1_rel"),
                _wins_vs_l2(r2, label, "d0_mse"),
                spread_cell(r, "time"),
                *(reach_cell(r["reach_value_mse"][t]) for t in thr),
            ]
            for label, r in r2.items()
        ]
        parts.append(
            head
            + markdown_table(
                [
                    "method",
                    "train points",
                    "grad target rel. err",
                    "held-out value MSE",
                    "train-grid value MSE",
                    "held-out grad rel. err",
                    "value MSE < L2's (seeds)",
                    "train time (s)",
                    *(f"{reach_label} ≤ {t}: steps / s (seeds)" for t in thr),
                ],
                rows,
            )
        )
    if "dims" in summary:
        drows = []
        for d, per in summary["dims"].items():
            for label, r in per.items():
                ex = per.get("H1-exact")
                ratio = r["d1_rel"] / ex["d1_rel"] if ex and ex["d1_rel"] else None
                drows.append(
                    [
                        d,
                        r["grid"],
                        r["n_points"],
                        label,
                        "yes" if r["directional"] else "no",
                        r["target_grad_rel_err"],
                        spread_cell(r, "d0_rel"),
                        spread_cell(r, "d1_rel"),
                        _wins_vs_l2(per, label, "d0_rel"),
                        ratio,
                        spread_cell(r, "time"),
                    ]
                )
        parts.append(
            f"### Ackley over dimension d ({note}; {cfg.dim_steps} steps; H1 with {cfg.directions} "
            "random "
            f"directions from d = {cfg.directions_from}; median [min, max] over seeds)\n\n"
            + markdown_table(
                [
                    "d",
                    "grid",
                    "train points",
                    "method",
                    "directional",
                    "grad target rel. err",
                    "value rel. err",
                    "grad rel. err",
                    "value err < L2's (seeds)",
                    "grad err / exact's (medians)",
                    "train time (s)",
                ],
                drows,
            )
        )
    if "accuracy" in summary:
        acc = summary["accuracy"]
        n_max = acc["N"][-1]
        arows = [
            [panel, name, errs[-1], acc["fitted_order"][panel][name]]
            for panel, est in acc["errors"].items()
            for name, errs in est.items()
        ]
        parts.append(
            f"### Derivative-estimate accuracy ({note.split(',')[0]}; rel. L2 error of u' at N = "
            f"{n_max}; "
            f"order fitted over the upper half of N = {acc['N']})\n\n"
            + markdown_table(
                ["function", "estimator", f"error at N = {n_max}", "fitted order"], arows
            )
        )
    return "\n".join(parts)
