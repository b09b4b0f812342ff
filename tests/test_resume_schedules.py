"""Bit-for-bit resume where it is hardest: non-constant LR schedules and the Adam → L-BFGS switch.

Each run is interrupted by SIGINT at a logged step (the step in flight completes, then the
checkpoint is written) and resumed from its directory; every logged record but the wall time, and
every parameter, must equal the uninterrupted run's exactly.
"""

import json
import os
import signal

import pytest
import torch

from sobolev import (
    MLP,
    SobolevLoss,
    TrainConfig,
    TrainingInterrupted,
    derivatives,
    fit,
    seed_everything,
)


def _data():
    x = torch.linspace(-2, 2, 48, dtype=torch.float64).unsqueeze(1)
    return (x, *derivatives(torch.sin, x, 1, create_graph=False))


def _model():
    seed_everything(0)
    return MLP(1, 1, width=8, depth=2)


def _cfg(**kw):
    base = dict(
        steps=40,
        log_every=5,
        checkpoint_every=0,
        progress=False,
        dtype="float64",
        batch_size=16,
        seed=1,
        lr=1e-2,
        lbfgs_max_iter=4,
    )
    return TrainConfig(**{**base, **kw})


def _stop_at_logged_step(step: int, log_every: int):
    def evaluate(model):
        evaluate.calls += 1
        if (evaluate.calls - 1) * log_every == step:
            os.kill(os.getpid(), signal.SIGINT)
        return {}

    evaluate.calls = 0
    return evaluate


def _without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def _interrupted_and_resumed(tmp_path, cfg: TrainConfig, stop_at: int):
    loss = lambda: SobolevLoss(1, directions=1)
    ref_model, run_model = _model(), _model()
    ref = fit(ref_model, loss(), _data(), cfg, out_dir=tmp_path / "ref")
    with pytest.raises(TrainingInterrupted):
        fit(
            _model(),
            loss(),
            _data(),
            cfg,
            out_dir=tmp_path / "run",
            evaluate=_stop_at_logged_step(stop_at, cfg.log_every),
        )
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == stop_at + 1
    resumed = fit(run_model, loss(), _data(), cfg, out_dir=tmp_path / "run")
    assert resumed.resumed_from == stop_at + 1
    return ref, resumed, ref_model, run_model


def _assert_identical(ref, resumed, ref_model, run_model, run_dir):
    assert _without_time(resumed.records) == _without_time(ref.records)
    # the metrics file, cut back to the checkpoint and continued, holds exactly the returned records
    assert [
        json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ] == resumed.records
    for (name, a), b in zip(ref_model.state_dict().items(), run_model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "kw",
    [
        dict(schedule="cosine", lr_min_factor=0.1),
        dict(schedule="exponential", gamma=0.95, optimizer="sgd", momentum=0.9),
        dict(schedule="step", gamma=0.5, step_size=7, weight_decay=1e-3),
    ],
    ids=["cosine", "exponential", "step"],
)
def test_resume_restores_the_schedule(tmp_path, kw):
    ref, resumed, ref_model, run_model = _interrupted_and_resumed(tmp_path, _cfg(**kw), stop_at=15)
    lrs = [r["lr"] for r in ref.records]
    assert len(set(lrs)) > 3  # the schedule does move over the run
    _assert_identical(ref, resumed, ref_model, run_model, tmp_path / "run")


@pytest.mark.parametrize("stop_at", [10, 25], ids=["before-switch", "after-switch"])
def test_resume_across_the_lbfgs_switch(tmp_path, stop_at):
    cfg = _cfg(lbfgs_at=20, schedule="cosine", steps=35)
    ref, resumed, ref_model, run_model = _interrupted_and_resumed(tmp_path, cfg, stop_at=stop_at)
    assert [r["phase"] for r in ref.records if r["step"] in (15, 20, 25)] == [
        "adam",
        "lbfgs",
        "lbfgs",
    ]
    _assert_identical(ref, resumed, ref_model, run_model, tmp_path / "run")


def test_extending_a_finished_run_continues_its_schedule_and_metrics(tmp_path):
    """A finished run's last record is not in its checkpoint: extending it cuts the file back and
    continues exactly as the longer uninterrupted run (exponential schedule: independent of steps)."""
    kw = dict(schedule="exponential", gamma=0.97, optimizer="sgd", momentum=0.5)
    ref_model, run_model = _model(), _model()
    ref = fit(ref_model, SobolevLoss(1), _data(), _cfg(steps=40, **kw), out_dir=tmp_path / "ref")
    short = fit(_model(), SobolevLoss(1), _data(), _cfg(steps=22, **kw), out_dir=tmp_path / "run")
    assert short.records[-1]["step"] == 22  # the final record, logged after the checkpoint
    ext = fit(run_model, SobolevLoss(1), _data(), _cfg(steps=40, **kw), out_dir=tmp_path / "run")
    assert ext.resumed_from == 22
    _assert_identical(ref, ext, ref_model, run_model, tmp_path / "run")
