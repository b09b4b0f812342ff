"""derivatives() options and corner cases that mutation testing found unchecked: sampled directions'
generator/dtype, outputs that do not depend on x, linear models (zero Hessian) on the
Hessian-vector path, and direction tensors of another dtype."""

import pytest
import torch
from torch import nn

from sobolev import derivatives
from sobolev.derivatives import derivative_method, sample_directions

pytestmark = pytest.mark.usefixtures("double")


def test_sample_directions_follow_the_generator_and_dtype():
    got = sample_directions(2, 3, 4, 5, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(got, torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(7)), rtol=0, atol=0)
    low = sample_directions(2, 1, 4, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
    assert low.dtype == torch.float32 and low.shape == (2, 1, 4, 5)
    assert sample_directions(1, 1, 2, 3, dtype=torch.float32, device="cpu").dtype == torch.float32


@pytest.mark.parametrize("order", [1, 2])
def test_output_columns_that_do_not_depend_on_x(order):
    """A constant output column has zero derivatives (its backward reaches no x)."""
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    f = lambda z: torch.stack([torch.sin(z[:, 0]) * z[:, 1], torch.full_like(z[:, 0], 2.0).detach()], -1)  # noqa: E731
    stack = derivatives(f, x, order, create_graph=False)
    assert stack[1][:, 1].abs().max() == 0
    torch.testing.assert_close(stack[1][:, 0, 0], torch.cos(x[:, 0]) * x[:, 1])
    torch.testing.assert_close(stack[1][:, 0, 1], torch.sin(x[:, 0]))
    if order == 2:
        assert stack[2][:, 1].abs().max() == 0
        torch.testing.assert_close(stack[2][:, 0, 0, 1], torch.cos(x[:, 0]))


def test_linear_model_on_the_hessian_vector_path():
    """m = 1, order 2 with directions: gradient then Hessian-vector products; a linear model's are 0."""
    torch.manual_seed(0)
    lin = nn.Linear(3, 1)
    f = lambda z: lin(z)  # noqa: E731 — a plain callable: the reverse (HVP) path, not the jet
    x = torch.randn(5, 3)
    V = torch.randn(2, 2, 5, 3)
    assert derivative_method(f, 2, d=3, m=1, n_sets=2) == "reverse"
    stack = derivatives(f, x, 2, directions=V)
    torch.testing.assert_close(stack[1], torch.einsum("d,sbd->bs", lin.weight[0], V[:, 0]).unsqueeze(1))
    assert stack[2].shape == (5, 1, 2) and stack[2].abs().max() == 0


def test_direction_tensor_is_cast_to_x():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    V = torch.randn(2, 1, 5, 3)
    got = derivatives(net, x, 1, directions=V.float())
    assert got.directions.dtype == torch.float64 and got[1].dtype == torch.float64
    torch.testing.assert_close(got[1], derivatives(net, x, 1, directions=V.float().double())[1], rtol=1e-12, atol=0)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_vmapped_backward_path_equals_the_loop(monkeypatch, order):
    """The one-vmapped-backward path (used off CPU) gives the CPU loop's full stack, and parameter gradients."""
    import sys

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))
    x = torch.randn(4, 3)
    loop = derivatives(net, x, order)
    monkeypatch.setattr(sys.modules["sobolev.derivatives"], "LOOP_BACKWARD_DEVICES", ())
    batched = derivatives(net, x, order)
    for a, b in zip(batched, loop):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    ga = torch.autograd.grad(sum((t**2).sum() for t in batched), list(net.parameters()))
    gb = torch.autograd.grad(sum((t**2).sum() for t in loop), list(net.parameters()))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("m", [1, 2])
def test_full_hessian_of_a_linear_model_is_zero(m):
    """Du of a linear model does not depend on x: the backward of each of its m·d entries reaches no x."""
    torch.manual_seed(0)
    lin = nn.Linear(3, m)
    x = torch.randn(4, 3)
    for f in (lin, lambda z: lin(z)):
        stack = derivatives(f, x, 3)
        torch.testing.assert_close(stack[1], lin.weight.detach().expand(4, m, 3))
        assert stack[2].shape == (4, m, 3, 3) and stack[2].abs().max() == 0
        assert stack[3].shape == (4, m, 3, 3, 3) and stack[3].abs().max() == 0
