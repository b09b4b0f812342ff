"""The `sobolev` command: list, version, threads, run with overrides, resume, errors; the demo's
outputs."""

import json
from importlib.metadata import version

import pytest
import torch
from click.testing import CliRunner

from sobolev_lab.cli import main
from sobolev_lab.experiments import regression


def _run(*args, **kw):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kw)


def test_list_names_every_experiment():
    from sobolev_lab.experiments import EXPERIMENTS

    res = _run("list")
    assert res.exit_code == 0
    for name in EXPERIMENTS:
        assert name in res.output


def test_demo_quick_writes_a_well_formed_run(tmp_path):
    out = tmp_path / "demo"
    res = _run(
        "run",
        "regression",
        "--quick",
        "--out",
        str(out),
        "--set",
        "epochs=60",
        "--set",
        "log_every=20",
        "--set",
        "losses=L2,H1",
    )
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["epochs"] == 60 and cfg["config"]["losses"] == ["L2", "H1"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["setting"] == "ours" and summary["config"]["epochs"] == 60
    for fn in ("sin", "exp"):
        for loss in ("L2", "H1"):
            r = summary["results"][fn][loss]
            assert len(r["per_seed"]) == 2  # the quick setting's seeds, paired
            # the stored value is the median of the seeds' values, the range their extremes
            vals = sorted(p["deriv_rel_l2"] for p in r["per_seed"])
            assert r["deriv_rel_l2"] == sum(vals) / 2 and r["range"]["deriv_rel_l2"] == vals
        # 60 epochs of Adam: neither loss has converged, but the errors are those of a fit,
        # not of noise
        assert all(0.01 < r["value_rel_l2"] < 1.0 for r in summary["results"][fn].values())
    for fig in summary["figures"]:
        assert (out / fig).stat().st_size > 1000
    ens = out / "sin" / "H1" / "ensemble"  # both seeds trained at once
    assert {json.loads(line)["seed"] for line in (ens / "metrics.jsonl").open()} == {0, 1}
    assert (ens / "checkpoint.pt").exists()
    assert "| epoch | L2 | H1 |" in res.output
    assert (out / "table.md").read_text() == regression.tables(summary)
    # resuming a finished run recomputes nothing and gives the same summary
    res2 = _run("run", "regression", "--out", str(out), "--resume")
    assert res2.exit_code == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["results"] == summary["results"]


def test_errors_are_clear(tmp_path):
    res = CliRunner().invoke(main, ["run", "nope"])
    assert res.exit_code == 2 and "unknown experiment" in res.output
    res = CliRunner().invoke(
        main, ["run", "regression", "--quick", "--set", "bogus=1", "--out", str(tmp_path / "a")]
    )
    assert res.exit_code == 2 and "unknown setting 'bogus'" in res.output
    res = CliRunner().invoke(
        main, ["run", "regression", "--quick", "--set", "epochs=abc", "--out", str(tmp_path / "b")]
    )
    assert res.exit_code == 2 and "epochs" in res.output
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("")
    res = CliRunner().invoke(main, ["run", "regression", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = CliRunner().invoke(main, ["run", "regression", "--resume", "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "config.json" in res.output


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny regression run, and a snapshot of its files' bytes."""
    out = tmp_path_factory.mktemp("cli") / "run"
    res = _run(
        "run",
        "regression",
        "--quick",
        "--out",
        str(out),
        "--set",
        "epochs=4",
        "--set",
        "log_every=2",
        "--set",
        "losses=L2",
        "--set",
        "functions=sin",
        "--set",
        "seeds=1",
    )
    assert res.exit_code == 0, res.output
    return out


def _snapshot(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "bad, key",
    [
        ("width=0", "width"),
        ("depth=0", "depth"),
        ("epochs=-5", "epochs"),
        ("lr=-1", "lr"),
        ("losses=L7", "losses"),
        ("losses=", "losses"),
        ("n_train=-3", "n_train"),
        ("n_train=0", "n_train"),
        ("dtype=float16", "dtype"),
        ("activation=foo", "activation"),
        ("seeds=0", "seeds"),
    ],
)
def test_bad_settings_are_one_line_errors_that_delete_nothing(finished_run, bad, key):
    before = _snapshot(finished_run)
    res = CliRunner().invoke(
        main, ["run", "regression", "--out", str(finished_run), "--overwrite", "--set", bad]
    )
    assert res.exit_code == 2, res.output
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and key in lines[0], res.output
    assert (
        _snapshot(finished_run) == before
    )  # --overwrite deletes only after the settings are checked


def test_resume_cannot_switch_setting(finished_run):
    before = _snapshot(finished_run)
    res = CliRunner().invoke(
        main, ["run", "regression", "--out", str(finished_run), "--resume", "--paper"]
    )
    assert res.exit_code == 2 and "has no --paper setting" not in res.output
    full = finished_run.parent / "full"
    full.mkdir()
    (full / "config.json").write_text(
        json.dumps(
            {
                "experiment": "regression",
                "setting": "ours",
                "quick": False,
                "config": json.loads((finished_run / "config.json").read_text())["config"],
            }
        )
    )
    res = CliRunner().invoke(main, ["run", "regression", "--out", str(full), "--resume", "--quick"])
    assert res.exit_code == 2 and "without --quick" in res.output, res.output
    assert _snapshot(finished_run) == before


def test_paper_flag_needs_an_official_setting(tmp_path):
    res = CliRunner().invoke(main, ["run", "regression", "--paper", "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "no --paper setting" in res.output
    assert not (tmp_path / "p").exists()


def test_a_failed_run_says_how_to_start_over(tmp_path, monkeypatch):
    def broken(cfg, out):
        raise ValueError("data: the folder holds 1 image, need at least 2")

    monkeypatch.setattr(regression, "run", broken)
    out = tmp_path / "failed"
    res = CliRunner().invoke(main, ["run", "regression", "--quick", "--out", str(out)])
    assert res.exit_code == 2
    lines = [
        l for l in res.output.splitlines() if l.strip() and not l.startswith("sobolev: running")
    ]
    assert len(lines) == 1 and "1 image" in lines[0] and "--overwrite" in lines[0], res.output


def test_overwrite_keeps_the_previous_run_when_the_new_one_fails(finished_run, monkeypatch):
    before = _snapshot(finished_run)

    def broken(cfg, out):
        (out / "partial.txt").write_text("half a run")
        raise ValueError("model: something only the run can find out")

    monkeypatch.setattr(regression, "run", broken)
    res = CliRunner().invoke(
        main, ["run", "regression", "--quick", "--out", str(finished_run), "--overwrite"]
    )
    assert res.exit_code == 2 and "kept as it was" in res.output, res.output
    assert _snapshot(finished_run) == before
    assert not list(finished_run.parent.glob(".*replaced"))


def test_version_prints_the_installed_version():
    res = _run("--version")
    assert res.exit_code == 0
    assert version("sobolev") in res.output


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_threads_sets_torch_threads(restore_threads):
    torch.set_num_threads(2)
    assert _run("--threads", "1", "list").exit_code == 0
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    assert _run("list", env={"SOBOLEV_THREADS": "1"}).exit_code == 0  # the environment variable too
    assert torch.get_num_threads() == 1


def test_threads_rejects_zero(restore_threads):
    res = CliRunner().invoke(main, ["--threads", "0", "list"])
    assert res.exit_code == 2 and "--threads" in res.output


@pytest.mark.parametrize(
    "name, bad, key",
    [
        ("regression", "optimizer=nesterov", "optimizer"),
        ("regression", "schedule=sometimes", "schedule"),
        ("student-teacher", "model=deep", "model"),
        ("student-teacher", "thresholds=-1", "thresholds"),
        ("architectures", "thresholds=-1", "thresholds"),
        ("conditioning", "dense_max=0", "dense_max"),
        ("conditioning", "model=deep", "model"),
        ("denoising-autoencoder", "noise_sigma=-1", "noise_sigma"),
        ("denoising-autoencoder", "sinusoid_amplitude=nan", "sinusoid_amplitude"),
        ("denoising-autoencoder", "data=/nonexistent/images", "/nonexistent/images"),
        ("diffusion", "schedule=quadratic", "schedule"),
        ("diffusion", "data=/nonexistent/images", "/nonexistent/images"),
        ("differential-ml", "min_batch=0", "min_batch"),
        ("differential-ml", "max_steps=0", "max_steps"),
        ("differential-ml", "dims=0", "dims"),
        ("differential-ml", "match_at=999", "match_at"),
        ("differential-ml", "lr_min_factor=-1", "lr_min_factor"),
        ("numdiff-targets", "accuracy_orders=3", "accuracy_orders"),
        ("numdiff-targets", "optimizer=nesterov", "optimizer"),
        ("numdiff-targets", "dim_batch_size=-1", "batch_size"),
        ("theory", "flow_method=Euler", "flow_method"),
        ("theory", "lam=nan", "lam"),
        ("theory", "widths=0", "widths"),
    ],
)
def test_every_check_runs_before_anything_is_written(tmp_path, monkeypatch, name, bad, key):
    from sobolev_lab import experiments

    mod = experiments.get(name)
    monkeypatch.setattr(mod, "run", lambda cfg, out: {"results": {}, "figures": []})
    monkeypatch.setattr(mod, "tables", lambda summary: "a table\n")
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", name, "--quick", "--out", str(out), "--set", bad])
    assert res.exit_code == 2, res.output
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and key in lines[0], res.output
    assert not out.exists()
