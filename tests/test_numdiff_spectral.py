"""Tests of sobolev.numdiff.chebyshev and .fourier: spectral derivatives against NumPy, findiff and
analytic values, the matrix and FFT paths, and properties (hypothesis): exact on polynomials and
trigonometric polynomials."""

from __future__ import annotations

import itertools
import math

import findiff
import numpy as np
import numpy.polynomial.chebyshev as npc
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sobolev.numdiff import (
    FFT_MIN_POINTS,
    chebyshev_derivative,
    chebyshev_grid,
    chebyshev_matrix,
    fourier_derivative,
    grid_derivatives,
    uniform_grid,
)


def exp_sin(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(x))


def exp_sin_derivative(x: torch.Tensor, order: int) -> torch.Tensor:
    """Derivatives of exp(sin x) up to order 3, closed form."""
    u, s, c = torch.exp(torch.sin(x)), torch.sin(x), torch.cos(x)
    return [u, c * u, (c**2 - s) * u, (c**3 - 3 * s * c - c) * u][order]


def numpy_chebyshev(x: np.ndarray, y: np.ndarray, order: int, a: float, b: float) -> np.ndarray:
    """Interpolate columns of y at x (n points, degree n-1), differentiate, evaluate at x."""
    xi = (2 * x - (a + b)) / (b - a)
    coeffs = npc.chebfit(xi, y, x.shape[0] - 1)
    values = npc.chebval(xi, npc.chebder(coeffs, order)) * (2 / (b - a)) ** order
    return values.T if y.ndim == 2 else values


def test_chebyshev_grid_is_ascending_cgl() -> None:
    x = chebyshev_grid(9, 2.0, 5.0, dtype=torch.float64)
    expected = 3.5 - 1.5 * np.cos(np.arange(9) * np.pi / 8)
    np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-15)
    assert x[0] == 2.0 and x[-1] == 5.0 and bool((x[1:] > x[:-1]).all())


def test_chebyshev_matrix_matches_trefethen_cheb() -> None:
    """Order 1 equals Trefethen's cheb(N) formula; rows annihilate constants."""
    n = 9
    big_n = n - 1
    x = np.cos(np.pi * np.arange(n) / big_n)
    c = np.hstack([2, np.ones(big_n - 1), 2]) * (-1) ** np.arange(n)
    dx = x[:, None] - x[None, :]
    d = np.outer(c, 1 / c) / (dx + np.eye(n))
    d -= np.diag(d.sum(axis=1))
    np.testing.assert_allclose(chebyshev_matrix(n, 1), d, atol=1e-13)
    for order in (1, 2, 3):
        assert np.abs(chebyshev_matrix(n, order).sum(axis=1)).max() < 1e-9


@pytest.mark.parametrize("method", ["matrix", "fft"])
def test_chebyshev_converges_exponentially(method: str) -> None:
    a, b = -1.0, 2.0
    errors = []
    for n in (8, 16, 24, 32, 40):
        x = chebyshev_grid(n, a, b, dtype=torch.float64)
        du = chebyshev_derivative(exp_sin(x), 1, domain=(a, b), method=method)
        errors.append(float((du - exp_sin_derivative(x, 1)).abs().max()))
    assert errors[-1] < 1e-10
    assert all(e2 < 0.05 * e1 for e1, e2 in itertools.pairwise(errors[:4])), errors


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("method", ["matrix", "fft"])
def test_chebyshev_matches_analytic_and_numpy_1d(method: str, order: int) -> None:
    a, b, n = -0.5, 2.5, 36
    x = chebyshev_grid(n, a, b, dtype=torch.float64)
    u = exp_sin(x)
    ours = chebyshev_derivative(u, order, domain=(a, b), method=method)
    torch.testing.assert_close(
        ours, exp_sin_derivative(x, order), rtol=0, atol=10.0 ** (-11 + 2 * order)
    )
    theirs = numpy_chebyshev(x.numpy(), u.numpy(), order, a, b)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=10.0 ** (-11 + 2 * order))


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("axis", [0, 1])
def test_chebyshev_2d_matches_numpy(axis: int, order: int) -> None:
    domains = [(0.0, 1.0), (-2.0, 1.0)]
    x = chebyshev_grid(20, *domains[0], dtype=torch.float64)
    y = chebyshev_grid(24, *domains[1], dtype=torch.float64)
    xx, yy = torch.meshgrid(x, y, indexing="ij")
    u = torch.sin(2 * xx + yy) * torch.exp(0.3 * yy)
    ours = chebyshev_derivative(u, order, axis=axis, domain=domains[axis])
    coords = (x, y)[axis].numpy()
    lines = u.numpy() if axis == 0 else u.numpy().T
    theirs = numpy_chebyshev(coords, lines, order, *domains[axis])
    theirs = theirs if axis == 0 else theirs.T
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=10.0 ** (-11 + 2 * order))
    if axis == 0:
        exact = (2.0**order) * torch.sin(2 * xx + yy + order * math.pi / 2) * torch.exp(0.3 * yy)
        torch.testing.assert_close(ours, exact, rtol=0, atol=10.0 ** (-10 + 2 * order))


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("n", [17, 64, 301])
def test_chebyshev_matrix_and_fft_paths_agree(n: int, order: int) -> None:
    x = chebyshev_grid(n, dtype=torch.float64)
    u = torch.stack([torch.cos(3 * x), 1 / (1 + 4 * x**2)])
    matrix = chebyshev_derivative(u, order, method="matrix")
    fft = chebyshev_derivative(u, order, method="fft")
    scale = float(matrix.abs().max())
    # Both lose ~n^(2k) eps to rounding (the conditioning of k-th spectral differentiation).
    assert float((matrix - fft).abs().max()) < 1e-15 * n ** (2 * order) * scale


def test_chebyshev_exact_on_polynomials() -> None:
    """Degree-3 polynomial on 4 points: exact derivatives, zero beyond the degree."""
    x = chebyshev_grid(4, 0.0, 2.0, dtype=torch.float64)
    u = x**3 - 2 * x
    for method in ("matrix", "fft"):
        d = [chebyshev_derivative(u, k, domain=(0.0, 2.0), method=method) for k in range(5)]
        torch.testing.assert_close(d[1], 3 * x**2 - 2, rtol=0, atol=1e-12)
        torch.testing.assert_close(d[2], 6 * x, rtol=0, atol=1e-12)
        torch.testing.assert_close(d[3], torch.full_like(x, 6.0), rtol=0, atol=1e-11)
        torch.testing.assert_close(d[4], torch.zeros_like(x), rtol=0, atol=1e-10)


def test_chebyshev_float32() -> None:
    x = chebyshev_grid(24, dtype=torch.float32)
    du = chebyshev_derivative(exp_sin(x), 1)
    assert du.dtype == torch.float32
    assert float((du.double() - exp_sin_derivative(x.double(), 1)).abs().max()) < 1e-4


@pytest.mark.parametrize("n", [16, 17])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_fourier_exact_on_band_limited(order: int, n: int) -> None:
    period = 3.0
    x = uniform_grid(n, -1.0, -1.0 + period, periodic=True, dtype=torch.float64)
    w = 2 * math.pi / period
    u = torch.sin(3 * w * x) + 0.5 * torch.cos(7 * w * x + 0.2)
    exact = (3 * w) ** order * torch.sin(3 * w * x + order * math.pi / 2) + 0.5 * (
        7 * w
    ) ** order * torch.cos(7 * w * x + 0.2 + order * math.pi / 2)
    ours = fourier_derivative(u, order, period=period)
    torch.testing.assert_close(ours, exact, rtol=0, atol=1e-12 * (7 * w) ** order)


def test_fourier_nyquist_mode() -> None:
    """cos(n/2 x) on n points: odd derivatives zeroed (not real-representable), even ones exact."""
    n = 16
    x = uniform_grid(n, 0.0, 2 * math.pi, periodic=True, dtype=torch.float64)
    u = torch.cos(8 * x)
    assert float(fourier_derivative(u, 1).abs().max()) < 1e-12
    assert float(fourier_derivative(u, 3).abs().max()) < 1e-9
    torch.testing.assert_close(fourier_derivative(u, 2), -64 * u, rtol=0, atol=1e-11)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_fourier_matches_findiff_periodic_and_analytic(order: int) -> None:
    n = 64
    x = uniform_grid(n, 0.0, 2 * math.pi, periodic=True, dtype=torch.float64)
    u = exp_sin(x)
    ours = fourier_derivative(u, order)
    torch.testing.assert_close(ours, exp_sin_derivative(x, order), rtol=0, atol=1e-13 * 10**order)
    theirs = (findiff.Diff(0, 2 * math.pi / n, acc=10, periodic=True) ** order)(u.numpy())
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-5)


def test_fourier_2d_axis() -> None:
    x = uniform_grid(12, 0.0, 2 * math.pi, periodic=True, dtype=torch.float64)
    y = uniform_grid(10, 0.0, 1.0, periodic=True, dtype=torch.float64)
    xx, yy = torch.meshgrid(x, y, indexing="ij")
    u = torch.sin(xx) * torch.cos(2 * math.pi * yy)
    torch.testing.assert_close(
        fourier_derivative(u, 1, axis=0), torch.cos(xx) * torch.cos(2 * math.pi * yy)
    )
    torch.testing.assert_close(
        fourier_derivative(u, 2, axis=1, period=1.0), -((2 * math.pi) ** 2) * u, rtol=0, atol=1e-11
    )


# -------------------------- details found by mutation testing: defaults, smallest grids, tolerances


@pytest.mark.usefixtures("double")
def test_chebyshev_default_is_the_first_derivative():
    x = chebyshev_grid(9)
    torch.testing.assert_close(chebyshev_derivative(x**3), 3 * x**2, rtol=1e-10, atol=1e-12)


@pytest.mark.usefixtures("double")
def test_fourier_default_is_the_first_derivative_and_even_orders_keep_the_nyquist_mode():
    x = uniform_grid(8, 0.0, 2 * math.pi, periodic=True)
    torch.testing.assert_close(fourier_derivative(torch.sin(2 * x)), 2 * torch.cos(2 * x))
    # cos(4x) is the Nyquist mode of 8 points: its even derivatives are exact, 4^k
    # (-1)^(k/2) cos(4x)
    torch.testing.assert_close(fourier_derivative(torch.cos(4 * x), 2), -16 * torch.cos(4 * x))
    torch.testing.assert_close(fourier_derivative(torch.cos(4 * x), 4), 256 * torch.cos(4 * x))


@pytest.mark.usefixtures("double")
def test_auto_chebyshev_is_the_matrix_path_below_fft_min_points():
    """Order 3 on 64 points: the matrix path is the product with chebyshev_matrix (at Trefethen's
    points y = -x mapped, hence the factor (-2/(b - a))**3); the FFT path differs in the
    9th digit."""
    n, a, b = 64, -1.0, 2.0
    x = chebyshev_grid(n, a, b)
    u = torch.exp(x) * torch.sin(3 * x)
    want = (u @ torch.as_tensor(chebyshev_matrix(n, 3)).T) * (-2 / (b - a)) ** 3
    close = {"rtol": 0, "atol": 1e-13 * float(want.abs().max())}
    fft = chebyshev_derivative(u, 3, domain=(a, b), method="fft")
    assert float((fft - want).abs().max()) > 1e-10 * float(want.abs().max())
    torch.testing.assert_close(chebyshev_derivative(u, 3, domain=(a, b)), want, **close)
    torch.testing.assert_close(
        chebyshev_derivative(u, 3, domain=(a, b), method="matrix"), want, **close
    )
    for g, v, w in ((x, u, want), (x.flip(0), u.flip(0), want.flip(0))):
        torch.testing.assert_close(
            grid_derivatives(v, [g], 3, method="chebyshev")[3][:, 0, 0, 0, 0], w, **close
        )


@pytest.mark.usefixtures("double")
def test_auto_chebyshev_is_the_fft_path_from_fft_min_points_on():
    x = chebyshev_grid(FFT_MIN_POINTS)
    u = torch.sin(2 * x)
    fft = chebyshev_derivative(u, 2, method="fft")
    torch.testing.assert_close(chebyshev_derivative(u, 2), fft, rtol=0, atol=0)
    assert (
        float((chebyshev_derivative(u, 2, method="matrix") - fft).abs().max()) > 1e-6
    )  # a different rounding
    torch.testing.assert_close(fft, -4 * u, rtol=0, atol=1e-3)


# -------------------------------------------------------------------------- properties (hypothesis)

PROPERTY_SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=40)


def _poly(coef: np.ndarray, x: torch.Tensor, order: int) -> torch.Tensor:
    """The order-th derivative of Σ c_i x^i, by numpy.polynomial (independent of the code
    under test)."""
    return torch.from_numpy(
        np.polynomial.polynomial.polyval(x.numpy(), np.polynomial.polynomial.polyder(coef, order))
    )


@PROPERTY_SETTINGS
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


@PROPERTY_SETTINGS
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
