"""Theory of Sobolev training for student–teacher ReLU networks with Gaussian inputs.

Closed-form population losses L, J, H_λ = L + λJ with exact gradients and Hessians
(:mod:`.population`, :mod:`.kernels`), explicit K = 1 Hessians (:mod:`.k1`), Monte-Carlo
estimators of losses and of the per-sample autodiff gradient (:mod:`.monte_carlo`), Hessian
spectra and conditioning (:mod:`.spectra`), and gradient flows (:mod:`.flow`). Everything is
float64; inputs may be tensors, arrays or lists; outputs are torch tensors (NumPy in results of
scans and flows).
"""

from .flow import FlowResult, gradient_flow, parameter_error, time_to_tolerance
from .k1 import hessian_k1_explicit, hessian_k1_quoted
from .kernels import grad_kernel, pair_angles, relu_kernel, step_kernel
from .monte_carlo import monte_carlo_grad, monte_carlo_loss
from .population import (
    expected_autodiff_grad,
    expected_autodiff_jacobian,
    indicator_boundary_term,
    min_pair_sine,
    population_grad,
    population_hessian,
    population_loss,
)
from .spectra import (
    Spectrum,
    SpectrumScan,
    angle_scan,
    distance_scan,
    hessian_spectrum,
    rotated_students,
    spectrum_of,
    spectrum_scan,
)

__all__ = [
    "FlowResult",
    "Spectrum",
    "SpectrumScan",
    "angle_scan",
    "distance_scan",
    "expected_autodiff_grad",
    "expected_autodiff_jacobian",
    "grad_kernel",
    "gradient_flow",
    "hessian_k1_explicit",
    "hessian_k1_quoted",
    "hessian_spectrum",
    "indicator_boundary_term",
    "min_pair_sine",
    "monte_carlo_grad",
    "monte_carlo_loss",
    "pair_angles",
    "parameter_error",
    "population_grad",
    "population_hessian",
    "population_loss",
    "relu_kernel",
    "rotated_students",
    "spectrum_of",
    "spectrum_scan",
    "step_kernel",
    "time_to_tolerance",
]
