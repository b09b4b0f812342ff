"""The pricing generators against their closed forms: labels unbiased (sample mean within a few
standard errors of the closed-form price and deltas), pathwise derivatives equal to bumped finite
differences on the same paths, closed-form deltas equal to autodiff of the closed-form price."""

import math

import pytest
import torch

from sobolev import derivatives
from sobolev.finance import BachelierBasket, BlackScholesCall, pricing_model

MODELS = [BlackScholesCall(), BachelierBasket(1), BachelierBasket(7, seed=3), BachelierBasket(20)]
IDS = ["bs", "bachelier1", "basket7", "basket20"]


@pytest.mark.parametrize("antithetic", [False, True], ids=["plain", "antithetic"])
@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_labels_are_unbiased_for_price_and_delta(model, antithetic):
    g = torch.Generator().manual_seed(11)
    n = 100_000
    for c in (0.9, 1.1, 1.3):  # out of, at and in the money (the basket of c·1 is c)
        x = torch.full((model.d,), c, dtype=torch.float64)
        y, dy = model.labels(x.expand(n, -1), model.draw_noise(n, g), antithetic=antithetic)
        se_y = y.std() / math.sqrt(n)
        assert abs(y.mean() - model.price(x[None])[0, 0]) < 4 * se_y
        se_d = dy[:, 0].std(0) / math.sqrt(n)
        err = (dy[:, 0].mean(0) - model.delta(x[None])[0, 0]).abs()
        assert (err < 4 * se_d + 1e-12).all(), (err / se_d).max()


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_pathwise_derivative_matches_bumped_payoff_on_the_same_paths(model):
    g = torch.Generator().manual_seed(5)
    n, h = 2000, 1e-6
    x, z = model.draw_spots(n, g), model.draw_noise(n, g)
    y, dy = model.labels(x, z, antithetic=False)  # one path's payoff and its derivative
    assert y.shape == (n, 1) and dy.shape == (n, 1, model.d) and dy.dtype == torch.float64
    # away from the kink (no sign change of the payoff's argument within the bump) central
    # differences of the piecewise-smooth payoff are exact up to O(h²)
    eye = torch.eye(model.d, dtype=x.dtype)
    far = torch.stack(
        [(model.payoff(x + 1e-4 * e, z) > 0) == (model.payoff(x - 1e-4 * e, z) > 0) for e in eye], 1
    ).all(1)[:, 0]
    itm = y[:, 0] > 0
    assert (far & itm).sum() > n // 10 and (far & ~itm).sum() > n // 10
    fd = torch.stack(
        [(model.payoff(x + h * e, z) - model.payoff(x - h * e, z))[:, 0] / (2 * h) for e in eye], 1
    )
    torch.testing.assert_close(dy[far, 0], fd[far], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_directional_labels_contract_the_pathwise_gradient(model):
    g = torch.Generator().manual_seed(2)
    s = model.sample(500, generator=g, directional=True)
    g2 = torch.Generator().manual_seed(2)
    full = model.sample(500, generator=g2)
    torch.testing.assert_close(s.x, full.x)
    assert s.dydx.shape == (500, 1, 1) and s.v.shape == (500, model.d)
    torch.testing.assert_close(s.dydx[:, 0, 0], (full.dydx[:, 0] * s.v).sum(1))


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_closed_form_deltas_are_the_gradient_of_the_closed_form_price(model):
    t = model.test_set(300, torch.Generator().manual_seed(0))
    assert t.price.shape == (300, 1) and t.delta.shape == (300, 1, model.d)
    _, auto = derivatives(model.price, t.x, 1, create_graph=False)
    torch.testing.assert_close(t.delta, auto, atol=1e-12, rtol=1e-10)
    assert (t.price >= 0).all()


def test_black_scholes_price_matches_a_textbook_value():
    # S = K = 1, σ√τ = 0.2: C = Φ(0.1) − Φ(−0.1) = 0.0796557
    m = BlackScholesCall(strike=1.0, vol=0.2, t1=1.0, t2=2.0)
    assert float(m.price(torch.ones(1, 1, dtype=torch.float64))) == pytest.approx(
        0.0796557, abs=1e-6
    )


def test_basket_volatility_and_correlation_are_as_specified():
    m = BachelierBasket(5, basket_vol=0.3)
    a = m.weights
    assert float(a.sum()) == pytest.approx(1.0) and (a > 0).all()
    assert float(torch.sqrt(a @ m.cov @ a)) == pytest.approx(0.3)
    torch.testing.assert_close(m.correl.diagonal(), torch.ones(5, dtype=torch.float64))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="d must be a positive integer"):
        BachelierBasket(0)
    with pytest.raises(ValueError, match="vol must be a positive"):
        BlackScholesCall(vol=-0.1)
    with pytest.raises(ValueError, match="t2 must be after"):
        BlackScholesCall(t2=0.5)
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(n, 7\)"):
        pricing_model(7).price(torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        pricing_model(1).sample(0, generator=torch.Generator())


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_antithetic_labels_are_the_mean_over_the_pair_and_much_less_noisy(model):
    """On fixed paths the antithetic labels are the mean of the labels on z and −z; at the money
    (c = 1.1, the strike) their variance is a fraction of that of single-path labels (measured on
    these paths: 0.27–0.32 for the price, at most 0.085 for the delta; the bounds leave a
    margin)."""
    g = torch.Generator().manual_seed(4)
    n = 50_000
    x = torch.full((n, model.d), 1.1, dtype=torch.float64)
    z = model.draw_noise(n, g)
    y, dy = model.labels(x, z, antithetic=True)
    y1, dy1 = model.labels(x, z, antithetic=False)
    y2, dy2 = model.labels(x, -z, antithetic=False)
    torch.testing.assert_close(y, (y1 + y2) / 2)
    torch.testing.assert_close(dy, (dy1 + dy2) / 2)
    assert y.var() < 0.5 * y1.var()
    assert dy[:, 0, 0].var() < 0.25 * dy1[:, 0, 0].var()
    s = model.sample(10, generator=torch.Generator().manual_seed(1))
    plain = type(model).__new__(type(model))
    plain.__dict__.update(model.__dict__, antithetic=False)
    s1 = plain.sample(10, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(s.x, s1.x)  # the same spots: only the labels change
    assert not torch.equal(s.y, s1.y)


def test_pricing_model_kinds():
    assert isinstance(pricing_model(1), BlackScholesCall)
    b1 = pricing_model(1, kind="bachelier")
    assert isinstance(b1, BachelierBasket) and b1.d == 1 and b1.weights.tolist() == [1.0]
    assert isinstance(pricing_model(7), BachelierBasket)
    assert pricing_model(7, antithetic=False).antithetic is False
    with pytest.raises(ValueError, match="kind must be one of"):
        pricing_model(1, kind="heston")
    with pytest.raises(ValueError, match="d must be 1"):
        pricing_model(3, kind="black-scholes")
    with pytest.raises(ValueError, match="antithetic must be True or False"):
        BlackScholesCall(antithetic="yes")
