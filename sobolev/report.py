"""Figures and tables from results: small helpers shared by the experiments."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LOSS_COLORS = {"L2": "tab:blue", "H1": "tab:orange", "H2": "tab:green"}


def fmt(v: Any) -> str:
    """Compact number formatting for tables."""
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.3e}" if (v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4)) else f"{v:.4g}"
    return "–" if v is None else str(v)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def subplots(nrows: int, ncols: int, *, size: tuple[float, float] = (4.2, 3.2)):
    """A figure with a grid of axes (always a 2-D array)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    return fig, axes


def save(fig, path: str | Path) -> str:
    """Save a figure as PNG, close it, return the file name."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path).name


def plot_curves(ax, curves: dict[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str, ylabel: str,
                title: str = "", logy: bool = True) -> None:
    """One line per label: ``curves[label] = (xs, ys)``."""
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label, color=LOSS_COLORS.get(label.split()[0]))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def write_json(obj: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False, default=float) + "\n")
