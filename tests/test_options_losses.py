"""SobolevLoss and derivative options against written-out formulas: p ≠ 2, reduction sum/none as a
module, directions given as an (S, k, d) tensor, DerivativeStack.detach/.to."""

import pytest
import torch

from sobolev import MLP, DerivativeStack, SobolevLoss, derivatives, sobolev_loss

pytestmark = pytest.mark.usefixtures("double")


def _setup(d=3, m=2, B=5):
    torch.manual_seed(0)
    net = MLP(d, m, width=8, depth=2)
    f = lambda x: torch.stack([torch.sin(x).sum(-1), (x**2).prod(-1)], -1)[:, :m]  # noqa: E731
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
    assert SobolevLoss(1, weights=[1.0, 0.3], reduction="sum")(net, x, f).item() == pytest.approx(per_sample.sum().item(), rel=1e-12)
    assert SobolevLoss(1, weights=[1.0, 0.3])(net, x, f).item() == pytest.approx(per_sample.mean().item(), rel=1e-12)
    dim = SobolevLoss(1, weights=[1.0, 0.3], reduction="none", weighting="dimension")(net, x, f)
    torch.testing.assert_close(dim, per_sample / 4, rtol=1e-12, atol=0)  # Σ_j dʲ = 1 + 3


def test_directions_shared_over_the_batch():
    """A (S, k, d) tensor is one set of directions for every sample: Dʲu[v₁..vⱼ] by einsum on the full stack."""
    net, _, x = _setup()
    V = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1))
    got = derivatives(net, x, 2, directions=V)
    full = derivatives(net, x, 2)
    assert got.directions.shape == (4, 2, 5, 3)
    torch.testing.assert_close(got[0], full[0])
    torch.testing.assert_close(got[1], torch.einsum("bci,si->bcs", full[1], V[:, 0]), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[2], torch.einsum("bcij,si,sj->bcs", full[2], V[:, 0], V[:, 1]), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="directions tensor must have shape"):
        derivatives(net, x, 2, directions=torch.randn(4, 1, 3))  # k = 1 < order 2


def test_derivative_stack_detach_and_to():
    net, _, x = _setup()
    V = torch.randn(2, 1, 5, 3)
    stack = derivatives(net, x, 1, directions=V)
    assert all(t.requires_grad for t in stack)
    det = stack.detach()
    assert isinstance(det, DerivativeStack) and det.directions is V and det.order == 1 and det.directional
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
    f_nan = lambda z: torch.sqrt(z[:, :1] - 10.0)  # noqa: E731 — NaN everywhere on this x
    for check in (True, False):
        with pytest.raises(ValueError, match="target D0 contains NaN or Inf"):
            SobolevLoss(1)(net, x, f_nan, check_finite=check)
        with pytest.raises(ValueError, match=r"target D\(1,0\) contains NaN or Inf"):
            SobolevLoss(partials=[(1, 0)])(net, x, f_nan, check_finite=check)


def test_argument_errors_name_what_is_expected():
    from sobolev.losses import loss_order

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
