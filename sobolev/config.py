"""Settings: dataclasses whose fields carry rules, checked by one function, :func:`validate`.

A :class:`Rule` is what a value must be, in words, and a predicate. A field gets its rules from
its metadata, ``field(default=…, metadata=rules(positive))``, or, when it has none there, from
the caller's ``default_rules(field)`` (the reproduction harness derives them from field names:
every ``n_…`` integer ≥ 1, and so on, so that its experiment configs need no metadata). A field
annotated ``X | None`` accepts ``None``; its rules apply to every other value. :func:`validate`
checks the fields in order and raises the first failure as one line,
``ValueError("<field> must be <expectation>, got <value>")``; rules that relate two fields
(``lbfgs_at`` ≤ ``steps``) follow it in the dataclass's ``__post_init__``. :class:`TrainConfig
<sobolev.training.TrainConfig>` is checked this way, and so is every experiment config of the
command line (``sobolev_lab.experiments.checks.check_config``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "Rule",
    "at_least",
    "between",
    "boolean",
    "each",
    "error",
    "integer",
    "nonempty",
    "one_of",
    "positive",
    "positive_finite",
    "rules",
    "validate",
]


@dataclasses.dataclass(frozen=True)
class Rule:
    """``expect``: what a value must be, in words ("an integer ≥ 1"); ``ok(value)``: whether it is.

    A predicate that raises ``TypeError`` or ``ValueError`` (a string compared with a number)
    refuses the value.
    """

    expect: str
    ok: Callable[[Any], bool]

    def fault(self, value: Any) -> Any:
        """``None`` when ``value`` passes, else a 1-tuple holding the offending value."""
        try:
            good = bool(self.ok(value))
        except (TypeError, ValueError):
            good = False
        return None if good else (value,)


@dataclasses.dataclass(frozen=True)
class _Each(Rule):
    def fault(self, value: Any) -> Any:
        items = (value,) if isinstance(value, str) else value
        try:
            items = tuple(items)
        except TypeError:
            return (value,)
        return next((f for f in map(super().fault, items) if f is not None), None)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def integer(low: int) -> Rule:
    """An integer (not a bool) ≥ ``low``."""
    return Rule(f"an integer ≥ {low}", lambda v: _is_int(v) and v >= low)


def at_least(low: float) -> Rule:
    """A number ≥ ``low`` (NaN is refused)."""
    return Rule(f"≥ {low:g}", lambda v: v >= low)


def between(low: float, high: float) -> Rule:
    """A number in the closed interval [``low``, ``high``]."""
    return Rule(f"in [{low:g}, {high:g}]", lambda v: low <= v <= high)


def one_of(choices: Iterable[Any]) -> Rule:
    """One of ``choices`` (a registry's names, for example)."""
    choices = tuple(choices)
    return Rule(f"one of {choices!r}", lambda v: v in choices)


def each(rule: Rule) -> Rule:
    """Every item of a sequence passes ``rule`` (a string counts as one item); a failure reports
    the offending item."""
    return _Each(rule.expect, rule.ok)


#: a number > 0 (NaN is refused)
positive = Rule("positive", lambda v: v > 0)
#: a finite number > 0
positive_finite = Rule("a positive finite number", lambda v: v > 0 and math.isfinite(v))
#: ``True`` or ``False``
boolean = Rule("True or False", lambda v: isinstance(v, bool))
#: not an empty tuple or list (other values pass)
nonempty = Rule("a non-empty list", lambda v: not (isinstance(v, (tuple, list)) and not v))


def rules(*checks: Rule) -> dict[str, tuple[Rule, ...]]:
    """Field metadata carrying ``checks``: ``field(default=1, metadata=rules(integer(1)))``."""
    return {"rules": checks}


def error(name: str, expect: str, value: Any) -> ValueError:
    """The one-line error of a refused setting: ``<name> must be <expect>, got <value!r>``."""
    return ValueError(f"{name} must be {expect}, got {value!r}")


def _allows_none(f: dataclasses.Field, hints: dict[str, Any]) -> bool:
    hint = hints.get(f.name, f.type)
    if isinstance(hint, str):
        return "None" in hint or hint.startswith("Optional[")
    return hint is type(None) or type(None) in typing.get_args(hint)


def validate(
    cfg: Any, default_rules: Callable[[dataclasses.Field], Sequence[Rule]] | None = None
) -> None:
    """Check every field of the dataclass instance ``cfg`` against its rules.

    Args:
        cfg: a dataclass instance.
        default_rules: the rules of a field whose metadata has none (``None``: no rules).

    Raises:
        ValueError: ``"<field> must be <expectation>, got <value>"`` for the first field that
            fails one of its rules (for a sequence checked by :func:`each`, the offending item).
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise ValueError(f"cfg must be a dataclass instance, got {type(cfg).__name__}")
    try:
        hints = typing.get_type_hints(type(cfg))
    except (NameError, TypeError):  # annotations naming what the module does not import
        hints = {}
    for f in dataclasses.fields(cfg):
        checks = f.metadata.get("rules")
        if checks is None:
            checks = default_rules(f) if default_rules is not None else ()
        value = getattr(cfg, f.name)
        optional = _allows_none(f, hints)
        if value is None and optional:
            continue
        for rule in checks:
            bad = rule.fault(value)
            if bad is not None:
                raise error(f.name, ("None or " if optional else "") + rule.expect, bad[0])
