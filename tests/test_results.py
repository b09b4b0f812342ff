"""Committed results: the README's tables are exactly what `sobolev report` makes of docs/results."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sobolev_lab import results
from sobolev_lab.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.mark.parametrize("doc", ["README.md", "mutation/RESULTS.md"])
def test_readme_tables_match_committed_summaries(doc):
    text = (ROOT / doc).read_text()
    keys = [m.group("key") for m in results.BLOCK.finditer(text)]
    assert keys, f"{doc} has no results blocks"
    assert len(keys) == len(set(keys)), "a results block appears twice"
    rendered = results.render_readme(text, ROOT / results.RESULTS_DIR)
    for new, old in zip(results.BLOCK.finditer(rendered), results.BLOCK.finditer(text)):
        assert new.group("body") == old.group("body"), (
            f"{doc} block {old.group('key')!r} differs from its committed results: run `make report`"
        )


def test_every_committed_run_is_complete():
    for d in sorted((ROOT / results.RESULTS_DIR).iterdir()):
        summary = json.loads((d / "summary.json").read_text())
        assert summary["setting"] in ("ours", "paper") and not summary.get("quick"), d
        for fig in summary.get("figures", []):
            assert (d / fig).exists(), f"{d.name}: figure {fig} is not committed"
        assert not list(d.glob("*.pt")), f"{d.name}: checkpoints must not be committed"


def test_readme_figures_exist():
    import re

    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text()):
        assert (ROOT / path).exists(), f"README shows {path}, which is not in the repository"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / "run"
    res = CliRunner().invoke(
        main,
        [
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
            "table_every=2",
            "--set",
            "seeds=2",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    return out


def test_collect_and_report_round_trip(tiny_run, tmp_path):
    root = tmp_path / "docs" / "results"
    dest = results.collect(tiny_run, "demo", root)
    assert {p.name for p in dest.iterdir()} == {
        "summary.json",
        "config.json",
        "table.md",
        "fit.png",
        "curves.png",
    }
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results: demo -->\nstale numbers\n<!-- /results -->\nend\n")
    assert results.write_readme(readme, root)
    text = readme.read_text()
    assert "stale numbers" not in text and (dest / "table.md").read_text().strip() in text
    assert text.startswith("intro\n<!-- results: demo -->\n") and text.endswith(
        "<!-- /results -->\nend\n"
    )
    assert not results.write_readme(readme, root)  # idempotent

    # a number edited by hand is caught
    readme.write_text(text.replace("| L2 |", "| L2 (edited) |", 1))
    assert results.render_readme(readme.read_text(), root) != readme.read_text()


def test_report_cli_check_and_missing_results(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["report", "--collect", str(tiny_run), "--key", "demo"])
    assert (
        res.exit_code == 2 and "README.md not found" in res.output
    )  # collected, but no README here
    assert (tmp_path / "docs/results/demo/summary.json").exists()
    Path("README.md").write_text("<!-- results: demo -->\nx\n<!-- /results -->\n")
    assert CliRunner().invoke(main, ["report", "--check"]).exit_code == 1
    assert CliRunner().invoke(main, ["report"]).exit_code == 0
    assert CliRunner().invoke(main, ["report", "--check"]).exit_code == 0
    Path("README.md").write_text("<!-- results: nothing-here -->\nx\n<!-- /results -->\n")
    res = CliRunner().invoke(main, ["report"])
    assert res.exit_code == 2 and "nothing-here" in res.output


def test_collect_refuses_an_unfinished_run(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="summary.json"):
        results.collect(tmp_path, "x", tmp_path / "out")


def test_mutation_table_counts_runs_samples_and_survivors():
    c = lambda n, k, s: {
        "mutants": n,
        "checked": n if s is None else s,
        "killed": k,
        "timeout": 0,
        "survived": (n if s is None else s) - k,
        "no_tests": 0,
    }
    scores = {
        "tool": "mutmut 3.8.1",
        "modules": {
            "full": {
                "date": "2026-12-01",
                "sampled": None,
                "first": c(200, 150, None),
                "after_triage": c(200, 190, None),
            },
            "part": {
                "date": "2026-12-02",
                "sampled": None,
                "first": c(100, 40, 50),
                "after_triage": c(100, 49, 50),
            },
            "some": {
                "date": "2026-12-01",
                "sampled": 40,
                "first": c(40, 30, None),
                "after_triage": c(40, 38, None),
            },
        },
    }
    lines = results.mutation_table(scores).splitlines()
    assert lines[2] == "| `full` | 200 | 150 (75.0%) | 190 (95.0%) | 10 |"
    assert lines[3] == "| `part` | 100 (50 run) | 40 (80.0%) | 49 (98.0%) | 1 |"
    assert lines[4] == "| `some` | 40 sampled | 30 (75.0%) | 38 (95.0%) | 2 |"
    assert "runs of 2026-12-01, 2026-12-02" in lines[-1]
