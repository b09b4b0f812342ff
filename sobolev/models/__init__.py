"""Networks: MLPs with a chosen activation (Sine included), and the image models of the experiments."""

from .mlp import ACTIVATIONS, MLP, Sine

__all__ = ["ACTIVATIONS", "MLP", "Sine"]
