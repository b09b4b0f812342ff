"""Tests of sobolev.numdiff.finite_differences and .stencils: convergence, agreement with findiff,
boundary modes, the stencil cache, and properties (hypothesis): exact on polynomials below the
accuracy."""

from __future__ import annotations

import math

import findiff
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sobolev.numdiff import fd_derivative, fd_half_width, fornberg_weights, uniform_grid
from sobolev.numdiff.stencils import GridKey, stencil_sizes


def f1(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(4 * x + 0.5)


def f1_derivative(x: torch.Tensor, order: int) -> torch.Tensor:
    """d^k/dx^k sin(4x + 0.5) = 4^k sin(4x + 0.5 + k*pi/2)."""
    return 4.0**order * torch.sin(4 * x + 0.5 + order * np.pi / 2)


def warped_grid(n: int) -> torch.Tensor:
    """Smoothly non-uniform grid on [0, 1] (a smooth map of the uniform one)."""
    x = uniform_grid(n, 0.0, 1.0, dtype=torch.float64)
    return x + 0.2 / (n - 1) * torch.sin(2 * np.pi * x)


def random_grid(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.uniform(0.5, 1.5, n - 1)
    return np.concatenate([[0.0], np.cumsum(steps)]) / steps.sum()


# h halves from size to size; the finest grids stay well above the rounding-error floor.
SIZES = {2: [33, 65, 129, 257], 4: [33, 65, 129], 6: [17, 33, 65]}


@pytest.mark.parametrize("nonuniform", [False, True], ids=["uniform", "nonuniform"])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("accuracy", [2, 4, 6])
def test_convergence_order_matches_accuracy(accuracy: int, order: int, nonuniform: bool) -> None:
    hs, errors = [], []
    for n in SIZES[accuracy]:
        x = warped_grid(n) if nonuniform else uniform_grid(n, 0.0, 1.0, dtype=torch.float64)
        du = fd_derivative(f1(x), x, order=order, accuracy=accuracy)  # full grid, one-sided edges
        errors.append(float((du - f1_derivative(x, order)).abs().max()))
        hs.append(1.0 / (n - 1))
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert abs(slope - accuracy) <= 0.3, (slope, errors)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("accuracy", [2, 4, 6])
def test_uniform_matches_findiff_1d(accuracy: int, order: int) -> None:
    n, h = 50, 0.05
    x = torch.arange(n, dtype=torch.float64) * h
    u = torch.exp(torch.sin(3 * x))
    ours = fd_derivative(u, h, order=order, accuracy=accuracy).numpy()
    s, _ = stencil_sizes(order, accuracy, uniform=True)
    # Interior: findiff's uniform central stencil.
    theirs = (findiff.Diff(0, h, acc=accuracy) ** order)(u.numpy())
    np.testing.assert_allclose(
        ours[s:-s], theirs[s:-s], rtol=1e-10, atol=1e-10 * np.abs(theirs).max()
    )
    # Edges: we use the p points nearest the edge, as findiff does on coordinate grids.
    theirs_edge = (findiff.Diff(0, x.numpy(), acc=accuracy) ** order)(u.numpy())
    scale = np.abs(theirs_edge).max()
    np.testing.assert_allclose(ours[:s], theirs_edge[:s], rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(ours[-s:], theirs_edge[-s:], rtol=1e-9, atol=1e-9 * scale)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("axis", [0, 1])
def test_uniform_matches_findiff_2d_interior(axis: int, order: int) -> None:
    h = (0.04, 0.03)
    x = torch.arange(40, dtype=torch.float64) * h[0]
    y = torch.arange(30, dtype=torch.float64) * h[1]
    xx, yy = torch.meshgrid(x, y, indexing="ij")
    u = torch.sin(2 * xx) * torch.cos(yy) + xx * yy**2
    ours = fd_derivative(u, h[axis], order=order, axis=axis, accuracy=4).numpy()
    theirs = (findiff.Diff(axis, h[axis], acc=4) ** order)(u.numpy())
    s, _ = stencil_sizes(order, 4, uniform=True)
    sl = [slice(None)] * 2
    sl[axis] = slice(s, -s)
    np.testing.assert_allclose(ours[tuple(sl)], theirs[tuple(sl)], rtol=1e-10, atol=1e-9)
    if axis == 0:
        exact = (
            2.0**order * torch.sin(2 * xx + order * np.pi / 2) * torch.cos(yy)
            + (order == 1) * yy**2
        )
    else:
        exact = (
            torch.sin(2 * xx) * torch.cos(yy + order * np.pi / 2)
            + xx * [2 * yy, 2.0, 0.0][order - 1]
        )
    assert float((torch.as_tensor(ours) - exact).abs().max()) < 1e-5 * 10**order


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("accuracy", [2, 4])
def test_nonuniform_matches_findiff_and_analytic(accuracy: int, order: int) -> None:
    xs = random_grid(80)
    x = torch.as_tensor(xs)
    u = f1(x)
    ours = fd_derivative(u, x, order=order, accuracy=accuracy)
    theirs = (findiff.Diff(0, xs, acc=accuracy) ** order)(u.numpy())
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-8, atol=1e-8 * scale)
    tolerance = {2: 0.05, 4: 2e-3}[accuracy] * 4.0**order * order
    assert float((ours - f1_derivative(x, order)).abs().max()) < tolerance


@pytest.mark.parametrize("axis", [0, 1])
def test_nonuniform_2d_matches_findiff(axis: int) -> None:
    grids = [random_grid(30, seed=1), random_grid(25, seed=2)]
    xx, yy = np.meshgrid(*grids, indexing="ij")
    u = np.sin(2 * xx) * np.exp(yy)
    ours = fd_derivative(
        torch.as_tensor(u), torch.as_tensor(grids[axis]), order=2, axis=axis, accuracy=4
    )
    theirs = (findiff.Diff(axis, grids[axis], acc=4) ** 2)(u)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-8, atol=1e-8 * np.abs(theirs).max())


@pytest.mark.parametrize("order", [1, 2, 3])
def test_periodic_matches_findiff(order: int) -> None:
    n = 48
    x = uniform_grid(n, 0.0, 2 * np.pi, periodic=True, dtype=torch.float64)
    u = torch.exp(torch.sin(x))
    h = 2 * np.pi / n
    ours = fd_derivative(u, x, order=order, accuracy=4, boundary="periodic").numpy()
    theirs = (findiff.Diff(0, h, acc=4, periodic=True) ** order)(u.numpy())
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10 * np.abs(theirs).max())


@pytest.mark.parametrize("nonuniform", [False, True])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_interior_is_central_part_of_one_sided(order: int, nonuniform: bool) -> None:
    n = 40
    x = (
        torch.as_tensor(random_grid(n))
        if nonuniform
        else uniform_grid(n, 0.0, 1.0, dtype=torch.float64)
    )
    u = torch.rand(3, n, dtype=torch.float64)
    full = fd_derivative(u, x, order=order, axis=1, accuracy=4)
    inner = fd_derivative(u, x, order=order, axis=1, accuracy=4, boundary="interior")
    s = fd_half_width(order, 4, uniform=not nonuniform)
    assert inner.shape == (3, n - 2 * s)
    torch.testing.assert_close(inner, full[:, s : n - s])


def test_one_sided_edges_beat_findiff_forward_stencils() -> None:
    """Edge points use the nearest points on both sides when possible: smaller error
    than findiff's."""
    x = uniform_grid(60, 0.0, 1.0, dtype=torch.float64)
    h = float(x[1] - x[0])
    u = f1(x)
    ours = fd_derivative(u, x, order=3, accuracy=4)
    theirs = torch.as_tensor((findiff.Diff(0, h, acc=4) ** 3)(u.numpy()))
    exact = f1_derivative(x, 3)
    s, _ = stencil_sizes(3, 4, uniform=True)
    edges = torch.cat([torch.arange(1, s), torch.arange(60 - s, 59)])  # the boundary points agree
    assert float((ours - exact)[edges].abs().max()) < 0.5 * float(
        (theirs - exact)[edges].abs().max()
    )


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_fornberg_weights_match_findiff(order: int) -> None:
    rng = np.random.default_rng(order)
    offsets = np.sort(rng.uniform(-3, 3, size=(4, order + 3)), axis=1)
    ours = fornberg_weights(np.zeros(4), offsets, order)
    for row, off in zip(ours, offsets):
        theirs = findiff.coefficients(order, offsets=list(off))["coefficients"]
        np.testing.assert_allclose(row, theirs, rtol=1e-8, atol=1e-8 * np.abs(theirs).max())


def test_float32_follows_input_dtype() -> None:
    x = uniform_grid(101, 0.0, 1.0, dtype=torch.float32)
    du = fd_derivative(f1(x), x, order=1, accuracy=4)
    assert du.dtype == torch.float32
    assert float((du.double() - f1_derivative(x.double(), 1)).abs().max()) < 1e-3


def test_spacing_scalar_equals_coordinates() -> None:
    x = uniform_grid(33, -1.0, 3.0, dtype=torch.float64)
    u = torch.cos(x)
    torch.testing.assert_close(
        fd_derivative(u, 0.125, 2, accuracy=6), fd_derivative(u, x, 2, accuracy=6)
    )


# -------------------------- details found by mutation testing: defaults, smallest grids, tolerances


@pytest.mark.usefixtures("double")
def test_fd_errors_name_the_spacing_argument():
    with pytest.raises(
        ValueError, match=r"coords_or_spacing as a spacing must be a finite number > 0, got -0.5"
    ):
        fd_derivative(torch.zeros(8), -0.5)
    with pytest.raises(
        ValueError, match=r"coords_or_spacing must be a spacing h > 0 or a 1-D tensor of 8"
    ):
        fd_derivative(torch.zeros(8), "h")
    with pytest.raises(ValueError, match="coords_or_spacing"):
        fd_derivative(torch.zeros(8), torch.tensor([0.0, 1.0, math.inf, 3, 4, 5, 6, 7]))


@pytest.mark.usefixtures("double")
def test_fd_half_width_defaults_and_order_zero():
    assert fd_half_width(2, 2) == 1  # default uniform=True: central 3-point stencil
    assert fd_half_width(2, 2, uniform=False) == 2  # non-uniform central stencil has 4+1 points
    assert fd_half_width(0, 2) == fd_half_width(0, 4) == fd_half_width(0, 4, uniform=False) == 0


@pytest.mark.usefixtures("double")
def test_gridkey_compares_every_coordinate():
    a = np.linspace(0.0, 1.0, 5)
    b = a.copy()
    b[2] += 1e-3
    assert GridKey(a) == GridKey(a.copy()) and hash(GridKey(a)) == hash(GridKey(a.copy()))
    assert GridKey(a) != GridKey(b)
    assert GridKey(a) != a


@pytest.mark.usefixtures("double")
def test_nonuniform_stencils_of_grids_with_the_same_hash_sample_are_not_mixed_up():
    """128 points: the cache key hashes every second coordinate, so these two grids collide."""
    x = torch.linspace(0.0, 1.0, 128) ** 2
    y = x.clone()
    y[1] = 0.5 * (x[1] + x[2])
    assert hash(GridKey(x.numpy())) == hash(GridKey(y.numpy()))
    torch.testing.assert_close(fd_derivative(x**2, x, 1, accuracy=2), 2 * x)
    torch.testing.assert_close(fd_derivative(y**2, y, 1, accuracy=2), 2 * y)


@pytest.mark.usefixtures("double")
def test_float32_coordinates_get_float64_weights():
    """Non-uniform float32 coordinates are widened before Fornberg's algorithm: the same result
    as passing them as float64 (float32 coordinate differences would change the weights)."""
    x32 = (torch.linspace(0.0, 1.0, 20) ** 3).float()
    u32 = torch.sin(3 * x32)
    torch.testing.assert_close(
        fd_derivative(u32, x32, 2, accuracy=2),
        fd_derivative(u32, x32.double(), 2, accuracy=2),
        rtol=0,
        atol=0,
    )


@pytest.mark.usefixtures("double")
def test_fd_at_the_fewest_points_and_with_unit_weights():
    """One-sided: max(p, 2s+1) points; interior: 2s+1. Spacings 1 and 1/2 make stencil weights
    exactly ±1.0 (central [1, -2, 1]/h² and [-1/2, 0, 1/2]/h)."""
    x = torch.tensor([0.0, 1.0, 2.0])
    torch.testing.assert_close(fd_derivative(x**2, 1.0, 1, accuracy=2), 2 * x)  # p = 2s+1 = 3
    torch.testing.assert_close(
        fd_derivative(x**2, 1.0, 2, accuracy=2, boundary="interior"), torch.tensor([2.0])
    )
    torch.testing.assert_close(
        fd_derivative((x / 2) ** 2, 0.5, 1, accuracy=2, boundary="interior"), torch.tensor([1.0])
    )
    torch.testing.assert_close(
        fd_derivative(torch.tensor([0.0, 1, 4, 9]), 1.0, 2, accuracy=2), torch.full((4,), 2.0)
    )
    y = torch.tensor([0.0, 1.0, 3.0, 4.0, 6.0])  # non-uniform, order 2: p = 4 but 2s+1 = 5
    torch.testing.assert_close(fd_derivative(y**2, y, 2, accuracy=2), torch.full((5,), 2.0))
    with pytest.raises(ValueError, match="values has 4 points along axis 0.* needs at least 5"):
        fd_derivative(y[:4] ** 2, y[:4], 2, accuracy=2)


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


@PROPERTY_SETTINGS
@given(order=st.integers(1, 2), accuracy=st.sampled_from([2, 4]))
def test_fd_not_exact_one_degree_higher(order, accuracy):
    """The bound above is tight: x^(order + accuracy) is not differentiated exactly."""
    x = uniform_grid(16, -1.0, 1.0, dtype=torch.float64)
    coef = np.zeros(order + accuracy + 1)
    coef[-1] = 1.0
    got = fd_derivative(_poly(coef, x, 0), float(x[1] - x[0]), order, -1, accuracy, "interior")
    s = (len(x) - got.shape[0]) // 2  # the points dropped at each end
    assert float((got - _poly(coef, x, order)[s : len(x) - s]).abs().max()) > 1e-6
