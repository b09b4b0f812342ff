"""Population loss, gradient and Hessian evaluation time for student–teacher ReLU networks.

K = K* = 10, d = 100 (a 1000 × 1000 Hessian): closed-form loss, hand-derived gradient, autodiff
(torch.func.hessian) Hessian of the closed form, and for scale one Monte-Carlo loss estimate.
"""

from __future__ import annotations

import torch

from benchmarks.timing import median_time
from sobolev.theory import monte_carlo_loss, population_grad, population_hessian, population_loss


def run(quick: bool = False) -> dict:
    K, d = 10, 100
    g = torch.Generator().manual_seed(0)
    W, W_star = (torch.randn(K, d, dtype=torch.float64, generator=g) / d**0.5 for _ in range(2))
    repeats = 3 if quick else 7
    n_mc = 10_000 if quick else 100_000
    cases = {
        "loss H": lambda: population_loss(W, W_star, "H"),
        "grad H": lambda: population_grad(W, W_star, "H"),
        "hessian H": lambda: population_hessian(W, W_star, "H"),
        f"MC loss H, n={n_mc}": lambda: monte_carlo_loss(W, W_star, n_mc, "H", generator=g),
    }
    rows = []
    for name, fn in cases.items():
        reps = 1 if name.startswith(("hessian", "MC")) and quick else repeats
        rows.append(
            {"case": name, "K": K, "d": d, "seconds": median_time(fn, repeats=reps, warmup=1)}
        )
    base = rows[0]["seconds"]
    for row in rows:
        row["ratio_to_loss"] = row["seconds"] / base
    return {
        "title": (
            "sobolev.theory: population loss / gradient / Hessian (K=K*=10, d=100, float64, CPU)"
        ),
        "rows": rows,
        "notes": "Median wall time after warm-up. The Hessian is autodiff of the closed form "
        "(jacfwd over jacrev, 1000 tangents); the gradient is the hand-derived formula.",
    }


if __name__ == "__main__":
    for row in run()["rows"]:
        print(row)
