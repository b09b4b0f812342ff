"""Finite differences in sobolev.numdiff: convergence, agreement with findiff, boundary modes."""

from __future__ import annotations

import findiff
import numpy as np
import pytest
import torch

from sobolev.numdiff import fd_derivative, fd_half_width, fornberg_weights, uniform_grid
from sobolev.numdiff.stencils import stencil_sizes


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
    """Edge points use the nearest points on both sides when possible: smaller error than findiff's."""
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
