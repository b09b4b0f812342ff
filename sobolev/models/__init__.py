"""Networks: MLPs with a chosen activation (Sine/SIREN included), Fourier-feature MLPs, the shallow
student–teacher net, and the image models of the experiments."""

from .conv import ConvAutoencoder, ConvClassifier
from .ensemble import Ensemble, EnsembleLinear, EnsembleMean
from .fourier import FourierFeatureMLP, FourierFeatures
from .mlp import ACTIVATIONS, MLP, SIREN, Sine, TwoLayer
from .unet import UNet

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "SIREN",
    "ConvAutoencoder",
    "ConvClassifier",
    "Ensemble",
    "EnsembleLinear",
    "EnsembleMean",
    "FourierFeatureMLP",
    "FourierFeatures",
    "Sine",
    "TwoLayer",
    "UNet",
]
