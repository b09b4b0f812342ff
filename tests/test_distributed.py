"""Data-parallel training: 2 CPU processes (gloo) reproduce the single-process run on the same global
batch, unused parameters do not hang, interrupt and resume are exact, the CLI launches torchrun."""

import json
import os
import signal
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner

from sobolev import MLP, SobolevLoss, TrainConfig, TrainingInterrupted, derivatives, fit, seed_everything
from sobolev import distributed as D

pytestmark = pytest.mark.usefixtures("double")


# ---- the problems, run identically in the workers and in the single-process reference ----

def _problem(n=64):
    x = torch.linspace(-2, 2, n, dtype=torch.float64).unsqueeze(1)
    return (x, *derivatives(torch.sin, x, 1, create_graph=False))


def _model():
    seed_everything(0)
    return MLP(1, 1, width=16, depth=2)


def _cfg(**kw):
    base = dict(steps=8, log_every=2, checkpoint_every=0, progress=False, dtype="float64", seed=3, lr=1e-2)
    return TrainConfig(**{**base, **kw})


CASES = {  # name -> config: unequal shards (15 = 8 + 7), full batch with a switch to L-BFGS
    "minibatch": dict(batch_size=15),
    "lbfgs": dict(batch_size=None, lbfgs_at=4, lbfgs_max_iter=5),
}


def _value_term_on_one_rank(model, batch):
    """|Du − Du*|² per sample, plus the value error for samples at x ≥ 1.99 only: on a rank
    without such a sample the last bias gets no gradient (DDP would hang or raise here)."""
    x, u, du = batch
    loss = ((derivatives(model, x, 1)[1] - du) ** 2).sum(dim=(1, 2))
    far = x[:, 0] >= 1.99
    total = loss.sum()
    if far.any():
        total = total + ((model(x[far]) - u[far]) ** 2).sum()
    return total / x.shape[0]


def _pure_derivative(model, batch):
    x, _, du = batch
    return ((derivatives(model, x, 1)[1] - du) ** 2).sum(dim=(1, 2)).mean()


OBJECTIVES = {"mixed": _value_term_on_one_rank, "pure": _pure_derivative}


def _train(objective, cfg, out_dir=None, evaluate=None):
    """Fit a fresh model; its parameters, last (averaged) gradients and history."""
    model = _model()
    hist = fit(model, objective, _problem(), cfg, out_dir=out_dir, evaluate=evaluate)
    return {"params": {k: v.detach().clone() for k, v in model.named_parameters()},
            "grads": {k: None if v.grad is None else v.grad.clone() for k, v in model.named_parameters()},
            "records": hist.records, "resumed_from": hist.resumed_from}


# ---- workers (module level: spawned processes import them) ----

def _worker(rank, world, port, scenario, tmp):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # as the `double` fixture does in the parent
    torch.save(scenario(rank, tmp), os.path.join(tmp, f"rank{rank}.pt"))


def _scenario_equal(rank, tmp):
    return {name: _train(SobolevLoss(1), _cfg(**kw)) for name, kw in CASES.items()}


def _scenario_unused(rank, tmp):
    return {name: _train(f, _cfg(batch_size=None)) for name, f in OBJECTIVES.items()}


def _scenario_resume(rank, tmp):
    loss = lambda: SobolevLoss(1, directions=2)  # random directions from torch's global RNG
    cfg = _cfg(steps=30, log_every=5, checkpoint_every=10, batch_size=16)
    out = {"ref": _train(loss(), cfg, os.path.join(tmp, "ref"))}
    calls = [0]

    def interrupt_rank0_at_30(model):
        calls[0] += 1
        if calls[0] == 4 and rank == 0:  # logged step 15; rank 1 gets no signal
            os.kill(os.getpid(), signal.SIGINT)
        return {}

    try:
        _train(loss(), cfg, os.path.join(tmp, "run"), evaluate=interrupt_rank0_at_30)
    except TrainingInterrupted:
        out["interrupted"] = True
    out["resumed"] = _train(loss(), cfg, os.path.join(tmp, "run"))
    return out


def _scenarios(rank, tmp):
    """All scenarios in one launch: starting processes costs more than the training here."""
    return {"equal": _scenario_equal(rank, tmp), "unused": _scenario_unused(rank, tmp),
            "resume": _scenario_resume(rank, tmp)}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(scenario, tmp_path, world=2, timeout=120.0):
    """Run ``scenario(rank, tmp)`` in ``world`` spawned processes; fail (not hang) after ``timeout`` s."""
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        ctx = mp.start_processes(_worker, args=(world, _free_port(), scenario, str(tmp_path)), nprocs=world,
                                 join=False, start_method="spawn")
    finally:
        os.environ.pop("OMP_NUM_THREADS") if old is None else os.environ.update(OMP_NUM_THREADS=old)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{scenario.__name__} did not finish within {timeout} s (hang)")
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Each rank's results of :func:`_scenarios` in one 2-process launch, and its directory."""
    tmp = tmp_path_factory.mktemp("dist")
    return _spawn(_scenarios, tmp), tmp


def _assert_same_as_single(res, ref, tol=1e-9):
    for k, p in ref["params"].items():
        assert torch.allclose(res["params"][k], p, rtol=0, atol=tol), k
        if ref["grads"][k] is None:
            assert res["grads"][k] is None, k
        else:
            assert torch.allclose(res["grads"][k], ref["grads"][k], rtol=0, atol=tol), k
    assert [r["step"] for r in res["records"]] == [r["step"] for r in ref["records"]]
    for a, b in zip(res["records"], ref["records"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-12, abs=1e-12)


def _assert_ranks_identical(ranks):
    for k, p in ranks[0]["params"].items():
        assert torch.equal(ranks[1]["params"][k], p), k


def test_two_processes_equal_single_process_on_the_global_batch(two_ranks):
    ranks = [r["equal"] for r in two_ranks[0]]
    for name, kw in CASES.items():
        ref = _train(SobolevLoss(1), _cfg(**kw))
        _assert_same_as_single(ranks[0][name], ref)
        _assert_ranks_identical([r[name] for r in ranks])
        assert ranks[1][name]["records"][-1]["loss"] == ranks[0][name]["records"][-1]["loss"]
        assert ref["params"]["net.0.weight"].ne(_model().net[0].weight).any()  # it did train
    assert any(r["phase"] == "lbfgs" for r in ranks[0]["lbfgs"]["records"])


def test_terms_that_leave_parameters_without_gradient_do_not_hang(two_ranks):
    ranks = [r["unused"] for r in two_ranks[0]]  # a hang fails the launch after its timeout
    last_bias = [k for k in ranks[0]["pure"]["params"]][-1]
    for name, f in OBJECTIVES.items():
        ref = _train(f, _cfg(batch_size=None))
        _assert_same_as_single(ranks[0][name], ref)
        _assert_ranks_identical([r[name] for r in ranks])
    # derivative-only: the output bias never gets a gradient and stays at its initial value
    assert ranks[0]["pure"]["grads"][last_bias] is None
    assert torch.equal(ranks[0]["pure"]["params"][last_bias], dict(_model().named_parameters())[last_bias])
    # the value term reaches only rank 1's shard (x = 2 is sample 63), yet the bias trains on both
    assert ranks[0]["mixed"]["grads"][last_bias] is not None


def test_interrupt_one_rank_then_resume_is_exact(two_ranks):
    ranks, tmp_path = [r["resume"] for r in two_ranks[0]], two_ranks[1]
    for r in ranks:
        assert r["interrupted"] and r["resumed"]["resumed_from"] == 16
        assert [x["loss"] for x in r["resumed"]["records"]] == [x["loss"] for x in r["ref"]["records"]]
        for k, p in r["ref"]["params"].items():
            assert torch.equal(r["resumed"]["params"][k], p), k
    _assert_ranks_identical([r["resumed"] for r in ranks])
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 30 and len(ck["rng_ranks"]) == 2
    assert not torch.equal(ck["rng_ranks"][0]["torch"], ck["rng_ranks"][1]["torch"])  # per-rank streams
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["loss"] for l in lines] == [x["loss"] for x in ranks[0]["resumed"]["records"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.pt", "rank1.pt", "ref", "run"]
    # one process may continue a 2-process run: correct, but not bit-for-bit, and it says so
    with pytest.warns(UserWarning, match="checkpointed with 2"):
        hist = fit(_model(), SobolevLoss(1, directions=2), _problem(), _cfg(steps=30, checkpoint_every=10, batch_size=16),
                   out_dir=tmp_path / "run")
    assert hist.resumed_from == 30 and hist.records[:-1] == ranks[0]["resumed"]["records"][:-1]


def test_shard_and_average_single_process_are_identity():
    ctx = D.Dist()
    idx = torch.arange(5)
    assert torch.equal(D.shard(idx, ctx), idx)
    assert D.shard(idx, D.Dist(1, 2))[0].item() == 1 and len(D.shard(idx, D.Dist(1, 2))) == 2
    with pytest.raises(ValueError, match="fewer than the 3 processes"):
        D.shard(torch.arange(2), D.Dist(0, 3))
    assert D.step_seed(0, 0, 1) != D.step_seed(0, 1, 1) and D.step_seed(0, 1, 1) == D.step_seed(0, 1, 1)


@pytest.mark.slow
def test_cli_nproc_runs_torchrun_and_rank0_writes(tmp_path):
    from sobolev.cli import main

    torch.set_default_dtype(torch.float32)  # as in the launched processes, so both runs start alike
    args = ["run", "regression", "--quick", "--set", "epochs=20", "--set", "log_every=10", "--set", "losses=H1",
            "--set", "functions=sin"]
    res = CliRunner().invoke(main, [*args, "--nproc", "2", "--out", str(tmp_path / "two")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    res1 = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "one")], catch_exceptions=False)
    assert res1.exit_code == 0, res1.output
    two, one = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("two", "one"))
    assert two["results"]["sin"]["H1"]["deriv_rel_l2"] == pytest.approx(one["results"]["sin"]["H1"]["deriv_rel_l2"], rel=1e-9)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    res2 = CliRunner().invoke(main, ["run", "regression", "--nproc", "2", "--out", str(tmp_path / "two"), "--resume"])
    assert res2.exit_code == 0, res2.output
