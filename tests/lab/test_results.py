"""Committed results: every table of the README, the pages under docs/ and mutation/RESULTS.md is
exactly what `sobolev report` makes of docs/results, and every link of those documents resolves."""

import json
import math
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sobolev_lab import results
from sobolev_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCUMENTS = results.documents(ROOT)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCUMENTS, ids=[p.relative_to(ROOT).as_posix() for p in DOCUMENTS])
def test_document_equals_its_rendering(doc):
    text = doc.read_text()
    keys = [m.group("key") for m in results.BLOCK.finditer(text)]
    assert len(keys) == len(set(keys)), "a results block appears twice"
    rendered = results.render_document(text, ROOT / results.RESULTS_DIR)
    for new, old in zip(results.BLOCK.finditer(rendered), results.BLOCK.finditer(text)):
        assert new.group("body") == old.group("body"), (
            f"{doc.name} block {old.group('key')!r} differs from its committed results: "
            "run `sobolev report`"
        )
    assert rendered == text


def test_documents_are_the_readme_the_docs_pages_and_the_mutation_results():
    names = {p.relative_to(ROOT).as_posix() for p in DOCUMENTS}
    assert {"README.md", "docs/benchmarks.md", "mutation/RESULTS.md"} <= names
    assert not [n for n in names if n.startswith("docs/results/")], "run tables are not documents"
    assert all((ROOT / n).is_file() for n in names)


@pytest.mark.parametrize("key, experiment", [(k, e) for k, e, _ in results.FULL_RUNS])
def test_every_committed_run_is_rendered_on_its_experiments_page(key, experiment):
    page = ROOT / results.page(experiment)
    assert page.is_file(), f"{experiment} has no page {results.page(experiment)}"
    assert f"<!-- results: {key} -->" in page.read_text(), f"{page.name} lacks the block {key}"


def test_readme_is_short_and_has_the_claims_table():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert "<!-- results: claims -->" in text


@pytest.mark.parametrize("doc", DOCUMENTS, ids=[p.relative_to(ROOT).as_posix() for p in DOCUMENTS])
def test_every_page_and_figure_a_document_links_to_exists(doc):
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{doc.relative_to(ROOT)} links to {target}, which does not exist"


def test_every_committed_run_is_complete():
    for d in sorted((ROOT / results.RESULTS_DIR).iterdir()):
        summary = json.loads((d / "summary.json").read_text())
        assert summary["setting"] in ("ours", "paper") and not summary.get("quick"), d
        for fig in summary.get("figures", []):
            assert (d / fig).exists(), f"{d.name}: figure {fig} is not committed"
        assert not list(d.glob("*.pt")), f"{d.name}: checkpoints must not be committed"


def test_claims_are_of_committed_runs():
    keys = {k for k, _, _ in results.FULL_RUNS}
    assert {c.key for c in results.CLAIMS} <= keys


def _row(table: str, link: str) -> str:
    (row,) = [line for line in table.splitlines() if link in line]
    return row


def test_claims_table_verdicts_and_budgets_come_from_the_summaries(tmp_path):
    root = tmp_path / "docs" / "results"
    shutil.copytree(ROOT / results.RESULTS_DIR, root)
    link = f"]({results.page('student-teacher').as_posix()})"
    claims = tuple(c for c in results.CLAIMS if c.key == "student-teacher")
    before = _row(results.claims_table(root, claims), link)

    path = root / "student-teacher" / "summary.json"
    s = json.loads(path.read_text())
    for seed in s["results"]["relu"]["H1"]["per_seed"]:
        seed["value_rel_err"] = math.inf  # H1 diverged: never below L2
    n = len(s["results"]["relu"]["H1"]["per_seed"])
    s["config"]["steps"] = 123
    path.write_text(json.dumps(s))
    after = _row(results.claims_table(root, claims), link)

    assert after != before
    assert f"relu 0/{n}," in after and "123 steps" in after
    assert "123 steps" not in before


def test_held_counts_the_seeds_in_which_every_comparison_held():
    a = {"per_seed": [{"x": 1.0, "y": 5.0}, {"x": 3.0, "y": 1.0}, {"x": float("nan"), "y": 0.0}]}
    b = {"per_seed": [{"x": 2.0, "y": 6.0}, {"x": 2.0, "y": 2.0}, {"x": 9.0, "y": 1.0}]}
    assert results.held((a, "x", b, "x")) == "1/3"  # a NaN seed counts as +inf
    assert results.held((a, "y", b, "y")) == "3/3"
    assert results.held((a, "x", b, "x"), (a, "y", b, "y")) == "1/3"
    assert results.held((a, "y", a, "x")) == "2/3"  # two keys of one record
    with pytest.raises(ValueError, match="same seeds"):
        results.held((a, "x", {"per_seed": [{"x": 0.0}]}, "x"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / "run"
    sets = ["epochs=4", "log_every=2", "table_every=2", "seeds=2"]
    res = CliRunner().invoke(
        main,
        [
            "run",
            "regression",
            "--quick",
            "--out",
            str(out),
            *(a for s in sets for a in ("--set", s)),
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
    assert results.write_document(readme, root)
    text = readme.read_text()
    assert "stale numbers" not in text and (dest / "table.md").read_text().strip() in text
    assert text.startswith("intro\n<!-- results: demo -->\n") and text.endswith(
        "<!-- /results -->\nend\n"
    )
    assert not results.write_document(readme, root)  # idempotent

    # a number edited by hand is caught
    readme.write_text(text.replace("| L2 |", "| L2 (edited) |", 1))
    assert results.render_document(readme.read_text(), root) != readme.read_text()


def test_report_cli_check_and_missing_results(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["report", "--collect", str(tiny_run), "--key", "demo"])
    # collected, but there is no README here
    assert res.exit_code == 2 and "README.md not found" in res.output
    assert (tmp_path / "docs/results/demo/summary.json").exists()
    Path("README.md").write_text("<!-- results: demo -->\nx\n<!-- /results -->\n")
    page = Path("docs/experiments/demo.md")
    page.parent.mkdir(parents=True)
    page.write_text("# demo\n<!-- results: demo -->\ny\n<!-- /results -->\n")
    assert CliRunner().invoke(main, ["report", "--check"]).exit_code == 1
    res = CliRunner().invoke(main, ["report"])
    assert res.exit_code == 0 and "docs/experiments/demo.md" in res.output  # docs pages too
    assert CliRunner().invoke(main, ["report", "--check"]).exit_code == 0
    Path("README.md").write_text("<!-- results: nothing-here -->\nx\n<!-- /results -->\n")
    res = CliRunner().invoke(main, ["report"])
    assert res.exit_code == 2 and "nothing-here" in res.output


def test_collect_refuses_an_unfinished_run(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="summary.json"):
        results.collect(tmp_path, "x", tmp_path / "out")


def test_mutation_table_counts_runs_samples_and_survivors():
    def c(n, k, s):
        return {
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
