"""sobolev.config: dataclass fields checked by their rules, in one function."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sobolev.config import (
    Rule,
    at_least,
    between,
    boolean,
    each,
    error,
    integer,
    nonempty,
    one_of,
    positive,
    positive_finite,
    rules,
    validate,
)


@dataclasses.dataclass
class _Settings:
    width: int = dataclasses.field(default=4, metadata=rules(integer(1)))
    lr: float = dataclasses.field(default=0.1, metadata=rules(positive_finite))
    names: tuple[str, ...] = dataclasses.field(
        default=("a",), metadata=rules(nonempty, each(one_of(("a", "b"))))
    )
    limit: int | None = dataclasses.field(default=None, metadata=rules(integer(0)))
    free: str = "anything"


def test_a_valid_config_passes_and_none_is_accepted_where_annotated():
    validate(_Settings())
    validate(_Settings(limit=0, names=("b", "a"), width=np.int64(3)))


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(width=0), r"^width must be an integer ≥ 1, got 0$"),
        (dict(width=True), r"^width must be an integer ≥ 1, got True$"),
        (dict(width=2.0), r"^width must be an integer ≥ 1, got 2.0$"),
        (dict(lr=math.inf), r"^lr must be a positive finite number, got inf$"),
        (dict(lr="fast"), r"^lr must be a positive finite number, got 'fast'$"),
        (dict(names=()), r"^names must be a non-empty list, got \(\)$"),
        (dict(names=("a", "c")), r"^names must be one of \('a', 'b'\), got 'c'$"),
        (dict(limit=-1), r"^limit must be None or an integer ≥ 0, got -1$"),
    ],
)
def test_the_first_failing_rule_is_one_line_naming_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        validate(_Settings(**kw))


def test_fields_are_checked_in_order():
    with pytest.raises(ValueError, match="^width"):
        validate(_Settings(width=0, lr=-1.0))


def test_default_rules_apply_where_the_metadata_has_none():
    seen = []

    def by_name(f):
        seen.append(f.name)
        return (one_of(("anything",)),) if f.name == "free" else (positive,)

    validate(_Settings(), by_name)
    assert seen == ["free"]  # the other fields carry their own rules
    with pytest.raises(ValueError, match=r"^free must be one of \('anything',\), got 'x'$"):
        validate(_Settings(free="x"), by_name)


def test_rules_say_what_they_expect():
    assert [r.expect for r in (at_least(0), between(0, 1), boolean, positive)] == [
        "≥ 0",
        "in [0, 1]",
        "True or False",
        "positive",
    ]
    assert at_least(0).fault(math.nan) is not None and at_least(0).fault(0) is None
    assert between(0, 1).fault(1) is None and between(0, 1).fault(1.5) == (1.5,)
    assert each(integer(0)).fault("ab") == ("ab",)  # a string is one item
    assert each(integer(0)).fault(5) == (5,)  # not a sequence
    assert Rule("odd", lambda v: v % 2).fault(None) == (None,)  # a TypeError refuses


def test_error_format_and_non_dataclasses():
    assert str(error("n", "positive", -1)) == "n must be positive, got -1"
    with pytest.raises(ValueError, match="cfg must be a dataclass instance"):
        validate(_Settings)
    with pytest.raises(ValueError, match="cfg must be a dataclass instance"):
        validate({"width": 1})
