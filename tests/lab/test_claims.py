"""The claims made from the committed summaries (sobolev_lab.claims): the README's claims table,
the claims in the prose of the README and the experiment pages, and the check that prose states
no result outside a claim."""

import json
import math
import shutil
from pathlib import Path

import pytest

from sobolev_lab import claims, results

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCUMENTS = results.documents(ROOT)


def test_claims_are_of_committed_runs():
    keys = {k for k, _, _ in claims.COMMITTED_RUNS}
    assert {c.key for c in claims.CLAIMS} <= keys


def _row(table: str, link: str) -> str:
    (row,) = [line for line in table.splitlines() if link in line]
    return row


def test_claims_table_verdicts_and_budgets_come_from_the_summaries(tmp_path):
    root = tmp_path / "docs" / "results"
    shutil.copytree(ROOT / results.RESULTS_DIR, root)
    link = f"]({claims.page('student-teacher').as_posix()})"
    selected = tuple(c for c in claims.CLAIMS if c.key == "student-teacher")
    before = _row(claims.claims_table(root, selected), link)

    path = root / "student-teacher" / "summary.json"
    s = json.loads(path.read_text())
    for seed in s["results"]["relu"]["H1"]["per_seed"]:
        seed["value_rel_err"] = math.inf  # H1 diverged: never below L2
    n = len(s["results"]["relu"]["H1"]["per_seed"])
    s["config"]["steps"] = 123
    path.write_text(json.dumps(s))
    after = _row(claims.claims_table(root, selected), link)

    assert after != before
    assert f"relu 0/{n}," in after and "123 steps" in after
    assert "123 steps" not in before


def test_held_counts_the_seeds_in_which_every_comparison_held():
    a = {"per_seed": [{"x": 1.0, "y": 5.0}, {"x": 3.0, "y": 1.0}, {"x": float("nan"), "y": 0.0}]}
    b = {"per_seed": [{"x": 2.0, "y": 6.0}, {"x": 2.0, "y": 2.0}, {"x": 9.0, "y": 1.0}]}
    assert claims.held((a, "x", b, "x")) == "1/3"  # a NaN seed counts as +inf
    assert claims.held((a, "y", b, "y")) == "3/3"
    assert claims.held((a, "x", b, "x"), (a, "y", b, "y")) == "1/3"
    assert claims.held((a, "y", a, "x")) == "2/3"  # two keys of one record
    with pytest.raises(ValueError, match="same seeds"):
        claims.held((a, "x", {"per_seed": [{"x": 0.0}]}, "x"))


# --- claims in the prose: every result-like number of a sentence comes from a summary ---------

PROSE = claims.prose_documents(ROOT)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=[p.relative_to(ROOT).as_posix() for p in DOCUMENTS])
def test_every_claim_equals_its_rendering(doc):
    summaries: dict = {}
    for m in claims.CLAIM.finditer(doc.read_text()):
        name = m.group("name")
        assert m.group("body") == claims.render_claim(
            name, ROOT / results.RESULTS_DIR, summaries
        ), f"{doc.name}: claim {name!r} differs from its committed results: run `sobolev report`"


def test_every_prose_claim_is_used_and_of_a_committed_run():
    used = {m.group("name") for d in DOCUMENTS for m in claims.CLAIM.finditer(d.read_text())}
    assert used == set(claims.PROSE_CLAIMS), "a claim is used nowhere, or used and not defined"
    assert {c.key for c in claims.PROSE_CLAIMS.values()} <= {k for k, _, _ in claims.COMMITTED_RUNS}


@pytest.mark.parametrize("doc", PROSE, ids=[p.relative_to(ROOT).as_posix() for p in PROSE])
def test_prose_states_no_result_outside_a_claim(doc):
    found = claims.unclaimed(doc.read_text())
    assert not found, (
        f"{doc.relative_to(ROOT)}: result-like numbers written by hand (line, text): {found}; "
        "state them in a <!-- claim: NAME -->…<!-- /claim --> of sobolev_lab.claims.PROSE_CLAIMS "
        "or, for a setting, add it to claims.ALLOWED"
    )


def test_unclaimed_finds_hand_written_results_only():
    text = (
        "H1 wins in 4 of 5 seeds, in every seed and 3/5, at 2.5× the speed or twice as fast,\n"
        "to 1.3e-4, 10⁻³ or 0.25, 12% lower, in two of three, about 9 CPU-hours.\n"
        "Adam lr 1e-3, n = 10⁶, a 28×28 image, 2×32 tanh, `lr=0.5 in 4 of 5 seeds`, "
        "[x](a/1.5e-3.png),\n"
        "<!-- claim: regression.below-l2 -->in 3 of 5 seeds, 1.5e-3<!-- /claim -->\n"
        "| table | 0.5 | 3/5 |\n"
        "<!-- results: x -->\n1.5e-3 in every seed\n<!-- /results -->\n"
        "```\nrun 0.5 in 1 of 2 seeds\n```\n"
    )
    found = claims.unclaimed(text)
    assert [m for _, m in found] == [
        "4 of 5",
        "in every seed",
        "3/5",
        "2.5×",
        "twice",
        "1.3e-4",
        "10⁻³",
        "0.25",
        "12%",
        "two of three",
        "9 CPU-hours",
    ]
    assert [line for line, _ in found] == [1] * 5 + [2] * 6


def test_a_claim_follows_its_summary(tmp_path):
    root = tmp_path / "docs" / "results"
    (root / "student-teacher").mkdir(parents=True)
    shutil.copy(
        ROOT / results.RESULTS_DIR / "student-teacher" / "summary.json", root / "student-teacher"
    )
    name = "student-teacher.below-l2"
    text = (
        f"H1 ends below L2 <!-- claim: {name} -->{claims.render_claim(name, root)}<!-- /claim -->."
    )
    assert results.render_document(text, root) == text

    path = root / "student-teacher" / "summary.json"
    s = json.loads(path.read_text())
    for seed in s["results"]["relu"]["H1"]["per_seed"]:
        seed["value_rel_err"] = math.inf  # H1 diverged: never below L2
    path.write_text(json.dumps(s))
    assert "in no seed for ReLU" in claims.render_claim(name, root)
    assert results.render_document(text, root) != text  # the committed words are now stale
    with pytest.raises(ValueError, match="unknown claim 'no-such'"):
        results.render_document("<!-- claim: no-such -->x<!-- /claim -->", root)


def test_seed_counts_in_words():
    assert claims.in_seeds(5, 5) == "in every seed" and claims.in_seeds(2, 2) == "in both seeds"
    assert claims.in_seeds(0, 3) == "in no seed" and claims.in_seeds(4, 5) == "in 4 of 5 seeds"
    counts = {"relu": (4, 5), "gelu": (5, 5), "tanh": (5, 5), "x": (0, 5)}
    assert claims.grouped(counts) == (
        "in every seed for GELU and tanh, in 4 of 5 seeds for ReLU and in no seed for x"
    )
