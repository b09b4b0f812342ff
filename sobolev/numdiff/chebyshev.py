"""Chebyshev spectral derivatives on Chebyshev–Gauss–Lobatto points (torch,
batched, differentiable).

Values are expected at the ascending CGL points of :func:`sobolev.numdiff.grids.chebyshev_grid`.
Internally the array is read as samples at Trefethen's descending points ``cos(j*pi/N)`` of
``g(y) = u(-y)``; since ``u^(k)(x) = (-1)^k g^(k)(-x)``, both paths below differentiate in that
convention and multiply by ``(-2/(b-a))**k``.

Two paths, same result up to rounding:

* ``"matrix"``: dense differentiation matrices, built in float64 by the Weideman–Reddy recursion
  (Trefethen's ``cheb`` for order 1 generalised to order k without matrix powers), with
  trigonometric node differences and the negative-sum trick for the diagonal. O(n^2) per line.
* ``"fft"``: Chebyshev coefficients by a DCT-I (real FFT of the even extension), derivative by the
  coefficient recurrence (vectorised as parity-wise reverse cumulative sums), then back by DCT-I.
  O(n log n) per line.

``"auto"`` uses the matrix for ``n < FFT_MIN_POINTS`` and the FFT path from there on.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from sobolev._registry import lookup
from sobolev.numdiff.validation import check_axis, check_order, check_values

FFT_MIN_POINTS = 1024
"""``method="auto"`` switches from the matrix to the FFT path at this many points."""


def chebyshev_derivative(
    values: torch.Tensor,
    order: int = 1,
    axis: int = -1,
    domain: tuple[float, float] = (-1.0, 1.0),
    method: str = "auto",
) -> torch.Tensor:
    """``order``-th derivative along ``axis`` of values at ascending CGL points of ``domain``.

    ``values``: any shape ``(..., n, ...)``, ``n >= 2`` points along ``axis``, other axes batch
    axes. Returns the same shape. ``method``: a key of :data:`CHEBYSHEV_METHODS`, ``"auto"``,
    ``"matrix"`` or ``"fft"``.
    """
    check_values(values)
    axis = check_axis(axis, values.ndim)
    check_order(order)
    lookup(CHEBYSHEV_METHODS, method, "method")
    a, b = (float(t) for t in domain)
    if not (np.isfinite(a) and np.isfinite(b) and b > a):
        raise ValueError(f"domain must be a finite interval (a, b) with a < b, got {domain!r}")
    if values.shape[axis] < 2:
        raise ValueError(
            f"values needs at least 2 Chebyshev points along axis {axis}, got {values.shape[axis]}"
        )
    return apply_chebyshev(values, order, axis, (a, b), method)


def apply_chebyshev(
    values: torch.Tensor, order: int, axis: int, domain: tuple[float, float], method: str
) -> torch.Tensor:
    """:func:`chebyshev_derivative` on already validated arguments (``axis`` non-negative)."""
    if order == 0:
        return values
    scale = (-2.0 / (domain[1] - domain[0])) ** order
    out = CHEBYSHEV_METHODS[method](values.movedim(axis, -1), order)
    return (out * scale).movedim(-1, axis)


def _auto_derivative(lines: torch.Tensor, order: int) -> torch.Tensor:
    """The matrix path below ``FFT_MIN_POINTS`` points, the FFT path from there on."""
    path = _fft_derivative if lines.shape[-1] >= FFT_MIN_POINTS else _matrix_derivative
    return path(lines, order)


def _matrix_derivative(lines: torch.Tensor, order: int) -> torch.Tensor:
    """d^order/dy^order along the last axis by the dense differentiation matrix."""
    n = lines.shape[-1]
    return torch.matmul(lines, _matrix_tensor(n, order, lines.dtype, lines.device).T)


@lru_cache(maxsize=32)
def chebyshev_matrix(n: int, order: int) -> np.ndarray:
    """``(n, n)`` float64 matrix of d^order/dy^order at Trefethen's
    points ``y_j = cos(j*pi/(n-1))``."""
    big_n = n - 1
    theta = np.pi * np.arange(n) / big_n
    # y_i - y_j = 2 sin((t_i + t_j)/2) sin((t_j - t_i)/2): no cancellation near the ends.
    dy = (
        2.0
        * np.sin((theta[:, None] + theta[None, :]) / 2)
        * np.sin((theta[None, :] - theta[:, None]) / 2)
    )
    np.fill_diagonal(dy, 1.0)
    inv_dy = 1.0 / dy
    np.fill_diagonal(inv_dy, 0.0)
    c = np.ones(n)
    c[0] = c[-1] = 2.0
    c *= (-1.0) ** np.arange(n)
    ratio = c[:, None] / c[None, :]
    d = np.eye(n)
    for k in range(1, order + 1):
        d = k * inv_dy * (ratio * np.diag(d)[:, None] - d)
        np.fill_diagonal(d, -d.sum(axis=1))  # negative-sum trick: rows annihilate constants
    return d


def _matrix_tensor(n: int, order: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A fresh tensor of the cached NumPy matrix: a cached tensor created inside one torch.func
    transform would trip the next transform that reuses it."""
    return torch.as_tensor(chebyshev_matrix(n, order), dtype=dtype, device=device)


def _dct1(lines: torch.Tensor) -> torch.Tensor:
    """Unnormalised DCT-I along the last
    axis: ``y_0 + (-1)^j y_N + 2 sum_{k=1}^{N-1} y_k cos(pi jk/N)``."""
    extended = torch.cat([lines, lines[..., 1:-1].flip(-1)], dim=-1)
    return torch.fft.rfft(extended, dim=-1).real


def _fft_derivative(lines: torch.Tensor, order: int) -> torch.Tensor:
    """d^order/dy^order along the last axis of samples at ``cos(j*pi/N)``, via coefficients."""
    n = lines.shape[-1]
    big_n = n - 1
    ends = torch.ones(n, dtype=lines.dtype, device=lines.device)
    ends[0] = ends[-1] = 0.5
    coeffs = _dct1(lines) * (ends / big_n)  # u = sum_k a_k T_k
    k = torch.arange(n, dtype=lines.dtype, device=lines.device)
    first = torch.full((n,), 2.0, dtype=lines.dtype, device=lines.device)
    first[0] = 1.0
    for _ in range(order):
        coeffs = _differentiate_coefficients(coeffs, k, first)
    inner = torch.full((n,), 0.5, dtype=lines.dtype, device=lines.device)
    inner[0] = inner[-1] = 1.0
    return _dct1(coeffs * inner)


def _differentiate_coefficients(
    a: torch.Tensor, k: torch.Tensor, first: torch.Tensor
) -> torch.Tensor:
    """Chebyshev coefficients of u' from those of u (last axis, length n, result's last entry 0).

    ``b_j = (2/c_j) * sum_{p > j, p - j odd} p a_p`` with ``c_0 = 2``: a reverse cumulative sum over
    each parity class, ``t_j = sum_{p >= j, p = j mod 2} p a_p``, then ``b_j = (2/c_j) t_{j+1}``.
    """
    n = a.shape[-1]
    q = torch.nn.functional.pad(a * k, (0, n % 2))
    pairs = q.reshape(*q.shape[:-1], -1, 2)
    t = pairs.flip(-2).cumsum(-2).flip(-2).reshape(q.shape)
    shifted = torch.nn.functional.pad(t[..., 1:n], (0, 1))
    return shifted * first


#: Chebyshev derivative paths by ``method`` name: (lines, order) -> d^order/dy^order along the
#: last axis at Trefethen's points
CHEBYSHEV_METHODS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "auto": _auto_derivative,
    "matrix": _matrix_derivative,
    "fft": _fft_derivative,
}
