"""1-D grids for numerical differentiation and checks that coordinates fit a method.

Chebyshev–Gauss–Lobatto (CGL) points are returned in **ascending** order, from ``a`` to ``b``:
``x_j = (a + b)/2 - (b - a)/2 * cos(j*pi/N)``, ``j = 0..N``, ``N = n - 1``, which is the reverse of
Trefethen's ``cos(j*pi/N)`` ordering and what ``torch.meshgrid`` users expect; grids in
Trefethen's descending order are accepted as well.
"""

from __future__ import annotations

import math

import torch

from sobolev.numdiff.validation import check_coords


def chebyshev_grid(
    n: int,
    a: float = -1.0,
    b: float = 1.0,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``n`` Chebyshev–Gauss–Lobatto points on ``[a, b]`` in ascending order, shape ``(n,)``.

    Computed as ``sin(pi*(2j - N)/(2N))`` (exactly symmetric about the midpoint) in float64.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (number of Chebyshev points), got {n!r}")
    if not b > a:
        raise ValueError(f"need a < b for the interval [a, b], got a={a}, b={b}")
    big_n = n - 1
    j = torch.arange(n, dtype=torch.float64)
    xi = torch.sin(math.pi * (2 * j - big_n) / (2 * big_n))
    x = 0.5 * (a + b) + 0.5 * (b - a) * xi
    x[0], x[-1] = a, b
    return x.to(dtype=dtype or torch.get_default_dtype(), device=device)


def uniform_grid(
    n: int,
    a: float,
    b: float,
    periodic: bool = False,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` equispaced points on ``[a, b]``, shape ``(n,)``.

    With ``periodic=True`` the right end ``b`` is left out (it duplicates ``a``): spacing
    ``(b - a)/n`` and period ``b - a``, the layout the Fourier method and periodic FD expect.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not b > a:
        raise ValueError(f"need a < b for the interval [a, b], got a={a}, b={b}")
    j = torch.arange(n, dtype=torch.float64)
    x = a + (b - a) * j / (n if periodic else n - 1)
    return x.to(dtype=dtype or torch.get_default_dtype(), device=device)


def uniform_spacing(coords: torch.Tensor) -> float | None:
    """The spacing ``h`` of a strictly increasing 1-D grid if it is uniform, else ``None``.

    Uniform means every step is within ``1e-6*h + 32*eps*max|x|`` of ``h`` (``eps`` of the
    coordinates' dtype), so float32 coordinates from ``linspace`` count as uniform.
    """
    n = coords.shape[0]
    if n < 2:
        return None
    x = coords.detach().to(torch.float64)
    h = float(x[-1] - x[0]) / (n - 1)
    smallest, largest = torch.aminmax(torch.diff(x))
    tol = 1e-6 * h + 32 * torch.finfo(coords.dtype).eps * max(abs(float(x[0])), abs(float(x[-1])))
    return h if max(float(largest) - h, h - float(smallest)) <= tol else None


def check_uniform(coords: torch.Tensor, name: str, method: str) -> float:
    """Return the spacing of a uniform grid or raise ``ValueError`` naming ``method``."""
    check_coords(coords, None, name)
    h = uniform_spacing(coords)
    if h is None:
        raise ValueError(
            f"{name} must be uniformly spaced for {method}; use method='fd' for non-uniform grids"
        )
    return h


def check_chebyshev(coords: torch.Tensor, name: str) -> tuple[float, float, bool]:
    """Return the interval ``(a, b)`` of a CGL grid and whether it is descending (Trefethen's
    ``cos(j*pi/N)`` order), or raise ``ValueError``."""
    check_coords(coords, None, name, descending_ok=True)
    n = coords.shape[0]
    if n < 2:
        raise ValueError(f"{name} needs at least 2 Chebyshev points, got {n}")
    descending = bool(coords[-1] < coords[0])
    ascending = coords.detach().flip(0) if descending else coords.detach()
    a, b = float(ascending[0]), float(ascending[-1])
    expected = chebyshev_grid(n, a, b, dtype=torch.float64)
    tol = 1e3 * torch.finfo(coords.dtype).eps * (b - a)
    if float((ascending.to(torch.float64).cpu() - expected).abs().max()) > tol:
        raise ValueError(
            f"{name} must hold Chebyshev–Gauss–Lobatto points in ascending or descending order "
            f"(see chebyshev_grid(n, a, b)) for method='chebyshev'"
        )
    return a, b, descending
