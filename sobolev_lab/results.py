"""Committed results: full-run summaries under ``docs/results/<key>/`` and the documents made from
them.

A run directory of ``sobolev run`` is *collected* into ``docs/results/<key>/`` (its
``summary.json``, ``config.json``, ``table.md``, figures and small CSV files; no checkpoints or
metrics). The README, the pages under ``docs/`` and ``mutation/RESULTS.md`` (:func:`documents`)
hold blocks

    <!-- results: KEY -->
    ...tables...
    <!-- /results -->

whose content :func:`render_tables` makes: for a key under ``docs/results``, ``tables(summary)`` of
the experiment behind ``docs/results/KEY/summary.json``; for ``KEY~REFERENCE``, its
``versus(summary, reference)`` (one committed run against another of the same experiment, e.g.
ours against ``--paper``); the keys ``claims`` (the README's claims
table, :mod:`sobolev_lab.claims`), ``overview``, ``benchmarks`` and ``mutation`` are described
there. Their prose states results in inline claims, ``<!-- claim: NAME -->…<!-- /claim -->``,
whose words :func:`sobolev_lab.claims.render_claim` makes from a summary. :func:`render_document`
rewrites the blocks and claims of a text (``sobolev report``), and the test suite checks that every
committed document equals its rendering, so no number in a table or a claim can go stale.

``python -m sobolev_lab.results`` (``make results``) re-runs every full experiment listed in
:data:`sobolev_lab.claims.FULL_RUNS` with the settings of its committed run
(:func:`run_overrides`), collects each and rewrites the documents: hours on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import experiments
from .claims import (
    BLOCK,
    CLAIM,
    FULL_RUNS,
    RESULTS_DIR,
    claims_table,
    load_summary,
    render_claim,
)

#: files of a run directory that are committed (figures, tables, small data); never checkpoints
COLLECTED = ("summary.json", "config.json", "table.md", "*.png", "*.csv")
MAX_COLLECTED_BYTES = 1_000_000


# --- other tables -----------------------------------------------------------------------------


def benchmark_tables(bench: dict) -> str:
    """The cost tables from ``benchmarks/results.json`` (written by ``make bench``): each
    training step's time relative to an L2 step, per input dimension d, and the per-step overhead of
    :func:`sobolev.fit` against a hand-written loop."""
    from .report import fmt, markdown_table

    mods = bench["modules"]
    rows = mods["training"]["rows"]
    dims = sorted({r["d"] for r in rows})
    losses = list(dict.fromkeys(r["loss"] for r in rows))
    cell = {(r["loss"], r["d"]): f"{fmt(float(r['x L2']), 3)}×" for r in rows}
    out = [
        f"**{mods['training']['title']}: time of one step ÷ time of an L2 step, "
        "by input dimension d**\n\n"
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
    if "ensemble" in mods:
        rows8 = [r for r in mods["ensemble"]["rows"] if r["N"] == 8]
        out.append(
            f"**{mods['ensemble']['title']}: 8 members, time of one step ÷ that of one run, and ÷ "
            "that of 8 runs one after another (measured "
            f"{mods['ensemble'].get('machine', bench['machine'])['date']})**\n\n"
            + markdown_table(
                ["size", "loss", "× one run", "× 8 sequential runs"],
                [
                    [
                        r["size"],
                        r["loss"],
                        f"{fmt(float(r['x fit']), 3)}×",
                        f"{fmt(float(r['x N sequential']), 3)}×",
                    ]
                    for r in rows8
                ],
            )
        )
    m = mods["training"].get("machine", bench["machine"])
    out.append(
        f"Measured by `make bench` on {m['cpu']} ({m['cores']} cores, "
        f"{m['torch_threads']} torch thread, 1-min load {m['load_avg_1min']} at start), "
        f"{m['date']}; full tables in benchmarks/RESULTS.md."
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
        + f"\n{scores['tool']}, runs of {', '.join(dates)}; "
        "every mutant left alive is triaged (equivalent or "
        "CUDA-only) in mutation/RESULTS.md."
    )


def _set_value(v: Any) -> str:
    """``v`` as the text of ``--set key=TEXT`` that :func:`sobolev_lab.runs.apply_overrides`
    parses back to ``v``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, (int, float, str)) and "," not in str(x) for x in v):
            return ",".join(str(x) for x in v)
        return json.dumps(v)
    return str(v)


def run_overrides(summary: dict) -> list[str]:
    """The ``key=value`` settings (``--set``) that turn the default config of the run's experiment
    (``Config()``, or ``Config.paper()`` for the paper setting, their ``--quick`` variants for a
    quick run) into the config the run stored: every stored setting that differs. A setting the
    experiment gained after the run (absent from the stored config) keeps its default."""
    mod = experiments.get(summary["experiment"])
    quick = bool(summary.get("quick"))
    if summary.get("setting") == "paper":
        base = mod.Config.paper(quick=quick)
    else:
        base = mod.Config.quick() if quick else mod.Config()
    default = json.loads(json.dumps(dataclasses.asdict(base)))  # tuples as lists, as stored
    return [
        f"{k}={_set_value(v)}"
        for k, v in summary.get("config", {}).items()
        if k not in default or default[k] != v
    ]


def run_command(summary: dict) -> str:
    """The ``sobolev run`` command that reproduces a committed run: its experiment, ``--paper``
    and ``--quick`` as it ran, and :func:`run_overrides` as ``--set`` options."""
    flags = (" --paper" if summary.get("setting") == "paper" else "") + (
        " --quick" if summary.get("quick") else ""
    )
    sets = "".join(f" --set {shlex.quote(a)}" for a in run_overrides(summary))
    return f"sobolev run {summary['experiment']}{flags}{sets}"


def overview_table(root: Path = RESULTS_DIR) -> str:
    """One row per committed run: the command that reproduces it (:func:`run_command`), its
    setting, seeds and wall time: of the whole run where it ran in one pass (``one_pass``), "–"
    for a run completed by a resume (whose summary times its last pass only)."""
    from .report import markdown_table

    rows = []
    for d in sorted(
        p
        for p in Path(root).iterdir()
        if not p.name.startswith(".") and (p / "summary.json").exists()
    ):
        s = json.loads((d / "summary.json").read_text())
        cfg = s.get("config", {})
        seeds = cfg.get("seeds", cfg.get("repeats", "–"))
        wall = f"{s['wall_time_s'] / 60:.0f} min" if s.get("one_pass") else "–"
        rows.append([f"`{d.name}`", f"`{run_command(s)}`", s.get("setting", "ours"), seeds, wall])
    return markdown_table(["docs/results/", "command", "setting", "seeds", "wall time"], rows)


def render_tables(key: str, root: Path = RESULTS_DIR) -> str:
    """The Markdown of the block ``key``: the tables of the committed run ``root/key``, as its
    experiment's ``tables`` makes them (``KEY~REFERENCE``: its ``versus`` table of the two runs);
    ``claims`` stands for :func:`claims_table`, ``overview``
    for a list of every committed run, ``benchmarks`` for the committed
    ``benchmarks/results.json``, ``mutation`` for ``mutation/scores.json``."""
    if key == "claims":
        return claims_table(root).strip() + "\n"
    if key == "overview":
        return overview_table(root).strip() + "\n"
    if key == "benchmarks":
        path = Path(root).resolve().parents[1] / "benchmarks" / "results.json"
        return benchmark_tables(json.loads(path.read_text())).strip() + "\n"
    if key == "mutation":
        path = Path(root).resolve().parents[1] / "mutation" / "scores.json"
        return mutation_table(json.loads(path.read_text())).strip() + "\n"
    if "~" in key:  # one committed run against another of its experiment
        ours, ref = (load_summary(k, root) for k in key.split("~", 1))
        mod = experiments.get(ours["experiment"])
        if ref["experiment"] != ours["experiment"] or not hasattr(mod, "versus"):
            raise ValueError(
                f"results block {key!r}: KEY~REFERENCE needs two runs of one experiment that "
                f"has a versus table, got {ours['experiment']!r} and {ref['experiment']!r}"
            )
        return _demote_headings(mod.versus(ours, ref)).strip() + "\n"
    summary = load_summary(key, root)
    mod = experiments.get(summary["experiment"])
    return _demote_headings(mod.tables(summary)).strip() + "\n"


def _demote_headings(md: str) -> str:
    """Markdown headings of a run's tables as bold lines: in a document they sit in a section."""
    return re.sub(r"^#+ +(.+)$", r"**\1**", md, flags=re.MULTILINE)


def render_document(text: str, root: Path = RESULTS_DIR) -> str:
    """``text`` with every results block replaced by its rendering (:func:`render_tables`) and the
    words of every claim of its prose by theirs (:func:`render_claim`)."""
    text = BLOCK.sub(lambda m: m.group(1) + render_tables(m.group("key"), root) + m.group(4), text)
    summaries: dict[str, dict] = {}
    return CLAIM.sub(
        lambda m: (
            f"<!-- claim: {m.group('name')} -->"
            + render_claim(m.group("name"), root, summaries)
            + "<!-- /claim -->"
        ),
        text,
    )


def documents(repo: Path = Path(".")) -> list[Path]:
    """The documents whose results blocks ``sobolev report`` renders: ``README.md``, every page
    under ``docs/`` (outside ``docs/results``) and ``mutation/RESULTS.md`` where it exists."""
    repo = Path(repo)
    pages = sorted(
        p for p in (repo / "docs").rglob("*.md") if (repo / RESULTS_DIR) not in p.parents
    )
    mutation = [p for p in (repo / "mutation" / "RESULTS.md",) if p.is_file()]
    return [repo / "README.md", *pages, *mutation]


def write_document(path: Path, root: Path = RESULTS_DIR) -> bool:
    """Rewrite the results blocks of the document ``path``; True if anything changed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} not found: run from the repository root or pass --readme PATH")
    text = path.read_text()
    new = render_document(text, root)
    if new != text:
        path.write_text(new)
    return new != text


#: what may follow an experiment's name in a results key (:func:`default_key`); a committed
#: study of one experiment may also add words of its own (``architectures-siren``):
#: :func:`is_study_key`
KEY_SUFFIXES = ("", "-paper", "-quick", "-paper-quick", "-gpu", "-paper-gpu")


def is_study_key(key: object) -> bool:
    """``<experiment>-<word>[-<word>…]`` with lower-case letters and digits in each word, for a
    registered experiment: a name directly under ``docs/results`` (no separator, no dots)."""
    return isinstance(key, str) and any(
        re.fullmatch(rf"{re.escape(name)}(?:-[a-z0-9]+)+", key) for name in experiments.EXPERIMENTS
    )


def _is_file(path: Path) -> bool:
    """``path`` is a regular file; a symbolic link is examined itself, never followed."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def results_keys(root: Path = RESULTS_DIR) -> list[str]:
    """The keys :func:`collect` accepts: each registered experiment with each suffix of
    :data:`KEY_SUFFIXES`, and the runs already under ``root`` (real directories; links and hidden
    names are not runs)."""
    keys = {name + suffix for name in experiments.EXPERIMENTS for suffix in KEY_SUFFIXES}
    root = Path(root)
    if root.is_dir():
        keys |= {
            p.name
            for p in root.iterdir()
            if not p.name.startswith(".") and stat.S_ISDIR(p.lstat().st_mode)
        }
    return sorted(keys)


def destination(key: str, root: Path = RESULTS_DIR, source: str = "") -> Path:
    """``root/key``, the directory a run is collected into, after checking that ``key`` is one of
    :func:`results_keys` and that ``root/key`` is a direct child of ``root`` and not a symbolic
    link; otherwise a one-line ValueError naming the key (``source`` says where it came from)."""
    root = Path(root)
    name = f"results key {key!r}{source}"
    expected = (
        f"expected the name of a registered experiment ({', '.join(experiments.EXPERIMENTS)}), "
        f"optionally followed by {', '.join(KEY_SUFFIXES[1:])} or by words of lower-case letters "
        f"and digits (-siren), or of a run already in {root}"
    )
    if (
        not isinstance(key, str)
        or key in ("", ".", "..")
        or Path(key).name != key
        or "/" in key
        or "\\" in key
        or os.path.isabs(key)
    ):
        raise ValueError(f"{name} is not a name of a directory directly in {root}: {expected}")
    if key not in results_keys(root) and not is_study_key(key):
        raise ValueError(f"{name} is not a results key: {expected}")
    dest = root / key
    if os.path.islink(dest):
        raise ValueError(f"{name}: {dest} is a symbolic link, which collect never replaces")
    if dest.resolve().parent != root.resolve():
        raise ValueError(f"{name} resolves outside {root}: {expected}")
    return dest


def default_key(run_dir: Path) -> str:
    """``<experiment>[-paper][-quick]`` of a run directory, from its ``config.json`` (a regular
    file: a symbolic link is not followed); a one-line ValueError naming the file when it has no
    experiment name."""
    path = Path(run_dir) / "config.json"
    if os.path.islink(path):
        raise ValueError(
            f"{path} is a symbolic link, which collect never follows: "
            "replace it by the file itself or pass the results key with --key"
        )
    if not _is_file(path):
        raise ValueError(f"{path} is missing or not a file: pass the results key with --key")
    try:
        cfg = json.loads(path.read_text())
    except ValueError as e:  # JSON and Unicode errors
        raise ValueError(
            f"{path} is not valid JSON ({e}): pass the results key with --key"
        ) from None
    experiment = cfg.get("experiment") if isinstance(cfg, dict) else None
    if type(experiment) is not str:
        raise ValueError(
            f"{path} names no experiment (a string under 'experiment'): "
            "pass the results key with --key"
        )
    return (
        experiment
        + ("-paper" if cfg.get("setting") == "paper" else "")
        + ("-quick" if cfg.get("quick") else "")
    )


def _collected_files(run_dir: Path) -> list[Path]:
    """The files of ``run_dir`` that :func:`collect` copies; a one-line ValueError naming the
    first of them that is a symbolic link (its target, maybe outside the run, is never read)."""
    files = []
    for pattern in COLLECTED:
        for f in sorted(run_dir.glob(pattern)):
            st = os.lstat(f)
            if stat.S_ISLNK(st.st_mode):
                raise ValueError(
                    f"{f} is a symbolic link: collect copies only the regular files of a run "
                    "directory, never what a link points to (replace it by the file itself)"
                )
            if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_COLLECTED_BYTES:
                files.append(f)
    return files


def _swap(new: Path, dest: Path) -> None:
    """Put the directory ``new`` at ``dest``, a sibling in the same directory: the previous
    ``dest`` is first set aside (renamed), put back if the second rename fails or is interrupted,
    and removed only once ``new`` is in place."""
    if not os.path.lexists(dest):
        os.rename(new, dest)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.replaced-", dir=dest.parent))
    os.rename(dest, aside / dest.name)
    try:
        os.rename(new, dest)
    except BaseException:
        os.rename(aside / dest.name, dest)
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)


def collect(run_dir: Path, key: str | None = None, root: Path = RESULTS_DIR) -> Path:
    """Copy a finished run's summary, config, tables, figures and small CSVs into ``root/key``
    (replacing what was there); returns that directory.

    ``key`` (default :func:`default_key`) must be one of :func:`results_keys` and ``root/key`` a
    direct child of ``root`` (:func:`destination`). Only regular files are copied: an entry of the
    run directory that would be collected and is a symbolic link is refused (one line naming it)
    before anything is written, so no file from outside the run reaches ``root``. ``run_dir``
    itself may be a link (or lie under one): it is the directory the user named and is followed
    like ``cd``; no entry inside it is. The files are copied into a hidden temporary directory in
    ``root`` first, which then replaces ``root/key`` (:func:`_swap`): an error or an interrupt
    midway leaves the previous collected run as it was."""
    run_dir = Path(run_dir)
    summary = run_dir / "summary.json"
    if not _is_file(summary):
        if os.path.islink(summary):
            raise ValueError(f"{summary} is a symbolic link: only a regular file is collected")
        raise ValueError(f"{run_dir} has no summary.json: only a finished run can be collected")
    if key is None:
        key, source = default_key(run_dir), f" (the experiment of {run_dir / 'config.json'})"
    else:
        source = ""
    root = Path(root)
    dest = destination(key, root, source)
    files = _collected_files(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.collecting-", dir=root))
    try:
        os.chmod(tmp, stat.S_IMODE(os.stat(root).st_mode) | stat.S_IRWXU)
        for f in files:
            shutil.copy2(f, tmp / f.name, follow_symlinks=False)
            if not _is_file(tmp / f.name):
                raise ValueError(f"{f} became a symbolic link while it was collected")
        _swap(tmp, dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(
            f"could not collect {run_dir} into {dest} ({e}); {dest} is unchanged"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def main() -> None:
    """Re-run every full experiment of :data:`FULL_RUNS` (one torch thread) with the settings of
    its committed run (:func:`run_overrides`; the default where none is committed), collect each,
    rewrite every document."""
    import torch

    from .runs import execute

    torch.set_num_threads(1)
    for key, name, paper in FULL_RUNS:
        out = Path("runs/results") / key
        resume = (out / "config.json").exists() and not (out / "summary.json").exists()
        try:
            sets = () if resume else tuple(run_overrides(load_summary(key)))
        except ValueError:  # nothing committed yet: the default setting
            sets = ()
        execute(
            name, quick=False, out=out, sets=sets, resume=resume, overwrite=not resume, paper=paper
        )
        collect(out, key)
    for doc in documents():
        write_document(doc)


if __name__ == "__main__":
    sys.exit(main())
