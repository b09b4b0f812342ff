"""The `sobolev` command: list, run with overrides, resume, errors; the demo's outputs."""

import json

from click.testing import CliRunner

from sobolev.cli import main


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_list_names_every_experiment():
    from sobolev.experiments import EXPERIMENTS

    res = _run("list")
    assert res.exit_code == 0
    for name in EXPERIMENTS:
        assert name in res.output


def test_demo_quick_writes_a_well_formed_run(tmp_path):
    out = tmp_path / "demo"
    res = _run("run", "regression", "--quick", "--out", str(out), "--set", "epochs=60", "--set", "log_every=20",
               "--set", "losses=L2,H1")
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["epochs"] == 60 and cfg["config"]["losses"] == ["L2", "H1"]
    summary = json.loads((out / "summary.json").read_text())
    for fn in ("sin", "exp"):
        for loss in ("L2", "H1"):
            r = summary["results"][fn][loss]
            assert 0 < r["value_rel_l2"] < 10 and 0 < r["deriv_rel_l2"] < 10
    for fig in summary["figures"]:
        assert (out / fig).stat().st_size > 1000
    assert (out / "sin" / "H1" / "metrics.jsonl").exists() and (out / "sin" / "H1" / "checkpoint.pt").exists()
    assert "| epoch | L2 | H1 |" in res.output
    # resuming a finished run recomputes nothing and gives the same summary
    res2 = _run("run", "regression", "--out", str(out), "--resume")
    assert res2.exit_code == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["results"] == summary["results"]


def test_errors_are_clear(tmp_path):
    res = CliRunner().invoke(main, ["run", "nope"])
    assert res.exit_code == 2 and "unknown experiment" in res.output
    res = CliRunner().invoke(main, ["run", "regression", "--quick", "--set", "bogus=1", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "unknown setting 'bogus'" in res.output
    res = CliRunner().invoke(main, ["run", "regression", "--quick", "--set", "epochs=abc", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "epochs" in res.output
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("")
    res = CliRunner().invoke(main, ["run", "regression", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = CliRunner().invoke(main, ["run", "regression", "--resume", "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "config.json" in res.output


def test_list_overrides_are_stripped_and_checked(tmp_path):
    from sobolev.cli import apply_overrides
    from sobolev.experiments import conditioning, regression

    cfg = apply_overrides(regression.Config(), ("losses=L2, H1",))
    assert cfg.losses == ("L2", "H1")
    import click
    import pytest

    with pytest.raises(click.BadParameter, match="expected 2"):
        apply_overrides(conditioning.Config(), ("rate_window=0.1",))
