"""sobolev.numdiff: argument errors, autograd, batching, devices, public API."""

from __future__ import annotations

import math

import pytest
import torch

import sobolev.numdiff as nd
from sobolev import derivatives
from sobolev.numdiff import (
    chebyshev_derivative,
    chebyshev_grid,
    fd_derivative,
    fourier_derivative,
    grid_derivatives,
    grid_points,
    uniform_grid,
)

GRID = [
    uniform_grid(12, 0.0, 1.0, dtype=torch.float64),
    uniform_grid(10, 0.0, 1.0, dtype=torch.float64),
]


def test_public_names() -> None:
    for name in nd.__all__:
        assert hasattr(nd, name)
    assert {
        "grid_derivatives",
        "grid_points",
        "fd_derivative",
        "chebyshev_derivative",
        "fourier_derivative",
    } <= set(nd.__all__)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "spline"}, "method must be one of"),
        ({"order": -1}, "order must be a non-negative integer"),
        ({"accuracy": 3}, "accuracy must be a positive even integer"),
        ({"accuracy": 0}, "accuracy must be a positive even integer"),
        ({"boundary": "reflect"}, "boundary must be one of"),
        ({"method": "chebyshev"}, "Chebyshev–Gauss–Lobatto"),
        ({"method": "chebyshev", "boundary": "one-sided"}, "boundary applies to method='fd' only"),
    ],
)
def test_grid_derivatives_argument_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        grid_derivatives(torch.rand(12, 10, dtype=torch.float64), GRID, **kwargs)


def test_non_uniform_grid_rejected_for_fourier() -> None:
    grid = [torch.linspace(0, 1, 12, dtype=torch.float64) ** 2, GRID[1]]
    with pytest.raises(ValueError, match=r"grid\[0\] must be uniformly spaced"):
        grid_derivatives(torch.rand(12, 10, dtype=torch.float64), grid, method="fourier")


@pytest.mark.parametrize(
    ("values", "grid", "match"),
    [
        (torch.rand(12, 9), GRID, "values must have shape"),
        (torch.rand(12, 10, 3, 2), GRID, "values must have shape"),
        (torch.rand(12), GRID[0], "grid must be a non-empty sequence"),
        (torch.rand(12, 10), [GRID[0], GRID[1].flip(0)], r"grid\[1\] must be strictly increasing"),
        (torch.rand(12, 10), [GRID[0], GRID[1][:, None]], r"grid\[1\] must be 1-D"),
    ],
)
def test_shape_and_grid_errors(values: torch.Tensor, grid: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        grid_derivatives(values.double(), grid)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_values_rejected(bad: float) -> None:
    values = torch.rand(12, 10, dtype=torch.float64)
    values[3, 4] = bad
    for call in (
        lambda: grid_derivatives(values, GRID),
        lambda: fd_derivative(values, 0.1, axis=0),
        lambda: chebyshev_derivative(values),
        lambda: fourier_derivative(values),
    ):
        with pytest.raises(ValueError, match="values contains NaN or Inf"):
            call()


def test_large_finite_values_accepted() -> None:
    """The fast finiteness check overflows on a sum; the exact check must not reject these."""
    values = torch.full((20,), 2e307, dtype=torch.float64)
    assert not bool(torch.isfinite(values.sum()))
    torch.testing.assert_close(
        fd_derivative(values, 1.0), torch.zeros_like(values), rtol=0, atol=1e293
    )


def test_too_few_points() -> None:
    with pytest.raises(ValueError, match="needs at least 6"):
        fd_derivative(
            torch.rand(5, dtype=torch.float64), 0.1, order=2, accuracy=4
        )  # 6-point edge stencil
    with pytest.raises(ValueError, match="needs at least 5"):
        fd_derivative(
            torch.rand(4, dtype=torch.float64), 0.1, order=1, accuracy=4, boundary="interior"
        )


def test_fd_argument_errors() -> None:
    u = torch.rand(10, dtype=torch.float64)
    with pytest.raises(ValueError, match="spacing must be a finite number > 0"):
        fd_derivative(u, -0.1)
    with pytest.raises(ValueError, match="1-D with 10 entries"):
        fd_derivative(u, torch.linspace(0, 1, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="periodic' needs uniformly spaced"):
        fd_derivative(u, torch.linspace(0, 1, 10, dtype=torch.float64) ** 2, boundary="periodic")
    with pytest.raises(ValueError, match="axis must be an integer"):
        fd_derivative(u, 0.1, axis=1)
    with pytest.raises(ValueError, match="real floating dtype"):
        fd_derivative(torch.arange(10), 0.1)
    with pytest.raises(ValueError, match="accuracy must be a positive even integer"):
        fd_derivative(u, 0.1, accuracy=5)


def test_spectral_argument_errors() -> None:
    u = torch.rand(10, dtype=torch.float64)
    with pytest.raises(ValueError, match="method must be one of"):
        chebyshev_derivative(u, method="dct")
    with pytest.raises(ValueError, match="domain must be a finite interval"):
        chebyshev_derivative(u, domain=(1.0, 0.0))
    with pytest.raises(ValueError, match="period must be a finite number > 0"):
        fourier_derivative(u, period=0.0)
    with pytest.raises(ValueError, match="order must be a non-negative integer"):
        fourier_derivative(u, order=1.5)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        chebyshev_grid(1)


# --- autograd ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda u: fd_derivative(u, 0.1, order=1, axis=1, accuracy=4),
        lambda u: fd_derivative(
            u, torch.linspace(0, 1, 9, dtype=torch.float64) ** 2, order=2, axis=1
        ),
        lambda u: fd_derivative(u, 0.1, order=2, axis=1, boundary="periodic"),
        lambda u: chebyshev_derivative(u, order=2, method="matrix"),
        lambda u: chebyshev_derivative(u, order=2, method="fft"),
        lambda u: fourier_derivative(u, order=1),
    ],
    ids=["fd", "fd-nonuniform", "fd-periodic", "cheb-matrix", "cheb-fft", "fourier"],
)
def test_gradcheck(fn) -> None:
    u = torch.rand(2, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (u,))


def test_gradcheck_grid_derivatives() -> None:
    grid = [chebyshev_grid(5, dtype=torch.float64), uniform_grid(6, 0.0, 1.0, dtype=torch.float64)]

    def stack(u: torch.Tensor, method: str) -> tuple[torch.Tensor, ...]:
        if method == "chebyshev":
            return grid_derivatives(u, [grid[0], grid[0]], order=2, method=method)
        return grid_derivatives(u, [grid[1], grid[1]], order=2, accuracy=2)

    for method, shape in (("chebyshev", (5, 5)), ("fd", (6, 6))):
        u = torch.rand(*shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda v, m=method: stack(v, m), (u,))


# --- batching and devices ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda u, axis: fd_derivative(u, 0.1, order=2, axis=axis, accuracy=4),
        lambda u, axis: fd_derivative(
            u, torch.linspace(0, 1, 16, dtype=torch.float64) ** 2, order=1, axis=axis
        ),
        lambda u, axis: chebyshev_derivative(u, order=1, axis=axis, method="matrix"),
        lambda u, axis: chebyshev_derivative(u, order=1, axis=axis, method="fft"),
        lambda u, axis: fourier_derivative(u, order=2, axis=axis),
    ],
    ids=["fd", "fd-nonuniform", "cheb-matrix", "cheb-fft", "fourier"],
)
def test_batched_equals_per_line(fn) -> None:
    u = torch.rand(3, 16, 4, dtype=torch.float64)
    batched = fn(u, 1)
    assert batched.shape == u.shape
    for i in range(3):
        for j in range(4):
            torch.testing.assert_close(batched[i, :, j], fn(u[i, :, j], 0))
    torch.testing.assert_close(fn(u, -2), batched)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    grid = [chebyshev_grid(12, dtype=torch.float64), chebyshev_grid(10, dtype=torch.float64)]
    u = torch.rand(12, 10, dtype=torch.float64)
    for method in ("fd", "chebyshev"):
        cpu = grid_derivatives(u, grid, order=2, method=method)
        gpu = grid_derivatives(u.cuda(), [g.cuda() for g in grid], order=2, method=method)
        for a, b in zip(cpu, gpu):
            assert b.device.type == "cuda"
            torch.testing.assert_close(a, b.cpu())
    x = torch.linspace(0, 1, 50, dtype=torch.float64) ** 2
    torch.testing.assert_close(
        fd_derivative(u[0].repeat(5)[:50].cuda(), x.cuda()).cpu(),
        fd_derivative(u[0].repeat(5)[:50], x),
    )
    torch.testing.assert_close(fourier_derivative(u.cuda(), 1).cpu(), fourier_derivative(u, 1))
    torch.testing.assert_close(
        chebyshev_derivative(u.cuda(), 1, method="fft").cpu(),
        chebyshev_derivative(u, 1, method="fft"),
    )


def test_too_short_grid_names_the_requested_order():
    g = torch.tensor([0.0, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"grid\[0\] has 2 points, but order=2"):
        grid_derivatives(g**2, [g], order=2)


def test_chebyshev_grids_in_descending_order_are_accepted():
    n = 17
    asc = chebyshev_grid(n, -1.0, 2.0, dtype=torch.float64)
    desc = 0.5 + 1.5 * torch.cos(
        math.pi * torch.arange(n, dtype=torch.float64) / (n - 1)
    )  # Trefethen's order
    other = chebyshev_grid(17, dtype=torch.float64)
    f = lambda X: torch.sin(X[:, :1]) * torch.exp(X[:, 1:])
    grid = [desc, other]
    X = grid_points(grid)
    stack = grid_derivatives(f(X).reshape(n, 17), grid, order=2, method="chebyshev")
    exact = derivatives(f, X, 2, create_graph=False)
    for j in range(3):
        assert torch.allclose(stack[j], exact[j], atol=1e-6), j
    flipped = grid_derivatives(
        f(grid_points([asc, other])).reshape(n, 17), [asc, other], order=1, method="chebyshev"
    )
    assert torch.allclose(
        flipped[1].reshape(n, 17, 1, 2).flip(0).reshape(-1, 1, 2), stack[1], atol=1e-9
    )
