"""Checks of an experiment's config before anything runs or is deleted.

The fields that several experiments share (sizes, step counts, learning rates, dtypes, names of
losses, activations and target functions) are checked here by name, once for every experiment;
an experiment module may add its own ``validate(cfg)`` for the rest, and ``LOSS_NAMES`` where
its losses are not the W^{k,2} names L2, H1, H2, …. Every failure is a
``ValueError`` naming the setting and what it must be, which the CLI prints on one line.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

#: integer settings that must be ≥ 1 (and every integer setting named ``n_…``)
POSITIVE_INTS = frozenset(
    {
        "width",
        "depth",
        "epochs",
        "steps",
        "n_train",
        "seeds",
        "log_every",
        "table_every",
        "teacher_width",
        "d",
        "lbfgs_max_iter",
        "image_size",
        "size",
        "channels",
        "z_dim",
        "base",
        "timesteps",
        "sample_steps",
        "eval_every",
        "classifier_steps",
        "mc_batch",
        "spec_dim",
        "spec_width",
        "flow_dim",
        "flow_inits",
        "dim_steps",
        "directions",
        "directions_from",
        "fd_accuracy",
        "ff_features",
    }
)
#: integer settings that must be ≥ 0
NONNEGATIVE_INTS = frozenset({"checkpoint_every", "batch_size", "lbfgs_at", "seed"})
#: float settings that must be > 0
POSITIVE_FLOATS = frozenset({"lr", "lbfgs_lr", "ff_sigma", "siren_w0", "eta_factor", "flow_t_max"})
DTYPES = ("float32", "float64")


def _fail(key: str, expected: str, value: Any) -> None:
    raise ValueError(f"{key} must be {expected}, got {value!r}")


def _check_field(key: str, v: Any) -> None:
    from sobolev.data import FUNCTIONS
    from sobolev.models import ACTIVATIONS

    is_int = isinstance(v, int) and not isinstance(v, bool)
    if (
        is_int
        and (key in POSITIVE_INTS or (key.startswith("n_") and key not in NONNEGATIVE_INTS))
        and v < 1
    ):
        _fail(key, "an integer ≥ 1", v)
    if is_int and key in NONNEGATIVE_INTS and v < 0:
        _fail(key, "an integer ≥ 0", v)
    if key == "n_test" and isinstance(v, (int, float)) and not v > 0:
        _fail(key, "positive", v)
    if key in POSITIVE_FLOATS and isinstance(v, (int, float)) and not (v > 0 and math.isfinite(v)):
        _fail(key, "a positive finite number", v)
    if key == "dtype" and v not in DTYPES:
        _fail(key, f"one of {', '.join(DTYPES)}", v)
    if key == "device" and not (v == "auto" or v == "cpu" or str(v).startswith("cuda")):
        _fail(key, "auto, cpu, cuda or cuda:N", v)
    if key in ("activation", "activations"):
        for a in (v,) if isinstance(v, str) else v:
            if a not in ACTIVATIONS:
                _fail(key, f"among {', '.join(sorted(ACTIVATIONS))}", a)
    if key == "functions":
        for f in v:
            if f not in FUNCTIONS:
                _fail(key, f"among {', '.join(sorted(FUNCTIONS))}", f)


def _check_losses(names: tuple[str, ...], module: Any) -> None:
    """Loss names: the module's ``LOSS_NAMES`` where it has its own, else W^{k,2} names (L2, H1, …)
    and the names the experiment's default config uses."""
    from sobolev.losses import LOSS_ORDERS

    known = getattr(module, "LOSS_NAMES", None)
    if known is None:
        known = (
            *LOSS_ORDERS,
            *(n for n in getattr(module.Config(), "losses", ()) if n not in LOSS_ORDERS),
        )
    for name in names:
        if name not in known:
            _fail("losses", f"among {', '.join(known)}", name)


def check_config(cfg: Any, module: Any = None) -> None:
    """Raise ``ValueError`` if a setting of ``cfg`` (an experiment's ``Config``) is out of range;
    then run ``module.validate(cfg)`` where the experiment defines one."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, tuple) and not v:
            _fail(f.name, "a non-empty list", "")
        _check_field(f.name, v)
    if hasattr(cfg, "losses"):
        _check_losses(cfg.losses, module)
    if module is not None and hasattr(module, "validate"):
        module.validate(cfg)
