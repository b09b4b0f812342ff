"""TrainConfig options against hand-rolled references: SGD with momentum and weight decay, Adam
with weight decay, gradient clipping, the exponential/step/cosine schedules and lr_min_factor,
plain L-BFGS, and the learning rate of the L-BFGS phase."""

import math

import pytest
import torch
from torch import nn

from sobolev import TrainConfig, fit

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
    return TrainConfig(**{**dict(steps=5, progress=False, dtype="float64", log_every=1, checkpoint_every=0), **kw})


@pytest.mark.parametrize("on", ["all", "weights"])
def test_sgd_with_momentum_and_weight_decay_is_the_textbook_update(on):
    X, y = _data()
    net = _linear()
    lr, mu, wd = 0.05, 0.9, 0.01
    fit(net, mse, (X, y), _cfg(optimizer="sgd", lr=lr, momentum=mu, weight_decay=wd, weight_decay_on=on))
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
    fit(unclipped, mse, (X, y), _cfg(optimizer="sgd", lr=1e-4, grad_clip=float(10 * g.norm()), steps=1))
    torch.testing.assert_close(_theta(unclipped), theta0 - 1e-4 * g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw,lr_at", [
    (dict(schedule="exponential", gamma=0.8), lambda s: 0.1 * 0.8**s),
    (dict(schedule="step", gamma=0.5, step_size=3), lambda s: 0.1 * 0.5 ** (s // 3)),
    (dict(schedule="cosine", lr_min_factor=0.2), lambda s: 0.1 * (0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * s / 8)))),
    (dict(schedule="cosine"), lambda s: 0.1 * 0.5 * (1 + math.cos(math.pi * s / 8))),
], ids=["exponential", "step", "cosine-min", "cosine"])
def test_schedule_learning_rates(kw, lr_at):
    X, y = _data()
    hist = fit(_linear(), mse, (X, y), _cfg(optimizer="sgd", lr=0.1, steps=8, **kw))
    steps, lrs = hist.series("lr")
    assert steps == list(range(9))
    assert lrs == pytest.approx([lr_at(s) for s in steps], rel=1e-12, abs=1e-15)


def test_cosine_schedule_ends_at_lbfgs_at_and_lbfgs_uses_lbfgs_lr():
    X, y = _data()
    hist = fit(_linear(), mse, (X, y), _cfg(optimizer="adam", lr=0.1, steps=8, lbfgs_at=4, lbfgs_lr=0.7,
                                           schedule="cosine", lr_min_factor=0.1))
    lr = dict(zip(*hist.series("lr")))
    phase = {r["step"]: r["phase"] for r in hist.records}
    assert [phase[s] for s in range(9)] == ["adam"] * 4 + ["lbfgs"] * 5
    assert [lr[s] for s in range(4)] == pytest.approx(
        [0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 4))) for s in range(4)], rel=1e-12)
    assert [lr[s] for s in range(4, 9)] == pytest.approx([0.7] * 5)


@pytest.mark.parametrize("kw", [dict(optimizer="lbfgs", lr=1.0), dict(optimizer="sgd", lr=0.01, lbfgs_at=0)],
                         ids=["lbfgs", "lbfgs_at=0"])
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
    fit(net, obj, (X, y, torch.arange(12)), _cfg(dtype="float32", device="cpu", optimizer="sgd", lr=0.01, steps=1))
    assert seen == {"x": torch.float32, "labels": torch.int64}
    assert net.weight.dtype == torch.float32 and net.weight.device == torch.device("cpu")


def test_a_bare_tensor_as_data_gets_a_hint():
    X, _ = _data()
    with pytest.raises(ValueError, match=r"wrap a single tensor as \(x,\)"):
        fit(_linear(), mse, X, _cfg())


@pytest.mark.parametrize("kw,match", [
    (dict(momentum=-0.1), "momentum must be ≥ 0, got -0.1"),
    (dict(weight_decay=-1.0), "weight_decay must be ≥ 0, got -1.0"),
    (dict(betas=(0.9, 1.0)), "betas"),
    (dict(betas=(1.0, 0.9)), "betas"),
    (dict(betas=(0.9,)), "betas"),
])
def test_optimizer_settings_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)
