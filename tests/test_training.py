"""The training loop: convergence, optimiser switch, schedules, checkpoints and exact resume."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from sobolev import (
    MLP,
    SobolevLoss,
    TrainConfig,
    TrainingInterrupted,
    derivatives,
    fit,
    heldout_evaluator,
    seed_everything,
)


def _problem(n=64):
    x = torch.linspace(-2, 2, n, dtype=torch.float64).unsqueeze(1)
    return x, derivatives(torch.sin, x, 1, create_graph=False)


def _model():
    seed_everything(0)
    return MLP(1, 1, width=16, depth=2)


def _cfg(**kw):
    base = dict(
        steps=60,
        log_every=10,
        checkpoint_every=20,
        progress=False,
        dtype="float64",
        batch_size=16,
        seed=3,
    )
    return TrainConfig(**{**base, **kw})


def test_fit_reduces_loss_and_logs(tmp_path):
    x, stack = _problem()
    hist = fit(
        _model(),
        SobolevLoss(1),
        (x, *stack),
        _cfg(steps=200, lr=1e-2, batch_size=None),
        out_dir=tmp_path,
        evaluate=heldout_evaluator(torch.sin, x, 1),
    )
    steps, losses = hist.series("loss")
    assert steps[0] == 0 and steps[-1] == 200 and steps[1] == 10
    assert losses[-1] < 0.05 * losses[0]
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == hist.records
    assert {"D0", "D1", "d0_rel", "d1_max", "time", "lr"} <= set(lines[-1])
    assert all(b["time"] >= a["time"] for a, b in zip(lines, lines[1:]))


def test_adam_then_lbfgs_and_schedule():
    x, stack = _problem()
    hist = fit(
        _model(),
        SobolevLoss(1),
        (x, *stack),
        _cfg(steps=40, lbfgs_at=20, schedule="cosine", batch_size=None, lr=1e-2),
    )
    phases = {r["step"]: r["phase"] for r in hist.records}
    assert phases[10] == "adam" and phases[30] == "lbfgs"
    lrs = [r["lr"] for r in hist.records if r["phase"] == "adam"]
    assert lrs[0] == pytest.approx(1e-2) and lrs[-1] < lrs[0]
    assert hist.records[-1]["loss"] < hist.records[2]["loss"]


def test_sigint_then_resume_equals_uninterrupted(tmp_path):
    x, stack = _problem()
    data = (x, *stack)
    loss = lambda: SobolevLoss(1, directions=2, generator=None)  # draws from torch's global RNG
    ref = fit(_model(), loss(), data, _cfg(), out_dir=tmp_path / "ref")

    def interrupt_at_30(model, calls=[0]):
        calls[0] += 1
        if calls[0] == 4:  # the logged step 30
            os.kill(os.getpid(), signal.SIGINT)
        return {}

    with pytest.raises(TrainingInterrupted):
        fit(_model(), loss(), data, _cfg(), out_dir=tmp_path / "run", evaluate=interrupt_at_30)
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 31  # the step in flight completed, then the checkpoint was written
    resumed = fit(_model(), loss(), data, _cfg(), out_dir=tmp_path / "run")
    assert resumed.resumed_from == 31
    assert [r["loss"] for r in resumed.records] == [r["loss"] for r in ref.records]
    ma, mb = _model(), _model()
    ma.load_state_dict(torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=False)["model"])
    mb.load_state_dict(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"])
    assert all(
        torch.equal(a, b) for a, b in zip(ma.state_dict().values(), mb.state_dict().values())
    )


def test_sigkill_loses_only_steps_since_checkpoint(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, signal, sys, torch
        sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})
        from tests.test_training import _problem, _model, _cfg
        from sobolev import SobolevLoss, fit
        x, stack = _problem()
        calls = [0]
        def killer(model):
            calls[0] += 1
            if calls[0] == 5:  # logged step 40: the last checkpoint was at step 40, just before
                os.kill(os.getpid(), signal.SIGKILL)
            return {{}}
        fit(_model(), SobolevLoss(1), (x, *stack), _cfg(checkpoint_every=20), out_dir=sys.argv[1], evaluate=killer)
    """)
    )
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 40
    x, stack = _problem()
    resumed = fit(
        _model(), SobolevLoss(1), (x, *stack), _cfg(checkpoint_every=20), out_dir=tmp_path / "run"
    )
    ref = fit(
        _model(), SobolevLoss(1), (x, *stack), _cfg(checkpoint_every=20), out_dir=tmp_path / "ref"
    )
    assert resumed.resumed_from == 40
    assert [r["loss"] for r in resumed.records] == [r["loss"] for r in ref.records]


def test_resume_extends_a_finished_run_exactly(tmp_path):
    x, stack = _problem()
    ref = fit(_model(), SobolevLoss(1), (x, *stack), _cfg(steps=60), out_dir=tmp_path / "a")
    fit(_model(), SobolevLoss(1), (x, *stack), _cfg(steps=40), out_dir=tmp_path / "b")
    ext = fit(_model(), SobolevLoss(1), (x, *stack), _cfg(steps=60), out_dir=tmp_path / "b")
    assert [r["loss"] for r in ext.records] == [r["loss"] for r in ref.records]


def test_generic_objective_and_bad_data():
    x, stack = _problem()
    mse = lambda model, batch: ((model(batch[0]) - batch[1]) ** 2).mean()
    hist = fit(_model(), mse, (x, stack[0]), _cfg(steps=30, batch_size=None, lr=1e-2))
    assert hist.records[-1]["loss"] < hist.records[0]["loss"]
    with pytest.raises(ValueError, match="NaN or Inf"):
        fit(_model(), mse, (x, torch.full_like(x, float("nan"))), _cfg())
    with pytest.raises(ValueError, match="first dimension"):
        fit(_model(), mse, (x, x[:3]), _cfg())
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="adagrad")


def test_resume_refuses_a_different_run(tmp_path):
    x, stack = _problem()
    fit(_model(), SobolevLoss(1), (x, *stack), _cfg(steps=20), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"differs from the checkpoint's in \['lr', 'optimizer'\]"):
        fit(
            _model(),
            SobolevLoss(1),
            (x, *stack),
            _cfg(steps=40, optimizer="sgd", lr=5.0),
            out_dir=tmp_path,
        )
    with pytest.raises(ValueError, match="at step 20 > steps=10"):
        fit(_model(), SobolevLoss(1), (x, *stack), _cfg(steps=10), out_dir=tmp_path)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(steps=2.5), "steps"),
        (dict(schedule="step", step_size=0), "step_size"),
        (dict(checkpoint_every=-1), "checkpoint_every"),
        (dict(lbfgs_at=100, steps=50), "lbfgs_at"),
        (dict(optimizer="lbfgs", schedule="cosine"), "schedule applies"),
        (dict(grad_clip=0.0), "grad_clip"),
    ],
)
def test_config_errors_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)
