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
from typing import Any

from sobolev.config import (
    Rule,
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
    }
)
#: integer settings that must be ≥ 0
NONNEGATIVE_INTS = frozenset({"checkpoint_every", "batch_size", "lbfgs_at", "seed"})
#: float settings that must be > 0
POSITIVE_FLOATS = frozenset({"lr", "lbfgs_lr", "ff_sigma", "siren_w0", "eta_factor", "flow_t_max"})
DTYPES = ("float32", "float64")
#: device names: auto, cpu, cuda, cuda:N
DEVICE = Rule("auto, cpu, cuda or cuda:N", lambda v: v in ("auto", "cpu") or v.startswith("cuda"))


def _among(choices: Any) -> Rule:
    """Every item one of ``choices`` (a registry's names), listed sorted in the message."""
    return each(Rule(f"among {', '.join(sorted(choices))}", lambda v: v in choices))


def _by_name(f: dataclasses.Field) -> tuple[Rule, ...]:
    """The rules of an experiment setting, from its name; no setting may be an empty list."""
    from sobolev.data import FUNCTIONS
    from sobolev.models import ACTIVATIONS

    key = f.name
    if key in NONNEGATIVE_INTS:
        rule = integer(0)
    elif key in POSITIVE_INTS or key.startswith("n_"):
        rule = integer(1)
    elif key in POSITIVE_FLOATS:
        rule = positive_finite
    else:
        rule = {
            "dtype": one_of(DTYPES),
            "device": DEVICE,
            "activation": _among(ACTIVATIONS),
            "activations": _among(ACTIVATIONS),
            "functions": _among(FUNCTIONS),
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
