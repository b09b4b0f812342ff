"""Run machinery (:mod:`sobolev_lab.runs`): parsing of `key=value` overrides, `execute` and the
arguments of a torchrun relaunch."""

import json
import os
import sys
import typing

import click
import pytest
import torch
from click.testing import CliRunner

from sobolev_lab.experiments import conditioning, regression
from sobolev_lab.runs import RunError, _coerce, apply_overrides, execute, relaunch_args


def test_list_overrides_are_stripped_and_checked():
    cfg = apply_overrides(regression.Config(), ("losses=L2, H1",))
    assert cfg.losses == ("L2", "H1")
    with pytest.raises(RunError, match="rate_window.*expected 2"):
        apply_overrides(conditioning.Config(), ("rate_window=0.1",))


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
    # the typing.Optional spelling of an optional field is what is under test here
    assert _coerce(text, None, typing.Optional[int]) is None  # noqa: UP045
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


# --------------------------------------------------------------------------- execute


def _tiny(*more):
    return ("epochs=4", "log_every=2", "losses=L2", "functions=sin", "seeds=1", *more)


def test_execute_writes_a_run_directory_and_returns_its_summary(tmp_path):
    out = tmp_path / "run"
    summary = execute(
        "regression", quick=True, out=out, sets=_tiny(), resume=False, overwrite=False
    )
    assert (summary["experiment"], summary["setting"], summary["quick"]) == (
        "regression",
        "ours",
        True,
    )
    saved = json.loads((out / "summary.json").read_text())
    assert saved["results"] == summary["results"] and saved["config"]["epochs"] == 4
    assert json.loads((out / "config.json").read_text())["config"]["losses"] == ["L2"]
    assert (out / "table.md").read_text().startswith("Setting: ours")
    again = execute("regression", quick=False, out=out, sets=(), resume=True, overwrite=False)
    assert again["results"] == summary["results"] and again["quick"] is True  # the saved flags


def test_execute_paper_setting_is_recorded(tmp_path):
    summary = execute(
        "student-teacher",
        quick=True,
        paper=True,
        out=tmp_path / "p",
        sets=("activations=tanh", "steps=4", "log_every=2", "n_train=16", "n_test=16"),
        resume=False,
        overwrite=False,
    )
    assert summary["setting"] == "paper" and summary["config"]["optimizer"] == "sgd"
    saved = json.loads((tmp_path / "p" / "config.json").read_text())
    assert (saved["setting"], saved["quick"]) == ("paper", True)


def test_execute_checks_before_writing(tmp_path):
    out = tmp_path / "bad"
    with pytest.raises(RunError, match="epochs.*≥ 1"):
        execute(
            "regression", quick=True, out=out, sets=("epochs=0",), resume=False, overwrite=False
        )
    assert not out.exists()
    with pytest.raises(click.UsageError, match="no --paper setting"):
        execute(
            "regression", quick=True, paper=True, out=out, sets=(), resume=False, overwrite=False
        )
    with pytest.raises(click.UsageError, match="unknown experiment 'nope'"):
        execute("nope", quick=True, out=out, sets=(), resume=False, overwrite=False)


def test_a_resumed_config_that_does_not_fit_is_a_run_error(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(
        json.dumps({"experiment": "regression", "quick": True, "config": {"bogus": 1}})
    )
    with pytest.raises(RunError, match="does not fit experiment 'regression'"):
        execute("regression", quick=False, out=out, sets=(), resume=True, overwrite=False)
    (out / "config.json").write_text("{")
    with pytest.raises(RunError, match="cannot read"):
        execute("regression", quick=False, out=out, sets=(), resume=True, overwrite=False)


# ------------------------------------------------------------------------ relaunch under torchrun


def test_relaunch_args_fix_the_directory_and_repeat_the_options(tmp_path):
    out = tmp_path / "run"
    args = relaunch_args(
        ["run", "regression"],
        "regression",
        quick=True,
        paper=False,
        out=out,
        sets=("epochs=3",),
        resume=False,
        overwrite=True,
    )
    assert args == [
        "run",
        "regression",
        "--out",
        str(out),
        "--quick",
        "--overwrite",
        "--set",
        "epochs=3",
    ]
    assert not out.exists()  # checked, not prepared: the launched rank 0 prepares it
    default = relaunch_args(
        ["demo"],
        "regression",
        quick=False,
        paper=False,
        out=None,
        sets=(),
        resume=False,
        overwrite=False,
    )
    assert default[:2] == ["demo", "--out"] and default[2].startswith("runs/regression-")
    with pytest.raises(RunError, match="lr"):
        relaunch_args(
            ["demo"],
            "regression",
            quick=True,
            paper=False,
            out=out,
            sets=("lr=-1",),
            resume=False,
            overwrite=False,
        )


# ---- relaunching under torchrun (--nproc)


@pytest.mark.slow
def test_cli_nproc_runs_torchrun_and_rank0_writes(tmp_path):
    from sobolev_lab.cli import main

    torch.set_default_dtype(torch.float32)  # as in the launched processes, so both runs start alike
    args = [
        "run",
        "regression",
        "--quick",
        "--set",
        "epochs=20",
        "--set",
        "log_every=10",
        "--set",
        "losses=H1",
        "--set",
        "functions=sin",
    ]
    res = CliRunner().invoke(
        main, [*args, "--nproc", "2", "--out", str(tmp_path / "two")], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    res1 = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "one")], catch_exceptions=False)
    assert res1.exit_code == 0, res1.output
    two, one = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("two", "one"))
    assert two["results"]["sin"]["H1"]["deriv_rel_l2"] == pytest.approx(
        one["results"]["sin"]["H1"]["deriv_rel_l2"], rel=1e-9
    )
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )
    res2 = CliRunner().invoke(
        main, ["run", "regression", "--nproc", "2", "--out", str(tmp_path / "two"), "--resume"]
    )
    assert res2.exit_code == 0, res2.output


def test_launch_runs_torchrun_with_the_command_and_one_thread_by_default(monkeypatch):
    import subprocess

    calls = []
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda cmd, env, **kw: calls.append((cmd, env)) or subprocess.CompletedProcess(cmd, 3),
    )
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    from sobolev_lab.cli import launch

    assert launch(["run", "regression", "--quick"], 2) == 3  # the launcher's exit status
    cmd, env = calls[-1]
    assert cmd == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "sobolev_lab",
        "run",
        "regression",
        "--quick",
    ]
    assert env["OMP_NUM_THREADS"] == "1" and env["PATH"] == os.environ["PATH"]
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # a user's setting is kept
    launch(["demo"], 1)
    assert calls[-1][1]["OMP_NUM_THREADS"] == "4"
    with pytest.raises(ValueError, match="nproc must be ≥ 1"):
        launch(["demo"], 0)


def test_cli_nproc_relaunches_the_checked_command_under_torchrun(tmp_path, monkeypatch):
    from sobolev_lab import cli
    from sobolev_lab.cli import main

    launched = []
    monkeypatch.setattr(cli, "launch", lambda args, nproc: launched.append((args, nproc)) or 0)
    out = tmp_path / "run"
    res = CliRunner().invoke(
        main,
        ["run", "regression", "--quick", "--nproc", "2", "--set", "epochs=3", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert launched == [
        (["run", "regression", "--out", str(out), "--quick", "--set", "epochs=3"], 2)
    ]
    # the arguments were checked and the directory prepared here, before any process starts
    res = CliRunner().invoke(
        main,
        [
            "run",
            "regression",
            "--quick",
            "--nproc",
            "2",
            "--set",
            "epochs=-1",
            "--out",
            str(tmp_path / "bad"),
        ],
    )
    assert res.exit_code == 2 and "epochs" in res.output and len(launched) == 1
    # a failed launch is the command's exit status
    monkeypatch.setattr(cli, "launch", lambda args, nproc: 7)
    res = CliRunner().invoke(
        main, ["demo", "--quick", "--nproc", "2", "--out", str(tmp_path / "demo")]
    )
    assert res.exit_code == 7


def test_coerce_a_list_with_an_empty_default_takes_the_element_type_of_the_annotation():
    assert _coerce("0.01,0.5", (), tuple[float, ...]) == (0.01, 0.5)
    assert _coerce("[1, 2]", (), tuple[int, ...]) == (1, 2)
    assert _coerce("a,b", (), None) == ("a", "b")
    with pytest.raises(ValueError):
        _coerce("0.1,fast", (), tuple[float, ...])
