"""The CLI's global options (--version, --threads) and the parsing of `--set key=value` values."""

import typing
from importlib.metadata import version

import pytest
import torch
from click.testing import CliRunner

from sobolev_lab.cli import _coerce, main


def _run(*args, **kw):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kw)


def test_version_prints_the_installed_version():
    res = _run("--version")
    assert res.exit_code == 0
    assert version("sobolev") in res.output


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_threads_sets_torch_threads(restore_threads):
    torch.set_num_threads(2)
    assert _run("--threads", "1", "list").exit_code == 0
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    assert _run("list", env={"SOBOLEV_THREADS": "1"}).exit_code == 0  # the environment variable too
    assert torch.get_num_threads() == 1


def test_threads_rejects_zero(restore_threads):
    res = CliRunner().invoke(main, ["--threads", "0", "list"])
    assert res.exit_code == 2 and "--threads" in res.output


@pytest.mark.parametrize(
    "text,want",
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("on", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("OFF", False),
    ],
)
def test_coerce_bool(text, want):
    assert _coerce(text, False, bool) is want
    assert _coerce(text, None, bool) is want  # a bool annotation with a None default


def test_coerce_bool_rejects_other_words():
    with pytest.raises(ValueError, match="expected a boolean, got 'maybe'"):
        _coerce("maybe", True, bool)


def test_coerce_numbers_and_strings():
    assert _coerce("7", 3, int) == 7 and isinstance(_coerce("7", 3, int), int)
    assert _coerce("1e-3", 0.5, float) == 0.001
    assert _coerce("2", 0.5, float) == 2.0 and isinstance(_coerce("2", 0.5, float), float)
    assert _coerce("none", "adam", str) == "none"  # a str field keeps the text as it is
    with pytest.raises(ValueError):
        _coerce("x", 3, int)


@pytest.mark.parametrize("text", ["none", "None", "null"])
def test_coerce_none_for_optional_fields(text):
    assert _coerce(text, None, typing.Optional[int]) is None
    assert _coerce(text, None, float | None) is None


def test_coerce_optional_fields_parse_json_or_keep_text():
    assert _coerce("12", None, int | None) == 12
    assert _coerce("0.25", None, float | None) == 0.25
    assert _coerce("adam", None, str | None) == "adam"
    assert _coerce("[1, 2]", None, list | None) == [1, 2]


def test_coerce_lists():
    assert _coerce("L2,H1", ("L2",), tuple[str, ...]) == ("L2", "H1")
    assert _coerce(" L2 , H1 ,", ("L2",), tuple[str, ...]) == (
        "L2",
        "H1",
    )  # blanks and empty items dropped
    assert _coerce("1,2,3", (0,), tuple[int, ...]) == (1, 2, 3)
    assert _coerce("[0.5, 2]", (1.0, 1.0), tuple[float, float]) == (0.5, 2.0)
    assert _coerce("a,b", (), tuple) == ("a", "b")  # an empty default keeps the items as text
    with pytest.raises(ValueError, match="expected 2 comma-separated values, got 3"):
        _coerce("1,2,3", (1.0, 1.0), tuple[float, float])
