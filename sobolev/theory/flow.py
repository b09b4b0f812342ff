"""Gradient flows of the population losses, integrated with SciPy's ``solve_ivp``.

Flows from the same W(0):
* ``part="L"``: dW/dτ = −∇L;  ``part="H"``: dW/dτ = −∇H_λ (true population gradient);
* ``autodiff=True``: dW/dτ = −E[autodiff ∇] (``expected_autodiff_grad``), the mean flow of SGD on
  the empirical loss: for H it lacks the indicator boundary term λ·(∇J − E[autodiff ∇J]).

The −∇J field is discontinuous where a student row is aligned with a teacher row (J has a
cone-shaped kink along w*'s ray): the −∇H flow reaches that ray in finite time and then slides along
it (the kink's pull balances the transverse part of the rest of the gradient). Integrated as is, any
solver chatters across the ray with ever smaller steps. So the flow uses
``population_grad(..., kink_tol)``, whose J-kinks are rounded off over an angle ≈ ``kink_tol`` (the
boundary term is scaled by sin t/kink_tol below it): the field is then Lipschitz but stiff (rate
≈ |w*|/(2π|w| kink_tol)) inside that band, hence the default implicit/automatic-switching
``method="LSODA"``; the trajectory follows the sliding solution up to angles of order kink_tol (the
default 1e-6 gives parameter errors ~1e-8; smaller values make LSODA fail to converge). The L and
autodiff flows are Lipschitz and unaffected.

Parameter error: ‖W − W*_π‖_F/‖W*‖_F minimised over row permutations π (Hungarian matching of the
rows, :func:`scipy.optimize.linear_sum_assignment`); it needs K = K* and is NaN otherwise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import as_pair, check_part
from .population import expected_autodiff_grad, population_grad, population_loss


@dataclass
class FlowResult:
    """A sampled trajectory: times (T,), W (T, K, d), losses and parameter error (T,)."""

    times: np.ndarray
    W: np.ndarray
    loss_L: np.ndarray
    loss_J: np.ndarray
    loss_H: np.ndarray
    param_error: np.ndarray
    nfev: int
    success: bool
    message: str


def parameter_error(W, W_star) -> float:
    """min over row permutations of ‖W − W*_π‖_F / ‖W*‖_F (NaN unless K = K*)."""
    from scipy.optimize import linear_sum_assignment

    W, W_star = (x.detach().numpy() for x in as_pair(W, W_star))
    if W.shape != W_star.shape:
        return math.nan
    cost = ((W[:, None, :] - W_star[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return math.sqrt(cost[rows, cols].sum()) / float(np.linalg.norm(W_star))


def gradient_flow(
    W0,
    W_star,
    part: str = "L",
    lam: float = 1.0,
    t_max: float = 20.0,
    *,
    autodiff: bool = False,
    n_eval: int = 300,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    method: str = "LSODA",
    kink_tol: float = 1e-6,
) -> FlowResult:
    """Integrate dW/dτ = −∇(part) (or −E[autodiff ∇(part)]) on [0, t_max], sampled at n_eval times.

    ``success`` is False when the solver failed or warned (e.g. LSODA convergence failures, seen
    with kink_tol ≲ 1e-8 and loose atol); ``message`` says why.
    Losses recorded are the population L, J and H_λ (same λ) along the trajectory.
    """
    from scipy.integrate import solve_ivp

    lam = check_part(part, lam)
    W0, W_star = as_pair(W0, W_star)
    W0, W_star = W0.detach(), W_star.detach()
    if not (t_max > 0 and math.isfinite(t_max)):
        raise ValueError(f"t_max must be finite and > 0, got {t_max}")
    shape = W0.shape

    def rhs(_: float, y: np.ndarray) -> np.ndarray:
        W = torch.from_numpy(y).reshape(shape)
        if autodiff:
            grad = expected_autodiff_grad(W, W_star, part, lam)
        else:
            grad = population_grad(W, W_star, part, lam, kink_tol=kink_tol)
        return -grad.reshape(-1).numpy()

    times = np.linspace(0.0, t_max, n_eval)
    with warnings.catch_warnings(
        record=True
    ) as caught:  # LSODA reports convergence failures as warnings
        warnings.simplefilter("always")
        sol = solve_ivp(
            rhs,
            (0.0, t_max),
            W0.reshape(-1).numpy(),
            method=method,
            t_eval=times,
            rtol=rtol,
            atol=atol,
        )
    problems = [str(w.message) for w in caught]
    Ws = sol.y.T.reshape(-1, *shape)
    loss_L, loss_J = (np.array([float(population_loss(W, W_star, p)) for W in Ws]) for p in "LJ")
    return FlowResult(
        times=sol.t,
        W=Ws,
        loss_L=loss_L,
        loss_J=loss_J,
        loss_H=loss_L + lam * loss_J,
        param_error=np.array([parameter_error(W, W_star) for W in Ws]),
        nfev=int(sol.nfev),
        success=bool(sol.success) and not problems,
        message="; ".join([str(sol.message), *problems]),
    )


def time_to_tolerance(times, values, tol: float, *, relative: bool = True) -> float:
    """First time at which ``values`` (T,) falls to ``tol`` (times values[0] if ``relative``); inf
    if never.

    Interpolates log(values) linearly between samples (exact for exponential decay).
    """
    times, values = np.asarray(times, dtype=float), np.asarray(values, dtype=float)
    if times.shape != values.shape or times.ndim != 1 or times.size == 0:
        raise ValueError(
            f"times and values must be 1-D of equal length, got {times.shape} and {values.shape}"
        )
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    target = tol * values[0] if relative else tol
    below = np.nonzero(values <= target)[0]
    if below.size == 0:
        return math.inf
    k = int(below[0])
    if k == 0:
        return float(times[0])
    v0, v1 = values[k - 1], values[k]
    if v1 <= 0:
        frac = (v0 - target) / (v0 - v1)
    else:
        frac = (math.log(v0) - math.log(target)) / (math.log(v0) - math.log(v1))
    return float(times[k - 1] + frac * (times[k] - times[k - 1]))
