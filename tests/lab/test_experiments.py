"""What every experiment with official code shares: ``Config.paper()`` holds the official settings,
``paper(quick=True)`` scales down only the budget, and ``--paper --quick`` runs end to end."""

import dataclasses
import json

import pytest

from sobolev_lab.experiments import architectures, numdiff_targets, student_teacher


def test_paper_settings_are_the_official_ones():
    nd = numdiff_targets.Config.paper()
    assert (nd.n_grid, nd.n_cheb, nd.l2_exact_grid, nd.fd_accuracy, nd.fd_boundary) == (
        100,
        101,
        "chebyshev",
        2,
        "per-axis",
    )
    assert (nd.width, nd.depth, nd.activation, nd.optimizer, nd.lr, nd.schedule) == (
        64,
        4,
        "tanh",
        "adam",
        1e-4,
        "constant",
    )
    assert (nd.steps, nd.seeds, nd.thresholds, nd.reach_on, nd.dtype) == (
        200_000,
        5,
        (1e-3, 1e-4, 1e-5),
        "train",
        "float32",
    )
    ar = architectures.Config.paper()
    assert (ar.model_variant, ar.width, ar.n_train, ar.n_test, ar.seeds) == (
        "official",
        64,
        1000,
        100,
        20,
    )
    assert (ar.lr, ar.lbfgs_at, ar.steps, ar.lbfgs_lr, ar.lbfgs_max_iter, ar.lbfgs_line_search) == (
        1e-5,
        25_000,
        50_000,
        0.01,
        20,
        "none",
    )
    assert (
        ar.functions == ("f1", "f2", "f3")
        and ar.losses == ("L2", "H1", "H2")
        and ar.dtype == "float32"
    )
    st = student_teacher.Config.paper()
    assert st.optimizer == "sgd" and st.losses == ("L2", "H1")
    assert st.activations == ("relu", "leaky_relu", "gelu", "tanh", "sine")


@pytest.mark.parametrize(
    "mod, scaled",
    [
        (numdiff_targets, {"steps", "seeds", "log_every", "n_test"}),
        (architectures, {"steps", "lbfgs_at", "seeds", "log_every", "functions"}),
        (student_teacher, {"steps", "seeds", "log_every", "n_train", "n_test", "lrs"}),
    ],
)
def test_paper_quick_scales_down_only_budget_fields(mod, scaled):
    full, quick = (
        dataclasses.asdict(mod.Config.paper()),
        dataclasses.asdict(mod.Config.paper(quick=True)),
    )
    assert {k for k in full if full[k] != quick[k]} == scaled
    assert quick["steps"] < full["steps"] and quick["seeds"] < full["seeds"]


@pytest.mark.parametrize("mod", [numdiff_targets, architectures, student_teacher])
def test_paper_quick_runs(mod, tmp_path, as_cli):
    cfg = mod.Config.paper(quick=True)
    summary = mod.run(cfg, tmp_path)
    json.dumps(summary, allow_nan=False)
    table = mod.tables(as_cli(summary, cfg, "paper"))
    assert f"setting: paper, {cfg.seeds} seeds" in table
    for fig in summary["figures"]:
        assert (tmp_path / fig).stat().st_size > 1000
