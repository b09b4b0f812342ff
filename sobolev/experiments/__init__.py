"""Experiments: one module per experiment, reachable from the CLI (`sobolev run NAME`).

Each module defines

* ``Config``: a dataclass whose defaults are the full (paper-like) setting, with a classmethod
  ``quick()`` returning the setting that finishes in about a minute on 2 CPU cores;
* ``run(cfg: Config, out: pathlib.Path) -> dict``: runs the experiment, writes its figures (PNG)
  and any extra files into ``out``, and returns the JSON-serialisable summary.

The CLI writes ``config.json`` and ``summary.json`` around ``run``. Experiments are thin: they
compose library parts (losses, derivatives, numdiff, theory, models, training, report).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: experiment name -> module path (imported lazily: the CLI starts fast).
EXPERIMENTS: dict[str, str] = {
    "regression": "sobolev.experiments.regression",
    "numdiff-targets": "sobolev.experiments.numdiff_targets",
    "theory": "sobolev.experiments.theory",
    "student-teacher": "sobolev.experiments.student_teacher",
    "architectures": "sobolev.experiments.architectures",
    "conditioning": "sobolev.experiments.conditioning",
    "denoising-autoencoder": "sobolev.experiments.denoising",
    "diffusion": "sobolev.experiments.diffusion",
}


def get(name: str) -> ModuleType:
    """The module of experiment ``name``; a clear error lists the known names."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    return importlib.import_module(EXPERIMENTS[name])
