"""Experiments: one module per experiment, reachable from the CLI (`sobolev run NAME`).

Each module defines

* ``Config``: a dataclass whose defaults are the project's full setting ("ours"), with a
  classmethod ``quick()`` returning the setting that finishes in about a minute on 2 CPU cores,
  and, where the paper has official code, a classmethod ``paper(quick: bool = False)``: the
  official settings exactly (``sobolev run NAME --paper``), or the same settings scaled down
  (fewer epochs and repeats, ``--paper --quick``). Experiments that compare losses have a
  ``seeds: int`` field: paired seeds (same data and initialisation per seed for every loss).
* ``run(cfg: Config, out: pathlib.Path) -> dict``: runs the experiment, writes its figures (PNG)
  and any extra files into ``out``, and returns the JSON-serialisable summary. Results measured
  per seed are stored with :func:`sobolev_lab.seeds.over_seeds` (medians, ``range``, ``per_seed``).
* ``tables(summary: dict) -> str``: the Markdown tables of a run, computed from its summary alone
  (``summary["config"]`` holds the config, ``summary["setting"]`` is ``"ours"`` or ``"paper"``),
  so that ``sobolev report`` regenerates the README's tables from committed summaries.

:func:`sobolev_lab.runs.execute` (the CLI's core) writes ``config.json``, ``summary.json`` and
``table.md`` around ``run``. Experiments are thin: they compose library parts (losses,
derivatives, numdiff, theory, models, training, report). A comparison over paired seeds is one
:func:`sobolev_lab.seeds.paired_runs` call (per seed: shared data, then every loss from the same
initialisation), each training run's ``TrainConfig`` comes from
:func:`sobolev_lab.experiments.seeded.train_config`, and settings beyond the shared checks are
checked by the module's ``validate(cfg)`` before anything is written.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: experiment name -> module path (imported lazily: the CLI starts fast).
EXPERIMENTS: dict[str, str] = {
    "regression": "sobolev_lab.experiments.regression",
    "numdiff-targets": "sobolev_lab.experiments.numdiff_targets",
    "theory": "sobolev_lab.experiments.theory",
    "student-teacher": "sobolev_lab.experiments.student_teacher",
    "architectures": "sobolev_lab.experiments.architectures",
    "conditioning": "sobolev_lab.experiments.conditioning",
    "denoising-autoencoder": "sobolev_lab.experiments.denoising",
    "diffusion": "sobolev_lab.experiments.diffusion",
    "differential-ml": "sobolev_lab.experiments.differential_ml",
}


def get(name: str) -> ModuleType:
    """The module of experiment ``name``; a clear error lists the known names."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    return importlib.import_module(EXPERIMENTS[name])
