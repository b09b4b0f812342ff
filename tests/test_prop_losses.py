"""Property tests (hypothesis) of the W^{k,p} loss: invariance to permuting samples, |c|^p scaling
of the error, and directional stacks equal to the full loss in expectation at every S.

Examples are derandomized (the same on every run) and tensors are drawn from seeded torch
generators, so the suite is reproducible; there is no wall-clock deadline.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sobolev import directional_stack, sobolev_loss

pytestmark = pytest.mark.usefixtures("double")
SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=25)


def _stacks(seed: int, B: int, m: int, d: int, k: int):
    g = torch.Generator().manual_seed(seed)
    pred = [torch.randn(B, m, *(d,) * j, generator=g, dtype=torch.float64) for j in range(k + 1)]
    true = [torch.randn(B, m, *(d,) * j, generator=g, dtype=torch.float64) for j in range(k + 1)]
    return pred, true


dims = dict(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(1, 6),
    m=st.integers(1, 3),
    d=st.integers(1, 4),
    k=st.integers(0, 2),
)


@SETTINGS
@given(**dims, p=st.sampled_from([1, 1.5, 2, 3]), data=st.data())
def test_invariant_to_permuting_samples(seed, B, m, d, k, p, data):
    pred, true = _stacks(seed, B, m, d, k)
    perm = torch.tensor(data.draw(st.permutations(range(B))))
    w = data.draw(st.lists(st.floats(0, 3), min_size=k + 1, max_size=k + 1))
    for reduction in ("mean", "sum"):
        a, ta = sobolev_loss(pred, true, p=p, weights=w, reduction=reduction)
        b, tb = sobolev_loss(
            [t[perm] for t in pred], [t[perm] for t in true], p=p, weights=w, reduction=reduction
        )
        assert b.item() == pytest.approx(a.item(), rel=1e-12, abs=1e-300)
        assert all(tb[key].item() == pytest.approx(ta[key].item(), rel=1e-12) for key in ta)
    none_a, _ = sobolev_loss(pred, true, p=p, weights=w, reduction="none")
    none_b, _ = sobolev_loss(
        [t[perm] for t in pred], [t[perm] for t in true], p=p, weights=w, reduction="none"
    )
    torch.testing.assert_close(none_b, none_a[perm], rtol=1e-12, atol=0)


@SETTINGS
@given(**dims, p=st.floats(1, 4), c=st.floats(-8, 8).filter(lambda c: abs(c) > 1e-3))
def test_scales_as_abs_c_to_the_p(seed, B, m, d, k, p, c):
    """pred = target + c·e  ⇒  every term is |c|^p times its value at c = 1."""
    pred, true = _stacks(seed, B, m, d, k)
    e = [a - b for a, b in zip(pred, true)]
    one, t1 = sobolev_loss([b + x for b, x in zip(true, e)], true, p=p)
    scaled, tc = sobolev_loss([b + c * x for b, x in zip(true, e)], true, p=p)
    assert scaled.item() == pytest.approx(abs(c) ** p * one.item(), rel=1e-9)
    assert all(
        tc[key].item() == pytest.approx(abs(c) ** p * t1[key].item(), rel=1e-9) for key in t1
    )


@settings(derandomize=True, database=None, deadline=None, max_examples=12)
@given(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(1, 4),
    m=st.integers(1, 2),
    d=st.integers(1, 4),
    k=st.integers(1, 3),
    S=st.integers(1, 6),
)
def test_directional_terms_are_unbiased_at_every_S(seed, B, m, d, k, S):
    """E over directions of the directional order-j term = the full term, for every S (a z-test on
    n independent estimates; |z| < 5 fails by chance with probability ≈ 6e-7 per check)."""
    pred, true = _stacks(seed, B, m, d, k)
    _, full = sobolev_loss(pred, true)
    g = torch.Generator().manual_seed(seed + 1)
    n = 400
    est = torch.empty(n, k + 1)
    for i in range(n):
        V = torch.randn(S, k, B, d, generator=g, dtype=torch.float64)
        _, terms = sobolev_loss(directional_stack(pred, V), directional_stack(true, V))
        est[i] = torch.stack([terms[f"D{j}"] for j in range(k + 1)])
    assert est[:, 0].eq(full["D0"]).all()  # the values are not directional
    for j in range(1, k + 1):
        mean, se = est[:, j].mean(), est[:, j].std() / math.sqrt(n)
        assert abs(float(mean - full[f"D{j}"])) < 5 * float(se), (
            j,
            float(mean),
            float(full[f"D{j}"]),
        )
