"""Sobolev training on numerically estimated derivatives (arXiv 2509.19773, differentiation study).

Only values of the target on a grid are given; H1 training uses derivative targets estimated by
:func:`sobolev.numdiff.grid_derivatives`. Target: the Ackley function on [-2, 2]^d.

1. **2-D study** (the paper's setting, budget scaled down): an ``n_grid × n_grid`` grid; the same
   MLP (same initialisation per seed), optimiser and step budget trained with L2 (uniform grid),
   H1 with exact gradients (uniform grid), H1 with finite-difference gradients (uniform grid,
   ``fd_accuracy``, ``fd_boundary``; the paper: 3-point central, interior points only) and H1 with
   Chebyshev spectral gradients (Chebyshev–Gauss–Lobatto grid). Reported: held-out value and
   gradient errors vs step and vs training time, and the steps and seconds each needs to bring the
   held-out value MSE (the paper's measure, there on the training grid) below ``thresholds``.
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

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..data import get_function
from ..data.functions import ackley
from ..derivatives import derivatives
from ..losses import SobolevLoss
from ..metrics import heldout_evaluator, reach_over_seeds, stack_errors
from ..models import MLP
from ..numdiff import chebyshev_grid, grid_derivatives, grid_points, uniform_grid
from ..report import band_plot, markdown_table, reach_cell, save, seed_band, subplots
from ..training import TrainConfig, fit, seed_everything

METHODS = {"L2": "L2", "exact": "H1-exact", "fd": "H1-FD", "chebyshev": "H1-Chebyshev"}
"""Config method name -> label in tables and figures."""

DOMAIN = (-2.0, 2.0)
"""Each axis of the Ackley domain [-2, 2]^d."""

COLORS = {"L2": "tab:blue", "H1-exact": "tab:orange", "H1-FD": "tab:green", "H1-Chebyshev": "tab:red"}
"""One colour per method label in every figure (L2 keeps the report's blue)."""


@dataclass
class Config:
    methods: tuple[str, ...] = ("L2", "exact", "fd", "chebyshev")
    # 2-D study (paper: N = 100, 4×64 tanh MLP, Adam lr 1e-4, 200,000 epochs, 5 repeats)
    n_grid: int = 100
    fd_accuracy: int = 2
    fd_boundary: str = "interior"
    width: int = 64
    depth: int = 4
    activation: str = "tanh"
    steps: int = 1500
    optimizer: str = "adam"
    lr: float = 3e-3
    schedule: str = "cosine"
    seeds: int = 1
    n_test: int = 4000
    log_every: int = 25
    thresholds: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)  # held-out value-MSE levels to reach
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

    @classmethod
    def quick(cls) -> "Config":
        return cls(n_grid=32, depth=3, steps=600, n_test=1000, log_every=20, thresholds=(1e-1, 1e-2, 1e-3),
                   dims=(2, 3, 5), dim_points=(24, 10, 4), dim_steps=300, accuracy_ns=(8, 16, 32, 64, 128, 256))


def _check(cfg: Config) -> None:
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown or not cfg.methods:
        raise ValueError(f"methods must be a non-empty selection of {tuple(METHODS)}, got {cfg.methods!r}")
    if len(cfg.dims) != len(cfg.dim_points):
        raise ValueError(f"dim_points needs one grid size per entry of dims ({len(cfg.dims)}), got {cfg.dim_points!r}")
    if any(d < 1 for d in cfg.dims) or any(n < 2 for n in (cfg.n_grid, *cfg.dim_points)):
        raise ValueError("dims must be ≥ 1 and grid sizes (n_grid, dim_points) ≥ 2")
    if not cfg.thresholds or any(not t > 0 for t in cfg.thresholds):
        raise ValueError(f"thresholds must be positive value-MSE levels, got {cfg.thresholds!r}")
    if cfg.seeds < 1:
        raise ValueError(f"seeds must be ≥ 1, got {cfg.seeds}")


# --------------------------------------------------------------------------- training targets

def training_set(method: str, d: int, n: int, cfg: Config) -> tuple[Tensor, tuple[Tensor, ...], Tensor | None]:
    """Points ``X`` (P, d), target stack ``(u, Du)`` (order 0 for L2) and, for estimated gradients, the
    exact gradient at ``X`` (P, 1, d), all float64, from Ackley values on an ``n^d`` grid."""
    grid_1d = (chebyshev_grid if method == "chebyshev" else uniform_grid)(n, *DOMAIN, dtype=torch.float64)
    grid = [grid_1d] * d
    X = grid_points(grid)
    values = ackley(X).reshape((n,) * d)
    if method == "L2":
        return X, (values.reshape(-1, 1),), None
    if method == "exact":
        return X, tuple(derivatives(ackley, X, 1, create_graph=False)), None
    if method == "fd":
        X, stack = grid_derivatives(values, grid, 1, "fd", accuracy=cfg.fd_accuracy, boundary=cfg.fd_boundary,
                                    return_points=True)
    else:
        stack = grid_derivatives(values, grid, 1, "chebyshev")
    return X, tuple(stack), derivatives(ackley, X, 1, create_graph=False)[1]


def compare(cfg: Config, d: int, n: int, steps: int, batch_size: int, out: Path) -> dict[str, Any]:
    """Train every method of ``cfg`` on the ``n^d`` Ackley grid; per method its label, records per
    seed, training-set size and target-side gradient error."""
    x_test = torch.rand(cfg.n_test, d, generator=torch.Generator().manual_seed(12345 + d), dtype=torch.float64)
    x_test = DOMAIN[0] + (DOMAIN[1] - DOMAIN[0]) * x_test
    evaluate = heldout_evaluator(ackley, x_test, 1)
    directional = cfg.directions if d >= cfg.directions_from else None
    results: dict[str, Any] = {}
    for method in cfg.methods:
        X, stack, exact_grad = training_set(method, d, n, cfg)
        target_err = {"L2": None, "exact": 0.0}.get(method)
        if exact_grad is not None:
            target_err = stack_errors(stack[1:], (exact_grad,))["d0_rel"]
        loss = SobolevLoss(len(stack) - 1, directions=directional if len(stack) > 1 else None)
        runs = []
        for s in range(cfg.seeds):
            seed_everything(s)  # the same initial network for every method
            model = MLP(d, 1, cfg.width, cfg.depth, cfg.activation)
            tc = TrainConfig(steps=steps, optimizer=cfg.optimizer, lr=cfg.lr, schedule=cfg.schedule,
                             batch_size=batch_size or None, log_every=cfg.log_every, checkpoint_every=max(steps // 4, 1), seed=s,
                             dtype=cfg.dtype, device=cfg.device, progress=False)
            hist = fit(model, loss, (X, *stack), tc, out_dir=out / METHODS[method] / f"seed{s}",
                       evaluate=evaluate, desc=f"d={d} {METHODS[method]} seed {s}")
            runs.append(hist.records)
        results[method] = {"label": METHODS[method], "runs": runs, "n_points": X.shape[0],
                           "target_grad_rel_err": target_err, "directional": bool(directional and len(stack) > 1)}
    return results


def final_errors(runs: Sequence[Sequence[dict[str, Any]]]) -> dict[str, float]:
    """Median over seeds of the last record's held-out errors and training time."""
    keys = ("d0_rel", "d0_mse", "d1_rel", "d1_mse", "time")
    return {k: statistics.median(r[-1][k] for r in runs) for k in keys}


# --------------------------------------------------------------------------- accuracy study

def fitted_order(ns: Sequence[int], errs: Sequence[float | None], floor: float = 1e-10) -> float | None:
    """Convergence order ``-slope`` of log err vs log N, fitted over the upper half of the N range
    where the error is above ``floor`` (rounding plateau excluded); None if under 2 such points."""
    pts = [(n, e) for n, e in zip(ns, errs) if n >= statistics.median(ns) and e is not None and floor < e]
    if len(pts) < 2:
        return None
    return float(-np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])


def _estimate_error(fn: Callable[[Tensor], Tensor], grid: list[Tensor], **kwargs) -> float:
    """Relative L2 error of the first derivative estimated by ``grid_derivatives(**kwargs)``."""
    X, stack = grid_derivatives(fn(grid_points(grid)).reshape([g.shape[0] for g in grid]), grid, 1,
                                return_points=True, **kwargs)
    return stack_errors(stack[1:], derivatives(fn, X, 1, create_graph=False)[1:])["d0_rel"]


def accuracy_study(cfg: Config) -> dict[str, dict[str, list[float | None]]]:
    """Errors vs N: ``{panel: {estimator: [err per N in accuracy_ns]}}`` (None: too few points)."""
    f1, f3 = get_function("f1"), get_function("f3")
    panels: dict[str, dict[str, list[float]]] = {"ackley2d": {}, "f3": {}, "f1": {}}
    f64 = {"dtype": torch.float64}
    for n in cfg.accuracy_ns:
        u2, c2 = [uniform_grid(n, *DOMAIN, **f64)] * 2, [chebyshev_grid(n, *DOMAIN, **f64)] * 2
        u1, c1, p1 = [uniform_grid(n, -1.0, 1.0, **f64)], [chebyshev_grid(n, -1.0, 1.0, **f64)], \
            [uniform_grid(n, -1.0, 1.0, periodic=True, **f64)]
        rows = {
            "ackley2d": {"FD acc 2, interior": (ackley, u2, {"method": "fd", "accuracy": 2, "boundary": "interior"}),
                         "Chebyshev": (ackley, c2, {"method": "chebyshev"})},
            "f3": {"Chebyshev": (f3, c1, {"method": "chebyshev"})},
            "f1": {"Fourier": (f1, p1, {"method": "fourier"})},
        }
        for a in cfg.accuracy_orders:
            rows["ackley2d"][f"FD acc {a}"] = (ackley, u2, {"method": "fd", "accuracy": a})
            rows["f3"][f"FD acc {a}"] = (f3, u1, {"method": "fd", "accuracy": a})
            rows["f1"][f"FD acc {a}, periodic"] = (f1, p1, {"method": "fd", "accuracy": a, "boundary": "periodic"})
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
    _check(cfg)
    main = compare(cfg, 2, cfg.n_grid, cfg.steps, 0, out / "2d")
    results_2d = {}
    for method, r in main.items():
        results_2d[r["label"]] = {
            "n_points": r["n_points"], "target_grad_rel_err": r["target_grad_rel_err"], **final_errors(r["runs"]),
            "reach_value_mse": reach_over_seeds(r["runs"], "d0_mse", cfg.thresholds),
        }
    dims: dict[str, Any] = {}
    for d, n in zip(cfg.dims, cfg.dim_points):
        res = compare(cfg, d, n, cfg.dim_steps, cfg.dim_batch_size, out / f"d{d}")
        dims[str(d)] = {r["label"]: {"grid": f"{n}^{d}", "n_points": r["n_points"], "directional": r["directional"],
                                     "target_grad_rel_err": r["target_grad_rel_err"], **final_errors(r["runs"])}
                        for r in res.values()}
    accuracy = accuracy_study(cfg)
    orders = {panel: {name: fitted_order(cfg.accuracy_ns, errs) for name, errs in est.items()}
              for panel, est in accuracy.items()}
    figures = [_curves(main, cfg, out), _dims_figure(dims, out), _accuracy_figure(cfg, accuracy, orders, out)]
    (out / "table.md").write_text(_tables(cfg, results_2d, dims, accuracy, orders))
    return {"results_2d": results_2d, "dims": dims,
            "accuracy": {"N": list(cfg.accuracy_ns), "errors": accuracy, "fitted_order": orders},
            "figures": figures}


def _curves(main: dict, cfg: Config, out: Path) -> str:
    fig, axes = subplots(2, 2)
    for c, x in enumerate(("step", "time")):
        for r, (key, label) in enumerate((("d0_mse", "held-out value MSE"), ("d1_mse", "held-out gradient MSE"))):
            ax = axes[r, c]
            # band_plot colours L2 itself (not drawing from the cycle); the H1 runs take theirs in order
            ax.set_prop_cycle(color=[COLORS[m["label"]] for m in main.values() if m["label"] != "L2"] or ["tab:blue"])
            band_plot(ax, {m["label"]: seed_band(m["runs"], key, x) for m in main.values()},
                      xlabel="step" if x == "step" else "training time (s)", ylabel=label,
                      title=f"Ackley 2-D, {cfg.n_grid}×{cfg.n_grid} grid")
            if key == "d0_mse":
                for t in cfg.thresholds:
                    ax.axhline(t, color="gray", lw=0.6, ls=":")
    return save(fig, out / "curves.png")


def _dims_figure(dims: dict, out: Path) -> str:
    fig, axes = subplots(1, 3)
    ds = [int(d) for d in dims]
    labels = list(next(iter(dims.values())))
    for ax, (key, title) in zip(axes[0], (("d0_rel", "held-out value rel. error"), ("d1_rel", "held-out gradient rel. error"),
                                         ("target_grad_rel_err", "gradient target rel. error"))):
        for label in labels:
            ys = [dims[str(d)][label][key] for d in ds]
            if all(y is not None and y > 0 for y in ys):
                ax.semilogy(ds, ys, "o-", label=label, color=COLORS[label])
        ax.set_xlabel("input dimension d")
        ax.set_title(title)
        ax.set_xticks(ds, [f"{d}\n{dims[str(d)][labels[0]]['grid']}" for d in ds])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, out / "dims.png")


def _accuracy_figure(cfg: Config, accuracy: dict, orders: dict, out: Path) -> str:
    titles = {"ackley2d": "Ackley ∇u on [-2,2]², N per axis", "f3": "eˣ sin(20x) on [-1,1] (analytic)",
              "f1": "sin(2πx)+sin(20πx), periodic"}
    fig, axes = subplots(1, 3)
    for ax, (panel, est) in zip(axes[0], accuracy.items()):
        for name, errs in est.items():
            p = orders[panel][name]
            pts = [(n, max(e, 1e-17)) for n, e in zip(cfg.accuracy_ns, errs) if e is not None]
            ax.loglog(*zip(*pts), "o-", ms=3, label=name if p is None else f"{name} (order {p:.2g})")
        ax.set_xlabel("grid points N")
        ax.set_ylabel("rel. L2 error of u'")
        ax.set_title(titles[panel])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return save(fig, out / "accuracy.png")


def _tables(cfg: Config, results_2d: dict, dims: dict, accuracy: dict, orders: dict) -> str:
    thr = [f"{t:g}" for t in cfg.thresholds]
    head = (f"### Ackley 2-D, {cfg.n_grid}×{cfg.n_grid} grid: {cfg.width}×{cfg.depth} {cfg.activation} MLP, "
            f"{cfg.optimizer} lr {cfg.lr:g} ({cfg.schedule}), {cfg.steps} full-batch steps, {cfg.seeds} seed(s) (medians); "
            f"FD accuracy {cfg.fd_accuracy}, boundary {cfg.fd_boundary}; errors on {cfg.n_test} held-out random points\n\n")
    rows = [[label, r["n_points"], r["target_grad_rel_err"], r["d0_mse"], r["d0_rel"], r["d1_mse"], r["d1_rel"], r["time"],
             *(reach_cell(r["reach_value_mse"][t]) for t in thr)] for label, r in results_2d.items()]
    t1 = head + markdown_table(["method", "train points", "grad target rel. err", "value MSE", "value rel. err",
                                "grad MSE", "grad rel. err", "train time (s)",
                                *(f"value MSE ≤ {t}: steps / s (seeds)" for t in thr)], rows)
    labels = list(next(iter(dims.values()))) if dims else []
    exact = "H1-exact" if "H1-exact" in labels else None
    drows = []
    for d, per in dims.items():
        for label, r in per.items():
            ratio = r["d1_rel"] / per[exact]["d1_rel"] if exact else None
            drows.append([d, r["grid"], r["n_points"], label, "yes" if r["directional"] else "no", r["target_grad_rel_err"],
                          r["d0_rel"], r["d1_rel"], ratio, r["time"]])
    t2 = (f"### Ackley over dimension d ({cfg.dim_steps} steps; H1 with {cfg.directions} random directions from "
          f"d = {cfg.directions_from})\n\n" + markdown_table(
              ["d", "grid", "train points", "method", "directional", "grad target rel. err", "value rel. err",
               "grad rel. err", "grad err / exact's", "train time (s)"], drows))
    arows = [[panel, name, accuracy[panel][name][-1], orders[panel][name]]
             for panel in accuracy for name in accuracy[panel]]
    t3 = (f"### Derivative-estimate accuracy (rel. L2 error of u' at N = {cfg.accuracy_ns[-1]}; order fitted over the "
          f"upper half of N = {list(cfg.accuracy_ns)})\n\n"
          + markdown_table(["function", "estimator", f"error at N = {cfg.accuracy_ns[-1]}", "fitted order"], arows))
    return "\n".join([t1, t2, t3])
