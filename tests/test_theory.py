"""Tests of sobolev.theory: closed forms vs Monte-Carlo, derivatives vs finite differences, K = 1
explicit Hessians, the autodiff-gradient bias of J, spectra, gradient flow and input errors."""

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
    gradient_flow,
    hessian_k1_explicit,
    hessian_k1_quoted,
    hessian_spectrum,
    indicator_boundary_term,
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
    time_to_tolerance,
)

Z_MAX = 4.5  # |z| bound for a single comparison (two-sided p ≈ 7e-6)


def rows(K: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(
        K, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    ) / math.sqrt(d)


def z_bound(n_entries: int) -> float:
    """|z| bound for the max over n_entries comparisons (Bonferroni at total level ~1e-4)."""
    from scipy.stats import norm

    return float(norm.isf(1e-4 / (2 * n_entries)))


# ---- kernels ---------------------------------------------------------------------------------


def test_angles_stable_near_zero_and_pi():
    for t in (1e-10, 1e-5, 1.0, math.pi - 1e-7):
        a = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        b = 3.0 * torch.tensor([math.cos(t), math.sin(t), 0.0], dtype=torch.float64)
        assert float(pair_angles(a, b)) == pytest.approx(t, rel=1e-9)


def test_relu_kernel_special_values():
    w = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    assert float(relu_kernel(w, w)) == pytest.approx(float(w @ w) / 2, rel=1e-14)
    assert float(relu_kernel(w, -w)) == pytest.approx(0.0, abs=1e-14)  # σ(z)σ(−z) = 0
    e1, e2 = torch.eye(2, dtype=torch.float64)
    assert float(relu_kernel(e1, e2)) == pytest.approx(1 / (2 * math.pi), rel=1e-14)


# ---- closed forms vs Monte-Carlo -------------------------------------------------------------


@pytest.mark.parametrize(
    "K,K_star,d,n", [(1, 1, 2, 200_000), (2, 3, 10, 100_000), (5, 5, 50, 50_000)]
)
def test_losses_match_monte_carlo(K, K_star, d, n):
    W, W_star = rows(K, d, 1), rows(K_star, d, 2)
    g = torch.Generator().manual_seed(3)
    for part in "LJH":
        mean, err = monte_carlo_loss(W, W_star, n, part, lam=0.7, generator=g)
        exact = float(population_loss(W, W_star, part, lam=0.7))
        assert abs(mean - exact) / err < Z_MAX, part
        assert err < 0.03 * exact  # the test has power: stderr small compared with the loss


def test_mc_grad_L_matches_population_grad():
    W, W_star = rows(2, 5, 4), rows(3, 5, 5)
    mean, err = monte_carlo_grad(
        W, W_star, 200_000, "L", generator=torch.Generator().manual_seed(6)
    )
    z = (mean - population_grad(W, W_star, "L")) / err
    assert float(z.abs().max()) < z_bound(W.numel())


def test_mc_per_sample_gradient_is_torch_autograd_of_empirical_loss():
    """The MC gradient is exactly what autograd gives for the empirical H1 loss of a ReLU net."""
    n, d, lam = 64, 4, 0.6
    W, W_star = rows(3, d, 7), rows(2, d, 8)
    mean, _ = monte_carlo_grad(
        W, W_star, n, "H", lam, generator=torch.Generator().manual_seed(9), batch_size=n
    )
    x = torch.randn(
        n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(9)
    ).requires_grad_(True)
    Wp = W.clone().requires_grad_(True)
    g, g_star = torch.relu(x @ Wp.T).sum(1), torch.relu(x @ W_star.T).sum(1)
    dg = torch.autograd.grad(g.sum(), x, create_graph=True)[0]
    dg_star = torch.autograd.grad(g_star.sum(), x)[0]
    loss = (0.5 * (g - g_star) ** 2 + lam * 0.5 * ((dg - dg_star) ** 2).sum(1)).mean()
    (auto,) = torch.autograd.grad(loss, Wp)
    torch.testing.assert_close(mean, auto, rtol=1e-12, atol=1e-12)


def test_autodiff_J_gradient_is_biased_by_the_boundary_term():
    """MC autodiff J-gradient matches E[autodiff ∇J] but not ∇J; the gap is the boundary term."""
    w_star = torch.tensor(
        [[1.0, 0.0]], dtype=torch.float64
    )  # d = 2: every gradient entry is random
    w = rotated_students(w_star, math.pi / 4, 1.2, directions=torch.tensor([[0.0, 1.0]]))
    mean, err = monte_carlo_grad(
        w, w_star, 100_000, "J", generator=torch.Generator().manual_seed(10)
    )
    bound = z_bound(w.numel())
    assert float(((mean - expected_autodiff_grad(w, w_star, "J")) / err).abs().max()) < bound
    assert float(((mean - population_grad(w, w_star, "J")) / err).abs().max()) > 10 * bound
    # K = 1: ∇J − E[autodiff ∇J] = (w·w*)/(2π) ∇_w t, with ∇_w t by autograd of the angle.
    wr = w[0].clone().requires_grad_(True)
    (grad_t,) = torch.autograd.grad(pair_angles(wr, w_star[0]), wr)
    expected = float(w[0] @ w_star[0]) / (2 * math.pi) * grad_t
    torch.testing.assert_close(
        indicator_boundary_term(w, w_star)[0], expected, rtol=1e-12, atol=1e-14
    )
    # the gap against an independent ∇J: central differences of the closed-form J (itself checked
    # against Monte Carlo in test_losses_match_monte_carlo)
    fd = central_fd(lambda V: population_loss(V, w_star, "J"), w, 1e-6).reshape(w.shape)
    torch.testing.assert_close(
        fd - expected_autodiff_grad(w, w_star, "J"),
        indicator_boundary_term(w, w_star),
        rtol=1e-6,
        atol=1e-9,
    )
    assert float(indicator_boundary_term(w, w_star).abs().max()) > 0.05  # the gap is not rounding


def test_autodiff_L_gradient_is_unbiased_closed_form():
    """Against finite differences of the closed-form losses: E[autodiff ∇L] = ∇L, and
    ∇H_λ − E[autodiff ∇H_λ] = λ · boundary term."""
    W, W_star = rows(3, 4, 11), rows(2, 4, 12)
    fd_L = central_fd(lambda V: population_loss(V, W_star, "L"), W, 1e-6).reshape(W.shape)
    torch.testing.assert_close(expected_autodiff_grad(W, W_star, "L"), fd_L, rtol=1e-7, atol=1e-9)
    fd_H = central_fd(lambda V: population_loss(V, W_star, "H", 2.0), W, 1e-6).reshape(W.shape)
    gap = fd_H - expected_autodiff_grad(W, W_star, "H", 2.0)
    torch.testing.assert_close(gap, 2.0 * indicator_boundary_term(W, W_star), rtol=1e-6, atol=1e-9)
    assert float(indicator_boundary_term(W, W_star).abs().max()) > 1e-3


# ---- derivatives vs finite differences -------------------------------------------------------


def central_fd(f, W: torch.Tensor, eps: float) -> torch.Tensor:
    """Central differences of f: (K, d) -> tensor, stacked over the flattened entries of
    W (last dim)."""
    cols = []
    for k in range(W.numel()):
        e = torch.zeros(W.numel(), dtype=W.dtype)
        e[k] = eps
        e = e.reshape(W.shape)
        cols.append((f(W + e) - f(W - e)) / (2 * eps))
    return torch.stack(cols, -1)


@pytest.mark.parametrize("part", ["L", "J", "H"])
def test_gradient_matches_finite_differences(part):
    W, W_star = rows(3, 4, 13), rows(2, 4, 14)
    fd = central_fd(lambda V: population_loss(V, W_star, part, 0.8), W, 1e-6).reshape(W.shape)
    torch.testing.assert_close(population_grad(W, W_star, part, 0.8), fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("part", ["L", "J", "H"])
def test_hessian_symmetric_and_matches_fd_of_gradient(part):
    W, W_star = rows(3, 4, 15), rows(2, 4, 16)
    hess = population_hessian(W, W_star, part, 0.8)
    assert hess.shape == (12, 12)
    fd = central_fd(lambda V: population_grad(V, W_star, part, 0.8).reshape(-1), W, 1e-6)
    torch.testing.assert_close(hess, fd, rtol=1e-6, atol=1e-8)
    raw = torch.func.hessian(lambda V: population_loss(V, W_star, part, 0.8))(W).reshape(12, 12)
    torch.testing.assert_close(raw, raw.T, rtol=0, atol=1e-13)


def test_closed_form_loss_supports_repeated_functorch_transforms():
    """Regression: index tensors cached inside one torch.func transform crashed the next one."""
    W, W_star = rows(3, 4, 19), rows(2, 4, 20)
    f = lambda V: population_loss(V, W_star, "H", 0.8)
    first = torch.func.hessian(f)(W)
    torch.testing.assert_close(torch.func.hessian(f)(W), first, rtol=0, atol=0)
    torch.testing.assert_close(
        torch.func.grad(f)(W), population_grad(W, W_star, "H", 0.8), rtol=1e-12, atol=1e-14
    )


def test_hessian_row_major_flattening():
    W, W_star = rows(2, 3, 17), rows(2, 3, 18)
    hess = population_hessian(W, W_star, "L")
    E = torch.zeros_like(W)
    E[1, 2] = 1e-6  # entry (i=1, k=2) ↔ index 1·d + 2 = 5
    col = (population_grad(W + E, W_star, "L") - population_grad(W - E, W_star, "L")).reshape(
        -1
    ) / 2e-6
    torch.testing.assert_close(hess[:, 5], col, rtol=1e-6, atol=1e-9)


# ---- K = 1 explicit formulas -----------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3, 7])
@pytest.mark.parametrize("part", ["L", "J", "H"])
def test_k1_explicit_hessian_matches_general(d, part):
    w, w_star = rows(1, d, 20 + d), 1.7 * rows(1, d, 30 + d)
    torch.testing.assert_close(
        hessian_k1_explicit(w[0], w_star[0], part, 0.6),
        population_hessian(w, w_star, part, 0.6),
        rtol=1e-10,
        atol=1e-12,
    )


def test_k1_smallest_eigenvalue_of_H_is_twice_that_of_L():
    w_star = rows(1, 6, 40)
    for t in (0.2, 1.0, 2.5):
        w = rotated_students(w_star, t, 0.7, generator=torch.Generator().manual_seed(41))
        sL, sH = hessian_spectrum(w, w_star, "L"), hessian_spectrum(w, w_star, "H")
        assert sH.lam_min == pytest.approx(2 * sL.lam_min, rel=1e-10)
        assert sL.lam_max == pytest.approx(0.5, rel=1e-10)  # the radial direction v


def test_quoted_paper_formulas():
    """Quoted L Hessian = ours when |w*| = 1; quoted 'Hessian of H' = Jacobian of E[autodiff ∇H]."""
    w, w_star = rows(1, 5, 42)[0], rows(1, 5, 43)[0]
    u = w_star / w_star.norm()
    torch.testing.assert_close(
        hessian_k1_quoted(w, u, "L"), hessian_k1_explicit(w, u, "L"), rtol=1e-12, atol=1e-14
    )
    assert not torch.allclose(hessian_k1_quoted(w, 2 * u, "L"), hessian_k1_explicit(w, 2 * u, "L"))
    quoted_H = hessian_k1_quoted(w, u, "H")
    torch.testing.assert_close(
        quoted_H, expected_autodiff_jacobian(w[None], u[None], "H"), rtol=1e-12, atol=1e-14
    )
    assert float((quoted_H - quoted_H.T).abs().max()) > 1e-2
    assert float((quoted_H - population_hessian(w[None], u[None], "H")).abs().max()) > 1e-2


# ---- spectra ---------------------------------------------------------------------------------


def test_spectrum_condition_number_definitions():
    s = spectrum_of(torch.diag(torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64)))
    assert (s.lam_min, s.lam_max, s.cond, s.cond_positive) == (0.0, 2.0, math.inf, 4.0)
    s = spectrum_of(torch.diag(torch.tensor([-1.0, 2.0], dtype=torch.float64)))
    assert s.cond == math.inf and s.lam_min == -1.0


def test_angle_scan_marks_degenerate_points_nan():
    w_star = rows(1, 4, 44)
    scan = angle_scan(w_star, [0.0, 0.5], "H", generator=torch.Generator().manual_seed(45))
    assert np.isnan(scan.lam_min[0]) and np.isfinite(scan.lam_min[1])
    assert scan.eigenvalues.shape == (2, 4)


def test_scan_of_degenerate_students_only_is_all_nan():
    w_star = rows(2, 3, 49)
    scan = angle_scan(w_star, [0.0, 0.0], "H", generator=torch.Generator().manual_seed(50))
    assert (
        scan.eigenvalues.shape == (2, 6)
        and np.isnan(scan.eigenvalues).all()
        and np.isnan(scan.cond).all()
    )


def test_distance_scan_is_the_spectrum_at_scaled_students():
    w_star = rows(2, 3, 51)
    e = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(52))
    scan = distance_scan(w_star, [0.5, 2.0], "H", 3.0, angle=0.4, directions=e)
    for k, s in enumerate([0.5, 2.0]):
        want = torch.linalg.eigvalsh(
            population_hessian(rotated_students(w_star, 0.4, s, e), w_star, "H", 3.0)
        )
        np.testing.assert_allclose(scan.eigenvalues[k], want.numpy(), rtol=1e-10, atol=1e-12)
        assert scan.lam_max[k] == pytest.approx(float(want[-1]), rel=1e-10)


def test_mc_standard_error_is_the_unbiased_one_across_chunks():
    """stderr = sqrt(s²/n) with the unbiased s² (ddof = 1), also when chunks are
    merged (n = 5 in 2 + 2 + 1)."""
    W, W_star = rows(2, 3, 53), rows(1, 3, 54)
    mean, err = monte_carlo_loss(
        W, W_star, 5, "H", 0.5, generator=torch.Generator().manual_seed(55), batch_size=2
    )
    g = torch.Generator().manual_seed(55)
    x = torch.cat([torch.randn(m, 3, dtype=torch.float64, generator=g) for m in (2, 2, 1)])
    g_x = torch.relu(x @ W.T).sum(1) - torch.relu(x @ W_star.T).sum(1)
    D = (x @ W.T > 0).double() @ W - (x @ W_star.T > 0).double() @ W_star
    values = (0.5 * g_x**2 + 0.5 * 0.5 * (D * D).sum(1)).numpy()
    assert mean == pytest.approx(values.mean(), rel=1e-12)
    assert err == pytest.approx(values.std(ddof=1) / math.sqrt(5), rel=1e-10)


# ---- gradient flow ---------------------------------------------------------------------------


def test_gradient_flow_k1_decreases_and_converges_faster_for_H():
    w_star = rows(1, 5, 46)
    w0 = rotated_students(w_star, 2.0, 0.5, generator=torch.Generator().manual_seed(47))
    res = {
        name: gradient_flow(w0, w_star, part, 1.0, 25.0, autodiff=ad, n_eval=120)
        for name, (part, ad) in {"L": ("L", False), "H": ("H", False), "Hauto": ("H", True)}.items()
    }
    assert np.all(np.diff(res["L"].loss_L) <= 1e-15)
    # H is monotone up to the rounding-off of its kink (kink_tol = 1e-8 in angle, J ∝ angle there).
    assert np.all(np.diff(res["H"].loss_H) <= 1e-7) and res["H"].loss_H[-1] < 1e-7
    for r in res.values():
        assert r.success and r.param_error[-1] < 1e-4
        assert r.times.shape == (120,) and r.W.shape == (120, 1, 5)  # sampled at n_eval times
        np.testing.assert_allclose(r.W[0], w0.numpy())
    T = {k: time_to_tolerance(r.times, r.param_error, 1e-3, relative=False) for k, r in res.items()}
    assert 1.8 < T["L"] / T["H"] < 2.5 and 1.6 < T["L"] / T["Hauto"] < 2.5


def test_time_to_tolerance_exact_for_exponential():
    t = np.linspace(0, 10, 11)
    assert time_to_tolerance(t, np.exp(-2 * t), 1e-3) == pytest.approx(math.log(1e3) / 2, rel=1e-12)
    assert time_to_tolerance(t, np.exp(-t), 1e-9) == math.inf


def test_parameter_error_matches_rows_up_to_permutation():
    W_star = rows(3, 4, 48)
    assert parameter_error(W_star[[2, 0, 1]], W_star) == pytest.approx(0.0, abs=1e-15)
    assert math.isnan(parameter_error(W_star[:2], W_star))


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "W,W_star,match",
    [
        (torch.ones(2, 3), torch.ones(2, 4), "same input dimension"),
        (torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.ones(1, 2), r"W has zero row\(s\) \[1\]"),
        (torch.tensor([[1.0, float("nan")]]), torch.ones(1, 2), "W must be finite"),
        (torch.ones(1, 2), torch.tensor([[float("inf"), 1.0]]), "W_star must be finite"),
        (torch.ones(3), torch.ones(1, 3), r"W must have shape \(K, d\)"),
        (torch.ones(1, 3), "abc", "W_star must be a real array"),
    ],
)
def test_bad_inputs_raise(W, W_star, match):
    for fn in (population_loss, population_grad, population_hessian, expected_autodiff_grad):
        with pytest.raises(ValueError, match=match):
            fn(W, W_star)


def test_bad_options_raise():
    W, W_star = rows(1, 3, 49), rows(1, 3, 50)
    with pytest.raises(ValueError, match="part must be one of"):
        population_loss(W, W_star, "K")
    with pytest.raises(ValueError, match="lam must be finite and ≥ 0"):
        population_grad(W, W_star, "H", -1.0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        monte_carlo_loss(W, W_star, 0)
    with pytest.raises(ValueError, match="the Hessian is not defined .* aligned or opposite"):
        population_hessian(W, 2 * W, "L")
    with pytest.raises(ValueError, match="the Jacobian is not defined"):
        expected_autodiff_jacobian(W, 2 * W, "L")
    with pytest.raises(ValueError, match="aligned or opposite"):
        hessian_k1_explicit(W[0], -W[0], "H")
    with pytest.raises(ValueError, match="t_max"):
        gradient_flow(W, W_star, "L", t_max=-1.0)
