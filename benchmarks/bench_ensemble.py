"""Many seeds at once: a :func:`sobolev.ensemble_training.fit_ensemble` step against one
:func:`sobolev.fit` run and against N sequential runs, for N = 1 … 32 members.

Three sizes, read from the experiments' default configs: the regression demo (100 points full
batch, 1 input, MLP 2 × 32 tanh, float64, Adam with a cosine rate), differential ML (4096 samples
in minibatches of 256, 7 inputs, MLP 4 × 20 softplus, float32, Adam with a cosine rate, the
dimension weighting) and the architectures experiment (1000 points full batch, 1 input, MLP 3 × 64
tanh, float32, Adam; its L-BFGS phase is not an ensemble's). Losses L2, H1 and H2 (``SobolevLoss``
of order 0, 1, 2 with full derivative tensors) on random targets.

A step is timed as ``fit`` performs it: one call ``fit_ensemble(models, loss, data, cfg,
seeds=range(N))`` or ``fit(model, loss, data, cfg)`` with ``cfg = TrainConfig(steps=S,
progress=False, log_every>S, checkpoint_every=0)``, divided by S, nothing subtracted (the call's
fixed cost is included). The plain ``fit`` and every N are timed round-robin in one process
(``interleaved_times``), per size and loss; N sequential runs cost N × the ``fit`` time. Peak
memory: the live tensor bytes of a 2-step call (data, parameters, optimiser state and the step's
graph), against a 2-step ``fit``.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from sobolev import MLP, SobolevLoss, TrainConfig, fit
from sobolev.ensemble_training import fit_ensemble, seeded_models
from sobolev.models import Ensemble

from .timing import interleaved_times, peak_memory_bytes

LOSSES = {"L2": 0, "H1": 1, "H2": 2}
MEMBERS = (1, 2, 4, 8, 16, 32)  # 1 first: the "x ensemble of 1" baseline
QUICK_MEMBERS = (1, 8)
#: the issue's goals at 8 members: step time ≤ this × one member's, per size
GOALS_AT_8 = {"regression": 1.5, "differential ML": 3.0}


@dataclass(frozen=True)
class Size:
    """One problem size: samples, inputs, MLP, dtype, batch and the training settings."""

    name: str
    n: int
    d: int
    width: int
    depth: int
    activation: str
    dtype: torch.dtype
    batch_size: int | None
    lr: float
    schedule: str
    weighting: str | None
    steps: int  # steps per timed call (full run; quick halves them)

    def describe(self) -> str:
        batch = "full batch" if self.batch_size is None else f"batch {self.batch_size}"
        dt = str(self.dtype).removeprefix("torch.")
        return (
            f"{self.name}: {self.n} samples, {batch}, d = {self.d}, MLP {self.depth} × "
            f"{self.width} {self.activation}, {dt}, Adam lr {self.lr:g} {self.schedule}"
            + (f", {self.weighting} weighting" if self.weighting else "")
            + f", {self.steps} steps per timed call"
        )


def sizes() -> list[Size]:
    """The regression demo, differential ML and architectures sizes, from their configs."""
    from sobolev_lab.experiments import architectures, differential_ml, regression

    reg, dml, arch = regression.Config(), differential_ml.Config(), architectures.Config()
    n_dml = 4096
    bs, _ = dml.plan(n_dml)
    dim = next(d for d in dml.dims if d > 1)
    return [
        Size(
            "regression",
            reg.n_train,
            1,
            reg.width,
            reg.depth,
            reg.activation,
            getattr(torch, reg.dtype),
            None,
            reg.lr,
            reg.schedule,
            None,
            40,
        ),
        Size(
            "differential ML",
            n_dml,
            dim,
            dml.width,
            dml.depth,
            dml.activation,
            getattr(torch, dml.dtype),
            bs,
            dml.lr,
            "cosine",
            "dimension",
            16,
        ),
        Size(
            "architectures",
            arch.n_train,
            1,
            arch.width,
            arch.depth,
            "tanh",
            getattr(torch, arch.dtype),
            None,
            arch.lr,
            "constant",
            None,
            8,
        ),
    ]


def _data(size: Size, order: int) -> list[torch.Tensor]:
    """(x, u, Du, …) up to ``order``: x uniform in [-1, 1]^d, random targets of the right
    shapes."""
    g = torch.Generator().manual_seed(0)
    n, d, dt = size.n, size.d, size.dtype
    shapes = [(n, 1), (n, 1, d), (n, 1, d, d)][: order + 1]
    x = 2 * torch.rand(n, d, generator=g, dtype=dt) - 1
    return [x, *(0.5 * torch.randn(s, generator=g, dtype=dt) for s in shapes)]


def _make(size: Size) -> Callable[[], MLP]:
    return lambda: MLP(size.d, 1, size.width, size.depth, size.activation).to(size.dtype)


def _group(size: Size, loss: str, members: tuple[int, ...], steps: int, repeats: int) -> list[dict]:
    """Rows of one size and loss: every N against the plain ``fit``, timed round-robin."""
    order = LOSSES[loss]
    data = _data(size, order)
    objective = SobolevLoss(order, **({"weighting": size.weighting} if size.weighting else {}))
    cfg = TrainConfig(
        steps=steps,
        lr=size.lr,
        schedule=size.schedule,
        batch_size=size.batch_size,
        log_every=steps + 1,
        checkpoint_every=0,
        progress=False,
        device="cpu",
    )
    make = _make(size)
    single = seeded_models(make, [0])[0]
    ensembles = {n: seeded_models(make, range(n)) for n in members}

    def run_fit(c: TrainConfig = cfg) -> None:
        fit(single, objective, data, c)

    def run_ensemble(n: int, c: TrainConfig = cfg) -> Callable[[], None]:
        return lambda: fit_ensemble(ensembles[n], objective, data, c, seeds=range(n))

    fns: dict[str, Callable[[], None]] = {"fit": run_fit}
    fns |= {f"N={n}": run_ensemble(n) for n in members}
    times = interleaved_times(fns, repeats=repeats, warmup=1)
    short = replace(cfg, steps=2, log_every=3)
    mem_fit = peak_memory_bytes(lambda: run_fit(short))
    method = Ensemble(ensembles[members[0]]).method
    t_fit, t_one = times["fit"] / steps, times["N=1"] / steps
    rows = []
    for n in members:
        t = times[f"N={n}"] / steps
        mem = peak_memory_bytes(run_ensemble(n, short))
        rows.append(
            {
                "size": size.name,
                "loss": loss,
                "N": n,
                "method": method,
                "ms/step": round(1e3 * t, 3),
                "fit ms/step": round(1e3 * t_fit, 3),
                "x ensemble of 1": round(t / t_one, 2),
                "x fit": round(t / t_fit, 2),
                "x N sequential": round(t / (n * t_fit), 2),
                "peak MB": round(mem / 2**20, 2),
                "mem x fit": round(mem / mem_fit, 2),
            }
        )
    return rows


def goals(rows: list[dict]) -> list[str]:
    """Whether each goal of the issue held, as sentences for the notes."""
    out = []
    for name, bound in GOALS_AT_8.items():
        at8 = [r for r in rows if r["size"] == name and r["N"] == 8]
        if not at8:
            continue
        worst = max(r["x fit"] for r in at8)
        cells = ", ".join(f"{r['loss']} {r['x fit']}×" for r in at8)
        verdict = "held" if worst <= bound else "NOT held"
        out.append(f"8 members ≤ {bound:g}× one run at the {name} size: {verdict} ({cells})")
    slower = [r for r in rows if r["N"] > 1 and r["x N sequential"] > 1.0]
    where = ", ".join(
        f"{r['size']} {r['loss']} N={r['N']} ({r['x N sequential']}×)" for r in slower
    )
    out.append(
        "never slower than N sequential runs (N ≥ 2): "
        + (f"NOT held at {where}" if slower else "held at every size, loss and N")
    )
    one = [r["x fit"] for r in rows if r["N"] == 1]
    out.append(
        f"with one member, fit_ensemble costs {min(one):g}× to {max(one):g}× a plain fit per step"
    )
    return out


def run(quick: bool = False) -> dict:
    members = QUICK_MEMBERS if quick else MEMBERS
    repeats = 2 if quick else 5
    rows: list[dict] = []
    all_sizes = sizes()
    for size in all_sizes:
        steps = max(size.steps // 2, 4) if quick else size.steps
        for loss in LOSSES:
            rows += _group(size, loss, members, steps, repeats)
    notes = (
        "Sizes: "
        + "; ".join(s.describe() for s in all_sizes)
        + f". Median of {repeats} interleaved repeats after 1 warm-up call; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}. 'ms/step' = time of one fit_ensemble "
        "call / its steps (fixed cost of the call included); 'fit ms/step' the same for one "
        "sobolev.fit run of member 0; 'x ensemble of 1' = ms/step / that of fit_ensemble with "
        "one member; 'x fit' = ms/step / fit ms/step (one member's run); 'x N sequential' = "
        "ms/step / (N × fit ms/step): below 1 the ensemble is faster than training the N seeds "
        "one after another; 'peak MB' = peak live tensor bytes of a 2-step call, 'mem x fit' "
        "against a 2-step fit.\n\nGoals: " + "; ".join(goals(rows)) + "."
    )
    return {
        "title": "Ensembles of seeds (fit_ensemble) vs one run and N sequential runs",
        "rows": rows,
        "notes": notes,
    }
