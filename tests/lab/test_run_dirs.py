"""Run directories of the command line (:mod:`sobolev_lab.runs`): ``--overwrite`` keeps the previous
run until the new one has finished (Ctrl-C, SIGTERM, kill -9), run directories are locked, and an
``--out`` inside another run is refused."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner

from sobolev.training import TrainingInterrupted
from sobolev_lab.cli import main
from sobolev_lab.experiments import regression
from sobolev_lab.runs import LOCK_NAME, RunLock

SMALL = tuple(
    a
    for s in ("epochs=2", "log_every=1", "losses=L2", "functions=sin", "seeds=1")
    for a in ("--set", s)
)


def _invoke(*args):
    return CliRunner().invoke(main, list(args))


def _lines(res):
    return [line for line in res.output.splitlines() if line.strip()]


def _previous_run(out):
    """A run directory as a finished run leaves it (config and summary; nothing is trained)."""
    out.mkdir(parents=True)
    cfg = dataclasses.replace(regression.Config.quick(), epochs=2, log_every=1, seeds=1)
    saved = {
        "experiment": "regression",
        "setting": "ours",
        "quick": True,
        "config": dataclasses.asdict(cfg),
    }
    (out / "config.json").write_text(json.dumps(saved))
    (out / "summary.json").write_text('{"results": "the previous run"}\n')
    (out / "sin").mkdir()
    (out / "sin" / "metrics.jsonl").write_text('{"step": 0}\n')
    return out


def _stub(monkeypatch, run=None):
    """``regression.run`` replaced by ``run`` (default: an empty summary at once), its tables by
    a line."""
    monkeypatch.setattr(regression, "run", run or (lambda cfg, o: {"results": {}, "figures": []}))
    monkeypatch.setattr(regression, "tables", lambda summary: "a table\n")


def _untimed(obj):
    """``obj`` without its wall times (keys naming a time)."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if "time" not in k}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def _snapshot(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _siblings(out):
    return sorted(p.name for p in out.parent.iterdir() if p != out)


# --------------------------------------------------------------------------- --overwrite


def _interrupting(how):
    def run(cfg, out):
        (out / "partial.txt").write_text("half a new run")
        if how == "training":
            raise TrainingInterrupted("interrupted at step 3; checkpoint saved")
        # isolate from the signal state earlier tests may leave: the default action, unblocked
        if how == signal.SIGINT:  # SIGTERM keeps the handler the CLI installs
            signal.signal(how, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {how})
        signal.raise_signal(how)  # to this thread: os.kill may wake another
        time.sleep(5)  # the signal arrives before this ends
        raise AssertionError("not interrupted")

    return run


@pytest.mark.parametrize(
    "how", [signal.SIGINT, signal.SIGTERM, "training"], ids=["SIGINT", "SIGTERM", "training"]
)
def test_an_interrupted_overwrite_puts_the_previous_run_back(tmp_path, monkeypatch, how):
    out = _previous_run(tmp_path / "run")
    before = _snapshot(out)
    _stub(monkeypatch, _interrupting(how))
    res = _invoke("run", "regression", "--quick", "--out", str(out), "--overwrite")
    assert res.exit_code == 130, res.output
    assert "back as it was" in res.output
    assert _snapshot(out) == before  # not a file of the new run, nothing of the old one lost
    assert _siblings(out) == []  # nothing left aside


def test_an_overwrite_keeps_the_previous_run_while_the_new_one_runs(tmp_path, monkeypatch):
    out = _previous_run(tmp_path / "run")
    before = _snapshot(out)
    seen = {}

    def run(cfg, out_dir):
        aside = out_dir.with_name(f".{out_dir.name}.replaced")
        seen["aside"] = _snapshot(aside)
        return {"results": {}, "figures": []}

    _stub(monkeypatch, run)
    res = _invoke("run", "regression", "--quick", "--out", str(out), "--overwrite")
    assert res.exit_code == 0, res.output
    assert {k: v for k, v in seen["aside"].items() if k.name != LOCK_NAME} == before
    assert _siblings(out) == [] and not (out / "sin").exists()  # replaced once finished
    assert json.loads((out / "summary.json").read_text())["results"] == {}


_KILLED_OVERWRITE = textwrap.dedent(
    """
    import sys, time
    from sobolev_lab.experiments import regression
    from sobolev_lab.cli import main

    def run(cfg, out):
        (out / "partial.txt").write_text("half a new run")
        time.sleep(60)

    regression.run = run
    main(["run", "regression", "--quick", "--out", sys.argv[1], "--overwrite"])
    """
)


def test_a_previous_run_set_aside_by_a_killed_overwrite_is_restored_first(tmp_path):
    out = _previous_run(tmp_path / "run")
    before = _snapshot(out)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_OVERWRITE, str(out)])
    try:
        deadline = time.monotonic() + 60
        while not (out / "partial.txt").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.kill()  # kill -9: nothing of the command runs after this
        proc.wait()
    assert (tmp_path / ".run.replaced" / "summary.json").exists()  # set aside, not deleted
    # the next command for that --out puts it back before anything else
    res = _invoke("run", "regression", "--out", str(out), "--resume", "--set", "epochs=3")
    assert "restored the previous run" in res.output, res.output
    assert _snapshot(out) == before
    assert _siblings(out) == []


def test_a_pre_existing_replaced_directory_is_never_deleted(tmp_path, monkeypatch):
    out = _previous_run(tmp_path / "run")
    aside = tmp_path / ".run.replaced"
    aside.mkdir()
    (aside / "keep.txt").write_text("someone's files")
    _stub(monkeypatch)
    res = _invoke("run", "regression", "--quick", "--out", str(out), "--overwrite")
    assert res.exit_code == 2, res.output
    assert ".run.replaced" in _lines(res)[-1] and _lines(res)[-1].startswith("Error:")
    assert (aside / "keep.txt").read_text() == "someone's files"
    assert (out / "summary.json").read_text() == '{"results": "the previous run"}\n'


def test_a_replaced_directory_is_restored_where_the_run_is_missing(tmp_path):
    aside = _previous_run(tmp_path / ".run.replaced")
    before = _snapshot(aside)
    out = tmp_path / "run"
    res = _invoke("run", "regression", "--out", str(out), "--resume", "--set", "epochs=3")
    assert "restored the previous run" in res.output
    assert _snapshot(out) == before and not aside.exists()


# --------------------------------------------------------------------------- locks


def test_a_locked_run_directory_is_refused_in_one_line(tmp_path, monkeypatch):
    out = _previous_run(tmp_path / "run")
    before = _snapshot(out)
    monkeypatch.setattr(regression, "run", lambda cfg, o: pytest.fail("ran on a locked run"))
    lock = RunLock(out)  # another process's run, as far as the command can tell
    try:
        for args in (("--resume",), ("--quick", "--overwrite")):
            res = _invoke("run", "regression", "--out", str(out), *args)
            assert res.exit_code == 2, res.output
            lines = _lines(res)
            assert len(lines) == 1 and lines[0].startswith("Error:") and "in use" in lines[0]
            assert str(os.getpid()) in lines[0]
    finally:
        lock.release()
    assert _snapshot(out) == before and _siblings(out) == []


def test_the_lock_is_released_after_a_run_and_after_an_error(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _stub(monkeypatch)
    assert _invoke("run", "regression", "--quick", "--out", str(out)).exit_code == 0
    assert not (out / LOCK_NAME).exists()

    def broken(cfg, o):
        raise ValueError("data: something only the run finds out")

    _stub(monkeypatch, broken)
    res = _invoke("run", "regression", "--out", str(out), "--resume")
    assert res.exit_code == 2 and not (out / LOCK_NAME).exists()
    RunLock(out).release()  # free


def test_a_stale_lock_of_a_dead_process_is_recovered_with_a_message(tmp_path, monkeypatch):
    out = _previous_run(tmp_path / "run")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(f"{dead.pid}\n")
    _stub(monkeypatch)
    res = _invoke("run", "regression", "--out", str(out), "--resume")
    assert res.exit_code == 0, res.output
    assert "stale lock" in res.output and str(dead.pid) in res.output
    assert not (out / LOCK_NAME).exists()


# --------------------------------------------------------------------------- nested runs


@pytest.mark.parametrize("where", ["inside", "deeper/inside"])
def test_out_inside_another_run_is_refused_before_writing(tmp_path, where):
    run = _previous_run(tmp_path / "run")
    before = _snapshot(run)
    res = _invoke("run", "regression", "--quick", "--out", str(run / where), *SMALL)
    assert res.exit_code == 2, res.output
    lines = _lines(res)
    assert len(lines) == 1 and "inside the run directory" in lines[0]
    assert _snapshot(run) == before and not (run / where.split("/")[0]).exists()


def test_out_that_is_a_symlink_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    res = _invoke("run", "regression", "--quick", "--out", str(link), *SMALL)
    assert res.exit_code == 2 and "symbolic link" in _lines(res)[-1]
    assert list(target.iterdir()) == []


# --------------------------------------------------------------------------- interrupt and resume


# SIGTERM takes the same path as SIGINT (both end in TrainingInterrupted); it runs with -m slow
@pytest.mark.parametrize(
    "sig",
    [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["SIGINT", "SIGTERM"],
)
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, sig):
    sets = ("epochs=1000", "log_every=100", "checkpoint_every=100")
    sets += ("losses=L2", "functions=sin", "seeds=1")
    args = ["run", "regression", "--quick", *(a for s in sets for a in ("--set", s))]
    whole = tmp_path / "whole"
    assert CliRunner().invoke(main, [*args, "--out", str(whole)]).exit_code == 0
    out = tmp_path / "cut"
    env = {**os.environ, "SOBOLEV_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sobolev_lab", *args, "--out", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = out / "sin" / "L2" / "ensemble" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and not (out / "summary.json").exists()
    assert not (out / LOCK_NAME).exists()  # released on the interrupt
    res = CliRunner().invoke(main, ["run", "regression", "--out", str(out), "--resume"])
    assert res.exit_code == 0, res.output
    cut, uncut = (json.loads((d / "summary.json").read_text())["results"] for d in (out, whole))
    assert _untimed(cut) == _untimed(uncut)  # bit for bit, outside the wall times
