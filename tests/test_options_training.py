"""TrainConfig and fit against hand-rolled references: optimiser updates, schedules, L-BFGS, data
checks and minibatches, records, checkpoints and resume, signals, every refusal's exact message, and
the distributed branches of the loop on two processes."""

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from sobolev import History, TrainConfig, fit

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


@pytest.mark.parametrize("on", ["all", "weights"])
def test_sgd_with_momentum_and_weight_decay_is_the_textbook_update(on):
    X, y = _data()
    net = _linear()
    lr, mu, wd = 0.05, 0.9, 0.01
    fit(
        net,
        mse,
        (X, y),
        _cfg(optimizer="sgd", lr=lr, momentum=mu, weight_decay=wd, weight_decay_on=on),
    )
    theta, buf = _theta(_linear()), None
    decayed = torch.tensor([1.0, 1.0, 1.0, 1.0 if on == "all" else 0.0])  # "weights": not the bias
    for _ in range(5):
        d = _grad(theta, X, y) + wd * decayed * theta
        buf = d if buf is None else mu * buf + d
        theta = theta - lr * buf
    torch.testing.assert_close(_theta(net), theta, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("b1,b2,eps", [(0.9, 0.999, 1e-8), (0.5, 0.9, 1e-3)])
def test_adam_with_weight_decay_is_the_textbook_update(b1, b2, eps):
    X, y = _data()
    net = _linear()
    lr, wd = 0.03, 0.1
    fit(net, mse, (X, y), _cfg(optimizer="adam", lr=lr, weight_decay=wd, betas=(b1, b2), eps=eps))
    theta = _theta(_linear())
    m = v = torch.zeros(4)
    for t in range(1, 6):
        g = _grad(theta, X, y) + wd * theta  # Adam's L2 penalty (not decoupled AdamW)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        theta = theta - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
    torch.testing.assert_close(_theta(net), theta, rtol=1e-10, atol=1e-12)


def test_grad_clip_bounds_the_step_norm():
    X, y = _data()
    y = 100 * y  # a large gradient
    lr, clip = 0.1, 0.5
    net = _linear()
    fit(net, mse, (X, y), _cfg(optimizer="sgd", lr=lr, grad_clip=clip, steps=1))
    theta0 = _theta(_linear())
    g = _grad(theta0, X, y)
    assert g.norm() > 100 * clip
    torch.testing.assert_close(_theta(net), theta0 - lr * clip * g / g.norm(), rtol=1e-5, atol=1e-8)
    unclipped = _linear()  # a clip above the gradient norm changes nothing
    fit(
        unclipped,
        mse,
        (X, y),
        _cfg(optimizer="sgd", lr=1e-4, grad_clip=float(10 * g.norm()), steps=1),
    )
    torch.testing.assert_close(_theta(unclipped), theta0 - 1e-4 * g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "kw,lr_at",
    [
        (dict(schedule="exponential", gamma=0.8), lambda s: 0.1 * 0.8**s),
        (dict(schedule="step", gamma=0.5, step_size=3), lambda s: 0.1 * 0.5 ** (s // 3)),
        (
            dict(schedule="cosine", lr_min_factor=0.2),
            lambda s: 0.1 * (0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * s / 8))),
        ),
        (dict(schedule="cosine"), lambda s: 0.1 * 0.5 * (1 + math.cos(math.pi * s / 8))),
    ],
    ids=["exponential", "step", "cosine-min", "cosine"],
)
def test_schedule_learning_rates(kw, lr_at):
    X, y = _data()
    hist = fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.1, steps=8, **kw))
    steps, lrs = hist.series("lr")
    assert steps == list(range(9))
    assert lrs == pytest.approx([lr_at(s) for s in steps], rel=1e-12, abs=1e-15)


def test_cosine_schedule_ends_at_lbfgs_at_and_lbfgs_uses_lbfgs_lr():
    X, y = _data()
    hist = fit(
        _linear(),
        mse,
        (X, y),
        _cfg(
            optimizer="adam",
            lr=0.1,
            steps=8,
            lbfgs_at=4,
            lbfgs_lr=0.7,
            schedule="cosine",
            lr_min_factor=0.1,
        ),
    )
    lr = dict(zip(*hist.series("lr")))
    phase = {r["step"]: r["phase"] for r in hist.records}
    assert [phase[s] for s in range(9)] == ["adam"] * 4 + ["lbfgs"] * 5
    assert [lr[s] for s in range(4)] == pytest.approx(
        [0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 4))) for s in range(4)], rel=1e-12
    )
    assert [lr[s] for s in range(4, 9)] == pytest.approx([0.7] * 5)


@pytest.mark.parametrize(
    "kw",
    [dict(optimizer="lbfgs", lr=1.0), dict(optimizer="sgd", lr=0.01, lbfgs_at=0)],
    ids=["lbfgs", "lbfgs_at=0"],
)
def test_lbfgs_solves_least_squares(kw):
    X, y = _data()
    net = _linear()
    fit(net, mse, (X, y), _cfg(steps=3, lbfgs_max_iter=50, **kw))
    A = torch.cat([X, torch.ones(12, 1)], 1)
    exact = torch.linalg.lstsq(A, y).solution[:, 0]
    assert float((_theta(_linear()) - exact).norm()) > 1.0
    # L-BFGS stops at its gradient tolerance (1e-7): within ~1e-5 of the minimiser
    torch.testing.assert_close(_theta(net), exact, rtol=0, atol=1e-4)


def test_plain_sgd_takes_plain_gradient_steps():
    X, y = _data()
    net = _linear()
    fit(net, mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=3))
    theta = _theta(_linear())
    for _ in range(3):
        theta = theta - 0.05 * _grad(theta, X, y)
    torch.testing.assert_close(_theta(net), theta, rtol=1e-12, atol=1e-14)


def test_data_are_cast_to_the_training_dtype_and_integers_kept():
    X, y = _data()  # float64 data, float32 training
    seen = {}

    def obj(model, batch):
        x, target, labels = batch
        seen.update(x=x.dtype, labels=labels.dtype)
        return ((model(x) - target) ** 2).mean()

    net = _linear()
    fit(
        net,
        obj,
        (X, y, torch.arange(12)),
        _cfg(dtype="float32", device="cpu", optimizer="sgd", lr=0.01, steps=1),
    )
    assert seen == {"x": torch.float32, "labels": torch.int64}
    assert net.weight.dtype == torch.float32 and net.weight.device == torch.device("cpu")


def test_a_bare_tensor_as_data_gets_a_hint():
    X, _ = _data()
    with pytest.raises(ValueError, match=r"wrap a single tensor as \(x,\)"):
        fit(_linear(), mse, X, _cfg())


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(momentum=-0.1), "momentum must be ≥ 0, got -0.1"),
        (dict(weight_decay=-1.0), "weight_decay must be ≥ 0, got -1.0"),
        (dict(betas=(0.9, 1.0)), "betas"),
        (dict(betas=(1.0, 0.9)), "betas"),
        (dict(betas=(0.9,)), "betas"),
    ],
)
def test_optimizer_settings_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


# ---- every refusal is one exact line naming the argument (anchored: the whole message is pinned) ----

_CONFIG_ERRORS = [
    (dict(steps=2.5), r"steps must be an integer ≥ 0, got 2.5"),
    (dict(steps=True), r"steps must be an integer ≥ 0, got True"),
    (dict(steps=-1), r"steps must be an integer ≥ 0, got -1"),
    (
        dict(optimizer="adagrad"),
        r"optimizer must be one of \('adam', 'sgd', 'lbfgs'\), got 'adagrad'",
    ),
    (
        dict(schedule="linear"),
        r"schedule must be one of \('constant', 'cosine', 'exponential', 'step'\), got 'linear'",
    ),
    (
        dict(dtype="float16"),
        r"dtype must be None \(keep the model's\) or one of \('float32', 'float64'\), got 'float16'",
    ),
    (dict(lr=0.0), r"lr must be positive, got 0.0"),
    (dict(lr=float("nan")), r"lr must be positive, got nan"),
    (dict(log_every=0), r"log_every must be ≥ 1, got 0"),
    (dict(batch_size=0), r"batch_size must be None or ≥ 1, got 0"),
    (
        dict(checkpoint_every=-1),
        r"checkpoint_every must be ≥ 0 \(0: only at the end and on interrupt\), got -1",
    ),
    (dict(step_size=0), r"step_size must be ≥ 1, got 0"),
    (dict(lbfgs_at=-1, steps=10), r"lbfgs_at must be None or in \[0, steps=10\], got -1"),
    (dict(lbfgs_at=11, steps=10), r"lbfgs_at must be None or in \[0, steps=10\], got 11"),
    (dict(gamma=0.0), r"gamma must be positive, got 0.0"),
    (dict(lbfgs_lr=-1.0), r"lbfgs_lr must be positive, got -1.0"),
    (dict(eps=0.0), r"eps must be positive, got 0.0"),
    (dict(eps=float("nan")), r"eps must be positive, got nan"),
    (dict(weight_decay=-1.0), r"weight_decay must be ≥ 0, got -1.0"),
    (dict(momentum=-0.1), r"momentum must be ≥ 0, got -0.1"),
    (dict(momentum=float("nan")), r"momentum must be ≥ 0, got nan"),
    (dict(grad_clip=0.0), r"grad_clip must be None or positive, got 0.0"),
    (dict(grad_clip=float("nan")), r"grad_clip must be None or positive, got nan"),
    (dict(lr_min_factor=1.5), r"lr_min_factor must be in \[0, 1\], got 1.5"),
    (dict(lr_min_factor=-0.1), r"lr_min_factor must be in \[0, 1\], got -0.1"),
    (
        dict(optimizer="lbfgs", schedule="cosine"),
        r"schedule applies to adam and sgd only: use schedule='constant' with optimizer='lbfgs'",
    ),
    (dict(betas=(0.9, 1.0)), r"betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"),
    (dict(betas=(-0.1, 0.9)), r"betas must be two numbers in \[0, 1\), got \(-0.1, 0.9\)"),
    (dict(betas=(0.9,)), r"betas must be two numbers in \[0, 1\), got \(0.9,\)"),
    (
        dict(betas=(0.9, 0.99, 0.5)),
        r"betas must be two numbers in \[0, 1\), got \(0.9, 0.99, 0.5\)",
    ),
    (dict(betas="ab"), r"betas must be two numbers in \[0, 1\), got 'ab'"),
    (dict(betas=None), r"betas must be two numbers in \[0, 1\), got None"),
    (
        dict(weight_decay_on="bias"),
        r"weight_decay_on must be one of \('all', 'weights'\), got 'bias'",
    ),
]


@pytest.mark.parametrize(
    "kw,msg",
    _CONFIG_ERRORS,
    ids=[f"{i}-{next(iter(kw))}" for i, (kw, _) in enumerate(_CONFIG_ERRORS)],
)
def test_config_errors_are_exact(kw, msg):
    with pytest.raises(ValueError, match=f"^{msg}$"):
        TrainConfig(**kw)


def test_config_accepts_its_boundaries_and_normalises_betas():
    TrainConfig(
        steps=0,
        lr=1e-300,
        log_every=1,
        batch_size=1,
        checkpoint_every=0,
        step_size=1,
        gamma=1e-300,
        lbfgs_lr=1e-300,
        eps=1e-300,
        weight_decay=0.0,
        momentum=0.0,
        lr_min_factor=0.0,
        grad_clip=1e-300,
    )
    TrainConfig(steps=5, lbfgs_at=0, lr_min_factor=1.0, schedule="step", dtype="float32")
    TrainConfig(steps=5, lbfgs_at=5, optimizer="lbfgs", dtype="float64")
    cfg = TrainConfig(betas=[0, 0.5])
    assert (
        cfg.betas == (0.0, 0.5)
        and type(cfg.betas) is tuple
        and all(type(b) is float for b in cfg.betas)
    )
    assert TrainConfig(betas=(0.0, 0.0)).betas == (0.0, 0.0)


_ARRAY_HINT = "data must be a tuple of tensors (or NumPy arrays) with a common first dimension, e.g. (x, u, Du), got "
_DATA_ERRORS = [
    (lambda x: x, _ARRAY_HINT + "Tensor (wrap a single tensor as (x,))"),
    (lambda x: x.numpy(), _ARRAY_HINT + "ndarray (wrap a single tensor as (x,))"),
    (lambda x: "ab", _ARRAY_HINT + "str"),
    (lambda x: b"ab", _ARRAY_HINT + "bytes"),
    (lambda x: 5, _ARRAY_HINT + "int"),
    (lambda x: (), _ARRAY_HINT + "tuple"),
    (lambda x: {"x": x}, _ARRAY_HINT + "dict"),
    (
        lambda x: (x, [x, x]),
        "data[1] is a list of tensors: data must be a flat tuple of tensors; "
        "unpack a derivative stack, e.g. (x, *stack)",
    ),
    (
        lambda x: (x, (x,)),
        "data[1] is a tuple of tensors: data must be a flat tuple of tensors; "
        "unpack a derivative stack, e.g. (x, *stack)",
    ),
    (lambda x: (x, "ab"), "data[1] must be a tensor or a numeric array-like, got str"),
    (lambda x: (x, object()), "data[1] must be a tensor or a numeric array-like, got object"),
    (lambda x: (x, [[1, 2], [3]]), "data[1] must be a tensor or a numeric array-like, got list"),
    (
        lambda x: (torch.tensor(1.0), x),
        "data[0] must have a first (sample) dimension, got a 0-d value",
    ),
    (lambda x: (x, x[:3]), "data tensors must share their first dimension, got [(4, 3), (3, 3)]"),
    (lambda x: (x[:0], x[:0]), "data must hold at least one sample, got a first dimension of 0"),
    (lambda x: (x, x, torch.full_like(x, float("nan"))), "data[2] contains NaN or Inf"),
    (lambda x: (x, torch.full_like(x, float("-inf"))), "data[1] contains NaN or Inf"),
]


@pytest.mark.parametrize("make,msg", _DATA_ERRORS, ids=range(len(_DATA_ERRORS)))
def test_data_errors_are_exact(make, msg):
    import re

    X, _ = _data()
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        fit(_linear(), mse, make(X[:4]), _cfg())


def _fresh_run(out, steps=2, **kw):
    X, y = _data()
    return fit(
        _linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=steps, **kw), out_dir=out
    )


def test_unreadable_or_foreign_checkpoints_are_refused_and_left_alone(tmp_path):
    import re

    X, y = _data()
    what = "delete it (or the run directory) to start afresh, or use a new out_dir"
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
        "empty": (
            b"",
            f"checkpoint {{}} cannot be read (EOFError: Ran out of input): it is empty, truncated or not a "
            f"checkpoint; {what}",
        ),
        "foreign": (
            {"model": 1, "step": 0},
            f"{{}} is not a checkpoint of sobolev.fit (missing "
            f"{[k for k in keys if k not in ('model', 'step')]}); {what}",
        ),
        "list": ([1, 2], f"{{}} is not a checkpoint of sobolev.fit (missing {keys}); {what}"),
        "number": (5, f"{{}} is not a checkpoint of sobolev.fit (missing {keys}); {what}"),
    }
    for name, (content, msg) in cases.items():
        ck = tmp_path / name / "checkpoint.pt"
        ck.parent.mkdir()
        ck.write_bytes(content) if isinstance(content, bytes) else torch.save(content, ck)
        (ck.parent / "metrics.jsonl").write_text("kept\n")
        before = ck.read_bytes()
        with pytest.raises(ValueError, match="^" + re.escape(msg.format(ck)) + "$"):
            fit(_linear(), mse, (X, y), _cfg(), out_dir=ck.parent)
        assert ck.read_bytes() == before and (ck.parent / "metrics.jsonl").read_text() == "kept\n"


def test_resume_refusals_are_exact(tmp_path):
    import re

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
        match=f"^the checkpoint in {re.escape(str(tmp_path))} is at step 2 > steps=1: "
        "use a new out_dir or a larger steps$",
    ):
        run(steps=1)
    with pytest.raises(
        ValueError,
        match=r"^config differs from the checkpoint's in \['lr', 'seed'\]: resuming would "
        r"mix two runs; use a new out_dir$",
    ):
        run(lr=0.1, seed=1)
    with pytest.raises(ValueError, match=r"^config differs from the checkpoint's in \['dtype'\]"):
        run(dtype="float32")
    metrics.write_text(lines[0] + "\n")
    with pytest.raises(
        ValueError,
        match=f"^{re.escape(str(metrics))} has 1 records but the checkpoint beside it "
        "expects 2: the run directory is incomplete; use a new out_dir$",
    ):
        run()
    metrics.unlink()
    with pytest.raises(
        ValueError,
        match=f"^{re.escape(str(metrics))} has 0 records but the checkpoint beside it expects 2",
    ):
        run()
    metrics.write_text(lines[0] + "\n{bad\n" + lines[2] + "\n")
    with pytest.raises(
        ValueError,
        match=f"^{re.escape(str(metrics))} is not valid JSON lines \\(Expecting property "
        r"name enclosed in double quotes: line 1 column 2 \(char 1\)\); use a new out_dir$",
    ):
        run()
    assert (
        metrics.read_text() == lines[0] + "\n{bad\n" + lines[2] + "\n"
    )  # a refused resume writes nothing


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
    ck = torch.load(ck_path, weights_only=False)
    del ck["config"]["weight_decay_on"], ck["config"]["eps"]  # an older checkpoint
    ck["config"]["betas"] = list(ck["config"]["betas"])  # as a JSON round trip leaves it
    torch.save(ck, ck_path)
    X, y = _data()
    hist = fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=3), out_dir=tmp_path)
    assert hist.resumed_from == 2 and [r["step"] for r in hist.records] == [0, 1, 2, 3]
    with pytest.raises(
        ValueError, match=r"^config differs from the checkpoint's in \['eps', 'weight_decay_on'\]"
    ):
        fit(
            _linear(),
            mse,
            (X, y),
            _cfg(optimizer="sgd", lr=0.05, steps=3, eps=1e-6, weight_decay_on="weights"),
            out_dir=tmp_path,
        )


def test_resume_with_another_number_of_processes_warns(tmp_path):
    _fresh_run(tmp_path, steps=2)
    ck_path = tmp_path / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=False)
    ck["rng_ranks"] = ck["rng_ranks"] * 2
    torch.save(ck, ck_path)
    X, y = _data()
    with pytest.warns(
        UserWarning,
        match=r"^resuming with 1 process\(es\) a run checkpointed with 2: training continues "
        r"correctly but is not bit-for-bit the uninterrupted run$",
    ) as caught:
        fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=3), out_dir=tmp_path)
    assert caught[0].filename == __file__  # the warning points at the caller's fit(...) line


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


def _loss_at(theta, X, y):
    return float(((X @ theta[:3] + theta[3] - y[:, 0]) ** 2).mean())


def test_records_hold_step_time_loss_terms_lr_phase_and_evaluation(tmp_path, monkeypatch):
    import types

    import sobolev.training as T

    clock = iter(range(100))  # a fake clock that advances by 1 per reading: each step takes 1 s
    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    X, y = _data()
    modes = []

    def obj(model, batch):
        modes.append(model.training)
        loss = mse(model, batch)
        return loss, {"twice": 2 * loss, "zero": torch.zeros(())}

    def evaluate(model):
        modes.append(model.training)
        return {"w0": model.weight[0, 0].detach(), "n": 7}

    net = _linear()
    hist = fit(
        net,
        obj,
        (X, y),
        _cfg(optimizer="sgd", lr=0.05, steps=5, log_every=2),
        out_dir=tmp_path,
        evaluate=evaluate,
    )
    theta, thetas = _theta(_linear()), []
    for _ in range(6):
        thetas.append(theta)
        theta = theta - 0.05 * _grad(theta, X, y)
    expected = [
        {
            "step": s,
            "time": float(s),
            "loss": _loss_at(thetas[s], X, y),
            "twice": 2 * _loss_at(thetas[s], X, y),
            "zero": 0.0,
            "lr": 0.05,
            "phase": "sgd",
            "w0": float(thetas[s][0]),
            "n": 7.0,
        }
        for s in (0, 2, 4, 5)
    ]
    assert [list(r) for r in hist.records] == [list(e) for e in expected]
    for r, e in zip(hist.records, expected):
        assert r["phase"] == e.pop("phase")
        assert {k: v for k, v in r.items() if k != "phase"} == pytest.approx(
            e, rel=1e-12, abs=1e-15
        )
    assert [
        json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ] == hist.records
    # evaluation in eval mode before the logged steps 0, 2, 4 and after the final loss; the objective in train mode
    assert modes == [False, True, True, False, True, True, False, True, True, False]
    assert net.training


def test_history_series():
    h = History(
        records=[{"step": 0, "a": 1.0}, {"step": 3, "b": 2.0}, {"step": 5, "a": 4.0, "b": 5.0}]
    )
    assert h.series("a") == ([0, 5], [1.0, 4.0])
    assert h.series("b") == ([3, 5], [2.0, 5.0])
    assert h.series("c") == ([], [])
    assert History().records == [] and History().resumed_from is None


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
    c = torch.load(ck, weights_only=False)
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


def test_minibatches_are_one_seeded_permutation_per_epoch_without_the_incomplete_tail():
    X, y = _data()
    seen = []

    def obj(model, batch):
        seen.append(batch[2].tolist())
        torch.testing.assert_close(batch[0], X[batch[2]], rtol=0, atol=0)  # rows stay together
        torch.rand(3)  # the global RNG moves on; the data order has its own generator
        return mse(model, batch[:2])

    fit(
        _linear(),
        obj,
        (X, y, torch.arange(12)),
        _cfg(optimizer="sgd", lr=0.01, steps=5, batch_size=5, seed=7),
    )
    gen = torch.Generator().manual_seed(7)
    expected = []
    for _ in range(
        3
    ):  # 12 samples, batches of 5: two per epoch, the last 2 samples of each order unused
        perm = torch.randperm(12, generator=gen).tolist()
        expected += [perm[:5], perm[5:10]]
    assert seen == expected[:6]  # five steps and the final evaluation
    seen.clear()
    fit(
        _linear(),
        obj,
        (X, y, torch.arange(12)),
        _cfg(optimizer="sgd", lr=0.01, steps=4, batch_size=4, seed=7),
    )
    gen = torch.Generator().manual_seed(7)
    perms = [torch.randperm(12, generator=gen).tolist() for _ in range(2)]
    assert seen == [
        perms[0][:4],
        perms[0][4:8],
        perms[0][8:],
        perms[1][:4],
        perms[1][4:8],
    ]  # 3 batches an epoch
    for bs in (12, 50):  # a batch of the whole data (or more): every sample, in order, each step
        seen.clear()
        fit(
            _linear(),
            obj,
            (X, y, torch.arange(12)),
            _cfg(optimizer="sgd", lr=0.01, steps=2, batch_size=bs),
        )
        assert seen == [list(range(12))] * 3


def test_a_fresh_run_seeds_torch_with_the_config_seed():
    X, y = _data()
    draws = []

    def obj(model, batch):
        draws.append(torch.rand(()).item())
        return mse(model, batch)

    torch.manual_seed(123)
    fit(_linear(), obj, (X, y), _cfg(optimizer="sgd", lr=0.01, steps=2, seed=5))
    torch.manual_seed(5)
    assert draws == [torch.rand(()).item() for _ in range(3)]


def test_seed_everything_seeds_python_numpy_and_torch():
    import random

    import numpy as np

    from sobolev import seed_everything

    seed_everything(11)
    got = (random.random(), np.random.rand(), torch.rand(()).item())
    assert got == (
        random.Random(11).random(),
        np.random.RandomState(11).rand(),
        torch.rand((), generator=torch.Generator().manual_seed(11)).item(),
    )


def test_the_model_ends_with_the_last_steps_gradient_not_the_final_evaluations():
    X, y = _data()
    net = _linear()
    fit(net, mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=2))
    theta = _theta(_linear())
    theta = theta - 0.05 * _grad(theta, X, y)  # the parameters the 2nd (last) step started from
    g = _grad(theta, X, y)
    torch.testing.assert_close(
        torch.cat([net.weight.grad[0], net.bias.grad]), g, rtol=1e-12, atol=1e-14
    )


def test_lbfgs_logs_the_loss_at_the_steps_starting_parameters():
    X, y = _data()
    hist = fit(_linear(), mse, (X, y), _cfg(optimizer="lbfgs", lr=1.0, steps=2, lbfgs_max_iter=3))
    assert hist.records[0]["loss"] == pytest.approx(_loss_at(_theta(_linear()), X, y), rel=1e-12)
    assert hist.records[0]["lr"] == 1.0 and hist.records[0]["phase"] == "lbfgs"


@pytest.mark.parametrize(
    "line_search,max_iter,kw",
    [
        (None, 2, dict(optimizer="lbfgs", lr=0.3)),
        ("strong_wolfe", 3, dict(optimizer="lbfgs", lr=0.3)),
        (
            None,
            2,
            dict(optimizer="adam", lr=5.0, lbfgs_at=0, lbfgs_lr=0.3),
        ),  # one L-BFGS kept over the steps
    ],
    ids=["plain", "wolfe", "switch-at-0"],
)
def test_lbfgs_settings_reach_torchs_lbfgs(line_search, max_iter, kw):
    X, y = _data()
    net = _linear()
    fit(
        net,
        mse,
        (X, y),
        _cfg(steps=2, lbfgs_max_iter=max_iter, lbfgs_line_search=line_search, **kw),
    )
    ref = _linear()  # the same two L-BFGS steps, set up by hand
    opt = torch.optim.LBFGS(ref.parameters(), lr=0.3, max_iter=max_iter, line_search_fn=line_search)

    def closure():
        opt.zero_grad()
        loss = mse(ref, (X, y))
        loss.backward()
        return loss

    for _ in range(2):
        opt.step(closure)
    torch.testing.assert_close(_theta(net), _theta(ref), rtol=1e-12, atol=1e-14)
    assert float((_theta(net) - _theta(_linear())).norm()) > 1e-2


def test_a_non_finite_loss_stops_with_its_step():
    X, y = _data()
    calls = [0]

    def obj(model, batch):
        calls[0] += 1
        return mse(model, batch) * (float("inf") if calls[0] == 3 else 1.0)

    with pytest.raises(
        FloatingPointError, match=r"^loss became inf at step 2: lower the learning rate$"
    ):
        fit(_linear(), obj, (X, y), _cfg(optimizer="sgd", lr=0.01))
    with pytest.raises(
        FloatingPointError, match=r"^loss became nan at step 0: lower the learning rate$"
    ):
        fit(_linear(), lambda m, b: mse(m, b) * float("nan"), (X, y), _cfg())


def test_sigint_finishes_the_step_checkpoints_and_restores_the_handlers(tmp_path):
    import os
    import re
    import signal

    from sobolev import TrainingInterrupted

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
        match=f"^stopped at step 3 of 6; checkpoint in {re.escape(str(tmp_path))}$",
    ):
        fit(
            _linear(),
            mse,
            (X, y),
            _cfg(optimizer="sgd", lr=0.05, steps=6),
            out_dir=tmp_path,
            evaluate=stop_at_step_2(signal.SIGTERM),
        )
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 3
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    with pytest.raises(TrainingInterrupted, match=r"^stopped at step 3 of 6$"):
        fit(
            _linear(),
            mse,
            (X, y),
            _cfg(optimizer="sgd", lr=0.05, steps=6),
            evaluate=stop_at_step_2(signal.SIGINT),
        )
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_fit_runs_outside_the_main_thread():
    import threading

    X, y = _data()
    out = {}
    t = threading.Thread(
        target=lambda: out.update(
            h=fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=2))
        )
    )
    t.start()
    t.join()
    assert [r["step"] for r in out["h"].records] == [0, 1, 2]


def test_progress_bar_counts_steps_and_shows_the_logged_loss(monkeypatch):
    import tqdm.auto

    bars = []

    class Bar:
        def __init__(self, **kw):
            self.kw, self.n, self.post, self.closed = kw, kw["initial"], [], False
            bars.append(self)

        def update(self, k):
            self.n += k

        def set_postfix(self, **kw):
            self.post.append((self.n, kw))

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    X, y = _data()
    hist = fit(
        _linear(),
        mse,
        (X, y),
        _cfg(optimizer="sgd", lr=0.05, steps=5, log_every=3, progress=True),
        desc="fitting",
    )
    (bar,) = bars
    assert bar.kw == dict(
        total=5, initial=0, desc="fitting", leave=False, dynamic_ncols=True, disable=None
    )
    assert bar.n == 5 and bar.closed
    losses = dict(zip(*hist.series("loss")))
    assert bar.post == [(s + 1, {"loss": f"{losses[s]:.3e}"}) for s in (0, 3)]
    fit(_linear(), mse, (X, y), _cfg(steps=2, progress=False))
    assert len(bars) == 1
    fit(_linear(), mse, (X, y), _cfg(steps=2, progress=True))
    assert bars[1].kw["desc"] == "train" and bars[1].n == 2


def test_model_dtype_decides_the_data_dtype_when_config_dtype_is_none():
    X, y = _data()  # float64 (the double fixture)
    seen = []

    def obj(model, batch):
        seen.append(batch[0].dtype)
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    for net, dtype in [(_linear().float(), torch.float32), (_linear().double(), torch.float64)]:
        seen.clear()
        fit(net, obj, (X, y), _cfg(dtype=None, steps=1))
        assert seen == [dtype, dtype] and net.weight.dtype == dtype

    class Frozen(
        nn.Module
    ):  # no floating parameter: the first floating buffer decides, else torch's default
        def __init__(self, buffer_dtype=None):
            super().__init__()
            self.register_buffer("count", torch.zeros((), dtype=torch.int64))
            if buffer_dtype is not None:
                self.register_buffer("scale", torch.ones((), dtype=buffer_dtype))
            self.k = nn.Parameter(torch.ones(3, 1, dtype=torch.int64), requires_grad=False)

        def forward(self, x):
            return x @ self.k.to(x.dtype)

    frozen_obj = lambda m, b: obj(m, b).requires_grad_(torch.is_grad_enabled())
    for buffer_dtype, dtype in [(torch.float32, torch.float32), (None, torch.float64)]:
        seen.clear()
        fit(Frozen(buffer_dtype), frozen_obj, (X.float(), y.float()), _cfg(dtype=None, steps=1))
        assert seen == [dtype, dtype]


def test_numpy_and_list_data_are_converted():
    import numpy as np

    X, y = _data()
    seen = {}

    def obj(model, batch):
        seen.update(
            types=[t.dtype for t in batch], equal=[torch.equal(a, b) for a, b in zip(batch, ref)]
        )
        return mse(model, batch[:2])

    ref = (X.float(), y.float(), torch.arange(12))
    fit(
        _linear(),
        obj,
        (X.numpy(), y.float().numpy().tolist(), np.arange(12)),
        _cfg(dtype="float32", steps=1),
    )
    assert seen == {
        "types": [torch.float32, torch.float32, torch.int64],
        "equal": [True, True, True],
    }


def test_device_names():
    from sobolev.training import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("meta") == torch.device("meta")


def test_auto_device_picks_cuda_when_present(monkeypatch):
    from sobolev.training import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_a_ddp_wrapped_model_is_trained_unwrapped(tmp_path):
    import torch.distributed as dist

    X, y = _data()
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        net = _linear()
        ddp = nn.parallel.DistributedDataParallel(net)
        fit(ddp, mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=2), out_dir=tmp_path / "run")
    finally:
        dist.destroy_process_group()
    theta = _theta(_linear())
    for _ in range(2):
        theta = theta - 0.05 * _grad(theta, X, y)
    torch.testing.assert_close(_theta(net), theta, rtol=1e-12, atol=1e-14)
    # the checkpoint holds the bare model's state (no "module." prefix)
    assert set(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]) == {
        "weight",
        "bias",
    }


def test_as_objective_wraps_a_sobolev_loss():
    from sobolev import SobolevLoss, derivatives
    from sobolev.training import as_objective, call_objective

    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 2, generator=g)
    f = lambda z: (z[:, :1] ** 2 + z[:, 1:]).sin()
    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    u, du = derivatives(f, x, 1, create_graph=False)
    loss = SobolevLoss(1)
    # by hand: mean over samples of |net − f|² + Σ_i |∂_i net − ∂_i f|²
    pu, pdu = derivatives(net, x, 1, create_graph=False)
    by_hand = {"D0": ((pu - u) ** 2).sum(1).mean(), "D1": ((pdu - du) ** 2).sum((1, 2)).mean()}
    for obj, batch in [
        (as_objective(loss), (x, u, du)),
        (as_objective(loss), (x, f)),
        (as_objective(loss, check_finite=False), (x, u, du)),
    ]:
        total, terms = call_objective(obj, net, batch)
        torch.testing.assert_close(terms, by_hand)
        torch.testing.assert_close(total, by_hand["D0"] + by_hand["D1"])
    bad = torch.full_like(u, float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        as_objective(loss)(net, (x, bad, du))
    total, _ = as_objective(loss, check_finite=False)(
        net, (x, bad, du)
    )  # checked up front, as fit does
    assert total.isnan()
    value = SobolevLoss(0)  # batch (x, u): one target tensor is the stack [u], not a function
    total, terms = call_objective(as_objective(value, check_finite=False), net, (x, u))
    torch.testing.assert_close(total, by_hand["D0"])
    assert as_objective(value, check_finite=False)(net, (x, bad))[0].isnan()
    plain = lambda model, batch: model(batch[0]).sum()
    assert as_objective(plain) is plain
    assert call_objective(plain, net, (x,)) == (plain(net, (x,)), {})


def test_resume_restores_python_numpy_torch_and_data_streams(tmp_path):
    import os
    import random
    import signal
    import warnings

    import numpy as np

    from sobolev import TrainingInterrupted, seed_everything

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

    def interrupt_at_step_3(model, calls=[0]):
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


def test_a_parameter_without_gradient_in_a_step_is_not_updated():
    """Gradients are reset to None each step: a parameter the loss skips is left alone (no
    momentum carried over, no decay), as torch's optimisers do for a missing gradient."""
    X, y = _data()
    net = nn.ModuleDict({"a": _linear(), "b": _linear()})
    calls = [0]

    def obj(model, batch):
        calls[0] += 1
        out = model["a"](batch[0]) + (model["b"](batch[0]) if calls[0] == 1 else 0)
        return ((out - batch[1]) ** 2).mean()

    fit(net, obj, (X, y), _cfg(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.1, steps=2))
    theta = _theta(_linear())
    g = (
        torch.cat(
            [
                2 * (X.T @ (2 * (X @ theta[:3, None] + theta[3]) - y))[:, 0],
                2 * (2 * (X @ theta[:3, None] + theta[3]) - y).sum(0),
            ]
        )
        / 12
    )
    # b took the first step only: θ − lr (∇ + wd θ)
    torch.testing.assert_close(
        _theta(net["b"]), theta - 0.05 * (g + 0.1 * theta), rtol=1e-12, atol=1e-14
    )


def test_a_model_in_eval_mode_is_trained_in_train_mode_on_detached_data():
    X, y = _data()
    X.requires_grad_(True)
    seen = []

    def obj(model, batch):
        seen.append((model.training, batch[0].requires_grad))
        return mse(model, batch)

    net = _linear().eval()
    fit(net, obj, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=1))
    assert seen == [(True, False), (True, False)] and net.training


def test_an_unreadable_checkpoint_names_the_first_line_of_the_reason(tmp_path, monkeypatch):
    import re

    X, y = _data()
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    what = "it is empty, truncated or not a checkpoint; delete it (or the run directory) to start afresh, or use a new out_dir"
    for err, reason in [
        (RuntimeError("first line\nsecond line"), "RuntimeError: first line"),
        (OSError(), "OSError: "),
    ]:

        def load(*a, **k):
            raise err

        monkeypatch.setattr(torch, "load", load)
        with pytest.raises(
            ValueError,
            match=f"^checkpoint {re.escape(str(tmp_path / 'checkpoint.pt'))} cannot be read "
            f"\\({reason}\\): {re.escape(what)}$",
        ):
            fit(_linear(), mse, (X, y), _cfg(), out_dir=tmp_path)


# ---- two processes (gloo): the distributed branches of the loop ----


class _Recorder:
    """Mean squared error (with half of it as a term) that records, per call, its rows and one draw from torch's global RNG and
    one from its own ``generator`` (both reseeded by a distributed fit from (seed, rank, step))."""

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


def _two_rank_scenario(rank, tmp):
    import os
    import signal

    from sobolev import TrainingInterrupted

    X, y = _data()
    out = {}
    for bs in (5, None):
        obj, net = _Recorder(), _linear()
        hist = fit(
            net,
            obj,
            (X, y, torch.arange(12)),
            _cfg(optimizer="sgd", lr=0.05, steps=3, batch_size=bs, seed=2),
        )
        out[bs] = dict(calls=obj.calls, theta=_theta(net), records=hist.records)

    def stop_rank0_at_step_1(model, calls=[0]):
        calls[0] += 1
        if calls[0] == 2 and rank == 0:  # rank 1 gets no signal, yet stops with rank 0
            os.kill(os.getpid(), signal.SIGINT)
        return {}

    try:
        fit(
            _linear(),
            lambda model, b: mse(model, b[:2]),
            (X, y, torch.arange(12)),
            _cfg(optimizer="sgd", lr=0.05, steps=6),
            out_dir=os.path.join(tmp, "run"),
            evaluate=stop_rank0_at_step_1,
        )
    except TrainingInterrupted as e:
        out["stopped"] = str(e)
    return out


def test_two_processes_shard_reseed_and_average(tmp_path):
    from sobolev.distributed import step_seed
    from tests import test_distributed as TD

    ranks = TD._spawn(_two_rank_scenario, tmp_path)
    if (
        TD._mutmut_collecting()
    ):  # credit the functions the ranks ran to this test (see test_distributed)
        from mutmut.state import state

        state()._stats.update(TD._RANK_CALLS)
    X, y = _data()
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
                torch.rand((), generator=torch.Generator().manual_seed(step_seed(2, r, s))).item()
                for s in range(4)
            ]
            assert res["calls"] == [(b[r::2], d, d) for b, d in zip(batches, draws)]
            torch.testing.assert_close(res["theta"], theta, rtol=1e-12, atol=1e-14)
            assert [rec["loss"] for rec in res["records"]] == pytest.approx(losses, rel=1e-12)
            assert [2 * rec["half"] for rec in res["records"]] == pytest.approx(
                losses, rel=1e-12
            )  # terms averaged too
    assert ranks[0]["stopped"] == f"stopped at step 2 of 6; checkpoint in {tmp_path / 'run'}"
    assert ranks[1]["stopped"] == "stopped at step 2 of 6"  # rank 1 writes nothing
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == 2


def test_single_tensor_data():
    X, _ = _data()
    net = _linear()
    hist = fit(
        net,
        lambda model, batch: (model(batch[0]) ** 2).mean(),
        (X,),
        _cfg(optimizer="sgd", lr=0.05, steps=1),
    )
    theta = _theta(_linear())
    assert hist.records[0]["loss"] == pytest.approx(
        _loss_at(theta, X, torch.zeros(12, 1)), rel=1e-12
    )
    torch.testing.assert_close(
        _theta(net), theta - 0.05 * _grad(theta, X, torch.zeros(12, 1)), rtol=1e-12, atol=1e-14
    )


def test_a_signal_during_the_loss_stops_after_that_step():
    import os
    import signal

    from sobolev import TrainingInterrupted

    X, y = _data()
    calls = [0]

    def obj(model, batch):
        calls[0] += 1
        if calls[0] == 3:  # inside step 2, after the step read the stop flag
            os.kill(os.getpid(), signal.SIGINT)
        return mse(model, batch)

    with pytest.raises(TrainingInterrupted, match=r"^stopped at step 3 of 6$"):
        fit(_linear(), obj, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=6))
    assert calls[0] == 3


def test_every_rank_must_plan_like_rank_0(monkeypatch):
    """Rank 0's plan is broadcast; a rank whose own config or sample count differs refuses
    (simulated here: the broadcast returns rank 0's plan, as the collective does)."""
    import sobolev.training as T

    X, y = _data()
    msg = r"^rank 0 called fit with a config or data size other than rank 0's: every rank must pass the same config and data$"
    for change in [dict(n=12), dict(n=13), dict(config="lr")]:

        def broadcast(plan, ctx, change=change):
            config = {**plan.config, "lr": 0.5} if change.get("config") else plan.config
            return dataclasses.replace(plan, config=config, n=change.get("n", plan.n))

        monkeypatch.setattr(T.D, "broadcast_object", broadcast)
        run = lambda: fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.05, steps=1))
        if change == dict(n=12):  # rank 0 has the same 12 samples
            assert [r["step"] for r in run().records] == [0, 1]
        else:
            with pytest.raises(ValueError, match=msg):
                run()


def test_cosine_over_a_single_step_reaches_its_floor():
    X, y = _data()
    hist = fit(
        _linear(),
        mse,
        (X, y),
        _cfg(optimizer="sgd", lr=0.1, steps=1, schedule="cosine", lr_min_factor=0.25),
    )
    assert hist.series("lr") == (
        [0, 1],
        [pytest.approx(0.1, rel=1e-12), pytest.approx(0.025, rel=1e-12)],
    )
