"""Taylor-mode (jet) forward pass for MLP-like models: exact mixed directional derivatives.

For a chain of ``nn.Linear`` layers and elementwise activations σ, the mixed directional
derivatives of every hidden state along k directions v₁ … v_k are propagated layer by layer
with the activations' explicit derivatives, instead of autograd tangents. Write ``t_A`` for the
mixed derivative of a state along the directions in a subset ``A ⊆ {1..k}`` (``t_{1}`` is the
tangent along v₁, ``t_{1,2}`` the mixed second derivative D²[v₁, v₂], …). Then

    Linear z = W h + b:   t_A(z) = W t_A(h)                      (A ≠ ∅)
    σ elementwise:        t_A(σ(z)) = Σ_{partitions π of A} σ^{(|π|)}(z) · Π_{B ∈ π} t_B(z)

(Faà di Bruno over set partitions). For k = 2 with a = t_{1}, b = t_{2}, c = t_{1,2} of z this
is ``σ''(z)·a·b + σ'(z)·c``. Each subset is one stream of shape (S, B, n) for S direction sets,
so the whole jet costs 2ᵏ − 1 extra batched matrix products per layer, and the parameter
gradient of a loss on the outputs is one ordinary backward through these plain tensor ops
(which keeps double backward and ``torch.func`` transforms working).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models.ensemble import EnsembleLinear
from .models.mlp import MLP, Sine

#: highest derivative order the activation table below provides.
MAX_ORDER = 3

Derivs = list[Tensor | None]  # σ', σ'', σ''' at z (None: identically zero)


def _tanh(m: nn.Module, z: Tensor, y: Tensor, k: int) -> Derivs:
    s1 = 1 - y * y
    s2 = -2 * y * s1 if k > 1 else None
    s3 = -2 * (s1 * s1 + y * s2) if k > 2 else None
    return [s1, s2, s3][:k]


def _sigmoid(m: nn.Module, z: Tensor, y: Tensor, k: int) -> Derivs:
    s1 = y * (1 - y)
    s2 = s1 * (1 - 2 * y) if k > 1 else None
    s3 = s2 * (1 - 2 * y) - 2 * s1 * s1 if k > 2 else None
    return [s1, s2, s3][:k]


def _sine(m: Sine, z: Tensor, y: Tensor, k: int) -> Derivs:
    w = m.w0
    c = w * torch.cos(w * z)
    return [c, -(w * w) * y, -(w * w) * c][:k]


def _softplus(m: nn.Softplus, z: Tensor, y: Tensor, k: int) -> Derivs:
    bz = m.beta * z
    linear = bz > m.threshold  # softplus returns z itself there
    p = torch.sigmoid(bz)
    q = m.beta * p * (1 - p)
    s = [torch.where(linear, 1.0, p), torch.where(linear, 0.0, q)]
    if k > 2:
        s.append(torch.where(linear, 0.0, m.beta * q * (1 - 2 * p)))
    return s[:k]


def _relu(m: nn.Module, z: Tensor, y: Tensor, k: int) -> Derivs:
    return [(z > 0).to(z.dtype)] + [None] * (k - 1)


def _leaky_relu(m: nn.LeakyReLU, z: Tensor, y: Tensor, k: int) -> Derivs:
    return [torch.full_like(z, m.negative_slope).masked_fill(z > 0, 1.0)] + [None] * (k - 1)


def _gelu(m: nn.GELU, z: Tensor, y: Tensor, k: int) -> Derivs:
    phi = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    s = [cdf + z * phi, phi * (2 - z * z)]
    if k > 2:
        s.append(phi * z * (z * z - 4))
    return s[:k]


#: activation module type -> (module, z, σ(z), k) ↦ [σ', …, σ⁽ᵏ⁾] at z.
ACTIVATION_DERIVATIVES: dict[type, Callable[..., Derivs]] = {
    nn.Tanh: _tanh,
    nn.Sigmoid: _sigmoid,
    Sine: _sine,
    nn.Softplus: _softplus,
    nn.ReLU: _relu,
    nn.LeakyReLU: _leaky_relu,
    nn.GELU: _gelu,
}


def _supported(layer: nn.Module) -> bool:
    if isinstance(layer, nn.GELU):
        return layer.approximate == "none"
    return type(layer) in ACTIVATION_DERIVATIVES or type(layer) in (
        nn.Linear,
        EnsembleLinear,
        nn.Identity,
    )


def jet_layers(f: object) -> list[nn.Module] | None:
    """The layer chain of ``f`` if the jet applies to it, else ``None``.

    Applies to an ``nn.Sequential`` (nested ones are flattened), to :class:`sobolev.models.MLP`
    (unless a subclass overrides ``forward``), and to any module with a method
    ``jet_layers() -> Sequence[nn.Module] | None`` whose composition equals its forward (``None``:
    the jet does not apply) — provided every layer is ``nn.Linear``,
    :class:`sobolev.models.ensemble.EnsembleLinear`, ``nn.Identity`` or an activation in
    :data:`ACTIVATION_DERIVATIVES` (GELU only with ``approximate="none"``).
    """
    if isinstance(f, MLP) and type(f).forward is MLP.forward:
        chain: Sequence[nn.Module] = f.net
    elif isinstance(f, nn.Sequential):
        chain = f
    elif isinstance(f, nn.Module) and callable(getattr(f, "jet_layers", None)):
        chain = f.jet_layers()
        if chain is None:
            return None
    else:
        return None
    flat: list[nn.Module] = []
    for layer in chain:
        sub = jet_layers(layer) if isinstance(layer, nn.Sequential) else [layer]
        if sub is None or not all(_supported(s) for s in sub):
            return None
        flat += [s for s in sub if not isinstance(s, nn.Identity)]
    return flat


@cache
def _partitions(mask: int) -> tuple[tuple[int, ...], ...]:
    """Set partitions of the bit set ``mask``, each a tuple of block masks."""
    if mask == 0:
        return ((),)
    low = mask & -mask  # the block holding the lowest element
    rest = mask ^ low
    out = []
    sub = rest
    while True:  # every subset of `rest` joins `low` in its block
        for p in _partitions(rest ^ sub):
            out.append((low | sub,) + p)
        if sub == 0:
            break
        sub = (sub - 1) & rest
    return tuple(out)


def _activate(
    layer: nn.Module, z: Tensor, streams: list[Tensor | None], k: int
) -> tuple[Tensor, list[Tensor | None]]:
    """Jet of σ: value (B, n) and streams (S, B, n) indexed by subset mask − 1 (None: zero)."""
    y = layer(z)
    s = ACTIVATION_DERIVATIVES[type(layer)](layer, z, y, k)
    out: list[Tensor | None] = []
    for mask in range(1, 2**k):
        acc = None
        for blocks in _partitions(mask):
            coef = s[len(blocks) - 1]
            factors = [streams[b - 1] for b in blocks]
            if coef is None or any(t is None for t in factors):
                continue
            prod = factors[0]
            for t in factors[1:]:
                prod = prod * t
            term = coef * prod
            acc = term if acc is None else acc + term
        out.append(acc)
    return y, out


def jet_forward(
    layers: Sequence[nn.Module], x: Tensor, directions: Tensor
) -> tuple[Tensor, list[Tensor | None]]:
    """Value (B, m) and all mixed-derivative streams along ``directions`` (S, k, B, d).

    Stream ``mask − 1`` (shape (S, B, m), ``None`` when identically zero) holds the mixed
    derivative along the directions whose indices are the bits of ``mask``;
    stream ``2ʲ − 2`` is ``Dʲu[v₁, …, vⱼ]``.
    """
    k = directions.shape[1]
    if k > MAX_ORDER:
        raise ValueError(f"the jet supports orders up to {MAX_ORDER}, got {k} directions per set")
    h = x
    streams: list[Tensor | None] = [
        directions[:, i] if mask == 1 << i else None
        for mask in range(1, 2**k)
        for i in [mask.bit_length() - 1]
    ]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            h = F.linear(h, layer.weight, layer.bias)
            streams = [None if t is None else F.linear(t, layer.weight) for t in streams]
        elif isinstance(layer, EnsembleLinear):
            h = layer(h)
            streams = [None if t is None else layer.linear(t) for t in streams]
        else:
            h, streams = _activate(layer, h, streams, k)
    return h, streams


def jet_directional(
    layers: Sequence[nn.Module], x: Tensor, directions: Tensor, order: int
) -> list[Tensor]:
    """``[u, Du[v₁], …, D^order u[v₁, …, v_order]]``: (B, m) then (B, m, S) per order.

    ``x``: (B, d); ``directions``: (S, k ≥ order, B, d); only the first ``order`` are used.
    """
    u, streams = jet_forward(layers, x, directions[:, :order])
    out = [u]
    for j in range(1, order + 1):
        t = streams[2**j - 2]
        out.append(
            u.new_zeros(u.shape + (directions.shape[0],)) if t is None else t.permute(1, 2, 0)
        )
    return out
