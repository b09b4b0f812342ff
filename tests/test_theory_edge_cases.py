"""sobolev.theory: options and edge cases: error messages, default arguments, hand-computed K = 1
values, kink rounding, tolerance edge cases, Monte-Carlo standard errors, scans and the solver
bookkeeping of gradient flows.

No ``double`` fixture: the theory code converts every input to float64 itself, and a float64
default dtype would hide a dropped ``dtype=`` (the dtype checks below rely on float32 defaults).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sobolev.theory import (
    angle_scan,
    distance_scan,
    expected_autodiff_grad,
    expected_autodiff_jacobian,
    grad_kernel,
    gradient_flow,
    hessian_k1_explicit,
    hessian_k1_quoted,
    hessian_spectrum,
    indicator_boundary_term,
    min_pair_sine,
    monte_carlo_grad,
    monte_carlo_loss,
    pair_angles,
    parameter_error,
    population_grad,
    population_hessian,
    population_loss,
    relu_kernel,
    rotated_students,
    spectrum_of,
    spectrum_scan,
    step_kernel,
    time_to_tolerance,
)
from sobolev.theory.kernels import DEGENERATE_SINE, orthogonal_direction

F64 = torch.float64
TWO_PI = 2 * math.pi


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def rows(K: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(K, d, dtype=F64, generator=torch.Generator().manual_seed(seed)) / math.sqrt(
        d
    )


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- error messages --------------------------------------------------------------------------

W1, WS1 = [[1.0, 0.0]], [[0.0, 1.0]]
ZERO_ROW = (
    r"the ReLU kernels are not differentiable at w = 0 \(the angle to other rows is undefined\)"
)
DEGENERATE = (
    r"the {} is not defined by this implementation where two distinct rows of W, or a row of W "
    r"and a row of W_star, are aligned or opposite \(min sin\(angle\) = 0\); J has a kink there "
    r"\(its Hessian blows up like 1/sin t\); perturb W"
)
ALIGNED_K1 = (
    r"w and w_star are aligned or opposite \(t ∈ \{0, π\}\): "
    r"the K = 1 Hessian formulas need 0 < t < π"
)

ERRORS = [
    # (call, message regex anchored at both ends)
    (lambda: population_loss([[1, 2], [3, "x"]], WS1), r"W must be a real array, got list"),
    (lambda: population_grad(W1, {"a": 1}), r"W_star must be a real array, got dict"),
    (
        lambda: population_loss(torch.ones(2, 3, 1), WS1),
        r"W must have shape \(K, d\), got shape \(2, 3, 1\)",
    ),
    (
        lambda: population_loss(W1, [1.0, 2.0]),
        r"W_star must have shape \(K, d\), got shape \(2,\)",
    ),
    (
        lambda: hessian_k1_explicit([[1.0, 0.0]], [0.0, 1.0]),
        r"w must have shape \(d,\), got shape \(1, 2\)",
    ),
    (
        lambda: hessian_k1_quoted([1.0, 0.0], [[0.0, 1.0]]),
        r"w_star must have shape \(d,\), got shape \(1, 2\)",
    ),
    (lambda: population_loss(torch.zeros(0, 2), WS1), r"W must be non-empty, got shape \(0, 2\)"),
    (
        lambda: population_loss(W1, np.zeros((2, 0))),
        r"W_star must be non-empty, got shape \(2, 0\)",
    ),
    (lambda: population_loss([[1.0, math.nan]], WS1), r"W must be finite \(no NaN/Inf\)"),
    (lambda: population_grad(W1, [[math.inf, 1.0]]), r"W_star must be finite \(no NaN/Inf\)"),
    (
        lambda: population_loss([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]], WS1),
        r"W has zero row\(s\) \[1, 2\]: " + ZERO_ROW,
    ),
    (
        lambda: expected_autodiff_grad(W1, [[0.0, 0.0], [1.0, 1.0]]),
        r"W_star has zero row\(s\) \[0\]: " + ZERO_ROW,
    ),
    (
        lambda: hessian_k1_explicit([0.0, 0.0], [0.0, 1.0]),
        r"w has zero row\(s\) \[0\]: " + ZERO_ROW,
    ),
    (
        lambda: hessian_k1_explicit([0.0, 1.0], [0.0, 0.0]),
        r"w_star has zero row\(s\) \[0\]: " + ZERO_ROW,
    ),
    (
        lambda: population_hessian(torch.ones(2, 3), torch.ones(1, 4)),
        r"W and W_star must have the same input dimension d, got W \(2, 3\) and W_star \(1, 4\)",
    ),
    (lambda: population_loss(W1, WS1, "K"), r"part must be one of \('L', 'J', 'H'\), got 'K'"),
    (lambda: spectrum_scan([W1], WS1, "h"), r"part must be one of \('L', 'J', 'H'\), got 'h'"),
    (lambda: population_grad(W1, WS1, "H", "abc"), r"lam must be a real number, got 'abc'"),
    (lambda: population_grad(W1, WS1, "H", -1.0), r"lam must be finite and ≥ 0, got -1.0"),
    (
        lambda: hessian_k1_explicit([1.0, 0.0], [0.0, 1.0], "H", math.inf),
        r"lam must be finite and ≥ 0, got inf",
    ),
    (lambda: gradient_flow(W1, WS1, "H", math.nan), r"lam must be finite and ≥ 0, got nan"),
    (lambda: monte_carlo_loss(W1, WS1, 0), r"n must be a positive integer, got 0"),
    (lambda: monte_carlo_loss(W1, WS1, True), r"n must be a positive integer, got True"),
    (lambda: monte_carlo_grad(W1, WS1, 1.5), r"n must be a positive integer, got 1.5"),
    (
        lambda: monte_carlo_grad(W1, WS1, 10, batch_size=0),
        r"batch_size must be a positive integer, got 0",
    ),
    (lambda: gradient_flow(W1, WS1, t_max=-1.0), r"t_max must be finite and > 0, got -1.0"),
    (lambda: gradient_flow(W1, WS1, t_max=0), r"t_max must be finite and > 0, got 0"),
    (lambda: gradient_flow(W1, WS1, t_max=math.inf), r"t_max must be finite and > 0, got inf"),
    (
        lambda: time_to_tolerance([0, 1], [1, 2, 3], 0.1),
        r"times and values must be 1-D of equal length, got \(2,\) and \(3,\)",
    ),
    (
        lambda: time_to_tolerance([[0, 1]], [[1, 2]], 0.1),
        r"times and values must be 1-D of equal length, got \(1, 2\) and \(1, 2\)",
    ),
    (
        lambda: time_to_tolerance([], [], 0.1),
        r"times and values must be 1-D of equal length, got \(0,\) and \(0,\)",
    ),
    (lambda: time_to_tolerance([0, 1], [1, 0.5], 0), r"tol must be > 0, got 0"),
    (lambda: time_to_tolerance([0, 1], [1, 0.5], -0.5), r"tol must be > 0, got -0.5"),
    (
        lambda: hessian_k1_explicit([1.0, 0.0, 0.0], [0.0, 1.0]),
        r"w and w_star must have the same shape \(d,\), got \(3,\) and \(2,\)",
    ),
    (lambda: hessian_k1_explicit([1.0, 0.0], [2.0, 0.0], "J"), ALIGNED_K1),
    (lambda: hessian_k1_quoted([1.0, 0.0], [-2.0, 0.0], "H"), ALIGNED_K1),
    (lambda: hessian_k1_quoted([1.0, 0.0], [0.0, 1.0], "J"), r"part must be 'L' or 'H', got 'J'"),
    (lambda: population_hessian(W1, [[2.0, 0.0]]), DEGENERATE.format("Hessian")),
    (lambda: hessian_spectrum([[1.0, 0.0], [3.0, 0.0]], WS1, "J"), DEGENERATE.format("Hessian")),
    (
        lambda: expected_autodiff_jacobian(W1, [[0.0, 1.0], [0.5, 0.0]]),
        DEGENERATE.format("Jacobian"),
    ),
    (
        lambda: rotated_students(WS1, 0.3, directions=[[1.0, 0.0, 0.0]]),
        r"directions must have shape \(1, 2\), got \(1, 3\)",
    ),
    (
        lambda: angle_scan(WS1, [0.3], directions=[[math.nan, 1.0]]),
        r"directions must be finite \(no NaN/Inf\)",
    ),
    (lambda: rotated_students([[0.0, 0.0]], 0.3), r"W_star has zero row\(s\) \[0\]: " + ZERO_ROW),
    (lambda: angle_scan([[1.0, math.inf]], [0.3]), r"W_star must be finite \(no NaN/Inf\)"),
    (
        lambda: distance_scan([1.0, 2.0], [0.3]),
        r"W_star must have shape \(K, d\), got shape \(2,\)",
    ),
    # a direction along the teacher row has no orthogonal component to normalise
    (
        lambda: distance_scan([[1.0, 0.0, 0.0]], [1.0], directions=[[2.0, 0.0, 0.0]]),
        (
            r"directions rows \[0\] are parallel to their W_star rows: "
            r"no component ⊥ W_star to rotate towards"
        ),
    ),
]


@pytest.mark.parametrize("call,message", ERRORS)
def test_a_bad_input_is_one_line_naming_the_argument_and_its_expectation(call, message):
    with pytest.raises(ValueError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


def test_lowest_valid_options_are_accepted():
    """n = batch_size = 1, NumPy integers and lam = 0 are valid (the checks are ≥ 1 and ≥ 0)."""
    W, W_star = rows(2, 3, 1), rows(1, 3, 2)
    mean, err = monte_carlo_loss(W, W_star, np.int64(1), "H", 0, generator=gen(3), batch_size=1)
    assert math.isfinite(mean) and err == 0.0  # one sample: no spread
    # lam = 0 and lam = 0.5 (below 1) weight J by exactly that
    L, J = (float(population_loss(W, W_star, p)) for p in "LJ")
    assert float(population_loss(W, W_star, "H", 0)) == pytest.approx(L, rel=1e-15)
    assert float(population_loss(W, W_star, "H", 0.5)) == pytest.approx(L + 0.5 * J, rel=1e-14)


# ---- inputs: types and dtypes ----------------------------------------------------------------


def test_inputs_of_any_real_type_give_float64():
    """Integer lists, float32 tensors and NumPy arrays are all computed in float64."""
    W_list, W_star = [[1, 0], [0, 2]], [[1, 1]]
    as_f32 = torch.tensor(W_list, dtype=torch.float32)
    ref = population_loss(torch.tensor(W_list, dtype=F64), t64(W_star), "H", 0.5)
    for W in (W_list, as_f32, np.array(W_list)):
        out = population_loss(W, W_star, "H", 0.5)
        assert out.dtype == F64
        assert float(out) == float(ref)
        assert population_grad(W, W_star, "J").dtype == F64
    assert population_hessian(as_f32, W_star).dtype == F64
    assert hessian_k1_explicit(torch.tensor([1.0, 0.0]), [1, 1], "H").dtype == F64


# ---- closed forms by hand (K = 1, d = 2) -----------------------------------------------------


def test_k1_losses_by_hand_and_defaults():
    """w = e1, w* = e2 (t = π/2): k(w, w*) = 1/(2π), m(w, w*) = 0, so L = (1 − 1/π)/2, J = 1/2."""
    w, w_star = [[1.0, 0.0]], [[0.0, 1.0]]
    L, J = 0.5 * (1 - 1 / math.pi), 0.5
    assert float(population_loss(w, w_star)) == pytest.approx(L, rel=1e-14)  # default part "L"
    assert float(population_loss(w, w_star, "J")) == pytest.approx(J, rel=1e-14)
    assert float(population_loss(w, w_star, "H")) == pytest.approx(
        L + J, rel=1e-14
    )  # default lam = 1
    assert float(population_loss(w, w_star, "H", 3.0)) == pytest.approx(L + 3 * J, rel=1e-14)


def test_one_dimensional_inputs():
    """d = 1 (single-entry W): w = 2, w* = 1 are aligned, σ(2x) − σ(x) = σ(x) and ∇_x difference
    1(x > 0), so L = E[σ(x)²]/2 = 1/4 and J = P(x > 0)/2 = 1/4."""
    assert float(population_loss([[2.0]], [[1.0]])) == pytest.approx(0.25, rel=1e-15)
    assert float(population_loss([[2.0]], [[1.0]], "J")) == pytest.approx(0.25, rel=1e-15)
    torch.testing.assert_close(
        population_grad([[2.0]], [[1.0]], "H"), t64([[1.0]]), rtol=1e-15, atol=0
    )


def test_k1_gradients_by_hand_and_defaults():
    """w = e1, w* = (1, 1) (t = π/4, |w*| = √2), with ∇k = [(π − t) w* + |w*| sin t ŵ]/(2π) and
    E[autodiff ∇m] = (π − t) w*/(2π): ∇L = (1/8 − 1/(2π), −3/8), E[autodiff ∇J] = (1/8, −3/8), and
    the boundary term −(w·w*)/(2π|w|) e = (0, −1/(2π))."""
    w, w_star = [[1.0, 0.0]], [[1.0, 1.0]]
    grad_L, auto_J, bdry = (
        t64([[1 / 8 - 1 / TWO_PI, -3 / 8]]),
        t64([[1 / 8, -3 / 8]]),
        t64([[0.0, -1 / TWO_PI]]),
    )
    close = dict(rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(population_grad(w, w_star), grad_L, **close)  # default "L"
    torch.testing.assert_close(population_grad(w, w_star, "J"), auto_J + bdry, **close)
    torch.testing.assert_close(
        population_grad(w, w_star, "H"), grad_L + auto_J + bdry, **close
    )  # lam = 1
    torch.testing.assert_close(
        population_grad(w, w_star, "H", 0.5), grad_L + 0.5 * (auto_J + bdry), **close
    )
    torch.testing.assert_close(expected_autodiff_grad(w, w_star), grad_L, **close)
    torch.testing.assert_close(expected_autodiff_grad(w, w_star, "J"), auto_J, **close)
    torch.testing.assert_close(expected_autodiff_grad(w, w_star, "H"), grad_L + auto_J, **close)
    torch.testing.assert_close(
        expected_autodiff_grad(w, w_star, "H", 2.0), grad_L + 2 * auto_J, **close
    )
    torch.testing.assert_close(indicator_boundary_term(w, w_star), bdry, **close)


def test_gradients_at_aligned_and_opposite_rows():
    """At t = 0 or π the boundary term is the minimal-norm subgradient 0: ∇J = E[autodiff ∇J]
    = w/2 − (π − t) w*/(2π), i.e. w/2 − w*/2 (aligned) and w/2 (opposite)."""
    w = [[1.0, 0.0]]
    for w_star, want in (([[2.0, 0.0]], [[-0.5, 0.0]]), ([[-2.0, 0.0]], [[0.5, 0.0]])):
        torch.testing.assert_close(
            indicator_boundary_term(w, w_star), t64([[0.0, 0.0]]), rtol=0, atol=0
        )
        for part in "LJ":
            torch.testing.assert_close(
                population_grad(w, w_star, part), t64(want), rtol=1e-14, atol=1e-15
            )
    # two aligned students (and a teacher at 90°): the student–student boundary terms vanish too
    W, W_star = [[1.0, 0.0], [3.0, 0.0]], [[0.0, 1.0]]
    torch.testing.assert_close(
        indicator_boundary_term(W, W_star), t64([[0.0, 0.0], [0.0, 0.0]]), rtol=0, atol=1e-17
    )


@pytest.mark.parametrize("tol", [0.5, 0.25])
def test_kink_rounding_scales_the_boundary_term(tol):
    """Below sin t = kink_tol the boundary term is scaled by sin t/kink_tol; above it is exact.
    K = 1: −(w·w*)/(2π|w|) · (0, 1) · min(1, sin t/kink_tol) for w = 2e1, w* = 3(cos t, sin t)."""
    w = [[2.0, 0.0]]
    for t in (0.1, 0.2, 1.0):
        w_star = [[3 * math.cos(t), 3 * math.sin(t)]]
        scale = min(1.0, math.sin(t) / tol)
        want = t64([[0.0, -3 * math.cos(t) / TWO_PI * scale]])
        torch.testing.assert_close(
            indicator_boundary_term(w, w_star, kink_tol=tol), want, rtol=1e-12, atol=1e-15
        )
        torch.testing.assert_close(
            population_grad(w, w_star, "H", 2.0, kink_tol=tol),
            expected_autodiff_grad(w, w_star, "H", 2.0) + 2.0 * want,
            rtol=1e-12,
            atol=1e-15,
        )
    # the default rounds only pairs aligned to rounding error
    w_star = [[3 * math.cos(1e-6), 3 * math.sin(1e-6)]]
    torch.testing.assert_close(
        indicator_boundary_term(w, w_star),
        t64([[0.0, -3 * math.cos(1e-6) / TWO_PI]]),
        rtol=1e-9,
        atol=0,
    )


def test_orthogonal_direction_broadcasts_and_rounds():
    """e = unit component of b ⊥ a; shrunk to (sin t/sine_tol)·e below sine_tol; batch
    shape kept."""
    t = torch.tensor(
        [[0.05, 0.3, 1.0], [2.0, math.pi - 0.05, 0.0]], dtype=F64
    )  # (2, 3) batch, d = 4
    a = torch.zeros(2, 3, 4, dtype=F64)
    a[..., 0] = 2.0
    b = torch.zeros(2, 3, 4, dtype=F64)
    b[..., 0], b[..., 2] = 5 * torch.cos(t), 5 * torch.sin(t)
    want = torch.zeros(2, 3, 4, dtype=F64)
    want[..., 2] = 1.0
    want[1, 2, 2] = 0.0  # t = 0
    torch.testing.assert_close(orthogonal_direction(a, b), want, rtol=1e-12, atol=1e-15)
    shrunk = want.clone()
    shrunk[..., 2] *= torch.clamp(torch.sin(t) / 0.2, max=1.0)
    torch.testing.assert_close(
        orthogonal_direction(a, b, sine_tol=0.2), shrunk, rtol=1e-12, atol=1e-15
    )


def test_kernels_broadcast_over_batches():
    """pair_angles and the kernels on a (2, 3) batch of pairs in d = 4 match arccos and
    the formulas."""
    A, B = rows(6, 4, 7).reshape(2, 3, 4), rows(6, 4, 8).reshape(2, 3, 4)
    An, Bn = A.numpy(), B.numpy()
    na, nb = np.linalg.norm(An, axis=-1), np.linalg.norm(Bn, axis=-1)
    dot = (An * Bn).sum(-1)
    t = np.arccos(dot / (na * nb))
    np.testing.assert_allclose(pair_angles(A, B).numpy(), t, rtol=1e-12)
    np.testing.assert_allclose(
        relu_kernel(A, B).numpy(), (na * nb * np.sin(t) + (np.pi - t) * dot) / TWO_PI, rtol=1e-12
    )
    np.testing.assert_allclose(step_kernel(A, B).numpy(), (np.pi - t) / TWO_PI, rtol=1e-12)
    np.testing.assert_allclose(grad_kernel(A, B).numpy(), (np.pi - t) * dot / TWO_PI, rtol=1e-12)
    # broadcasting one vector against the batch
    np.testing.assert_allclose(
        pair_angles(A[0, 0], B).numpy(), pair_angles(A[0, 0].expand(2, 3, 4), B).numpy()
    )
    e1, e2 = torch.eye(2, dtype=F64)
    assert float(step_kernel(e1, e2)) == pytest.approx(0.25, rel=1e-15)
    assert float(grad_kernel(2 * e1, 3 * (e1 + e2))) == pytest.approx(
        (math.pi - math.pi / 4) * 6 / TWO_PI, rel=1e-14
    )


def test_min_pair_sine_by_hand():
    """K = 3 > d = 2: the smallest sine is the student pair (0, 2), 1/√10 (teacher pairs ≥ 1/√5)."""
    W, W_star = [[1.0, 0.0], [0.0, 1.0], [3.0, 1.0]], [[1.0, 1.0]]
    assert min_pair_sine(W, W_star) == pytest.approx(1 / math.sqrt(10), rel=1e-14)
    assert min_pair_sine([[1.0, 0.0]], [[1.0, 2.0], [1.0, 0.5]]) == pytest.approx(
        1 / math.sqrt(5), rel=1e-14
    )


def test_degenerate_threshold_is_inclusive():
    """sin t = DEGENERATE_SINE exactly counts as degenerate (w* = (1, 1e-12) gives sin t = 1e-12
    in float64)."""
    w, w_star = [[1.0, 0.0]], [[1.0, 1e-12]]
    assert min_pair_sine(w, w_star) == DEGENERATE_SINE
    with pytest.raises(
        ValueError, match=r"the Hessian is not defined .*\(min sin\(angle\) = 1e-12\)"
    ):
        population_hessian(w, w_star)
    with pytest.raises(
        ValueError, match=r"the Jacobian is not defined .*\(min sin\(angle\) = 1e-12\)"
    ):
        expected_autodiff_jacobian(w, w_star)
    with pytest.raises(ValueError, match=ALIGNED_K1):
        hessian_k1_explicit(w[0], w_star[0])
    scan = spectrum_scan([t64(w), t64([[1.0, 1e-3]])], w_star)
    assert np.isnan(scan.lam_min[0]) and np.isfinite(scan.lam_min[1])


# ---- Hessians: defaults against the explicit K = 1 formulas ----------------------------------


def test_hessian_defaults_match_k1_formulas():
    w, w_star = rows(1, 4, 9), 1.3 * rows(1, 4, 10)
    H_L, H_J = (hessian_k1_explicit(w[0], w_star[0], p) for p in "LJ")
    close = dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hessian_k1_explicit(w[0], w_star[0]), H_L, rtol=0, atol=0)
    torch.testing.assert_close(hessian_k1_explicit(w[0], w_star[0], "H"), H_L + H_J, **close)
    torch.testing.assert_close(population_hessian(w, w_star), H_L, **close)
    torch.testing.assert_close(population_hessian(w, w_star, "H"), H_L + H_J, **close)
    # the autodiff Jacobian equals the Hessian for L (E[autodiff ∇L] = ∇L)
    torch.testing.assert_close(expected_autodiff_jacobian(w, w_star), H_L, **close)
    # and, for |w*| = 1, the quoted "Hessian of H" (λ = 1) is its Jacobian for H
    u = w_star / w_star.norm()
    torch.testing.assert_close(
        expected_autodiff_jacobian(w, u, "H"), hessian_k1_quoted(w[0], u[0], "H"), **close
    )
    torch.testing.assert_close(
        hessian_k1_quoted(w[0], u[0]), hessian_k1_explicit(w[0], u[0], "L"), **close
    )
    # the quoted α carries |w*|² instead of |w*|: its curvature term is |w*| times ours
    eye = torch.eye(4, dtype=F64)
    torch.testing.assert_close(
        hessian_k1_quoted(w[0], w_star[0]) - 0.5 * eye, w_star.norm() * (H_L - 0.5 * eye), **close
    )
    assert expected_autodiff_jacobian(w.float(), u).dtype == F64


def test_hessian_spectrum_defaults():
    W, W_star = rows(2, 3, 11), rows(2, 3, 12)
    for spec, (part, lam) in (
        (hessian_spectrum(W, W_star), ("L", 1.0)),
        (hessian_spectrum(W, W_star, "H"), ("H", 1.0)),
        (hessian_spectrum(W, W_star, "H", 0.3), ("H", 0.3)),
    ):
        want = torch.linalg.eigvalsh(population_hessian(W, W_star, part, lam)).numpy()
        np.testing.assert_allclose(spec.eigenvalues, want, rtol=1e-12, atol=1e-14)
        assert spec.lam_min == want[0] and spec.lam_max == want[-1]
        smallest_positive = want[want > 1e-10 * want[-1]][0]
        assert spec.cond_positive == pytest.approx(want[-1] / smallest_positive, rel=1e-12)
    # rtol is passed on: only eigenvalues above rtol·λ_max count for cond_positive
    want = spec.eigenvalues
    coarse = hessian_spectrum(W, W_star, "H", 0.3, rtol=0.5)
    assert coarse.cond_positive == pytest.approx(
        want[-1] / want[want > 0.5 * want[-1]][0], rel=1e-12
    )
    assert coarse.cond_positive < spec.cond_positive


# ---- spectra -----------------------------------------------------------------------------------


def test_spectrum_of_conditioning_edge_cases():
    diag = lambda *v: torch.diag(t64(list(v)))
    s = spectrum_of(diag(0.5, 2.0, 0.25))  # λ_min < 1 but > 0: finite condition number
    assert (s.lam_min, s.lam_max, s.cond, s.cond_positive) == (0.25, 2.0, 8.0, 8.0)
    np.testing.assert_array_equal(s.eigenvalues, [0.25, 0.5, 2.0])
    # default rtol = 1e-10: an eigenvalue exactly at rtol·λ_max is not "positive", one above it is
    assert spectrum_of(diag(1e-10, 1e-3, 1.0)).cond_positive == pytest.approx(1e3)
    assert spectrum_of(diag(2e-10, 1e-3, 1.0)).cond_positive == pytest.approx(5e9)
    # λ_max < 1: the threshold is relative to λ_max
    assert spectrum_of(diag(7e-11, 1e-3, 0.5)).cond_positive == pytest.approx(0.5 / 7e-11)
    assert spectrum_of(diag(7e-11, 1e-3, 0.5), rtol=1e-6).cond_positive == pytest.approx(500.0)
    # negative definite: both condition numbers infinite; rtol ≥ 1 leaves no positive eigenvalue
    s = spectrum_of(diag(-2.0, -1.0))
    assert (s.lam_min, s.lam_max, s.cond, s.cond_positive) == (-2.0, -1.0, math.inf, math.inf)
    assert spectrum_of(diag(1.0, 2.0), rtol=2.0).cond_positive == math.inf


def test_rotated_students_by_hand():
    """Rows scale·|w*_i|·(cos a u_i + sin a e_i), e_i the unit part of directions_i ⊥ u_i."""
    W_star = [[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    directions = [[5.0, 3.0, 0.0], [0.0, 4.0, 7.0]]  # components along u_i are removed
    a = math.pi / 3
    want = t64([[2 * math.cos(a), 2 * math.sin(a), 0.0], [0.0, math.sin(a), math.cos(a)]])
    torch.testing.assert_close(
        rotated_students(W_star, a, directions=directions), want, rtol=1e-14, atol=1e-15
    )
    torch.testing.assert_close(
        rotated_students(W_star, a, 1.5, directions), 1.5 * want, rtol=1e-14, atol=1e-15
    )
    # random directions: reproducible with a generator, every row at the angle a with norm |w*_i|
    W = rotated_students(W_star, a, generator=gen(13))
    torch.testing.assert_close(W, rotated_students(W_star, a, generator=gen(13)), rtol=0, atol=0)
    torch.testing.assert_close(pair_angles(W, t64(W_star)), t64([a, a]), rtol=1e-12, atol=0)
    torch.testing.assert_close(W.norm(dim=1), t64([2.0, 1.0]), rtol=1e-14, atol=0)
    # the generator draws the directions as float64 normals of W_star's shape
    drawn = torch.randn(2, 3, dtype=F64, generator=gen(13))
    torch.testing.assert_close(W, rotated_students(W_star, a, directions=drawn), rtol=0, atol=0)


def test_scans_are_the_spectra_at_the_rotated_students():
    """angle_scan / distance_scan / spectrum_scan with their defaults (part "L", λ = 1, scale 1,
    angle 0.5) and with a generator draw the same directions as rotated_students with that seed."""
    W_star = rows(2, 3, 14)

    def eig(W, part="L", lam=1.0):
        return torch.linalg.eigvalsh(population_hessian(W, W_star, part, lam)).numpy()

    angles, scales = [0.3, 1.2], [0.5, 1.7]
    scans = {
        "angle L": (
            angle_scan(W_star, angles, generator=gen(15)),
            [eig(rotated_students(W_star, t, generator=gen(15))) for t in angles],
        ),
        "angle H": (
            angle_scan(W_star, angles, "H", generator=gen(15)),
            [eig(rotated_students(W_star, t, generator=gen(15)), "H") for t in angles],
        ),
        "distance L": (
            distance_scan(W_star, scales, generator=gen(16)),
            [eig(rotated_students(W_star, 0.5, s, generator=gen(16))) for s in scales],
        ),
        "distance H": (
            distance_scan(W_star, scales, "H", generator=gen(16)),
            [eig(rotated_students(W_star, 0.5, s, generator=gen(16)), "H") for s in scales],
        ),
    }
    e = torch.randn(2, 3, dtype=F64, generator=gen(20))
    scans["angle directions"] = (
        angle_scan(W_star, angles, "H", 0.5, scale=0.8, directions=e),
        [eig(rotated_students(W_star, t, 0.8, e), "H", 0.5) for t in angles],
    )
    Ws = [rotated_students(W_star, t, generator=gen(17)) for t in angles]
    scans["scan L"] = spectrum_scan(Ws, W_star), [eig(W) for W in Ws]
    scans["scan H"] = spectrum_scan(Ws, W_star, "H"), [eig(W, "H") for W in Ws]
    for name, (scan, want) in scans.items():
        want = np.stack(want)
        np.testing.assert_allclose(scan.eigenvalues, want, rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_array_equal(scan.lam_min, scan.eigenvalues[:, 0], err_msg=name)
        np.testing.assert_array_equal(scan.lam_max, scan.eigenvalues[:, -1], err_msg=name)
        cond = np.where(want[:, 0] > 0, want[:, -1] / want[:, 0], np.inf)
        np.testing.assert_allclose(scan.cond, cond, rtol=1e-10, err_msg=name)


def test_scan_of_one_degenerate_student():
    """A single degenerate student: a (1, K·d) row of NaN (sized from the student itself)."""
    W_star = rows(2, 3, 18)
    scan = angle_scan(W_star, [0.0], "J", generator=gen(19))
    assert scan.eigenvalues.shape == (1, 6) and np.isnan(scan.eigenvalues).all()
    for f in (scan.lam_min, scan.lam_max, scan.cond, scan.cond_positive):
        assert f.shape == (1,) and np.isnan(f).all()


# ---- Monte Carlo -------------------------------------------------------------------------------


def per_sample(W, W_star, x, lam):
    """Per-sample losses ½r² + λ½|D|² and their autograd gradients w.r.t. W, one sample at
    a time."""
    losses, grads = [], []
    for xk in x:
        xk = xk[None].clone().requires_grad_(True)
        Wp = W.clone().requires_grad_(True)
        g, g_star = torch.relu(xk @ Wp.T).sum(), torch.relu(xk @ W_star.T).sum()
        (dg,) = torch.autograd.grad(g, xk, create_graph=True)
        (dg_star,) = torch.autograd.grad(g_star, xk)
        loss = 0.5 * (g - g_star) ** 2 + lam * 0.5 * ((dg - dg_star) ** 2).sum()
        losses.append(float(loss.detach()))
        grads.append(torch.autograd.grad(loss, Wp)[0])
    return np.array(losses), torch.stack(grads)


@pytest.mark.parametrize("n,batch", [(2, 1), (7, 3)])
def test_mc_mean_and_stderr_against_per_sample_autograd(n, batch):
    """Means and ddof=1 standard errors of the loss and of each gradient entry, with defaults
    part "L" and (for "H") λ = 1, chunked draws identical to one stream of N(0, I) samples."""
    W, W_star, d = rows(3, 4, 20), rows(2, 4, 21), 4
    draws = torch.cat(
        [
            torch.randn(min(batch, n - s), d, dtype=F64, generator=g)
            for g in [gen(22)]
            for s in range(0, n, batch)
        ]
    )
    for args, lam in (((), 0.0), (("H",), 1.0), (("H", 0.4), 0.4), (("J",), None)):
        if lam is None:  # J alone: the difference of H(λ=1) and L samples
            lH, gH = per_sample(W, W_star, draws, 1.0)
            lL, gL = per_sample(W, W_star, draws, 0.0)
            losses, grads = lH - lL, gH - gL
        else:
            losses, grads = per_sample(W, W_star, draws, lam)
        mean, err = monte_carlo_loss(W, W_star, n, *args, generator=gen(22), batch_size=batch)
        assert mean == pytest.approx(losses.mean(), rel=1e-12)
        assert err == pytest.approx(losses.std(ddof=1) / math.sqrt(n), rel=1e-9)
        gmean, gerr = monte_carlo_grad(W, W_star, n, *args, generator=gen(22), batch_size=batch)
        torch.testing.assert_close(gmean, grads.mean(0), rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(
            gerr, grads.std(0, correction=1) / math.sqrt(n), rtol=1e-9, atol=1e-13
        )


# ---- gradient flow -----------------------------------------------------------------------------


def test_gradient_flow_records_losses_and_errors_along_the_trajectory():
    w_star = rows(2, 3, 26)
    W0 = rotated_students(w_star, 1.0, 0.6, generator=gen(27))
    res = gradient_flow(W0, w_star, "H", 0.5, 3.0, n_eval=7)
    np.testing.assert_array_equal(res.times, np.linspace(0.0, 3.0, 7))
    assert res.W.shape == (7, 2, 3) and res.success and res.nfev > 0 and isinstance(res.nfev, int)
    assert res.message == "The solver successfully reached the end of the integration interval."
    for k, W in enumerate(res.W):
        L, J = (float(population_loss(W, w_star, p)) for p in "LJ")
        assert (res.loss_L[k], res.loss_J[k]) == (L, J)
        assert res.loss_H[k] == pytest.approx(L + 0.5 * J, rel=1e-15)
        assert res.param_error[k] == parameter_error(W, w_star)
    assert res.loss_H[-1] < 0.5 * res.loss_H[0]


def test_gradient_flow_defaults():
    """part "L", λ = 1, t_max = 20, 300 samples, LSODA at rtol 1e-8 / atol 1e-12; for H the true
    gradient (autodiff=False) with kink_tol = 1e-6."""
    w_star = rows(1, 3, 28)
    w0 = rotated_students(w_star, 1.5, 0.7, generator=gen(29))
    res = gradient_flow(w0, w_star)
    ref = gradient_flow(
        w0,
        w_star,
        "L",
        1.0,
        20.0,
        autodiff=False,
        n_eval=300,
        rtol=1e-8,
        atol=1e-12,
        method="LSODA",
        kink_tol=1e-6,
    )
    assert res.times.shape == (300,) and res.times[-1] == 20.0
    for field in ("times", "W", "loss_L", "loss_J", "loss_H", "param_error"):
        np.testing.assert_array_equal(getattr(res, field), getattr(ref, field), err_msg=field)
    np.testing.assert_allclose(res.loss_H, res.loss_L + res.loss_J, rtol=1e-15)
    # H: the default flow is the true-gradient one with kink_tol = 1e-6
    res_H = gradient_flow(w0, w_star, "H", t_max=2.0, n_eval=5)
    ref_H = gradient_flow(w0, w_star, "H", 1.0, 2.0, autodiff=False, n_eval=5, kink_tol=1e-6)
    np.testing.assert_array_equal(res_H.W, ref_H.W)
    auto_H = gradient_flow(w0, w_star, "H", t_max=2.0, n_eval=5, autodiff=True)
    assert np.abs(auto_H.W[-1] - res_H.W[-1]).max() > 1e-3  # the boundary term matters


def test_gradient_flow_is_solve_ivp_of_the_gradient_field():
    """The trajectory is exactly SciPy's solve_ivp of −∇H_λ (rounded kinks), or of
    −E[autodiff ∇H_λ], with the given solver settings, sampled at n_eval equally spaced times."""
    from scipy.integrate import solve_ivp

    W_star = rows(2, 3, 32)
    W0 = rotated_students(W_star, 0.8, 1.3, generator=gen(33))

    def rhs(_, y):
        return (
            -population_grad(torch.from_numpy(y).reshape(2, 3), W_star, "H", 0.5, kink_tol=1e-3)
            .reshape(-1)
            .numpy()
        )

    times = np.linspace(0.0, 1.5, 4)
    for method, rtol, atol in (("RK45", 1e-5, 1e-7), ("LSODA", 1e-8, 1e-12)):
        sol = solve_ivp(
            rhs,
            (0.0, 1.5),
            W0.reshape(-1).numpy(),
            method=method,
            t_eval=times,
            rtol=rtol,
            atol=atol,
        )
        res = gradient_flow(
            W0, W_star, "H", 0.5, 1.5, n_eval=4, rtol=rtol, atol=atol, method=method, kink_tol=1e-3
        )
        np.testing.assert_array_equal(res.W, sol.y.T.reshape(4, 2, 3), err_msg=method)
        assert res.nfev == sol.nfev

    # autodiff=True: the field is −E[autodiff ∇H_λ] with the same λ
    def rhs_auto(_, y):
        return (
            -expected_autodiff_grad(torch.from_numpy(y).reshape(2, 3), W_star, "H", 0.5)
            .reshape(-1)
            .numpy()
        )

    sol = solve_ivp(
        rhs_auto,
        (0.0, 1.5),
        W0.reshape(-1).numpy(),
        method="LSODA",
        t_eval=times,
        rtol=1e-8,
        atol=1e-12,
    )
    res = gradient_flow(W0, W_star, "H", 0.5, 1.5, n_eval=4, autodiff=True)
    np.testing.assert_array_equal(res.W, sol.y.T.reshape(4, 2, 3))


def test_gradient_flow_solver_warnings_mark_failure():
    """A warning raised by the solver (here SciPy's rtol floor) makes success False and is
    appended to the solver's message."""
    w_star = rows(1, 3, 30)
    w0 = rotated_students(w_star, 0.5, 1.2, generator=gen(31))
    res = gradient_flow(w0, w_star, "L", t_max=0.5, n_eval=3, rtol=1e-20)
    assert res.success is False
    parts = res.message.split("; ")
    assert parts[0] == "The solver successfully reached the end of the integration interval."
    assert len(parts) == 2 and parts[1].startswith("At least one element of `rtol` is too small.")


# ---- time to tolerance and parameter error ---------------------------------------------------


def test_time_to_tolerance_cases():
    t = [0.0, 1.0, 2.0, 3.0]
    v = [8.0, 4.0, 2.0, 1.0]
    # relative by default: target 0.3·8 = 2.4, first reached between t = 1 and 2, log-linearly
    assert time_to_tolerance(t, v, 0.3) == pytest.approx(
        1 + math.log(4 / 2.4) / math.log(2), rel=1e-14
    )
    assert time_to_tolerance(t, v, 0.3, relative=False) == math.inf
    assert time_to_tolerance(t, v, 3.0, relative=False) == pytest.approx(
        1 + math.log(4 / 3) / math.log(2), rel=1e-14
    )
    # already at the target at the first sample: the first time (not 0)
    assert time_to_tolerance([5.0, 6.0, 7.0], [1.0, 1.0, 0.5], 1.0) == 5.0
    assert time_to_tolerance([5.0, 6.0, 7.0], [3.0, 2.0, 1.0], 10.0, relative=False) == 5.0
    # a sample ≤ 0: linear interpolation (log undefined)
    assert time_to_tolerance([0.0, 1.0], [4.0, 0.0], 1.0, relative=False) == pytest.approx(
        0.75, rel=1e-15
    )
    assert time_to_tolerance([2.0, 4.0], [1.0, -1.0], 0.5, relative=False) == pytest.approx(
        2.5, rel=1e-15
    )
    # float32 input is computed in float64 (target 0.3·8 and the interpolation not rounded
    # to float32)
    t32, v32 = (
        np.array([0.0, 0.1, 0.2, 0.3], np.float32),
        np.array([8.0, 4.0, 2.0, 1.0], np.float32),
    )
    assert time_to_tolerance(t32, v32, 0.3) == time_to_tolerance(
        t32.astype(float), v32.astype(float), 0.3
    )
    # values in (0, 1]: still log-linear
    assert time_to_tolerance([0.0, 2.0], [0.5, 0.125], 0.25, relative=False) == pytest.approx(
        1.0, rel=1e-14
    )


def test_parameter_error_by_hand():
    """Best row matching, not the identity: W rows (0, 1.5, 0), (1, 0, 0) against e1, e2
    cost 0.25."""
    W_star = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    W = [[0.0, 1.5, 0.0], [1.0, 0.0, 0.0]]
    assert parameter_error(W, W_star) == pytest.approx(0.5 / math.sqrt(2), rel=1e-15)
    assert parameter_error([[2.0, 1.0, 1.0]], [[1.0, 1.0, 3.0]]) == pytest.approx(
        math.sqrt(5 / 11), rel=1e-15
    )
    assert math.isnan(parameter_error([[1.0, 0.0, 0.0]], W_star))


def test_directions_parallel_to_the_teacher_are_named():
    W = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    for row, bad in (
        (0, [[3.0, 0.0, 0.0], [1.0, 1.0, 0.0]]),
        (1, [[0.0, 0.0, 1.0], [0.0, -1e-3, 0.0]]),
    ):
        with pytest.raises(
            ValueError,
            match=rf"directions rows \[{row}\] are parallel to their W_star rows: "
            r"no component ⊥ W_star to rotate towards",
        ):
            rotated_students(W, 0.3, directions=torch.tensor(bad, dtype=torch.float64))
    got = rotated_students(
        W, math.pi / 2, directions=torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 5.0]])
    )
    torch.testing.assert_close(
        got, torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]], dtype=got.dtype), atol=1e-12, rtol=0
    )
