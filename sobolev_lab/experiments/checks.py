"""Checks of an experiment's config before anything runs or is deleted.

The library's one configuration mechanism (:func:`sobolev.config.validate`) checks the fields,
with rules derived here from their names, once for every experiment: sizes and step counts
(``POSITIVE_INTS``, every ``n_…``), learning rates, dtypes, devices, the names of activations and
target functions, and no empty lists; loss names are checked against the experiment's
``LOSS_NAMES`` where its losses are not the W^{k,2} names L2, H1, H2, …, and an experiment module
may add its own ``validate(cfg)`` for the rest. Every failure is a ``ValueError`` naming the
setting and what it must be, which the CLI prints on one line."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from sobolev.config import (
    Rule,
    between,
    boolean,
    each,
    error,
    integer,
    nonempty,
    one_of,
    positive_finite,
    validate,
)

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
        "dense_max",
        "min_batch",
        "max_batch",
        "max_steps",
        "batches_per_epoch",
        "n_show",
        "members",
    }
)
#: integer settings that must be ≥ 0
NONNEGATIVE_INTS = frozenset(
    {
        "checkpoint_every",
        "batch_size",
        "lbfgs_at",
        "seed",
        "basket_seed",
        "high_d",
        "dim_batch_size",
        "min_steps",
    }
)
#: float settings that must be > 0
POSITIVE_FLOATS = frozenset(
    {
        "lr",
        "lbfgs_lr",
        "ff_sigma",
        "siren_w0",
        "eta_factor",
        "flow_t_max",
        "noise_frequency",
        "ood_frequency",
        "lam",
        "kink_tol",
        "flow_atol",
        "flow_rtol",
        "flow_scale",
    }
)
#: float settings that must be ≥ 0 (0: off)
NONNEGATIVE_FLOATS = frozenset({"noise_sigma", "sinusoid_amplitude"})
#: settings that are lists of positive finite numbers
POSITIVE_FLOAT_LISTS = frozenset({"thresholds", "loss_tols", "param_tols"})
#: settings that are lists of integers ≥ 1
POSITIVE_INT_LISTS = frozenset({"dims", "widths", "flow_widths", "mults", "sizes", "high_d_sizes"})
#: lists of positive finite numbers that may be empty (empty: the feature is off)
OPTIONAL_POSITIVE_FLOAT_LISTS = frozenset({"lrs"})
#: float settings in [0, 1]
FRACTIONS = frozenset({"lr_min_factor"})
DTYPES = ("float32", "float64")
#: device names: auto, cpu, cuda, cuda:N
DEVICE = Rule("auto, cpu, cuda or cuda:N", lambda v: v in ("auto", "cpu") or v.startswith("cuda"))
#: a finite number (every float setting without a rule of its own)
FINITE = Rule("a finite number", lambda v: not isinstance(v, bool) and math.isfinite(v))
_NONNEGATIVE_FINITE = Rule("a finite number ≥ 0", lambda v: v >= 0 and math.isfinite(v))


def _among(choices: Any) -> Rule:
    """Every item one of ``choices`` (a registry's names), listed sorted in the message."""
    return each(Rule(f"among {', '.join(sorted(choices))}", lambda v: v in choices))


def _by_name(f: dataclasses.Field) -> tuple[Rule, ...]:
    """The rules of an experiment setting, from its name; no setting may be an empty list but
    those of :data:`OPTIONAL_POSITIVE_FLOAT_LISTS`."""
    from sobolev.data import FUNCTIONS
    from sobolev.models import ACTIVATIONS

    key = f.name
    default = f.default
    if key in OPTIONAL_POSITIVE_FLOAT_LISTS:
        return (each(positive_finite),)
    if key in NONNEGATIVE_INTS:
        rule = integer(0)
    elif key in POSITIVE_INTS or key.startswith("n_"):
        rule = integer(1)
    elif key in POSITIVE_FLOATS:
        rule = positive_finite
    elif key in NONNEGATIVE_FLOATS:
        rule = _NONNEGATIVE_FINITE
    elif key in FRACTIONS:
        rule = between(0, 1)
    elif key in POSITIVE_FLOAT_LISTS:
        rule = each(positive_finite)
    elif key in POSITIVE_INT_LISTS:
        rule = each(integer(1))
    elif isinstance(default, float):
        rule = FINITE
    elif isinstance(default, tuple) and default and isinstance(default[0], float):
        rule = each(FINITE)
    else:
        rule = {
            "dtype": one_of(DTYPES),
            "device": DEVICE,
            "activation": _among(ACTIVATIONS),
            "activations": _among(ACTIVATIONS),
            "functions": _among(FUNCTIONS),
            "ensemble": boolean,
        }.get(key)
    return (nonempty,) if rule is None else (nonempty, rule)


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
            raise error("losses", f"among {', '.join(known)}", name)


def check_config(cfg: Any, module: Any = None) -> None:
    """Raise ``ValueError`` if a setting of ``cfg`` (an experiment's ``Config``) is out of range
    (:func:`sobolev.config.validate` with the rules named above); then run
    ``module.validate(cfg)`` where the experiment defines one."""
    validate(cfg, _by_name)
    if hasattr(cfg, "losses"):
        _check_losses(cfg.losses, module)
    if module is not None and hasattr(module, "validate"):
        module.validate(cfg)
