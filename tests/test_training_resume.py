"""Checkpoints and resume of :func:`sobolev.fit`: what a checkpoint holds (plain data, loaded with
``weights_only=True``), when it is written, bit-for-bit resume (schedules, the L-BFGS switch, every
RNG stream), signals, and the refusals that leave a run directory as it was.
"""

import dataclasses
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sobolev import (
    MLP,
    SobolevLoss,
    TrainConfig,
    TrainingInterrupted,
    derivatives,
    fit,
    seed_everything,
)
from sobolev.training import ONE_CYCLE_KNOTS, _data_id

pytestmark = pytest.mark.usefixtures("double")


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 3, generator=g)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 + 0.1 * torch.randn(12, 1, generator=g)
    return X, y


def _linear():
    net = nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.2, 0.1, -0.3]]))
        net.bias.fill_(0.05)
    return net


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _grad(theta, X, y):
    """∇ of mean (Xw + b − y)² at θ = (w, b), by hand: (2/n) [Xᵀr; Σr]."""
    r = X @ theta[:3, None] + theta[3] - y
    return torch.cat([2 * (X.T @ r)[:, 0], 2 * r.sum(0)]) / len(X)


def _theta(net):
    return torch.cat([net.weight.detach()[0], net.bias.detach()])


def _cfg(**kw):
    return TrainConfig(
        **{**dict(steps=5, progress=False, dtype="float64", log_every=1, checkpoint_every=0), **kw}
    )


def _loss_at(theta, X, y):
    return float(((X @ theta[:3] + theta[3] - y[:, 0]) ** 2).mean())


def _sin_problem(n=64):
    x = torch.linspace(-2, 2, n, dtype=torch.float64).unsqueeze(1)
    return x, derivatives(torch.sin, x, 1, create_graph=False)


def _sin_model():
    seed_everything(0)
    return MLP(1, 1, width=16, depth=2)


def _sin_cfg(**kw):
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


def _small_problem(n=16):
    x = torch.linspace(-2, 2, n, dtype=torch.float64).unsqueeze(1)
    return x, derivatives(torch.sin, x, 1, create_graph=False)


def _small_model(dtype=torch.float64, **kw):
    seed_everything(0)
    return MLP(1, 1, width=8, depth=2, **kw).to(dtype)


def _short_cfg(**kw):
    return TrainConfig(
        **{**dict(steps=10, log_every=5, checkpoint_every=5, progress=False, seed=1), **kw}
    )


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _fresh_run(out, steps=2, **kw):
    X, y = _data()
    return fit(
        _linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=steps, **kw), out_dir=out
    )


def _sched_data():
    x = torch.linspace(-2, 2, 48, dtype=torch.float64).unsqueeze(1)
    return (x, *derivatives(torch.sin, x, 1, create_graph=False))


def _sched_model():
    seed_everything(0)
    return MLP(1, 1, width=8, depth=2)


def _sched_cfg(**kw):
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


def _halving(step: int) -> float:
    return 0.5 ** (step // 7)


def _interrupted_and_resumed(tmp_path, cfg: TrainConfig, stop_at: int):
    loss = lambda: SobolevLoss(1, directions=1)
    ref_model, run_model = _sched_model(), _sched_model()
    ref = fit(ref_model, loss(), _sched_data(), cfg, out_dir=tmp_path / "ref")
    with pytest.raises(TrainingInterrupted):
        fit(
            _sched_model(),
            loss(),
            _sched_data(),
            cfg,
            out_dir=tmp_path / "run",
            evaluate=_stop_at_logged_step(stop_at, cfg.log_every),
        )
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == stop_at + 1
    resumed = fit(run_model, loss(), _sched_data(), cfg, out_dir=tmp_path / "run")
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


def test_checkpoints_are_written_every_checkpoint_every_steps_and_at_the_end(tmp_path, monkeypatch):
    import sobolev.training as T

    saved = []
    real = T.save_atomic
    monkeypatch.setattr(
        T,
        "save_atomic",
        lambda obj, path: (saved.append((obj["step"], obj["n_records"], path)), real(obj, path)),
    )
    _fresh_run(tmp_path, steps=5, checkpoint_every=2, log_every=3)
    ck = tmp_path / "checkpoint.pt"
    assert saved == [
        (2, 1, ck),
        (4, 2, ck),
        (5, 2, ck),
    ]  # records at steps 0, 3 (the final 5 is not in it)
    c = torch.load(ck, weights_only=True)
    assert (c["phase"], c["step"], c["schedule"], c["batches"]) == (
        "sgd",
        5,
        None,
        {"perm": None, "pos": 0},
    )
    assert c["config"] == {
        **dataclasses.asdict(
            _cfg(optimizer="sgd", lr=0.05, steps=5, checkpoint_every=2, log_every=3)
        ),
        "dtype": "float64",
        "lr_knots": [list(k) for k in ONE_CYCLE_KNOTS],  # plain lists: JSON-like data
    }
    assert len(c["rng_ranks"]) == 1 and set(c["rng_ranks"][0]) == {
        "torch",
        "cuda",
        "numpy",
        "python",
        "data",
    }
    saved.clear()
    X, y = _data()
    fit(
        _linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=3, checkpoint_every=1)
    )  # no out_dir: no files
    assert saved == []


class _Payload:
    """Unpickled, it would create the file ``path`` (code run by loading a checkpoint)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_holds_only_plain_data_and_loads_with_weights_only(tmp_path):
    _fresh_run(tmp_path, steps=3, batch_size=5)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    (rng,) = ck["rng_ranks"]
    assert isinstance(rng["torch"], torch.Tensor) and isinstance(rng["data"], torch.Tensor)
    name, keys, pos, has_gauss, cached = rng["numpy"]
    assert name == "MT19937" and len(keys) == 624 and all(type(k) is int for k in keys)
    assert type(pos) is int and type(has_gauss) is int and type(cached) is float
    version, internal, gauss_next = rng["python"]  # gauss_next: None or a float
    assert version == 3 and len(internal) == 625 and all(type(k) is int for k in internal)
    assert gauss_next is None or type(gauss_next) is float
    assert isinstance(ck["batches"]["perm"], torch.Tensor) and type(ck["config"]) is dict


def test_a_checkpoint_that_would_run_code_is_refused_and_not_run(tmp_path):
    """A checkpoint is loaded with weights_only=True: a pickle that calls a function when
    loaded is refused (one line naming the file), and the function never runs."""
    _fresh_run(tmp_path, steps=2)
    ck_path, created = tmp_path / "checkpoint.pt", tmp_path / "created-by-unpickling"
    ck = torch.load(ck_path, weights_only=True)
    ck["elapsed"] = _Payload(created)
    torch.save(ck, ck_path)
    before = ck_path.read_bytes()
    with pytest.raises(ValueError, match=re.escape(str(ck_path)) + ".*plain data") as err:
        _fresh_run(tmp_path, steps=4)
    assert "\n" not in str(err.value) and "new out_dir" in str(err.value)
    assert not created.exists() and ck_path.read_bytes() == before


def test_a_checkpoint_of_the_old_format_is_refused_with_a_clear_message(tmp_path):
    """Checkpoints written before this format held NumPy's RNG state as an array: refused."""
    _fresh_run(tmp_path, steps=2)
    ck_path = tmp_path / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=True)
    ck["rng_ranks"][0]["numpy"] = np.random.get_state()
    torch.save(ck, ck_path)
    with pytest.raises(ValueError, match=re.escape(str(ck_path)) + ".*older sobolev"):
        _fresh_run(tmp_path, steps=4)


def test_a_fresh_start_replaces_stale_metrics(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 99}\n')
    hist = _fresh_run(tmp_path / "run", steps=1)
    assert [
        json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ] == hist.records
    hist = _fresh_run(tmp_path / "new" / "nested", steps=1)  # parents are created
    assert (tmp_path / "new" / "nested" / "checkpoint.pt").exists()
    assert not list((tmp_path / "new" / "nested").glob("*.tmp"))


def test_sigint_then_resume_equals_uninterrupted(tmp_path):
    x, stack = _sin_problem()
    data = (x, *stack)
    loss = lambda: SobolevLoss(1, directions=2, generator=None)  # draws from torch's global RNG
    ref = fit(_sin_model(), loss(), data, _sin_cfg(), out_dir=tmp_path / "ref")

    calls = [0]

    def interrupt_at_30(model):
        calls[0] += 1
        if calls[0] == 4:  # the logged step 30
            os.kill(os.getpid(), signal.SIGINT)
        return {}

    with pytest.raises(TrainingInterrupted):
        fit(
            _sin_model(),
            loss(),
            data,
            _sin_cfg(),
            out_dir=tmp_path / "run",
            evaluate=interrupt_at_30,
        )
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 31  # the step in flight completed, then the checkpoint was written
    resumed = fit(_sin_model(), loss(), data, _sin_cfg(), out_dir=tmp_path / "run")
    assert resumed.resumed_from == 31
    assert [r["loss"] for r in resumed.records] == [r["loss"] for r in ref.records]
    ma, mb = _sin_model(), _sin_model()
    ma.load_state_dict(torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)["model"])
    mb.load_state_dict(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"])
    assert all(
        torch.equal(a, b) for a, b in zip(ma.state_dict().values(), mb.state_dict().values())
    )


def test_sigkill_loses_only_steps_since_checkpoint(tmp_path):
    """A killed process (no handler runs) loses only the steps after its last checkpoint."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, signal, sys, torch
        sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})
        from sobolev import MLP, SobolevLoss, TrainConfig, derivatives, fit, seed_everything
        torch.set_default_dtype(torch.float64)  # as the double fixture does in this process
        x = torch.linspace(-2, 2, 64, dtype=torch.float64).unsqueeze(1)  # as _sin_problem()
        stack = derivatives(torch.sin, x, 1, create_graph=False)
        seed_everything(0)
        model = MLP(1, 1, width=16, depth=2)  # as _sin_model()
        cfg = TrainConfig(steps=60, log_every=10, checkpoint_every=20, progress=False,
                          dtype="float64", batch_size=16, seed=3)  # as _sin_cfg()
        calls = [0]
        def killer(model):
            calls[0] += 1
            if calls[0] == 5:  # logged step 40: the last checkpoint was at step 40, just before
                os.kill(os.getpid(), signal.SIGKILL)
            return {{}}
        fit(model, SobolevLoss(1), (x, *stack), cfg, out_dir=sys.argv[1], evaluate=killer)
    """)
    )
    run = [sys.executable, str(script), str(tmp_path / "run")]
    proc = subprocess.run(run, capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 40
    x, stack = _sin_problem()
    assert (tmp_path / "run" / ".lock").read_text().strip().isdigit()  # left by the killed run
    with pytest.warns(UserWarning, match=r"\.lock: took over the stale lock of process \d+"):
        resumed = fit(
            _sin_model(),
            SobolevLoss(1),
            (x, *stack),
            _sin_cfg(checkpoint_every=20),
            out_dir=tmp_path / "run",
        )
    assert not (tmp_path / "run" / ".lock").exists()
    ref = fit(
        _sin_model(),
        SobolevLoss(1),
        (x, *stack),
        _sin_cfg(checkpoint_every=20),
        out_dir=tmp_path / "ref",
    )
    assert resumed.resumed_from == 40
    assert [r["loss"] for r in resumed.records] == [r["loss"] for r in ref.records]


def test_resume_extends_a_finished_run_exactly(tmp_path):
    x, stack = _sin_problem()
    ref = fit(_sin_model(), SobolevLoss(1), (x, *stack), _sin_cfg(steps=60), out_dir=tmp_path / "a")
    fit(_sin_model(), SobolevLoss(1), (x, *stack), _sin_cfg(steps=40), out_dir=tmp_path / "b")
    ext = fit(_sin_model(), SobolevLoss(1), (x, *stack), _sin_cfg(steps=60), out_dir=tmp_path / "b")
    assert [r["loss"] for r in ext.records] == [r["loss"] for r in ref.records]


def test_resume_restores_python_numpy_torch_and_data_streams(tmp_path):

    X, y = _data()

    def obj(model, batch):  # a loss that draws from every global stream
        noise = random.random() + float(np.random.rand()) + float(torch.rand(()))
        return mse(model, batch) * (1 + 0.1 * noise)

    def run(out, steps=6, evaluate=None):
        seed_everything(4)
        net = _linear()
        return fit(
            net,
            obj,
            (X, y),
            _cfg(optimizer="adam", lr=0.05, steps=steps, batch_size=5, seed=2),
            out_dir=out,
            evaluate=evaluate,
        ), net

    calls = [0]

    def interrupt_at_step_3(model):
        calls[0] += 1
        if calls[0] == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return {}

    ref, ref_net = run(tmp_path / "ref")
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "run", evaluate=interrupt_at_step_3)
    (
        random.seed(99),
        np.random.seed(99),
        torch.manual_seed(99),
    )  # scrambled: the checkpoint restores them
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same number of processes: no warning
        resumed, net = run(tmp_path / "run")
    assert resumed.resumed_from == 4
    assert [(r["step"], r["loss"]) for r in resumed.records] == [
        (r["step"], r["loss"]) for r in ref.records
    ]
    assert torch.equal(_theta(net), _theta(ref_net))
    again, net = run(
        tmp_path / "run"
    )  # a finished run called again: nothing to train, the same history
    assert again.resumed_from == 6 and torch.equal(_theta(net), _theta(ref_net))
    assert [(r["step"], r["loss"]) for r in again.records] == [
        (r["step"], r["loss"]) for r in ref.records
    ]


@pytest.mark.parametrize(
    "kw",
    [
        dict(schedule="cosine", lr_min_factor=0.1),
        dict(schedule="exponential", gamma=0.95, optimizer="sgd", momentum=0.9),
        dict(schedule="step", gamma=0.5, step_size=7, weight_decay=1e-3),
        dict(schedule="one-cycle"),
        dict(schedule="piecewise-linear", lr_knots=((0, 1), (0.3, 0.2), (1, 0.05))),
        dict(schedule=_halving),
    ],
    ids=["cosine", "exponential", "step", "one-cycle", "piecewise", "callable"],
)
def test_resume_restores_the_schedule(tmp_path, kw):
    ref, resumed, ref_model, run_model = _interrupted_and_resumed(
        tmp_path, _sched_cfg(**kw), stop_at=15
    )
    lrs = [r["lr"] for r in ref.records]
    assert len(set(lrs)) > 3  # the schedule does move over the run
    _assert_identical(ref, resumed, ref_model, run_model, tmp_path / "run")


@pytest.mark.parametrize("stop_at", [10, 25], ids=["before-switch", "after-switch"])
def test_resume_across_the_lbfgs_switch(tmp_path, stop_at):
    cfg = _sched_cfg(lbfgs_at=20, schedule="cosine", steps=35)
    ref, resumed, ref_model, run_model = _interrupted_and_resumed(tmp_path, cfg, stop_at=stop_at)
    assert [r["phase"] for r in ref.records if r["step"] in (15, 20, 25)] == [
        "adam",
        "lbfgs",
        "lbfgs",
    ]
    _assert_identical(ref, resumed, ref_model, run_model, tmp_path / "run")


def test_extending_a_finished_run_continues_its_schedule_and_metrics(tmp_path):
    """A finished run's last record is not in its checkpoint: extending it cuts the file back and
    continues exactly as the longer uninterrupted run (exponential schedule: independent of
    steps)."""
    kw = dict(schedule="exponential", gamma=0.97, optimizer="sgd", momentum=0.5)
    ref_model, run_model = _sched_model(), _sched_model()
    ref = fit(
        ref_model,
        SobolevLoss(1),
        _sched_data(),
        _sched_cfg(steps=40, **kw),
        out_dir=tmp_path / "ref",
    )
    short = fit(
        _sched_model(),
        SobolevLoss(1),
        _sched_data(),
        _sched_cfg(steps=22, **kw),
        out_dir=tmp_path / "run",
    )
    assert short.records[-1]["step"] == 22  # the final record, logged after the checkpoint
    ext = fit(
        run_model,
        SobolevLoss(1),
        _sched_data(),
        _sched_cfg(steps=40, **kw),
        out_dir=tmp_path / "run",
    )
    assert ext.resumed_from == 22
    _assert_identical(ref, ext, ref_model, run_model, tmp_path / "run")


def test_resume_may_change_the_budget_and_how_it_is_watched(tmp_path):
    ref = _fresh_run(tmp_path / "ref", steps=6)
    _fresh_run(tmp_path / "run", steps=3, progress=True, device="auto")
    X, y = _data()
    net = _linear()
    ext = fit(
        net,
        mse,
        (X, y),
        _cfg(
            optimizer="sgd",
            lr=0.05,
            steps=6,
            log_every=2,
            checkpoint_every=5,
            progress=False,
            device="cpu",
        ),
        out_dir=tmp_path / "run",
    )
    assert ext.resumed_from == 3
    strip = lambda recs: [(r["step"], r["loss"]) for r in recs]
    # steps 0-2 logged every step before the checkpoint, then every 2nd: 4 and the final 6
    assert strip(ext.records) == [s for s in strip(ref.records) if s[0] in (0, 1, 2, 4, 6)]
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines == ext.records


def test_resume_counts_settings_a_checkpoint_predates_at_their_defaults(tmp_path):
    _fresh_run(tmp_path, steps=2)
    ck_path = tmp_path / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=True)
    del ck["config"]["weight_decay_on"], ck["config"]["eps"]  # an older checkpoint
    ck["config"]["betas"] = list(ck["config"]["betas"])  # as a JSON round trip leaves it
    torch.save(ck, ck_path)
    X, y = _data()
    hist = fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=3), out_dir=tmp_path)
    assert hist.resumed_from == 2 and [r["step"] for r in hist.records] == [0, 1, 2, 3]
    with pytest.raises(
        ValueError, match=r"config differs from the checkpoint's in \['eps', 'weight_decay_on'\]"
    ):
        fit(
            _linear(),
            mse,
            (X, y),
            _cfg(optimizer="sgd", lr=0.05, steps=3, eps=1e-6, weight_decay_on="weights"),
            out_dir=tmp_path,
        )


def test_checkpoints_without_the_new_settings_still_resume(tmp_path):
    x, stack = _small_problem()
    fit(_small_model(), SobolevLoss(1), (x, *stack), _short_cfg(), out_dir=tmp_path)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for k in ("betas", "eps", "weight_decay_on"):  # as written before these settings existed
        del ck["config"][k]
    torch.save(ck, tmp_path / "checkpoint.pt")
    assert (
        fit(
            _small_model(), SobolevLoss(1), (x, *stack), _short_cfg(steps=15), out_dir=tmp_path
        ).resumed_from
        == 10
    )


def test_resume_with_another_number_of_processes_warns(tmp_path):
    _fresh_run(tmp_path, steps=2)
    ck_path = tmp_path / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=True)
    ck["rng_ranks"] = ck["rng_ranks"] * 2
    torch.save(ck, ck_path)
    X, y = _data()
    with pytest.warns(
        UserWarning,
        match=r"resuming with 1 process\(es\) a run checkpointed with 2.*not bit-for-bit",
    ) as caught:
        fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=3), out_dir=tmp_path)
    assert caught[0].filename == __file__  # the warning points at the caller's fit(...) line


def test_resume_refuses_a_different_run(tmp_path):
    x, stack = _sin_problem()
    fit(_sin_model(), SobolevLoss(1), (x, *stack), _sin_cfg(steps=20), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"differs from the checkpoint's in \['lr', 'optimizer'\]"):
        fit(
            _sin_model(),
            SobolevLoss(1),
            (x, *stack),
            _sin_cfg(steps=40, optimizer="sgd", lr=5.0),
            out_dir=tmp_path,
        )
    with pytest.raises(ValueError, match="at step 20 > steps=10"):
        fit(_sin_model(), SobolevLoss(1), (x, *stack), _sin_cfg(steps=10), out_dir=tmp_path)


def test_resume_refusals_are_exact(tmp_path):

    _fresh_run(
        tmp_path, steps=2
    )  # records at steps 0, 1 in the checkpoint; the final one (2) after it
    metrics = tmp_path / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    assert len(lines) == 3
    X, y = _data()
    run = lambda **kw: fit(
        _linear(),
        mse,
        (X, y),
        _cfg(**{"optimizer": "sgd", "lr": 0.05, "steps": 2, **kw}),
        out_dir=tmp_path,
    )
    with pytest.raises(
        ValueError,
        match=f"checkpoint in {re.escape(str(tmp_path))} is at step 2 > steps=1",
    ):
        run(steps=1)
    with pytest.raises(
        ValueError,
        match=r"config differs from the checkpoint's in \['lr', 'seed'\].*new out_dir",
    ):
        run(lr=0.1, seed=1)
    with pytest.raises(ValueError, match=r"config differs from the checkpoint's in \['dtype'\]"):
        run(dtype="float32")
    metrics.write_text(lines[0] + "\n")
    with pytest.raises(
        ValueError,
        match=f"{re.escape(str(metrics))} has 1 records but the checkpoint beside it expects 2",
    ):
        run()
    metrics.unlink()
    with pytest.raises(
        ValueError,
        match=f"{re.escape(str(metrics))} has 0 records but the checkpoint beside it expects 2",
    ):
        run()
    metrics.write_text(lines[0] + "\n{bad\n" + lines[2] + "\n")
    with pytest.raises(
        ValueError,
        match=f"{re.escape(str(metrics))} is not valid JSON lines.*line 1 column 2",
    ):
        run()
    assert (
        metrics.read_text() == lines[0] + "\n{bad\n" + lines[2] + "\n"
    )  # a refused resume writes nothing


def test_refused_resume_leaves_the_run_directory_unchanged(tmp_path):
    x, stack = _small_problem()
    fit(_small_model(), SobolevLoss(1), (x, *stack), _short_cfg(), out_dir=tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"differs from the checkpoint's in \['lr'\]"):
        fit(_small_model(), SobolevLoss(1), (x, *stack), _short_cfg(lr=0.5), out_dir=tmp_path)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "foreign"])
def test_unreadable_checkpoint_is_a_value_error_naming_the_path(tmp_path, damage):
    x, stack = _small_problem()
    fit(_small_model(), SobolevLoss(1), (x, *stack), _short_cfg(), out_dir=tmp_path)
    ck = tmp_path / "checkpoint.pt"
    if damage == "foreign":
        torch.save({"weights": torch.zeros(2)}, ck)
    else:
        ck.write_bytes(
            {
                "empty": b"",
                "truncated": ck.read_bytes()[: ck.stat().st_size // 2],
                "garbage": b"not a checkpoint\n",
            }[damage]
        )
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="new out_dir") as err:
        fit(_small_model(), SobolevLoss(1), (x, *stack), _short_cfg(), out_dir=tmp_path)
    assert str(ck) in str(err.value) and "\n" not in str(err.value)
    assert _snapshot(tmp_path) == before


def test_unreadable_or_foreign_checkpoints_are_refused_and_left_alone(tmp_path):

    X, y = _data()
    keys = [
        "model",
        "optimizer",
        "schedule",
        "phase",
        "step",
        "elapsed",
        "batches",
        "rng_ranks",
        "config",
        "n_records",
    ]
    cases = {
        "empty": (b"", "checkpoint {} cannot be read (EOFError"),
        "foreign": (
            {"model": 1, "step": 0},
            (
                "{} is not a checkpoint of sobolev.fit (missing "
                f"{[k for k in keys if k not in ('model', 'step')]})"
            ),
        ),
        "list": ([1, 2], f"{{}} is not a checkpoint of sobolev.fit (missing {keys})"),
        "number": (5, f"{{}} is not a checkpoint of sobolev.fit (missing {keys})"),
    }
    for name, (content, msg) in cases.items():
        ck = tmp_path / name / "checkpoint.pt"
        ck.parent.mkdir()
        ck.write_bytes(content) if isinstance(content, bytes) else torch.save(content, ck)
        (ck.parent / "metrics.jsonl").write_text("kept\n")
        before = ck.read_bytes()
        with pytest.raises(ValueError, match=re.escape(msg.format(ck))) as err:
            fit(_linear(), mse, (X, y), _cfg(), out_dir=ck.parent)
        assert "\n" not in str(err.value) and "new out_dir" in str(err.value)
        assert ck.read_bytes() == before and (ck.parent / "metrics.jsonl").read_text() == "kept\n"


def test_an_unreadable_checkpoint_names_the_first_line_of_the_reason(tmp_path, monkeypatch):

    X, y = _data()
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    for err, reason in [
        (RuntimeError("first line\nsecond line"), "RuntimeError: first line"),
        (OSError(), "OSError: "),
    ]:

        def load(*a, err=err, **k):
            raise err

        monkeypatch.setattr(torch, "load", load)
        with pytest.raises(
            ValueError,
            match=f"checkpoint {re.escape(str(tmp_path / 'checkpoint.pt'))} cannot be read "
            f"\\({reason}\\)",
        ) as refused:
            fit(_linear(), mse, (X, y), _cfg(), out_dir=tmp_path)
        assert "second line" not in str(refused.value)


def test_sigint_finishes_the_step_checkpoints_and_restores_the_handlers(tmp_path):
    X, y = _data()
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def stop_at_step_2(sig):
        calls = [0]

        def evaluate(model):
            calls[0] += 1
            if calls[0] == 3:
                os.kill(os.getpid(), sig)
            return {}

        return evaluate

    with pytest.raises(
        TrainingInterrupted,
        match=f"stopped at step 3 of 6; checkpoint in {re.escape(str(tmp_path))}",
    ):
        fit(
            _linear(),
            mse,
            (X, y),
            _cfg(optimizer="sgd", lr=0.05, steps=6),
            out_dir=tmp_path,
            evaluate=stop_at_step_2(signal.SIGTERM),
        )
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 3
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    with pytest.raises(TrainingInterrupted, match="stopped at step 3 of 6") as stopped:
        fit(
            _linear(),
            mse,
            (X, y),
            _cfg(optimizer="sgd", lr=0.05, steps=6),
            evaluate=stop_at_step_2(signal.SIGINT),
        )
    assert "checkpoint" not in str(stopped.value)  # no out_dir: nothing was written
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_a_signal_during_the_loss_stops_after_that_step():
    import signal

    X, y = _data()
    calls = [0]

    def obj(model, batch):
        calls[0] += 1
        if calls[0] == 3:  # inside step 2, after the step read the stop flag
            os.kill(os.getpid(), signal.SIGINT)
        return mse(model, batch)

    with pytest.raises(TrainingInterrupted, match="stopped at step 3 of 6") as stopped:
        fit(_linear(), obj, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=6))
    assert calls[0] == 3 and "checkpoint" not in str(stopped.value)


def test_every_rank_must_plan_like_rank_0(monkeypatch):
    """Rank 0's plan is broadcast; a rank whose own config or sample count differs refuses
    (simulated here: the broadcast returns rank 0's plan, as the collective does)."""
    import sobolev.training as T

    X, y = _data()
    msg = "rank 0 called fit with a config or data size other than rank 0's"
    for change in [dict(n=12), dict(n=13), dict(config="lr")]:

        def broadcast(plan, ctx, change=change):
            config = {**plan.config, "lr": 0.5} if change.get("config") else plan.config
            n = change.get("n", plan.data["shapes"][0][0])
            data = {**plan.data, "shapes": [[n, *s[1:]] for s in plan.data["shapes"]]}
            return dataclasses.replace(plan, config=config, data=data)

        monkeypatch.setattr(T.D, "broadcast_object", broadcast)
        run = lambda: fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=1))
        if change == dict(n=12):  # rank 0 has the same 12 samples
            assert [r["step"] for r in run().records] == [0, 1]
        else:
            with pytest.raises(ValueError, match=msg):
                run()


def test_resume_refuses_another_schedule_function(tmp_path):
    cfg = _sched_cfg(schedule=_halving, steps=10)
    with pytest.raises(TrainingInterrupted):
        fit(
            _sched_model(),
            SobolevLoss(1),
            _sched_data(),
            cfg,
            out_dir=tmp_path,
            evaluate=_stop_at_logged_step(5, cfg.log_every),
        )
    other = dataclasses.replace(cfg, schedule=lambda s: 1.0)
    with pytest.raises(ValueError, match="schedule"):
        fit(_sched_model(), SobolevLoss(1), _sched_data(), other, out_dir=tmp_path)


def test_resume_refuses_other_steps_when_a_cosine_schedule_runs_over_them(tmp_path):
    """The cosine schedule's horizon is ``steps``: extending such a run would splice two schedules
    (the lr jumps at the resume step), so it is refused, naming steps, before anything is written;
    with ``lbfgs_at`` the horizon is ``lbfgs_at`` and ``steps`` may grow."""
    kw = dict(schedule="cosine", lr_min_factor=0.1)
    fit(_sched_model(), SobolevLoss(1), _sched_data(), _sched_cfg(steps=20, **kw), out_dir=tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(
        ValueError, match=r"differs from the checkpoint's in \['steps'\] \(20 → 40\)"
    ):
        fit(
            _sched_model(),
            SobolevLoss(1),
            _sched_data(),
            _sched_cfg(steps=40, **kw),
            out_dir=tmp_path,
        )
    assert _snapshot(tmp_path) == before
    kw["lbfgs_at"] = 10
    ref_model, run_model = _sched_model(), _sched_model()
    ref = fit(
        ref_model, SobolevLoss(1), _sched_data(), _sched_cfg(steps=30, **kw), out_dir=tmp_path / "r"
    )
    fit(
        _sched_model(),
        SobolevLoss(1),
        _sched_data(),
        _sched_cfg(steps=20, **kw),
        out_dir=tmp_path / "x",
    )
    ext = fit(
        run_model, SobolevLoss(1), _sched_data(), _sched_cfg(steps=30, **kw), out_dir=tmp_path / "x"
    )
    assert ext.resumed_from == 20
    _assert_identical(ref, ext, ref_model, run_model, tmp_path / "x")


def test_the_data_digest_reads_within_tensors_beyond_float32_indices():
    """Above 2**24 entries float32 rounds the last sampled index up, past the end (a d = 50 run
    of 5 seeds × 131072 samples raised IndexError); the digest still tells the data apart."""
    n = 2**24 + 4  # n − 1 = 2**24 + 3 rounds to 2**24 + 4 in float32
    a = torch.zeros(n, dtype=torch.uint8)
    b = a.clone()
    b[-1] = 1  # the last entry is sampled
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # as in a float32 run
    try:
        assert _data_id((a,))["digest"] != _data_id((b,))["digest"]
    finally:
        torch.set_default_dtype(default)


def test_resume_refuses_other_data(tmp_path):
    """A checkpoint records its data (shapes and a digest): other data are refused before anything
    is written (another sample count used to index the saved permutation: IndexError)."""
    X = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    y = X.sum(1, keepdim=True)
    cfg = lambda steps: _cfg(optimizer="sgd", lr=0.05, steps=steps, batch_size=8)
    fit(_linear(), mse, (X, y), cfg(1), out_dir=tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"data differ from the checkpoint's.*"
        r"\[\[40, 3\], \[40, 1\]\] → \[\[20, 3\], \[20, 1\]\]",
    ):
        fit(_linear(), mse, (X[:20], y[:20]), cfg(3), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"data differ from the checkpoint's.*or other values"):
        fit(_linear(), mse, (X + 1, y), cfg(3), out_dir=tmp_path)
    assert _snapshot(tmp_path) == before
    assert fit(_linear(), mse, (X.clone(), y.clone()), cfg(3), out_dir=tmp_path).resumed_from == 1


@pytest.mark.parametrize("progress", [False, True])
def test_resume_with_another_log_every_switches_the_grid_at_the_resume_step(tmp_path, progress):
    """``log_every`` may change on resume (how a run is watched): the records before the checkpoint
    keep the old grid, those after follow the new one, the file holds exactly the returned
    records, and every step's values equal the uninterrupted run's."""
    X, y = _data()
    cfg = lambda **kw: _cfg(optimizer="sgd", lr=0.05, progress=progress, **kw)
    ref = fit(_linear(), mse, (X, y), cfg(steps=20, log_every=1), out_dir=tmp_path / "ref")
    at = {r["step"]: r["loss"] for r in ref.records}
    for before, after, first in [(3, 4, 7), (5, 2, 10), (4, 7, 13), (2, 20, 6)]:
        run = tmp_path / f"run-{before}-{after}-{first}"
        fit(_linear(), mse, (X, y), cfg(steps=first, log_every=before), out_dir=run)
        hist = fit(_linear(), mse, (X, y), cfg(steps=20, log_every=after), out_dir=run)
        steps = [r["step"] for r in hist.records]
        assert steps == [s for s in range(first) if s % before == 0] + [
            s for s in range(first, 20) if s % after == 0
        ] + [20]
        assert [r["loss"] for r in hist.records] == [at[s] for s in steps]
        lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
        assert lines == hist.records
