"""Training sets for pricing surrogates by differential machine learning (Huge & Savine 2020).

Setup of the paper (arXiv 2005.02347): the state x (spots) is drawn at t1 from a wide
distribution, one path is simulated from t1 to the maturity t2, and the labels are that path's
payoff and its *pathwise* derivative ∂payoff/∂x. Both are noisy but unbiased: E[payoff | x] is
the price at t1 and E[∂payoff/∂x | x] its delta, so a Sobolev loss on them converges to the
price and the deltas. Pathwise derivatives are taken here by torch autograd through the
simulation (float64); directional ones (∂payoff/∂x · v) by one forward-mode pass, as a simulator
with tangent mode would give them.

Antithetic labels (``antithetic=True``, the default, as in the paper's notebooks): each sample's
labels are the mean over the pair of paths driven by Z and −Z from the same spots, still unbiased
and with much less noise (the payoff's linear part in Z cancels).

Models (zero rates, as in the paper's notebooks):

* :class:`BlackScholesCall`: one input, S2 = S1·exp(−σ²τ/2 + σ√τ Z), payoff (S2 − K)⁺.
* :class:`BachelierBasket`: d inputs (d = 1: the one-asset Bachelier call), correlated
  arithmetic Brownian spots, payoff (a·S2 − K)⁺; random correlation, weights and volatilities
  (seeded), normalised so the basket's volatility is ``basket_vol``; the price is then
  Bachelier's formula in the basket a·S1.

Shapes: inputs x (N, d); labels as a derivative stack, payoff (N, 1) and gradient (N, 1, d)
(directional: (N, 1, 1)), so ``(x, payoff, grad)`` is the data of a :class:`sobolev.SobolevLoss`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
from torch import Tensor
from torch.func import jvp

__all__ = [
    "MODELS",
    "BachelierBasket",
    "BlackScholesCall",
    "HeldOutSet",
    "PricingModel",
    "Samples",
    "pricing_model",
]

DTYPE = torch.float64


class Samples(NamedTuple):
    """A training set: inputs x (N, d), payoffs y (N, 1), pathwise derivatives dydx (N, 1, d);
    for directional labels also the directions v (N, d), and dydx is ∂y/∂x·v, shape (N, 1, 1)."""

    x: Tensor
    y: Tensor
    dydx: Tensor
    v: Tensor | None = None


class HeldOutSet(NamedTuple):
    """Held-out inputs x (N, d) with the closed-form price (N, 1) and deltas (N, 1, d)."""

    x: Tensor
    price: Tensor
    delta: Tensor


def _normal_cdf(z: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-z / math.sqrt(2.0))


def _normal_pdf(z: Tensor) -> Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _check_positive(**kw: float) -> None:
    for name, v in kw.items():
        if not (
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)
        ):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")


def _flag(antithetic: bool) -> bool:
    if antithetic is not True and antithetic is not False:
        raise ValueError(f"antithetic must be True or False, got {antithetic!r}")
    return antithetic


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


class PricingModel(ABC):
    """A one-period model: spots x at t1, one path to t2, a payoff. Subclasses define the
    simulation (:meth:`draw_spots`, :meth:`draw_noise`, :meth:`payoff`) and the closed form
    (:meth:`price`, :meth:`delta`)."""

    d: int
    t1: float
    t2: float
    #: labels average the antithetic pair of paths Z, −Z (set by the constructor)
    antithetic: bool = True

    @property
    def tau(self) -> float:
        """Time from the pricing date t1 to maturity t2."""
        return self.t2 - self.t1

    @abstractmethod
    def draw_spots(self, n: int, generator: torch.Generator) -> Tensor:
        """Training inputs at t1, (n, d): the paper's widened distribution."""

    @abstractmethod
    def draw_noise(self, n: int, generator: torch.Generator) -> Tensor:
        """The random numbers of n paths from t1 to t2."""

    @abstractmethod
    def payoff(self, x: Tensor, z: Tensor) -> Tensor:
        """Payoff (n, 1) of the paths driven by ``z`` from spots ``x`` (n, d); differentiable
        in x."""

    @abstractmethod
    def price(self, x: Tensor) -> Tensor:
        """Closed-form price at t1, (n, 1)."""

    @abstractmethod
    def delta(self, x: Tensor) -> Tensor:
        """Closed-form deltas ∂price/∂x, (n, 1, d)."""

    @abstractmethod
    def test_set(self, n: int, generator: torch.Generator) -> HeldOutSet:
        """Held-out spots (the paper's test distribution) with closed-form price and deltas."""

    def _check_x(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(
                f"x must be a tensor of shape (n, {self.d}), got "
                f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )

    def labels(
        self,
        x: Tensor,
        z: Tensor,
        directions: Tensor | None = None,
        *,
        antithetic: bool | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Payoff (n, 1) and its pathwise derivative on the paths ``z``: the full gradient
        (n, 1, d) by reverse mode, or with ``directions`` v (n, d) the derivative along v,
        (n, 1, 1), by one forward-mode pass. With ``antithetic`` (default: the model's
        :attr:`antithetic`) both are the means over the paths ``z`` and ``−z``. Results are
        detached."""
        if self.antithetic if antithetic is None else antithetic:
            y, g = self.labels(x, z, directions, antithetic=False)
            ya, ga = self.labels(x, -z, directions, antithetic=False)
            return (y + ya) / 2, (g + ga) / 2
        self._check_x(x)
        x = x.detach().to(DTYPE)
        if directions is not None:
            if directions.shape != x.shape:
                raise ValueError(
                    f"directions must have the shape of x {tuple(x.shape)}, got "
                    f"{tuple(directions.shape)}"
                )
            y, dv = jvp(lambda s: self.payoff(s, z), (x,), (directions.to(DTYPE),))
            return y.detach(), dv.detach().unsqueeze(-1)
        with torch.enable_grad():
            xg = x.requires_grad_(True)
            y = self.payoff(xg, z)
            (g,) = torch.autograd.grad(y.sum(), xg)
        return y.detach(), g.unsqueeze(1)

    def sample(self, n: int, *, generator: torch.Generator, directional: bool = False) -> Samples:
        """n training samples, one path (an antithetic pair: :attr:`antithetic`) each: x (n, d),
        payoff (n, 1), pathwise gradient (n, 1, d); with ``directional`` only the derivative along
        a random v ~ N(0, I) per sample, (n, 1, 1)."""
        _check_n(n)
        x = self.draw_spots(n, generator)
        z = self.draw_noise(n, generator)
        if not directional:
            return Samples(x, *self.labels(x, z))
        v = torch.randn(n, self.d, generator=generator, dtype=DTYPE)
        return Samples(x, *self.labels(x, z, v), v)


class BlackScholesCall(PricingModel):
    """European call in Black–Scholes (zero rates), the paper's first example.

    Training spots S1 = spot·exp(−(mσ)²t1/2 + mσ√t1 Z1) with m = ``vol_mult`` (wider than the
    model, "more samples in the wings"); test spots evenly spaced in [0.35, 1.65].
    """

    def __init__(
        self,
        spot: float = 1.0,
        vol: float = 0.2,
        t1: float = 1.0,
        t2: float = 2.0,
        strike: float = 1.10,
        vol_mult: float = 1.5,
        antithetic: bool = True,
    ) -> None:
        _check_positive(spot=spot, vol=vol, t1=t1, strike=strike, vol_mult=vol_mult)
        if not t2 > t1:
            raise ValueError(f"t2 must be after t1={t1}, got {t2!r}")
        self.d, self.spot, self.vol, self.t1, self.t2 = 1, spot, vol, t1, t2
        self.strike, self.vol_mult, self.antithetic = strike, vol_mult, _flag(antithetic)

    def draw_spots(self, n: int, generator: torch.Generator) -> Tensor:
        s = self.vol * self.vol_mult
        z = torch.randn(n, 1, generator=generator, dtype=DTYPE)
        return self.spot * torch.exp(-0.5 * s * s * self.t1 + s * math.sqrt(self.t1) * z)

    def draw_noise(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, 1, generator=generator, dtype=DTYPE)

    def payoff(self, x: Tensor, z: Tensor) -> Tensor:
        s = self.vol
        s2 = x * torch.exp(-0.5 * s * s * self.tau + s * math.sqrt(self.tau) * z)
        return torch.relu(s2 - self.strike)

    def _d12(self, x: Tensor) -> tuple[Tensor, Tensor]:
        sd = self.vol * math.sqrt(self.tau)
        d1 = (torch.log(x / self.strike) + 0.5 * sd * sd) / sd
        return d1, d1 - sd

    def price(self, x: Tensor) -> Tensor:
        self._check_x(x)
        d1, d2 = self._d12(x)
        return x * _normal_cdf(d1) - self.strike * _normal_cdf(d2)

    def delta(self, x: Tensor) -> Tensor:
        self._check_x(x)
        return _normal_cdf(self._d12(x)[0]).unsqueeze(1)

    def test_set(self, n: int, generator: torch.Generator | None = None) -> HeldOutSet:
        _check_n(n)
        x = torch.linspace(0.35, 1.65, n, dtype=DTYPE).unsqueeze(1)
        return HeldOutSet(x, self.price(x), self.delta(x))


class BachelierBasket(PricingModel):
    """Basket call a·S2 − K in a correlated Bachelier model of dimension d, the paper's
    second example.

    The correlation (from a random (2d, d) matrix R as normalised RᵀR), the weights a (uniform in
    [1, 10], summing to 1) and the volatilities (uniform in [5, 50], rescaled so the basket's
    volatility √(aᵀΣa) is ``basket_vol``) are drawn once from ``seed``. Spots start at 1; training
    spots S1 = 1 + m·√t1·L Z (L Lᵀ = Σ, m = ``vol_mult``); test spots are uniform in [0.5, 1.5]
    widened by 1 + ½√((d−1)/12), as in the paper's notebook.
    """

    def __init__(
        self,
        d: int,
        *,
        seed: int = 0,
        basket_vol: float = 0.2,
        t1: float = 1.0,
        t2: float = 2.0,
        strike: float = 1.10,
        vol_mult: float = 1.5,
        antithetic: bool = True,
    ) -> None:
        self.antithetic = _flag(antithetic)
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ValueError(f"d must be a positive integer, got {d!r}")
        _check_positive(basket_vol=basket_vol, t1=t1, strike=strike, vol_mult=vol_mult)
        if not t2 > t1:
            raise ValueError(f"t2 must be after t1={t1}, got {t2!r}")
        self.d, self.t1, self.t2, self.strike, self.vol_mult, self.basket_vol = (
            d,
            t1,
            t2,
            strike,
            vol_mult,
            basket_vol,
        )
        g = torch.Generator().manual_seed(seed)
        r = torch.rand(2 * d, d, generator=g, dtype=DTYPE) * 2 - 1
        cov = r.T @ r
        inv = cov.diagonal().rsqrt()
        self.correl = inv[:, None] * cov * inv[None, :]
        a = 1 + 9 * torch.rand(d, generator=g, dtype=DTYPE)
        self.weights = a / a.sum()
        vols = 5 + 45 * torch.rand(d, generator=g, dtype=DTYPE)
        av = self.weights * vols
        self.vols = vols * basket_vol / torch.sqrt(av @ self.correl @ av)
        self.cov = self.vols[:, None] * self.correl * self.vols[None, :]
        self.chol = torch.linalg.cholesky(self.cov)

    def draw_spots(self, n: int, generator: torch.Generator) -> Tensor:
        z = torch.randn(n, self.d, generator=generator, dtype=DTYPE)
        return 1.0 + self.vol_mult * math.sqrt(self.t1) * z @ self.chol.T

    def draw_noise(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, self.d, generator=generator, dtype=DTYPE)

    def payoff(self, x: Tensor, z: Tensor) -> Tensor:
        s2 = x + math.sqrt(self.tau) * z @ self.chol.T
        return torch.relu(s2 @ self.weights - self.strike).unsqueeze(1)

    def basket(self, x: Tensor) -> Tensor:
        """The basket a·x, (n,)."""
        self._check_x(x)
        return x @ self.weights

    def price(self, x: Tensor) -> Tensor:
        sd = self.basket_vol * math.sqrt(self.tau)
        m = (self.basket(x) - self.strike) / sd
        return (sd * (m * _normal_cdf(m) + _normal_pdf(m))).unsqueeze(1)

    def delta(self, x: Tensor) -> Tensor:
        sd = self.basket_vol * math.sqrt(self.tau)
        m = (self.basket(x) - self.strike) / sd
        return (_normal_cdf(m)[:, None] * self.weights[None, :]).unsqueeze(1)

    def test_set(self, n: int, generator: torch.Generator) -> HeldOutSet:
        _check_n(n)
        widen = 1 + 0.5 * math.sqrt((self.d - 1) / 12)
        lo, hi = 1 - 0.5 * widen, 1 + 0.5 * widen
        x = lo + (hi - lo) * torch.rand(n, self.d, generator=generator, dtype=DTYPE)
        return HeldOutSet(x, self.price(x), self.delta(x))


#: the pricing models by name (``"auto"``: Black–Scholes at d = 1, the Bachelier basket above)
MODELS = ("auto", "black-scholes", "bachelier")


def pricing_model(
    d: int, *, seed: int = 0, kind: str = "auto", antithetic: bool = True
) -> PricingModel:
    """The paper's example of dimension d: ``kind="black-scholes"`` (d = 1 only), ``"bachelier"``
    (the basket of any d; d = 1 is the notebooks' one-asset Bachelier case), or ``"auto"``
    (Black–Scholes for d = 1, the basket otherwise); ``antithetic`` labels as in the notebooks."""
    if kind not in MODELS:
        raise ValueError(f"kind must be one of {MODELS}, got {kind!r}")
    if kind == "black-scholes" and d != 1:
        raise ValueError(f"kind='black-scholes' has one asset: d must be 1, got {d!r}")
    if kind == "black-scholes" or (kind == "auto" and d == 1):
        return BlackScholesCall(antithetic=antithetic)
    return BachelierBasket(d, seed=seed, antithetic=antithetic)
