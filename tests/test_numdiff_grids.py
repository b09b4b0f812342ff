"""Tests of sobolev.numdiff.grids: Chebyshev and uniform grids, the uniform-spacing test and the
Chebyshev-grid check (their tolerances, inclusive)."""

import pytest
import torch

from sobolev.numdiff import (
    chebyshev_derivative,
    chebyshev_grid,
    grid_derivatives,
    uniform_grid,
    uniform_spacing,
)

# -------------------------- details found by mutation testing: defaults, smallest grids, tolerances


@pytest.mark.usefixtures("double")
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


_EPS = 2.0**-52


@pytest.mark.usefixtures("double")
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


@pytest.mark.usefixtures("double")
def test_uniform_spacing_boundary_cases():
    assert uniform_spacing(torch.tensor([0.0, 0.5])) == 0.5  # two points are always uniform
    assert uniform_spacing(torch.tensor([1.0, 2.0, 3.0])) == 1.0  # h = (x_-1 - x_0)/(n - 1)
    assert uniform_spacing(torch.tensor([1.0])) is None
    # a step off by exactly the tolerance counts as uniform ("within")
    h = float.fromhex("0x1.ec60f15ebd332p+0")
    tol = 1e-6 * h + 32 * _EPS * (2 * h)
    assert (h + tol) - h == tol
    assert uniform_spacing(torch.tensor([0.0, h + tol, 2 * h])) == h
    # float32 coordinates: the steps are measured in float64 (in float32 this one rounds past
    # the tolerance)
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


@pytest.mark.usefixtures("double")
def test_chebyshev_grid_tolerance_is_inclusive_and_scales_with_the_interval():
    x = chebyshev_grid(9)  # x[4] = 0 exactly
    tol = 1e3 * _EPS * 2
    ok, off = x.clone(), x.clone()
    ok[4], off[4] = tol, 2001 * _EPS  # exactly the tolerance / half an eps*(b-a) beyond it
    grid_derivatives(torch.zeros(9), [ok], 1, method="chebyshev")
    with pytest.raises(ValueError, match=r"grid\[0\] must hold Chebyshev–Gauss–Lobatto points"):
        grid_derivatives(torch.zeros(9), [off], 1, method="chebyshev")
    # float32 points on [-1000, 1000] are off by ~1e-5: well within 1e3*eps32*2000
    x32 = chebyshev_grid(9, -1000.0, 1000.0, dtype=torch.float32)
    assert float((x32.double() - chebyshev_grid(9, -1000.0, 1000.0)).abs().max()) > 0
    _, du = grid_derivatives(x32 / 1000, [x32], 1, method="chebyshev")
    torch.testing.assert_close(du[:, 0, 0], torch.full((9,), 1e-3, dtype=torch.float32))
