"""The numdiff-targets experiment: a tiny run writes well-formed outputs; config checks; helpers."""

import dataclasses
import json

import pytest
import torch

from sobolev.models import MLP
from sobolev.training import seed_everything
from sobolev_lab.experiments import numdiff_targets as m

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


def _tables(cfg, summary, setting="ours"):
    """What the CLI does: the config and setting beside the summary, through JSON."""
    return m.tables(
        json.loads(json.dumps({"setting": setting, "config": dataclasses.asdict(cfg), **summary}))
    )


def test_tiny_run_writes_well_formed_outputs(tmp_path):
    cfg = m.Config(**TINY)
    summary = m.run(cfg, tmp_path)
    json.dumps(summary, allow_nan=False)  # strict JSON: missing values are None, not NaN
    labels = list(m.METHODS.values())
    for fig in summary["figures"]:
        assert (tmp_path / fig).stat().st_size > 1000
    assert sorted(summary["figures"]) == ["accuracy.png", "curves.png", "dims.png"]
    assert not (tmp_path / "table.md").exists()  # the CLI writes it, from tables(summary)
    table = _tables(cfg, summary)
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
        # 12 steps of an 8-wide net barely move it (measured: value MSE 35.8, gradient rel. error 1.004)
        assert 33 < r["d0_mse"] < 39 and 0.95 < r["d1_rel"] < 1.05 and len(r["per_seed"]) == 1
    for label in labels:
        run_dir = tmp_path / "2d" / label / "seed0"
        records = [
            json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        ]
        assert [rec["step"] for rec in records] == [0, 4, 8, 12] and "d1_mse" in records[-1]
        assert (run_dir / "checkpoint.pt").exists() and (
            tmp_path / "d3" / label / "seed0" / "metrics.jsonl"
        ).exists()

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
        m.run(m.Config(**{**TINY, "dim_points": (6,)}), tmp_path)
    with pytest.raises(ValueError, match="methods"):
        m.run(m.Config(**{**TINY, "methods": ("L2", "spline")}), tmp_path)
    with pytest.raises(ValueError, match="thresholds"):
        m.run(m.Config(**{**TINY, "thresholds": (0.0,)}), tmp_path)


def test_training_sets_use_the_right_grids():
    cfg = m.Config()
    X_fd, (u_fd, du_fd), exact_fd = m.training_set("fd", 2, 32, cfg)
    X_ch, (u_ch, du_ch), exact_ch = m.training_set("chebyshev", 2, 32, cfg)
    assert (
        X_fd.shape == (30 * 30, 2) and du_fd.shape == (900, 1, 2) and exact_fd.shape == (900, 1, 2)
    )
    assert X_ch.shape == (32 * 32, 2) and float(X_ch.min()) == -2.0 and float(X_ch.max()) == 2.0
    # the estimates match the exact gradient at their own points (a mismatched grid would not)
    assert float((du_fd - exact_fd).norm() / exact_fd.norm()) < 0.2
    assert float((du_ch - exact_ch).norm() / exact_ch.norm()) < 0.1
    X_l2, stack_l2, none = m.training_set("L2", 2, 32, cfg)
    assert len(stack_l2) == 1 and none is None and torch.allclose(stack_l2[0], m.ackley(X_l2))


def test_fitted_order_recovers_power_laws_and_skips_the_rounding_floor():
    ns = [8, 16, 32, 64, 128]
    assert m.fitted_order(ns, [n**-4.0 for n in ns]) == pytest.approx(4.0)
    assert m.fitted_order(ns, [1e-3, 1e-6, 1e-12, 1e-13, 1e-13]) is None
    assert m.fitted_order(ns, [None, 1.0, 2.0**-2, 4.0**-2, 8.0**-2]) == pytest.approx(2.0)


@pytest.mark.parametrize("fd_boundary", ["interior", "per-axis"])
def test_logged_loss_terms_are_the_independent_ones(tmp_path, fd_boundary):
    """Step 0 of each H1 run logs D0 = value MSE and D1 = gradient MSE of the initial network against
    the method's targets, recomputed here by plain autograd (a broken derivative term fails)."""
    cfg = m.Config(
        **{
            **TINY,
            "studies": ("2d",),
            "methods": ("exact", "fd", "chebyshev"),
            "fd_boundary": fd_boundary,
        }
    )
    m.run(cfg, tmp_path)
    for method in cfg.methods:
        if method == "fd" and fd_boundary == "per-axis":
            X, u, G, M, _ = m.per_axis_fd_set(2, cfg.n_grid, cfg.fd_accuracy)
        else:
            X, (u, du), _ = m.training_set(method, 2, cfg.n_grid, cfg)
            G, M = du[:, 0, :], torch.ones_like(du[:, 0, :])
        seed_everything(0)
        model = MLP(2, 1, cfg.width, cfg.depth, cfg.activation)
        x = X.float().requires_grad_(True)
        y = model(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        d0 = float(((y.detach() - u.float()) ** 2).mean())
        d1 = float((((g.detach() - G.float()) ** 2) * M.float()).sum(0).div(M.float().sum(0)).sum())
        first = json.loads(
            (tmp_path / "2d" / m.METHODS[method] / "seed0" / "metrics.jsonl").open().readline()
        )
        assert first["D0"] == pytest.approx(d0, rel=1e-5) and first["D1"] == pytest.approx(
            d1, rel=1e-5
        )
        assert d1 > 1.0  # the initial network is far from the gradient targets: the term matters
