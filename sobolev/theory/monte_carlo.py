"""Monte-Carlo estimates of the population losses and of the per-sample autodiff gradient.

Samples x ~ N(0, I_d) are drawn in chunks of ``batch_size`` (memory ≈ a few batch_size·(d + K)·8
bytes), so n = 10⁶ with d = 100 fits easily. Each estimator returns the sample mean and its standard
error sqrt(s²/n) (s² the unbiased sample variance; elementwise for gradients), accumulated with
Chan's pairwise update for numerical stability.

Per-sample quantities, with z = W x, z* = W* x, a = 1(z > 0), a* = 1(z* > 0):

    r = Σ σ(z_i) − Σ σ(z*_j),   D = Σ a_i w_i − Σ a*_j w*_j = ∇_x g(x;W) − ∇_x g(x;W*),
    loss:  ½ r² + λ·½ |D|²,      autodiff gradient w.r.t. w_i:  a_i (r x + λ D).

The gradient is what torch autograd gives for the per-sample loss (σ′(0) = 0, the indicators in
∇_x g being piecewise constant in W): the gradient SGD on the empirical loss follows.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ._checks import as_pair, check_positive_int, part_weights

DEFAULT_BATCH = 1 << 14


class _Moments:
    """Running mean and sum of squared deviations (Chan et al.), elementwise."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, None, None

    def update(self, m: int, total: Tensor, total_sq: Tensor) -> None:
        """Add a chunk of ``m`` samples given their sum and sum of squares."""
        mean_b = total / m
        m2_b = (total_sq - m * mean_b**2).clamp_min(0)
        if self.mean is None:
            self.n, self.mean, self.m2 = m, mean_b, m2_b
            return
        total = self.n + m
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (m / total)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * m / total)
        self.n = total

    def result(self) -> tuple[Tensor, Tensor]:
        var = self.m2 / max(self.n - 1, 1)
        return self.mean, (var / self.n).sqrt()


def _chunks(
    W: Tensor, W_star: Tensor, n: int, batch_size: int, generator: torch.Generator | None
) -> Iterator[tuple]:
    """Yield (x, r, a, D) per chunk: inputs (m, d), residual (m,), indicators (m, K), ∇_x
    residual (m, d)."""
    d = W.shape[1]
    for start in range(0, n, batch_size):
        x = torch.randn(min(batch_size, n - start), d, dtype=torch.float64, generator=generator)
        z, zs = x @ W.T, x @ W_star.T
        a, a_s = (z > 0).to(x.dtype), (zs > 0).to(x.dtype)
        r = torch.relu(z).sum(1) - torch.relu(zs).sum(1)
        yield x, r, a, a @ W - a_s @ W_star


def _setup(W, W_star, n, part, lam, batch_size) -> tuple[Tensor, Tensor, int, int, float, float]:
    c_L, c_J = part_weights(part, lam)
    W, W_star = as_pair(W, W_star)
    return (
        W.detach(),
        W_star.detach(),
        check_positive_int(n, "n"),
        check_positive_int(batch_size, "batch_size"),
        c_L,
        c_J,
    )


def monte_carlo_loss(
    W,
    W_star,
    n: int,
    part: str = "L",
    lam: float = 1.0,
    generator: torch.Generator | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> tuple[float, float]:
    """(mean, stderr) of the per-sample loss ½r² (L), ½|D|² (J) or their sum with weight λ (H)."""
    W, W_star, n, batch_size, c_L, c_J = _setup(W, W_star, n, part, lam, batch_size)
    acc = _Moments()
    for _, r, _, D in _chunks(W, W_star, n, batch_size, generator):
        values = 0.5 * (c_L * r**2 + c_J * (D * D).sum(1))
        acc.update(values.shape[0], values.sum(), (values**2).sum())
    mean, err = acc.result()
    return float(mean), float(err)


def monte_carlo_grad(
    W,
    W_star,
    n: int,
    part: str = "L",
    lam: float = 1.0,
    generator: torch.Generator | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> tuple[Tensor, Tensor]:
    """(mean, stderr), each (K, d), of the per-sample autodiff gradient a_i (c_L r x + c_J D)."""
    W, W_star, n, batch_size, c_L, c_J = _setup(W, W_star, n, part, lam, batch_size)
    acc = _Moments()
    for x, r, a, D in _chunks(W, W_star, n, batch_size, generator):
        q = c_L * r[:, None] * x + c_J * D  # per-sample gradient of row i is a_i q; a_i² = a_i
        acc.update(x.shape[0], a.T @ q, a.T @ q**2)
    return acc.result()
