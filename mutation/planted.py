"""Plant each bug named in issue 16 in a copy of the package and check that the tests catch it.

    .venv/bin/python mutation/planted.py [NAME ...]

For every planted bug: copy ``sobolev/``, ``tests/`` and ``pyproject.toml`` to a temporary folder,
apply one textual edit (which must match exactly once), check that the copy is what gets
imported, and run the named tests there: they must fail with the bug and pass without it. The
checkout is never modified. Prints one line per bug and exits 1 if any bug went unnoticed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Plant:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


PLANTS = [
    Plant(
        "dimension weighting (1+d)^k",
        "sobolev/losses.py",
        '"dimension": lambda d, order: sum(d**j for j in range(order + 1)),',
        '"dimension": lambda d, order: (1 + d) ** order,',
        ("tests/test_losses.py",),
    ),
    Plant(
        "directional terms summed over S",
        "sobolev/losses.py",
        "(err.shape[-1] if directional else 1)",
        "1",
        ("tests/test_losses.py",),
    ),
    Plant(
        "directional terms summed over S (property test)",
        "sobolev/losses.py",
        "(err.shape[-1] if directional else 1)",
        "1",
        ("tests/test_losses.py",),
    ),
    Plant(
        "weights applied to the wrong orders",
        "sobolev/losses.py",
        "zip(keys, lam, preds, targets)",
        "zip(keys, lam[::-1], preds, targets)",
        ("tests/test_losses.py",),
    ),
    Plant(
        "resume without the LR schedule",
        "sobolev/training.py",
        'self.sched.load_state_dict(ck["schedule"])',
        "pass",
        ("tests/test_training_resume.py",),
    ),
    Plant(
        "resume without the L-BFGS state",
        "sobolev/training.py",
        'self.opt.load_state_dict(ck["optimizer"])',
        'self.phase != "lbfgs" and self.opt.load_state_dict(ck["optimizer"])',
        ("tests/test_training_resume.py",),
    ),
    Plant(
        "resume restarts the first optimiser after lbfgs_at",
        "sobolev/training.py",
        'self.phase = ck["phase"]',
        "pass",
        ("tests/test_training_resume.py",),
    ),
    Plant(
        "metrics file garbled when a finished run is extended",
        "sobolev/training.py",
        'json.dumps(r) + "\\n" for r in plan.records',
        'json.dumps(None) + "\\n" for r in plan.records',
        ("tests/test_training_resume.py",),
    ),
    # distributed.py runs in spawned rank processes, which mutmut's per-test coverage cannot see
    # (every mutant reads "no tests"), so its mutation check is these plants
    Plant(
        "ranks train overlapping shards",
        "sobolev/distributed.py",
        "return idx[ctx.rank :: ctx.world_size]",
        "return idx[: (idx.numel() + 1) // ctx.world_size]",
        ("tests/test_distributed.py",),
    ),
    Plant(
        "gradients averaged without shard weights",
        "sobolev/distributed.py",
        ".reshape(-1).to(ref.dtype) * weight\n        for p in params",
        ".reshape(-1).to(ref.dtype)\n        for p in params",
        ("tests/test_distributed.py",),
    ),
    Plant(
        "logged loss summed over ranks",
        "sobolev/distributed.py",
        "averaged = list((buf[offset : offset + n_v] / total).unbind())",
        "averaged = list((buf[offset : offset + n_v]).unbind())",
        ("tests/test_distributed.py",),
    ),
    Plant(
        "ranks share one random stream",
        "sobolev/distributed.py",
        "SeedSequence([seed, rank, step])",
        "SeedSequence([seed, step])",
        ("tests/test_distributed.py",),
    ),
]


def _pytest(folder: Path, tests: tuple[str, ...]) -> int:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(folder),
        *tests,
    ]
    return subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False).returncode


def check(plant: Plant, base: Path) -> str:
    folder = base / plant.name.replace(" ", "_").replace("/", "_")
    for part in ("sobolev", "tests"):
        shutil.copytree(ROOT / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", folder)
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, '.'); import sobolev; print(sobolev.__file__)",
        ],
        cwd=folder,
        capture_output=True,
        check=False,
        text=True,
    ).stdout.strip()
    if not imported.startswith(str(folder)):
        return f"ERROR  {plant.name}: the copy is not what gets imported ({imported})"
    if _pytest(folder, plant.tests) != 0:
        return f"ERROR  {plant.name}: {plant.tests} fail without the bug"
    path = folder / plant.file
    text = path.read_text()
    if text.count(plant.old) != 1:
        return (
            f"ERROR  {plant.name}: the edit matches {text.count(plant.old)} times in "
            f"{plant.file} (code changed?)"
        )
    path.write_text(text.replace(plant.old, plant.new))
    rc = _pytest(folder, plant.tests)
    return f"{'caught' if rc == 1 else 'MISSED'}  {plant.name} ({' '.join(plant.tests)}, exit {rc})"


def main(names: list[str]) -> int:
    chosen = [p for p in PLANTS if not names or p.name in names]
    with tempfile.TemporaryDirectory(prefix="planted-") as tmp:
        lines = [check(p, Path(tmp)) for p in chosen]
    print("\n".join(lines))
    return 0 if all(line.startswith("caught") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
