"""sobolev: Sobolev training of neural networks."""
__version__ = "0.1.0"

from .derivatives import DerivativeStack, derivatives, directional_stack, sample_directions
from .losses import SobolevLoss, sobolev_loss
from .metrics import first_reach, heldout_evaluator, stack_errors
from .models import MLP
from .training import History, TrainConfig, TrainingInterrupted, fit, seed_everything

__all__ = [
    "DerivativeStack", "History", "MLP", "SobolevLoss", "TrainConfig", "TrainingInterrupted",
    "derivatives", "directional_stack", "first_reach", "fit", "heldout_evaluator", "sample_directions",
    "seed_everything", "sobolev_loss", "stack_errors",
]
