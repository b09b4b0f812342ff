"""The numdiff-targets experiment: a tiny run writes well-formed outputs; config checks; helpers;
the ``Config.paper()`` targets and loss checked against a plain-torch transcription of the
official ``Differentiation/{domain,matrix,train}.py``."""

import json
import math

import pytest
import torch
from torch import nn

from sobolev.models import MLP
from sobolev.training import seed_everything
from sobolev_lab.experiments import numdiff_targets

TINY = dict(
    n_grid=8,
    n_cheb=8,
    width=8,
    depth=1,
    steps=12,
    seeds=1,
    n_test=50,
    log_every=4,
    thresholds=(100.0, 1e-9),
    dims=(2, 3),
    dim_points=(6, 4),
    dim_steps=6,
    directions_from=3,
    accuracy_ns=(8, 12, 48),
)


def test_tiny_run_writes_well_formed_outputs(tmp_path, as_cli, member_records):
    cfg = numdiff_targets.Config(**TINY)
    summary = numdiff_targets.run(cfg, tmp_path)
    json.dumps(summary, allow_nan=False)  # strict JSON: missing values are None, not NaN
    labels = list(numdiff_targets.METHODS.values())
    for fig in summary["figures"]:
        assert (tmp_path / fig).stat().st_size > 1000
    assert sorted(summary["figures"]) == ["accuracy.png", "curves.png", "dims.png"]
    assert not (tmp_path / "table.md").exists()  # the CLI writes it, from tables(summary)
    table = numdiff_targets.tables(as_cli(summary, cfg))
    assert (
        table.count("### ") == 3
        and table.count("setting: ours, 1 seed") == 2
        and table.count("setting: ours") == 3
        and all(f"| {label} |" in table for label in labels)
    )

    r2 = summary["results_2d"]
    assert list(r2) == labels
    assert (
        r2["H1-FD"]["n_points"] == (8 - 2) ** 2
    )  # accuracy 2, interior: one point dropped per side
    assert r2["L2"]["n_points"] == r2["H1-Chebyshev"]["n_points"] == 64
    assert r2["L2"]["target_grad_rel_err"] is None and r2["H1-exact"]["target_grad_rel_err"] == 0.0
    for r in r2.values():
        assert r["reach_value_mse"]["100"]["reached"] == 1  # every run starts below MSE 100
        assert r["reach_value_mse"]["1e-09"]["step"] is None
        # 12 steps of an 8-wide net barely move it (measured: value MSE 35.8, gradient rel.
        # error 1.004)
        assert 33 < r["d0_mse"] < 39 and 0.95 < r["d1_rel"] < 1.05 and len(r["per_seed"]) == 1
    for label in labels:
        records = member_records(tmp_path / "2d" / label, 0)
        assert [rec["step"] for rec in records] == [0, 4, 8, 12] and "d1_mse" in records[-1]
        assert (tmp_path / "2d" / label / "ensemble" / "checkpoint.pt").exists()
        assert member_records(tmp_path / "d3" / label, 0)

    assert list(summary["dims"]) == ["2", "3"]
    assert (
        summary["dims"]["3"]["H1-FD"]["n_points"] == 2**3
        and summary["dims"]["3"]["H1-FD"]["grid"] == "4^3"
    )
    assert (
        summary["dims"]["3"]["H1-exact"]["directional"]
        and not summary["dims"]["3"]["L2"]["directional"]
    )
    assert not summary["dims"]["2"]["H1-exact"]["directional"]

    acc = summary["accuracy"]
    assert acc["N"] == [8, 12, 48] and set(acc["errors"]) == {"ackley2d", "f3", "f1"}
    assert all(len(errs) == 3 for panel in acc["errors"].values() for errs in panel.values())
    assert (
        acc["errors"]["f1"]["Fourier"][-1] < 1e-12
    )  # band-limited periodic data (highest mode 20 < 48/2): exact


def test_bad_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="dim_points"):
        numdiff_targets.run(numdiff_targets.Config(**{**TINY, "dim_points": (6,)}), tmp_path)
    with pytest.raises(ValueError, match="methods"):
        numdiff_targets.run(
            numdiff_targets.Config(**{**TINY, "methods": ("L2", "spline")}), tmp_path
        )
    with pytest.raises(ValueError, match="thresholds"):
        numdiff_targets.run(numdiff_targets.Config(**{**TINY, "thresholds": (0.0,)}), tmp_path)


def test_training_sets_use_the_right_grids():
    cfg = numdiff_targets.Config()
    X_fd, (_, du_fd), exact_fd = numdiff_targets.training_set("fd", 2, 32, cfg)
    X_ch, (_, du_ch), exact_ch = numdiff_targets.training_set("chebyshev", 2, 32, cfg)
    assert (
        X_fd.shape == (30 * 30, 2) and du_fd.shape == (900, 1, 2) and exact_fd.shape == (900, 1, 2)
    )
    assert X_ch.shape == (32 * 32, 2) and float(X_ch.min()) == -2.0 and float(X_ch.max()) == 2.0
    # the estimates match the exact gradient at their own points (a mismatched grid would not)
    assert float((du_fd - exact_fd).norm() / exact_fd.norm()) < 0.2
    assert float((du_ch - exact_ch).norm() / exact_ch.norm()) < 0.1
    X_l2, stack_l2, none = numdiff_targets.training_set("L2", 2, 32, cfg)
    assert (
        len(stack_l2) == 1
        and none is None
        and torch.allclose(stack_l2[0], numdiff_targets.ackley(X_l2))
    )


def test_fitted_order_recovers_power_laws_and_skips_the_rounding_floor():
    ns = [8, 16, 32, 64, 128]
    assert numdiff_targets.fitted_order(ns, [n**-4.0 for n in ns]) == pytest.approx(4.0)
    assert numdiff_targets.fitted_order(ns, [1e-3, 1e-6, 1e-12, 1e-13, 1e-13]) is None
    assert numdiff_targets.fitted_order(
        ns, [None, 1.0, 2.0**-2, 4.0**-2, 8.0**-2]
    ) == pytest.approx(2.0)


@pytest.mark.parametrize("fd_boundary", ["interior", "per-axis"])
def test_logged_loss_terms_are_the_independent_ones(tmp_path, fd_boundary, member_records):
    """Step 0 of each H1 run logs D0 = value MSE and D1 = gradient MSE of the initial network
    against the method's targets, recomputed here by plain autograd (a broken derivative term
    fails)."""
    cfg = numdiff_targets.Config(
        **{
            **TINY,
            "studies": ("2d",),
            "methods": ("exact", "fd", "chebyshev"),
            "fd_boundary": fd_boundary,
        }
    )
    numdiff_targets.run(cfg, tmp_path)
    for method in cfg.methods:
        if method == "fd" and fd_boundary == "per-axis":
            X, u, G, M, _ = numdiff_targets.per_axis_fd_set(2, cfg.n_grid, cfg.fd_accuracy)
        else:
            X, (u, du), _ = numdiff_targets.training_set(method, 2, cfg.n_grid, cfg)
            G, M = du[:, 0, :], torch.ones_like(du[:, 0, :])
        seed_everything(0)
        model = MLP(2, 1, cfg.width, cfg.depth, cfg.activation)
        x = X.float().requires_grad_(True)
        y = model(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        d0 = float(((y.detach() - u.float()) ** 2).mean())
        d1 = float((((g.detach() - G.float()) ** 2) * M.float()).sum(0).div(M.float().sum(0)).sum())
        first = member_records(tmp_path / "2d" / numdiff_targets.METHODS[method], 0)[0]
        assert first["D0"] == pytest.approx(d0, rel=1e-5) and first["D1"] == pytest.approx(
            d1, rel=1e-5
        )
        assert d1 > 1.0  # the initial network is far from the gradient targets: the term matters


def _official_ackley(x, y):  # Differentiation/func.py
    return (
        -20 * torch.exp(-0.2 * torch.sqrt(0.5 * (x**2 + y**2)))
        - torch.exp(0.5 * (torch.cos(2 * math.pi * x) + torch.cos(2 * math.pi * y)))
        + math.e
        + 20
    )


def _official_fdm_matrix(X):  # Differentiation/matrix.py: FDM_matrix
    N = X.size(0) - 2
    h = torch.tensor([[X[i] - X[i - 2]] * (N + 2) for i in range(2, N + 2)], dtype=X.dtype)
    out = torch.zeros((N, N + 2), dtype=X.dtype)
    for i in range(N):
        out[i] = torch.cat((torch.zeros(i), torch.tensor([-1.0, 0.0, 1.0]), torch.zeros(N - 1 - i)))
    return out / h


def _official_cheb_matrix(n_plus_1):  # Differentiation/matrix.py: cheb_matrix (float64 here)
    N = n_plus_1 - 1
    x = torch.cos(torch.pi * torch.arange(0, N + 1, dtype=torch.float64) / N)
    out = torch.zeros((N + 1, N + 1), dtype=torch.float64)
    mid = torch.arange(1, N)
    out[0, 0] = (2 * N**2 + 1) / 6
    out[0, 1:N] = 2 * (-1.0) ** mid / (1 - x[1:N])
    out[0, N] = 0.5 * (-1) ** N
    out[mid, 0] = -0.5 * (-1.0) ** mid / (1 - x[mid])
    out[mid, mid] = -x[mid] / (2 * (1 - x[mid] ** 2))
    out[mid, N] = 0.5 * (-1.0) ** (N + mid) / (1 + x[mid])
    out[N, 0] = -0.5 * (-1) ** N
    out[N, 1:N] = -2 * (-1.0) ** (N + mid) / (1 + x[1:N])
    out[N, N] = -(2 * N**2 + 1) / 6
    I, J = torch.meshgrid(mid, mid, indexing="ij")
    mask = I != J
    out[I[mask], J[mask]] = (-1.0) ** (I + J)[mask] / (x[I] - x[J])[mask]
    return x, out


def test_per_axis_fd_targets_and_loss_are_the_official_ones():
    n = 20
    X, u, G, M, exact = numdiff_targets.per_axis_fd_set(2, n, 2)
    x = torch.linspace(-2, 2, n, dtype=torch.float64)
    XX, YY = torch.meshgrid(x, x, indexing="ij")  # the official torch.meshgrid(X, Y) (ij)
    target = _official_ackley(XX, YY)
    xder = _official_fdm_matrix(x) @ target  # (n-2, n): ∂x at the x-interior
    yder = (_official_fdm_matrix(x) @ target.T).T  # (n, n-2)
    assert torch.allclose(u.reshape(n, n), target)
    Gx, Gy, Mx, My = (t.reshape(n, n) for t in (G[:, 0], G[:, 1], M[:, 0], M[:, 1]))
    assert torch.allclose(Gx[1:-1, :], xder) and torch.allclose(Gy[:, 1:-1], yder)
    assert (
        Mx.sum() == My.sum() == (n - 2) * n and Mx[0].sum() == Mx[-1].sum() == My[:, 0].sum() == 0
    )
    # the exact gradient is the official target_x / target_y (Differentiation/func.py)
    xs, ys = X[:, 0], X[:, 1]
    r, e = (
        torch.sqrt(xs**2 + ys**2),
        torch.exp(0.5 * (torch.cos(2 * math.pi * xs) + torch.cos(2 * math.pi * ys))),
    )
    radial = -1 / (5 * math.sqrt(2)) / r * (-20 * torch.exp(-0.2 * torch.sqrt(0.5 * r**2)))
    assert torch.allclose(exact[:, 0], radial * xs + math.pi * torch.sin(2 * math.pi * xs) * e)
    assert torch.allclose(exact[:, 1], radial * ys + math.pi * torch.sin(2 * math.pi * ys) * e)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    ours, terms = numdiff_targets.PerAxisLoss()(model, (X, u, G, M))
    # the official FDM_loss, on (X, Y) grids with requires_grad
    Xg, Yg = XX.clone().requires_grad_(True), YY.clone().requires_grad_(True)
    pred = model(torch.stack([Xg.reshape(-1), Yg.reshape(-1)], 1)).view(n, n)
    dx = torch.autograd.grad(pred, Xg, torch.ones_like(pred), create_graph=True)[0]
    dy = torch.autograd.grad(pred, Yg, torch.ones_like(pred), create_graph=True)[0]
    official = (
        ((dx[1:-1, :] - xder) ** 2).mean()
        + ((dy[:, 1:-1] - yder) ** 2).mean()
        + ((pred - target) ** 2).mean()
    )
    assert ours.item() == pytest.approx(official.item(), rel=1e-12)
    assert terms["D0"].item() == pytest.approx(((pred - target) ** 2).mean().item(), rel=1e-12)


def test_chebyshev_targets_are_the_official_ones():
    cfg = numdiff_targets.Config.paper()
    n = 21  # N = 20
    X, (_, du), _ = numdiff_targets.training_set("chebyshev", 2, n, cfg)
    x_desc, D = _official_cheb_matrix(n)
    assert torch.allclose(
        torch.sort(2 * x_desc).values, X[::n, 0], atol=1e-14
    )  # the same CGL points
    # the official grid: X[i, j] = x_j, Y[i, j] = y_i (meshgrid, then transposed), nodes descending
    XX, YY = torch.meshgrid(2 * x_desc, 2 * x_desc, indexing="ij")
    XX, YY = XX.T, YY.T
    target = _official_ackley(XX, YY)
    xder = (D @ target.T * 2.0 / 4).T
    yder = D @ target * 2.0 / 4
    # ours is in ascending ij order: point (a, b) = (x_a, y_b); the official's (i, j) = (y_i, x_j)
    # descending
    ours_dx = du[:, 0, 0].reshape(n, n).flip(0, 1).T
    ours_dy = du[:, 0, 1].reshape(n, n).flip(0, 1).T
    assert torch.allclose(ours_dx, xder, atol=1e-9) and torch.allclose(ours_dy, yder, atol=1e-9)
    X_l2, _, _ = numdiff_targets.training_set("L2", 2, n, cfg)
    assert torch.equal(X_l2, X)  # the paper trains L2 and exact on the CGL grid too
