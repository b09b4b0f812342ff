"""`sobolev merge` (:func:`sobolev_lab.runs.merge`, the diffusion experiment's ``merge``): runs
that split a comparison, one loss per run, merge into the run that trains every loss in one
process; every check runs before the merged directory is written."""

import json

import matplotlib.image as mpimg
import pytest
import torch
from click.testing import CliRunner

from sobolev_lab.cli import main
from sobolev_lab.runs import RunError, execute, merge

TINY = (
    "epochs=1",
    "eval_every=1",
    "n_train=200",
    "n_test=64",
    "batch_size=100",
    "base=4",
    "timesteps=20",
    "sample_steps=3",
    "n_fd_samples=16",
    "classifier_steps=2",
    "n_show=2",
    "seeds=1",
    "objectives=pred_x0",
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Diffusion runs with L2, with H1, and with both in one process."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("merge")
    made = {}
    for name, losses in (("L2", "L2"), ("H1", "H1"), ("both", "L2,H1")):
        made[name] = root / name
        execute(
            "diffusion",
            quick=True,
            out=made[name],
            sets=(*TINY, f"losses={losses}"),
            resume=False,
            overwrite=False,
        )
    torch.set_num_threads(old)
    return made


COSTS = ("time_per_epoch_s", "peak_step_memory_mb", "train_time_s", "label_time_s")  # measured


def _without_costs(x):
    if isinstance(x, dict):
        return {k: _without_costs(v) for k, v in x.items() if k not in COSTS}
    return [_without_costs(v) for v in x] if isinstance(x, list) else x


def test_merged_runs_equal_one_run_of_every_loss(runs, tmp_path):
    out = tmp_path / "merged"
    summary = merge([runs["L2"], runs["H1"]], out, note="made  here,\n in a test")
    both = json.loads((runs["both"] / "summary.json").read_text())
    assert summary["config"] == both["config"]
    assert _without_costs(summary["results"]) == _without_costs(both["results"])
    assert summary["curves"] == both["curves"] and summary["floor"] == both["floor"]
    assert summary["provenance"] == "made here, in a test" and summary["one_pass"] is False
    assert [r["losses"] for r in summary["runs"]] == [["L2"], ["H1"]]
    assert json.loads((out / "summary.json").read_text())["results"] == summary["results"]
    assert json.loads((out / "config.json").read_text())["config"]["losses"] == ["L2", "H1"]
    table = (out / "table.md").read_text()
    assert table.startswith("Provenance: made here") and "Merged from 2 runs" in table
    grids = [mpimg.imread(runs[n] / "samples_pred_x0.png") for n in ("L2", "H1")]
    merged = mpimg.imread(out / "samples_pred_x0.png")
    assert merged.shape[:2] == (grids[0].shape[0], grids[0].shape[1] + grids[1].shape[1])
    assert summary["figures"] == ["fd_curves.png", "samples_pred_x0.png"]


@pytest.mark.parametrize(
    "which, words",
    [
        (("L2", "L2"), "different losses"),
        (("L2", "both"), "different losses"),
        (("L2",), "at least two"),
    ],
)
def test_merge_refuses_runs_that_do_not_split_a_comparison(runs, tmp_path, which, words):
    out = tmp_path / "merged"
    with pytest.raises((RunError, Exception), match=words):
        merge([runs[n] for n in which], out)
    assert not out.exists()


def test_merge_names_the_setting_that_differs(runs, tmp_path):
    other = tmp_path / "other"
    execute(
        "diffusion",
        quick=True,
        out=other,
        sets=(*TINY, "losses=H1", "lr=0.01"),
        resume=False,
        overwrite=False,
    )
    with pytest.raises(RunError, match="differs from run 1 in lr"):
        merge([runs["L2"], other], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_unfinished_runs_other_experiments_and_a_used_out(runs, tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(RunError, match="only finished runs"):
        merge([runs["L2"], unfinished], tmp_path / "merged")
    execute(
        "regression",
        quick=True,
        out=tmp_path / "reg",
        sets=("epochs=2", "log_every=1", "losses=L2", "functions=sin", "seeds=1"),
        resume=False,
        overwrite=False,
    )
    with pytest.raises(RunError, match="only runs of one experiment"):
        merge([runs["L2"], tmp_path / "reg"], tmp_path / "merged")
    with pytest.raises(Exception, match="not empty"):
        merge([runs["L2"], runs["H1"]], tmp_path / "reg")
    with pytest.raises(RunError, match="inside"):
        merge([runs["L2"], runs["H1"]], runs["L2"] / "merged")
    assert not (tmp_path / "merged").exists() and not (runs["L2"] / "merged").exists()


def test_cli_merge(runs, tmp_path):
    args = ["merge", str(runs["L2"]), str(runs["H1"]), "--out", str(tmp_path / "m")]
    res = CliRunner().invoke(main, [*args, "--note", "x"])
    assert res.exit_code == 0, res.output
    assert "merged 2 runs of 'diffusion'" in res.output
    res = CliRunner().invoke(main, ["merge", str(runs["L2"]), "--out", str(tmp_path / "n")])
    assert res.exit_code != 0 and "at least two" in res.output


def test_differential_ml_runs_of_one_dimension_each_merge_into_the_run_of_both(tmp_path):
    tiny = (
        "sizes=256,512",
        "match_at=256",
        "seeds=1",
        "epochs=2",
        "high_d=0",
        "n_test=64",
        "min_batch=128",
    )
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    for name, dims in (("one", "1"), ("three", "3"), ("both", "1,3")):
        execute(
            "differential-ml",
            quick=True,
            out=tmp_path / name,
            sets=(*tiny, f"dims={dims}"),
            resume=False,
            overwrite=False,
        )
    torch.set_num_threads(old)
    summary = merge([tmp_path / "one", tmp_path / "three"], tmp_path / "merged")
    both = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert summary["config"] == both["config"]
    assert _without_costs(summary["results"]) == _without_costs(both["results"])
    assert (tmp_path / "merged" / "error_vs_size.png").stat().st_size > 1000
    with pytest.raises(RunError, match="different dims"):
        merge([tmp_path / "one", tmp_path / "both"], tmp_path / "again")
