"""Fourier spectral derivatives of periodic data on uniform grids (torch, batched, differentiable).

The ``n`` samples are at ``x_j = x_0 + j*period/n`` (the right end of the period left out, as
``uniform_grid(n, a, b, periodic=True)`` makes them). The derivative multiplies the real FFT by
``(i k)^order`` with symmetric wavenumbers ``k = 2*pi*m/period``, ``m = 0..n//2``; for even ``n``
and odd ``order`` the Nyquist mode is set to zero (its derivative is not real-representable).
"""

from __future__ import annotations

import math

import torch

from sobolev.numdiff.validation import check_axis, check_order, check_values


def fourier_derivative(
    values: torch.Tensor, order: int = 1, axis: int = -1, period: float = 2 * math.pi
) -> torch.Tensor:
    """``order``-th derivative along ``axis`` of periodic samples; same shape as ``values``."""
    check_values(values)
    axis = check_axis(axis, values.ndim)
    check_order(order)
    period = float(period)
    if not (math.isfinite(period) and period > 0):
        raise ValueError(f"period must be a finite number > 0, got {period!r}")
    return apply_fourier(values, order, axis, period)


def apply_fourier(values: torch.Tensor, order: int, axis: int, period: float) -> torch.Tensor:
    """:func:`fourier_derivative` on already validated arguments (``axis`` non-negative)."""
    if order == 0:
        return values
    n = values.shape[axis]
    wavenumbers = torch.arange(n // 2 + 1, dtype=values.dtype, device=values.device) * (
        2 * math.pi / period
    )
    multiplier = wavenumbers**order
    if order % 2 == 1 and n % 2 == 0:
        multiplier[-1] = 0.0
    multiplier = multiplier.reshape(-1, *(1,) * (values.ndim - axis - 1))
    spectrum = torch.fft.rfft(values, dim=axis) * multiplier * (1j**order)
    return torch.fft.irfft(spectrum, n=n, dim=axis)
