"""Target functions with exact derivatives, and samplers."""

from .functions import FUNCTIONS, TargetFunction, get_function

__all__ = ["FUNCTIONS", "TargetFunction", "get_function"]
