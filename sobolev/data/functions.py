"""Target functions u: (B, d) → (B, 1) written in torch, so exact derivatives come from autodiff."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TargetFunction:
    """A target ``fn`` on the box ``domain`` = ((a₁, b₁), …, (a_d, b_d))."""

    name: str
    fn: Callable[[Tensor], Tensor]
    domain: tuple[tuple[float, float], ...]
    description: str

    @property
    def dim(self) -> int:
        return len(self.domain)

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def uniform(
        self, n: int, *, generator: torch.Generator | None = None, dtype=torch.float64
    ) -> Tensor:
        """n points drawn uniformly from the domain, shape (n, d)."""
        lo = torch.tensor([a for a, _ in self.domain], dtype=dtype)
        hi = torch.tensor([b for _, b in self.domain], dtype=dtype)
        return lo + (hi - lo) * torch.rand(n, self.dim, generator=generator, dtype=dtype)

    def linspace(self, n: int, dtype=torch.float64) -> Tensor:
        """n equispaced points of a 1-D domain, shape (n, 1)."""
        if self.dim != 1:
            raise ValueError(f"linspace needs a 1-D domain; {self.name} has d = {self.dim}")
        ((a, b),) = self.domain
        return torch.linspace(a, b, n, dtype=dtype).unsqueeze(1)


def ackley(x: Tensor) -> Tensor:
    """Ackley function in any dimension d, (B, d) → (B, 1)."""
    d = x.shape[-1]
    r = torch.sqrt((x * x).sum(-1, keepdim=True) / d + 1e-30)
    c = torch.cos(2 * math.pi * x).sum(-1, keepdim=True) / d
    return -20 * torch.exp(-0.2 * r) - torch.exp(c) + 20 + math.e


FUNCTIONS: dict[str, TargetFunction] = {
    f.name: f
    for f in [
        TargetFunction(
            "sin",
            lambda x: torch.sin(x),
            ((-math.pi, math.pi),),
            "sin x on [-π, π] (derivative cos x)",
        ),
        TargetFunction(
            "exp", lambda x: torch.exp(-x), ((0.0, 2.0),), "e^{-x} on [0, 2] (derivative -e^{-x})"
        ),
        TargetFunction(
            "f1",
            lambda x: torch.sin(2 * math.pi * x) + torch.sin(20 * math.pi * x),
            ((-1.0, 1.0),),
            "sin(2πx) + sin(20πx) on [-1, 1]",
        ),
        TargetFunction(
            "f2",
            lambda x: x + torch.sin(2 * math.pi * x**4),
            ((-1.0, 1.0),),
            "x + sin(2πx⁴) on [-1, 1]",
        ),
        TargetFunction(
            "f3",
            lambda x: torch.exp(x) * torch.sin(20 * x),
            ((-1.0, 1.0),),
            "eˣ sin(20x) on [-1, 1]",
        ),
        TargetFunction(
            "ackley2d", ackley, ((-2.0, 2.0), (-2.0, 2.0)), "Ackley function on [-2, 2]²"
        ),
    ]
}


def get_function(name: str) -> TargetFunction:
    if name not in FUNCTIONS:
        raise ValueError(f"unknown target function {name!r}; known: {', '.join(FUNCTIONS)}")
    return FUNCTIONS[name]
