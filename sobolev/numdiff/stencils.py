"""Finite-difference stencil coefficients (NumPy, float64, cached).

Layout shared by uniform and non-uniform grids, for a grid of ``n`` points:

* points ``s <= i < n - s`` use the central stencil on ``i-s .. i+s`` (``s`` = half width);
* each of the ``s`` points at either edge uses the ``p`` grid points nearest that edge, which
  include the point itself (a one-sided or skewed stencil), ``p`` chosen for the same accuracy.

Uniform grids: coefficients at unit spacing from the Vandermonde system of the integer offsets,
solved in float64 exactly as :func:`findiff.coefficients` solves it (the tests compare the two).
Non-uniform grids: a vectorised Fornberg algorithm over all points at once. Stencil sizes follow
findiff: a non-uniform central stencil has as many points as a one-sided one (no symmetry bonus), so
its half width can exceed the uniform one by one for even derivative orders.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np


class Stencil(NamedTuple):
    """Coefficients of one derivative operator.

    ``center``: shape ``(2s+1,)`` (uniform, unit spacing) or ``(n-2s, 2s+1)`` (non-uniform, per
    interior point). ``left``/``right``: shape ``(s, p)``, rows for the first/last ``s`` points
    acting on the first/last ``p`` grid values.
    """

    center: np.ndarray
    left: np.ndarray
    right: np.ndarray


def stencil_sizes(order: int, accuracy: int, uniform: bool) -> tuple[int, int]:
    """Half width ``s`` of the central stencil and width ``p`` of the edge stencils."""
    central = 2 * ((order + 1) // 2) - 1 + accuracy
    edge = central + 1 if order % 2 == 0 else central
    return (central // 2 if uniform else edge // 2), edge


def offset_weights(order: int, offsets: list[int]) -> np.ndarray:
    """Weights of the ``order``-th derivative at 0 from values at integer ``offsets`` (unit
    spacing): the solution of ``Σ_j w_j o_j^i = order! δ_{i,order}`` for ``i < len(offsets)``."""
    vandermonde = np.array([[o**i for o in offsets] for i in range(len(offsets))], dtype=np.float64)
    rhs = np.zeros(len(offsets))
    rhs[order] = math.factorial(order)
    return np.linalg.solve(vandermonde, rhs)


@lru_cache(maxsize=128)
def uniform_stencil(order: int, accuracy: int) -> Stencil:
    """Unit-spacing stencil for derivative ``order`` with error ``O(h**accuracy)``."""
    s, p = stencil_sizes(order, accuracy, uniform=True)
    center = offset_weights(order, list(range(-s, s + 1)))
    left = np.array([offset_weights(order, list(range(-i, p - i))) for i in range(s)]).reshape(s, p)
    # Right edge is the mirror image: d^k/dx^k picks up (-1)^k under x -> -x.
    right = (-1) ** order * left[::-1, ::-1].copy()
    return Stencil(center, left, right)


def fornberg_weights(z: np.ndarray, x: np.ndarray, order: int) -> np.ndarray:
    """Weights of the ``order``-th derivative at ``z`` from values at nodes ``x`` (Fornberg 1988).

    Vectorised over stencils: ``z`` has shape ``(P,)``, ``x`` shape ``(P, p)``; returns ``(P, p)``.
    """
    num_stencils, p = x.shape
    c = np.zeros((p, order + 1, num_stencils))
    c[0, 0] = 1.0
    c1 = np.ones(num_stencils)
    c4 = x[:, 0] - z
    for i in range(1, p):
        mn = min(i, order)
        c2 = np.ones(num_stencils)
        c5 = c4
        c4 = x[:, i] - z
        for j in range(i):
            c3 = x[:, i] - x[:, j]
            c2 = c2 * c3
            if j == i - 1:
                for k in range(mn, 0, -1):
                    c[i, k] = c1 * (k * c[i - 1, k - 1] - c5 * c[i - 1, k]) / c2
                c[i, 0] = -c1 * c5 * c[i - 1, 0] / c2
            for k in range(mn, 0, -1):
                c[j, k] = (c4 * c[j, k] - k * c[j, k - 1]) / c3
            c[j, 0] = c4 * c[j, 0] / c3
        c1 = c2
    return c[:, order].T.copy()


class GridKey:
    """Float64 coordinates as a cache key: hashed from a strided sample, compared in full.

    Hashing a million coordinates on every call would cost more than the derivative; a sample
    makes hashing O(1), and equality still checks every value, so a hash collision is harmless.
    """

    __slots__ = ("_hash", "coords")

    def __init__(self, coords: np.ndarray) -> None:
        self.coords = coords
        n = coords.shape[0]
        self._hash = hash((n, coords[:: max(1, n // 64)].tobytes(), float(coords[-1])))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GridKey) and np.array_equal(self.coords, other.coords)


@lru_cache(maxsize=16)
def nonuniform_stencil(order: int, accuracy: int, grid: GridKey) -> Stencil:
    """Per-point stencil on the grid with float64 coordinates ``grid.coords``."""
    x = grid.coords
    n = x.shape[0]
    s, p = stencil_sizes(order, accuracy, uniform=False)
    centers = np.arange(s, n - s)
    windows = centers[:, None] + np.arange(-s, s + 1)
    center = fornberg_weights(x[centers], x[windows], order)
    left = fornberg_weights(x[:s], np.broadcast_to(x[:p], (s, p)), order)
    right = fornberg_weights(x[n - s :], np.broadcast_to(x[n - p :], (s, p)), order)
    return Stencil(center, left, right)
