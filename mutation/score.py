"""Mutation score of one module from `mutmut results --all true` (results.txt in the run folder).

Usage: python mutation/score.py NAME DIR [--record]. With DIR/sample.txt (a sampled run) only the
sampled mutants count; after a triage re-run (DIR/results.first.txt) the re-tested survivors' new
verdicts replace the first run's. Prints one Markdown table row
``| name | mutants | killed | timeout | survived | no tests | score |`` where
score = (killed + timeout) / (mutants − not checked − skipped), and writes the surviving and
uncovered mutants' diffs to DIR/survivors.diff for triage.

``--record`` also stores the module's first-run and after-triage counts in ``mutation/scores.json``
(rendered into the README and mutation/RESULTS.md by ``sobolev report``) and the names of the
mutants still alive in ``mutation/survivors/NAME.txt`` (each triaged in RESULTS.md).
"""

from __future__ import annotations

import collections
import datetime
import json
import subprocess
import sys
from pathlib import Path

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
ALIVE = ("survived", "no tests", "suspicious")
HERE = Path(__file__).resolve().parent


def _read(path: Path) -> dict[str, str]:
    """Mutant name → status from a ``mutmut results --all true`` listing."""
    out = {}
    for line in path.read_text().splitlines():
        key, sep, st = line.strip().rpartition(": ")
        if sep and "__mutmut_" in key:
            out[key] = st
    return out


def statuses(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(first run, after triage) statuses of a run folder's mutants (the sample only,
    if sampled)."""
    now = _read(folder / "results.txt")
    first_file = folder / "results.first.txt"
    first = _read(first_file) if first_file.exists() else dict(now)
    # a triage re-run re-tests the survivors; the first run's verdicts stand for the rest
    after = {
        k: (now[k] if now.get(k, "not checked") != "not checked" else v) for k, v in first.items()
    }
    sample = folder / "sample.txt"
    if sample.exists():
        keep = set(sample.read_text().split())
        first = {k: v for k, v in first.items() if k in keep}
        after = {k: v for k, v in after.items() if k in keep}
    return first, after


def counts(status: dict[str, str]) -> dict[str, int]:
    c = collections.Counter(status.values())
    return {
        "mutants": len(status),
        "checked": len(status) - c["not checked"] - c["skipped"],
        "killed": sum(c[s] for s in KILLED),
        "timeout": c["timeout"],
        "survived": c["survived"],
        "no_tests": c["no tests"],
    }


def record(name: str, folder: Path, first: dict[str, str], after: dict[str, str]) -> None:
    path = HERE / "scores.json"
    scores = json.loads(path.read_text()) if path.exists() else {"tool": "", "modules": {}}
    scores["tool"] = "mutmut " + _mutmut_version()
    sample = folder / "sample.txt"
    scores["modules"][name] = {
        "date": datetime.date.today().isoformat(),
        "sampled": len(sample.read_text().split()) if sample.exists() else None,
        "first": counts(first),
        "after_triage": counts(after),
    }
    scores["modules"] = dict(sorted(scores["modules"].items()))
    path.write_text(json.dumps(scores, indent=1) + "\n")
    alive = sorted(k for k, v in after.items() if v in ALIVE)
    (HERE / "survivors").mkdir(exist_ok=True)
    (HERE / "survivors" / f"{name}.txt").write_text("".join(f"{k}  # {after[k]}\n" for k in alive))


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def main(name: str, folder: str, *flags: str) -> None:
    d = Path(folder)
    first, status = statuses(d)
    c = counts(status)
    score = c["killed"] / c["checked"] if c["checked"] else float("nan")
    print(
        f"| {name} | {c['mutants']} | {c['killed'] - c['timeout']} | {c['timeout']} | "
        f"{c['survived']} | {c['no_tests']} | {score:.1%} |"
    )
    if "--record" in flags:
        record(name, d, first, status)
    mutmut = Path(sys.executable).with_name("mutmut")
    with open(d / "survivors.diff", "w") as out:
        for key, st in status.items():
            if st in ALIVE:
                out.write(
                    subprocess.run(
                        [str(mutmut), "show", key],
                        cwd=d,
                        capture_output=True,
                        text=True,
                        check=False,
                    ).stdout
                )
                out.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
