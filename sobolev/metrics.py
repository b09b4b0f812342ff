"""Held-out errors of a model's derivative stack, and time-to-accuracy from training records."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .derivatives import derivatives


def stack_errors(pred: Sequence[Tensor], true: Sequence[Tensor]) -> dict[str, float]:
    """Relative L2 (``d{j}_rel``), max absolute (``d{j}_max``) and mean squared (``d{j}_mse``) error
    of each order j.

    The relative error is ‖Dʲû − Dʲu‖ / ‖Dʲu‖ over all batch entries and components; the mean
    squared error is the batch mean of ‖Dʲû − Dʲu‖² (summed over components, as in the loss).
    """
    if len(pred) != len(true):
        raise ValueError(f"stacks differ in length: {len(pred)} vs {len(true)}")
    out: dict[str, float] = {}
    for j, (a, b) in enumerate(zip(pred, true)):
        if a.shape != b.shape:
            raise ValueError(f"shape mismatch at order {j}: {tuple(a.shape)} vs {tuple(b.shape)}")
        e = (a - b).detach()
        out[f"d{j}_rel"] = float(e.norm() / b.norm().clamp_min(torch.finfo(b.dtype).tiny))
        out[f"d{j}_max"] = float(e.abs().max())
        out[f"d{j}_mse"] = float(e.square().sum() / e.shape[0])
    return out


def heldout_evaluator(
    target: Callable[[Tensor], Tensor] | Sequence[Tensor], x: Tensor, order: int
) -> Callable[[nn.Module], dict[str, float]]:
    """An ``evaluate`` callback for :func:`sobolev.fit`: errors of orders 0..``order`` at
    ``x`` (B, d).

    ``target`` is the exact function (differentiated once here) or its derivative stack at ``x``.
    """
    true = derivatives(target, x, order, create_graph=False) if callable(target) else tuple(target)

    def evaluate(model: nn.Module) -> dict[str, float]:
        p = next(model.parameters(), None)
        xx = x if p is None else x.to(device=p.device, dtype=p.dtype)
        tt = [t.to(xx) for t in true]
        return stack_errors(derivatives(model, xx, order, create_graph=False), tt)

    return evaluate


def first_reach(
    records: Sequence[dict[str, Any]], key: str, thresholds: Sequence[float]
) -> dict[str, dict[str, float] | None]:
    """For each threshold, the first logged ``step`` and training ``time`` at which ``key`` ≤ it
    (``None`` if never reached), plus the best value reached under ``"best"``."""
    out: dict[str, Any] = {}
    vals = [(r["step"], r["time"], r[key]) for r in records if key in r and math.isfinite(r[key])]
    for thr in thresholds:
        hit = next(((s, t) for s, t, v in vals if v <= thr), None)
        out[f"{thr:g}"] = None if hit is None else {"step": hit[0], "time": hit[1]}
    out["best"] = min((v for _, _, v in vals), default=math.nan)
    return out


def reach_over_seeds(
    runs: Sequence[Sequence[dict[str, Any]]], key: str, thresholds: Sequence[float]
) -> dict[str, Any]:
    """Per threshold: median step and time over the seeds that reach it, and how many do."""
    per_seed = [first_reach(r, key, thresholds) for r in runs]
    out: dict[str, Any] = {}
    for thr in thresholds:
        hits = [p[f"{thr:g}"] for p in per_seed if p[f"{thr:g}"] is not None]
        out[f"{thr:g}"] = {
            "step": statistics.median(h["step"] for h in hits) if hits else None,
            "time": statistics.median(h["time"] for h in hits) if hits else None,
            "reached": len(hits),
            "of": len(runs),
        }
    return out
