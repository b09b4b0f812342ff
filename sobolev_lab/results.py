"""Committed results: full-run summaries under ``docs/results/<key>/`` and the documents' tables
made from them.

A run directory of ``sobolev run`` is *collected* into ``docs/results/<key>/`` (its
``summary.json``, ``config.json``, ``table.md``, figures and small CSV files; no checkpoints or
metrics). The README, the pages under ``docs/`` and ``mutation/RESULTS.md`` (:func:`documents`)
hold blocks

    <!-- results: KEY -->
    ...tables...
    <!-- /results -->

whose content :func:`render_tables` makes: for a key under ``docs/results``, ``tables(summary)`` of
the experiment behind ``docs/results/KEY/summary.json``; the keys ``claims`` (the README's table
of :data:`CLAIMS`), ``overview``, ``benchmarks`` and ``mutation`` are described there.
:func:`render_document` rewrites the blocks of a text (``sobolev report``), and the test suite
checks that every committed document equals its rendering, so no number in a table can go stale.

``python -m sobolev_lab.results`` (``make results``) re-runs every full experiment listed in
:data:`FULL_RUNS`, collects each and rewrites the documents: hours on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import experiments

RESULTS_DIR = Path("docs/results")
#: one Markdown page per experiment, ``docs/experiments/<experiment>.md``
PAGES_DIR = Path("docs/experiments")
BLOCK = re.compile(
    r"(<!-- results: (?P<key>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL
)
#: files of a run directory that are committed (figures, tables, small data); never checkpoints
COLLECTED = ("summary.json", "config.json", "table.md", "*.png", "*.csv")
MAX_COLLECTED_BYTES = 1_000_000

#: the committed full runs: (key under docs/results, experiment, whether it is the paper setting)
FULL_RUNS: tuple[tuple[str, str, bool], ...] = (
    ("regression", "regression", False),
    ("theory", "theory", False),
    ("student-teacher", "student-teacher", False),
    ("student-teacher-paper", "student-teacher", True),
    ("architectures", "architectures", False),
    ("conditioning", "conditioning", False),
    ("numdiff-targets", "numdiff-targets", False),
    ("denoising-autoencoder", "denoising-autoencoder", False),
    ("denoising-autoencoder-paper", "denoising-autoencoder", True),
    ("diffusion-paper", "diffusion", True),
    ("differential-ml", "differential-ml", False),
)


def load_summary(key: str, root: Path = RESULTS_DIR) -> dict:
    """The committed summary ``root/key/summary.json``; a clear error when it is missing."""
    path = Path(root) / key / "summary.json"
    if not path.exists():
        aside = sorted(Path(root).glob(f".{key}.replaced-*/{key}/summary.json"))
        if aside and not os.path.lexists(path.parent):
            raise ValueError(
                f"no committed results for {key!r}: a `sobolev report --collect` was killed while "
                f"replacing {path.parent}; the previous run is at {aside[-1].parent} (move it back)"
            )
        raise ValueError(
            f"no committed results for {key!r}: {path} is missing (collect a run with "
            f"`sobolev report --collect RUN_DIR --key {key}`)"
        )
    return json.loads(path.read_text())


# --- the README's claims table ---------------------------------------------------------------


def _seed(r: dict, i: int, key: str) -> float:
    """Seed ``i``'s value of ``key`` in an :func:`~sobolev_lab.seeds.over_seeds` record; a missing
    or non-finite value (a diverged seed) is +inf."""
    v = r["per_seed"][i].get(key)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.inf


def held(*comparisons: tuple[dict, str, dict, str]) -> str:
    """``k/n``: the paired seeds in which every comparison ``(a, key_a, b, key_b)`` held, i.e.
    ``a``'s ``key_a`` was below ``b``'s ``key_b`` (records of :func:`sobolev_lab.seeds.over_seeds`
    run on the same seeds)."""
    n = len(comparisons[0][0]["per_seed"])
    if any(len(r["per_seed"]) != n for a, _, b, _ in comparisons for r in (a, b)):
        raise ValueError("held needs the same seeds in every record")
    k = sum(
        all(_seed(a, i, ka) < _seed(b, i, kb) for a, ka, b, kb in comparisons) for i in range(n)
    )
    return f"{k}/{n}"


def _below(per: dict, loss: str, key: str, base: str = "L2") -> str:
    """``k/n``: seeds in which ``per[loss]`` ended below ``per[base]`` on ``key``."""
    return held((per[loss], key, per[base], key))


def _regression(s: dict) -> str:
    res = s["results"]
    return ", ".join(
        f"{loss}: "
        + held(
            *(
                (res[f][loss], k, res[f]["L2"], k)
                for f in res
                for k in ("value_rel_l2", "deriv_rel_l2")
            )
        )
        for loss in s["config"]["losses"][1:]
    )


def _theory_conditioning(s: dict) -> str:
    from .report import fmt

    r = s["conditioning"]["K1_lam_min_ratio_H_over_L"]
    return f"ratio {fmt(r['min'])} to {fmt(r['max'])} over angles (closed form, no seeds)"


def _theory_flow(s: dict) -> str:
    from .report import fmt

    flows = s["flow"]
    target = next(iter(next(iter(flows.values()))))  # the first (loosest) target
    cells = [f"{k}: {fmt(f[target]['acceleration']['H_over_L'])}×" for k, f in flows.items()]
    return f"T_L / T_H to `{target}`: {', '.join(cells)} (one seed)"


def _student_teacher(s: dict) -> str:
    return ", ".join(
        f"{act} {_below(per, 'H1', 'value_rel_err')}" for act, per in s["results"].items()
    )


def _architectures(s: dict) -> str:
    res = s["results"]
    models = s["config"]["models"]
    return (
        "; ".join(
            f"{m} " + " ".join(_below(res[f][m], "H1", "d0_mse") for f in res) for m in models
        )
        + f" ({', '.join(res)})"
    )


def _conditioning_kappa(s: dict) -> str:
    return held(
        *(
            (r, "final_H1_cond", r, "final_L2_cond")
            for per in s["results"].values()
            for r in per.values()
        )
    )


def _conditioning_rate(s: dict) -> str:
    return ", ".join(
        f"{act} {_below(per, 'H1', 'rate_measured')}" for act, per in s["results"].items()
    )


def _numdiff(s: dict) -> str:
    per = s["results_2d"]
    return ", ".join(
        f"{m.removeprefix('H1-')} {_below(per, m, 'd0_mse')}" for m in per if m != "L2"
    )


def _denoising(loss: str) -> Callable[[dict], str]:
    def verdict(s: dict) -> str:
        res = s["results"]
        cells = [f"{c} {_below(res[c], loss, 'test_mse')}" for c in res]
        cells += [
            f"unseen {c} {_below(res[c], loss, 'ood_mse')}"
            for c in res
            if "ood_mse" in res[c]["L2"]
        ]
        return ", ".join(cells)

    return verdict


def _diffusion(s: dict) -> str:
    (res,) = s["results"].values()
    return "; ".join(
        f"{loss}: FD {_below(res, loss, 'final_fd')}, KD {_below(res, loss, 'final_kd')}"
        for loss in res
        if loss != "L2"
    )


def _differential_ml(s: dict) -> str:
    return ", ".join(
        f"d = {d} "
        + held(
            *(
                (per["differential"][n], k, per["standard"][n], k)
                for n in per["standard"]
                for k in ("price_rmse", "delta_rmse")
            )
        )
        for d, per in s["results"].items()
    )


@dataclasses.dataclass(frozen=True)
class Claim:
    """One row of the README's claims table.

    ``verdict(summary)`` says in how many seeds the claim held in the committed run ``key``;
    ``budget`` is a format string over a config (None shown as ``all``), filled from the run's
    config (ours) and from its experiment's ``Config.paper()`` (the paper's, where there is one).
    """

    text: str
    key: str
    verdict: Callable[[dict], str]
    budget: str


#: the claims of the papers tested here, one row each in the README
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "H1 and H2 end below L2 in held-out value and derivative error "
        "(sin x, e^{-x}; every error, both functions)",
        "regression",
        _regression,
        "{optimizer} lr {lr:g} ({schedule}), {epochs} epochs",
    ),
    Claim(
        "K = 1 ReLU student: the Hessian of H has the larger smallest eigenvalue, "
        "λ_min(∇²H) / λ_min(∇²L)",
        "theory",
        _theory_conditioning,
        "closed forms, Monte Carlo n = {n_mc}",
    ),
    Claim(
        "The gradient flow of H reaches the target faster than that of L (population losses)",
        "theory",
        _theory_flow,
        "closed forms, Monte Carlo n = {n_mc}",
    ),
    Claim(
        "H1 ends below L2 in test value error, shallow student–teacher (paper setting: plain SGD)",
        "student-teacher-paper",
        _student_teacher,
        "{optimizer} lr {lr:g}, batch {batch_size}, {steps} steps",
    ),
    Claim(
        "H1 ends below L2 in test value error, shallow student–teacher (ours: Adam)",
        "student-teacher",
        _student_teacher,
        "{optimizer} lr {lr:g}, batch {batch_size}, {steps} steps",
    ),
    Claim(
        "H1 ends below L2 in test value MSE, per architecture",
        "architectures",
        _architectures,
        "Adam lr {lr:g} to step {lbfgs_at}, then L-BFGS to {steps}",
    ),
    Claim(
        "The H1 Hessian is better conditioned than the L2 Hessian at the same weights "
        "(end of every run)",
        "conditioning",
        _conditioning_kappa,
        "gradient descent, {steps} full-batch steps",
    ),
    Claim(
        "H1 at its own stable step converges faster per step than L2",
        "conditioning",
        _conditioning_rate,
        "gradient descent, {steps} full-batch steps",
    ),
    Claim(
        "H1 with gradients estimated from values beats L2 (held-out value MSE, Ackley 2-D)",
        "numdiff-targets",
        _numdiff,
        "{optimizer} lr {lr:g} ({schedule}), {steps} steps",
    ),
    Claim(
        "The official H1 image loss beats L2 in test MSE (denoising autoencoder, paper setting)",
        "denoising-autoencoder-paper",
        _denoising("H1-paper"),
        "Adam lr {lr:g}, batch {batch_size}, {epochs} epochs, {n_train} training images",
    ),
    Claim(
        "A symmetric H1 image loss beats L2 in test MSE (denoising autoencoder, ours)",
        "denoising-autoencoder",
        _denoising("H1"),
        "Adam lr {lr:g}, batch {batch_size}, {epochs} epochs, {n_train} training images",
    ),
    Claim(
        "A Sobolev loss gives DDPM samples closer to the data than L2 (final FD and KD)",
        "diffusion-paper",
        _diffusion,
        "Adam lr {lr:g}, batch {batch_size}, {epochs} epochs",
    ),
    Claim(
        "Differential training beats standard training in price and delta error "
        "at every training size",
        "differential-ml",
        _differential_ml,
        "Adam lr {lr:g}, {epochs} epochs (at most {max_steps} steps)",
    ),
)


def _budget(fmt: str, config: dict[str, Any]) -> str:
    return fmt.format(**{k: "all" if v is None else v for k, v in config.items()})


def page(experiment: str) -> Path:
    """The documentation page of ``experiment``, relative to the repository root."""
    return PAGES_DIR / f"{experiment}.md"


def claims_table(root: Path = RESULTS_DIR, claims: tuple[Claim, ...] = CLAIMS) -> str:
    """The README's table: per claim, the paper's budget (its experiment's ``Config.paper()``),
    ours (the committed run's config), and the seeds in which it held; each claim links to its
    experiment's page."""
    from .report import markdown_table

    rows = []
    for c in claims:
        s = load_summary(c.key, root)
        mod = experiments.get(s["experiment"])
        paper = (
            _budget(c.budget, dataclasses.asdict(mod.Config.paper()))
            if hasattr(mod.Config, "paper")
            else "– (no `--paper` setting)"
        )
        rows.append(
            [
                f"[{c.text}]({page(s['experiment']).as_posix()})",
                paper,
                f"{s['setting']}: {_budget(c.budget, s['config'])}",
                c.verdict(s),
            ]
        )
    return markdown_table(["claim", "paper's budget", "ours (as run)", "held in (seeds)"], rows)


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


def overview_table(root: Path = RESULTS_DIR) -> str:
    """One row per committed run: its experiment, setting and seeds. (No wall times: runs split
    over processes and merged by a resume pass record only the last pass.)"""
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
        paper = " --paper" if s.get("setting") == "paper" else ""
        rows.append(
            [
                f"`{d.name}`",
                f"`sobolev run {s['experiment']}{paper}`",
                s.get("setting", "ours"),
                seeds,
            ]
        )
    return markdown_table(["docs/results/", "command", "setting", "seeds"], rows)


def render_tables(key: str, root: Path = RESULTS_DIR) -> str:
    """The Markdown of the block ``key``: the tables of the committed run ``root/key``, as its
    experiment's ``tables`` makes them; ``claims`` stands for :func:`claims_table`, ``overview``
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
    summary = load_summary(key, root)
    mod = experiments.get(summary["experiment"])
    return _demote_headings(mod.tables(summary)).strip() + "\n"


def _demote_headings(md: str) -> str:
    """Markdown headings of a run's tables as bold lines: in a document they sit in a section."""
    return re.sub(r"^#+ +(.+)$", r"**\1**", md, flags=re.MULTILINE)


def render_document(text: str, root: Path = RESULTS_DIR) -> str:
    """``text`` with every results block replaced by its rendering (:func:`render_tables`)."""
    return BLOCK.sub(lambda m: m.group(1) + render_tables(m.group("key"), root) + m.group(4), text)


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


#: what may follow an experiment's name in a results key (:func:`default_key`)
KEY_SUFFIXES = ("", "-paper", "-quick", "-paper-quick")


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
        f"optionally followed by {', '.join(KEY_SUFFIXES[1:])}, or of a run already in {root}"
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
    if key not in results_keys(root):
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
    """Re-run every full experiment of :data:`FULL_RUNS` (one torch thread), collect each, rewrite
    every document."""
    import torch

    from .runs import execute

    torch.set_num_threads(1)
    for key, name, paper in FULL_RUNS:
        out = Path("runs/results") / key
        resume = (out / "config.json").exists() and not (out / "summary.json").exists()
        execute(
            name, quick=False, out=out, sets=(), resume=resume, overwrite=not resume, paper=paper
        )
        collect(out, key)
    for doc in documents():
        write_document(doc)


if __name__ == "__main__":
    sys.exit(main())
