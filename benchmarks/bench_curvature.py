"""Curvature cost: one Hessian-vector product of the L2 / H1 / H2 empirical loss relative to one
gradient of the same loss, and dense eigendecomposition vs Lanczos for the spectrum edges."""

from __future__ import annotations

import functools

import torch

from sobolev import MLP, SobolevLoss, derivatives
from sobolev.curvature import LossHessian, spectrum_edges

from .timing import interleaved_times, median_time


def _problem(order: int, width: int, n: int) -> tuple[torch.nn.Module, SobolevLoss, tuple]:
    torch.manual_seed(0)
    net = MLP(2, 1, width, 2, "tanh").double()
    x = torch.randn(n, 2, dtype=torch.float64)
    return (
        net,
        SobolevLoss(order),
        (x, *derivatives(lambda y: torch.sin(y).sum(-1, keepdim=True), x, order)),
    )


def run(quick: bool = False) -> dict:
    width, n, repeats = (8, 64, 3) if quick else (32, 512, 7)
    rows = []
    for order, name in enumerate(("L2", "H1", "H2")):
        net, loss, batch = _problem(order, width, n)
        H = LossHessian(net, loss, batch)
        v = torch.randn(H.n_params, dtype=torch.float64)

        def gradient(net=net, loss=loss, batch=batch) -> None:
            torch.autograd.grad(loss(net, batch[0], batch[1:]), list(net.parameters()))

        t = interleaved_times(
            {
                "grad": gradient,
                "build": functools.partial(LossHessian, net, loss, batch),
                "hvp": functools.partial(H.hvp, v),
            },
            repeats=repeats,
        )
        dense = median_time(
            functools.partial(spectrum_edges, H, method="dense"), repeats=1, warmup=0
        )
        lanczos = median_time(
            functools.partial(spectrum_edges, H, method="lanczos"), repeats=1, warmup=0
        )
        rows.append(
            {
                "loss": name,
                "params": H.n_params,
                "batch": n,
                "grad_ms": 1e3 * t["grad"],
                "build_ms": 1e3 * t["build"],
                "hvp_ms": 1e3 * t["hvp"],
                "hvp_over_grad": t["hvp"] / t["grad"],
                "dense_edges_s": dense,
                "lanczos_edges_s": lanczos,
                "dense_over_lanczos": dense / lanczos,
            }
        )
    return {
        "title": (
            "Hessian-vector products and spectrum edges of empirical Sobolev losses "
            "(tanh MLP, float64)"
        ),
        "rows": rows,
        "notes": "build = loss + gradient with create_graph (once per point); hvp = one further "
        "backward through it (third-order nested for H1, fourth for H2). Edges: dense = P products "
        "+ eigvalsh; lanczos = ARPACK eigsh, both ends.",
    }
