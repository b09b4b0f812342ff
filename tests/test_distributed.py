"""Data-parallel training: 2 CPU processes (gloo) reproduce the single-process run on the same
global batch, unused parameters do not hang, interrupt and resume are exact, the CLI launches
torchrun."""

import dataclasses
import json
import os
import signal
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from sobolev import (
    MLP,
    SobolevLoss,
    TrainConfig,
    TrainingInterrupted,
    derivatives,
    fit,
    seed_everything,
)
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
    base = dict(
        steps=8, log_every=2, checkpoint_every=0, progress=False, dtype="float64", seed=3, lr=1e-2
    )
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
    return {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "grads": {
            k: None if v.grad is None else v.grad.clone() for k, v in model.named_parameters()
        },
        "records": hist.records,
        "resumed_from": hist.resumed_from,
    }


# ---- mutation testing: mutmut maps each function to the tests that call it in its own process, so
# the ranks (spawned processes) report the library functions they called back to the test ----

_RANK_CALLS: set[str] = set()  # functions the ranks called, while mutmut collects its test map


def _mutmut_collecting():
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


@pytest.fixture(autouse=True)
def _credit_rank_calls_to_this_test():
    if _RANK_CALLS and _mutmut_collecting():
        from mutmut.state import state

        state()._stats.update(_RANK_CALLS)


# ---- a linear least-squares problem with hand-computed gradients ----


def _lin_data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 3, generator=g)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 + 0.1 * torch.randn(12, 1, generator=g)
    return X, y


def _linear():
    net = torch.nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.2, 0.1, -0.3]]))
        net.bias.fill_(0.05)
    return net


def _mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _grad(theta, X, y):
    """∇ of mean (Xw + b − y)² at θ = (w, b), by hand: (2/n) [Xᵀr; Σr]."""
    r = X @ theta[:3, None] + theta[3] - y
    return torch.cat([2 * (X.T @ r)[:, 0], 2 * r.sum(0)]) / len(X)


def _theta(net):
    return torch.cat([net.weight.detach()[0], net.bias.detach()])


def _lin_cfg(**kw):
    return TrainConfig(
        **{**dict(steps=5, progress=False, dtype="float64", log_every=1, checkpoint_every=0), **kw}
    )


def _loss_at(theta, X, y):
    return float(((X @ theta[:3] + theta[3] - y[:, 0]) ** 2).mean())


class _Recorder:
    """Mean squared error (with half of it as a term) that records, per call, its rows and one
    draw from torch's global RNG and one from its own ``generator`` (both reseeded by a
    distributed fit from (seed, rank, step))."""

    def __init__(self):
        self.generator = torch.Generator()
        self.calls = []

    def __call__(self, model, batch):
        x, y, idx = batch
        self.calls.append(
            (idx.tolist(), torch.rand(()).item(), torch.rand((), generator=self.generator).item())
        )
        loss = ((model(x) - y) ** 2).mean()
        return loss, {"half": loss / 2}


# ---- workers (module level: spawned processes import them) ----


def _worker(rank, world, port, scenario, tmp):
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # as the `double` fixture does in the parent
    calls: set[str] = set()
    if _mutmut_collecting():
        from mutmut.mutation import trampoline

        trampoline.record_trampoline_hit = lambda name, caller=None: calls.add(name)
    torch.save(scenario(rank, tmp), os.path.join(tmp, f"rank{rank}.pt"))
    if calls:
        with open(os.path.join(tmp, f"calls{rank}.json"), "w") as f:
            json.dump(sorted(calls), f)


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


def _scenario_broadcast(rank, tmp):
    """Parameters and buffers that differ per rank, then rank 0's broadcast."""
    bn = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.weight.fill_(rank + 1.0)
        bn.running_mean.fill_(10.0 * (rank + 1))
    D.broadcast_module(bn, D.setup())
    return {k: v.clone() for k, v in bn.state_dict().items()}


def _scenario_shards(rank, tmp):
    """A linear least-squares fit (minibatch and full batch) that records each rank's rows and
    random draws, then a SIGINT that reaches rank 0 only."""
    X, y = _lin_data()
    out = {}
    for bs in (5, None):
        obj, net = _Recorder(), _linear()
        hist = fit(
            net,
            obj,
            (X, y, torch.arange(12)),
            _lin_cfg(optimizer="sgd", lr=0.05, steps=3, batch_size=bs, seed=2),
        )
        out[bs] = dict(calls=obj.calls, theta=_theta(net), records=hist.records)
    calls = [0]

    def stop_rank0_at_step_1(model):
        calls[0] += 1
        if calls[0] == 2 and rank == 0:  # rank 1 gets no signal, yet stops with rank 0
            os.kill(os.getpid(), signal.SIGINT)
        return {}

    try:
        fit(
            _linear(),
            lambda model, b: _mse(model, b[:2]),
            (X, y, torch.arange(12)),
            _lin_cfg(optimizer="sgd", lr=0.05, steps=6),
            out_dir=os.path.join(tmp, "stop"),
            evaluate=stop_rank0_at_step_1,
        )
    except TrainingInterrupted as e:
        out["stopped"] = str(e)
    return out


def _scenarios(rank, tmp):
    """All scenarios in one launch: starting processes costs more than the training here."""
    first = D.setup()  # initialises the group from the environment; later calls find it
    return {
        "setup": [dataclasses.astuple(first), dataclasses.astuple(D.setup())],
        "broadcast": _scenario_broadcast(rank, tmp),
        "equal": _scenario_equal(rank, tmp),
        "unused": _scenario_unused(rank, tmp),
        "resume": _scenario_resume(rank, tmp),
        "float32": _train(SobolevLoss(1), _cfg(batch_size=15, dtype="float32")),
        "shards": _scenario_shards(rank, tmp),
    }


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(scenario, tmp_path, world=2, timeout=120.0):
    """Run ``scenario(rank, tmp)`` in ``world`` spawned processes; fail (not hang) after
    ``timeout`` s."""
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        ctx = mp.start_processes(
            _worker,
            args=(world, _free_port(), scenario, str(tmp_path)),
            nprocs=world,
            join=False,
            start_method="spawn",
        )
    finally:
        os.environ.pop("OMP_NUM_THREADS") if old is None else os.environ.update(OMP_NUM_THREADS=old)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{scenario.__name__} did not finish within {timeout} s (hang)")
    for r in range(world):
        calls = tmp_path / f"calls{r}.json"
        if calls.exists():
            _RANK_CALLS.update(json.loads(calls.read_text()))
            calls.unlink()
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]


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
    assert torch.equal(
        ranks[0]["pure"]["params"][last_bias], dict(_model().named_parameters())[last_bias]
    )
    # the value term reaches only rank 1's shard (x = 2 is sample 63), yet the bias trains on both
    assert ranks[0]["mixed"]["grads"][last_bias] is not None


def test_interrupt_one_rank_then_resume_is_exact(two_ranks):
    ranks, tmp_path = [r["resume"] for r in two_ranks[0]], two_ranks[1]
    for r in ranks:
        assert r["interrupted"] and r["resumed"]["resumed_from"] == 16
        assert [x["loss"] for x in r["resumed"]["records"]] == [
            x["loss"] for x in r["ref"]["records"]
        ]
        for k, p in r["ref"]["params"].items():
            assert torch.equal(r["resumed"]["params"][k], p), k
    _assert_ranks_identical([r["resumed"] for r in ranks])
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 30 and len(ck["rng_ranks"]) == 2
    assert not torch.equal(
        ck["rng_ranks"][0]["torch"], ck["rng_ranks"][1]["torch"]
    )  # per-rank streams
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["loss"] for l in lines] == [x["loss"] for x in ranks[0]["resumed"]["records"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "rank0.pt",
        "rank1.pt",
        "ref",
        "run",
        "stop",
    ]
    # one process may continue a 2-process run: correct, but not bit-for-bit, and it says so
    with pytest.warns(UserWarning, match="checkpointed with 2"):
        hist = fit(
            _model(),
            SobolevLoss(1, directions=2),
            _problem(),
            _cfg(steps=30, checkpoint_every=10, batch_size=16),
            out_dir=tmp_path / "run",
        )
    assert hist.resumed_from == 30 and hist.records[:-1] == ranks[0]["resumed"]["records"][:-1]


def test_each_rank_knows_its_place_and_gets_rank_0s_module(two_ranks):
    for r, res in enumerate(two_ranks[0]):
        assert res["setup"] == [(r, 2, r), (r, 2, r)]  # LOCAL_RANK = rank here
        b = res["broadcast"]
        assert torch.equal(b["weight"], torch.ones(3)) and torch.equal(
            b["running_mean"], torch.full((3,), 10.0)
        )


def test_float32_training_over_two_ranks(two_ranks):
    ranks = [r["float32"] for r in two_ranks[0]]
    ref = _train(SobolevLoss(1), _cfg(batch_size=15, dtype="float32"))
    _assert_ranks_identical(ranks)
    for k, p in ref["params"].items():
        assert (
            ranks[0]["params"][k].dtype == torch.float32
            and ranks[0]["grads"][k].dtype == torch.float32
        )
        torch.testing.assert_close(ranks[0]["params"][k], p, rtol=1e-5, atol=1e-6)


def test_two_processes_shard_reseed_and_average(two_ranks):
    """Each rank trains on rows rank::2 of the global batch with its own reseeded draws; the
    averaged gradients, losses and terms equal the single-process run by hand."""
    ranks, tmp_path = [r["shards"] for r in two_ranks[0]], two_ranks[1]
    X, y = _lin_data()
    gen, perms = torch.Generator().manual_seed(2), []
    for _ in range(2):
        perm = torch.randperm(12, generator=gen).tolist()
        perms += [perm[:5], perm[5:10]]
    for bs, batches in [(5, perms[:4]), (None, [list(range(12))] * 4)]:
        theta, losses = _theta(_linear()), []
        for b in batches[:3]:  # the single-process run on the global batches
            losses.append(_loss_at(theta, X[b], y[b]))
            theta = theta - 0.05 * _grad(theta, X[b], y[b])
        losses.append(_loss_at(theta, X[batches[3]], y[batches[3]]))  # the final record
        for r, res in enumerate(ranks):
            res = res[bs]
            draws = [
                torch.rand((), generator=torch.Generator().manual_seed(D.step_seed(2, r, s))).item()
                for s in range(4)
            ]
            assert res["calls"] == [(b[r::2], d, d) for b, d in zip(batches, draws)]
            torch.testing.assert_close(res["theta"], theta, rtol=1e-12, atol=1e-14)
            assert [rec["loss"] for rec in res["records"]] == pytest.approx(losses, rel=1e-12)
            assert [2 * rec["half"] for rec in res["records"]] == pytest.approx(
                losses, rel=1e-12
            )  # terms averaged too
    assert ranks[0]["stopped"] == f"stopped at step 2 of 6; checkpoint in {tmp_path / 'stop'}"
    assert ranks[1]["stopped"] == "stopped at step 2 of 6"  # rank 1 writes nothing
    assert torch.load(tmp_path / "stop" / "checkpoint.pt", weights_only=True)["step"] == 2


def test_setup_without_a_launcher_is_one_process(monkeypatch):
    """WORLD_SIZE alone (no RANK), or a world of one, never initialises a group."""
    for env in ({"WORLD_SIZE": "2"}, {"WORLD_SIZE": "1", "RANK": "0"}):
        for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert D.setup() == D.Dist() and not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(D.dist, "is_available", lambda: False)
    with pytest.raises(
        RuntimeError,
        match=r"WORLD_SIZE=3 asks for 3 processes.*no torch.distributed",
    ):
        D.setup()


def test_cuda_device_is_pinned_to_the_local_rank(monkeypatch):
    """A device descriptor needs no GPU: the rule is checked on any machine."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cuda = torch.device("cuda")
    assert D.Dist(1, 4, 3).device(cuda) == torch.device("cuda", 1)  # local rank 3 on 2 GPUs
    assert D.Dist(1, 4, 2).device(cuda) == torch.device("cuda", 0)
    assert D.Dist(1, 4, 3).device(torch.device("cuda", 0)) == torch.device(
        "cuda", 0
    )  # an explicit index stays
    assert D.Dist(0, 1, 3).device(cuda) == cuda  # one process: unchanged
    assert D.Dist(1, 4, 3).device(torch.device("cpu")) == torch.device("cpu")


def test_shard_and_average_single_process_are_identity():
    ctx = D.Dist()
    idx = torch.arange(5)
    assert torch.equal(D.shard(idx, ctx), idx)
    assert D.shard(idx, D.Dist(1, 2))[0].item() == 1 and len(D.shard(idx, D.Dist(1, 2))) == 2
    with pytest.raises(
        ValueError,
        match=r"2 samples, fewer than the 3 processes.*raise batch_size",
    ):
        D.shard(torch.arange(2), D.Dist(0, 3))
    assert D.shard(torch.arange(3), D.Dist(2, 3)).tolist() == [
        2
    ]  # one sample per process is enough
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    vals = (torch.tensor(1.5),)
    got, stop = D.average([p], vals, 4.0, True, ctx)
    assert got == list(vals) and stop is True and torch.equal(p.grad, torch.full((2,), 3.0))
    assert D.step_seed(0, 0, 1) != D.step_seed(0, 1, 1) and D.step_seed(0, 1, 1) == D.step_seed(
        0, 1, 1
    )
