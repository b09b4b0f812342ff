"""Networks: shapes, SIREN initialisation statistics, Fourier features, derivatives through
the models."""

import math

import pytest
import torch
from torch.func import hessian, jacrev, vmap

from sobolev import derivatives
from sobolev.models import ACTIVATIONS, MLP, SIREN, FourierFeatureMLP, FourierFeatures, TwoLayer

pytestmark = pytest.mark.usefixtures("double")


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_shapes_for_every_activation(activation):
    torch.manual_seed(0)
    x = torch.randn(7, 3)
    assert MLP(3, 2, 8, 2, activation)(x).shape == (7, 2)
    assert TwoLayer(3, 5, activation)(x).shape == (7, 1)
    assert FourierFeatureMLP(3, 2, n_features=4, width=8, depth=1, activation=activation)(
        x
    ).shape == (7, 2)
    assert SIREN(3, 4, 8, 2)(x).shape == (7, 4)


@torch.no_grad()
def test_siren_init_statistics():
    torch.manual_seed(0)
    w0, n = 30.0, 512
    net = SIREN(2, 1, width=n, depth=3, w0=w0)
    lins = [m for m in net.net if isinstance(m, torch.nn.Linear)]
    assert lins[0].weight.abs().max() <= 1 / 2 and lins[0].weight.abs().max() > 0.45
    for lin in lins[1:]:
        bound = math.sqrt(6 / n) / w0
        assert lin.weight.abs().max() <= bound
        assert lin.weight.std() == pytest.approx(
            bound / math.sqrt(3), rel=0.02
        )  # U(±b) has std b/√3
    h = torch.rand(4000, 2) * 2 - 1
    h = net.net[1](net.net[0](h))
    for lin, act in zip(lins[1:-1], [m for m in net.net if not isinstance(m, torch.nn.Linear)][1:]):
        pre = (
            w0 * h @ lin.weight.T
        )  # SIREN: the weight part of each hidden pre-activation has unit variance
        assert pre.std() == pytest.approx(1.0, rel=0.1)
        h = act(lin(h))
        assert (h * h).mean() == pytest.approx(
            0.5, rel=0.1
        )  # sin of a wide distribution: E sin² ≈ ½
    assert net(torch.rand(1000, 2) * 2 - 1).std() < 0.1  # output layer scaled by 1/ω₀: starts small


def test_fourier_features_are_a_fixed_buffer_with_sigma_scale():
    ff = FourierFeatures(2, n_features=2000, sigma=3.0, generator=torch.Generator().manual_seed(0))
    assert list(ff.parameters()) == [] and "B" in ff.state_dict()
    assert ff.B.std() == pytest.approx(3.0, rel=0.05)
    x = torch.randn(5, 2)
    z = 2 * math.pi * x @ ff.B.T
    assert torch.allclose(ff(x), torch.cat([z.cos(), z.sin()], -1))
    net = FourierFeatureMLP(2, 1, n_features=8, sigma=2.0)
    assert all(p is not net.features.B for p in net.parameters())


def _per_sample(model):
    return lambda xi: model(xi[None])[0]


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP(3, 2, 8, 2, "gelu"),
        lambda: SIREN(3, 2, 8, 2, w0=5.0),
        lambda: FourierFeatureMLP(3, 2, n_features=4, sigma=0.5, width=8, depth=1),
        lambda: TwoLayer(3, 6, "tanh"),
    ],
)
def test_derivatives_through_models_match_functorch(make):
    torch.manual_seed(1)
    net, x = make(), torch.randn(6, 3)
    _, du, d2u = derivatives(net, x, 2, create_graph=False)
    assert torch.allclose(du, vmap(jacrev(_per_sample(net)))(x), atol=1e-10)
    assert torch.allclose(d2u, vmap(hessian(_per_sample(net)))(x), atol=1e-9)


def test_two_layer_relu_input_gradient_is_the_active_rows_sum():
    net = TwoLayer(4, 5, "relu", generator=torch.Generator().manual_seed(0))
    x = torch.randn(9, 4)
    _, du = derivatives(net, x, 1, create_graph=False)
    expected = (x @ net.W.T > 0).double() @ net.W
    assert torch.allclose(du[:, 0], expected)
    assert list(dict(net.named_parameters())) == ["W"]
    assert list(dict(TwoLayer(4, 5, train_output=True).named_parameters())) == ["W", "a"]


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="activation"):
        MLP(2, 1, activation="swish")
    with pytest.raises(ValueError, match="width"):
        TwoLayer(2, 0)
    with pytest.raises(ValueError, match="sigma"):
        FourierFeatures(2, 4, sigma=0.0)
    with pytest.raises(ValueError, match="w0"):
        SIREN(1, 1, w0=-1.0)


_SCALAR_ACTIVATIONS = {  # σ(z) written out with the math module, independently of torch
    "relu": lambda z: max(z, 0.0),
    "leaky_relu": lambda z: z if z > 0 else 0.01 * z,
    "gelu": lambda z: 0.5 * z * (1 + math.erf(z / math.sqrt(2))),
    "tanh": math.tanh,
    "sine": lambda z: math.sin(2.5 * z),  # ω₀ = 2.5
    "softplus": lambda z: math.log1p(math.exp(z)),
}


@torch.no_grad()
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_forward_values_by_hand(activation):
    """u(x) = v·σ(W x + b) + c with hand-set weights, against the activation written in
    plain Python."""
    net = MLP(2, 1, width=2, depth=1, activation=activation, w0=2.5)
    first, last = net.net[0], net.net[2]
    first.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.25]]))
    first.bias.copy_(torch.tensor([0.1, -0.3]))
    last.weight.copy_(torch.tensor([[2.0, -1.0]]))
    last.bias.copy_(torch.tensor([0.4]))
    s = _SCALAR_ACTIVATIONS[activation]
    for x0, x1 in [(0.3, -0.4), (-1.2, 0.1), (0.05, 0.9)]:
        z = (x0 - 2 * x1 + 0.1, 0.5 * x0 + 0.25 * x1 - 0.3)
        want = 2 * s(z[0]) - s(z[1]) + 0.4
        assert net(torch.tensor([[x0, x1]])).item() == pytest.approx(want, rel=1e-12, abs=1e-14)


@torch.no_grad()
def test_two_layer_and_siren_forward_values():
    net = TwoLayer(2, 2, "sine")
    net.W.copy_(torch.tensor([[1.0, 0.5], [-0.5, 2.0]]))
    x = torch.tensor([[0.3, -0.2]])
    assert net(x).item() == pytest.approx(
        math.sin(0.3 - 0.1) + math.sin(-0.15 - 0.4), rel=1e-12
    )  # ω₀ = 1
    leaky = TwoLayer(2, 2, "leaky_relu")
    leaky.W.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    assert leaky(torch.tensor([[2.0, 5.0]])).item() == pytest.approx(2.0 + 0.01 * -2.0, rel=1e-12)
    siren = SIREN(1, 1, width=1, depth=1, w0=7.0)
    assert all(m.w0 == 7.0 for m in siren.net if hasattr(m, "w0"))
    siren.net[0].weight.fill_(1.0), siren.net[0].bias.fill_(0.0)
    siren.net[2].weight.fill_(1.0), siren.net[2].bias.fill_(0.0)
    assert siren(torch.tensor([[0.2]])).item() == pytest.approx(math.sin(7.0 * 0.2), rel=1e-12)


def test_mlp_with_a_list_of_hidden_widths():
    net = MLP(2, 3, widths=[20, 10])
    shapes = [tuple(m.weight.shape) for m in net.net if isinstance(m, torch.nn.Linear)]
    assert shapes == [(20, 2), (10, 20), (3, 10)]
    assert net(torch.zeros(4, 2)).shape == (4, 3)
    assert len(MLP(2, 1, 16, 2)(torch.zeros(1, 2))) == 1  # the positional signature still works
    with pytest.raises(ValueError, match=r"widths\[1\] must be a positive integer"):
        MLP(2, widths=[4, 0])
    with pytest.raises(ValueError, match="either widths or width/depth"):
        MLP(2, width=8, widths=[4])
