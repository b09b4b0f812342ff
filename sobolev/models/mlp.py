"""Networks used by the experiments: MLPs with a chosen activation (Sine included)."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn


class Sine(nn.Module):
    """x ↦ sin(ω₀ x), the SIREN activation."""

    def __init__(self, w0: float = 1.0) -> None:
        super().__init__()
        self.w0 = w0

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.w0 * x)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sine": Sine,
    "softplus": nn.Softplus,
}


class MLP(nn.Module):
    """Fully connected network (B, d_in) → (B, d_out) with ``depth`` hidden layers of ``width``.

    ``activation="sine"`` uses SIREN's ω₀ and initialisation (Sitzmann et al. 2020).
    """

    def __init__(self, d_in: int, d_out: int = 1, width: int = 64, depth: int = 3,
                 activation: str = "tanh", w0: float = 30.0) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be ≥ 1, got depth={depth}, width={width}")
        dims = [d_in] + [width] * depth
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers += [nn.Linear(a, b), Sine(w0 if i == 0 else 1.0) if activation == "sine" else ACTIVATIONS[activation]()]
        layers.append(nn.Linear(dims[-1], d_out))
        self.net = nn.Sequential(*layers)
        if activation == "sine":
            self._siren_init(w0)

    def _siren_init(self, w0: float) -> None:
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, lin in enumerate(linears):
                # first layer feeds sin(ω₀·): U(±1/n); later layers feed sin(·) directly: U(±√(6/n))
                bound = 1.0 / lin.in_features if i == 0 else math.sqrt(6.0 / lin.in_features)
                lin.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
