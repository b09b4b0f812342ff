"""Tests of sobolev.numdiff.stack (grid_derivatives, grid_points, interior_grid): stack layout,
point order, symmetry, interior points, all methods."""

from __future__ import annotations

import math

import findiff
import numpy as np
import pytest
import torch

from sobolev.numdiff import (
    chebyshev_grid,
    grid_derivatives,
    grid_points,
    interior_grid,
    uniform_grid,
)


def target(points: torch.Tensor) -> torch.Tensor:
    """Two smooth outputs of (x, y): shape (N, 2)."""
    x, y = points[:, 0], points[:, 1]
    return torch.stack([torch.sin(x) * torch.cos(2 * y) + x * y**2, torch.exp(0.5 * x - y)], dim=-1)


def exact_stack(points: torch.Tensor, order: int) -> list[torch.Tensor]:
    """(u, Du, D²u, ...) at points by autograd of the closed form: shapes (N, m) + (d,)*j."""
    points = points.clone().requires_grad_(True)
    out = [target(points)]
    for _ in range(order):
        prev = out[-1]
        flat = prev.reshape(prev.shape[0], -1)
        grads = [
            torch.autograd.grad(flat[:, i].sum(), points, create_graph=True)[0]
            for i in range(flat.shape[1])
        ]
        out.append(torch.stack(grads, dim=1).reshape(*prev.shape, points.shape[1]))
    return [t.detach() for t in out]


def values_on(grid: list[torch.Tensor]) -> torch.Tensor:
    shape = tuple(g.shape[0] for g in grid)
    return target(grid_points(grid)).reshape(*shape, 2)


def test_grid_points_order_is_meshgrid_ij() -> None:
    x, y = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([10.0, 20.0])
    expected = torch.tensor(
        [[0.0, 10.0], [0.0, 20.0], [1.0, 10.0], [1.0, 20.0], [2.0, 10.0], [2.0, 20.0]]
    )
    torch.testing.assert_close(grid_points([x, y]), expected)


def test_chebyshev_stack_matches_analytic_at_grid_points() -> None:
    grid = [
        chebyshev_grid(22, -1.0, 1.5, dtype=torch.float64),
        chebyshev_grid(26, 0.0, 2.0, dtype=torch.float64),
    ]
    stack = grid_derivatives(values_on(grid), grid, order=3, method="chebyshev")
    assert isinstance(stack, tuple) and len(stack) == 4
    exact = exact_stack(grid_points(grid), 3)
    assert [tuple(t.shape) for t in stack] == [
        (22 * 26, 2),
        (22 * 26, 2, 2),
        (22 * 26, 2, 2, 2),
        (22 * 26, 2, 2, 2, 2),
    ]
    for j, (ours, ref) in enumerate(zip(stack, exact)):
        torch.testing.assert_close(ours, ref, rtol=0, atol=10.0 ** (-11 + 2 * j))
    torch.testing.assert_close(stack[2], stack[2].transpose(-1, -2), rtol=0, atol=0)
    torch.testing.assert_close(stack[3], stack[3].permute(0, 1, 4, 2, 3), rtol=0, atol=0)


def test_fd_stack_nonuniform_axis_matches_analytic() -> None:
    x = uniform_grid(61, 0.0, 1.0, dtype=torch.float64)
    y = torch.linspace(0.0, 1.0, 57, dtype=torch.float64) ** 1.5  # non-uniform axis
    grid = [x, y]
    stack = grid_derivatives(values_on(grid), grid, order=2, method="fd", accuracy=4)
    exact = exact_stack(grid_points(grid), 2)
    for j, tol in zip(range(3), (0.0, 1e-3, 3e-2)):
        torch.testing.assert_close(stack[j], exact[j], rtol=0, atol=tol)
    torch.testing.assert_close(stack[2], stack[2].transpose(-1, -2), rtol=0, atol=0)


def test_fd_mixed_partial_matches_findiff() -> None:
    """∂²/∂x∂y as first derivatives along each axis in turn, as findiff composes them."""
    grid = [
        uniform_grid(30, 0.0, 1.0, dtype=torch.float64),
        uniform_grid(20, -1.0, 1.0, dtype=torch.float64),
    ]
    u = values_on(grid)[..., 0]
    hessian = grid_derivatives(u, grid, order=2, accuracy=4)[2]
    coords = [
        g.numpy() for g in grid
    ]  # coordinate axes: findiff uses the nearest-points edge stencils too
    theirs = (findiff.Diff(0, coords[0], acc=4) * findiff.Diff(1, coords[1], acc=4))(u.numpy())
    np.testing.assert_allclose(
        hessian[:, 0, 0, 1].numpy(), theirs.reshape(-1), rtol=1e-9, atol=1e-9
    )
    theirs_xx = (findiff.Diff(0, 1 / 29, acc=4) ** 2)(u.numpy())[2:-2].reshape(-1)
    ours_xx = hessian[:, 0, 0, 0].reshape(30, 20)[2:-2].reshape(-1)
    np.testing.assert_allclose(ours_xx.numpy(), theirs_xx, rtol=1e-9, atol=1e-9)


def test_fd_interior_stack_holds_at_the_interior_grid_points() -> None:
    grid = [
        uniform_grid(40, 0.0, 1.0, dtype=torch.float64),
        torch.linspace(0.0, 1.0, 35, dtype=torch.float64) ** 1.3,
    ]
    values = values_on(grid)
    stack = grid_derivatives(values, grid, order=2, accuracy=4, boundary="interior")
    inner = interior_grid(grid, order=2, accuracy=4)
    assert [g.shape[0] for g in inner] == [40 - 4, 35 - 6]  # uniform: s=2; non-uniform order 2: s=3
    points = grid_points(inner)
    assert stack[0].shape[0] == points.shape[0] == 36 * 29
    exact = exact_stack(points, 2)
    torch.testing.assert_close(stack[0], exact[0], rtol=0, atol=0)
    torch.testing.assert_close(stack[1], exact[1], rtol=0, atol=1e-4)
    torch.testing.assert_close(stack[2], exact[2], rtol=0, atol=1e-3)
    full = grid_derivatives(values, grid, order=2, accuracy=4)
    keep = torch.zeros(40, 35, dtype=torch.bool)
    keep[2:-2, 3:-3] = True
    for ours, ref in zip(stack, full):
        torch.testing.assert_close(ours, ref[keep.reshape(-1)])


def test_interior_stack_needs_no_extra_argument() -> None:
    """grid_derivatives always returns the stack: with boundary="interior" it is the stack at
    grid_points(interior_grid(grid, order, accuracy)), no tuple with points."""
    grid = [uniform_grid(20, 0.0, 1.0), uniform_grid(20, 0.0, 1.0)]
    stack = grid_derivatives(torch.rand(20, 20), grid, boundary="interior")
    assert len(stack) == 2 and stack[0].shape == (16 * 16, 1) and stack[1].shape == (16 * 16, 1, 2)
    with pytest.raises(TypeError, match="return_points"):
        grid_derivatives(torch.rand(20, 20), grid, boundary="interior", return_points=True)


def test_fourier_and_periodic_fd_stacks() -> None:
    grid = [
        uniform_grid(24, 0.0, 2 * math.pi, periodic=True, dtype=torch.float64),
        uniform_grid(20, 0.0, 1.0, periodic=True, dtype=torch.float64),
    ]
    xx, yy = torch.meshgrid(*grid, indexing="ij")
    u = torch.sin(xx + 2 * math.pi * yy)
    points = grid_points(grid)
    phase = points[:, 0] + 2 * math.pi * points[:, 1]
    direction = torch.tensor([1.0, 2 * math.pi], dtype=torch.float64)
    grad = torch.cos(phase)[:, None, None] * direction
    hess = -torch.sin(phase)[:, None, None, None] * torch.outer(direction, direction)
    spectral = grid_derivatives(u, grid, order=2, method="fourier")
    torch.testing.assert_close(spectral[1], grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(spectral[2], hess, rtol=0, atol=1e-10)
    fd = grid_derivatives(u, grid, order=2, accuracy=6, boundary="periodic")
    torch.testing.assert_close(fd[1], grad, rtol=0, atol=1e-4)
    assert float((fd[1] - grad).abs().max()) > 1e-10  # genuinely FD, not spectral


def test_three_dimensional_shapes_and_symmetry() -> None:
    grid = [chebyshev_grid(n, dtype=torch.float64) for n in (6, 7, 8)]
    points = grid_points(grid)
    u = (points[:, 0] ** 2 * points[:, 1] * points[:, 2] ** 3).reshape(6, 7, 8)
    stack = grid_derivatives(u, grid, order=3, method="chebyshev")
    assert [tuple(t.shape) for t in stack] == [
        (336, 1),
        (336, 1, 3),
        (336, 1, 3, 3),
        (336, 1, 3, 3, 3),
    ]
    x, _y, z = points.unbind(1)
    # ∂³/∂x∂y∂z = 2x * 1 * 3z², at every permutation of the index.
    for idx in [(0, 1, 2), (2, 1, 0), (1, 0, 2)]:
        torch.testing.assert_close(
            stack[3][:, 0, idx[0], idx[1], idx[2]], 6 * x * z**2, rtol=0, atol=1e-10
        )


def test_order_zero_returns_values() -> None:
    grid = [uniform_grid(5, 0.0, 1.0), uniform_grid(4, 0.0, 1.0)]
    values = torch.rand(5, 4, 3)
    (u,) = grid_derivatives(values, grid, order=0)
    torch.testing.assert_close(u, values.reshape(20, 3))


# -------------------------- details found by mutation testing: defaults, smallest grids, tolerances


@pytest.mark.usefixtures("double")
def test_descending_chebyshev_grid_gives_the_same_derivatives():
    """Trefethen's cos(jπ/N) order: the derivative at each point does not depend on the order."""
    x = chebyshev_grid(12, -1.0, 2.0)
    u = torch.sin(x)
    up = grid_derivatives(u, [x], 2, method="chebyshev")
    down = grid_derivatives(u.flip(0), [x.flip(0)], 2, method="chebyshev")
    for a, b in zip(up, down):
        torch.testing.assert_close(b, a.flip(0), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(down[1][:, 0, 0], torch.cos(x.flip(0)), rtol=0, atol=1e-6)


@pytest.mark.usefixtures("double")
def test_grid_points_keep_descending_axes():
    pts = grid_points([torch.tensor([2.0, 1.0]), torch.tensor([0.0, 5.0, 7.0])])
    want = torch.tensor([[2.0, 0.0], [2.0, 5.0], [2.0, 7.0], [1.0, 0.0], [1.0, 5.0], [1.0, 7.0]])
    torch.testing.assert_close(pts, want)


@pytest.mark.usefixtures("double")
@pytest.mark.parametrize("grid", [[], (), torch.tensor([0.0, 1.0]), 3])
def test_grid_must_be_a_nonempty_sequence(grid):
    with pytest.raises(ValueError, match="grid must be a non-empty sequence"):
        grid_derivatives(torch.zeros(3), grid)


@pytest.mark.usefixtures("double")
def test_two_point_chebyshev_grids_in_both_orders():
    for grid in (chebyshev_grid(2, 0.0, 2.0), chebyshev_grid(2, 0.0, 2.0).flip(0)):
        (_u, du) = grid_derivatives(3 * grid + 1, [grid], 1, method="chebyshev")
        torch.testing.assert_close(du[:, 0, 0], torch.tensor([3.0, 3.0]))


@pytest.mark.usefixtures("double")
def test_interior_grid_defaults_are_order_1_accuracy_4():
    x = torch.linspace(0.0, 1.0, 12) ** 2  # non-uniform: half width 2 for order 1, 3 for order 2
    (kept,) = interior_grid([x])
    torch.testing.assert_close(kept, x[2:-2])
    assert interior_grid([x], order=2)[0].shape[0] == 6


@pytest.mark.usefixtures("double")
def test_fd_grid_derivatives_at_the_fewest_points():
    """The fewest points per axis: order 0 needs one point, a uniform axis with one-sided edges
    ``max(p, 2s+1)`` = 4 points for order 2 at accuracy 2 (a non-uniform axis needs 5)."""
    (u,) = grid_derivatives(torch.tensor([5.0]), [torch.tensor([0.0])], order=0)
    torch.testing.assert_close(u, torch.tensor([[5.0]]))
    (u,) = grid_derivatives(
        torch.tensor([1.0, 2.0]), [torch.tensor([0.0, 1.0])], order=0
    )  # accuracy 4 irrelevant
    torch.testing.assert_close(u, torch.tensor([[1.0], [2.0]]))
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    _, du, d2u = grid_derivatives(x**2, [x], 2, accuracy=2)
    torch.testing.assert_close(du[:, 0, 0], 2 * x)
    torch.testing.assert_close(d2u[:, 0, 0, 0], torch.full((4,), 2.0))
    message = r"grid\[0\] has {} points, but order={}, accuracy=2 .* needs at least {} per axis"
    with pytest.raises(ValueError, match=message.format(3, 2, 4)):
        grid_derivatives(x[:3] ** 2, [x[:3]], 2, accuracy=2)
    with pytest.raises(ValueError, match=message.format(2, 1, 3)):
        grid_derivatives(x[:2], [x[:2]], 1, accuracy=2)
    with pytest.raises(ValueError, match=message.format(4, 2, 5)):
        grid_derivatives(x**2, [x**2], 2, accuracy=2)


@pytest.mark.usefixtures("double")
def test_coordinates_whose_step_sum_overflows_are_finite():
    """The fast check sums the steps (3e308 overflows); the exact check must accept the grid."""
    x = torch.tensor([-1.5e308, 0.0, 1.5e308])
    torch.testing.assert_close(grid_points([x]), x[:, None])
