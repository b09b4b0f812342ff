"""Torch-native numerical differentiation of gridded values.

Finite differences (any order and accuracy, uniform or non-uniform axes), Chebyshev spectral
(matrix or FFT path) and Fourier spectral derivatives along one axis of batched tensors, and
:func:`grid_derivatives`, which turns values on a tensor-product grid into the derivative stack
``(u, Du, D²u, ...)`` at ``grid_points(grid)`` used as a Sobolev-training target.
"""

from sobolev.numdiff.chebyshev import FFT_MIN_POINTS, chebyshev_derivative, chebyshev_matrix
from sobolev.numdiff.finite_differences import fd_derivative, fd_half_width
from sobolev.numdiff.fourier import fourier_derivative
from sobolev.numdiff.grids import chebyshev_grid, uniform_grid, uniform_spacing
from sobolev.numdiff.stack import grid_derivatives, grid_points, interior_grid
from sobolev.numdiff.stencils import fornberg_weights

__all__ = [
    "FFT_MIN_POINTS",
    "chebyshev_derivative",
    "chebyshev_grid",
    "chebyshev_matrix",
    "fd_derivative",
    "fd_half_width",
    "fornberg_weights",
    "fourier_derivative",
    "grid_derivatives",
    "grid_points",
    "interior_grid",
    "uniform_grid",
    "uniform_spacing",
]
