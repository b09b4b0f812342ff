"""image_losses multipliers: dtypes honoured and values in float64 against a plain-Python formula."""

import math

import pytest
import torch

from sobolev.image_losses import paper_axis_multiplier, sobolev_multiplier


def test_paper_axis_multiplier_values_in_float64():
    n, s = 7, 1.5
    got = paper_axis_multiplier(n, s)
    want = torch.tensor([(1 + (2 * math.pi * k / n) ** 2) ** (s / 2) for k in range(n)], dtype=torch.float64)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-14, atol=0)  # computed in float64, not float32
    assert paper_axis_multiplier(n, s, torch.float32).dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sobolev_multiplier_dtype_and_values(dtype):
    got = sobolev_multiplier(4, 6, 0.5, (0.5, 2.0), dtype=dtype)
    assert got.shape == (4, 6) and got.dtype == dtype
    fy = [0, 1, -2, -1]  # fftfreq(4) × 4
    fx = [0, 1, 2, -3, -2, -1]  # fftfreq(6) × 6
    want = [[(1 + (2 * math.pi * a / (4 * 0.5)) ** 2 + (2 * math.pi * b / (6 * 2.0)) ** 2) ** 0.5 for b in fx] for a in fy]
    torch.testing.assert_close(got, torch.tensor(want, dtype=dtype), rtol=1e-6 if dtype == torch.float32 else 1e-14, atol=0)
