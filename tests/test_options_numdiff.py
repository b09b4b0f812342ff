"""numdiff options and messages that mutation testing found unchecked: default arguments, the
smallest grids, descending Chebyshev grids, and errors that name the offending argument."""

import math

import pytest
import torch

from sobolev.numdiff import (
    chebyshev_derivative,
    chebyshev_grid,
    fd_derivative,
    grid_derivatives,
    grid_points,
    uniform_grid,
)

pytestmark = pytest.mark.usefixtures("double")


def test_smallest_grids():
    torch.testing.assert_close(uniform_grid(2, 0.0, 3.0), torch.tensor([0.0, 3.0]))
    torch.testing.assert_close(uniform_grid(2, 0.0, 3.0, periodic=True), torch.tensor([0.0, 1.5]))
    torch.testing.assert_close(chebyshev_grid(2, -1.0, 1.0), torch.tensor([-1.0, 1.0]))
    # two Chebyshev points: the line through them, derivative (u1 − u0)/(b − a)
    torch.testing.assert_close(chebyshev_derivative(torch.tensor([1.0, 4.0]), 1, -1, (0.0, 2.0)), torch.tensor([1.5, 1.5]))
    with pytest.raises(ValueError, match="at least 2 Chebyshev points along axis 0, got 1"):
        chebyshev_derivative(torch.tensor([1.0]))


def test_chebyshev_default_is_the_first_derivative():
    x = chebyshev_grid(9)
    torch.testing.assert_close(chebyshev_derivative(x**3), 3 * x**2, rtol=1e-10, atol=1e-12)


def test_descending_chebyshev_grid_gives_the_same_derivatives():
    """Trefethen's cos(jπ/N) order: the derivative at each point does not depend on the order."""
    x = chebyshev_grid(12, -1.0, 2.0)
    u = torch.sin(x)
    up = grid_derivatives(u, [x], 2, method="chebyshev")
    down = grid_derivatives(u.flip(0), [x.flip(0)], 2, method="chebyshev")
    for a, b in zip(up, down):
        torch.testing.assert_close(b, a.flip(0), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(down[1][:, 0, 0], torch.cos(x.flip(0)), rtol=0, atol=1e-6)


def test_grid_points_keep_descending_axes():
    pts = grid_points([torch.tensor([2.0, 1.0]), torch.tensor([0.0, 5.0, 7.0])])
    want = torch.tensor([[2.0, 0.0], [2.0, 5.0], [2.0, 7.0], [1.0, 0.0], [1.0, 5.0], [1.0, 7.0]])
    torch.testing.assert_close(pts, want)


@pytest.mark.parametrize("grid", [[], (), torch.tensor([0.0, 1.0]), 3])
def test_grid_must_be_a_nonempty_sequence(grid):
    with pytest.raises(ValueError, match="grid must be a non-empty sequence"):
        grid_derivatives(torch.zeros(3), grid)


def test_fd_errors_name_the_spacing_argument():
    with pytest.raises(ValueError, match=r"coords_or_spacing as a spacing must be a finite number > 0, got -0.5"):
        fd_derivative(torch.zeros(8), -0.5)
    with pytest.raises(ValueError, match=r"coords_or_spacing must be a spacing h > 0 or a 1-D tensor of 8"):
        fd_derivative(torch.zeros(8), "h")
    with pytest.raises(ValueError, match="coords_or_spacing"):
        fd_derivative(torch.zeros(8), torch.tensor([0.0, 1.0, math.inf, 3, 4, 5, 6, 7]))


@pytest.mark.parametrize("method", ["chebyshev", "fd"])
def test_numdiff_under_repeated_functorch_transforms(method):
    x = chebyshev_grid(20) if method == "chebyshev" else uniform_grid(20, -1.0, 1.0)
    op = (lambda v: chebyshev_derivative(v, 2)) if method == "chebyshev" else (lambda v: fd_derivative(v, x[1] - x[0], 2))
    f = lambda v: (op(v) ** 2).sum() / 2  # noqa: E731
    torch.func.hessian(f)(torch.sin(x))  # the first transform fills the cache
    g = torch.func.grad(f)(torch.sin(x))  # the second reuses it
    D2 = torch.func.jacrev(op)(torch.sin(x))
    torch.testing.assert_close(g, D2.T @ op(torch.sin(x)))
