"""Tests of sobolev.losses: W^{k,p} values on hand-computed cases and written-out formulas (p ≠ 2,
reductions, directions, partials, dimension weighting), the return convention, check_finite and
teacher targets, argument checks, and properties (hypothesis): invariance to permuting samples,
|c|^p scaling of the error, directional terms unbiased at every S.

Property examples are derandomized (the same on every run) and tensors are drawn from seeded torch
generators, so the suite is reproducible; there is no wall-clock deadline.
"""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sobolev import MLP, DerivativeStack, SobolevLoss, derivatives, directional_stack, sobolev_loss
from sobolev.derivatives import partial_derivatives, sample_directions
from sobolev.losses import REDUCTIONS, WEIGHTINGS, loss_order

pytestmark = pytest.mark.usefixtures("double")


# --------------------------------------------------------------------------- values by hand


def test_values_by_hand():
    # D0 and D1 differ at every p, so swapping the weights or the terms changes every total below
    pred = (torch.tensor([[1.0], [2.0]]), torch.tensor([[[1.0, 0.0]], [[0.0, 3.0]]]))
    true = (torch.tensor([[0.0], [0.0]]), torch.tensor([[[0.0, 0.0]], [[0.0, 0.0]]]))
    total, terms = sobolev_loss(pred, true, return_terms=True)
    assert terms["D0"].item() == pytest.approx((1 + 4) / 2)
    assert terms["D1"].item() == pytest.approx((1 + 9) / 2)
    assert total.item() == pytest.approx(2.5 + 5.0)
    total, terms = sobolev_loss(pred, true, p=1, weights=[1.0, 0.5], return_terms=True)
    assert terms["D0"].item() == pytest.approx(1.5) and terms["D1"].item() == pytest.approx(2.0)
    assert total.item() == pytest.approx(1.5 + 0.5 * 2.0)
    total, terms = sobolev_loss(
        pred, true, p=3, weights=[0.5, 2.0], reduction="sum", return_terms=True
    )
    assert terms["D0"].item() == pytest.approx(1 + 8) and terms["D1"].item() == pytest.approx(
        1 + 27
    )
    assert total.item() == pytest.approx(0.5 * 9 + 2.0 * 28)
    total, terms = sobolev_loss(pred, true, weights=[2.0, 1.0], reduction="none", return_terms=True)
    assert total.shape == (2,) and torch.allclose(total, torch.tensor([2 * 1 + 1.0, 2 * 4 + 9.0]))
    assert torch.equal(terms["D1"], torch.tensor([1.0, 9.0]))


def test_order0_is_mse():
    torch.manual_seed(0)
    net = MLP(3, 1, width=8, depth=1).double()
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    assert SobolevLoss(0)(net, x, y).item() == pytest.approx(F.mse_loss(net(x), y).item())


def test_callable_target_equals_stack_target():
    torch.manual_seed(0)
    net = MLP(2, 1, width=8, depth=2).double()
    f = lambda x: torch.sin(x[:, :1]) * x[:, 1:] ** 2
    x = torch.randn(10, 2)
    loss = SobolevLoss(2, weights=[1.0, 0.3, 0.1])
    a, ta = loss(net, x, f, return_terms=True)
    b, _tb = loss(net, x, derivatives(f, x, 2, create_graph=False), return_terms=True)
    assert a.item() == pytest.approx(b.item())
    assert set(ta) == {"D0", "D1", "D2"}
    # and the explicit formula: Σ λ_j mean_b ‖Dʲe‖²
    pe = [p - t for p, t in zip(derivatives(net, x, 2), derivatives(f, x, 2))]
    want = sum(w * (e**2).reshape(10, -1).sum(1).mean() for w, e in zip([1.0, 0.3, 0.1], pe))
    assert a.item() == pytest.approx(want.item())


def test_dimension_weighting_matches_differential_ml():
    """k = 1: value weight 1/(1+d), per-entry derivative MSE weight d/(1+d) (Huge & Savine 2020)."""
    torch.manual_seed(0)
    d = 5
    net = MLP(d, 1, width=8, depth=1).double()
    f = lambda x: (x**2).sum(-1, keepdim=True)
    x = torch.randn(12, d)
    got = SobolevLoss(1, weighting="dimension")(net, x, f)
    u, du = derivatives(net, x, 1)
    v, dv = derivatives(f, x, 1)
    want = F.mse_loss(u, v) / (1 + d) + d / (1 + d) * F.mse_loss(du, dv)
    assert got.item() == pytest.approx(want.item())


@pytest.mark.parametrize("order,d,n_entries", [(2, 3, 1 + 3 + 9), (3, 2, 1 + 2 + 4 + 8)])
def test_dimension_weighting_divides_by_the_number_of_entries(order, d, n_entries):
    """k ≥ 2: the total is Σ_j λ_j term_j / Σ_j dʲ (written out by hand: 13 for d=3, k=2; 15 for
    d=2, k=3)."""
    torch.manual_seed(0)
    net = MLP(d, 1, width=8, depth=1).double()
    f = lambda x: torch.sin(x).prod(-1, keepdim=True)
    x = torch.randn(7, d)
    w = [1.0, 0.5, 0.25, 0.125][: order + 1]
    got = SobolevLoss(order, weights=w, weighting="dimension")(net, x, f)
    pe = [p - t for p, t in zip(derivatives(net, x, order), derivatives(f, x, order))]
    want = sum(wj * (e**2).reshape(7, -1).sum(1).mean() for wj, e in zip(w, pe)) / n_entries
    assert got.item() == pytest.approx(want.item(), rel=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_directional_loss_averages_over_the_direction_sets(order):
    """S = 3: the order-j term is mean over b and s of Σ_c (Dʲe[v₁..vⱼ])², contracted here
    by hand."""
    torch.manual_seed(0)
    B, d, S = 6, 4, 3
    net = MLP(d, 2, width=8, depth=2).double()
    f = lambda x: torch.stack([torch.sin(x).sum(-1), (x**2).prod(-1)], -1)
    x = torch.randn(B, d)
    got, terms = SobolevLoss(order, directions=S, generator=torch.Generator().manual_seed(3))(
        net, x, f, return_terms=True
    )
    V = torch.randn(S, order, B, d, generator=torch.Generator().manual_seed(3))  # the same draws
    pe = [p - t for p, t in zip(derivatives(net, x, order), derivatives(f, x, order))]
    d1 = torch.einsum("bci,sbi->bcs", pe[1], V[:, 0])
    want = [(pe[0] ** 2).sum(1).mean(), (d1**2).sum(1).mean(1).mean()]
    if order == 2:
        d2 = torch.einsum("bcij,sbi,sbj->bcs", pe[2], V[:, 0], V[:, 1])
        want.append((d2**2).sum(1).mean(1).mean())
    for j, w in enumerate(want):
        assert terms[f"D{j}"].item() == pytest.approx(w.item(), rel=1e-10), j
    assert got.item() == pytest.approx(sum(want).item(), rel=1e-10)


@pytest.mark.parametrize("order", [1, 2])
def test_directional_loss_is_unbiased(order):
    torch.manual_seed(0)
    net = MLP(6, 2, width=16, depth=2).double()
    f = lambda x: torch.stack([torch.sin(x).sum(-1), (x**2).prod(-1)], -1)
    x = torch.randn(8, 6)
    full = SobolevLoss(order)(net, x, f, return_terms=True)[1][f"D{order}"].item()
    for S, n in (
        (1, 600),
        (3, 100),
    ):  # (S = 3 is also checked exactly above and on raw stacks in test_prop_losses)
        est = SobolevLoss(order, directions=S, generator=torch.Generator().manual_seed(5 + S))
        samples = torch.tensor(
            [est(net, x, f, return_terms=True)[1][f"D{order}"].item() for _ in range(n)]
        )
        z = (samples.mean() - full) / (samples.std() / math.sqrt(len(samples)))
        assert abs(z) < 4.5, S
    # the supplied-stack path contracts the full target along the same directions
    stack = derivatives(f, x, order, create_graph=False)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    a = SobolevLoss(order, directions=3, generator=g1)(net, x, f)
    b = SobolevLoss(order, directions=3, generator=g2)(net, x, stack)
    assert a.item() == pytest.approx(b.item())


def test_input_weights_give_the_differential_ml_loss_of_the_notebooks():
    """k = 1 with λ (d,): α·MSE(values) + β·MSE(λ_j·(ŷ'_j − y'_j)), α = 1/(1+d), β = d/(1+d),
    the loss of the reference notebooks (``diff_training_graph``), written out with NumPy."""
    torch.manual_seed(0)
    d = 4
    net = MLP(d, 1, width=8, depth=1).double()
    f = lambda x: torch.sin(x).sum(-1, keepdim=True) * x[:, :1]
    x = torch.randn(10, d)
    lam = [0.5, 2.0, 1.0, 3.0]
    got = SobolevLoss(1, weighting="dimension", input_weights=lam)(net, x, f)
    u, du = (t.detach().numpy() for t in derivatives(net, x, 1))
    v, dv = (t.numpy() for t in derivatives(f, x, 1, create_graph=False))
    lam_np = np.array(lam)
    want = ((u - v) ** 2).mean() / (1 + d) + d / (1 + d) * (
        ((du[:, 0] - dv[:, 0]) * lam_np) ** 2
    ).mean()
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_input_weights_at_order_two_weigh_each_entry_by_both_inputs():
    torch.manual_seed(1)
    d = 3
    net = MLP(d, 2, width=8, depth=2).double()
    f = lambda x: torch.stack([torch.sin(x).prod(-1), (x**2).sum(-1)], -1)
    x = torch.randn(5, d)
    lam = torch.tensor([0.5, 2.0, 1.5])
    _, terms = SobolevLoss(2, input_weights=lam)(net, x, f, return_terms=True)
    pe = [p - t for p, t in zip(derivatives(net, x, 2), derivatives(f, x, 2))]
    want1 = ((pe[1] * lam) ** 2).sum((1, 2)).mean()
    want2 = ((pe[2] * lam[:, None] * lam[None, :]) ** 2).sum((1, 2, 3)).mean()
    assert terms["D1"].item() == pytest.approx(want1.item(), rel=1e-12)
    assert terms["D2"].item() == pytest.approx(want2.item(), rel=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_directional_input_weights_estimate_the_weighted_term(order):
    """Directions λ∘v: unbiased for the weighted full term (z-score over many draws)."""
    torch.manual_seed(0)
    net = MLP(5, 1, width=16, depth=2).double()
    f = lambda x: torch.sin(x).sum(-1, keepdim=True) + x[:, :1] ** 3
    x = torch.randn(8, 5)
    lam = [0.3, 1.0, 2.0, 0.7, 1.5]
    full = SobolevLoss(order, input_weights=lam)(net, x, f, return_terms=True)[1][f"D{order}"]
    est = SobolevLoss(
        order, directions=2, input_weights=lam, generator=torch.Generator().manual_seed(2)
    )
    samples = torch.tensor(
        [est(net, x, f, return_terms=True)[1][f"D{order}"].item() for _ in range(400)]
    )
    z = (samples.mean() - full.item()) / (samples.std() / math.sqrt(len(samples)))
    assert abs(z) < 4.5
    plain = SobolevLoss(order)(net, x, f, return_terms=True)[1][f"D{order}"].item()
    assert abs(full.item() - plain) > 10 * samples.std() / math.sqrt(len(samples))  # weights bite


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"input_weights": [1.0, -1.0]}, "positive numbers"),
        ({"input_weights": [[1.0]]}, "positive numbers"),
        ({"input_weights": "ab"}, "positive numbers"),
        ({"input_weights": [1.0], "partials": [(1,)]}, "with partials"),
    ],
)
def test_bad_input_weights_are_refused(kw, words):
    with pytest.raises(ValueError, match=words):
        SobolevLoss(1, **kw)


def test_input_weights_of_the_wrong_length_name_d():
    net = MLP(3, 1, width=4, depth=1).double()
    with pytest.raises(ValueError, match="d = 3"):
        SobolevLoss(1, input_weights=[1.0, 2.0])(net, torch.randn(4, 3), lambda x: x.sum(-1))


def test_partials_loss():
    torch.manual_seed(0)
    net = MLP(2, 1, width=8, depth=1).double()
    f = lambda x: torch.sin(x[:, :1]) + x[:, 1:] ** 3
    x = torch.randn(9, 2)
    loss = SobolevLoss(partials=[(0, 0), (1, 0), (0, 2)], weights=[1.0, 1.0, 0.5])
    total, terms = loss(net, x, f, return_terms=True)
    assert set(terms) == {"D(0,0)", "D(1,0)", "D(0,2)"}
    full_p, full_t = derivatives(net, x, 2), derivatives(f, x, 2)
    want = (
        ((full_p[0] - full_t[0]) ** 2).mean()
        + ((full_p[1][..., 0] - full_t[1][..., 0]) ** 2).mean()
        + 0.5 * ((full_p[2][..., 1, 1] - full_t[2][..., 1, 1]) ** 2).mean()
    )
    assert total.item() == pytest.approx(want.item())


def test_gradients_reach_parameters():
    torch.manual_seed(0)
    net = MLP(2, 1, width=8, depth=1).double()
    x = torch.randn(5, 2)
    SobolevLoss(2, directions=2)(net, x, lambda x: x.prod(-1, keepdim=True)).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_bad_input_messages():
    torch.manual_seed(0)
    u = torch.zeros(3, 1)
    du = torch.zeros(3, 1, 2)
    with pytest.raises(ValueError, match="shape mismatch at D1"):
        sobolev_loss((u, du), (u, torch.zeros(3, 1, 3)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        sobolev_loss((u, du), (u, torch.full((3, 1, 2), float("nan"))))
    with pytest.raises(ValueError, match="same length"):
        sobolev_loss((u, du), (u,))
    with pytest.raises(ValueError, match="p must"):
        sobolev_loss((u,), (u,), p=0.5)
    with pytest.raises(ValueError, match="one entry per order"):
        sobolev_loss((u, du), (u, du), weights=[1.0])
    with pytest.raises(ValueError, match="order must"):
        SobolevLoss(-1)
    with pytest.raises(ValueError, match="weights must have one entry per order"):
        SobolevLoss(2, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="p = 2"):
        SobolevLoss(1, p=3, directions=2)
    net = MLP(2, 1, width=4, depth=1).double()
    with pytest.raises(ValueError, match="does not depend differentiably"):
        SobolevLoss(1)(
            net, torch.randn(3, 2), lambda x: torch.from_numpy(x.detach().numpy()[:, :1].copy())
        )
    with pytest.raises(ValueError, match="needs a derivative stack"):
        SobolevLoss(1)(net, torch.randn(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="needs 2"):
        SobolevLoss(1)(net, torch.randn(3, 2), (torch.zeros(3, 1),))


def test_more_bad_arguments():
    torch.manual_seed(0)
    u = torch.zeros(3, 1)
    V = torch.randn(2, 1, 3, 2)
    d = directional_stack((u, torch.zeros(3, 1, 2)), V)
    with pytest.raises(ValueError, match="only for p = 2"):
        sobolev_loss(d, d, p=1)
    with pytest.raises(ValueError, match="non-empty"):
        SobolevLoss(partials=[])
    with pytest.raises(ValueError, match="reduction"):
        SobolevLoss(1, reduction="avg")
    with pytest.raises(ValueError, match="explicit weights"):
        SobolevLoss(partials=[(1, 0)], weighting="dimension")


# ------------------------------------------------------------------------- options against formulas


def _setup(d=3, m=2, B=5):
    torch.manual_seed(0)
    net = MLP(d, m, width=8, depth=2)
    f = lambda x: torch.stack([torch.sin(x).sum(-1), (x**2).prod(-1)], -1)[:, :m]
    return net, f, torch.randn(B, d)


def _errors(net, f, x, order):
    return [p - t for p, t in zip(derivatives(net, x, order), derivatives(f, x, order))]


@pytest.mark.parametrize("p", [1, 1.5, 3])
def test_p_norm_terms(p):
    net, f, x = _setup()
    got, terms = SobolevLoss(2, p=p, weights=[1.0, 0.5, 0.25])(net, x, f, return_terms=True)
    e = _errors(net, f, x, 2)
    want = [(t.abs() ** p).reshape(5, -1).sum(1).mean() for t in e]
    for j in range(3):
        assert terms[f"D{j}"].item() == pytest.approx(want[j].item(), rel=1e-12)
    assert got.item() == pytest.approx((want[0] + 0.5 * want[1] + 0.25 * want[2]).item(), rel=1e-12)


def test_reductions_as_a_module():
    net, f, x = _setup()
    e = _errors(net, f, x, 1)
    per_sample = (e[0] ** 2).sum(1) + 0.3 * (e[1] ** 2).sum((1, 2))  # (B,)
    none = SobolevLoss(1, weights=[1.0, 0.3], reduction="none")(net, x, f)
    assert none.shape == (5,)
    torch.testing.assert_close(none, per_sample, rtol=1e-12, atol=0)
    assert SobolevLoss(1, weights=[1.0, 0.3], reduction="sum")(net, x, f).item() == pytest.approx(
        per_sample.sum().item(), rel=1e-12
    )
    assert SobolevLoss(1, weights=[1.0, 0.3])(net, x, f).item() == pytest.approx(
        per_sample.mean().item(), rel=1e-12
    )
    dim = SobolevLoss(1, weights=[1.0, 0.3], reduction="none", weighting="dimension")(net, x, f)
    torch.testing.assert_close(dim, per_sample / 4, rtol=1e-12, atol=0)  # Σ_j dʲ = 1 + 3


def test_directions_shared_over_the_batch():
    """A (S, k, d) tensor is one set of directions for every sample: Dʲu[v₁..vⱼ] by einsum on the
    full stack."""
    net, _, x = _setup()
    V = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1))
    got = derivatives(net, x, 2, directions=V)
    full = derivatives(net, x, 2)
    assert got.directions.shape == (4, 2, 5, 3)
    torch.testing.assert_close(got[0], full[0])
    torch.testing.assert_close(
        got[1], torch.einsum("bci,si->bcs", full[1], V[:, 0]), rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(
        got[2], torch.einsum("bcij,si,sj->bcs", full[2], V[:, 0], V[:, 1]), rtol=1e-10, atol=1e-12
    )
    with pytest.raises(ValueError, match="directions tensor must have shape"):
        derivatives(net, x, 2, directions=torch.randn(4, 1, 3))  # k = 1 < order 2


def test_derivative_stack_detach_and_to():
    net, _, x = _setup()
    V = torch.randn(2, 1, 5, 3)
    stack = derivatives(net, x, 1, directions=V)
    assert all(t.requires_grad for t in stack)
    det = stack.detach()
    assert (
        isinstance(det, DerivativeStack)
        and det.directions is V
        and det.order == 1
        and det.directional
    )
    assert not any(t.requires_grad for t in det)
    assert all(torch.equal(a, b) for a, b in zip(det, stack))
    low = stack.to(torch.float32)
    assert isinstance(low, DerivativeStack) and low.directions.dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in low)
    torch.testing.assert_close(low[1], stack[1].detach().float())
    full = DerivativeStack((x, x[:, :, None]))
    assert full.to(torch.float32).directions is None and not full.directional


def test_check_finite_skips_supplied_stacks_but_never_callable_targets():
    """check_finite=False (data already checked, as fit does) lets a supplied NaN through; a target
    computed from a callable is always checked, and the error names the term."""
    net, _, x = _setup(d=2, m=1, B=3)
    u, du = torch.zeros(3, 1), torch.full((3, 1, 2), float("nan"))
    assert torch.isnan(SobolevLoss(1)(net, x, (u, du), check_finite=False))
    with pytest.raises(ValueError, match="target D1 contains NaN or Inf"):
        SobolevLoss(1)(net, x, (u, du))
    f_nan = lambda z: torch.sqrt(z[:, :1] - 10.0)
    for check in (True, False):
        with pytest.raises(ValueError, match="target D0 contains NaN or Inf"):
            SobolevLoss(1)(net, x, f_nan, check_finite=check)
        with pytest.raises(ValueError, match=r"target D\(1,0\) contains NaN or Inf"):
            SobolevLoss(partials=[(1, 0)])(net, x, f_nan, check_finite=check)


def test_argument_errors_name_what_is_expected():
    with pytest.raises(ValueError, match=r"losses must be among \('L2', 'H1', 'H2'\), got 'H3'"):
        loss_order("H3")
    u = torch.zeros(2, 1)
    with pytest.raises(TypeError, match="must both be sequences .orders. or both dicts .partials."):
        sobolev_loss((u,), {(0,): u})
    with pytest.raises(ValueError, match=r"one entry per partial \(2\), got 1"):
        sobolev_loss({(0, 0): u, (1, 0): u}, {(0, 0): u, (1, 0): u}, weights=[1.0])
    for bad in (1.5, True, -1, "1"):
        with pytest.raises(ValueError, match="order must be a non-negative integer"):
            SobolevLoss(bad)
    with pytest.raises(ValueError, match="pass either partials or directions, not both"):
        SobolevLoss(partials=[(1, 0)], directions=2)


def _random_stacks(seed, B, m, d, k):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(B, m, *(d,) * j, generator=g) for j in range(k + 1)] for _ in range(2)]


def test_reductions_and_weightings():
    t = torch.tensor([1.0, 2.0, 6.0])
    assert REDUCTIONS["mean"](t).item() == 3.0
    assert REDUCTIONS["sum"](t).item() == 9.0
    assert REDUCTIONS["none"](t) is t
    assert set(REDUCTIONS) == {"mean", "sum", "none"}
    assert WEIGHTINGS["none"](3, 2) == 1 and WEIGHTINGS["dimension"](3, 2) == 1 + 3 + 9
    with pytest.raises(ValueError, match="reduction must be one of.*'mean'.*got 'MEAN'"):
        sobolev_loss((torch.zeros(3, 1),), (torch.zeros(3, 1),), reduction="MEAN")


def test_every_loss_returns_the_tensor_unless_terms_are_asked_for():
    """The return convention: the loss tensor by default, (loss, terms) with return_terms=True,
    for the function and the module alike, at every reduction."""
    net, f, x = _setup(d=2, m=1, B=4)
    stack = derivatives(f, x, 1, create_graph=False)
    pred = derivatives(net, x, 1)
    for reduction in REDUCTIONS:
        loss = sobolev_loss(pred, stack, reduction=reduction)
        assert isinstance(loss, torch.Tensor)
        again, terms = sobolev_loss(pred, stack, reduction=reduction, return_terms=True)
        assert torch.equal(again, loss) and set(terms) == {"D0", "D1"}
        module = SobolevLoss(1, reduction=reduction)
        loss = module(net, x, stack)
        assert isinstance(loss, torch.Tensor)
        again, terms = module(net, x, stack, return_terms=True)
        assert torch.equal(again, loss) and set(terms) == {"D0", "D1"}


@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
def test_per_sample_terms_at_every_p(p):
    """reduction="none": Σ |e|^p over every non-batch entry of each order, per
    sample (errors of both signs)."""
    pred, true = _random_stacks(0, 4, 2, 3, 2)
    total, terms = sobolev_loss(
        pred, true, p=p, weights=[1.0, 0.5, 0.25], reduction="none", return_terms=True
    )
    want = [((a - b).abs() ** p).reshape(4, -1).sum(1) for a, b in zip(pred, true)]
    for j in range(3):
        torch.testing.assert_close(terms[f"D{j}"], want[j], rtol=1e-12, atol=0)
    torch.testing.assert_close(total, want[0] + 0.5 * want[1] + 0.25 * want[2], rtol=1e-12, atol=0)


def test_per_sample_directional_terms_average_over_the_sets():
    """reduction="none" on directional stacks, m = 2 outputs and S = 3 sets: order j ≥ 1 is
    Σ_c Σ_s (Dʲe[v₁..vⱼ])² / S per sample (contracted here by einsum); order 0 is Σ_c e²."""
    pred, true = _random_stacks(1, 4, 2, 3, 2)
    V = torch.randn(3, 2, 4, 3, generator=torch.Generator().manual_seed(2))
    e = [a - b for a, b in zip(pred, true)]
    e1 = torch.einsum("bci,sbi->bcs", e[1], V[:, 0])
    e2 = torch.einsum("bcij,sbi,sbj->bcs", e[2], V[:, 0], V[:, 1])
    want = [(e[0] ** 2).sum(1), (e1**2).sum((1, 2)) / 3, (e2**2).sum((1, 2)) / 3]
    total, terms = sobolev_loss(
        directional_stack(pred, V), directional_stack(true, V), reduction="none", return_terms=True
    )
    for j in range(3):
        torch.testing.assert_close(terms[f"D{j}"], want[j], rtol=1e-12, atol=0)
    torch.testing.assert_close(total, sum(want), rtol=1e-12, atol=0)
    # the module's per-sample path agrees with the same directions drawn from the same seed
    net, f, x = _setup(d=3, m=2, B=4)
    got = SobolevLoss(
        2, directions=3, reduction="none", generator=torch.Generator().manual_seed(5)
    )(net, x, f)
    W = torch.randn(3, 2, 4, 3, generator=torch.Generator().manual_seed(5))
    full = _errors(net, f, x, 2)
    d1 = torch.einsum("bci,sbi->bcs", full[1], W[:, 0])
    d2 = torch.einsum("bcij,sbi,sbj->bcs", full[2], W[:, 0], W[:, 1])
    torch.testing.assert_close(
        got,
        (full[0] ** 2).sum(1) + (d1**2).sum((1, 2)) / 3 + (d2**2).sum((1, 2)) / 3,
        rtol=1e-10,
        atol=1e-12,
    )


def test_dict_stacks_with_several_outputs():
    """Partials stacks (dicts) with m = 2: each term sums over the outputs, averages over the
    batch only."""
    z = torch.zeros(2, 2)
    pred = {
        (0, 0): torch.tensor([[1.0, 2.0], [0.0, 0.0]]),
        (1, 0): torch.tensor([[0.0, 0.0], [3.0, 0.0]]),
    }
    total, terms = sobolev_loss(pred, {(1, 0): z, (0, 0): z}, weights=[1.0, 2.0], return_terms=True)
    assert terms["D(0,0)"].item() == 2.5 and terms["D(1,0)"].item() == 4.5
    assert total.item() == 2.5 + 2 * 4.5
    none = sobolev_loss(pred, {(0, 0): z, (1, 0): z}, weights=[1.0, 2.0], reduction="none")
    assert none.tolist() == [5.0, 18.0]


def test_plain_sequences_mix_with_full_derivative_stacks():
    """A plain list and a non-directional DerivativeStack are the same layout, in either role."""
    pred, true = _random_stacks(3, 3, 1, 2, 1)
    want = sum(((a - b) ** 2).reshape(3, -1).sum(1).mean() for a, b in zip(pred, true))
    for a, b in ((pred, DerivativeStack(true)), (DerivativeStack(pred), true)):
        assert sobolev_loss(a, b).item() == pytest.approx(want.item(), rel=1e-12)


def test_default_order_is_one():
    net, f, x = _setup(d=2, m=1, B=3)
    loss = SobolevLoss()
    assert loss.order == 1 and loss.weights == [1.0, 1.0]
    _, terms = loss(net, x, f, return_terms=True)
    assert set(terms) == {"D0", "D1"}


def test_one_dimensional_values_are_accepted():
    """u of shape (B,) in a supplied stack is taken as (B, 1)."""
    net, f, x = _setup(d=2, m=1, B=3)
    u, du = derivatives(f, x, 1, create_graph=False)
    a = SobolevLoss(1)(net, x, (u[:, 0], du))
    b = SobolevLoss(1)(net, x, (u, du))
    assert a.item() == b.item()
    assert SobolevLoss(0)(net, x, u[:, 0]).item() == pytest.approx(
        ((net(x) - u) ** 2).mean().item(), rel=1e-12
    )


def _nan_x(B=3, d=2):
    x = torch.randn(B, d, generator=torch.Generator().manual_seed(4))
    x[1, 0] = float("nan")
    return x


@pytest.mark.parametrize("kind", ["stack", "directions", "partials"])
def test_check_finite_of_x(kind):
    """check_finite=False lets a NaN in x through (the loss is NaN); the default raises before any
    model call; a callable target on such x is still checked (its message names the target term)."""
    net, f, _ = _setup(d=2, m=1, B=3)
    x = _nan_x()
    xf = torch.nan_to_num(x)
    if kind == "partials":
        loss = SobolevLoss(partials=[(0, 0), (1, 0)])
        supplied = partial_derivatives(f, xf, [(0, 0), (1, 0)], create_graph=False)
        first = "D(0,0)"
    else:
        loss = SobolevLoss(
            1,
            directions=2 if kind == "directions" else None,
            generator=torch.Generator().manual_seed(0),
        )
        supplied, first = derivatives(f, xf, 1, create_graph=False), "D0"
    assert torch.isnan(loss(net, x, supplied, check_finite=False))
    for target in (supplied, f):
        with pytest.raises(ValueError, match="x contains NaN or Inf"):
            loss(net, x, target)
    with pytest.raises(ValueError, match=f"target {re.escape(first)} contains NaN or Inf"):
        loss(net, x, f, check_finite=False)


def test_directions_are_sampled_in_the_dtype_of_x():
    """float32 points under a float64 default: the S sets are drawn as float32 from the generator
    (not drawn as float64 and cast, which gives other numbers)."""
    torch.manual_seed(0)
    net = MLP(2, 1, width=8, depth=2).float()
    f = lambda z: torch.sin(z).sum(-1, keepdim=True)
    x = torch.randn(4, 2, dtype=torch.float32)
    got = SobolevLoss(1, directions=3, generator=torch.Generator().manual_seed(7))(net, x, f)
    V = sample_directions(
        3, 1, 4, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float32
    )
    e = _errors(net, f, x, 1)
    want = (e[0] ** 2).sum(1).mean() + (torch.einsum("bci,sbi->bcs", e[1], V[:, 0]) ** 2).sum(
        1
    ).mean()
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("kw", [{}, {"directions": 2}, {"partials": [(0, 0), (1, 0), (0, 1)]}])
def test_a_teacher_module_target_gets_no_gradient(kw):
    """A target that is itself a trainable module is a constant: backward reaches only
    the student."""
    torch.manual_seed(0)
    student, teacher = MLP(2, 1, width=8, depth=2), MLP(2, 1, width=8, depth=2)
    SobolevLoss(**kw)(student, torch.randn(5, 2), teacher).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


@pytest.mark.parametrize("kw", [{}, {"directions": 2}, {"partials": [(0, 0), (1, 0)]}])
def test_the_model_sees_only_full_batches(kw):
    """The graph to the parameters is requested outright, so a model given as a plain function is
    never probed on a single row (which would break batch-statistics models such as BatchNorm)."""
    net, f, x = _setup(d=2, m=1, B=4)
    seen = []

    def model(y):
        seen.append(y.shape[0])
        return net(y)

    SobolevLoss(**kw)(model, x, f).backward()
    assert seen and set(seen) == {4}
    assert all(p.grad is not None for p in net.parameters())


def _u(B=3, m=1):
    return torch.zeros(B, m)


_V = torch.zeros(2, 1, 3, 2)
_DIR = directional_stack((_u(), torch.zeros(3, 1, 2)), _V)
_FULL = DerivativeStack((_u(), torch.zeros(3, 1, 2)))

MESSAGES = [  # (call, exception, the essential words of the message)
    (lambda: loss_order("H3"), ValueError, r"losses must be among \('L2', 'H1', 'H2'\).*'H3'"),
    (
        lambda: sobolev_loss((_u(),), {(0,): _u()}),
        TypeError,
        "pred_stack and target_stack must both be sequences .* or both dicts",
    ),
    (
        lambda: sobolev_loss({(0, 0): _u(), (1, 0): _u()}, {(0, 0): _u(), (0, 1): _u()}),
        ValueError,
        r"partials differ: pred has \[\(0, 0\), \(1, 0\)\], target has \[\(0, 0\), \(0, 1\)\]",
    ),
    (
        lambda: sobolev_loss((_u(), _u()), (_u(),)),
        ValueError,
        "pred_stack has orders 0..1 but target_stack has orders 0..0.*same length",
    ),
    (
        lambda: sobolev_loss(_DIR, _FULL),
        ValueError,
        "pred_stack is directional but target_stack is not.*directional_stack",
    ),
    (
        lambda: sobolev_loss(_FULL, _DIR),
        ValueError,
        "pred_stack is directional but target_stack is not.*directional_stack",
    ),
    (
        lambda: sobolev_loss(_DIR, _DIR, p=1),
        ValueError,
        "directional stacks .* only for p = 2, got p=1",
    ),
    (lambda: sobolev_loss((), ()), ValueError, "stacks must hold at least the order-0 values"),
    (lambda: sobolev_loss({}, {}), ValueError, "stacks must hold at least the order-0 values"),
    (
        lambda: sobolev_loss((_u(),), (_u(),), reduction="avg"),
        ValueError,
        "reduction must be one of.*'avg'",
    ),
    (lambda: sobolev_loss((_u(),), (_u(),), p=0.5), ValueError, "p must be a number ≥ 1.*0.5"),
    (
        lambda: sobolev_loss((_u(), _u()), (_u(), _u()), weights=[1.0]),
        ValueError,
        r"weights must have one entry per order \(2\), got 1",
    ),
    (
        lambda: sobolev_loss((_u(), _u()), (_u(), _u()), weights=[1.0, -1.0]),
        ValueError,
        r"weights must be non-negative and finite.*-1.0",
    ),
    (
        lambda: sobolev_loss((_u(),), (_u(),), weights=[float("nan")]),
        ValueError,
        r"weights must be non-negative and finite.*nan",
    ),
    (
        lambda: sobolev_loss((_u(), _u(3, 2)), (_u(), _u(3, 1))),
        ValueError,
        r"shape mismatch at D1: prediction \(3, 2\) vs target \(3, 1\)",
    ),
    (
        lambda: sobolev_loss((_u(),), (torch.full((3, 1), float("inf")),)),
        ValueError,
        "target D0 contains NaN or Inf",
    ),
    (lambda: SobolevLoss(-1), ValueError, "order must be a non-negative integer.*-1"),
    (lambda: SobolevLoss(1, p=0), ValueError, "p must be a number ≥ 1.*0"),
    (lambda: SobolevLoss(1, directions=0), ValueError, "directions must be None or a positive int"),
    (
        lambda: SobolevLoss(1, directions=2.5),
        ValueError,
        "directions must be None or a positive int",
    ),
    (
        lambda: SobolevLoss(1, directions=True),
        ValueError,
        "directions must be None or a positive int",
    ),
    (
        lambda: SobolevLoss(1, directions="2"),
        ValueError,
        "directions must be None or a positive int",
    ),
    (
        lambda: SobolevLoss(1, p=3, directions=2),
        ValueError,
        "directional estimates are unbiased only for p = 2",
    ),
    (lambda: SobolevLoss(partials=[]), ValueError, "partials must be a non-empty list"),
    (
        lambda: SobolevLoss(partials=[(1, 0)], directions=2),
        ValueError,
        "either partials or directions, not both",
    ),
    (
        lambda: SobolevLoss(partials=[(1, 0)], weighting="dimension"),
        ValueError,
        "weighting='dimension' balances whole orders.*explicit weights",
    ),
    (
        lambda: SobolevLoss(1, weighting="entries"),
        ValueError,
        "weighting must be one of.*'dimension'.*'entries'",
    ),
    (lambda: SobolevLoss(1, reduction="avg"), ValueError, "reduction must be one of.*'avg'"),
    (
        lambda: SobolevLoss(1, weights=[1.0]),
        ValueError,
        r"weights must have one entry per order \(2\), got 1",
    ),
    (
        lambda: SobolevLoss(partials=[(1, 0), (0, 1)], weights=[1.0]),
        ValueError,
        r"weights must have one entry per partial \(2\), got 1",
    ),
]


def _call(loss, target):
    return lambda: loss(MLP(2, 1, width=4, depth=1), torch.zeros(3, 2), target)


FORWARD_MESSAGES = [
    (
        SobolevLoss(1),
        torch.zeros(3, 1),
        ValueError,
        "a Tensor target gives values only; order=1 needs a derivative stack",
    ),
    (
        SobolevLoss(1),
        5,
        TypeError,
        "target must be a derivative stack, a Tensor or a callable.*int",
    ),
    (
        SobolevLoss(1),
        "ab",
        TypeError,
        "target must be a derivative stack, a Tensor or a callable.*str",
    ),
    (
        SobolevLoss(1),
        {(0, 0): _u()},
        TypeError,
        "target must be a derivative stack, a Tensor or a callable.*dict",
    ),
    (SobolevLoss(1), (_u(),), ValueError, "target stack has 1 entries but order=1 needs 2"),
    (
        SobolevLoss(partials=[(1, 0)]),
        (_u(),),
        TypeError,
        "with partials, target must be a dict.* or a callable",
    ),
]


@pytest.mark.parametrize(
    "call,exc,pattern", MESSAGES + [(_call(lo, t), e, m) for lo, t, e, m in FORWARD_MESSAGES]
)
def test_error_messages(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("kw", [{}, {"directions": 2}, {"partials": [(0,)]}])
def test_one_dimensional_x_gets_the_shape_message(kw):
    net = MLP(1, 1, width=4, depth=1)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, d\).*\(3,\)"):
        SobolevLoss(**kw)(net, torch.zeros(3), lambda z: z.sin())


def test_bad_inputs_found_by_mutation_triage():
    """Infinite weights, boolean p and a non-tensor or 0-d x are one-line errors naming
    the argument."""
    u = torch.zeros(3, 1)
    for bad in ([math.inf], [1.0, -math.inf]):
        with pytest.raises(ValueError, match="weights must be non-negative and finite"):
            sobolev_loss(tuple([u] * len(bad)), tuple([u] * len(bad)), weights=bad)
    with pytest.raises(ValueError, match=r"weights must be non-negative and finite.*\[inf\]"):
        SobolevLoss(0, weights=[math.inf])
    with pytest.raises(ValueError, match="p must be a number ≥ 1.*True"):
        SobolevLoss(1, p=True)
    net = MLP(2, 1, width=4, depth=1)
    with pytest.raises(TypeError, match="x must be a torch.Tensor.*list"):
        SobolevLoss(1)(net, [[0.0, 1.0]], lambda z: z[:, :1])
    with pytest.raises(ValueError, match=r"x must have shape \(batch, d\).*\(\)"):
        SobolevLoss(1)(net, torch.tensor(1.0), lambda z: z[:, :1])


# -------------------------------------------------------------------------- properties (hypothesis)


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
        a, ta = sobolev_loss(pred, true, p=p, weights=w, reduction=reduction, return_terms=True)
        b, tb = sobolev_loss(
            [t[perm] for t in pred],
            [t[perm] for t in true],
            p=p,
            weights=w,
            reduction=reduction,
            return_terms=True,
        )
        assert b.item() == pytest.approx(a.item(), rel=1e-12, abs=1e-300)
        assert all(tb[key].item() == pytest.approx(ta[key].item(), rel=1e-12) for key in ta)
    none_a = sobolev_loss(pred, true, p=p, weights=w, reduction="none")
    none_b = sobolev_loss(
        [t[perm] for t in pred], [t[perm] for t in true], p=p, weights=w, reduction="none"
    )
    torch.testing.assert_close(none_b, none_a[perm], rtol=1e-12, atol=0)


@SETTINGS
@given(**dims, p=st.floats(1, 4), c=st.floats(-8, 8).filter(lambda c: abs(c) > 1e-3))
def test_scales_as_abs_c_to_the_p(seed, B, m, d, k, p, c):
    """pred = target + c·e  ⇒  every term is |c|^p times its value at c = 1."""
    pred, true = _stacks(seed, B, m, d, k)
    e = [a - b for a, b in zip(pred, true)]
    one, t1 = sobolev_loss([b + x for b, x in zip(true, e)], true, p=p, return_terms=True)
    scaled, tc = sobolev_loss([b + c * x for b, x in zip(true, e)], true, p=p, return_terms=True)
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
    _, full = sobolev_loss(pred, true, return_terms=True)
    g = torch.Generator().manual_seed(seed + 1)
    n = 400
    est = torch.empty(n, k + 1)
    for i in range(n):
        V = torch.randn(S, k, B, d, generator=g, dtype=torch.float64)
        _, terms = sobolev_loss(
            directional_stack(pred, V), directional_stack(true, V), return_terms=True
        )
        est[i] = torch.stack([terms[f"D{j}"] for j in range(k + 1)])
    assert est[:, 0].eq(full["D0"]).all()  # the values are not directional
    for j in range(1, k + 1):
        mean, se = est[:, j].mean(), est[:, j].std() / math.sqrt(n)
        assert abs(float(mean - full[f"D{j}"])) < 5 * float(se), (
            j,
            float(mean),
            float(full[f"D{j}"]),
        )


def test_target_stacks_carry_no_graph_into_the_loss():
    """Targets are constants: a stack reused across backward passes, or one computed from a
    callable that holds trainable tensors, carries no graph into the loss."""
    x = torch.linspace(-2, 2, 16, dtype=torch.float64).unsqueeze(1)
    target = lambda t: torch.sin(t) * t
    stack = derivatives(target, x, 1)  # grad mode on, create_graph left at its default
    assert not any(t.requires_grad for t in stack)
    torch.manual_seed(0)
    model, loss_fn = MLP(1, 1, width=8, depth=2).to(torch.float64), SobolevLoss(1)
    for _ in range(2):  # a hand-written loop reusing the stack
        loss_fn(model, x, stack).backward()
    with_graph = derivatives(lambda t: target(t) * torch.ones(1, requires_grad=True), x, 1)
    assert with_graph[0].requires_grad  # a callable with trainable tensors keeps its graph
    for _ in range(2):  # ... and passed as a target it is still a constant
        loss_fn(model, x, with_graph).backward()
