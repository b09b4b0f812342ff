"""Committed summaries (``docs/results/<key>/summary.json``) and every claim made from them: the
README's claims table (:data:`CLAIMS`, :func:`claims_table`) and the claims in the prose of the
README and the experiment pages, ``<!-- claim: NAME -->…<!-- /claim -->``, whose words
:func:`render_claim` makes from a summary (:data:`PROSE_CLAIMS`); :func:`unclaimed` finds a
result-like number in prose outside a claim. :mod:`sobolev_lab.results` writes them into the
documents."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import experiments

RESULTS_DIR = Path("docs/results")
#: one Markdown page per experiment, ``docs/experiments/<experiment>.md``
PAGES_DIR = Path("docs/experiments")
BLOCK = re.compile(
    r"(<!-- results: (?P<key>[\w.~-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL
)

#: the committed full runs: (key under docs/results, experiment, whether it is the paper setting)
FULL_RUNS: tuple[tuple[str, str, bool], ...] = (
    ("regression", "regression", False),
    ("theory", "theory", False),
    ("student-teacher", "student-teacher", False),
    ("student-teacher-paper", "student-teacher", True),
    ("architectures", "architectures", False),
    ("architectures-siren", "architectures", False),
    ("conditioning", "conditioning", False),
    ("numdiff-targets", "numdiff-targets", False),
    ("denoising-autoencoder", "denoising-autoencoder", False),
    ("denoising-autoencoder-paper", "denoising-autoencoder", True),
    ("diffusion-paper", "diffusion", True),
    ("differential-ml", "differential-ml", False),
    ("differential-ml-paper", "differential-ml", True),
    ("differential-ml-paper-bachelier", "differential-ml", True),
    ("differential-ml-paper-d50", "differential-ml", True),
)
#: committed runs made on another machine (a lent GPU) and collected with their provenance (the
#: summary's ``provenance``): ``make results`` does not re-run them on a CPU
COLLECTED_RUNS: tuple[tuple[str, str, bool], ...] = (("diffusion-paper-gpu", "diffusion", True),)
#: every committed run under ``docs/results``
COMMITTED_RUNS = FULL_RUNS + COLLECTED_RUNS


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


def count(*comparisons: tuple[dict, str, dict, str]) -> tuple[int, int]:
    """``(k, n)``: of the ``n`` paired seeds, the ``k`` in which every comparison
    ``(a, key_a, b, key_b)`` held, i.e. ``a``'s ``key_a`` was below ``b``'s ``key_b`` (records of
    :func:`sobolev_lab.seeds.over_seeds` run on the same seeds)."""
    n = len(comparisons[0][0]["per_seed"])
    if any(len(r["per_seed"]) != n for a, _, b, _ in comparisons for r in (a, b)):
        raise ValueError("held needs the same seeds in every record")
    k = sum(
        all(_seed(a, i, ka) < _seed(b, i, kb) for a, ka, b, kb in comparisons) for i in range(n)
    )
    return k, n


def held(*comparisons: tuple[dict, str, dict, str]) -> str:
    """``k/n`` of :func:`count`."""
    k, n = count(*comparisons)
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


def _student_teacher_budget(c: dict) -> str:
    lrs = c.get("lrs") or ()
    rate = (
        f"lr {min(lrs):g} to {max(lrs):g} ({len(lrs)} rates, each loss at its best)"
        if lrs
        else f"lr {c['lr']:g}"
    )
    return f"{c['optimizer']} {rate}, batch {c['batch_size']}, {c['steps']} steps"


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


def _dml_budget(c: dict) -> str:
    rate = "one-cycle to peak" if c.get("schedule") == "one-cycle" else "cosine from"
    cap = f" (at most {c['max_steps']} steps)" if c["max_steps"] < 2**30 else ""
    return f"Adam {rate} {c['lr']:g}, {c['epochs']} epochs{cap}"


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
    ``budget`` is a format string over a config (None shown as ``all``), or a function of the
    config, filled from the run's config (ours) and from its experiment's ``Config.paper()`` (the
    paper's, where there is one).
    """

    text: str
    key: str
    verdict: Callable[[dict], str]
    budget: str | Callable[[dict], str]


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
        _student_teacher_budget,
    ),
    Claim(
        "H1 ends below L2 in test value error, shallow student–teacher (ours: Adam)",
        "student-teacher",
        _student_teacher,
        _student_teacher_budget,
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
        "diffusion-paper-gpu",
        _diffusion,
        "Adam lr {lr:g}, batch {batch_size}, {epochs} epochs, {n_train} training images, "
        "UNet base {base}",
    ),
    Claim(
        "Differential training beats standard training in price and delta error "
        "at every training size",
        "differential-ml",
        _differential_ml,
        _dml_budget,
    ),
)


def _budget(fmt: str | Callable[[dict], str], config: dict[str, Any]) -> str:
    if callable(fmt):
        return fmt(config)
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


# --- claims in the prose ----------------------------------------------------------------------
#
# A sentence of a document that states a result carries its numbers and seed counts in an inline
# template, e.g. ``H2 ends below H1 <!-- claim: regression.h2-below-h1 -->in 4 of 5 seeds<!--
# /claim -->``, whose text :func:`render_claim` makes from the committed summary (the function of
# :data:`PROSE_CLAIMS`), as a results block's tables are; :func:`unclaimed` finds the result-like
# numbers of a document's prose outside such templates.

CLAIM = re.compile(r"<!-- claim: (?P<name>[\w.-]+) -->(?P<body>.*?)<!-- /claim -->", re.DOTALL)
#: what a claim's words call an activation where it differs from its key
NAMES = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "gelu": "GELU"}
#: a float64 relative error this small is round-off (a few dozen machine epsilons)
ROUND_OFF = 1e-14


def in_seeds(k: int, n: int) -> str:
    """``k`` of ``n`` seeds in words: ``in every seed`` (``in both seeds``), ``in no seed`` or
    ``in k of n seeds``."""
    if k == n:
        return "in both seeds" if n == 2 else "in every seed"
    return "in no seed" if k == 0 else f"in {k} of {n} seeds"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def grouped(counts: dict[str, tuple[int, int]], prep: str = "for") -> str:
    """``in every seed for A and B and in 4 of 5 seeds for C``: the labels of ``counts`` (label ->
    ``(k, n)`` of :func:`count`) grouped by their count, most seeds first."""
    groups: dict[tuple[int, int], list[str]] = {}
    for label, c in counts.items():
        groups.setdefault(c, []).append(NAMES.get(label, label))
    order = sorted(groups, key=lambda c: -c[0] / c[1])
    return _and([f"{in_seeds(*c)} {prep} {_and(groups[c])}" for c in order])


def _span(values: list[float]) -> str:
    """``lo to hi`` of ``values``, two significant digits."""
    from .report import fmt

    lo, hi = fmt(min(values), 2), fmt(max(values), 2)
    return lo if lo == hi else f"{lo} to {hi}"


def _at(s: dict, path: tuple[str, ...]) -> Any:
    for p in path:
        s = s[p]
    return s


def _seeds(r: dict, key: str) -> list[float]:
    return [_seed(r, i, key) for i in range(len(r["per_seed"]))]


def _groups(
    path: tuple[str, ...],
    key: str,
    *,
    inner: tuple[str, ...] = (),
    loss: str = "H1",
    base: str = "L2",
    above: bool = False,
    prep: str = "for",
) -> Callable[[dict], str]:
    """:func:`grouped` over the entries of ``summary[path]`` (activations, functions, …): the
    seeds in which the entry's ``[inner][loss]`` ended below (``above``: above) its
    ``[inner][base]`` on ``key``."""

    def text(s: dict) -> str:
        counts = {}
        for name, entry in _at(s, path).items():
            a, b = _at(entry, inner)[loss], _at(entry, inner)[base]
            counts[name] = count((b, key, a, key) if above else (a, key, b, key))
        return grouped(counts, prep)

    return text


def _losses(
    path: tuple[str, ...], key: str, *, base: str = "L2", above: bool = False
) -> Callable[[dict], str]:
    """:func:`grouped` over the losses of ``summary[path]`` but ``base``: the seeds in which each
    ended below (``above``: above) ``base`` on ``key``."""

    def text(s: dict) -> str:
        per = _at(s, path)
        pairs = {l: (per[l], key, per[base], key) for l in per if l != base}
        return grouped(
            {
                l: count((b, kb, a, ka) if above else (a, ka, b, kb))
                for l, (a, ka, b, kb) in pairs.items()
            }
        )

    return text


def _extreme(
    path: tuple[str, ...], loss: str, key: str, *, highest: bool = False
) -> Callable[[dict], str]:
    """:func:`in_seeds`: the seeds in which ``loss`` ended below (``highest``: above) every other
    loss of ``summary[path]`` on ``key``."""

    def text(s: dict) -> str:
        per = _at(s, path)
        others = [per[o] for o in per if o != loss]
        if highest:
            return in_seeds(*count(*((o, key, per[loss], key) for o in others)))
        return in_seeds(*count(*((per[loss], key, o, key) for o in others)))

    return text


REGRESSION_ERRORS = ("value_rel_l2", "deriv_rel_l2")


def _regression_below_l2(s: dict) -> str:
    res = s["results"]
    return in_seeds(
        *count(
            *(
                (res[f][loss], k, res[f]["L2"], k)
                for f in res
                for loss in s["config"]["losses"][1:]
                for k in REGRESSION_ERRORS
            )
        )
    )


def _regression_h2_below_h1(s: dict) -> str:
    res = s["results"]
    return in_seeds(
        *count(*((res[f]["H2"], k, res[f]["H1"], k) for f in res for k in REGRESSION_ERRORS))
    )


def _student_teacher_steps(s: dict) -> str:
    """Per value-error level: the activations whose H1 run reaches it in fewer, as many or more
    steps than L2's (medians over the seeds that reach it; a level not reached is +inf)."""
    res = s["results"]
    levels = list(next(iter(res.values()))["L2"]["reach_value_err"])

    def step(r: dict, t: str) -> float:
        v = r["reach_value_err"][t]["step"]
        return math.inf if v is None else v

    everywhere, rest = [], []
    for t in levels:
        kinds: dict[str, list[str]] = {"fewer": [], "as many": [], "more": []}
        for act, per in res.items():
            h, l2 = step(per["H1"], t), step(per["L2"], t)
            kinds["fewer" if h < l2 else "as many" if h == l2 else "more"].append(act)
        if len(kinds["fewer"]) == len(res):
            everywhere.append(t)
        else:
            words = [
                f"in {k} steps for {_and([NAMES.get(a, a) for a in acts])}"
                for k, acts in kinds.items()
                if acts
            ]
            rest.append(f"{t} {_and(words)}")
    head = [f"{_and(everywhere)} in fewer steps for every activation"] if everywhere else []
    return "; ".join(head + rest)


def _student_teacher_best_lrs(s: dict) -> str:
    """The rate each loss was compared at, grouped by activations that share it."""
    from .report import fmt

    groups: dict[tuple, list[str]] = {}
    for act, per in s["results"].items():
        groups.setdefault(tuple(per[l]["lr"] for l in per), []).append(NAMES.get(act, act))
    losses = list(next(iter(s["results"].values())))
    return "; ".join(
        ", ".join(f"{l} {fmt(lr, 2)}" for l, lr in zip(losses, lrs))
        + ("" if len(groups) == 1 else f" for {_and(acts)}")
        for lrs, acts in groups.items()
    )


def _student_teacher_l2_round_off(s: dict) -> str:
    """The seeds in which L2, at its rate, ends at round-off with the smooth activations."""
    return grouped(
        {
            a: (
                sum(e < ROUND_OFF for e in _seeds(s["results"][a]["L2"], "value_rel_err")),
                len(s["results"][a]["L2"]["per_seed"]),
            )
            for a in ("gelu", "tanh", "sine")
            if a in s["results"]
        }
    )


def _student_teacher_smooth(s: dict) -> str:
    from .report import fmt

    h1 = {a: s["results"][a]["H1"] for a in ("gelu", "tanh", "sine") if a in s["results"]}
    worst = max(max(_seeds(r, "value_rel_err")) for r in h1.values())
    rounded = {
        a: (sum(e < ROUND_OFF for e in _seeds(r, "value_rel_err")), len(r["per_seed"]))
        for a, r in h1.items()
    }
    return (
        f"at most {fmt(worst, 2)} in every seed, and at round-off (below {ROUND_OFF:g}) "
        + grouped(rounded)
    )


def _student_teacher_kinked(s: dict) -> str:
    res = {a: s["results"][a] for a in ("relu", "leaky_relu") if a in s["results"]}
    errs = [e for per in res.values() for e in _seeds(per["H1"], "value_rel_err")]
    lower = count(
        *((per["L2"], "value_rel_err", per["H1"], "value_rel_err") for per in res.values())
    )
    return f"of {_span(errs)}, and L2 ends lower {in_seeds(*lower)}"


def _conditioning_kappa_words(s: dict) -> str:
    return grouped(
        {
            act: count(*((r, "final_H1_cond", r, "final_L2_cond") for r in per.values()))
            for act, per in s["results"].items()
        }
    )


def _architectures_h2_above_l2(s: dict) -> str:
    res = s["results"]
    return in_seeds(
        *count(
            *((per["L2"], "d0_mse", per["H2"], "d0_mse") for f in res for per in res[f].values())
        )
    )


def _architectures_floor(model: str, functions: tuple[str, ...]) -> Callable[[dict], str]:
    """The smallest value error of ``model`` on ``functions`` over every loss and seed."""

    def text(s: dict) -> str:
        from .report import fmt

        res = s["results"]
        errs = [
            e for f in functions for r in res[f][model].values() for e in _seeds(r, "d0_rel_err")
        ]
        return f"at least {fmt(min(errs), 2)} with every loss in every seed"

    return text


def _numdiff_reach(s: dict) -> str:
    """The tightest held-out MSE some method reaches in every seed and the next one: the seeds in
    which each method reaches them."""
    per = s["results_2d"]
    levels = list(per["L2"]["reach_value_mse"])

    def reached(r: dict, t: str) -> tuple[int, int]:
        return r["reach_value_mse"][t]["reached"], r["reach_value_mse"][t]["of"]

    full = [t for t in levels if any(reached(r, t)[0] == reached(r, t)[1] for r in per.values())]
    start = levels.index(full[-1]) if full else 0
    return "; ".join(
        f"≤ {t} " + grouped({m: reached(r, t) for m, r in per.items()})
        for t in levels[start : start + 2]
    )


def _numdiff_level(s: dict) -> str:
    """How far every method's median value error lies from L2's, from the first dimension with
    directional H1 on."""
    start = s["config"]["directions_from"]
    gaps = [
        abs(r["d0_rel"] / per["L2"]["d0_rel"] - 1)
        for d, per in s["dims"].items()
        if int(d) >= start
        for r in per.values()
    ]
    return f"from d = {start} on, every method's median value error lies within {max(gaps):.0%}"


DML_ERRORS = ("price_rmse", "delta_rmse")


def _dml_match(dims: Callable[[int], bool]) -> Callable[[dict], str]:
    """How many times as many paths standard training needs to match differential training at the
    first size of ``match_at``, in price and delta error, over the dimensions ``dims`` selects:
    the range over seeds and the range of the medians."""

    def text(s: dict) -> str:
        n0 = str(s["config"]["match_at"][0])
        effs = [
            per["efficiency"][k][n0]
            for d, per in s["results"].items()
            if dims(int(d))
            for k in DML_ERRORS
        ]
        ratios = [p.get("ratio") for e in effs for p in e["per_seed"]]
        seen = [r for r in ratios if r is not None]
        out = f"{_span(seen)} times as many paths (medians {_span([e['ratio'] for e in effs])})"
        missed = len(ratios) - len(seen)
        return out + (f", and more than the largest size in {missed} cases" if missed else "")

    return text


def _dml_below_standard(s: dict) -> str:
    return grouped(
        {
            f"d = {d}": count(
                *(
                    (per["differential"][n], k, per["standard"][n], k)
                    for n in per["standard"]
                    for k in DML_ERRORS
                )
            )
            for d, per in s["results"].items()
        }
    )


def _dml_largest_standard(s: dict) -> str:
    sizes = s["config"]["sizes"]
    big, small = str(max(sizes)), str(min(sizes))
    return grouped(
        {
            f"d = {d}": count(
                (per["standard"][big], "price_rmse", per["differential"][small], "price_rmse")
            )
            for d, per in s["results"].items()
        }
    )


def _dml_high_d(better: str, worse: str) -> Callable[[dict], str]:
    def text(s: dict) -> str:
        h = s["high_d"]
        return grouped(
            {
                f"n = {n}": count(*((h[better][n], k, h[worse][n], k) for k in DML_ERRORS))
                for n in h[better]
            },
            "at",
        )

    return text


def _theory_speedup(s: dict) -> str:
    parts = []
    for k, flows in s["flow"].items():
        acc = [f["acceleration"]["H_over_L"] for f in flows.values()]
        got = [a for a in acc if a is not None]
        part = f"{_span(got)} times as fast for K = {k.removeprefix('K')}"
        if len(got) < len(acc):
            part += (
                f" (where L's flow reaches {len(got)} of the {len(acc)} targets "
                "in the time allowed)"
            )
        parts.append(part)
    return _and(parts)


def _theory_autodiff(s: dict) -> str:
    pairs = [
        (f["acceleration"]["H autodiff_over_L"], f["acceleration"]["H_over_L"])
        for flows in s["flow"].values()
        for f in flows.values()
        if f["acceleration"]["H_over_L"] is not None
    ]
    k = sum(a < h for a, h in pairs)
    if k == len(pairs):
        return "at every target L's flow reaches"
    return f"at {k} of the {len(pairs)} targets L's flow reaches"


@dataclasses.dataclass(frozen=True)
class ProseClaim:
    """The words of a claim inside a sentence: ``text(summary)`` of the committed run ``key``."""

    key: str
    text: Callable[[dict], str]


_R = ("results",)
#: the claims of the documents' prose by name: ``<!-- claim: NAME -->…<!-- /claim -->``
PROSE_CLAIMS: dict[str, ProseClaim] = {
    "regression.below-l2": ProseClaim("regression", _regression_below_l2),
    "regression.h2-below-h1": ProseClaim("regression", _regression_h2_below_h1),
    "student-teacher-paper.steps": ProseClaim("student-teacher-paper", _student_teacher_steps),
    "student-teacher-paper.smooth": ProseClaim("student-teacher-paper", _student_teacher_smooth),
    "student-teacher-paper.kinked": ProseClaim("student-teacher-paper", _student_teacher_kinked),
    "student-teacher-paper.best-lrs": ProseClaim(
        "student-teacher-paper", _student_teacher_best_lrs
    ),
    "student-teacher-paper.l2-round-off": ProseClaim(
        "student-teacher-paper", _student_teacher_l2_round_off
    ),
    "student-teacher.below-l2": ProseClaim("student-teacher", _groups(_R, "value_rel_err")),
    "conditioning.kappa": ProseClaim("conditioning", _conditioning_kappa_words),
    "conditioning.rate": ProseClaim("conditioning", _groups(_R, "rate_measured")),
    "architectures.fourier": ProseClaim("architectures", _groups(_R, "d0_mse", inner=("fourier",))),
    "architectures.mlp": ProseClaim("architectures", _groups(_R, "d0_mse", inner=("mlp",))),
    "architectures.mlp-floor": ProseClaim(
        "architectures", _architectures_floor("mlp", ("f1", "f3"))
    ),
    "architectures.siren-values": ProseClaim(
        "architectures", _groups(_R, "d0_mse", inner=("siren",), above=True)
    ),
    "architectures.siren-derivatives": ProseClaim(
        "architectures", _groups(_R, "d1_rel_err", inner=("siren",))
    ),
    "architectures.h2-above-l2": ProseClaim("architectures", _architectures_h2_above_l2),
    **{
        f"architectures-siren.w{w}": ProseClaim(
            "architectures-siren", _groups(_R, "d0_mse", inner=(f"siren@{w}",))
        )
        for w in (1, 3, 10, 30)
    },
    "numdiff-targets.below-l2": ProseClaim("numdiff-targets", _losses(("results_2d",), "d0_mse")),
    "numdiff-targets.reach": ProseClaim("numdiff-targets", _numdiff_reach),
    **{
        f"numdiff-targets.dims-{m.removeprefix('H1-').lower()}": ProseClaim(
            "numdiff-targets", _groups(("dims",), "d0_rel", loss=m, prep="at d =")
        )
        for m in ("H1-exact", "H1-FD", "H1-Chebyshev")
    },
    "numdiff-targets.dims-level": ProseClaim("numdiff-targets", _numdiff_level),
    "denoising-autoencoder-paper.below-l2": ProseClaim(
        "denoising-autoencoder-paper", _losses(("results", "sinusoid"), "test_mse")
    ),
    "denoising-autoencoder-paper.lowest": ProseClaim(
        "denoising-autoencoder-paper", _extreme(("results", "sinusoid"), "H1-paper", "test_mse")
    ),
    "denoising-autoencoder-paper.h2-highest": ProseClaim(
        "denoising-autoencoder-paper",
        _extreme(("results", "sinusoid"), "H2", "test_mse", highest=True),
    ),
    "denoising-autoencoder-paper.unseen": ProseClaim(
        "denoising-autoencoder-paper", _losses(("results", "sinusoid"), "ood_mse")
    ),
    "denoising-autoencoder.below-l2": ProseClaim("denoising-autoencoder", _groups(_R, "test_mse")),
    "denoising-autoencoder.unseen-l2-lowest": ProseClaim(
        "denoising-autoencoder", _extreme(("results", "sinusoid"), "L2", "ood_mse")
    ),
    "denoising-autoencoder.unseen-ssim": ProseClaim(
        "denoising-autoencoder", _losses(("results", "sinusoid"), "ood_ssim", above=True)
    ),
    "diffusion-paper.fd-l2-lowest": ProseClaim(
        "diffusion-paper", _extreme(("results", "pred_x0"), "L2", "final_fd")
    ),
    "diffusion-paper.kd-below-l2": ProseClaim(
        "diffusion-paper", _losses(("results", "pred_x0"), "final_kd")
    ),
    "diffusion-paper-gpu.fd-below-l2": ProseClaim(
        "diffusion-paper-gpu", _losses(("results", "pred_x0"), "final_fd")
    ),
    "diffusion-paper-gpu.kd-below-l2": ProseClaim(
        "diffusion-paper-gpu", _losses(("results", "pred_x0"), "final_kd")
    ),
    "diffusion-paper-gpu.best-fd-below-l2": ProseClaim(
        "diffusion-paper-gpu", _losses(("results", "pred_x0"), "best_fd")
    ),
    "differential-ml.below-standard": ProseClaim("differential-ml", _dml_below_standard),
    "differential-ml.match-baskets": ProseClaim("differential-ml", _dml_match(lambda d: d > 1)),
    "differential-ml.match-call": ProseClaim("differential-ml", _dml_match(lambda d: d == 1)),
    "differential-ml.largest-standard": ProseClaim("differential-ml", _dml_largest_standard),
    "differential-ml.full-vs-directional": ProseClaim(
        "differential-ml", _dml_high_d("differential", "directional labels")
    ),
    "differential-ml.random-vs-full": ProseClaim(
        "differential-ml", _dml_high_d("random direction per step", "differential")
    ),
    "theory.speedup": ProseClaim("theory", _theory_speedup),
    "theory.autodiff": ProseClaim("theory", _theory_autodiff),
}


def render_claim(name: str, root: Path = RESULTS_DIR, summaries: dict | None = None) -> str:
    """The words of the prose claim ``name`` (:data:`PROSE_CLAIMS`) from the committed summaries
    under ``root``; ``summaries`` caches them by key."""
    if name not in PROSE_CLAIMS:
        raise ValueError(
            f"unknown claim {name!r}: a claim is a key of sobolev_lab.claims.PROSE_CLAIMS"
        )
    c = PROSE_CLAIMS[name]
    summaries = {} if summaries is None else summaries
    if c.key not in summaries:
        summaries[c.key] = load_summary(c.key, root)
    return c.text(summaries[c.key])


#: result-like numbers in prose: percentages, k/n, "k of n", counts of seeds in words, ratios
#: (``2×``, ``twice``, ``3 times``), scientific notation, decimals, durations
_W = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|\d+)"
_SEEDS = r"\s+(?:paired\s+)?seeds?\b"
RESULT_LIKE = re.compile(
    "|".join(
        [
            r"\b\d+(?:\.\d+)?\s*%",
            r"\b\d+\s*/\s*\d+\b",
            rf"\b{_W}\s+of\s+(?:the\s+)?{_W}\b",
            rf"\bin\s+(?:every|each|all|both|no|none\s+of\s+the|either|{_W}){_SEEDS}",
            rf"\b(?:every|all|both){_SEEDS}|\bin\s+none\b",
            r"\b\d+(?:\.\d+)?\s*×(?![\s(]*[\d(])",
            r"\b\d+(?:\.\d+)?\s+times\b",
            r"\b(?:twice|thrice|half\s+as|order\s+of\s+magnitude)\b",
            r"\b\w+\s+times\s+(?:faster|slower|more|less|lower|higher|larger|smaller)\b",
            r"\b\d+(?:\.\d+)?[eE][-+]?\d+\b",
            r"\b10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+",
            r"\b\d+\.\d+\b",
            r"\b\d+(?:\.\d+)?\s*(?:CPU-)?(?:hours?|minutes?|min|seconds?|ms|days?|weeks?)\b",
        ]
    ),
    re.IGNORECASE,
)
#: numbers of prose that are settings, versions or definitions, not results (the allow-list)
ALLOWED: tuple[str, ...] = (
    r"Python ≥? ?\d+\.\d+",  # a version
    r"arXiv:\d+\.\d+",  # a reference
    r"\b(?:lr|learning rate|Adam|SGD) \d[\d.]*(?:e-\d+)?",  # an optimiser setting
    r"\bn = 10[⁰¹²³⁴⁵⁶⁷⁸⁹]+",  # a sample size
    r"\bchecked to 1e-\d+",  # a test's tolerance
    r"\d × MSE|×10³",  # definitions of the losses and of KD
    r"\bis about \d+(?:\.\d+)? GB",  # the size of a data set
)
NOT_RESULTS = re.compile("|".join(ALLOWED))
_BLANKED = (
    BLOCK,
    CLAIM,
    re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE),  # code blocks
    re.compile(r"^\|.*$", re.MULTILINE),  # tables: generated, or settings written by hand
    re.compile(r"`[^`\n]*`"),  # code
    re.compile(r"\]\([^)\s]*\)"),  # link targets
)


def _blank(m: re.Match) -> str:
    return re.sub(r"[^\n]", " ", m.group(0))


def unclaimed(text: str) -> list[tuple[int, str]]:
    """``(line, match)`` of every result-like number (:data:`RESULT_LIKE`) of the prose of
    ``text`` that is neither inside a claim template nor allowed by :data:`NOT_RESULTS`: results
    blocks, claims, code, tables and link targets are not prose."""
    for rx in _BLANKED:
        text = rx.sub(_blank, text)
    flat = NOT_RESULTS.sub(_blank, text.replace("\n", " "))
    return [(text.count("\n", 0, m.start()) + 1, m.group(0)) for m in RESULT_LIKE.finditer(flat)]


def prose_documents(repo: Path = Path(".")) -> list[Path]:
    """The documents whose prose states results only in claims: ``README.md`` and the pages of
    ``docs/experiments``."""
    repo = Path(repo)
    return [repo / "README.md", *sorted((repo / PAGES_DIR).glob("*.md"))]
