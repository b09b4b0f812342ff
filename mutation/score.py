"""Mutation score of one module from `mutmut results --all true` (results.txt in the run folder).

Usage: python mutation/score.py NAME DIR. With DIR/sample.txt (a sampled run) only the sampled
mutants count; after a triage re-run (DIR/results.first.txt) the re-tested survivors' new verdicts
replace the first run's. Prints one Markdown table row
``| name | mutants | killed | timeout | survived | no tests | score |`` where
score = (killed + timeout) / (mutants − not checked − skipped), and writes the surviving and
uncovered mutants' diffs to DIR/survivors.diff for triage.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

KILLED = {"killed", "timeout", "segfault", "caught by type check"}


def main(name: str, folder: str) -> None:
    d = Path(folder)
    status: dict[str, str] = {}
    for line in (d / "results.txt").read_text().splitlines():
        key, sep, st = line.strip().rpartition(": ")
        if sep and "__mutmut_" in key:
            status[key] = st
    first = d / "results.first.txt"
    if first.exists():  # a triage re-run: survivors re-tested; the first run's verdicts stand for the rest
        before = {k: v for k, v in (ln.strip().rpartition(": ")[::2] for ln in first.read_text().splitlines())
                  if "__mutmut_" in k}
        status = {k: (status[k] if status.get(k, "not checked") != "not checked" else v) for k, v in before.items()}
    sample = d / "sample.txt"
    if sample.exists():  # a sampled run: score the sample only
        keep = set(sample.read_text().split())
        status = {k: v for k, v in status.items() if k in keep}
    c = collections.Counter(status.values())
    checked = len(status) - c["not checked"] - c["skipped"]
    killed = sum(c[s] for s in KILLED)
    score = killed / checked if checked else float("nan")
    print(f"| {name} | {len(status)} | {c['killed']} | {c['timeout']} | {c['survived']} | {c['no tests']} "
          f"| {score:.1%} |")
    mutmut = Path(sys.executable).with_name("mutmut")
    with open(d / "survivors.diff", "w") as out:
        for key, st in status.items():
            if st in ("survived", "no tests", "suspicious"):
                out.write(f"# {key}: {st}\n")
                out.write(subprocess.run([str(mutmut), "show", key], cwd=d, capture_output=True, text=True).stdout)
                out.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
