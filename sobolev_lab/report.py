"""Figures and tables from results: small helpers shared by the experiments.

matplotlib is imported (with the non-interactive Agg backend) when the first figure is made, so
that importing this module for its tables stays light."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOSS_COLORS = {"L2": "tab:blue", "H1": "tab:orange", "H2": "tab:green"}


def fmt(v: Any, digits: int = 4) -> str:
    """Compact number formatting for tables: ``digits`` significant digits."""
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return (
            f"{v:.{digits - 1}e}"
            if (v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4))
            else f"{v:.{digits}g}"
        )
    return "–" if v is None else str(v)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def subplots(nrows: int, ncols: int, *, size: tuple[float, float] = (4.2, 3.2)):
    """A figure with a grid of axes (always a 2-D array)."""
    fig, axes = _pyplot().subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    return fig, axes


def open_nofollow(path: str | Path, mode: str = "wb") -> Any:
    """``open(path, mode)`` for writing that never follows a symbolic link: a link (or anything
    but a regular file) at ``path`` is a one-line ``ValueError`` naming the entry, so a file of a
    run cannot be written out of its run directory."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValueError(
            f"{path} is {'a symbolic link' if path.is_symlink() else 'not a regular file'}: "
            "refusing to write through it out of the run directory; remove it"
        )
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise ValueError(f"cannot write {path}: {e.strerror}") from None
    return os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""}))


def save(fig, path: str | Path) -> str:
    """Save a figure as PNG (never through a symbolic link), close it, return the file name."""
    fig.tight_layout()
    try:
        with open_nofollow(path) as fh:
            fig.savefig(fh, dpi=110, format="png")
    finally:
        _pyplot().close(fig)
    return Path(path).name


def plot_curves(
    ax,
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = True,
) -> None:
    """One line per label: ``curves[label] = (xs, ys)``."""
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label, color=LOSS_COLORS.get(label.split()[0]))
    style_axes(ax, xlabel, ylabel, title, logy)


def style_axes(
    ax, xlabel: str, ylabel: str, title: str = "", logy: bool = True, legend_size: int = 8
) -> None:
    """Labels, optional log y, grid and legend: the look shared by every figure."""
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def seed_band(
    runs: Sequence[Sequence[dict[str, Any]]], key: str, x: str = "step"
) -> dict[str, list[float]]:
    """Median and min/max over seeds of ``key`` at each logged step; ``x`` (``step`` or ``time``)
    is the median over seeds. ``runs`` are the seeds' training records (same logging steps)."""
    n = min(len(r) for r in runs)
    cols = [[r[i] for r in runs] for i in range(n)]
    return {
        "x": [statistics.median(c[x] for c in col) for col in cols],
        "median": [statistics.median(c[key] for c in col) for col in cols],
        "lo": [min(c[key] for c in col) for col in cols],
        "hi": [max(c[key] for c in col) for col in cols],
    }


def band_plot(
    ax, bands: dict[str, dict[str, list[float]]], *, xlabel: str, ylabel: str, title: str = ""
) -> None:
    """Median line and min–max band per label (log y)."""
    for label, b in bands.items():
        color = LOSS_COLORS.get(label.split()[0])
        ax.plot(b["x"], b["median"], label=label, color=color)
        ax.fill_between(b["x"], b["lo"], b["hi"], color=color, alpha=0.2, lw=0)
    style_axes(ax, xlabel, ylabel, title, True)


def spread_cell(result: dict[str, Any], key: str, digits: int = 2) -> str:
    """Table cell ``median [min, max]`` of one :func:`sobolev_lab.seeds.over_seeds` entry (the
    median alone when there is one seed)."""
    med = result[key]
    lo, hi = result.get("range", {}).get(key, (med, med))
    if len(result.get("per_seed", ())) <= 1 or lo == hi:
        return fmt(med, digits)
    return f"{fmt(med, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def cost_table(results: dict[str, dict[str, Any]], base: str) -> str:
    """Per-epoch wall time and peak step memory of each loss
    (:func:`sobolev_lab.seeds.over_seeds` results with ``time_per_epoch_s`` and
    ``peak_step_memory_mb``), and both relative to ``base``."""
    first = results[base]
    return markdown_table(
        ["loss", "wall time/epoch (s)", f"× {base}", "peak step memory (MB)", f"× {base}"],
        [
            [
                name,
                spread_cell(r, "time_per_epoch_s", 3),
                r["time_per_epoch_s"] / first["time_per_epoch_s"],
                spread_cell(r, "peak_step_memory_mb", 3),
                r["peak_step_memory_mb"] / max(first["peak_step_memory_mb"], 1e-12),
            ]
            for name, r in results.items()
        ],
    )


def wins_cell(wins: tuple[int, int]) -> str:
    """Table cell ``k/n`` of :func:`sobolev_lab.seeds.paired_wins`."""
    return f"{wins[0]}/{wins[1]}"


def reach_cell(r: dict[str, Any]) -> str:
    """Table cell ``steps / seconds (k/n)`` of one :func:`reach_over_seeds` entry."""
    if r["step"] is None:
        return f"– (0/{r['of']})"
    return f"{r['step']:g} / {r['time']:.2f}s ({r['reached']}/{r['of']})"


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (inf, NaN) replaced by ``None``: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
