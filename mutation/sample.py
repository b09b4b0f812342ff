"""Print a seeded uniform random sample of N mutant names of a mutmut run folder (one per line).

Usage: python mutation/sample.py DIR N [SEED]. Reads the names from DIR/mutants/**/*.meta.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path


def main(folder: str, n: str, seed: str = "0") -> None:
    names = sorted(
        k
        for meta in Path(folder, "mutants").rglob("*.meta")
        for k in json.loads(meta.read_text())["exit_code_by_key"]
    )
    chosen = names if int(n) >= len(names) else random.Random(int(seed)).sample(names, int(n))
    print("\n".join(sorted(chosen)))


if __name__ == "__main__":
    main(*sys.argv[1:4])
