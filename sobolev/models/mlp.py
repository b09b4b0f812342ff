"""Fully connected networks: MLPs with a chosen activation, SIREN, and the shallow
student–teacher net.

All map (B, d_in) → (B, d_out) treating rows independently, so they work with every
:class:`sobolev.SobolevLoss` and with :func:`sobolev.derivatives`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


class Sine(nn.Module):
    """x ↦ sin(ω₀ x), the SIREN activation."""

    def __init__(self, w0: float = 1.0) -> None:
        super().__init__()
        self.w0 = w0

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0}"


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sine": Sine,
    "softplus": nn.Softplus,
}


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")


def _check_sizes(**sizes: int) -> None:
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


class MLP(nn.Module):
    """Fully connected network (B, d_in) → (B, d_out) with ``depth`` hidden layers of ``width``,
    or with hidden layers of the given ``widths`` (e.g. ``widths=[20, 10]``; keyword only, in place
    of ``width`` and ``depth``).

    Non-sine activations keep PyTorch's default ``nn.Linear`` initialisation.
    ``activation="sine"`` is SIREN (Sitzmann et al. 2020): every hidden layer is sin(ω₀(Wx + b));
    first-layer weights U(±1/d_in), later weights (output layer included) U(±√(6/n)/ω₀) for fan-in
    n, so that each hidden pre-activation ω₀Wx has unit variance and the output starts small.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int = 1,
        width: int = 64,
        depth: int = 3,
        activation: str = "tanh",
        w0: float = 30.0,
        *,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        _check_activation(activation)
        _check_sizes(d_in=d_in, d_out=d_out, width=width, depth=depth)
        if not w0 > 0:
            raise ValueError(f"w0 must be positive, got {w0!r}")
        if widths is not None:
            if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
                raise ValueError(
                    f"widths must be a non-empty list of positive integers, got {widths!r}"
                )
            _check_sizes(**{f"widths[{i}]": w for i, w in enumerate(widths)})
            if (width, depth) != (64, 3):
                raise ValueError("pass either widths or width/depth, not both")
        self.activation, self.w0 = activation, float(w0)
        dims = [d_in] + (list(widths) if widths is not None else [width] * depth)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [
                nn.Linear(a, b),
                Sine(w0) if activation == "sine" else ACTIVATIONS[activation](),
            ]
        layers.append(nn.Linear(dims[-1], d_out))
        self.net = nn.Sequential(*layers)
        if activation == "sine":
            self._siren_init()

    def _siren_init(self) -> None:
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, lin in enumerate(linears):
                n = lin.in_features
                bound = 1.0 / n if i == 0 else math.sqrt(6.0 / n) / self.w0
                lin.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SIREN(MLP):
    """SIREN: an :class:`MLP` with sine activations sin(ω₀ ·) and SIREN's initialisation."""

    def __init__(
        self, d_in: int, d_out: int = 1, width: int = 64, depth: int = 3, w0: float = 30.0
    ) -> None:
        super().__init__(d_in, d_out, width, depth, "sine", w0)


class TwoLayer(nn.Module):
    """Shallow student–teacher network g(x) = Σ_i a_i σ(w_i·x), (B, d) → (B, 1), no biases.

    ``W`` (K, d) is trained; its rows are drawn N(0, I/d) (so w_i·x ~ N(0, 1) for x ~ N(0, I)).
    With ``train_output=False`` (the theory's setting) a_i = 1 is a fixed buffer; otherwise ``a``
    is a parameter initialised to 1/√K·(±1). For ``"sine"``, σ = sin (ω₀ = 1).
    """

    def __init__(
        self,
        d_in: int,
        width: int,
        activation: str = "relu",
        *,
        train_output: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_activation(activation)
        _check_sizes(d_in=d_in, width=width)
        self.activation = activation
        self.W = nn.Parameter(torch.randn(width, d_in, generator=generator) / math.sqrt(d_in))
        self.act = Sine(1.0) if activation == "sine" else ACTIVATIONS[activation]()
        if train_output:
            signs = torch.randint(0, 2, (width,), generator=generator) * 2.0 - 1.0
            self.a = nn.Parameter(signs / math.sqrt(width))
        else:
            self.register_buffer("a", torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return (self.act(x @ self.W.T) * self.a).sum(-1, keepdim=True)
