"""The training loop (:func:`sobolev.fit`) against hand-rolled references: optimiser updates,
schedules, L-BFGS, data checks and minibatches, records, seeds, dtypes and devices, progress.
Checkpoints and resume: test_training_resume.py; TrainConfig's checks: test_training_config.py.
"""

import itertools
import json
import math
import random
import threading
import types
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sobolev import (
    MLP,
    History,
    SobolevLoss,
    TrainConfig,
    derivatives,
    fit,
    heldout_evaluator,
    seed_everything,
)
from sobolev import distributed as D

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


def test_fit_reduces_loss_and_logs(tmp_path):
    x, stack = _sin_problem()
    hist = fit(
        _sin_model(),
        SobolevLoss(1),
        (x, *stack),
        _sin_cfg(steps=200, lr=1e-2, batch_size=None),
        out_dir=tmp_path,
        evaluate=heldout_evaluator(torch.sin, x, 1),
    )
    steps, losses = hist.series("loss")
    assert steps[0] == 0 and steps[-1] == 200 and steps[1] == 10
    assert losses[-1] < 0.05 * losses[0]
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == hist.records
    assert {"D0", "D1", "d0_rel", "d1_max", "time", "lr"} <= set(lines[-1])
    assert all(b["time"] >= a["time"] for a, b in itertools.pairwise(lines))


def test_adam_then_lbfgs_and_schedule():
    x, stack = _sin_problem()
    hist = fit(
        _sin_model(),
        SobolevLoss(1),
        (x, *stack),
        _sin_cfg(steps=40, lbfgs_at=20, schedule="cosine", batch_size=None, lr=1e-2),
    )
    phases = {r["step"]: r["phase"] for r in hist.records}
    assert phases[10] == "adam" and phases[30] == "lbfgs"
    lrs = [r["lr"] for r in hist.records if r["phase"] == "adam"]
    assert lrs[0] == pytest.approx(1e-2) and lrs[-1] < lrs[0]
    assert hist.records[-1]["loss"] < hist.records[2]["loss"]


def test_a_generic_objective_trains():
    x, stack = _sin_problem()
    hist = fit(_sin_model(), mse, (x, stack[0]), _sin_cfg(steps=30, batch_size=None, lr=1e-2))
    assert hist.records[-1]["loss"] < hist.records[0]["loss"]


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
        (  # the notebooks' one-cycle rates (absolute, as they write them) at lr = 0.1
            dict(schedule="one-cycle"),
            lambda s: np.interp(s / 8, [0, 0.2, 0.6, 0.9, 1], [1e-8, 0.1, 0.01, 1e-6, 1e-8]),
        ),
        (
            dict(schedule="piecewise-linear", lr_knots=((0, 1.0), (0.5, 0.5), (1, 0.0))),
            lambda s: 0.1 * (1 - s / 8) if s <= 4 else 0.1 * (0.5 - (s - 4) / 8),
        ),
        (dict(schedule=lambda s: 1 / (1 + s)), lambda s: 0.1 / (1 + s)),
    ],
    ids=["exponential", "step", "cosine-min", "cosine", "one-cycle", "piecewise", "callable"],
)
def test_schedule_learning_rates(kw, lr_at):
    X, y = _data()
    hist = fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.1, steps=8, **kw))
    steps, lrs = hist.series("lr")
    assert steps == list(range(9))
    assert lrs == pytest.approx([lr_at(s) for s in steps], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    "knots",
    [((0.1, 1.0), (1.0, 0.0)), ((0.0, 1.0), (0.5, 1.0), (0.4, 0.0), (1.0, 0.0)), ((0, -1), (1, 1))],
    ids=["not-from-0", "not-increasing", "negative"],
)
def test_bad_knots_are_refused(knots):
    with pytest.raises(ValueError, match="lr_knots must be"):
        TrainConfig(schedule="piecewise-linear", lr_knots=knots)


def test_a_schedule_that_is_neither_a_name_nor_callable_is_refused():
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="linear-warmup")


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


def test_adam_betas_eps_and_weight_decay_on_weights_only(tmp_path):
    x, stack = _small_problem()
    fit(
        _small_model(),
        SobolevLoss(1),
        (x, *stack),
        _short_cfg(betas=[0.5, 0.9], eps=1e-6, weight_decay=0.1, weight_decay_on="weights"),
        out_dir=tmp_path,
    )
    groups = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [(g["betas"], g["eps"], g["weight_decay"]) for g in groups] == [
        ((0.5, 0.9), 1e-6, 0.1),
        ((0.5, 0.9), 1e-6, 0.0),
    ]
    model = _small_model()
    before = [p.detach().clone() for p in model.parameters()]
    zero = lambda m, batch: sum(p.sum() for p in m.parameters()) * 0.0
    fit(
        model,
        zero,
        (x,),
        _short_cfg(optimizer="sgd", lr=0.1, weight_decay=0.5, weight_decay_on="weights", steps=4),
    )
    for b, p in zip(before, model.parameters()):
        assert torch.allclose(p, b * (1 - 0.05) ** 4 if p.ndim >= 2 else b)


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


def test_default_config_keeps_the_model_dtype_and_casts_data_to_it():
    x, stack = _small_problem()
    seen = []

    def mse(model, batch):
        seen.append(batch[0].dtype)
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    model = _small_model(torch.float64)
    fit(model, mse, (x.float(), stack[0].float()), TrainConfig(steps=2, progress=False))
    assert all(p.dtype == torch.float64 for p in model.parameters()) and set(seen) == {
        torch.float64
    }
    model32 = _small_model(torch.float32)
    fit(model32, mse, (x, stack[0]), TrainConfig(steps=2, progress=False))
    assert all(p.dtype == torch.float32 for p in model32.parameters()) and seen[-1] == torch.float32
    fit(
        model, mse, (x, stack[0]), TrainConfig(steps=2, progress=False, dtype="float32")
    )  # explicit: cast
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_bare_tensor_as_data_gets_a_hint():
    X, _ = _data()
    with pytest.raises(ValueError, match=r"wrap a single tensor as \(x,\)"):
        fit(_linear(), mse, X, _cfg())


_ARRAY_HINT = r"data must be a tuple of tensors .*common first dimension.*got "

_DATA_ERRORS = [
    (lambda x: x, _ARRAY_HINT + r"Tensor \(wrap a single tensor as \(x,\)\)"),
    (lambda x: x.numpy(), _ARRAY_HINT + r"ndarray \(wrap a single tensor as \(x,\)\)"),
    (lambda x: "ab", _ARRAY_HINT + "str"),
    (lambda x: b"ab", _ARRAY_HINT + "bytes"),
    (lambda x: 5, _ARRAY_HINT + "int"),
    (lambda x: (), _ARRAY_HINT + "tuple"),
    (lambda x: {"x": x}, _ARRAY_HINT + "dict"),
    (lambda x: (x, [x, x]), r"data\[1\] is a list of tensors.*flat tuple.*\(x, \*stack\)"),
    (lambda x: (x, (x,)), r"data\[1\] is a tuple of tensors.*flat tuple.*\(x, \*stack\)"),
    (lambda x: (x, "ab"), r"data\[1\] must be a tensor or a numeric array-like, got str"),
    (lambda x: (x, object()), r"data\[1\] must be a tensor or a numeric array-like, got object"),
    (lambda x: (x, [[1, 2], [3]]), r"data\[1\] must be a tensor or a numeric array-like, got list"),
    (lambda x: (torch.tensor(1.0), x), r"data\[0\] must have a first \(sample\) dimension.*0-d"),
    (lambda x: (x, x[:3]), r"data tensors must share their first dimension.*\(4, 3\), \(3, 3\)"),
    (lambda x: (x[:0], x[:0]), "data must hold at least one sample"),
    (lambda x: (x, x, torch.full_like(x, float("nan"))), r"data\[2\] contains NaN or Inf"),
    (lambda x: (x, torch.full_like(x, float("-inf"))), r"data\[1\] contains NaN or Inf"),
]


@pytest.mark.parametrize("make,match", _DATA_ERRORS, ids=range(len(_DATA_ERRORS)))
def test_bad_data_is_one_line_naming_the_tensor_and_the_expectation(make, match):
    X, _ = _data()
    with pytest.raises(ValueError, match=match) as err:
        fit(_linear(), mse, make(X[:4]), _cfg())
    assert "\n" not in str(err.value)


def test_numpy_and_list_data_are_converted():

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


def test_fit_accepts_numpy_arrays_and_explains_nested_tuples():
    x, stack = _small_problem()
    arrays = tuple(t.numpy() for t in (x, *stack))
    hist = fit(_small_model(), SobolevLoss(1), arrays, _short_cfg(steps=3))
    assert math.isfinite(hist.records[-1]["loss"])
    mse = lambda model, batch: ((model(batch[0]) - batch[1]) ** 2).mean()
    fit(
        _small_model(), mse, (x.tolist(), stack[0].tolist()), _short_cfg(steps=2)
    )  # nested lists of numbers
    with pytest.raises(ValueError, match=r"flat tuple of tensors.*\(x, \*stack\)"):
        fit(_small_model(), SobolevLoss(1), (x, stack), _short_cfg())
    with pytest.raises(ValueError, match=r"data\[1\] must be a tensor or a numeric array-like"):
        fit(_small_model(), mse, (x, ["a", "b"]), _short_cfg())
    with pytest.raises(ValueError, match="data must be a tuple of tensors"):
        fit(_small_model(), mse, x, _short_cfg())


def test_fit_checks_data_once_and_skips_averaging_in_one_process(monkeypatch):
    x, stack = _small_problem()
    calls = []
    real = torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: calls.append(1) or real(t))

    def no_average(*args, **kwargs):
        raise AssertionError("distributed averaging called in a single process")

    monkeypatch.setattr(D, "average", no_average)
    counts = []
    for steps in (2, 12):
        calls.clear()
        fit(
            _small_model(), SobolevLoss(1), (x, *stack), _short_cfg(steps=steps, checkpoint_every=0)
        )
        counts.append(len(calls))
    assert counts[0] == counts[1] == 3  # one check per data tensor, none per step


def test_records_hold_step_time_loss_terms_lr_phase_and_evaluation(tmp_path, monkeypatch):

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
    # evaluation in eval mode before the logged steps 0, 2, 4 and after the final loss;
    # the objective in train mode
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

    seed_everything(11)
    got = (random.random(), np.random.rand(), torch.rand(()).item())
    assert got == (
        random.Random(11).random(),
        np.random.RandomState(11).rand(),
        torch.rand((), generator=torch.Generator().manual_seed(11)).item(),
    )


def test_a_non_finite_loss_stops_with_its_step():
    X, y = _data()
    calls = [0]

    def obj(model, batch):
        calls[0] += 1
        return mse(model, batch) * (float("inf") if calls[0] == 3 else 1.0)

    with pytest.raises(FloatingPointError, match="loss became inf at step 2.*learning rate"):
        fit(_linear(), obj, (X, y), _cfg(optimizer="sgd", lr=0.01))
    with pytest.raises(FloatingPointError, match="loss became nan at step 0.*learning rate"):
        fit(_linear(), lambda m, b: mse(m, b) * float("nan"), (X, y), _cfg())


def test_fit_runs_outside_the_main_thread():

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
    assert set(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]) == {
        "weight",
        "bias",
    }


def test_as_objective_wraps_a_sobolev_loss():
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


@pytest.mark.parametrize(
    "device, count, match",
    [
        ("cuda", 0, r"device='cuda' but CUDA is not available on this machine.*'cpu'"),
        ("cuda:0", 0, r"device='cuda:0' but CUDA is not available"),
        ("cuda:2", 2, r"device='cuda:2' but this machine has 2 CUDA device\(s\)"),
        ("gpu", 0, r"device must be 'auto', 'cpu', 'cuda', 'cuda:N'.*got 'gpu'"),
        (3, 0, r"device must be .*got 3"),
    ],
)
def test_a_device_this_machine_lacks_is_a_one_line_error(monkeypatch, device, count, match):
    """It used to pass TrainConfig and end in an AssertionError inside torch."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(ValueError, match=match) as e:
        TrainConfig(device=device)
    assert "\n" not in str(e.value)
    assert TrainConfig(device="cpu").device == "cpu"


def _h2_problem(scale, n=32):
    x = torch.linspace(-1, 1, n, dtype=torch.float64).unsqueeze(1) * scale
    return (x, *derivatives(lambda t: torch.sin(t / scale) * scale, x, 2, create_graph=False))


def test_inputs_too_large_for_the_dtype_are_warned_about():
    """An H2 loss at |x| = 1e6 in float32 stalls (the units saturate, float32 resolves x only to
    0.06): fit says so, naming x and its scale; ordinary scales, or float64, are quiet."""
    cfg = lambda dtype: _cfg(steps=2, dtype=dtype, optimizer="sgd", lr=1e-6)
    seed_everything(0)
    with pytest.warns(UserWarning, match=r"inputs x \(data\[0\]\) reach \|x\| = 1e\+06.*float32"):
        fit(MLP(1, 1, width=8, depth=1), SobolevLoss(2), _h2_problem(1e6), cfg("float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(MLP(1, 1, width=8, depth=1), SobolevLoss(2), _h2_problem(1e6), cfg("float64"))
        fit(MLP(1, 1, width=8, depth=1), SobolevLoss(2), _h2_problem(100.0), cfg("float32"))


def test_an_overflowing_loss_names_the_input_scale():
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(
            FloatingPointError,
            match=r"loss became inf at step 0: lower the learning rate, or rescale the data: "
            r"the inputs x reach \|x\| = 2.*e\+20.*float32 overflows above 3.4e\+38",
        ) as e:
            fit(_linear(), mse, (X * 1e20, y), _cfg(dtype="float32"))
    assert "\n" not in str(e.value)
