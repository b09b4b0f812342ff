"""The run directory of :func:`sobolev.fit`: writes never follow a symbolic link out of it, and
one process at a time trains in it (``out_dir/.lock``; a stale lock of a dead process is taken
over with a warning; the lock goes on every exit path)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from sobolev import TrainConfig, TrainingInterrupted, fit
from sobolev.training import save_atomic

pytestmark = pytest.mark.usefixtures("double")

ENTRIES = ("checkpoint.pt", "checkpoint.pt.tmp", "metrics.jsonl", "metrics.jsonl.tmp", ".lock")


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 3, generator=g)
    return X, X @ torch.tensor([[1.0], [-2.0], [0.5]])


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _fit(out, steps=3, **kw):
    torch.manual_seed(0)
    cfg = TrainConfig(steps=steps, log_every=1, checkpoint_every=1, progress=False, lr=0.01)
    return fit(nn.Linear(3, 1), mse, _data(), cfg, out_dir=out, **kw)


def _tree(d):
    return {
        str(p.relative_to(d)): (p.readlink() if p.is_symlink() else p.read_bytes())
        for p in sorted(d.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("target", ["existing", "dangling"])
@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_symlinked_entry_is_refused_before_anything_is_written(tmp_path, entry, target, resume):
    outside, run = tmp_path / "outside", tmp_path / "run"
    outside.mkdir()
    if resume:
        _fit(run, steps=2)
    else:
        run.mkdir()
    victim = outside / "victim"
    if target == "existing":
        victim.write_bytes(b"keep")
    (run / entry).unlink(missing_ok=True)
    (run / entry).symlink_to(victim)
    before_run, before_outside = _tree(run), _tree(outside)
    with pytest.raises(ValueError, match=rf"{entry} is a symbolic link: refusing") as e:
        _fit(run, steps=4)
    assert "\n" not in str(e.value)
    assert _tree(run) == before_run and _tree(outside) == before_outside


def test_a_symlinked_run_directory_or_a_non_file_entry_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match=r"out_dir .*link is a symbolic link.*pass the directory"):
        _fit(tmp_path / "link")
    assert list((tmp_path / "real").iterdir()) == []
    (tmp_path / "real" / "metrics.jsonl").mkdir()
    with pytest.raises(ValueError, match=r"metrics.jsonl is not a regular file"):
        _fit(tmp_path / "real")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"out_dir .*file exists and is not a directory"):
        _fit(tmp_path / "file")


def test_a_link_planted_during_training_is_not_written_through(tmp_path):
    """The checks run before the first write; a link planted later is refused by O_NOFOLLOW."""
    outside = tmp_path / "outside.pt"
    run = tmp_path / "run"

    def plant(model):
        if (run / "checkpoint.pt").exists() and not (run / "checkpoint.pt.tmp").is_symlink():
            (run / "checkpoint.pt.tmp").symlink_to(outside)
        return {}

    with pytest.raises((ValueError, OSError)):
        _fit(run, steps=4, evaluate=plant)
    assert not outside.exists()
    assert not (run / ".lock").exists()
    with pytest.raises(ValueError, match="checkpoint.pt.tmp is a symbolic link"):
        save_atomic({"a": 1}, run / "checkpoint.pt")
    assert not outside.exists()


def test_a_second_fit_on_a_locked_directory_is_refused(tmp_path):
    """Inside one process (a nested call) and from another process."""
    run = tmp_path / "run"
    seen = []

    def nested(model):
        if not seen:
            with pytest.raises(ValueError, match=rf"in use by process {os.getpid()}") as e:
                _fit(run, steps=5)
            seen.append(str(e.value))
        return {}

    _fit(run, steps=2, evaluate=nested)
    assert seen and "\n" not in seen[0] and not (run / ".lock").exists()
    assert _fit(run, steps=3).resumed_from == 2  # the lock is gone with the first fit


def test_another_process_cannot_train_in_a_locked_directory(tmp_path):
    run, started = tmp_path / "run", tmp_path / "started"
    script = tmp_path / "hold.py"
    script.write_text(
        textwrap.dedent(f"""
        import pathlib, sys, time, torch
        sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})
        from torch import nn
        from sobolev import TrainConfig, fit
        def slow(model):
            if pathlib.Path({str(run)!r}, "metrics.jsonl").exists():
                pathlib.Path({str(started)!r}).touch()
            time.sleep(0.2)
            return {{}}
        X = torch.randn(8, 3)
        fit(nn.Linear(3, 1), lambda m, b: (m(b[0]) ** 2).mean(), (X,),
            TrainConfig(steps=10_000, log_every=1, checkpoint_every=1, progress=False),
            out_dir={str(run)!r}, evaluate=slow)
    """)
    )
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not started.exists():
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
            time.sleep(0.05)
        metrics = (run / "metrics.jsonl").read_text()
        with pytest.raises(ValueError, match=rf"out_dir .*run is in use by process {proc.pid}"):
            _fit(run, steps=20_000)
        assert (run / "metrics.jsonl").read_text().startswith(metrics)  # nothing of ours added
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop: checkpoint, then the lock is removed
        proc.wait(60)
    assert not (run / ".lock").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(f"{dead.pid}\n")
    with pytest.warns(UserWarning, match=rf"took over the stale lock of process {dead.pid}"):
        hist = _fit(run)
    assert [r["step"] for r in hist.records] == [0, 1, 2, 3]
    assert not (run / ".lock").exists()


def test_the_lock_goes_on_every_exit_path(tmp_path):
    run = tmp_path / "run"
    _fit(run, steps=2)  # finished
    assert not (run / ".lock").exists()
    with pytest.raises(ValueError, match="differs from the checkpoint's"):  # refused resume
        torch.manual_seed(0)
        fit(
            nn.Linear(3, 1),
            mse,
            _data(),
            TrainConfig(steps=3, lr=0.5, log_every=1, checkpoint_every=1, progress=False),
            out_dir=run,
        )
    assert not (run / ".lock").exists()

    def boom(model):
        raise RuntimeError("evaluate failed")

    with pytest.raises(RuntimeError, match="evaluate failed"):  # an error while training
        _fit(tmp_path / "err", evaluate=boom)
    assert not (tmp_path / "err" / ".lock").exists()

    def interrupt(model):
        os.kill(os.getpid(), signal.SIGINT)
        return {}

    with pytest.raises(TrainingInterrupted):  # Ctrl-C
        _fit(tmp_path / "int", steps=5, evaluate=interrupt)
    assert not (tmp_path / "int" / ".lock").exists()
    assert _fit(tmp_path / "int", steps=5).resumed_from == 1
