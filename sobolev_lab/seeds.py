"""Paired seeds: every comparison of losses runs several seeds, the same data and initialisation
per seed for every loss (:func:`paired_runs`), and reports medians, ranges and how often a claim
held (:func:`over_seeds`, :func:`paired_wins`).

Convention for ``summary.json``: a result that was measured per seed is stored as the dict of
its medians, with the seeds' own dicts beside them,

    {"value_rel_l2": <median>, ..., "per_seed": [{"value_rel_l2": ...}, ...],
     "range": {"value_rel_l2": [<min>, <max>], ...}}

as :func:`over_seeds` builds it; :func:`paired_wins` counts the seeds in which one setting beat
another, and :func:`sobolev_lab.report.spread_cell` prints ``median [min, max]``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from sobolev.training import seed_everything

S = TypeVar("S", bound=Hashable)
R = TypeVar("R")

__all__ = ["over_seeds", "paired_runs", "paired_wins"]


def paired_runs(
    settings: Sequence[S],
    seeds: Iterable[int],
    train: Callable[[S, int, Any], R],
    prepare: Callable[[int], Any] | None = None,
    *,
    train_seeds: Callable[[S, list[int], list[Any]], list[R] | None] | None = None,
) -> dict[S, list[R]]:
    """Train every setting (a loss, a method, …) on the same seeds: for each seed,
    ``shared = prepare(seed)`` (what every setting shares in that seed: data, teacher, test
    points; ``None`` without ``prepare``), then for each setting in order the RNGs are seeded with
    ``seed`` (:func:`sobolev.training.seed_everything`: the same initial network for every
    setting) and ``train(setting, seed, shared)`` runs.

    With ``train_seeds``, every seed's ``shared`` is prepared first, then each setting trains all
    seeds at once: ``train_seeds(setting, seeds, shared_per_seed)`` returns the results per seed
    (an ensemble, :func:`sobolev.fit_ensemble`, whose member n is the run ``train`` would make
    with seed n), or ``None`` for a setting it cannot train so, which then runs seed by seed.

    Returns ``{setting: [train's result per seed]}``, the seeds in the order given: the per-seed
    results that :func:`over_seeds` summarises and :func:`paired_wins` pairs by index.
    """
    if len(set(settings)) != len(settings):
        raise ValueError(f"settings must be distinct, got {list(settings)!r}")
    runs: dict[S, list[R]] = {s: [] for s in settings}
    if train_seeds is not None:
        seeds = list(seeds)
        shared = [prepare(seed) if prepare is not None else None for seed in seeds]
        for setting in settings:
            together = train_seeds(setting, seeds, shared)
            if together is None:
                together = []
                for seed, sh in zip(seeds, shared):
                    seed_everything(seed)
                    together.append(train(setting, seed, sh))
            if len(together) != len(seeds):
                raise ValueError(f"train_seeds gave {len(together)} results for {len(seeds)} seeds")
            runs[setting] = list(together)
        return runs
    for seed in seeds:
        shared = prepare(seed) if prepare is not None else None
        for setting in settings:
            seed_everything(seed)
            runs[setting].append(train(setting, seed, shared))
    return runs


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def over_seeds(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the numeric entries of ``per_seed`` (one dict per seed, same keys), with
    ``per_seed`` (the dicts themselves) and ``range`` (``[min, max]`` per key) beside them.

    Non-finite values (a diverged seed) count as +inf in the median and range, so a seed that
    fails never improves the median; entries that are not numbers are kept from the first seed.
    """
    if not per_seed:
        raise ValueError("over_seeds needs at least one seed's results")
    keys = list(per_seed[0])
    out: dict[str, Any] = {}
    rng: dict[str, list[float]] = {}
    for k in keys:
        vals = [p.get(k) for p in per_seed]
        if all(_numeric(v) or v is None for v in vals) and any(_numeric(v) for v in vals):
            xs = [float(v) if _numeric(v) and math.isfinite(v) else math.inf for v in vals]
            out[k] = statistics.median(xs)
            rng[k] = [min(xs), max(xs)]
        else:
            out[k] = vals[0]
    out["range"] = rng
    out["per_seed"] = [dict(p) for p in per_seed]
    return out


def paired_wins(
    a: dict[str, Any], b: dict[str, Any], key: str, *, lower_is_better: bool = True
) -> tuple[int, int]:
    """In how many seeds ``a`` beat ``b`` on ``key``: ``(wins, seeds)``. ``a`` and ``b`` are
    :func:`over_seeds` results of two settings run on the same seeds (paired by index)."""
    pa, pb = a["per_seed"], b["per_seed"]
    if len(pa) != len(pb):
        raise ValueError(
            f"paired_wins needs the same seeds for both settings, got {len(pa)} and {len(pb)}"
        )

    def val(p: dict[str, Any]) -> float:
        v = p.get(key)
        return (
            float(v)
            if _numeric(v) and math.isfinite(v)
            else (math.inf if lower_is_better else -math.inf)
        )

    wins = sum((val(x) < val(y)) if lower_is_better else (val(x) > val(y)) for x, y in zip(pa, pb))
    return wins, len(pa)
