"""W^{k,p} losses: values on hand-computed cases, equivalences, and error messages."""

import math

import pytest
import torch
import torch.nn.functional as F

from sobolev import MLP, SobolevLoss, derivatives, directional_stack, sobolev_loss

pytestmark = pytest.mark.usefixtures("double")


def test_values_by_hand():
    pred = (torch.tensor([[1.0], [2.0]]), torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]]))
    true = (torch.tensor([[0.0], [0.0]]), torch.tensor([[[0.0, 0.0]], [[0.0, 0.0]]]))
    total, terms = sobolev_loss(pred, true)
    assert terms["D0"].item() == pytest.approx((1 + 4) / 2)
    assert terms["D1"].item() == pytest.approx((1 + 4) / 2)
    assert total.item() == pytest.approx(5.0)
    total, terms = sobolev_loss(pred, true, p=1, weights=[1.0, 0.5])
    assert terms["D0"].item() == pytest.approx(1.5) and terms["D1"].item() == pytest.approx(1.5)
    assert total.item() == pytest.approx(1.5 + 0.75)
    _, terms = sobolev_loss(pred, true, p=3, reduction="sum")
    assert terms["D0"].item() == pytest.approx(9.0)
    total, terms = sobolev_loss(pred, true, reduction="none")
    assert total.shape == (2,) and torch.allclose(total, torch.tensor([2.0, 8.0]))


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


@pytest.mark.parametrize("order", [1, 2])
def test_directional_loss_is_unbiased(order):
    torch.manual_seed(0)
    net = MLP(6, 2, width=16, depth=2).double()
    f = lambda x: torch.stack([torch.sin(x).sum(-1), (x**2).prod(-1)], -1)
    x = torch.randn(8, 6)
    full = SobolevLoss(order)(net, x, f, return_terms=True)[1][f"D{order}"].item()
    est = SobolevLoss(order, directions=1, generator=torch.Generator().manual_seed(5))
    samples = torch.tensor([est(net, x, f, return_terms=True)[1][f"D{order}"].item() for _ in range(600)])
    z = (samples.mean() - full) / (samples.std() / math.sqrt(len(samples)))
    assert abs(z) < 4.5
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
    want = ((full_p[0] - full_t[0]) ** 2).mean() + ((full_p[1][..., 0] - full_t[1][..., 0]) ** 2).mean() \
        + 0.5 * ((full_p[2][..., 1, 1] - full_t[2][..., 1, 1]) ** 2).mean()
    assert total.item() == pytest.approx(want.item())


def test_gradients_reach_parameters():
    net = MLP(2, 1, width=8, depth=1).double()
    x = torch.randn(5, 2)
    SobolevLoss(2, directions=2)(net, x, lambda x: x.prod(-1, keepdim=True)).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_bad_input_messages():
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
        SobolevLoss(1)(net, torch.randn(3, 2), lambda x: torch.from_numpy(x.detach().numpy()[:, :1].copy()))
    with pytest.raises(ValueError, match="needs a derivative stack"):
        SobolevLoss(1)(net, torch.randn(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="needs 2"):
        SobolevLoss(1)(net, torch.randn(3, 2), (torch.zeros(3, 1),))


def test_more_bad_arguments():
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
