"""Committed results: full-run summaries under ``docs/results/<key>/`` and the README tables made
from them.

A run directory of ``sobolev run`` is *collected* into ``docs/results/<key>/`` (its
``summary.json``, ``config.json``, ``table.md``, figures and small CSV files; no checkpoints or
metrics). The README holds blocks

    <!-- results: KEY -->
    ...tables...
    <!-- /results -->

whose content is ``tables(summary)`` of the experiment behind ``docs/results/KEY/summary.json``;
:func:`render_readme` rewrites them (``sobolev report``), and the test suite checks that the
committed README equals its rendering, so no number in a README table can go stale.

``python -m sobolev_lab.results`` (``make results``) re-runs every full experiment listed in
:data:`FULL_RUNS`, collects each and rewrites the README: hours on 2 CPU cores.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from . import experiments

RESULTS_DIR = Path("docs/results")
BLOCK = re.compile(
    r"(<!-- results: (?P<key>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL
)
#: files of a run directory that are committed (figures, tables, small data); never checkpoints
COLLECTED = ("summary.json", "config.json", "table.md", "*.png", "*.csv")
MAX_COLLECTED_BYTES = 1_000_000

#: the runs behind the README: (key, experiment, extra CLI flags)
FULL_RUNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("regression", "regression", ()),
    ("theory", "theory", ()),
    ("student-teacher", "student-teacher", ()),
    ("student-teacher-paper", "student-teacher", ("--paper",)),
    ("architectures", "architectures", ()),
    ("conditioning", "conditioning", ()),
    ("numdiff-targets", "numdiff-targets", ()),
    ("denoising-autoencoder", "denoising-autoencoder", ()),
    ("denoising-autoencoder-paper", "denoising-autoencoder", ("--paper",)),
    ("diffusion-paper", "diffusion", ("--paper",)),
    ("differential-ml", "differential-ml", ()),
)


def load_summary(key: str, root: Path = RESULTS_DIR) -> dict:
    """The committed summary ``root/key/summary.json``; a clear error when it is missing."""
    path = Path(root) / key / "summary.json"
    if not path.exists():
        raise ValueError(
            f"no committed results for {key!r}: {path} is missing (collect a run with "
            f"`sobolev report --collect RUN_DIR --key {key}`)"
        )
    return json.loads(path.read_text())


def benchmark_tables(bench: dict) -> str:
    """The README's cost tables from ``benchmarks/results.json`` (written by ``make bench``): each
    training step's time relative to an L2 step, per input dimension d, and the per-step overhead of
    :func:`sobolev.fit` against a hand-written loop."""
    from .report import fmt, markdown_table

    mods = bench["modules"]
    rows = mods["training"]["rows"]
    dims = sorted({r["d"] for r in rows})
    losses = list(dict.fromkeys(r["loss"] for r in rows))
    cell = {(r["loss"], r["d"]): f"{fmt(float(r['x L2']), 3)}×" for r in rows}
    out = [
        f"**{mods['training']['title']}: time of one step ÷ time of an L2 step, by input dimension d**\n\n"
        + markdown_table(
            ["loss", *(f"d = {d}" for d in dims)],
            [[l, *(cell.get((l, d), "–") for d in dims)] for l in losses],
        )
    ]
    if "overhead" in mods:
        out.append(
            f"**{mods['overhead']['title']}**\n\n"
            + markdown_table(
                ["step", "compared with", "ratio"],
                [
                    [r["step"], r["vs"], f"{fmt(float(r['ratio']), 3)}×"]
                    for r in mods["overhead"]["rows"]
                ],
            )
        )
    m = bench["machine"]
    out.append(
        f"Measured by `make bench` on {m['cpu']} ({m['cores']} cores, {m['torch_threads']} torch thread, "
        f"1-min load {m['load_avg_1min']} at start), {m['date']}; full tables in benchmarks/RESULTS.md."
    )
    return "\n".join(out)


def mutation_table(scores: dict) -> str:
    """The mutation-testing scores of ``mutation/scores.json`` (written by ``mutation/score.py
    --record``): per core module, the share of mutants the tests kill in the first run and after the
    survivors' triage; the mutants left alive are listed in ``mutation/survivors/`` and triaged in
    mutation/RESULTS.md."""
    from .report import markdown_table

    def cell(c: dict) -> str:
        return f"{c['killed']} ({100 * c['killed'] / c['checked']:.1f}%)" if c["checked"] else "–"

    def count(m: dict) -> str:
        first = m["first"]
        if m["sampled"]:
            return f"{m['sampled']} sampled"
        return (
            str(first["mutants"])
            if first["checked"] == first["mutants"]
            else f"{first['mutants']} ({first['checked']} run)"
        )

    rows = [
        [
            f"`{name}`",
            count(m),
            cell(m["first"]),
            cell(m["after_triage"]),
            m["after_triage"]["survived"] + m["after_triage"]["no_tests"],
        ]
        for name, m in scores["modules"].items()
    ]
    dates = sorted({m["date"] for m in scores["modules"].values()})
    return (
        markdown_table(
            ["module", "mutants", "killed, first run", "killed after triage", "left alive"], rows
        )
        + f"\n{scores['tool']}, runs of {', '.join(dates)}; every mutant left alive is triaged (equivalent or "
        "CUDA-only) in mutation/RESULTS.md."
    )


def overview_table(root: Path = RESULTS_DIR) -> str:
    """One row per committed run: its experiment, setting and seeds. (No wall times: runs split
    over processes and merged by a resume pass record only the last pass.)"""
    from .report import markdown_table

    rows = []
    for d in sorted(p for p in Path(root).iterdir() if (p / "summary.json").exists()):
        s = json.loads((d / "summary.json").read_text())
        cfg = s.get("config", {})
        seeds = cfg.get("seeds", cfg.get("repeats", "–"))
        rows.append(
            [
                f"`{d.name}`",
                f"`sobolev run {s['experiment']}{' --paper' if s.get('setting') == 'paper' else ''}`",
                s.get("setting", "ours"),
                seeds,
            ]
        )
    return markdown_table(["docs/results/", "command", "setting", "seeds"], rows)


def render_tables(key: str, root: Path = RESULTS_DIR) -> str:
    """The Markdown tables of the committed run ``key``, as its experiment's ``tables`` makes them;
    the key ``benchmarks`` stands for the committed ``benchmarks/results.json``, ``mutation`` for
    ``mutation/scores.json``, ``overview`` for a list of every committed run."""
    if key == "overview":
        return overview_table(root).strip() + "\n"
    if key == "benchmarks":
        path = Path(root).resolve().parents[1] / "benchmarks" / "results.json"
        return benchmark_tables(json.loads(path.read_text())).strip() + "\n"
    if key == "mutation":
        path = Path(root).resolve().parents[1] / "mutation" / "scores.json"
        return mutation_table(json.loads(path.read_text())).strip() + "\n"
    summary = load_summary(key, root)
    mod = experiments.get(summary["experiment"])
    return _demote_headings(mod.tables(summary)).strip() + "\n"


def _demote_headings(md: str) -> str:
    """Markdown headings of a run's tables as bold lines: in the README they sit inside a section."""
    return re.sub(r"^#+ +(.+)$", r"**\1**", md, flags=re.MULTILINE)


def render_readme(text: str, root: Path = RESULTS_DIR) -> str:
    """``text`` with every results block replaced by the tables of its committed run."""
    return BLOCK.sub(lambda m: m.group(1) + render_tables(m.group("key"), root) + m.group(4), text)


def default_key(run_dir: Path) -> str:
    """``<experiment>[-paper][-quick]`` of a run directory."""
    cfg = json.loads((Path(run_dir) / "config.json").read_text())
    return (
        cfg["experiment"]
        + ("-paper" if cfg.get("setting") == "paper" else "")
        + ("-quick" if cfg.get("quick") else "")
    )


def collect(run_dir: Path, key: str | None = None, root: Path = RESULTS_DIR) -> Path:
    """Copy a finished run's summary, config, tables, figures and small CSVs into ``root/key``
    (replacing what was there); returns that directory."""
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").exists():
        raise ValueError(f"{run_dir} has no summary.json: only a finished run can be collected")
    dest = Path(root) / (key or default_key(run_dir))
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for pattern in COLLECTED:
        for f in sorted(run_dir.glob(pattern)):
            if f.stat().st_size <= MAX_COLLECTED_BYTES:
                shutil.copy2(f, dest / f.name)
    return dest


def write_readme(readme: Path = Path("README.md"), root: Path = RESULTS_DIR) -> bool:
    """Rewrite the README's results blocks; True if anything changed."""
    if not Path(readme).is_file():
        raise ValueError(f"{readme} not found: run from the repository root or pass --readme PATH")
    text = readme.read_text()
    new = render_readme(text, root)
    if new != text:
        readme.write_text(new)
    return new != text


def main() -> None:
    """Re-run every full experiment of :data:`FULL_RUNS`, collect it, rewrite the README."""
    from .cli import main as cli

    for key, name, flags in FULL_RUNS:
        out = Path("runs/results") / key
        args = ["--threads", "1", "run", name, "--out", str(out), *flags]
        args += (
            ["--resume"]
            if (out / "config.json").exists() and not (out / "summary.json").exists()
            else ["--overwrite"]
        )
        cli.main(args, standalone_mode=False)
        collect(out, key)
    write_readme()


if __name__ == "__main__":
    sys.exit(main())
