"""W^{k,p} losses: values on hand-computed cases, equivalences, and error messages."""

import math

import pytest
import torch
import torch.nn.functional as F

from sobolev import MLP, SobolevLoss, derivatives, directional_stack, sobolev_loss

pytestmark = pytest.mark.usefixtures("double")


def test_values_by_hand():
    # D0 and D1 differ at every p, so swapping the weights or the terms changes every total below
    pred = (torch.tensor([[1.0], [2.0]]), torch.tensor([[[1.0, 0.0]], [[0.0, 3.0]]]))
    true = (torch.tensor([[0.0], [0.0]]), torch.tensor([[[0.0, 0.0]], [[0.0, 0.0]]]))
    total, terms = sobolev_loss(pred, true)
    assert terms["D0"].item() == pytest.approx((1 + 4) / 2)
    assert terms["D1"].item() == pytest.approx((1 + 9) / 2)
    assert total.item() == pytest.approx(2.5 + 5.0)
    total, terms = sobolev_loss(pred, true, p=1, weights=[1.0, 0.5])
    assert terms["D0"].item() == pytest.approx(1.5) and terms["D1"].item() == pytest.approx(2.0)
    assert total.item() == pytest.approx(1.5 + 0.5 * 2.0)
    total, terms = sobolev_loss(pred, true, p=3, weights=[0.5, 2.0], reduction="sum")
    assert terms["D0"].item() == pytest.approx(1 + 8) and terms["D1"].item() == pytest.approx(
        1 + 27
    )
    assert total.item() == pytest.approx(0.5 * 9 + 2.0 * 28)
    total, terms = sobolev_loss(pred, true, weights=[2.0, 1.0], reduction="none")
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
    b, tb = loss(net, x, derivatives(f, x, 2, create_graph=False), return_terms=True)
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
    """k ≥ 2: the total is Σ_j λ_j term_j / Σ_j dʲ (written out by hand: 13 for d=3, k=2; 15 for d=2, k=3)."""
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
    """S = 3: the order-j term is mean over b and s of Σ_c (Dʲe[v₁..vⱼ])², contracted here by hand."""
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
