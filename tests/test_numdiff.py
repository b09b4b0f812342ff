"""Tests of sobolev.numdiff as a whole: every argument error of its functions (essential words),
autograd and functorch transforms, batching, devices, dtypes and defaults, the public API."""

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
    fd_half_width,
    fourier_derivative,
    grid_derivatives,
    grid_points,
    interior_grid,
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


# -------------------------- details found by mutation testing: defaults, smallest grids, tolerances


@pytest.mark.usefixtures("double")
@pytest.mark.parametrize("method", ["chebyshev", "fd"])
def test_numdiff_under_repeated_functorch_transforms(method):
    x = chebyshev_grid(20) if method == "chebyshev" else uniform_grid(20, -1.0, 1.0)
    op = (
        (lambda v: chebyshev_derivative(v, 2))
        if method == "chebyshev"
        else (lambda v: fd_derivative(v, x[1] - x[0], 2))
    )
    f = lambda v: (op(v) ** 2).sum() / 2
    torch.func.hessian(f)(torch.sin(x))  # the first transform fills the cache
    g = torch.func.grad(f)(torch.sin(x))  # the second reuses it
    D2 = torch.func.jacrev(op)(torch.sin(x))
    torch.testing.assert_close(g, D2.T @ op(torch.sin(x)))


_U = torch.zeros(8, dtype=torch.float64)


_G = torch.linspace(0.0, 1.0, 8, dtype=torch.float64)


_MESSAGES = [  # (call, exception, the essential words of the message)
    (lambda: fd_derivative([1.0, 2.0], 1.0), TypeError, "values must be a torch\\.Tensor.*list"),
    (
        lambda: chebyshev_derivative(torch.arange(4)),
        ValueError,
        "values must have a real floating dtype \\(float32/float64\\).*torch\\.int64",
    ),
    (
        lambda: fourier_derivative(torch.tensor(1.0)),
        ValueError,
        "values must have at least one axis.*a 0-d tensor",
    ),
    (
        lambda: fd_derivative(torch.tensor([0.0, math.nan, 1.0]), 1.0),
        ValueError,
        "values contains NaN or Inf entries",
    ),
    (
        lambda: fd_derivative(_U, 1.0, order=True),
        ValueError,
        "order must be a non-negative integer.*True",
    ),
    (
        lambda: fd_derivative(_U, 1.0, order=-1),
        ValueError,
        "order must be a non-negative integer.*-1",
    ),
    (
        lambda: fd_derivative(_U, 1.0, accuracy=-2),
        ValueError,
        "accuracy must be a positive even integer.*-2",
    ),
    (
        lambda: fd_derivative(_U, 1.0, accuracy=True),
        ValueError,
        "accuracy must be a positive even integer.*True",
    ),
    (
        lambda: fd_derivative(_U, 1.0, accuracy=1),
        ValueError,
        "accuracy must be a positive even integer.*1",
    ),
    (
        lambda: fd_derivative(_U, 1.0, accuracy=2.0),
        ValueError,
        "accuracy must be a positive even integer.*2\\.0",
    ),
    (
        lambda: fd_derivative(torch.zeros(3, 8), 1.0, axis=1.0),
        ValueError,
        "axis must be an integer in \\[-2, 1\\] for a 2-d tensor.*1\\.0",
    ),
    (
        lambda: fd_derivative(torch.zeros(3, 8), 1.0, axis=-3),
        ValueError,
        "axis must be an integer in \\[-2, 1\\] for a 2-d tensor.*-3",
    ),
    (
        lambda: fd_derivative(torch.zeros(3, 8), 1.0, axis=2),
        ValueError,
        "axis must be an integer in \\[-2, 1\\] for a 2-d tensor.*2",
    ),
    (
        lambda: fd_derivative(_U, 1.0, axis=True),
        ValueError,
        "axis must be an integer in \\[-1, 0\\] for a 1-d tensor.*True",
    ),
    (
        lambda: fd_derivative(_U, 1.0, boundary="wrap"),
        ValueError,
        "boundary must be one of \\('one-sided', 'periodic', 'interior'\\).*'wrap'",
    ),
    (
        lambda: grid_derivatives(_U, [[0.0, 1.0]]),
        TypeError,
        "grid\\[0\\] must be a 1-D torch\\.Tensor of coordinates.*list",
    ),
    (
        lambda: fd_derivative(_U, torch.zeros(7)),
        ValueError,
        "coords_or_spacing must be 1-D with 8 entries to match values.*shape \\(7,\\)",
    ),
    (
        lambda: grid_derivatives(_U, [torch.zeros(2, 4)]),
        ValueError,
        "grid\\[0\\] must be 1-D.*shape \\(2, 4\\)",
    ),
    (
        lambda: grid_derivatives(_U, [torch.arange(8)]),
        ValueError,
        "grid\\[0\\] must have a floating dtype.*torch\\.int64",
    ),
    (
        lambda: grid_derivatives(_U, [torch.tensor([0.0, 1, 2, 3, 4, 5, 6, math.inf])]),
        ValueError,
        "grid\\[0\\] contains NaN or Inf entries",
    ),
    (
        lambda: grid_derivatives(_U, [torch.tensor([math.nan, 1, 2, 3, 4, 5, 6, 7])]),
        ValueError,
        "grid\\[0\\] contains NaN or Inf entries",
    ),
    (
        lambda: grid_derivatives(_U, [_G.flip(0)]),
        ValueError,
        "grid\\[0\\] must be strictly increasing",
    ),
    (
        lambda: grid_derivatives(
            _U, [torch.tensor([0.0, 1, 1, 2, 3, 4, 5, 6])], method="chebyshev"
        ),
        ValueError,
        "grid\\[0\\] must be strictly increasing or strictly decreasing",
    ),
    (
        lambda: chebyshev_grid(True),
        ValueError,
        "n must be an integer >= 2 \\(number of Chebyshev points\\).*True",
    ),
    (
        lambda: chebyshev_grid(3, 1.0, 1.0),
        ValueError,
        "need a < b for the interval \\[a, b\\].*a=1\\.0, b=1\\.0",
    ),
    (lambda: uniform_grid(1, 0.0, 1.0), ValueError, "n must be an integer >= 2.*1"),
    (lambda: uniform_grid(True, 0.0, 1.0), ValueError, "n must be an integer >= 2.*True"),
    (
        lambda: uniform_grid(3, 2.0, 1.0),
        ValueError,
        "need a < b for the interval \\[a, b\\].*a=2\\.0, b=1\\.0",
    ),
    (
        lambda: uniform_grid(3, 1.0, 1.0),
        ValueError,
        "need a < b for the interval \\[a, b\\].*a=1\\.0, b=1\\.0",
    ),
    (lambda: uniform_grid(2.5, 0.0, 1.0), ValueError, "n must be an integer >= 2.*2\\.5"),
    (
        lambda: chebyshev_grid(2.5),
        ValueError,
        "n must be an integer >= 2 \\(number of Chebyshev points\\).*2\\.5",
    ),
    (
        lambda: fd_derivative(_U, _G.flip(0)),
        ValueError,
        "coords_or_spacing must be strictly increasing",
    ),
    (lambda: interior_grid([_G.flip(0)]), ValueError, "grid\\[0\\] must be strictly increasing"),
    (
        lambda: grid_points([torch.tensor([2.0, 1.0, 1.0])]),
        ValueError,
        "grid\\[0\\] must be strictly increasing or strictly decreasing",
    ),
    (
        lambda: grid_points([torch.tensor([0.0, 0.5, -0.5])]),
        ValueError,
        "grid\\[0\\] must be strictly increasing or strictly decreasing",
    ),
    (
        lambda: grid_derivatives(_U, [_G**2], method="fourier"),
        ValueError,
        "grid\\[0\\] must be uniformly spaced for method='fourier'",
    ),
    (
        lambda: grid_derivatives(torch.zeros(1), [torch.zeros(1)], method="chebyshev"),
        ValueError,
        "grid\\[0\\] needs at least 2 Chebyshev points.*1",
    ),
    (
        lambda: grid_derivatives(_U, [_G], method="chebyshev"),
        ValueError,
        "grid\\[0\\] must hold Chebyshev–Gauss–Lobatto points in ascending or descending order",
    ),
    (
        lambda: fd_derivative(_U, -0.5),
        ValueError,
        "coords_or_spacing as a spacing must be a finite number > 0.*-0\\.5",
    ),
    (
        lambda: fd_derivative(_U, math.inf),
        ValueError,
        "coords_or_spacing as a spacing must be a finite number > 0.*inf",
    ),
    (
        lambda: fd_derivative(_U, torch.tensor(0.0)),
        ValueError,
        "coords_or_spacing as a spacing must be a finite number > 0.*0\\.0",
    ),
    (
        lambda: fd_derivative(_U, True),
        ValueError,
        "coords_or_spacing must be a spacing h > 0 or.*True",
    ),
    (
        lambda: fd_derivative(torch.zeros(3), 1.0, order=2, accuracy=2),
        ValueError,
        "values has 3 points along axis 0, but order=2,",
    ),
    (
        lambda: fd_derivative(_U, _G**2, boundary="periodic"),
        ValueError,
        "boundary='periodic' needs uniformly spaced coordinates",
    ),
    (
        lambda: chebyshev_derivative(_U, method="dct"),
        ValueError,
        "method must be one of \\('auto', 'matrix', 'fft'\\).*'dct'",
    ),
    (
        lambda: chebyshev_derivative(_U, domain=(0.0, math.inf)),
        ValueError,
        "domain must be a finite interval \\(a, b\\) with a < b.*\\(0\\.0, inf\\)",
    ),
    (
        lambda: chebyshev_derivative(_U, domain=(1.0, 1.0)),
        ValueError,
        "domain must be a finite interval \\(a, b\\) with a < b.*\\(1\\.0, 1\\.0\\)",
    ),
    (
        lambda: chebyshev_derivative(torch.zeros(3, 1), axis=-1),
        ValueError,
        "values needs at least 2 Chebyshev points along axis 1.*1",
    ),
    (
        lambda: fourier_derivative(_U, period=-1),
        ValueError,
        "period must be a finite number > 0.*-1\\.0",
    ),
    (
        lambda: fourier_derivative(_U, period=math.nan),
        ValueError,
        "period must be a finite number > 0.*nan",
    ),
    (
        lambda: grid_derivatives(_U, [_G], method="spline"),
        ValueError,
        "method must be one of \\('fd', 'chebyshev', 'fourier'\\).*'spline'",
    ),
    (
        lambda: grid_derivatives(torch.zeros(8, 2, 2), [_G]),
        ValueError,
        (
            "values must have shape \\(8,\\) or \\(8,\\) \\+ \\(m,\\) to match grid lengths"
            ".*\\(8, 2, 2\\)"
        ),
    ),
    (
        lambda: grid_derivatives(_U, [_G], method="fourier", boundary="periodic"),
        ValueError,
        "boundary applies to method='fd' only",
    ),
    (
        lambda: grid_derivatives(
            torch.zeros(4), [_G[:4] ** 2], order=2, accuracy=2, boundary="interior"
        ),
        ValueError,
        "grid\\[0\\] has 4 points, but order=2, accuracy=2 with boundary='interior'",
    ),
    (lambda: interior_grid([_G], order=-1), ValueError, "order must be a non-negative integer.*-1"),
    (
        lambda: interior_grid([_G], accuracy=3),
        ValueError,
        "accuracy must be a positive even integer.*3",
    ),
    (lambda: grid_points([]), ValueError, "grid must be a non-empty sequence"),
]


@pytest.mark.usefixtures("double")
@pytest.mark.parametrize(("call", "exc", "pattern"), _MESSAGES, ids=range(len(_MESSAGES)))
def test_error_messages(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.usefixtures("double")
def test_float32_values_keep_their_dtype_under_a_float64_default():
    """Every internal tensor takes the dtype of ``values``, not torch's default (float64 here)."""
    x32 = chebyshev_grid(16, dtype=torch.float32)
    cheb = chebyshev_derivative(torch.sin(x32), 2, method="fft")
    assert cheb.dtype == torch.float32
    torch.testing.assert_close(cheb, -torch.sin(x32), rtol=0, atol=1e-3)
    g32 = (
        torch.linspace(0.0, 1.0, 20, dtype=torch.float32) ** 2
    )  # non-uniform: per-point Fornberg weights
    for boundary in ("one-sided", "interior"):
        out = fd_derivative(g32**3, g32, 1, boundary=boundary, accuracy=4)
        s = 0 if boundary == "one-sided" else fd_half_width(1, 4, uniform=False)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, 3 * g32[s : g32.shape[0] - s] ** 2, rtol=0, atol=1e-4)


@pytest.mark.usefixtures("double")
def test_default_orders():
    x = torch.linspace(0.0, 1.0, 9)
    torch.testing.assert_close(
        fd_derivative(x**2, x[1] - x[0]), 2 * x
    )  # order 1 (exact for quadratics)
    stack = grid_derivatives(x**2, [x])
    assert len(stack) == 2  # (u, Du)
