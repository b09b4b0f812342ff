"""sobolev: Sobolev training of neural networks.

The core (derivative stacks, Sobolev losses, models, normalisation, :func:`fit`) is imported with
the package; the optional parts load on first use: the modules :mod:`sobolev.finance`,
:mod:`sobolev.numdiff` and :mod:`sobolev.theory`, the image losses
(``ImageSobolevLoss``, ``image_sobolev_loss``) and the loss curvature (``LossHessian``,
``spectrum_edges``). ``from sobolev import X`` and ``sobolev.numdiff.X`` work for all of them as
for the core.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import config
from .derivatives import (
    DerivativeStack,
    derivatives,
    directional_stack,
    partial_derivatives,
    sample_directions,
)
from .ensemble_training import fit_ensemble, seeded_models
from .losses import SobolevLoss, sobolev_loss
from .metrics import first_reach, heldout_evaluator, stack_errors
from .models import MLP, SIREN, Ensemble, FourierFeatureMLP, TwoLayer
from .normalize import Normalizer, Surrogate
from .training import History, TrainConfig, TrainingInterrupted, fit, seed_everything

__version__ = "0.1.0"

#: submodules imported on first access
_LAZY_MODULES = ("finance", "numdiff", "theory")
#: names imported from their submodule on first access
_LAZY_NAMES = {
    "ImageSobolevLoss": "image_losses",
    "image_sobolev_loss": "image_losses",
    "LossHessian": "curvature",
    "spectrum_edges": "curvature",
}

__all__ = [
    "MLP",
    "SIREN",
    "DerivativeStack",
    "Ensemble",
    "FourierFeatureMLP",
    "History",
    "ImageSobolevLoss",
    "LossHessian",
    "Normalizer",
    "SobolevLoss",
    "Surrogate",
    "TrainConfig",
    "TrainingInterrupted",
    "TwoLayer",
    "config",
    "derivatives",
    "directional_stack",
    "finance",
    "first_reach",
    "fit",
    "fit_ensemble",
    "heldout_evaluator",
    "image_sobolev_loss",
    "numdiff",
    "partial_derivatives",
    "sample_directions",
    "seed_everything",
    "seeded_models",
    "sobolev_loss",
    "spectrum_edges",
    "stack_errors",
    "theory",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
