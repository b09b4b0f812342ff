"""sobolev: Sobolev training of neural networks."""

__version__ = "0.1.0"

from . import finance, numdiff
from .curvature import LossHessian, spectrum_edges
from .derivatives import DerivativeStack, derivatives, directional_stack, sample_directions
from .image_losses import ImageSobolevLoss, image_sobolev_loss
from .losses import SobolevLoss, sobolev_loss
from .metrics import first_reach, heldout_evaluator, stack_errors
from .models import MLP, SIREN, FourierFeatureMLP, TwoLayer
from .normalize import Normalizer, Surrogate
from .training import History, TrainConfig, TrainingInterrupted, fit, seed_everything

__all__ = [
    "MLP",
    "SIREN",
    "DerivativeStack",
    "FourierFeatureMLP",
    "History",
    "ImageSobolevLoss",
    "LossHessian",
    "Normalizer",
    "SobolevLoss",
    "Surrogate",
    "TrainConfig",
    "TrainingInterrupted",
    "TwoLayer",
    "derivatives",
    "directional_stack",
    "finance",
    "first_reach",
    "fit",
    "heldout_evaluator",
    "image_sobolev_loss",
    "numdiff",
    "sample_directions",
    "seed_everything",
    "sobolev_loss",
    "spectrum_edges",
    "stack_errors",
]
