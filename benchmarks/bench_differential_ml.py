"""Differential ML with the reference notebooks' recipe (``sobolev run differential-ml --paper``):
seconds per training epoch against the training size, standard (L2 on payoffs) and differential
(H1 with per-input weights λ_j) training.

One epoch is ``fit`` over ``ceil(n / batch)`` minibatches with the notebooks' batch rule
``batch = max(256, n // 16)``: a ``fit`` call of one epoch's steps (Adam, one-cycle rate, float32,
4×20 softplus MLP, ``weighting="dimension"``), median over repeats, standard and differential timed
round-robin in one process. Data: labelled antithetic paths of the pricing model of dimension d
(Black–Scholes at d = 1, the Bachelier basket otherwise), standardised. 'µs / sample' is the
epoch's seconds over n: flat when an epoch's cost grows linearly with the training size.
"""

from __future__ import annotations

import math

import torch

from sobolev import MLP, Normalizer, SobolevLoss, TrainConfig, fit
from sobolev.finance import pricing_model

from .timing import interleaved_times

DIMS = (1, 7, 20)
SIZES = (1024, 8192, 65536)
QUICK_SIZES = (1024, 8192)


def _epoch(d: int, n: int, differential: bool):
    """A function training one epoch on n paths of dimension d (a fresh network each call)."""
    model = pricing_model(d)
    s = model.sample(n, generator=torch.Generator().manual_seed(0))
    norm = Normalizer.fit(s.x, s.y)
    data = norm.transform(s.x, s.y, s.dydx)
    lam = norm.derivative_weights(s.dydx) if differential else None
    loss = SobolevLoss(int(differential), weighting="dimension", input_weights=lam)
    batch = max(256, n // 16)
    steps = math.ceil(n / batch)
    cfg = TrainConfig(
        steps=steps,
        lr=0.1,
        schedule="one-cycle",
        batch_size=batch,
        dtype="float32",
        progress=False,
        log_every=steps + 1,
        checkpoint_every=0,
    )
    used = data if differential else data[:2]

    def run() -> None:
        torch.manual_seed(0)
        fit(MLP(d, 1, 20, 4, "softplus"), loss, used, cfg)

    return run, batch


def run(quick: bool = False) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for d in DIMS if not quick else DIMS[:2]:
            for n in QUICK_SIZES if quick else SIZES:
                (std, batch), (diff, _) = _epoch(d, n, False), _epoch(d, n, True)
                t = interleaved_times(
                    {"standard": std, "differential": diff}, repeats=3 if quick else 5, warmup=1
                )
                rows.append(
                    {
                        "d": d,
                        "n": n,
                        "batch": batch,
                        "standard s/epoch": round(t["standard"], 4),
                        "differential s/epoch": round(t["differential"], 4),
                        "x standard": round(t["differential"] / t["standard"], 2),
                        "µs / sample standard": round(1e6 * t["standard"] / n, 2),
                        "µs / sample differential": round(1e6 * t["differential"] / n, 2),
                    }
                )
    finally:
        torch.set_num_threads(threads)
    notes = (
        "One torch thread. A row times one epoch of fit (its fixed cost per call included) with "
        "the notebooks' batch rule max(256, n // 16): 16 minibatches an epoch from n = 4096 up, "
        "fewer and smaller below. 'x standard' is differential ÷ standard, measured round-robin "
        "in one process."
    )
    return {
        "title": "Differential ML (--paper recipe): seconds per epoch against training size",
        "rows": rows,
        "notes": notes,
    }
