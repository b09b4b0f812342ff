"""Tables and figures (:mod:`sobolev_lab.report`): importing it is light (matplotlib comes with the
first figure), and the cells of the tables."""

import math
import subprocess
import sys

import pytest

from sobolev_lab.report import fmt, json_safe, save, spread_cell, subplots, wins_cell


def test_import_does_not_load_matplotlib():
    code = (
        "import sys, sobolev_lab.report, sobolev_lab.runs, sobolev_lab.cli; "
        "print(any(m.startswith('matplotlib') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_figure_is_written_with_the_agg_backend(tmp_path):
    fig, axes = subplots(1, 2)
    assert axes.shape == (1, 2)
    axes[0, 0].plot([0, 1], [1, 0])
    assert save(fig, tmp_path / "f.png") == "f.png" and (tmp_path / "f.png").stat().st_size > 0
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"


def test_cells():
    assert fmt(0.123456) == "0.1235" and fmt(1e-5) == "1.000e-05" and fmt(None) == "–"
    assert fmt(math.inf) == "∞" and fmt(math.nan) == "–"
    r = {"e": 0.5, "range": {"e": [0.25, 1.0]}, "per_seed": [{}, {}]}
    assert spread_cell(r, "e") == "0.5 [0.25, 1]"
    assert spread_cell({"e": 0.5, "per_seed": [{}]}, "e") == "0.5"
    assert wins_cell((2, 3)) == "2/3"
    assert json_safe({"a": [math.inf, 1.0], "b": (math.nan,)}) == {"a": [None, 1.0], "b": [None]}


def test_a_figure_is_never_written_through_a_symbolic_link(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"not yours")
    run = tmp_path / "run"
    run.mkdir()
    (run / "curves.png").symlink_to(outside)
    fig, _ = subplots(1, 1)
    with pytest.raises(ValueError, match="curves.png is a symbolic link"):
        save(fig, run / "curves.png")
    assert outside.read_bytes() == b"not yours"
    fig, _ = subplots(1, 1)
    assert save(fig, run / "fine.png") == "fine.png" and (run / "fine.png").stat().st_size > 100


def test_a_figure_through_a_link_is_a_one_line_error_of_the_run(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from sobolev_lab.cli import main
    from sobolev_lab.experiments import regression

    outside = tmp_path / "outside.png"
    outside.write_bytes(b"not yours")

    def run(cfg, out):
        (out / "fig.png").symlink_to(outside)  # as a file planted in the run directory would be
        fig, _ = subplots(1, 1)
        save(fig, out / "fig.png")
        return {"results": {}, "figures": ["fig.png"]}

    monkeypatch.setattr(regression, "run", run)
    res = CliRunner().invoke(main, ["run", "regression", "--quick", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert res.output.splitlines()[-1].startswith("Error:") and "fig.png" in res.output
    assert outside.read_bytes() == b"not yours"
