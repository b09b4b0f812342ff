"""Ensembles: N networks of one architecture evaluated as one, for training many seeds at once.

An :class:`Ensemble` of N members maps member-major rows ``x`` (N·B, d) to (N·B, m): rows
``[n·B, (n+1)·B)`` go through member n. Rows stay independent, so every derivative routine of
:mod:`sobolev.derivatives` (full, partial, directional; reverse mode, jets, nested ``jvp``)
applies to an ensemble unchanged and gives each member's own derivatives, and a loss summed over
members has each member's own gradient in that member's slice of the stacked parameters.

Two implementations, chosen by :class:`Ensemble` itself:

* ``"layers"``: a chain of ``nn.Linear`` layers and parameter-free elementwise activations (what
  :func:`sobolev.jet.jet_layers` accepts, e.g. :class:`sobolev.models.MLP`) becomes a chain of
  :class:`EnsembleLinear` (one batched matrix product, ``torch.baddbmm``, per layer) and the
  same activations; the Taylor-mode jet applies to it;
* ``"vmap"``: any other module, by ``torch.func.stack_module_state`` and ``functional_call``
  vectorised with ``torch.func.vmap`` over the member axis.

:class:`EnsembleMean` is the members' mean prediction on shared rows (an ensemble of networks as
one model).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

__all__ = ["ENSEMBLE_METHODS", "Ensemble", "EnsembleLinear", "EnsembleMean"]

#: how an :class:`Ensemble` evaluates its members (see the module doc)
ENSEMBLE_METHODS = ("layers", "vmap")


class EnsembleLinear(nn.Module):
    """N independent affine maps on member-major rows: (N·B, in) → (N·B, out).

    ``weight``: (N, out, in) and ``bias``: (N, out) (or ``None``); member n's slices are the
    ``weight`` and ``bias`` of an ``nn.Linear``.
    """

    def __init__(
        self, weight: Tensor, bias: Tensor | None, requires_grad: tuple[bool, bool] = (True, True)
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=requires_grad[0])
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=requires_grad[1])
        self.active: slice | None = None  # the members evaluated, None: all (Ensemble.select)

    def _parts(self) -> tuple[Tensor, Tensor | None]:
        """The weight and bias of the members evaluated (views, without a copy of all)."""
        if self.active is None:
            return self.weight, self.bias
        return self.weight[self.active], None if self.bias is None else self.bias[self.active]

    @property
    def members(self) -> int:
        return self._parts()[0].shape[0]

    def forward(self, x: Tensor) -> Tensor:
        w, b = self._parts()
        n, out, d = w.shape
        if n == 1:  # one member (a pass of one): the plain linear kernel, as a single run has
            return F.linear(x, w[0], None if b is None else b[0])
        xs = x.reshape(n, -1, d)
        wt = w.transpose(1, 2)
        if b is None:
            return (xs @ wt).reshape(-1, out)
        return torch.baddbmm(b.unsqueeze(1), xs, wt).reshape(-1, out)

    def linear(self, t: Tensor) -> Tensor:
        """The linear part (no bias) on (…, N·B, in) → (…, N·B, out), for tangents and jets."""
        w = self._parts()[0]
        n, out, d = w.shape
        if n == 1:
            return F.linear(t, w[0])
        lead = t.shape[:-2]
        y = t.reshape(*lead, n, -1, d) @ w.transpose(1, 2)
        return y.reshape(*lead, -1, out)

    def extra_repr(self) -> str:
        n, out, d = self.weight.shape
        return f"members={n}, in_features={d}, out_features={out}, bias={self.bias is not None}"


def _chain(model: nn.Module) -> list[nn.Module] | None:
    """``model``'s layers if it is a chain the ``"layers"`` method applies to, else ``None``."""
    from ..jet import jet_layers  # jet imports this module's class: a late import, no cycle

    layers = jet_layers(model)
    if layers is None:
        return None
    ok = all(
        isinstance(m, nn.Linear) or not any(True for _ in m.parameters()) for m in layers
    ) and not any(True for _ in model.buffers())
    return layers if ok else None


def _architecture(model: nn.Module) -> list[Any]:
    """What members must share: every submodule's name, type and settings (``extra_repr``), and
    every parameter's and buffer's name, shape, dtype and ``requires_grad``."""
    return [
        [(k, type(m), m.extra_repr()) for k, m in model.named_modules()],
        [(k, v.shape, v.dtype) for k, v in model.state_dict().items()],
        [(k, p.requires_grad) for k, p in model.named_parameters()],
    ]


def _same_architecture(models: Sequence[nn.Module]) -> None:
    first = _architecture(models[0])
    for i, m in enumerate(models[1:], 1):
        if _architecture(m) != first:
            raise ValueError(
                "models must share one architecture (module types and settings, parameter "
                f"names, shapes, dtypes and requires_grad): models[{i}] differs from models[0]"
            )


class Ensemble(nn.Module):
    """N members of one architecture as one module on member-major rows (N·B, d) → (N·B, m).

    Args:
        models: the N ≥ 1 members (their parameters are copied; the models are not changed),
            which differ only in the values of their parameters and buffers (a setting that is
            a plain attribute of a custom module, not in its ``extra_repr``, is not compared:
            the first member's is used).
        method: ``None`` picks ``"layers"`` where it applies, else ``"vmap"``; see
            :data:`ENSEMBLE_METHODS`.

    :meth:`member` returns member n as a standalone module of the original type,
    :meth:`load_members` writes the members' parameters into given modules, and :meth:`select`
    evaluates a range of members only (rows (hi − lo)·B), for passes over groups of members.
    """

    def __init__(self, models: Sequence[nn.Module], method: str | None = None) -> None:
        super().__init__()
        models = list(models)
        if not models or not all(isinstance(m, nn.Module) for m in models):
            raise ValueError("models must be a non-empty sequence of nn.Module")
        _same_architecture(models)
        layers = _chain(models[0])
        if method is None:
            method = "layers" if layers is not None else "vmap"
        if method not in ENSEMBLE_METHODS:
            raise ValueError(f"method must be None or one of {ENSEMBLE_METHODS}, got {method!r}")
        if method == "layers" and layers is None:
            raise ValueError(
                "method='layers' needs a chain of nn.Linear and parameter-free activations "
                "(e.g. sobolev.models.MLP); use method='vmap' for other modules"
            )
        self.method, self.n_members = method, len(models)
        self.active = slice(0, len(models))
        # the template, kept out of the module tree: member() copies it
        self._template = [copy.deepcopy(models[0])]
        if method == "layers":
            chains = [_chain(m) for m in models]
            net: list[nn.Module] = []
            for i, layer in enumerate(layers):
                if isinstance(layer, nn.Linear):
                    w = torch.stack([c[i].weight.detach() for c in chains]).clone()
                    b = (
                        None
                        if layer.bias is None
                        else torch.stack([c[i].bias.detach() for c in chains]).clone()
                    )
                    grads = (
                        layer.weight.requires_grad,
                        layer.bias is not None and layer.bias.requires_grad,
                    )
                    net.append(EnsembleLinear(w, b, grads))
                else:
                    net.append(copy.deepcopy(layer))
            self.net = nn.Sequential(*net)
        else:
            params, buffers = stack_module_state(models)
            grads = {k: p.requires_grad for k, p in models[0].named_parameters()}
            self._names = list(params)
            self._buffer_names = list(buffers)
            self.params = nn.ParameterList(
                [
                    nn.Parameter(params[k].detach().clone(), requires_grad=grads[k])
                    for k in self._names
                ]
            )
            for i, k in enumerate(self._buffer_names):
                self.register_buffer(f"buffer{i}", buffers[k].detach().clone())
            self._base = [copy.deepcopy(models[0]).to("meta")]
        self._layers = [m for m in self.modules() if isinstance(m, EnsembleLinear)]

    @property
    def members(self) -> int:
        """The number of members evaluated: all, or those of :meth:`select`."""
        return self.active.stop - self.active.start

    @contextlib.contextmanager
    def select(self, lo: int, hi: int) -> Iterator[Ensemble]:
        """Within the block, evaluate members ``lo … hi − 1`` only: ``x`` holds their rows,
        (hi − lo)·B; the gradients reach those members' slices of the parameters."""
        if not 0 <= lo < hi <= self.n_members:
            raise ValueError(f"select needs 0 ≤ lo < hi ≤ {self.n_members}, got ({lo}, {hi})")
        old, self.active = self.active, slice(lo, hi)
        for m in self._layers:
            m.active = self.active
        try:
            yield self
        finally:
            self.active = old
            for m in self._layers:
                m.active = None if old == slice(0, self.n_members) else old

    def jet_layers(self) -> list[nn.Module] | None:
        """The layer chain for :mod:`sobolev.jet` (``"layers"`` method; ``None`` for ``"vmap"``)."""
        return list(self.net) if self.method == "layers" else None

    def forward(self, x: Tensor) -> Tensor:
        n = self.members
        if x.ndim < 1 or x.shape[0] % n:
            raise ValueError(
                f"x must have member-major rows (members·batch, …) with members={n}, "
                f"got shape {tuple(x.shape)}"
            )
        if self.method == "layers":
            return self.net(x)
        xs = x.reshape(n, -1, *x.shape[1:])
        a = None if n == self.n_members else self.active
        params = {k: p if a is None else p[a] for k, p in zip(self._names, self.params)}
        buffers = {
            k: b if a is None else b[a]
            for k, b in ((k, getattr(self, f"buffer{i}")) for i, k in enumerate(self._buffer_names))
        }
        base = self._base[0]

        def one(p: dict[str, Tensor], b: dict[str, Tensor], xi: Tensor) -> Tensor:
            return functional_call(base, (p, b), (xi,))

        y = vmap(one)(params, buffers, xs)
        return y.reshape(-1, *y.shape[2:])

    def _member_state(self, n: int) -> dict[str, Tensor]:
        """Member n's state as the template's ``state_dict`` keys."""
        if self.method == "vmap":
            state = {k: p[n] for k, p in zip(self._names, self.params)}
            state |= {k: getattr(self, f"buffer{i}")[n] for i, k in enumerate(self._buffer_names)}
            return state
        keys = [k for k, v in self._template[0].state_dict().items()]
        values = []
        for layer in self.net:
            if isinstance(layer, EnsembleLinear):
                values.append(layer.weight[n])
                if layer.bias is not None:
                    values.append(layer.bias[n])
        return dict(zip(keys, values))

    def load_members(self, modules: Sequence[nn.Module]) -> None:
        """Copy member n's parameters into ``modules[n]`` (modules of the members' architecture)."""
        with torch.no_grad():
            for n, m in enumerate(modules):
                m.load_state_dict({k: v.detach() for k, v in self._member_state(n).items()})

    def member(self, n: int) -> nn.Module:
        """Member ``n`` as a standalone module (a copy: training the ensemble does not change
        it)."""
        if not 0 <= n < self.n_members:
            raise IndexError(f"member {n} of an ensemble of {self.n_members}")
        p = next(self.parameters())
        m = copy.deepcopy(self._template[0]).to(device=p.device, dtype=p.dtype)
        m.load_state_dict({k: v.detach().clone() for k, v in self._member_state(n).items()})
        return m

    def extra_repr(self) -> str:
        return f"members={self.n_members}, method={self.method!r}"


class EnsembleMean(nn.Module):
    """The mean prediction of N networks of one architecture: (B, d) → (B, m).

    Every member sees the same rows (one :class:`Ensemble` pass over the rows repeated per
    member), so derivatives of the mean with respect to ``x`` are the means of the members'
    derivatives. ``models`` are copied, as :class:`Ensemble` copies them.
    """

    def __init__(self, models: Sequence[nn.Module], method: str | None = None) -> None:
        super().__init__()
        self.ensemble = Ensemble(models, method=method)

    def forward(self, x: Tensor) -> Tensor:
        n = self.ensemble.members
        y = self.ensemble(x.repeat(n, *[1] * (x.ndim - 1)))
        return y.reshape(n, x.shape[0], *y.shape[1:]).mean(dim=0)
