"""Theory validation, conditioning and gradient flow for student–teacher ReLU networks
(:mod:`sobolev.theory`).

1. Closed forms vs Monte-Carlo: losses L, J, H; the L-gradient; the per-sample autodiff J-gradient
   against its expectation and against the population ∇J (which differs by the indicator's
   boundary term), over d × K (= K*), with z-scores.
2. Conditioning: Hessian eigenvalues of L and H vs the angle to the teacher and vs the norm ratio,
   and along gradient-flow trajectories.
3. Gradient flows −∇L, −∇H and the autodiff flow −E[autodiff ∇H] from the same initialisations,
   times to tolerance and the acceleration (time ratio).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sobolev.theory import (
    angle_scan,
    distance_scan,
    expected_autodiff_grad,
    gradient_flow,
    monte_carlo_grad,
    monte_carlo_loss,
    population_grad,
    population_loss,
    rotated_students,
    spectrum_scan,
    time_to_tolerance,
)

from ..report import json_safe, markdown_table, open_nofollow, save, subplots

FLOWS = {"L": ("L", False), "H": ("H", False), "H autodiff": ("H", True)}
FLOW_COLORS = {"L": "tab:blue", "H": "tab:orange", "H autodiff": "tab:green"}


#: the integrators of :func:`scipy.integrate.solve_ivp`
FLOW_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")


@dataclass
class Config:
    seed: int = 0
    dims: tuple[int, ...] = (2, 10, 50, 100)
    widths: tuple[int, ...] = (1, 2, 5)
    n_mc: int = 1_000_000
    mc_batch: int = 16384
    lam: float = 1.0
    spec_dim: int = 10
    spec_width: int = 3
    n_angles: int = 90
    n_scales: int = 40
    flow_dim: int = 10
    flow_widths: tuple[int, ...] = (1, 2)
    flow_inits: int = 5
    flow_angle: float = 2.0
    flow_scale: float = 0.5
    flow_t_max: float = 60.0
    flow_rtol: float = 1e-8
    flow_atol: float = 1e-12
    kink_tol: float = 1e-6
    flow_method: str = "LSODA"
    loss_tols: tuple[float, ...] = (1e-2, 1e-4, 1e-6)
    param_tols: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    n_trajectory_spectra: int = 40

    @classmethod
    def quick(cls) -> Config:
        return cls(
            dims=(2, 10, 100),
            n_mc=50_000,
            n_angles=40,
            n_scales=20,
            flow_inits=2,
            flow_t_max=40.0,
            n_trajectory_spectra=20,
        )


def _rows(K: int, d: int, g: torch.Generator) -> torch.Tensor:
    """K random rows N(0, I_d/d) (|w| ≈ 1)."""
    return torch.randn(K, d, dtype=torch.float64, generator=g) / math.sqrt(d)


def _grad_stats(mean: torch.Tensor, err: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    """(relative error ‖mean − exact‖/‖exact‖, max |z| over entries)."""
    return float((mean - exact).norm() / exact.norm()), float(((mean - exact) / err).abs().max())


def _validation(cfg: Config, g: torch.Generator) -> list[dict]:
    rows = []
    for d in cfg.dims:
        for K in cfg.widths:
            W_star, W = _rows(K, d, g), _rows(K, d, g)
            row: dict = {"d": d, "K": K, "n": cfg.n_mc}
            for part in "LJH":
                mean, err = monte_carlo_loss(
                    W, W_star, cfg.n_mc, part, cfg.lam, generator=g, batch_size=cfg.mc_batch
                )
                exact = float(population_loss(W, W_star, part, cfg.lam))
                row[f"{part}_exact"], row[f"{part}_rel_err"], row[f"{part}_z"] = (
                    exact,
                    abs(mean / exact - 1),
                    (mean - exact) / err,
                )
            mean, err = monte_carlo_grad(
                W, W_star, cfg.n_mc, "L", generator=g, batch_size=cfg.mc_batch
            )
            row["gradL_rel_err"], row["gradL_max_z"] = _grad_stats(
                mean, err, population_grad(W, W_star, "L")
            )
            mean, err = monte_carlo_grad(
                W, W_star, cfg.n_mc, "J", generator=g, batch_size=cfg.mc_batch
            )
            row["gradJ_auto_rel_err"], row["gradJ_auto_max_z"] = _grad_stats(
                mean, err, expected_autodiff_grad(W, W_star, "J")
            )
            row["gradJ_vs_true_rel_err"], row["gradJ_vs_true_max_z"] = _grad_stats(
                mean, err, population_grad(W, W_star, "J")
            )
            rows.append(row)
    return rows


def _write_csv(rows: list[dict], path: Path) -> None:
    with open_nofollow(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _conditioning(cfg: Config, g: torch.Generator, out: Path) -> tuple[dict, list[str]]:
    angles = np.linspace(0.02, math.pi - 0.02, cfg.n_angles)
    scales = np.linspace(0.2, 3.0, cfg.n_scales)
    teachers = {K: _rows(K, cfg.spec_dim, g) for K in sorted({1, cfg.spec_width})}
    scans = {
        (K, part): angle_scan(W_star, angles, part, cfg.lam, generator=g)
        for K, W_star in teachers.items()
        for part in "LH"
    }
    dscans = {
        (K, part): distance_scan(
            W_star,
            scales,
            part,
            cfg.lam,
            angle=0.5,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        for K, W_star in teachers.items()
        for part in "LH"
    }
    colors = {"L": "tab:blue", "H": "tab:orange"}
    fig, axes = subplots(1, 3, size=(4.6, 3.6))
    for part in "LH":
        ev = scans[(1, part)].eigenvalues
        for k in range(ev.shape[1]):
            axes[0, 0].plot(
                angles, ev[:, k], color=colors[part], lw=1, label=part if k == 0 else None
            )
        for K, ls in zip(teachers, ("-", "--")):
            s = scans[(K, part)]
            axes[0, 1].plot(angles, s.lam_min, ls, color=colors[part], label=f"{part} λ_min, K={K}")
            axes[0, 2].plot(angles, s.cond, ls, color=colors[part], label=f"{part}, K={K}")
    axes[0, 0].set(
        title=f"Hessian eigenvalues, K=1, d={cfg.spec_dim}",
        xlabel="angle t to teacher",
        yscale="log",
        ylim=(1e-2, 1e2),
    )
    axes[0, 1].set(title="smallest eigenvalue", xlabel="angle t to teacher (every row)")
    axes[0, 1].axhline(0, color="k", lw=0.5)
    axes[0, 2].set(
        title="condition number λ_max/λ_min", xlabel="angle t to teacher (every row)", yscale="log"
    )
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figs = [save(fig, out / "conditioning_angle.png")]

    fig, axes = subplots(1, 2, size=(4.6, 3.6))
    for (K, part), s in dscans.items():
        ls = "-" if K == 1 else "--"
        axes[0, 0].plot(scales, s.lam_min, ls, color=colors[part], label=f"{part} λ_min, K={K}")
        axes[0, 0].plot(
            scales, s.lam_max, ls, color=colors[part], alpha=0.5, label=f"{part} λ_max, K={K}"
        )
        axes[0, 1].plot(scales, s.cond, ls, color=colors[part], label=f"{part}, K={K}")
    axes[0, 0].set(title="extreme eigenvalues at angle 0.5", xlabel="|w_i|/|w*_i|")
    axes[0, 0].axhline(0, color="k", lw=0.5)
    axes[0, 1].set(
        title="condition number at angle 0.5 (PD only)", xlabel="|w_i|/|w*_i|", yscale="log"
    )
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figs.append(save(fig, out / "conditioning_distance.png"))

    def at(K: int, part: str, t: float) -> dict:
        s, k = scans[(K, part)], int(np.argmin(np.abs(angles - t)))
        return {
            "angle": float(angles[k]),
            "lam_min": float(s.lam_min[k]),
            "lam_max": float(s.lam_max[k]),
            "cond": float(s.cond[k]),
        }

    summary = {
        f"K{K}": {
            f"t={t:.2f}": {part: at(K, part, t) for part in "LH"} for t in (0.1, math.pi / 4, 1.5)
        }
        for K in teachers
    }
    ratio = scans[(1, "H")].lam_min / scans[(1, "L")].lam_min
    summary["K1_lam_min_ratio_H_over_L"] = {
        "min": float(np.nanmin(ratio)),
        "max": float(np.nanmax(ratio)),
    }
    return summary, figs


def _flows(cfg: Config, g: torch.Generator, out: Path) -> tuple[dict, list[dict], list[str]]:
    table, summary, figs = [], {}, []
    metrics = [("loss_L", tol, True) for tol in cfg.loss_tols] + [
        ("param_error", tol, False) for tol in cfg.param_tols
    ]
    fig, axes = subplots(len(cfg.flow_widths), 2, size=(4.8, 3.4))
    trajectories = {}
    for row_ax, K in zip(axes, cfg.flow_widths):
        times: dict[str, dict[str, list[float]]] = {f: {} for f in FLOWS}
        for init in range(cfg.flow_inits):
            W_star = _rows(K, cfg.flow_dim, g)
            W0 = rotated_students(W_star, cfg.flow_angle, cfg.flow_scale, generator=g)
            for name, (part, autodiff) in FLOWS.items():
                res = gradient_flow(
                    W0,
                    W_star,
                    part,
                    cfg.lam,
                    cfg.flow_t_max,
                    autodiff=autodiff,
                    rtol=cfg.flow_rtol,
                    atol=cfg.flow_atol,
                    method=cfg.flow_method,
                    kink_tol=cfg.kink_tol,
                )
                if not res.success:
                    raise RuntimeError(
                        f"{name} flow (K={K}, init {init}) failed: {res.message}; adjust "
                        "flow_rtol/flow_atol/kink_tol"
                    )
                for metric, tol, rel in metrics:
                    key = f"{metric}<={tol:g}" + ("*initial" if rel else "")
                    times[name].setdefault(key, []).append(
                        time_to_tolerance(res.times, getattr(res, metric), tol, relative=rel)
                    )
                if init == 0:
                    trajectories[(K, name)] = (res, W_star)
                    row_ax[0].semilogy(
                        res.times, res.loss_L / res.loss_L[0], color=FLOW_COLORS[name], label=name
                    )
                    row_ax[1].semilogy(
                        res.times, res.param_error, color=FLOW_COLORS[name], label=name
                    )
        row_ax[0].set(
            title=f"L(W(τ))/L(W(0)), K=K*={K}, d={cfg.flow_dim}", xlabel="τ", ylim=(1e-16, 2)
        )
        row_ax[1].set(title=f"‖W−W*‖/‖W*‖ (rows matched), K={K}", xlabel="τ", ylim=(1e-12, 2))
        for ax in row_ax:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        summary[f"K{K}"] = {}
        for key in times["L"]:
            med = {name: float(np.median(times[name][key])) for name in FLOWS}
            accel = {f"{name}_over_L": med["L"] / med[name] for name in ("H", "H autodiff")}
            summary[f"K{K}"][key] = {"median_time": med, "acceleration": accel}
            table.append(
                {
                    "K": K,
                    "target": key,
                    **{f"T_{n}": med[n] for n in FLOWS},
                    "accel_H": accel["H_over_L"],
                    "accel_H_autodiff": accel["H autodiff_over_L"],
                }
            )
    figs.append(save(fig, out / "flow.png"))

    K = max(cfg.flow_widths)
    fig, axes = subplots(2, 2, size=(4.8, 3.4))
    for col, name in enumerate(("L", "H")):
        res, W_star = trajectories[(K, name)]
        idx = np.linspace(0, len(res.times) - 1, cfg.n_trajectory_spectra).astype(int)
        for part, color in (("L", "tab:blue"), ("H", "tab:orange")):
            s = spectrum_scan(list(res.W[idx]), W_star, part, cfg.lam)
            axes[0, col].semilogy(
                res.times[idx], s.lam_max, ".-", color=color, label=f"λ_max ∇²{part}"
            )
            axes[1, col].plot(res.times[idx], s.lam_min, ".-", color=color, label=f"λ_min ∇²{part}")
        axes[0, col].set(title=f"λ_max along the −∇{name} flow, K=K*={K}", xlabel="τ")
        axes[1, col].set(title=f"λ_min along the −∇{name} flow (gaps: t≈0)", xlabel="τ")
        axes[1, col].axhline(0, color="k", lw=0.5)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figs.append(save(fig, out / "trajectory_spectra.png"))
    return summary, table, figs


VALIDATION_COLUMNS = (
    "d",
    "K",
    "n",
    "L_rel_err",
    "L_z",
    "J_rel_err",
    "J_z",
    "H_rel_err",
    "H_z",
    "gradL_max_z",
    "gradJ_auto_max_z",
    "gradJ_vs_true_max_z",
)
"""Columns of the closed-forms-vs-Monte-Carlo table."""


def validate(cfg: Config) -> None:
    """Checks beyond the shared ones, before anything is written."""
    if cfg.flow_method not in FLOW_METHODS:
        raise ValueError(f"flow_method must be one of {FLOW_METHODS}, got {cfg.flow_method!r}")


def run(cfg: Config, out: Path) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(cfg.seed)

    validation = _validation(cfg, g)
    _write_csv(validation, out / "validation.csv")
    cond_summary, figs = _conditioning(cfg, g, out)
    flow_summary, flow_table, flow_figs = _flows(cfg, g, out)
    figs += flow_figs
    _write_csv(flow_table, out / "flow_times.csv")
    val_summary = {
        "max_abs_z_loss": max(abs(r[f"{p}_z"]) for r in validation for p in "LJH"),
        "max_rel_err_loss": max(r[f"{p}_rel_err"] for r in validation for p in "LJH"),
        "max_abs_z_grad_L": max(r["gradL_max_z"] for r in validation),
        "max_abs_z_grad_J_autodiff_vs_expected": max(r["gradJ_auto_max_z"] for r in validation),
        "min_over_configs_max_abs_z_grad_J_autodiff_vs_population": min(
            r["gradJ_vs_true_max_z"] for r in validation
        ),
    }
    return json_safe(
        {
            "validation": val_summary,
            "validation_rows": validation,
            "conditioning": cond_summary,
            "flow": flow_summary,
            "flow_times": flow_table,
            "figures": figs,
            "tables": ["validation.csv", "flow_times.csv"],
        }
    )


def tables(summary: dict) -> str:
    """Headline numbers, closed forms vs Monte Carlo, and gradient-flow times, from a run's summary
    (deterministic given ``seed``: no seeds to aggregate)."""
    val, cond = summary["validation"], summary["conditioning"]
    headline = [
        ["max |z|, MC vs closed-form losses L, J, H", val["max_abs_z_loss"]],
        ["max |z|, MC autodiff L-grad vs ∇L (entrywise)", val["max_abs_z_grad_L"]],
        [
            "max |z|, MC autodiff J-grad vs E[autodiff ∇J]",
            val["max_abs_z_grad_J_autodiff_vs_expected"],
        ],
        [
            "min over configs of max |z|, MC autodiff J-grad vs ∇J (boundary term)",
            val["min_over_configs_max_abs_z_grad_J_autodiff_vs_population"],
        ],
        ["K=1: λ_min(∇²H)/λ_min(∇²L) over angles, min", cond["K1_lam_min_ratio_H_over_L"]["min"]],
        ["K=1: λ_min(∇²H)/λ_min(∇²L) over angles, max", cond["K1_lam_min_ratio_H_over_L"]["max"]],
    ]
    for K, per_target in summary["flow"].items():
        for key, v in per_target.items():
            for name in ("H", "H autodiff"):
                headline.append(
                    [
                        f"{K}: acceleration T_L/T_({name}) to {key}",
                        v["acceleration"][f"{name}_over_L"],
                    ]
                )
    rows = summary["validation_rows"]
    flows = summary["flow_times"]
    flow_cols = list(flows[0]) if flows else []
    n_mc = summary.get("config", {}).get("n_mc", rows[0]["n"] if rows else None)
    return (
        f"### Theory: student–teacher ReLU networks (setting: {summary.get('setting', 'ours')}; "
        "closed forms, "
        f"Monte Carlo with n = {n_mc}, one fixed seed)\n\n"
        + markdown_table(["quantity", "value"], headline)
        + "\n### Closed forms vs Monte Carlo\n\n"
        + markdown_table(VALIDATION_COLUMNS, [[r[c] for c in VALIDATION_COLUMNS] for r in rows])
        + "\n### Gradient flow: median time to target over initialisations\n\n"
        + markdown_table(flow_cols, [[r[c] for c in flow_cols] for r in flows])
    )
