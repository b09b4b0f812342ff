"""Properties of the command line (hypothesis): for every ``--set`` key of every experiment and any
text, ``sobolev run NAME --quick --set KEY=TEXT --out DIR`` either runs or exits 2 with one
``Error:`` line, no traceback, and no directory created.

The experiments' ``run`` is replaced by one that returns an empty summary at once: the checks,
the directory preparation and the writes around ``run`` are the real ones."""

import dataclasses
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sobolev_lab import experiments
from sobolev_lab.cli import main

KEYS = [
    (name, f.name)
    for name in experiments.EXPERIMENTS
    for f in dataclasses.fields(experiments.get(name).Config)
]
#: values near the edges of what settings accept
EDGES = [
    "-1",
    "0",
    "1",
    "2",
    "999",
    "-0.5",
    "0.5",
    "1e309",
    "-1e309",
    "nan",
    "inf",
    "none",
    "null",
    "true",
    "",
    " ",
    "[]",
    "[1, 2]",
    "[[1]]",
    "{}",
    '{"a": 1}',
    "1,2",
    "1,,2",
    "a,b",
    "L2",
    "H1",
    "tanh",
    "digits",
    "/nonexistent/folder",
    "cpu",
    "cuda:7",
    "float16",
    "\n",
    "x\ny",
    "é",
    "0x10",
]
TEXTS = st.one_of(
    st.sampled_from(EDGES),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
    st.lists(st.integers(-3, 5), max_size=3).map(lambda v: ",".join(map(str, v))),
)


def _finished(cfg, out):
    return {"results": {}, "figures": []}


def _check(name: str, key: str, text: str) -> None:
    mod = experiments.get(name)
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        mp.setattr(mod, "run", _finished)
        mp.setattr(mod, "tables", lambda summary: "a table\n")
        out = Path(tmp) / "run"
        res = CliRunner().invoke(
            main, ["run", name, "--quick", "--set", f"{key}={text}", "--out", str(out)]
        )
        if res.exit_code == 0:
            assert (out / "summary.json").is_file() and (out / "config.json").is_file()
            return
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2, (name, key, text, res.exit_code, res.output, res.exception)
        assert len(lines) == 1 and lines[0].startswith("Error:"), (name, key, text, res.output)
        assert "Traceback" not in res.output
        assert not out.exists(), (name, key, text, "a refused run created its directory")


@pytest.mark.parametrize("name,key", KEYS, ids=[f"{n}.{k}" for n, k in KEYS])
@pytest.mark.parametrize("text", ["-1", "0", "nan", "abc", "[]"])
def test_edge_values_run_or_are_one_line_errors(name, key, text):
    _check(name, key, text)


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.sampled_from(KEYS), TEXTS)
def test_any_text_runs_or_is_a_one_line_error(key, text):
    _check(*key, text)


@pytest.mark.slow
@settings(
    max_examples=3000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.sampled_from(KEYS), TEXTS)
def test_any_text_runs_or_is_a_one_line_error_many(key, text):
    _check(*key, text)
