"""Derivative stacks on tensor-product grids: the entry point :func:`grid_derivatives`.

A *derivative stack* of order K is the tuple ``(u, Du, D²u, ..., D^K u)`` at the points
``X = grid_points(grid)`` (``meshgrid(..., indexing="ij")`` order, shape ``(N, d)``), with element
``j`` of shape ``(N, m) + (d,)*j``; :func:`grid_derivatives` always returns this tuple, and the
points it holds at are ``grid_points(grid)``, or
``grid_points(interior_grid(grid, order, accuracy))`` for finite differences with
``boundary="interior"``. Element ``j`` is a symmetric tensor: each distinct partial derivative is
computed once, by applying the 1-D operators of orders ``(α_1, ..., α_d)`` along the axes in turn,
and copied to every permutation of its indices.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence

import torch

from sobolev._registry import lookup
from sobolev.numdiff.chebyshev import apply_chebyshev
from sobolev.numdiff.finite_differences import (
    apply_fd,
    fd_half_width,
    fd_points_needed,
    resolve_spacing,
)
from sobolev.numdiff.fourier import apply_fourier
from sobolev.numdiff.grids import check_chebyshev, check_uniform
from sobolev.numdiff.validation import (
    check_accuracy,
    check_boundary,
    check_coords,
    check_order,
    check_values,
)

AxisOperator = Callable[[torch.Tensor, int, int], torch.Tensor]
"""``op(values, order, axis)``: the 1-D derivative along one grid axis."""


def grid_points(grid: Sequence[torch.Tensor]) -> torch.Tensor:
    """All points of the tensor-product grid, shape ``(N, d)``, ``N = prod(len(g))``, ij order
    (axes strictly increasing or strictly decreasing)."""
    grid = _check_grid(grid, descending_ok=True)
    return torch.stack(torch.meshgrid(*grid, indexing="ij"), dim=-1).reshape(-1, len(grid))


def interior_grid(
    grid: Sequence[torch.Tensor], order: int = 1, accuracy: int = 4
) -> list[torch.Tensor]:
    """The coordinates kept by ``grid_derivatives(..., method="fd", boundary="interior")``.

    Along each axis ``fd_half_width(order, accuracy, uniform)`` points are dropped at both ends
    (the central stencil of the highest order, which is also the widest, must fit).
    """
    grid = _check_grid(grid)
    check_order(order)
    check_accuracy(accuracy)
    margins = [_interior_margin(g, order, accuracy) for g in grid]
    return [g[m : g.shape[0] - m] for g, m in zip(grid, margins)]


def grid_derivatives(
    values: torch.Tensor,
    grid: Sequence[torch.Tensor],
    order: int = 1,
    method: str = "fd",
    accuracy: int = 4,
    boundary: str | None = None,
) -> tuple[torch.Tensor, ...]:
    """Derivative stack of gridded values up to ``order``.

    ``values``: shape ``(n_1, ..., n_d)`` or ``(n_1, ..., n_d, m)``; ``grid``: ``d`` 1-D coordinate
    tensors, ``grid[i]`` of length ``n_i``. ``method`` (a key of :data:`METHODS`):

    * ``"fd"``: finite differences with error ``O(h**accuracy)``, uniform or non-uniform axes;
      ``boundary`` ``"one-sided"`` (default), ``"periodic"`` or ``"interior"``;
    * ``"chebyshev"``: each axis must be Chebyshev–Gauss–Lobatto points, ascending
      (:func:`chebyshev_grid`) or descending (Trefethen's ``cos(j*pi/N)``); ``accuracy`` is unused
      and ``boundary`` must be ``None``;
    * ``"fourier"``: each axis uniform and periodic with period ``n_i * h_i``
      (:func:`uniform_grid` with ``periodic=True``); ``accuracy`` unused, ``boundary`` ``None``.

    Returns the stack ``(u, Du, ..., D^order u)``, element ``j`` of shape ``(N, m) + (d,)*j``, at
    the points ``grid_points(grid)``; FD with ``boundary="interior"`` at the points
    ``grid_points(interior_grid(grid, order, accuracy))`` only.
    """
    build = lookup(METHODS, method, "method")
    grid = _check_grid(grid, descending_ok=True)
    check_order(order)
    check_values(values)
    d = len(grid)
    shape = tuple(g.shape[0] for g in grid)
    if values.ndim not in (d, d + 1) or tuple(values.shape[:d]) != shape:
        raise ValueError(
            f"values must have shape {shape} or {shape} + (m,) to match grid lengths, "
            f"got {tuple(values.shape)}"
        )
    values = values if values.ndim == d + 1 else values.unsqueeze(-1)
    op, margins = build(grid, order, accuracy, boundary, method)
    return _derivative_stack(values, op, order, margins)


def _check_grid(grid: Sequence[torch.Tensor], descending_ok: bool = False) -> list[torch.Tensor]:
    if isinstance(grid, torch.Tensor) or not isinstance(grid, Sequence) or len(grid) == 0:
        raise ValueError(
            "grid must be a non-empty sequence (list/tuple) of 1-D coordinate tensors, one per axis"
        )
    return [
        check_coords(g, None, f"grid[{i}]", descending_ok=descending_ok) for i, g in enumerate(grid)
    ]


def _interior_margin(coords: torch.Tensor, order: int, accuracy: int) -> int:
    uniform = isinstance(resolve_spacing(coords, coords.shape[0]), float)
    return fd_half_width(order, accuracy, uniform)


def _no_boundary(boundary: str | None, method: str) -> None:
    if boundary is not None:
        raise ValueError(
            f"boundary applies to method='fd' only; got boundary={boundary!r} with "
            f"method={method!r}"
        )


def _fd_operator(
    grid: list[torch.Tensor], order: int, accuracy: int, boundary: str | None, method: str
) -> tuple[AxisOperator, list[int]]:
    check_accuracy(accuracy)
    boundary = check_boundary("one-sided" if boundary is None else boundary)
    spacings = [resolve_spacing(g, g.shape[0], f"grid[{i}]") for i, g in enumerate(grid)]
    for i, (g, h) in enumerate(zip(grid, spacings)):  # the widest stencil over the orders 1..order
        needed = max(
            (
                fd_points_needed(k, accuracy, isinstance(h, float), boundary)
                for k in range(1, order + 1)
            ),
            default=1,
        )
        if g.shape[0] < needed:
            raise ValueError(
                f"grid[{i}] has {g.shape[0]} points, but order={order}, accuracy={accuracy} with "
                f"boundary={boundary!r} needs at least {needed} per axis"
            )
    if boundary != "interior":
        return functools.partial(_fd_along, spacings, accuracy, boundary), [0] * len(grid)
    margins = [fd_half_width(order, accuracy, isinstance(h, float)) for h in spacings]
    return functools.partial(_fd_interior_along, spacings, accuracy, margins), margins


def _fd_along(
    spacings: list, accuracy: int, boundary: str, v: torch.Tensor, k: int, axis: int
) -> torch.Tensor:
    return apply_fd(v, spacings[axis], k, axis, accuracy, boundary)


def _fd_interior_along(
    spacings: list, accuracy: int, margins: list[int], v: torch.Tensor, k: int, axis: int
) -> torch.Tensor:
    # Derivatives of lower order have narrower stencils: trim them to the common interior.
    out = apply_fd(v, spacings[axis], k, axis, accuracy, "interior")
    extra = margins[axis] - fd_half_width(k, accuracy, isinstance(spacings[axis], float))
    return out.narrow(axis, extra, out.shape[axis] - 2 * extra)


def _chebyshev_operator(
    grid: list[torch.Tensor], order: int, accuracy: int, boundary: str | None, method: str
) -> tuple[AxisOperator, list[int]]:
    _no_boundary(boundary, method)
    checked = [check_chebyshev(g, f"grid[{i}]") for i, g in enumerate(grid)]
    return functools.partial(_chebyshev_along, checked), [0] * len(grid)


def _chebyshev_along(
    checked: list[tuple[float, float, bool]], v: torch.Tensor, k: int, axis: int
) -> torch.Tensor:
    a, b, descending = checked[axis]
    if not descending:
        return apply_chebyshev(v, k, axis, (a, b), "auto")
    # the same derivative, stored reversed
    return apply_chebyshev(v.flip(axis), k, axis, (a, b), "auto").flip(axis)


def _fourier_operator(
    grid: list[torch.Tensor], order: int, accuracy: int, boundary: str | None, method: str
) -> tuple[AxisOperator, list[int]]:
    _no_boundary(boundary, method)
    periods = [
        g.shape[0] * check_uniform(g, f"grid[{i}]", "method='fourier'") for i, g in enumerate(grid)
    ]
    return functools.partial(_fourier_along, periods), [0] * len(grid)


def _fourier_along(periods: list[float], v: torch.Tensor, k: int, axis: int) -> torch.Tensor:
    return apply_fourier(v, k, axis, periods[axis])


OperatorBuilder = Callable[
    [list[torch.Tensor], int, int, "str | None", str], tuple[AxisOperator, list[int]]
]
"""``(grid, order, accuracy, boundary, method) -> (op, margins)``: checks the arguments the method
uses and returns its 1-D operator and the points it drops at each end of every axis."""

#: numerical differentiation methods of :func:`grid_derivatives` by name
METHODS: dict[str, OperatorBuilder] = {
    "fd": _fd_operator,
    "chebyshev": _chebyshev_operator,
    "fourier": _fourier_operator,
}


def _derivative_stack(
    values: torch.Tensor, op: AxisOperator, order: int, margins: list[int]
) -> tuple[torch.Tensor, ...]:
    """Stack from ``values`` of shape ``(n_1, ..., n_d, m)``; ``margins`` trimmed where ``op``
    is unused."""
    d = values.ndim - 1
    cache: dict[tuple[int, ...], torch.Tensor] = {(): values}

    def partial(alpha: tuple[int, ...]) -> torch.Tensor:
        # alpha[i] = derivative order along axis i, applied axis by axis; prefixes are shared.
        if alpha not in cache:
            axis, k = len(alpha) - 1, alpha[-1]
            prev = partial(alpha[:-1])
            if k > 0:
                cache[alpha] = op(prev, k, axis)
            else:
                cache[alpha] = prev.narrow(
                    axis, margins[axis], prev.shape[axis] - 2 * margins[axis]
                )
        return cache[alpha]

    m = values.shape[-1]
    n_points = math.prod(n - 2 * margin for n, margin in zip(values.shape[:d], margins))
    stack = []
    for j in range(order + 1):
        by_index = {
            idx: partial(tuple(idx.count(i) for i in range(d)))
            for idx in itertools.combinations_with_replacement(range(d), j)
        }
        entries = [
            by_index[tuple(sorted(idx))].reshape(n_points, m)
            for idx in itertools.product(range(d), repeat=j)
        ]
        stack.append(torch.stack(entries, dim=-1).reshape(n_points, m, *(d,) * j))
    return tuple(stack)
