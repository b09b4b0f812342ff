"""Derivatives of a model with respect to its inputs: full tensors, directional, selected partials.

A *derivative stack* is the tuple ``(u, Du, D²u, …, Dᵏu)`` of a function ``f: (B, d) -> (B, m)``
evaluated at a batch of points, with batch-first shapes

    u: (B, m),  Du: (B, m, d),  D²u: (B, m, d, d),  …,  Dʲu: (B, m, d, …, d)  (j trailing d axes),

where ``Dʲu[b, c, i₁, …, iⱼ] = ∂ʲu_c / ∂x_{i₁}…∂x_{iⱼ}`` at ``x[b]``.

A *directional* stack replaces each full tensor by contractions with random directions:
``Dʲu[v₁, …, vⱼ]`` of shape (B, m, S) for S independent direction sets, each set holding k
independent directions per sample. For v's ~ N(0, I) independent,
``E (Dʲe[v₁, …, vⱼ])² = ‖Dʲe‖²_F`` at every order j, so a squared error on directional derivatives
is an unbiased estimate of the full Frobenius term at O(S) instead of O(dʲ) cost.

Return types (one per function): :func:`derivatives` always returns a :class:`DerivativeStack`
(full, or directional with ``directions`` set); :func:`partial_derivatives` returns the selected
partials as ``dict[MultiIndex, Tensor]``, each (B, m), keyed by multi-index ``α`` (``(1, 0)`` is
∂/∂x₁); :func:`directional_stack` contracts a full stack into a directional one.

The implementation of a directional stack is chosen per call by :func:`derivative_method`, a key
of :data:`DIRECTIONAL_METHODS`: reverse mode (double backward, Hessian-vector products), a
Taylor-mode jet through MLP-like models (:mod:`sobolev.jet`), or nested ``torch.func.jvp`` as the
general fallback; all give the same numbers. Full stacks use reverse mode.

Functions are assumed to treat the rows of ``x`` independently (no batch norm in training mode),
which is what lets one backward pass of ``sum(u)`` yield every per-sample gradient.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Iterable, Sequence
from typing import Self

import torch
from torch import Tensor, nn
from torch.func import jvp, vmap

from . import jet
from .models.ensemble import EnsembleLinear

__all__ = [
    "DIRECTIONAL_METHODS",
    "DerivativeStack",
    "MultiIndex",
    "derivative_method",
    "derivatives",
    "directional_stack",
    "partial_derivatives",
    "sample_directions",
]

Fn = Callable[[Tensor], Tensor]
MultiIndex = tuple[int, ...]

#: Limits on work that grows exponentially with the order, refused with a ValueError that says
#: the cost (raise them to proceed anyway). Full stacks nest ``order`` reverse-mode passes, each
#: through the graph of the last, which grows about 3× per order (an MLP at order 10: seconds);
#: nested forward mode (``partial_derivatives``, the ``"jvp"`` directional fallback) doubles its
#: passes per order (an MLP at order 8: seconds). The jet (orders ≤ 3) is not limited.
MAX_FULL_ORDER = 10
MAX_NESTED_ORDER = 8
#: the most entries a full stack may hold, B·m·(1 + d + … + dᵏ) (2**28: 2 GiB in float64)
MAX_STACK_ENTRIES = 2**28


class DerivativeStack(tuple):
    """Tuple ``(u, Du, …)`` of derivative tensors; ``directions`` is set for directional stacks.

    ``directions`` has shape (S, k, B, d): S sets of k directions per sample; the order-j entry
    of the stack holds ``Dʲu[v₁, …, vⱼ]`` with the first j directions of each set.
    """

    directions: Tensor | None

    def __new__(cls, tensors: Iterable[Tensor], directions: Tensor | None = None) -> Self:
        self = super().__new__(cls, tuple(tensors))
        self.directions = directions
        return self

    @property
    def order(self) -> int:
        return len(self) - 1

    @property
    def directional(self) -> bool:
        return self.directions is not None

    def detach(self) -> DerivativeStack:
        return DerivativeStack((t.detach() for t in self), self.directions)

    def to(self, *args, **kwargs) -> DerivativeStack:
        v = None if self.directions is None else self.directions.to(*args, **kwargs)
        return DerivativeStack((t.to(*args, **kwargs) for t in self), v)


def check_input(x: Tensor, check_finite: bool) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (batch, d), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (batch, d), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if check_finite and not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf: derivatives need finite points")


def _has_graph(f: Fn, x: Tensor) -> bool:
    """Whether ``f(x)`` can carry a graph worth keeping: ``x`` requires grad, ``f`` is a module with
    trainable parameters, or (other callables) ``f`` of one row of ``x`` requires grad."""
    if x.requires_grad or (
        isinstance(f, nn.Module) and any(p.requires_grad for p in f.parameters())
    ):
        return True
    if x.shape[0] == 0:
        return False
    with torch.enable_grad():
        out = f(x[:1].detach())
    return isinstance(out, Tensor) and out.requires_grad


def _as_2d(u: Tensor, batch: int, name: str = "f") -> Tensor:
    """Bring an output to (B, m): (B,) becomes (B, 1)."""
    if not isinstance(u, Tensor):
        raise TypeError(f"{name}(x) must return a torch.Tensor, got {type(u).__name__}")
    if u.ndim == 1:
        u = u.unsqueeze(-1)
    if u.ndim != 2 or u.shape[0] != batch:
        raise ValueError(
            f"{name}(x) must return shape (batch, m) = ({batch}, m), got {tuple(u.shape)}"
        )
    return u


def sample_directions(
    n_sets: int,
    order: int,
    batch: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Independent standard Gaussian directions of shape (n_sets, order, batch, dim)."""
    if n_sets < 1:
        raise ValueError(f"directions must be a positive number of direction sets, got {n_sets}")
    if generator is not None and device is not None and torch.device(device) != generator.device:
        v = torch.randn(
            n_sets, order, batch, dim, generator=generator, dtype=dtype, device=generator.device
        )
        return v.to(device)
    return torch.randn(n_sets, order, batch, dim, generator=generator, dtype=dtype, device=device)


_NOT_DIFFERENTIABLE = (
    "f(x) does not depend differentiably on x (no autograd path from x to the output): "
    "derivatives need a differentiable torch function of x"
)


def _full_stack(f: Fn, x: Tensor, order: int, create_graph: bool) -> list[Tensor]:
    """Full derivative tensors by repeated reverse mode on the batch sum (backward passes per
    order: :func:`_gradients`); refused beyond :data:`MAX_FULL_ORDER` or
    :data:`MAX_STACK_ENTRIES`."""
    if order > MAX_FULL_ORDER:
        raise ValueError(
            f"order={order} > MAX_FULL_ORDER={MAX_FULL_ORDER}: a full stack nests {order} reverse "
            f"passes whose graphs grow about 3× per order (order {order} ≈ "
            f"{3.0 ** (order - MAX_FULL_ORDER):.3g}× the seconds of order {MAX_FULL_ORDER}); use "
            "a lower order, or raise the module constant sobolev.derivatives.MAX_FULL_ORDER"
        )
    with torch.set_grad_enabled(create_graph or order > 0):
        xg = x if x.requires_grad or order == 0 else x.detach().requires_grad_(True)
        u = _as_2d(f(xg), x.shape[0])
        (B, m), d = u.shape, x.shape[1]
        entries = B * m * sum(d**j for j in range(order + 1))
        if entries > MAX_STACK_ENTRIES:
            raise ValueError(
                f"full derivatives up to order {order} of f at x of shape ({B}, {d}) with "
                f"m={m} outputs hold B·m·(1 + d + … + d^{order}) = {entries:.3g} entries, more "
                f"than MAX_STACK_ENTRIES={MAX_STACK_ENTRIES}: use directions=S (random "
                "directional derivatives) or partial_derivatives for selected partials"
            )
        return _reverse_stack(u, xg, order, create_graph)


def _check_nested(order: int, what: str) -> None:
    if order > MAX_NESTED_ORDER:
        raise ValueError(
            f"{what} of order {order} > MAX_NESTED_ORDER={MAX_NESTED_ORDER} take 2^{order} = "
            f"{2**order} nested forward-mode passes; use a lower order, or raise "
            "the module constant sobolev.derivatives.MAX_NESTED_ORDER"
        )


#: devices where P gradients are taken by a loop of P backward passes rather than one vmapped
#: backward: on CPU the loop measured 0.8–0.96× the vmapped time for full Hessians of MLPs
#: (d = 2…16; benchmarks/bench_overhead.py)
LOOP_BACKWARD_DEVICES = ("cpu",)


def _gradients(t: Tensor, xg: Tensor, keep: bool) -> Tensor | None:
    """Input gradients of the P columns of ``t`` (B, P) w.r.t. ``xg`` (B, d): (B, P, d), ``None``
    when no column depends on ``xg``; one backward of the batch sum per column."""
    B, P = t.shape
    if P == 1:
        (g,) = torch.autograd.grad(t.sum(), xg, create_graph=keep, allow_unused=True)
        return None if g is None else g.unsqueeze(1)
    if t.device.type in LOOP_BACKWARD_DEVICES:
        gs = [
            torch.autograd.grad(
                t[:, i].sum(), xg, create_graph=keep, retain_graph=True, allow_unused=True
            )[0]
            for i in range(P)
        ]
        if gs[0] is None:  # columns of one tensor: all reach x, or none does
            return None
        return torch.stack(gs, 1)
    eye = torch.eye(P, dtype=t.dtype, device=t.device)
    (g,) = torch.autograd.grad(
        t,
        xg,
        grad_outputs=eye[:, None, :].expand(-1, B, -1),
        create_graph=keep,
        allow_unused=True,
        is_grads_batched=True,
    )
    return None if g is None else g.movedim(0, 1)


def _reverse_stack(u: Tensor, xg: Tensor, order: int, create_graph: bool) -> list[Tensor]:
    """``[u, Du, …]`` from ``u = f(xg)`` (B, m) by backward passes over the m·dʲ⁻¹ outputs of each
    order (see :func:`_gradients`)."""
    B, d = xg.shape
    with torch.set_grad_enabled(create_graph or order > 0):
        stack = [u]
        for j in range(1, order + 1):
            t = stack[-1].flatten(1)  # (B, P), P = m·d^(j-1) (also for B = 0)
            keep = create_graph or j < order
            if not t.requires_grad:  # a lower order was constant in x: all higher ones vanish
                if j == 1:
                    raise ValueError(_NOT_DIFFERENTIABLE)
                g = t.new_zeros(B, t.shape[1], d)
            else:
                g = _gradients(t, xg, keep)
            if g is None:
                if j == 1:
                    raise ValueError(_NOT_DIFFERENTIABLE)
                g = t.new_zeros(B, t.shape[1], d)
            stack.append(g.reshape(B, *stack[-1].shape[1:], d))
    if not create_graph:
        stack = [s.detach() for s in stack]
    return stack


def derivative_method(f: Fn, order: int, *, d: int, m: int, n_sets: int | None = None) -> str:
    """Which implementation :func:`derivatives` uses for ``f`` at these sizes (``n_sets=None``:
    full tensors); directional stacks run ``DIRECTIONAL_METHODS[derivative_method(…)]``.

    Costs in passes the size of a forward (the parameter backward multiplies all by about 3):
    ``"reverse"``: backward passes on the batch sum. Full stacks: one backward per m·dʲ⁻¹
    outputs and order (order 1 at m = 1 is one double backward: 2 passes). Order-1 directions
    with S ≥ m sets contract the full gradient (2m passes, any S); order-2 directions at m = 1
    take the gradient, then min(S, d) Hessian-vector products (2 + 2·min(S, d) passes: for
    S ≥ d the full Hessian, contracted with every set).
    ``"jet"``: Taylor-mode forward through an MLP-like chain (:mod:`sobolev.jet`), 1 + S·(2ᵏ − 1)
    passes at order k; used for directional stacks the reverse rules above do not cover
    (m > S at order 1, m > 1 at order 2, order 3). ``"jvp"``: nested ``torch.func.jvp`` vmapped
    over the sets, the fallback for other callables. ``"forward"``: order 0.
    """
    if order == 0:
        return "forward"
    if n_sets is None:
        return "reverse"
    if (order == 1 and m <= n_sets) or (order == 2 and m == 1):
        return "reverse"
    return "jet" if order <= jet.MAX_ORDER and jet.jet_layers(f) is not None else "jvp"


Evaluated = tuple[Tensor, Tensor]
"""``(u, xg)``: ``u = f(xg)`` (B, m) at ``xg``, ``x`` as a tensor that requires grad."""


def _evaluate(f: Fn, x: Tensor, order: int, create_graph: bool) -> Evaluated:
    with torch.set_grad_enabled(create_graph or order > 0):
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        return _as_2d(f(xg), x.shape[0]), xg


def _jet_width(f: Fn, d: int) -> int | None:
    """Output width m of a model the jet applies to (its last ``nn.Linear``; d for a chain of
    activations only), ``None`` for other callables."""
    layers = jet.jet_layers(f)
    if layers is None:
        return None
    last = next((l for l in reversed(layers) if isinstance(l, (nn.Linear, EnsembleLinear))), None)
    if last is None:
        return d
    return last.out_features if isinstance(last, nn.Linear) else last.weight.shape[1]


def _directional_stack(
    f: Fn, x: Tensor, order: int, directions: Tensor, create_graph: bool
) -> list[Tensor]:
    """``[u, Du[v₁], D²u[v₁, v₂], …]``: the order-j entry (B, m, S), by the method chosen for ``f``.

    The width m of a jet-capable model is read from its layers; other callables are evaluated
    once to learn it, and that evaluation is handed on to the method.
    """
    m, evaluated = _jet_width(f, x.shape[1]), None
    if m is None:
        evaluated = _evaluate(f, x, order, create_graph)
        m = evaluated[0].shape[1]
    method = derivative_method(f, order, d=x.shape[1], m=m, n_sets=directions.shape[0])
    if method == "jvp":
        _check_nested(
            order,
            f"directional derivatives by nested forward mode (the jet, for MLP-like chains, "
            f"stops at order {jet.MAX_ORDER})",
        )
    return DIRECTIONAL_METHODS[method](f, x, order, directions, create_graph, evaluated)


def _value_only(
    f: Fn,
    x: Tensor,
    order: int,
    directions: Tensor,
    create_graph: bool,
    evaluated: Evaluated | None,
) -> list[Tensor]:
    """``[u]`` (order 0)."""
    u, _ = evaluated or _evaluate(f, x, order, create_graph)
    return [u if create_graph else u.detach()]


def _reverse_directional(
    f: Fn,
    x: Tensor,
    order: int,
    directions: Tensor,
    create_graph: bool,
    evaluated: Evaluated | None,
) -> list[Tensor]:
    """Order 1: the full gradient contracted with the directions; order 2 (m = 1): Hessian-vector
    products (:func:`_hvp_directional`)."""
    u, xg = evaluated or _evaluate(f, x, order, create_graph)
    if order == 1:
        return list(directional_stack(_reverse_stack(u, xg, 1, create_graph), directions))
    return _hvp_directional(u, xg, directions, create_graph)


def _jet_directional(
    f: Fn,
    x: Tensor,
    order: int,
    directions: Tensor,
    create_graph: bool,
    evaluated: Evaluated | None,
) -> list[Tensor]:
    """Taylor mode through the layer chain of ``f`` (:func:`sobolev.jet.jet_directional`)."""
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        return jet.jet_directional(
            jet.jet_layers(f), x if create_graph else x.detach(), directions, order
        )


def _jvp_stack(
    f: Fn,
    x: Tensor,
    order: int,
    directions: Tensor,
    create_graph: bool,
    evaluated: Evaluated | None,
) -> list[Tensor]:
    """``u`` by one evaluation, the directional derivatives by :func:`_jvp_directional`."""
    u, _ = evaluated or _evaluate(f, x, order, create_graph)
    return [u if create_graph else u.detach()] + _jvp_directional(
        f, x, order, directions, create_graph
    )


DirectionalMethod = Callable[[Fn, Tensor, int, Tensor, bool, "Evaluated | None"], list[Tensor]]
"""``(f, x, order, directions, create_graph, evaluated) -> [u, Du[v₁], …]``; ``evaluated`` is
``f`` already evaluated at ``x`` (:func:`_evaluate`) or ``None``."""

#: directional-stack implementations by the names :func:`derivative_method` returns
DIRECTIONAL_METHODS: dict[str, DirectionalMethod] = {
    "forward": _value_only,
    "reverse": _reverse_directional,
    "jet": _jet_directional,
    "jvp": _jvp_stack,
}


def _hvp_directional(u: Tensor, xg: Tensor, directions: Tensor, create_graph: bool) -> list[Tensor]:
    """``[u, Du[v₁], D²u[v₁, v₂]]`` for m = 1: the gradient by one backward, then min(S, d) more:
    ``H v₁`` per set when S < d, else the d columns ``H eᵢ`` of the full Hessian, contracted with
    every set; shapes (B, 1), (B, 1, S), (B, 1, S)."""
    v1, v2 = directions[:, 0], directions[:, 1]  # (S, B, d)
    S, B, d = v1.shape
    with torch.enable_grad():  # the Hessian-vector products need the gradient's graph
        u, g = _reverse_stack(u, xg, 1, create_graph=True)
        g = g[:, 0]  # (B, d)
        d2 = g.new_zeros(B, S)
        if (
            g.requires_grad
        ):  # one backward per vector (a vmapped backward lacks batching rules for some activations)
            full = S >= d
            vectors = (
                torch.eye(d, dtype=g.dtype, device=g.device)[:, None, :].expand(d, B, d)
                if full
                else v1
            )
            hv = [
                torch.autograd.grad(
                    g,
                    xg,
                    grad_outputs=v,
                    create_graph=create_graph,
                    retain_graph=True,
                    allow_unused=True,
                )[0]
                for v in vectors
            ]
            if hv[0] is not None:  # full: hv[i][b] = H[b] eᵢ, the i-th column (H is symmetric)
                d2 = (
                    torch.einsum("ibj,sbi,sbj->bs", torch.stack(hv), v1, v2)
                    if full
                    else torch.einsum("sbd,sbd->bs", torch.stack(hv), v2)
                )
        stack = [u, torch.einsum("bd,sbd->bs", g, v1).unsqueeze(1), d2.unsqueeze(1)]
    return stack if create_graph else [t.detach() for t in stack]


def _jvp_directional(
    f: Fn, x: Tensor, order: int, directions: Tensor, create_graph: bool
) -> list[Tensor]:
    """``[Du[v₁], D²u[v₁, v₂], …]`` by nested forward mode, vmapped over direction sets."""
    B = x.shape[0]
    xd = x.detach() if not create_graph else x

    def along(vs: Tensor) -> tuple[Tensor, ...]:  # vs: (order, B, d)
        def base(y: Tensor) -> tuple[Tensor, ...]:
            return (_as_2d(f(y), B),)

        F = base
        for j in range(order):
            F = _extend(F, vs[j])
        return F(xd)

    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        outs = vmap(along)(directions[:, :order])  # each (S, B, m)
    return [o.permute(1, 2, 0) for o in outs[1:]]


def _extend(
    F: Callable[[Tensor], tuple[Tensor, ...]], v: Tensor
) -> Callable[[Tensor], tuple[Tensor, ...]]:
    """From y ↦ (D⁰, …, Dʲ) to y ↦ (D⁰, …, Dʲ, Dʲ⁺¹[…, v]) by one forward-mode pass along v."""

    def G(y: Tensor) -> tuple[Tensor, ...]:
        primals, tangents = jvp(F, (y,), (v,))
        return (*primals, tangents[-1])

    return G


def _partial(f: Fn, x: Tensor, alpha: MultiIndex, create_graph: bool) -> Tensor:
    """∂^α f at x, shape (B, m), by |α| nested forward-mode passes along unit vectors."""
    B = x.shape[0]

    def F(y: Tensor) -> Tensor:
        return _as_2d(f(y), B)

    for axis, count in enumerate(alpha):
        e = torch.zeros_like(x)
        e[:, axis] = 1
        for _ in range(count):
            F = functools.partial(_tangent, F, e)
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        return F(x if create_graph else x.detach())


def _tangent(G: Callable[[Tensor], Tensor], v: Tensor, y: Tensor) -> Tensor:
    """The derivative of ``G`` at ``y`` along ``v`` (one forward-mode pass)."""
    return jvp(G, (y,), (v,))[1]


def _check_partials(partials: Sequence[Sequence[int]], d: int) -> list[MultiIndex]:
    out = [tuple(int(i) for i in a) for a in partials]
    if not out:
        raise ValueError("partials must be a non-empty sequence of multi-indices, e.g. [(1, 0)]")
    for a in out:
        if len(a) != d or any(i < 0 for i in a):
            raise ValueError(
                f"partials must be multi-indices of {d} non-negative integers, got {a}"
            )
        _check_nested(sum(a), f"partial derivatives {a}")
    return out


def _keep_graph(f: Fn, x: Tensor, create_graph: bool | None) -> bool:
    """The graph to the parameters is kept only where grad mode is on (see :func:`derivatives`)."""
    if create_graph is None:
        return torch.is_grad_enabled() and _has_graph(f, x)
    return bool(create_graph) and torch.is_grad_enabled()


def derivatives(
    f: Fn,
    x: Tensor,
    order: int = 1,
    *,
    directions: int | Tensor | None = None,
    create_graph: bool | None = None,
    generator: torch.Generator | None = None,
    check_finite: bool = True,
) -> DerivativeStack:
    """Derivative stack ``(u, Du, …, Dᵏu)`` of ``f`` at ``x`` (B, d) up to ``order`` k.

    Args:
        f: callable (an ``nn.Module`` or a torch function) mapping (B, d) to (B, m) or (B,).
        x: points, shape (B, d).
        order: highest derivative order k ≥ 0.
        directions: ``None`` for full tensors (cost O(dʲ) per order j); an int S to draw S sets of
            k independent N(0, I) directions per sample (from ``generator``); or a tensor of
            shape (S, k, B, d) or (S, k, d) (shared over the batch). The order-j entry then has
            shape (B, m, S) and holds ``Dʲu[v₁, …, vⱼ]``.
        create_graph: keep the graph to the parameters (for training). Default: whether grad
            mode is on and ``f`` has something to differentiate: trainable parameters (an
            ``nn.Module``), an ``x`` that requires grad, or (other callables) an output on one
            row of ``x`` that requires grad. So a stack of a parameter-free target function is a
            constant. With ``False`` the results are detached and no graph is retained.
        check_finite: raise ``ValueError`` if ``x`` holds NaN or Inf (skip for points already
            checked).

    Returns:
        A :class:`DerivativeStack` (a tuple; ``directions`` set for a directional stack).
    """
    check_input(x, check_finite)
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    create_graph = _keep_graph(f, x, create_graph)
    if directions is None:
        return DerivativeStack(_full_stack(f, x, order, create_graph))
    V = _resolve_directions(directions, order, x, generator)
    return DerivativeStack(_directional_stack(f, x, order, V, create_graph), V)


def partial_derivatives(
    f: Fn,
    x: Tensor,
    partials: Sequence[Sequence[int]],
    *,
    create_graph: bool | None = None,
    check_finite: bool = True,
) -> dict[MultiIndex, Tensor]:
    """Selected partial derivatives ``{α: ∂^α f(x)}``, each (B, m), for multi-indices ``partials``
    such as ``[(0, 0), (1, 0), (0, 2)]`` (nested forward mode along unit vectors, |α| passes each).

    ``f``, ``x``, ``create_graph`` and ``check_finite`` as for :func:`derivatives`.
    """
    check_input(x, check_finite)
    create_graph = _keep_graph(f, x, create_graph)
    return {a: _partial(f, x, a, create_graph) for a in _check_partials(partials, x.shape[1])}


def _resolve_directions(
    directions: int | Tensor, order: int, x: Tensor, generator: torch.Generator | None
) -> Tensor:
    B, d = x.shape
    if isinstance(directions, bool) or not isinstance(directions, (int, Tensor)):
        raise TypeError(
            f"directions must be None, an int or a Tensor, got {type(directions).__name__}"
        )
    if isinstance(directions, int):
        return sample_directions(
            directions, max(order, 1), B, d, generator=generator, dtype=x.dtype, device=x.device
        )
    V = directions
    if V.ndim == 3:
        V = V.unsqueeze(2).expand(-1, -1, B, -1)
    if V.ndim != 4 or V.shape[1] < order or V.shape[2] != B or V.shape[3] != d:
        raise ValueError(
            f"directions tensor must have shape (S, k≥{order}, B={B}, d={d}) or (S, k, d), "
            f"got {tuple(directions.shape)}"
        )
    return V.to(dtype=x.dtype, device=x.device)


def directional_stack(stack: Sequence[Tensor], directions: Tensor) -> DerivativeStack:
    """Contract a full stack with directions (S, k, B, d): order j becomes (B, m, S).

    Used to compare supplied or numerically estimated full derivative targets with a model's
    directional derivatives along the same directions.
    """
    _, k, B, d = directions.shape
    if len(stack) - 1 > k:
        raise ValueError(
            f"directions hold {k} directions per set but the stack has order {len(stack) - 1}"
        )
    out = [stack[0]]
    letters = [ch for ch in string.ascii_letters if ch not in "bcs"]  # b, c, s are used below
    if len(stack) - 1 > len(letters):
        raise ValueError(
            f"directional_stack contracts orders up to {len(letters)}, got order {len(stack) - 1}"
        )
    for j, D in enumerate(stack[1:], start=1):
        if D.shape != (B, D.shape[1]) + (d,) * j:
            raise ValueError(
                f"stack entry of order {j} must have shape (B, m{', d' * j}) = "
                f"({B}, m{f', {d}' * j}), got {tuple(D.shape)}"
            )
        idx = "".join(letters[:j])
        spec = "bc" + idx + "," + ",".join(f"sb{i}" for i in idx) + "->bcs"
        out.append(torch.einsum(spec, D, *(directions[:, i] for i in range(j))))
    return DerivativeStack(out, directions)
