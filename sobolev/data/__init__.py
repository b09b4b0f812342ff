"""Data: target functions with exact derivatives and samplers; offline image data (Fashion-MNIST
IDX files, the bundled digits, image folders)."""

from .functions import FUNCTIONS, TargetFunction, get_function
from .idx import read_idx
from .images import load_data

__all__ = ["FUNCTIONS", "TargetFunction", "get_function", "load_data", "read_idx"]
