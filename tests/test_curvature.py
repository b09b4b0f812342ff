"""Hessians of empirical L2/H1/H2 losses: HVPs against functorch Hessians and finite differences,
Lanczos extreme eigenvalues against dense eigendecomposition."""

import math

import pytest
import torch
from torch.func import functional_call, hessian, jacrev, vmap

from sobolev import MLP, SobolevLoss, derivatives
from sobolev.curvature import (
    LossHessian,
    condition_number,
    fitted_rate,
    gd_contraction,
    lanczos_extremes,
    spectrum_edges,
)
from sobolev.models import TwoLayer

pytestmark = pytest.mark.usefixtures("double")


def _target(y):
    return torch.sin(y).sum(-1, keepdim=True)


def _problem(order, activation="tanh", width=6, n=30):
    torch.manual_seed(0)
    net = MLP(2, 1, width, 2, activation, w0=2.0)
    x = torch.randn(n, 2)
    return net, x, (x, *derivatives(_target, x, order, create_graph=False))


def _functorch_hessian(net, x, order):
    """Hessian of the H^order loss written with torch.func only (an independent path)."""
    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    true = derivatives(_target, x, order, create_graph=False)

    def loss(t):
        parts = dict(
            zip(names, (c.reshape(s) for c, s in zip(t.split([s.numel() for s in shapes]), shapes)))
        )
        f = lambda xi: functional_call(net, parts, (xi[None],))[0]
        preds = [vmap(f)(x), vmap(jacrev(f))(x), vmap(hessian(f))(x)][: order + 1]
        return sum(((p - q) ** 2).reshape(len(x), -1).sum(1).mean() for p, q in zip(preds, true))

    return theta, hessian(loss)(theta)


@pytest.mark.parametrize("order", [0, 1, 2])
def test_hvp_equals_dense_hessian_times_v(order):
    net, x, batch = _problem(order)
    theta, H_ref = _functorch_hessian(net, x, order)
    H = LossHessian(net, SobolevLoss(order), batch)
    assert H.n_params == theta.numel()
    v = torch.randn(H.n_params)
    assert torch.allclose(H.hvp(v), H_ref @ v, atol=1e-9, rtol=1e-8)
    assert torch.allclose(H.dense(), H_ref, atol=1e-9, rtol=1e-8)
    assert torch.allclose(H.hvp(torch.stack([v, 2 * v], 1))[:, 1], 2 * H_ref @ v, atol=1e-8)


@pytest.mark.parametrize("activation", ["gelu", "sine", "leaky_relu"])
def test_hvp_of_h1_loss_matches_finite_differences_of_the_gradient(activation):
    net, _x, batch = _problem(1, activation)
    H = LossHessian(net, SobolevLoss(1), batch)
    v = torch.randn(H.n_params)
    v /= v.norm()
    params = list(net.parameters())

    def grad_at(shift):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(
                torch.nn.utils.parameters_to_vector(params) + shift, params
            )
        g = LossHessian(net, SobolevLoss(1), batch).grad
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(
                torch.nn.utils.parameters_to_vector(params) - shift, params
            )
        return g

    eps = 1e-5
    fd = (grad_at(eps * v) - grad_at(-eps * v)) / (2 * eps)
    assert torch.allclose(H.hvp(v), fd, atol=1e-5 * max(1.0, float(fd.norm())))


@pytest.mark.parametrize("order", [0, 1])
def test_lanczos_extremes_agree_with_dense_eigendecomposition(order):
    net, _x, batch = _problem(order, "tanh", width=8, n=40)
    H = LossHessian(net, SobolevLoss(order), batch)
    ev = torch.linalg.eigvalsh(H.dense())
    low, top = lanczos_extremes(H.hvp, H.n_params, k=2, tol=1e-10)
    assert low == pytest.approx(ev[:2].numpy(), rel=1e-7, abs=1e-9)
    assert top == pytest.approx(ev[-2:].numpy(), rel=1e-7, abs=1e-9)
    lz, dense = spectrum_edges(H, method="lanczos", tol=1e-10), spectrum_edges(H, method="dense")
    assert (lz.method, dense.method, spectrum_edges(H).method) == ("lanczos", "dense", "dense")
    assert lz.lambda_max == pytest.approx(dense.lambda_max, rel=1e-7)
    assert lz.lambda_min == pytest.approx(dense.lambda_min, rel=1e-6, abs=1e-9)


def test_shallow_relu_hessian_is_positive_definite_and_condition_is_its_ratio():
    torch.manual_seed(0)
    teacher, student = TwoLayer(4, 3, "relu"), TwoLayer(4, 3, "relu")
    x = torch.randn(400, 4)
    edges = spectrum_edges(
        LossHessian(student, SobolevLoss(1), (x, *derivatives(teacher, x, 1, create_graph=False)))
    )
    assert 0 < edges.lambda_min < edges.lambda_max
    assert condition_number(-1.0, 2.0) == math.inf and condition_number(0.0, 2.0) == math.inf


@pytest.mark.parametrize("method", ["dense", "lanczos"])
def test_spectrum_of_a_known_hessian(method):
    """Linear model u = w·x on x = diag(4, 3, 2, 1), targets 0: the L2 Hessian is
    (2/4)·diag(16, 9, 4, 1) = diag(8, 4.5, 2, 0.5) (condition 16); H1 adds the Hessian 2I of
    mean‖w − 0‖², giving diag(10, 6.5, 4, 2.5) (condition 4)."""
    net = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.3, -0.2, 0.1, 0.5]]))
    x = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0]))
    zeros = (torch.zeros(4, 1), torch.zeros(4, 1, 4))
    l2 = spectrum_edges(LossHessian(net, SobolevLoss(0), (x, zeros[0])), method=method, tol=1e-12)
    h1 = spectrum_edges(LossHessian(net, SobolevLoss(1), (x, *zeros)), method=method, tol=1e-12)
    assert (l2.lambda_min, l2.lambda_max, l2.condition) == pytest.approx(
        (0.5, 8.0, 16.0), rel=1e-10
    )
    assert (h1.lambda_min, h1.lambda_max, h1.condition) == pytest.approx(
        (2.5, 10.0, 4.0), rel=1e-10
    )
    H = LossHessian(net, SobolevLoss(1), (x, *zeros))
    torch.testing.assert_close(H.dense(), torch.diag(torch.tensor([10.0, 6.5, 4.0, 2.5])))
    torch.testing.assert_close(
        H.grad, 2 * net.weight.detach()[0] * (torch.tensor([16.0, 9.0, 4.0, 1.0]) / 4 + 1)
    )


def test_gd_contraction_and_fitted_rate():
    assert gd_contraction(1.0, 10.0, 0.1) == pytest.approx(0.9)  # max(|1 − 0.1|, |1 − 1|)
    assert gd_contraction(1.0, 10.0, 0.25) == pytest.approx(1.5)  # η λ_max = 2.5 > 2: diverges
    assert gd_contraction(2.0, 4.0, 1 / 3) == pytest.approx(1 / 3)  # the optimal step 2/(λmin+λmax)
    steps = [0, 5, 10, 20]
    assert fitted_rate(steps, [3.0 * 0.8**s for s in steps]) == pytest.approx(
        math.log(0.8), rel=1e-12
    )
    assert fitted_rate([0, 1, 2], [1.0, 0.0, 0.25]) == pytest.approx(
        math.log(0.25) / 2
    )  # 0 skipped
    assert math.isnan(fitted_rate([0, 1], [1.0, -1.0]))


def test_bad_arguments_are_clear():
    net, _x, batch = _problem(0)
    H = LossHessian(net, SobolevLoss(0), batch)
    with pytest.raises(ValueError, match="shape"):
        H.hvp(torch.ones(3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        H.hvp([1.0])
    with pytest.raises(ValueError, match="method"):
        spectrum_edges(H, method="power")
    with pytest.raises(ValueError, match="dense"):
        lanczos_extremes(lambda v: v, 2)
