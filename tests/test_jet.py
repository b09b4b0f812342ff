"""Tests of sobolev.jet (Taylor mode through MLP-like chains) and of the other fast directional
paths of sobolev.derivatives (reverse-contracted directions, Hessian-vector products).

Reference: nested ``torch.func.jvp`` for directional stacks and repeated ``torch.autograd.grad``
for full stacks, in float64; both the values and the parameter gradients of a loss on them
must agree to rounding.
"""

import pytest
import torch
from torch import nn

from sobolev import MLP, derivatives, directional_stack
from sobolev.derivatives import _full_stack, _jvp_directional, derivative_method, sample_directions
from sobolev.jet import jet_directional, jet_layers

pytestmark = pytest.mark.usefixtures("double")

ACTS = ["tanh", "gelu", "sine", "softplus", "relu", "leaky_relu"]


def _net(act: str, d: int = 3, m: int = 2, seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    net = MLP(d, m, width=8, depth=2, activation=act, w0=3.0)
    if act == "softplus":  # put some pre-activations past softplus' linear threshold
        net.net[1].threshold = 0.5
    return net


def _loss(stack) -> torch.Tensor:
    """A loss touching every entry of the stack with distinct weights."""
    return sum((j + 1) * (t**2).sum() + t.sum() for j, t in enumerate(stack))


def _assert_same(net: nn.Module, got, want) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    params = list(net.parameters())
    ga = torch.autograd.grad(_loss(got), params)
    gb = torch.autograd.grad(_loss(want), params)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("order,n_sets", [(1, 1), (2, 1), (2, 3), (3, 2)])
def test_jet_directional_matches_nested_jvp(act, order, n_sets):
    net = _net(act)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    V = sample_directions(n_sets, order, 5, 3, generator=torch.Generator().manual_seed(2))
    assert derivative_method(net, order, d=3, m=2, n_sets=n_sets) == "jet"
    got = derivatives(net, x, order, directions=V)
    want = [net(x)] + _jvp_directional(net, x, order, V, create_graph=True)
    assert got.directions is V and got[order].shape == (5, 2, n_sets)
    _assert_same(net, got, want)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_jet_on_plain_sequential_with_sigmoid_and_identity(order):
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Linear(2, 6),
        nn.Sigmoid(),
        nn.Sequential(nn.Linear(6, 6), nn.Identity(), nn.Tanh()),
        nn.Linear(6, 3),
    )
    assert jet_layers(net) is not None
    x = torch.randn(4, 2)
    V = sample_directions(2, order, 4, 2, generator=torch.Generator().manual_seed(4))
    assert derivative_method(net, order, d=2, m=3, n_sets=2) == "jet"
    _assert_same(
        net,
        derivatives(net, x, order, directions=V),
        [net(x)] + _jvp_directional(net, x, order, V, True),
    )


@pytest.mark.parametrize("act,at", [("relu", 0.0), ("leaky_relu", 0.0), ("softplus", 0.5)])
def test_jet_at_a_kink_follows_autograd(act, at):
    """Pre-activations exactly at a branch point: the jet takes the derivative autograd takes there
    (0 for ReLU at 0, the negative slope for LeakyReLU, σ(βz) at softplus' threshold (0.5 here))."""
    net = _net(act, d=2, m=2)
    with torch.no_grad():
        net.net[0].bias.fill_(at)
        net.net[0].weight[:4] = 0.0  # half of the first layer's units sit at z = `at` for every x
    x = torch.randn(3, 2)
    V = sample_directions(1, 1, 3, 2, generator=torch.Generator().manual_seed(9))
    assert derivative_method(net, 1, d=2, m=2, n_sets=1) == "jet"
    _assert_same(
        net, derivatives(net, x, 1, directions=V), [net(x)] + _jvp_directional(net, x, 1, V, True)
    )


def test_jet_refuses_orders_above_its_maximum():
    net = _net("tanh")
    with pytest.raises(ValueError, match="orders up to 3, got 4 directions"):
        jet_directional(jet_layers(net), torch.randn(2, 3), torch.randn(1, 4, 2, 3), 4)


@pytest.mark.parametrize("act", ["tanh", "sine", "relu"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_jet_along_unit_direction_gives_full_stack_at_d1(act, order):
    net = _net(act, d=1, m=2)
    x = torch.randn(6, 1)
    got = jet_directional(jet_layers(net), x, torch.ones(1, order, 6, 1), order)
    want = _full_stack(net, x, order, create_graph=True)
    _assert_same(net, got, [want[0]] + [t.reshape(6, 2, 1) for t in want[1:]])


@pytest.mark.parametrize("m,n_sets", [(1, 1), (1, 4), (2, 3)])
def test_reverse_contracted_directions_match_nested_jvp(m, n_sets):
    """Order-1 directions with n_sets ≥ m contract the full gradient (any callable)."""
    net = _net("gelu", m=m)
    f = lambda z: net(z)
    x = torch.randn(5, 3)
    V = sample_directions(n_sets, 1, 5, 3, generator=torch.Generator().manual_seed(5))
    assert derivative_method(f, 1, d=3, m=m, n_sets=n_sets) == "reverse"
    _assert_same(
        net, derivatives(f, x, 1, directions=V), [net(x)] + _jvp_directional(f, x, 1, V, True)
    )


@pytest.mark.parametrize("generic,n_sets", [(True, 1), (True, 3), (False, 3)])
def test_hessian_vector_directions_match_nested_jvp(generic, n_sets):
    """Order-2 directions for m = 1 by gradient + batched Hessian-vector products."""
    net = _net("softplus", m=1)
    f = (lambda z: net(z)) if generic else net
    x = torch.randn(5, 3)
    V = sample_directions(n_sets, 2, 5, 3, generator=torch.Generator().manual_seed(8))
    assert derivative_method(f, 2, d=3, m=1, n_sets=n_sets) == "reverse"
    _assert_same(
        net, derivatives(f, x, 2, directions=V), [net(x)] + _jvp_directional(f, x, 2, V, True)
    )
    with torch.no_grad():
        torch.testing.assert_close(
            derivatives(f, x, 2, directions=V)[2], derivatives(net, x, 2, directions=V)[2]
        )
    lin = derivatives(
        lambda z: z.sum(-1), x, 2, directions=V, create_graph=False
    )  # Hessian is zero
    torch.testing.assert_close(lin[1], torch.einsum("sbd->bs", V[:, 0]).unsqueeze(1))
    assert lin[2].shape == (5, 1, n_sets) and lin[2].abs().max() == 0


def test_create_graph_semantics_and_double_backward():
    net = _net("tanh")
    x = torch.randn(5, 3, requires_grad=True)
    V = sample_directions(2, 2, 5, 3, generator=torch.Generator().manual_seed(6))
    assert not any(
        t.requires_grad for t in derivatives(net, x, 2, directions=V, create_graph=False)
    )
    with torch.no_grad():
        assert not derivatives(net, x, 2, directions=V)[2].requires_grad
    # second-order parameter derivatives (Hessian-vector products of the loss) and the input
    # gradient flow through the jet exactly as through nested jvp
    params = list(net.parameters())
    vec = [torch.randn_like(p) for p in params]

    def hvp_and_xgrad(stack):
        g = torch.autograd.grad(_loss(stack), params, create_graph=True)
        hv = torch.autograd.grad(
            sum((a * b).sum() for a, b in zip(g, vec)), params, retain_graph=True
        )
        return hv + torch.autograd.grad(_loss(stack), x)

    got = hvp_and_xgrad(derivatives(net, x, 2, directions=V))
    want = hvp_and_xgrad([net(x)] + _jvp_directional(net, x, 2, V, True))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


class _Hooked(nn.Module):
    """A module that is not a Sequential but declares its layer chain."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 5), nn.Linear(5, 1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))

    def jet_layers(self):
        return [self.a, nn.Tanh(), self.b]


class _Residual(MLP):
    def forward(self, x):
        return super().forward(x) + x[:, :1]


def test_jet_applies_only_to_supported_chains():
    torch.manual_seed(0)
    assert jet_layers(_Hooked()) is not None
    assert jet_layers(MLP(3, 1)) is not None
    assert jet_layers(_Residual(3, 1)) is None  # overridden forward
    assert jet_layers(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))) is None
    assert jet_layers(nn.Sequential(nn.Linear(3, 3), nn.GELU(approximate="tanh"))) is None
    assert jet_layers(lambda x: x) is None
    # unsupported models still get correct results from the fallback (nested jvp), checked against
    # an independent path: the full reverse-mode stack contracted with the same directions
    net = _Residual(3, 1, width=8, depth=2)
    x = torch.randn(4, 3)
    V = sample_directions(2, 3, 4, 3, generator=torch.Generator().manual_seed(7))
    assert derivative_method(net, 3, d=3, m=1, n_sets=2) == "jvp"
    full = _full_stack(net, x, 3, create_graph=True)
    _assert_same(net, derivatives(net, x, 3, directions=V), directional_stack(full, V))
    # and the residual's own contribution: D(x₀) = e₀, so Du[v] − D(MLP)[v] = v₀
    mlp_part = _full_stack(lambda z: MLP.forward(net, z), x, 1, create_graph=False)[1]
    torch.testing.assert_close(
        full[1].detach() - mlp_part, torch.tensor([1.0, 0.0, 0.0]).expand(4, 1, 3)
    )
    h = _Hooked().double()
    assert derivative_method(h, 3, d=3, m=1, n_sets=1) == "jet"
    _assert_same(h, derivatives(h, x, 3, directions=V), [h(x)] + _jvp_directional(h, x, 3, V, True))
