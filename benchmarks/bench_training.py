"""Training-step cost of Sobolev losses against the L2 step, for MLPs over the input dimension d.

One step = derivative stack + loss + backward + Adam step, on an MLP (4 hidden layers × 256,
tanh), batch 1024, float32. Every variant at a given d is timed round-robin with the L2 step in
the same process (``interleaved_times``), so the ratios are what to read; absolute times move
with the machine's load. ``method``: ``reverse`` (double backward; Hessian-vector products for
order-2 directions), ``jet`` (Taylor-mode forward through the MLP, `sobolev.jet`) or ``jvp``
(nested ``torch.func.jvp`` vmapped over direction sets: the implementation before the fast
paths, kept as the "before" rows). Forced-method rows run at a few d only, to keep the run short.
"""

from __future__ import annotations

import platform
from collections.abc import Callable

import torch
from torch import Tensor, nn

from sobolev import MLP, derivatives, sobolev_loss
from sobolev.derivatives import (
    DerivativeStack,
    _jvp_directional,
    derivative_method,
    sample_directions,
)
from sobolev.jet import jet_directional, jet_layers

from .timing import interleaved_times, matmul_flops, peak_memory_bytes

WIDTH, DEPTH, BATCH = 256, 4, 1024

#: label -> (order, number of direction sets or None for full tensors, how):
#: "auto" calls ``derivatives(model, …)`` (the method `derivative_method` picks), "jet" forces the
#: Taylor-mode forward (`sobolev.jet`), "jvp" forces nested ``torch.func.jvp`` vmapped over the
#: direction sets (the implementation before the fast paths).
VARIANTS: dict[str, tuple[int, int | None, str]] = {
    "L2": (0, None, "auto"),
    "H1 full": (1, None, "auto"),
    "H1 1 dir": (1, 1, "auto"),
    "H1 4 dirs": (1, 4, "auto"),
    "H2 full": (2, None, "auto"),
    "H2 1 dir": (2, 1, "auto"),
    "H2 4 dirs": (2, 4, "auto"),
    "H1 1 dir, jet": (1, 1, "jet"),
    "H2 1 dir, jet": (2, 1, "jet"),
    "H1 1 dir, nested jvp": (1, 1, "jvp"),
    "H1 4 dirs, nested jvp": (1, 4, "jvp"),
    "H2 1 dir, nested jvp": (2, 1, "jvp"),
    "H2 4 dirs, nested jvp": (2, 4, "jvp"),
}
MAX_D_FULL_H2 = 8


def training_step(
    model: nn.Module, x: Tensor, order: int, n_dirs: int | None, how: str = "auto"
) -> Callable[[], None]:
    """A closure doing one Sobolev training step of ``model`` on ``x`` (B, d) against a fixed
    random target."""
    B, d = x.shape
    V = (
        None
        if n_dirs is None
        else sample_directions(
            n_dirs, max(order, 1), B, d, generator=torch.Generator().manual_seed(1)
        )
    )

    def stack() -> list[Tensor]:
        if how == "jvp":
            return DerivativeStack([model(x)] + _jvp_directional(model, x, order, V, True), V)
        if how == "jet":
            return DerivativeStack(jet_directional(jet_layers(model), x, V, order), V)
        return derivatives(model, x, order, directions=V)

    with torch.no_grad():
        gen = torch.Generator().manual_seed(2)
        target = DerivativeStack([torch.randn(t.shape, generator=gen) for t in stack()], V)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = sobolev_loss(stack(), target, check_finite=False)
        loss.backward()
        opt.step()

    return step


def _variants(d: int, quick: bool) -> dict[str, tuple[int, int | None, str]]:
    """Variants at dimension d: full Hessians for d ≤ 8, forced-method comparisons at a few d."""
    compare = (64,) if quick else (8, 256)
    out = {
        k: v
        for k, v in VARIANTS.items()
        if not (k == "H2 full" and d > MAX_D_FULL_H2) and (v[2] == "auto" or d in compare)
    }
    return {k: v for k, v in out.items() if not (quick and "4 dirs" in k)}


def _method(model: nn.Module, order: int, n_dirs: int | None, how: str, d: int) -> str:
    return how if how != "auto" else derivative_method(model, order, d=d, m=1, n_sets=n_dirs)


def run(quick: bool = False) -> dict:
    dims = (1, 64) if quick else (1, 8, 64, 256)
    batch = 256 if quick else BATCH
    repeats = 3 if quick else 5
    rows = []
    for d in dims:
        torch.manual_seed(d)
        model = MLP(d, 1, width=WIDTH, depth=DEPTH, activation="tanh")
        x = torch.randn(batch, d)
        variants = _variants(d, quick)
        steps = {k: training_step(model, x, *v) for k, v in variants.items()}
        times = interleaved_times(steps, repeats=repeats, warmup=1)
        mems = {k: peak_memory_bytes(s) for k, s in steps.items()}
        flops = {k: matmul_flops(s) for k, s in steps.items()}
        for k, (order, n_dirs, how) in variants.items():
            rows.append(
                {
                    "d": d,
                    "loss": k,
                    "order": order,
                    "directions": n_dirs or "full",
                    "method": _method(model, order, n_dirs, how, d),
                    "ms": round(1e3 * times[k], 2),
                    "x L2": round(times[k] / times["L2"], 2),
                    "matmul flops x L2": round(flops[k] / flops["L2"], 2),
                    "peak MB": round(mems[k] / 2**20, 1),
                    "mem x L2": round(mems[k] / mems["L2"], 2),
                }
            )
    notes = (
        f"MLP {DEPTH}×{WIDTH} tanh, batch {batch}, float32, Adam; median of {repeats} interleaved "
        f"repeats after 1 warm-up step; torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, {platform.processor() or platform.machine()}. 'x L2' = step time / L2 step time "
        "in the same run; 'matmul flops x L2' = FLOPs of all matrix products in the step "
        "(profiler count) / the L2 step's; 'mem x L2' = peak live tensor bytes during the step / "
        "the L2 step's.\n\n"
        "Why the targets H1-one-direction ≤ 1.5× and order-2-directions ≤ 3× are not reached: they "
        "are below the arithmetic floor. The L2 step does 3 matrix products per layer (forward, "
        "input and weight gradients). An exact first-derivative term needs a second stream through "
        "every layer (a tangent, or the input-gradient pass of a double backward) and its "
        "backward: 6 products, 2.0× (the column shows exactly 2.0). An order-2 mixed term D²u[v₁, "
        "v₂] needs four streams (value, v₁, v₂ and the mixed one for the jet; value, adjoint and a "
        "Hessian-vector product's two for reverse mode): 4.0×; S sets cost 2 + 2S streams by "
        "Hessian-vector products (10× at S = 4; the jet's 1 + 3S would be 13×). Measured times sit "
        "at or slightly below these counts (the L2 step's fixed costs dilute them). The jet has "
        "fewer products at large d (it never forms the input gradient of the first layer: 1.83× "
        "and 3.5× at d = 256) but more elementwise work, and measured slower than double backward "
        "here, so it is chosen only where reverse mode would need m backward passes "
        "(m outputs > S sets) or at order 3."
    )
    return {"title": "Sobolev training step vs L2 step (MLP)", "rows": rows, "notes": notes}
