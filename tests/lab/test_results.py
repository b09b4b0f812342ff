"""Committed results: every table of the README, the pages under docs/ and mutation/RESULTS.md is
exactly what `sobolev report` makes of docs/results, and every link of those documents resolves."""

import dataclasses
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sobolev_lab import claims, experiments, results
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


@pytest.mark.parametrize("key, experiment", [(k, e) for k, e, _ in claims.COMMITTED_RUNS])
def test_every_committed_run_is_rendered_on_its_experiments_page(key, experiment):
    page = ROOT / claims.page(experiment)
    assert page.is_file(), f"{experiment} has no page {claims.page(experiment)}"
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


@pytest.mark.parametrize("key, experiment, paper", claims.COMMITTED_RUNS)
def test_the_overview_command_reproduces_the_committed_run(key, experiment, paper):
    from sobolev_lab.runs import apply_overrides

    summary = results.load_summary(key, ROOT / results.RESULTS_DIR)
    words = shlex.split(results.run_command(summary))
    assert words[:3] == ["sobolev", "run", experiment] and ("--paper" in words) == paper
    sets = [w for i, w in enumerate(words) if i and words[i - 1] == "--set"]
    mod = experiments.get(experiment)
    cfg = apply_overrides(mod.Config.paper() if paper else mod.Config(), sets)
    as_run = json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert {k: as_run[k] for k in summary["config"]} == summary["config"]


def _row(table: str, link: str) -> str:
    (row,) = [line for line in table.splitlines() if link in line]
    return row


def test_the_overview_shows_the_overrides_of_reduced_runs():
    table = results.overview_table(ROOT / results.RESULTS_DIR)
    row = _row(table, "`diffusion-paper`")
    assert "--paper" in row and "--set base=8" in row and "--set epochs=4" in row
    assert "--set n_train=3200" in _row(table, "`denoising-autoencoder`")


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
    dest = results.collect(tiny_run, None, root)
    assert dest == root / "regression-quick"
    assert {p.name for p in dest.iterdir()} == {
        "summary.json",
        "config.json",
        "table.md",
        "fit.png",
        "curves.png",
    }
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- results: regression-quick -->\nstale numbers\n<!-- /results -->\nend\n"
    )
    assert results.write_document(readme, root)
    text = readme.read_text()
    assert "stale numbers" not in text and (dest / "table.md").read_text().strip() in text
    assert text.startswith("intro\n<!-- results: regression-quick -->\n") and text.endswith(
        "<!-- /results -->\nend\n"
    )
    assert not results.write_document(readme, root)  # idempotent

    # a number edited by hand is caught
    readme.write_text(text.replace("| L2 |", "| L2 (edited) |", 1))
    assert results.render_document(readme.read_text(), root) != readme.read_text()


def test_report_cli_check_and_missing_results(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["report", "--collect", str(tiny_run), "--key", "regression-paper-quick"]
    res = CliRunner().invoke(main, args)
    # collected, but there is no README here
    assert res.exit_code == 2 and "README.md not found" in res.output
    assert (tmp_path / "docs/results/regression-paper-quick/summary.json").exists()
    block = "<!-- results: regression-paper-quick -->\n{}\n<!-- /results -->\n"
    Path("README.md").write_text(block.format("x"))
    page = Path("docs/experiments/demo.md")
    page.parent.mkdir(parents=True)
    page.write_text("# demo\n" + block.format("y"))
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


# --- collect: only results keys, only regular files, atomic replacement -----------------------


def _tree(top: Path) -> dict[str, bytes | str]:
    """Every entry under ``top``: file contents, link targets and directories (as ``dir``)."""
    out: dict[str, bytes | str] = {}
    for p in sorted(top.rglob("*")):
        rel = p.relative_to(top).as_posix()
        if p.is_symlink():
            out[rel] = f"link -> {p.readlink()}"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_bytes()
    return out


@pytest.fixture
def repo(tmp_path):
    """``tmp_path/repo/docs/results`` with the collected runs ``regression`` and ``theory``, and a
    directory ``tmp_path/repo/x`` outside it."""
    root = tmp_path / "repo" / "docs" / "results"
    for key in ("regression", "theory"):
        (root / key).mkdir(parents=True)
        (root / key / "summary.json").write_text(json.dumps({"experiment": key, "old": 1}))
        (root / key / "table.md").write_text(f"old {key}\n")
    (tmp_path / "repo" / "x").mkdir()
    (tmp_path / "repo" / "x" / "keep.txt").write_text("not under docs/results\n")
    return root


def _run_dir(parent: Path, experiment: str = "regression", **cfg) -> Path:
    run = parent / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"experiment": experiment, **cfg}))
    (run / "summary.json").write_text(json.dumps({"experiment": experiment, "new": 1}))
    (run / "table.md").write_text("new table\n")
    (run / "fit.png").write_bytes(b"\x89PNG new")
    (run / "losses.csv").write_text("step,loss\n1,0.5\n")
    (run / "checkpoint.pt").write_bytes(b"not collected")
    return run


BAD_KEYS = [
    "../../x",
    "ABSOLUTE",
    "a/b",
    "regression/../theory",
    "theory/nested",
    "demo",
    "..",
    "",
    "regression-",
    "regression-a.b",
    "regression-../x",
    "regression-Siren",
]


@pytest.mark.parametrize("via", ["config.json", "key"])
@pytest.mark.parametrize("bad", BAD_KEYS)
def test_collect_refuses_a_key_that_is_not_a_results_key_before_changing_anything(
    tmp_path, repo, bad, via
):
    key = str(tmp_path / "repo" / "x") if bad == "ABSOLUTE" else bad
    run = _run_dir(tmp_path, key if via == "config.json" else "regression")
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match="results key") as e:
        results.collect(run, None if via == "config.json" else key, repo)
    assert repr(key) in str(e.value) and "\n" not in str(e.value)
    assert _tree(tmp_path) == before  # nothing removed, created or replaced, inside or outside


@pytest.mark.parametrize("key", ["../x", "ABSOLUTE", "regression/../theory", "no-such-experiment"])
def test_report_cli_refuses_a_key_that_is_a_path_in_one_line(tmp_path, repo, monkeypatch, key):
    # every path here stays inside tmp_path: on a collect that does not check its key, the
    # destination is removed
    key = str(tmp_path / "repo" / "x") if key == "ABSOLUTE" else key
    run = _run_dir(tmp_path)
    monkeypatch.chdir(tmp_path / "repo")
    before = _tree(tmp_path)
    res = CliRunner().invoke(main, ["report", "--collect", str(run), "--key", key])
    assert res.exit_code == 2 and "Traceback" not in res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert line.startswith("Error:") and repr(key) in line and "results key" in line
    assert _tree(tmp_path) == before


def test_collect_accepts_experiment_variants_and_keys_already_collected(tmp_path, repo):
    run = _run_dir(tmp_path, "student-teacher", setting="paper", quick=True)
    assert results.collect(run, None, repo) == repo / "student-teacher-paper-quick"
    (repo / "custom").mkdir()
    assert results.collect(run, "custom", repo) == repo / "custom"
    assert (repo / "custom" / "table.md").read_text() == "new table\n"
    with pytest.raises(ValueError, match="'custom2'"):
        results.collect(run, "custom2", repo)
    # a study of one experiment: its name, then words of lower-case letters and digits
    assert results.collect(run, "architectures-siren-w0", repo) == repo / "architectures-siren-w0"


@pytest.mark.parametrize("entry", ["summary.json", "config.json", "table.md", "fit.png"])
@pytest.mark.parametrize("key", [None, "regression"])
def test_collect_never_copies_what_a_symlink_in_the_run_points_to(tmp_path, repo, entry, key):
    secret = tmp_path / "secret.txt"
    secret.write_text('{"experiment": "regression", "secret": "S3CR3T-CONTENT"}')
    run = _run_dir(tmp_path)
    (run / entry).unlink()
    (run / entry).symlink_to(secret)
    before = _tree(repo)
    with pytest.raises(ValueError, match="symbolic link") as e:
        results.collect(run, key, repo)
    assert entry in str(e.value) and "\n" not in str(e.value)
    assert _tree(repo) == before
    assert not [p for p in repo.rglob("*") if p.is_file() and b"S3CR3T" in p.read_bytes()]


def test_collect_follows_a_run_directory_named_through_a_link_but_no_entry_in_it(tmp_path, repo):
    run = _run_dir(tmp_path)
    link = tmp_path / "latest"
    link.symlink_to(run, target_is_directory=True)
    dest = results.collect(link, None, repo)
    assert dest == repo / "regression" and not dest.is_symlink()
    assert (dest / "summary.json").read_text() == (run / "summary.json").read_text()
    assert not [p for p in dest.iterdir() if p.is_symlink()]


def test_collect_replaces_the_previous_run_and_leaves_no_temporary_directory(tmp_path, repo):
    (repo / "regression" / "stale.csv").write_text("from the previous run\n")
    dest = results.collect(_run_dir(tmp_path), None, repo)
    assert {p.name for p in dest.iterdir()} == {
        "summary.json",
        "config.json",
        "table.md",
        "fit.png",
        "losses.csv",
    }
    assert sorted(p.name for p in repo.iterdir()) == ["regression", "theory"]
    # collecting a committed run onto itself keeps it (the copy is made before the swap)
    before = _tree(dest)
    assert results.collect(dest, "regression", repo) == dest
    assert _tree(dest) == before


@pytest.mark.parametrize("fault", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failure_while_copying_leaves_the_previous_collected_run_intact(
    tmp_path, repo, monkeypatch, fault
):
    run = _run_dir(tmp_path)
    before = _tree(repo)
    copy2 = shutil.copy2
    calls = []

    def failing_copy2(src, dst, **kw):
        calls.append(src)
        if len(calls) == 3:
            raise fault
        return copy2(src, dst, **kw)

    monkeypatch.setattr(shutil, "copy2", failing_copy2)
    with pytest.raises(ValueError if isinstance(fault, OSError) else KeyboardInterrupt) as e:
        results.collect(run, None, repo)
    if isinstance(fault, OSError):
        assert "unchanged" in str(e.value) and "disk full" in str(e.value)
    assert len(calls) == 3
    assert _tree(repo) == before  # the previous run, and no half-copied directory


def test_a_failure_while_swapping_puts_the_previous_collected_run_back(tmp_path, repo, monkeypatch):
    run = _run_dir(tmp_path)
    before = _tree(repo)
    rename = os.rename
    calls = []

    def failing_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new copy onto the destination, after the old one is set aside
            raise KeyboardInterrupt
        return rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(KeyboardInterrupt):
        results.collect(run, None, repo)
    monkeypatch.undo()
    assert len(calls) == 3 and _tree(repo) == before


@pytest.mark.parametrize(
    "text, words",
    [("not json", "not valid JSON"), ("[1, 2]", "names no experiment"), ("{}", "no experiment")],
)
def test_collect_without_key_needs_an_experiment_in_config_json(tmp_path, repo, text, words):
    run = _run_dir(tmp_path)
    (run / "config.json").write_text(text)
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match=words) as e:
        results.collect(run, None, repo)
    assert "config.json" in str(e.value) and "--key" in str(e.value)
    assert _tree(tmp_path) == before


def test_a_run_set_aside_by_a_killed_collect_is_reported_where_it_is(tmp_path, repo):
    # killed between the two renames: the previous run sits in a hidden sibling, the key is gone
    aside = repo / ".regression.replaced-abc"
    aside.mkdir()
    (repo / "regression").rename(aside / "regression")
    with pytest.raises(ValueError, match="move it back") as e:
        results.load_summary("regression", repo)
    assert str(aside / "regression") in str(e.value)
    table = results.overview_table(repo)  # the hidden copy is not a committed run
    assert "`theory`" in table and "regression" not in table


def test_every_run_under_docs_results_is_listed_and_a_collected_one_says_where_it_was_made():
    committed = {k for k, _, _ in claims.COMMITTED_RUNS}
    assert committed == {d.name for d in (ROOT / results.RESULTS_DIR).iterdir() if d.is_dir()}
    for key, _, _ in claims.COLLECTED_RUNS:
        assert results.load_summary(key, ROOT / results.RESULTS_DIR)["provenance"], key


def test_a_block_of_two_runs_renders_the_experiments_versus_table():
    root = ROOT / results.RESULTS_DIR
    table = results.render_tables("differential-ml~differential-ml-paper", root)
    assert table.startswith("**ours against paper: median test RMSE per cell")
    assert "| 7 | 65536 | differential |" in table
    with pytest.raises(ValueError, match="two runs of one experiment"):
        results.render_tables("differential-ml~regression", root)
