"""Property tests (hypothesis): numerical derivatives are exact (to rounding) on the functions
their schemes are built for: finite differences on polynomials of degree < order + accuracy
(uniform and non-uniform grids, every boundary), Chebyshev on polynomials of degree < n, Fourier
on trigonometric polynomials below the Nyquist frequency."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sobolev.numdiff import (
    chebyshev_derivative,
    chebyshev_grid,
    fd_derivative,
    fourier_derivative,
    uniform_grid,
)

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=40)


def _poly(coef: np.ndarray, x: torch.Tensor, order: int) -> torch.Tensor:
    """The order-th derivative of Σ c_i x^i, by numpy.polynomial (independent of the code under test)."""
    return torch.from_numpy(
        np.polynomial.polynomial.polyval(x.numpy(), np.polynomial.polynomial.polyder(coef, order))
    )


@SETTINGS
@given(
    order=st.integers(1, 3),
    accuracy=st.sampled_from([2, 4, 6]),
    n=st.integers(12, 24),
    boundary=st.sampled_from(["one-sided", "interior"]),
    uniform=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_fd_exact_on_polynomials_below_the_accuracy(order, accuracy, n, boundary, uniform, seed):
    rng = np.random.default_rng(seed)
    coef = rng.uniform(-1, 1, order + accuracy)  # degree order + accuracy − 1
    gaps = np.full(n - 1, 1.0) if uniform else rng.uniform(0.6, 1.4, n - 1)
    x = torch.from_numpy(np.concatenate([[0.0], np.cumsum(gaps)]) / gaps.sum() * 2 - 1)
    u = _poly(coef, x, 0)
    got = fd_derivative(
        u[None], float(x[1] - x[0]) if uniform else x, order, -1, accuracy, boundary
    )[0]
    want = _poly(coef, x, order)
    if boundary == "interior":
        s = (len(x) - got.shape[0]) // 2
        want = want[s : len(x) - s]
    h = float(2 / (n - 1))
    torch.testing.assert_close(
        got, want, rtol=0, atol=1e-9 * h**-order * (1 + float(want.abs().max()))
    )


@SETTINGS
@given(order=st.integers(1, 2), accuracy=st.sampled_from([2, 4]))
def test_fd_not_exact_one_degree_higher(order, accuracy):
    """The bound above is tight: x^(order + accuracy) is not differentiated exactly."""
    x = uniform_grid(16, -1.0, 1.0, dtype=torch.float64)
    coef = np.zeros(order + accuracy + 1)
    coef[-1] = 1.0
    got = fd_derivative(_poly(coef, x, 0), float(x[1] - x[0]), order, -1, accuracy, "interior")
    s = (len(x) - got.shape[0]) // 2  # the points dropped at each end
    assert float((got - _poly(coef, x, order)[s : len(x) - s]).abs().max()) > 1e-6


@SETTINGS
@given(
    n=st.integers(3, 40),
    order=st.integers(1, 3),
    a=st.floats(-3, 0),
    width=st.floats(0.5, 4),
    method=st.sampled_from(["matrix", "fft"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_chebyshev_exact_on_polynomials_of_degree_below_n(n, order, a, width, method, seed):
    coef = np.random.default_rng(seed).uniform(
        -1, 1, min(n, 8)
    )  # degree < n (kept ≤ 7: well scaled)
    x = chebyshev_grid(n, a, a + width, dtype=torch.float64)
    mid, half = a + width / 2, width / 2
    t = (x - mid) / half  # the polynomial in the reference variable t ∈ [−1, 1]
    got = chebyshev_derivative(_poly(coef, t, 0)[None], order, -1, (a, a + width), method)[0]
    want = _poly(coef, t, order) / half**order
    torch.testing.assert_close(
        got, want, rtol=0, atol=1e-8 * n ** (2 * order) * (1 + float(want.abs().max()))
    )


@SETTINGS
@given(
    n=st.integers(4, 33),
    order=st.integers(1, 3),
    period=st.floats(0.5, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_fourier_exact_on_trigonometric_polynomials(n, order, period, seed):
    rng = np.random.default_rng(seed)
    K = (n - 1) // 2  # strictly below Nyquist
    a, b = rng.uniform(-1, 1, K + 1), rng.uniform(-1, 1, K + 1)
    x = uniform_grid(n, 0.0, period, periodic=True, dtype=torch.float64)
    w = [2 * math.pi * k / period for k in range(K + 1)]
    u = sum(a[k] * torch.cos(w[k] * x) + b[k] * torch.sin(w[k] * x) for k in range(K + 1))
    # d^r/dx^r cos(wx) = w^r cos(wx + rπ/2), sin likewise
    want = sum(
        w[k] ** order
        * (
            a[k] * torch.cos(w[k] * x + order * math.pi / 2)
            + b[k] * torch.sin(w[k] * x + order * math.pi / 2)
        )
        for k in range(K + 1)
    )
    got = fourier_derivative(u[None], order, -1, period)[0]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10 * (1 + max(w) ** order) * (K + 1))
