"""numdiff details mutation testing found unchecked: defaults, smallest grids, dtypes, grid tolerances, method switches, full error messages."""

import math
import re

import numpy as np
import pytest
import torch

from sobolev.numdiff import (
    FFT_MIN_POINTS,
    chebyshev_derivative,
    chebyshev_grid,
    chebyshev_matrix,
    fd_derivative,
    fd_half_width,
    fourier_derivative,
    grid_derivatives,
    grid_points,
    interior_grid,
    uniform_grid,
    uniform_spacing,
)
from sobolev.numdiff.stencils import GridKey

pytestmark = pytest.mark.usefixtures("double")


def test_smallest_grids():
    torch.testing.assert_close(uniform_grid(2, 0.0, 3.0), torch.tensor([0.0, 3.0]))
    torch.testing.assert_close(uniform_grid(2, 0.0, 3.0, periodic=True), torch.tensor([0.0, 1.5]))
    torch.testing.assert_close(chebyshev_grid(2, -1.0, 1.0), torch.tensor([-1.0, 1.0]))
    # two Chebyshev points: the line through them, derivative (u1 − u0)/(b − a)
    torch.testing.assert_close(
        chebyshev_derivative(torch.tensor([1.0, 4.0]), 1, -1, (0.0, 2.0)), torch.tensor([1.5, 1.5])
    )
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


# --- every argument error, message matched in full -----------------------------------------------

_U = torch.zeros(8, dtype=torch.float64)
_G = torch.linspace(0.0, 1.0, 8, dtype=torch.float64)
_MESSAGES = [
    (lambda: fd_derivative([1.0, 2.0], 1.0), "values must be a torch.Tensor, got list"),
    (
        lambda: chebyshev_derivative(torch.arange(4)),
        "values must have a real floating dtype (float32/float64), got torch.int64",
    ),
    (
        lambda: fourier_derivative(torch.tensor(1.0)),
        "values must have at least one axis, got a 0-d tensor",
    ),
    (
        lambda: fd_derivative(torch.tensor([0.0, math.nan, 1.0]), 1.0),
        "values contains NaN or Inf entries",
    ),
    (lambda: fd_derivative(_U, 1.0, order=True), "order must be a non-negative integer, got True"),
    (lambda: fd_derivative(_U, 1.0, order=-1), "order must be a non-negative integer, got -1"),
    (
        lambda: fd_derivative(_U, 1.0, accuracy=-2),
        "accuracy must be a positive even integer, got -2",
    ),
    (
        lambda: fd_derivative(_U, 1.0, accuracy=True),
        "accuracy must be a positive even integer, got True",
    ),
    (lambda: fd_derivative(_U, 1.0, accuracy=1), "accuracy must be a positive even integer, got 1"),
    (
        lambda: fd_derivative(_U, 1.0, accuracy=2.0),
        "accuracy must be a positive even integer, got 2.0",
    ),
    (
        lambda: fd_derivative(torch.zeros(3, 8), 1.0, axis=1.0),
        "axis must be an integer in [-2, 1] for a 2-d tensor, got 1.0",
    ),
    (
        lambda: fd_derivative(torch.zeros(3, 8), 1.0, axis=-3),
        "axis must be an integer in [-2, 1] for a 2-d tensor, got -3",
    ),
    (
        lambda: fd_derivative(torch.zeros(3, 8), 1.0, axis=2),
        "axis must be an integer in [-2, 1] for a 2-d tensor, got 2",
    ),
    (
        lambda: fd_derivative(_U, 1.0, axis=True),
        "axis must be an integer in [-1, 0] for a 1-d tensor, got True",
    ),
    (
        lambda: fd_derivative(_U, 1.0, boundary="wrap"),
        "boundary must be one of ('one-sided', 'periodic', 'interior'), got 'wrap'",
    ),
    (
        lambda: grid_derivatives(_U, [[0.0, 1.0]]),
        "grid[0] must be a 1-D torch.Tensor of coordinates, got list",
    ),
    (
        lambda: fd_derivative(_U, torch.zeros(7)),
        "coords_or_spacing must be 1-D with 8 entries to match values, got shape (7,)",
    ),
    (lambda: grid_derivatives(_U, [torch.zeros(2, 4)]), "grid[0] must be 1-D, got shape (2, 4)"),
    (
        lambda: grid_derivatives(_U, [torch.arange(8)]),
        "grid[0] must have a floating dtype, got torch.int64",
    ),
    (
        lambda: grid_derivatives(_U, [torch.tensor([0.0, 1, 2, 3, 4, 5, 6, math.inf])]),
        "grid[0] contains NaN or Inf entries",
    ),
    (
        lambda: grid_derivatives(_U, [torch.tensor([math.nan, 1, 2, 3, 4, 5, 6, 7])]),
        "grid[0] contains NaN or Inf entries",
    ),
    (lambda: grid_derivatives(_U, [_G.flip(0)]), "grid[0] must be strictly increasing"),
    (
        lambda: grid_derivatives(
            _U, [torch.tensor([0.0, 1, 1, 2, 3, 4, 5, 6])], method="chebyshev"
        ),
        "grid[0] must be strictly increasing or strictly decreasing",
    ),
    (
        lambda: chebyshev_grid(True),
        "n must be an integer >= 2 (number of Chebyshev points), got True",
    ),
    (lambda: chebyshev_grid(3, 1.0, 1.0), "need a < b for the interval [a, b], got a=1.0, b=1.0"),
    (lambda: uniform_grid(1, 0.0, 1.0), "n must be an integer >= 2, got 1"),
    (lambda: uniform_grid(True, 0.0, 1.0), "n must be an integer >= 2, got True"),
    (lambda: uniform_grid(3, 2.0, 1.0), "need a < b for the interval [a, b], got a=2.0, b=1.0"),
    (lambda: uniform_grid(3, 1.0, 1.0), "need a < b for the interval [a, b], got a=1.0, b=1.0"),
    (lambda: uniform_grid(2.5, 0.0, 1.0), "n must be an integer >= 2, got 2.5"),
    (
        lambda: chebyshev_grid(2.5),
        "n must be an integer >= 2 (number of Chebyshev points), got 2.5",
    ),
    (lambda: fd_derivative(_U, _G.flip(0)), "coords_or_spacing must be strictly increasing"),
    (lambda: interior_grid([_G.flip(0)]), "grid[0] must be strictly increasing"),
    (
        lambda: grid_points([torch.tensor([2.0, 1.0, 1.0])]),
        "grid[0] must be strictly increasing or strictly decreasing",
    ),
    (
        lambda: grid_points([torch.tensor([0.0, 0.5, -0.5])]),
        "grid[0] must be strictly increasing or strictly decreasing",
    ),
    (
        lambda: grid_derivatives(_U, [_G**2], method="fourier"),
        "grid[0] must be uniformly spaced for method='fourier'; use method='fd' for non-uniform grids",
    ),
    (
        lambda: grid_derivatives(torch.zeros(1), [torch.zeros(1)], method="chebyshev"),
        "grid[0] needs at least 2 Chebyshev points, got 1",
    ),
    (
        lambda: grid_derivatives(_U, [_G], method="chebyshev"),
        "grid[0] must hold Chebyshev–Gauss–Lobatto points in ascending or descending order "
        "(see chebyshev_grid(n, a, b)) for method='chebyshev'",
    ),
    (
        lambda: fd_derivative(_U, -0.5),
        "coords_or_spacing as a spacing must be a finite number > 0, got -0.5",
    ),
    (
        lambda: fd_derivative(_U, math.inf),
        "coords_or_spacing as a spacing must be a finite number > 0, got inf",
    ),
    (
        lambda: fd_derivative(_U, torch.tensor(0.0)),
        "coords_or_spacing as a spacing must be a finite number > 0, got 0.0",
    ),
    (
        lambda: fd_derivative(_U, True),
        "coords_or_spacing must be a spacing h > 0 or a 1-D tensor of 8 coordinates, got True",
    ),
    (
        lambda: fd_derivative(torch.zeros(3), 1.0, order=2, accuracy=2),
        "values has 3 points along axis 0, but order=2, accuracy=2 with boundary='one-sided' needs at least 4",
    ),
    (
        lambda: fd_derivative(_U, _G**2, boundary="periodic"),
        "boundary='periodic' needs uniformly spaced coordinates",
    ),
    (
        lambda: chebyshev_derivative(_U, method="dct"),
        "method must be one of ('auto', 'matrix', 'fft'), got 'dct'",
    ),
    (
        lambda: chebyshev_derivative(_U, domain=(0.0, math.inf)),
        "domain must be a finite interval (a, b) with a < b, got (0.0, inf)",
    ),
    (
        lambda: chebyshev_derivative(_U, domain=(1.0, 1.0)),
        "domain must be a finite interval (a, b) with a < b, got (1.0, 1.0)",
    ),
    (
        lambda: chebyshev_derivative(torch.zeros(3, 1), axis=-1),
        "values needs at least 2 Chebyshev points along axis 1, got 1",
    ),
    (lambda: fourier_derivative(_U, period=-1), "period must be a finite number > 0, got -1.0"),
    (
        lambda: fourier_derivative(_U, period=math.nan),
        "period must be a finite number > 0, got nan",
    ),
    (
        lambda: grid_derivatives(_U, [_G], method="spline"),
        "method must be one of ('fd', 'chebyshev', 'fourier'), got 'spline'",
    ),
    (
        lambda: grid_derivatives(torch.zeros(8, 2, 2), [_G]),
        "values must have shape (8,) or (8,) + (m,) to match grid lengths, got (8, 2, 2)",
    ),
    (
        lambda: grid_derivatives(_U, [_G], boundary="interior"),
        "boundary='interior' returns derivatives on a smaller grid; pass return_points=True to get the matching "
        "points (or use interior_grid(grid, order, accuracy))",
    ),
    (
        lambda: grid_derivatives(_U, [_G], method="fourier", boundary="periodic"),
        "boundary applies to method='fd' only; got boundary='periodic' with method='fourier'",
    ),
    (
        lambda: grid_derivatives(
            torch.zeros(4),
            [_G[:4] ** 2],
            order=2,
            accuracy=2,
            boundary="interior",
            return_points=True,
        ),
        "grid[0] has 4 points, but order=2, accuracy=2 with boundary='interior' needs at least 5 per axis",
    ),
    (lambda: interior_grid([_G], order=-1), "order must be a non-negative integer, got -1"),
    (lambda: interior_grid([_G], accuracy=3), "accuracy must be a positive even integer, got 3"),
    (
        lambda: grid_points([]),
        "grid must be a non-empty sequence (list/tuple) of 1-D coordinate tensors, one per axis",
    ),
]


@pytest.mark.parametrize(("call", "message"), _MESSAGES, ids=range(len(_MESSAGES)))
def test_error_messages_in_full(call, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call()


# --- dtypes, defaults and the smallest grids each path accepts -----------------------------------


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


def test_fd_half_width_defaults_and_order_zero():
    assert fd_half_width(2, 2) == 1  # default uniform=True: central 3-point stencil
    assert fd_half_width(2, 2, uniform=False) == 2  # non-uniform central stencil has 4+1 points
    assert fd_half_width(0, 2) == fd_half_width(0, 4) == fd_half_width(0, 4, uniform=False) == 0


def test_fourier_default_is_the_first_derivative_and_even_orders_keep_the_nyquist_mode():
    x = uniform_grid(8, 0.0, 2 * math.pi, periodic=True)
    torch.testing.assert_close(fourier_derivative(torch.sin(2 * x)), 2 * torch.cos(2 * x))
    # cos(4x) is the Nyquist mode of 8 points: its even derivatives are exact, 4^k (-1)^(k/2) cos(4x)
    torch.testing.assert_close(fourier_derivative(torch.cos(4 * x), 2), -16 * torch.cos(4 * x))
    torch.testing.assert_close(fourier_derivative(torch.cos(4 * x), 4), 256 * torch.cos(4 * x))


def test_two_point_chebyshev_grids_in_both_orders():
    for grid in (chebyshev_grid(2, 0.0, 2.0), chebyshev_grid(2, 0.0, 2.0).flip(0)):
        (u, du) = grid_derivatives(3 * grid + 1, [grid], 1, method="chebyshev")
        torch.testing.assert_close(du[:, 0, 0], torch.tensor([3.0, 3.0]))


def test_interior_grid_defaults_are_order_1_accuracy_4():
    x = torch.linspace(0.0, 1.0, 12) ** 2  # non-uniform: half width 2 for order 1, 3 for order 2
    (kept,) = interior_grid([x])
    torch.testing.assert_close(kept, x[2:-2])
    assert interior_grid([x], order=2)[0].shape[0] == 6


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
    message = "grid[0] has {} points, but order={}, accuracy=2 with boundary='one-sided' needs at least {} per axis"
    with pytest.raises(ValueError, match=f"^{re.escape(message.format(3, 2, 4))}$"):
        grid_derivatives(x[:3] ** 2, [x[:3]], 2, accuracy=2)
    with pytest.raises(ValueError, match=f"^{re.escape(message.format(2, 1, 3))}$"):
        grid_derivatives(x[:2], [x[:2]], 1, accuracy=2)
    with pytest.raises(ValueError, match=f"^{re.escape(message.format(4, 2, 5))}$"):
        grid_derivatives(x**2, [x**2], 2, accuracy=2)


def test_gridkey_compares_every_coordinate():
    a = np.linspace(0.0, 1.0, 5)
    b = a.copy()
    b[2] += 1e-3
    assert GridKey(a) == GridKey(a.copy()) and hash(GridKey(a)) == hash(GridKey(a.copy()))
    assert GridKey(a) != GridKey(b)
    assert GridKey(a) != a


def test_nonuniform_stencils_of_grids_with_the_same_hash_sample_are_not_mixed_up():
    """128 points: the cache key hashes every second coordinate, so these two grids collide."""
    x = torch.linspace(0.0, 1.0, 128) ** 2
    y = x.clone()
    y[1] = 0.5 * (x[1] + x[2])
    assert hash(GridKey(x.numpy())) == hash(GridKey(y.numpy()))
    torch.testing.assert_close(fd_derivative(x**2, x, 1, accuracy=2), 2 * x)
    torch.testing.assert_close(fd_derivative(y**2, y, 1, accuracy=2), 2 * y)


def test_default_orders():
    x = torch.linspace(0.0, 1.0, 9)
    torch.testing.assert_close(
        fd_derivative(x**2, x[1] - x[0]), 2 * x
    )  # order 1 (exact for quadratics)
    stack = grid_derivatives(x**2, [x])
    assert len(stack) == 2  # (u, Du)


def test_coordinates_whose_step_sum_overflows_are_finite():
    """The fast check sums the steps (3e308 overflows); the exact check must accept the grid."""
    x = torch.tensor([-1.5e308, 0.0, 1.5e308])
    torch.testing.assert_close(grid_points([x]), x[:, None])


# --- uniform_spacing: the tolerance 1e-6*h + 32*eps*max(|x_0|, |x_-1|), inclusive ----------------

_EPS = 2.0**-52


@pytest.mark.parametrize(
    ("x", "uniform"),
    [
        ([0.0, 1 + 1e-6 + 48 * _EPS, 2.0], True),  # within 1e-6 + 64 eps: max|x| is the right end
        ([-2.0, -1 + 1e-6 + 48 * _EPS, 0.0], True),  # ... and here the left end
        ([0.0, 1 + 1e-6 + 65 * _EPS, 2.0], False),  # just outside
    ],
)
def test_uniform_spacing_tolerance(x, uniform):
    assert uniform_spacing(torch.tensor(x)) == (1.0 if uniform else None)


def test_uniform_spacing_boundary_cases():
    assert uniform_spacing(torch.tensor([0.0, 0.5])) == 0.5  # two points are always uniform
    assert uniform_spacing(torch.tensor([1.0, 2.0, 3.0])) == 1.0  # h = (x_-1 - x_0)/(n - 1)
    assert uniform_spacing(torch.tensor([1.0])) is None
    # a step off by exactly the tolerance counts as uniform ("within")
    h = float.fromhex("0x1.ec60f15ebd332p+0")
    tol = 1e-6 * h + 32 * _EPS * (2 * h)
    assert (h + tol) - h == tol
    assert uniform_spacing(torch.tensor([0.0, h + tol, 2 * h])) == h
    # float32 coordinates: the steps are measured in float64 (in float32 this one rounds past the tolerance)
    x = torch.tensor(
        [float.fromhex(v) for v in ("0x1.c417a2p-3", "0x1.90a25ep+1", "0x1.8280c8p+2")],
        dtype=torch.float32,
    )
    assert uniform_spacing(x) == pytest.approx(2.9091809913516045, rel=1e-15)
    d32 = torch.diff(x)
    h32 = float(x[-1] - x[0]) / 2
    assert max(float(d32.max()) - h32, h32 - float(d32.min())) > 1e-6 * h32 + 32 * torch.finfo(
        torch.float32
    ).eps * float(x[-1])


# --- Chebyshev grids: the tolerance 1e3*eps*(b - a), and "auto" is the matrix below FFT_MIN_POINTS -


def test_chebyshev_grid_tolerance_is_inclusive_and_scales_with_the_interval():
    x = chebyshev_grid(9)  # x[4] = 0 exactly
    tol = 1e3 * _EPS * 2
    ok, off = x.clone(), x.clone()
    ok[4], off[4] = tol, 2001 * _EPS  # exactly the tolerance / half an eps*(b-a) beyond it
    grid_derivatives(torch.zeros(9), [ok], 1, method="chebyshev")
    with pytest.raises(ValueError, match=r"^grid\[0\] must hold Chebyshev–Gauss–Lobatto points"):
        grid_derivatives(torch.zeros(9), [off], 1, method="chebyshev")
    # float32 points on [-1000, 1000] are off by ~1e-5: well within 1e3*eps32*2000
    x32 = chebyshev_grid(9, -1000.0, 1000.0, dtype=torch.float32)
    assert float((x32.double() - chebyshev_grid(9, -1000.0, 1000.0)).abs().max()) > 0
    _, du = grid_derivatives(x32 / 1000, [x32], 1, method="chebyshev")
    torch.testing.assert_close(du[:, 0, 0], torch.full((9,), 1e-3, dtype=torch.float32))


def test_auto_chebyshev_is_the_matrix_path_below_fft_min_points():
    """Order 3 on 64 points: the matrix path is the product with chebyshev_matrix (at Trefethen's
    points y = -x mapped, hence the factor (-2/(b - a))**3); the FFT path differs in the 9th digit."""
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


def test_auto_chebyshev_is_the_fft_path_from_fft_min_points_on():
    x = chebyshev_grid(FFT_MIN_POINTS)
    u = torch.sin(2 * x)
    fft = chebyshev_derivative(u, 2, method="fft")
    torch.testing.assert_close(chebyshev_derivative(u, 2), fft, rtol=0, atol=0)
    assert (
        float((chebyshev_derivative(u, 2, method="matrix") - fft).abs().max()) > 1e-6
    )  # a different rounding
    torch.testing.assert_close(fft, -4 * u, rtol=0, atol=1e-3)


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
    message = "values has 4 points along axis 0, but order=2, accuracy=2 with boundary='one-sided' needs at least 5"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fd_derivative(y[:4] ** 2, y[:4], 2, accuracy=2)
