"""The 1-D networks of the official code of arXiv 2509.19773 (``Architecture/model.py``), built from
the library's :class:`MLP` with the official layers and initialisations.

* ``"mlp"`` (official ``StandardModel``): 3 hidden tanh layers, Kaiming-uniform weights;
* ``"fourier"`` (``FourierFeatureModel``): a *trainable* ``Linear(1, width)`` with weights
  N(0, 1) and PyTorch's default bias, then ``sin(2π·)``, then 2 hidden tanh layers and the
  output layer with Xavier-uniform weights;
* ``"siren"`` (``SIRENModel``): 3 hidden layers of plain ``sin`` (no ω₀ = 30), Kaiming-uniform
  weights.

Biases keep PyTorch's default initialisation U(±1/√fan_in) everywhere, as in the official code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .mlp import MLP

PAPER_MODELS = ("mlp", "fourier", "siren")
INITS = ("kaiming_uniform", "xavier_uniform")


def init_linear_weights(module: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise the weight of every ``nn.Linear`` in ``module`` with ``scheme``
    (``"kaiming_uniform"``: ``nn.init.kaiming_uniform_`` with its defaults, bound √(6/fan_in);
    ``"xavier_uniform"``: bound √(6/(fan_in + fan_out))); biases are left as they are.
    Returns ``module``."""
    if scheme not in INITS:
        raise ValueError(f"scheme must be one of {INITS}, got {scheme!r}")
    init = nn.init.kaiming_uniform_ if scheme == "kaiming_uniform" else nn.init.xavier_uniform_
    for m in module.modules():
        if isinstance(m, nn.Linear):
            init(m.weight)
    return module


class TrainableFourierNet(nn.Module):
    """The official Fourier-feature network, (B, d_in) → (B, d_out): ``sin(2π(W x + b))`` with a
    trainable ``W`` (width, d_in) ~ N(0, 1), then an :class:`MLP` with ``depth`` tanh hidden layers
    of ``width`` and Xavier-uniform weights."""

    def __init__(self, d_in: int = 1, d_out: int = 1, width: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.features = nn.Linear(d_in, width)
        nn.init.normal_(self.features.weight, mean=0.0, std=1.0)
        self.mlp = init_linear_weights(MLP(width, d_out, width, depth, "tanh"), "xavier_uniform")

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(torch.sin(2 * math.pi * self.features(x)))


def paper_model(name: str, width: int = 64) -> nn.Module:
    """The official 1-D network ``name`` (one of :data:`PAPER_MODELS`), (B, 1) → (B, 1)."""
    if name == "mlp":
        return init_linear_weights(MLP(1, 1, width, 3, "tanh"), "kaiming_uniform")
    if name == "fourier":
        return TrainableFourierNet(1, 1, width, 2)
    if name == "siren":
        return init_linear_weights(MLP(1, 1, width, 3, "sine", w0=1.0), "kaiming_uniform")
    raise ValueError(f"models must be among {PAPER_MODELS}, got {name!r}")
