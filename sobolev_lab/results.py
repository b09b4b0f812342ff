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
import re
import shutil
import sys
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
    m = bench["machine"]
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
    for d in sorted(p for p in Path(root).iterdir() if (p / "summary.json").exists()):
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
