"""Helpers shared by the experiments that compare losses over paired seeds
(:func:`sobolev_lab.seeds.paired_runs`): the training settings of a run from the experiment's
config, per-seed final values from training records, runs that diverge, the config of a summary,
and the heading line every table starts with."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from sobolev.ensemble_training import fit_ensemble, seeded_models
from sobolev.training import TrainConfig

from ..seeds import over_seeds

#: experiment settings whose "off" value is ``None`` in :class:`TrainConfig`
OFF = {"batch_size": 0, "lbfgs_line_search": "none"}
_TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig)) - {"seed"}


def train_config(cfg: Any, *, seed: int, **settings: Any) -> TrainConfig:
    """The :class:`sobolev.training.TrainConfig` of one training run of an experiment: each
    setting of ``cfg`` (the experiment's ``Config``) that ``TrainConfig`` has under the same name
    (``steps``, ``optimizer``, ``lr``, ``schedule``, ``batch_size``, ``log_every``, ``dtype``,
    ``device``, …), overridden by ``settings``, with the run's ``seed``. The experiments' "off"
    values (:data:`OFF`: ``batch_size=0`` for full batch, ``lbfgs_line_search="none"``) become
    ``None``."""
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    values = {k: v for k, v in values.items() if k in _TRAIN_FIELDS} | settings
    for name, off in OFF.items():
        if name in values and values[name] == off:
            values[name] = None
    return TrainConfig(seed=seed, **values)


def finals_over_seeds(
    runs: Sequence[Sequence[dict[str, Any]]], keys: dict[str, str]
) -> dict[str, Any]:
    """:func:`sobolev_lab.seeds.over_seeds` of each seed's last record: ``keys`` maps a summary
    key to the record key it is read from (``{"value_rel_err": "d0_rel", ...}``)."""
    return over_seeds([{out: r[-1][src] for out, src in keys.items()} for r in runs])


def config_of(cls: type, summary: dict[str, Any]) -> Any:
    """The experiment config ``cls(**summary["config"])`` with JSON lists turned back into
    tuples."""

    def back(v: Any) -> Any:
        return tuple(back(x) for x in v) if isinstance(v, list) else v

    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: back(v) for k, v in summary["config"].items() if k in names})


def setting_note(summary: dict[str, Any], seeds: int | None) -> str:
    """``"setting: ours, 3 seeds (paired: …)"``: which setting a table shows and over how many
    seeds."""
    setting = summary.get("setting", "ours")
    if seeds is None:
        return f"setting: {setting}"
    plural = "s" if seeds != 1 else ""
    return (
        f"setting: {setting}, {seeds} seed{plural} "
        "(paired: same data and initialisation for every loss)"
    )


def records_or_diverged(
    train: Callable[[], Any], out_dir: Path, steps: int, log_every: int
) -> list[dict[str, Any]]:
    """The training records of ``train()`` (a :func:`sobolev.fit` call writing ``out_dir``); if it
    diverges (``FloatingPointError``), the records it logged, continued by :func:`pad_diverged`."""
    try:
        return train().records
    except FloatingPointError:
        path = Path(out_dir) / "metrics.jsonl"
        recs = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return pad_diverged(recs, steps, log_every)


def pad_diverged(recs: list[dict[str, Any]], steps: int, log_every: int) -> list[dict[str, Any]]:
    """The records of a run that diverged, continued to ``steps`` with every loss and error +inf
    and ``"diverged": True``, so the seed counts as the worst one in medians, ranges and paired
    comparisons and never reaches a threshold after diverging."""
    last = recs[-1] if recs else {"step": -log_every, "time": 0.0}
    pad = {k: math.inf for k, v in last.items() if isinstance(v, float) and k not in ("time", "lr")}
    later = [*range(last["step"] + log_every, steps, log_every), steps]
    return recs + [{**last, **pad, "step": s, "diverged": True} for s in later if s > last["step"]]


def fit_seeds(
    make_model: Callable[[], nn.Module],
    objective: Any,
    data: Any,
    config: TrainConfig,
    seeds: list[int],
    *,
    out_dir: Path | None = None,
    evaluate: Any = None,
    desc: str = "train",
) -> tuple[list[nn.Module], list[list[dict[str, Any]]]]:
    """Every seed of one setting at once (:func:`sobolev.fit_ensemble`; member n starts from
    ``make_model()`` under seed n, as a :func:`sobolev_lab.seeds.paired_runs` run does): the trained
    models and each seed's records, a diverged seed's continued by :func:`pad_diverged`."""
    models = seeded_models(make_model, seeds)
    hists = fit_ensemble(
        models, objective, data, config, seeds=seeds, out_dir=out_dir, evaluate=evaluate, desc=desc
    )
    return models, [
        pad_diverged(h.records, config.steps, config.log_every) if h.diverged else h.records
        for h in hists
    ]


def finite_band(band: dict[str, list[float]]) -> dict[str, list[float]]:
    """A :func:`sobolev_lab.report.seed_band` with non-finite values (diverged seeds) as NaN, which
    matplotlib leaves out."""
    return {k: [v if math.isfinite(v) else math.nan for v in vs] for k, vs in band.items()}


def diverged_seeds(result: dict[str, Any], key: str) -> int:
    """How many seeds of an :func:`sobolev_lab.seeds.over_seeds` result have no finite ``key``
    (None in JSON)."""
    return sum(
        1
        for p in result["per_seed"]
        if not (isinstance(p.get(key), (int, float)) and math.isfinite(p[key]))
    )
