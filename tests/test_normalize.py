"""Normalizer: round trips, derivative scaling against autodiff through an explicit affine map, the
wrapped surrogate's values and deltas in original units, and a quant's end-to-end example."""

import numpy as np
import pytest
import torch

from sobolev import MLP, derivatives
from sobolev.normalize import Normalizer


def _data(n=500, d=3, m=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 5 + 3 * torch.randn(n, d, generator=g, dtype=torch.float64) * torch.arange(1, d + 1)
    A = torch.randn(d, m, generator=g, dtype=torch.float64)
    f = lambda x: torch.sin(x @ A) * torch.tensor([1.0, 40.0][:m], dtype=x.dtype) + 7
    return x, f


def test_statistics_and_round_trip():
    x, f = _data()
    y = f(x)
    norm = Normalizer.fit(x, y)
    x_n, y_n = norm.transform(x, y)
    torch.testing.assert_close(x_n.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(x_n.std(0), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(y_n.std(0), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(norm.y_from(y_n), y)
    _, g = derivatives(f, x, 1, create_graph=False)
    torch.testing.assert_close(norm.dydx_from(norm.dydx_to(g)), g)


def test_derivative_targets_equal_autodiff_through_the_affine_maps():
    x, f = _data()
    norm = Normalizer.fit(x, f(x))
    _, g = derivatives(f, x, 1, create_graph=False)
    # the function seen in normalised units, built explicitly: x_n ↦ (f(μ_x + σ_x x_n) − μ_y)/σ_y
    f_n = lambda x_n: (f(norm.x_mean + norm.x_std * x_n) - norm.y_mean) / norm.y_std
    _, g_n = derivatives(f_n, norm.x_to(x), 1, create_graph=False)
    torch.testing.assert_close(norm.dydx_to(g), g_n)
    torch.testing.assert_close(norm.transform(x, f(x), g)[2], g_n)


def test_directional_targets_equal_autodiff_along_the_normalised_direction():
    x, f = _data(m=1)
    norm = Normalizer.fit(x, f(x))
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    _, g = derivatives(f, x, 1, create_graph=False)
    w, dv_n = norm.directional_to(v, (g[:, 0] * v).sum(1))
    _, g_n = derivatives(
        lambda x_n: (f(norm.x_mean + norm.x_std * x_n) - norm.y_mean) / norm.y_std,
        norm.x_to(x),
        1,
        create_graph=False,
    )
    torch.testing.assert_close(dv_n[:, 0, 0], (g_n[:, 0] * w).sum(1))


def test_wrapped_model_returns_values_and_deltas_in_original_units():
    x, f = _data()
    norm = Normalizer.fit(x, f(x))
    net = MLP(3, 2, 8, 2, "softplus").double()
    sur = norm.wrap(net)
    u, du = sur.predict(x.numpy())  # array-likes are accepted
    x_n = norm.x_to(x)
    u_n, du_n = derivatives(net, x_n, 1, create_graph=False)
    torch.testing.assert_close(u, norm.y_from(u_n))
    torch.testing.assert_close(du, norm.dydx_from(du_n))
    assert not u.requires_grad and du.shape == (500, 2, 3)


def test_constant_columns_keep_scale_one_and_bad_shapes_are_named():
    x = torch.ones(10, 2, dtype=torch.float64)
    x[:, 1] = torch.arange(10.0)
    norm = Normalizer.fit(x, torch.arange(10.0))
    assert norm.x_std[0] == 1 and norm.m == 1
    with pytest.raises(ValueError, match=r"dydx must have shape \(10, 1, 2\) or \(10, 2\)"):
        norm.transform(x, torch.arange(10.0), torch.ones(10, 3))
    with pytest.raises(ValueError, match=r"y must have shape \(10, m\)"):
        Normalizer.fit(x, torch.ones(9))
    with pytest.raises(ValueError, match="x contains NaN"):
        Normalizer.fit(x * float("nan"), torch.arange(10.0))
    with pytest.raises(ValueError, match="x must hold at least 2 samples"):
        Normalizer.fit(x[:1], torch.ones(1))


def test_quant_example_runs_and_learns_price_and_deltas():
    # README example: from a simulator's arrays (x, payoff, pathwise gradient) to a surrogate
    from sobolev.finance import BachelierBasket

    sim = BachelierBasket(5)
    s = sim.sample(4096, generator=torch.Generator().manual_seed(0))
    x, payoff, grad = s.x.numpy(), s.y[:, 0].numpy(), s.dydx[:, 0].numpy()

    # --- README snippet (x: (N, d), payoff: (N,), grad: (N, d) NumPy arrays) ---
    from sobolev import MLP, SobolevLoss, TrainConfig, fit
    from sobolev.normalize import Normalizer

    norm = Normalizer.fit(x, payoff)
    data = norm.transform(x, payoff, grad)  # standardised (x, y, dy/dx)
    net = MLP(x.shape[1], 1, width=20, depth=4, activation="softplus")
    fit(
        net,
        SobolevLoss(1, weighting="dimension"),
        data,
        TrainConfig(
            steps=800,
            lr=1e-2,
            schedule="cosine",
            lr_min_factor=0.01,
            batch_size=256,
            progress=False,
        ),
    )
    surrogate = norm.wrap(net)
    price, delta = surrogate.predict(x[:10])  # (10, 1) and (10, 1, d), original units
    # --- end of snippet ---

    test = sim.test_set(1000, torch.Generator().manual_seed(1))
    price, delta = surrogate.predict(test.x)
    assert price.shape == (1000, 1) and delta.shape == (1000, 1, 5)
    p_err = float((price.double() - test.price).norm() / test.price.norm())
    d_err = float((delta.double() - test.delta).norm() / test.delta.norm())
    assert p_err < 0.08 and d_err < 0.15, (p_err, d_err)  # measured 0.036, 0.077


def test_derivative_weights_are_one_over_the_rms_of_the_normalised_labels():
    """Differential ML's lambda_j = 1/sqrt(mean_i (dydx_n[i, j])²), with dydx_n = dydx·σ_x/σ_y,
    written out with NumPy on a small example."""
    x = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 2.0], [4.0, 0.0]])
    y = np.array([1.0, 2.0, 0.0, 5.0])
    dydx = np.array([[1.0, 0.1], [2.0, -0.2], [-1.0, 0.0], [0.5, 0.3]])
    norm = Normalizer.fit(x, y)
    sx, sy = x.std(0, ddof=1), y.std(ddof=1)
    want = 1 / np.sqrt(((dydx * sx / sy) ** 2).mean(0))
    np.testing.assert_allclose(norm.derivative_weights(dydx).numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match="zero for input 1"):
        norm.derivative_weights(np.array([[1.0, 0.0]] * 4))
