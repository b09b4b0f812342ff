"""Tests of sobolev.derivatives: derivative stacks against symbolic derivatives (SymPy),
torch.func.hessian and statistics; partial derivatives; options, corner cases, argument checks and
the implementation path actually taken."""

import itertools
import math
import re
import sys

import numpy as np
import pytest
import sympy as sp
import torch
from torch import nn
from torch.func import hessian, vmap

from sobolev import MLP, derivatives, directional_stack, seed_everything
from sobolev.derivatives import (
    derivative_method,
    partial_derivatives,
    sample_directions,
)

pytestmark = pytest.mark.usefixtures("double")


# --------------------------------------------------------------------------- reference values


def _case(d: int, m: int):
    """A polynomial/trigonometric map R^d → R^m as SymPy expressions and as a torch function."""
    xs = sp.symbols(f"x0:{d}")
    pool = [
        sp.sin(xs[0]) * xs[-1] ** 2 + xs[0] ** 3,
        sp.cos(2 * xs[-1]) * xs[0] + sp.prod(xs) + xs[0] ** 4 / 3,
    ]
    exprs = pool[:m]
    funcs = [sp.lambdify(xs, e, modules=[{"sin": torch.sin, "cos": torch.cos}]) for e in exprs]

    def f(x):
        cols = [fn(*x.unbind(-1)) for fn in funcs]
        return torch.stack(
            [c if torch.is_tensor(c) else torch.full_like(x[:, 0], float(c)) for c in cols], -1
        )

    return xs, exprs, f


def _symbolic_stack(xs, exprs, x: torch.Tensor, order: int):
    pts = x.numpy()
    out = []
    for j in range(order + 1):
        t = np.zeros((len(pts), len(exprs)) + (len(xs),) * j)
        for c, e in enumerate(exprs):
            for idx in itertools.product(range(len(xs)), repeat=j):
                de = sp.diff(e, *[xs[i] for i in idx]) if j else e
                fn = sp.lambdify(xs, de, "numpy")
                t[(slice(None), c) + idx] = np.broadcast_to(fn(*pts.T), len(pts))
        out.append(torch.from_numpy(t))
    return out


@pytest.mark.parametrize("d,m", [(1, 1), (1, 2), (3, 1), (3, 2)])
def test_full_stack_matches_symbolic(d, m):
    xs, exprs, f = _case(d, m)
    x = torch.randn(7, d, generator=torch.Generator().manual_seed(d * 10 + m))
    got = derivatives(f, x, 3, create_graph=False)
    want = _symbolic_stack(xs, exprs, x, 3)
    assert len(got) == 4
    for j, (g, w) in enumerate(zip(got, want)):
        assert g.shape == (7, m) + (d,) * j
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_mlp_hessian_matches_torch_func():
    torch.manual_seed(0)
    net = MLP(4, 2, width=16, depth=2, activation="tanh").double()
    x = torch.randn(5, 4)
    u, _du, d2u = derivatives(net, x, 2, create_graph=False)
    ref_h = vmap(hessian(lambda z: net(z.unsqueeze(0)).squeeze(0)))(x)
    torch.testing.assert_close(d2u, ref_h)
    torch.testing.assert_close(u, net(x))


def test_partials_match_full_entries():
    _xs, _exprs, f = _case(3, 2)
    x = torch.randn(6, 3)
    full = derivatives(f, x, 3, create_graph=False)
    alphas = [(1, 0, 0), (0, 2, 0), (1, 1, 1), (0, 0, 0), (2, 0, 1)]
    got = partial_derivatives(f, x, alphas, create_graph=False)
    assert list(got) == alphas
    for a in alphas:
        idx = tuple(i for i, c in enumerate(a) for _ in range(c))
        want = full[sum(a)][(slice(None), slice(None)) + idx]
        torch.testing.assert_close(got[a], want)


def test_directional_equals_contracted_full_stack():
    torch.manual_seed(1)
    net = MLP(3, 2, width=8, depth=2, activation="gelu").double()
    x = torch.randn(5, 3)
    V = sample_directions(4, 3, 5, 3, generator=torch.Generator().manual_seed(2))
    dirs = derivatives(net, x, 3, directions=V, create_graph=False)
    full = directional_stack(derivatives(net, x, 3, create_graph=False), V)
    assert dirs.directional and dirs[1].shape == (5, 2, 4)
    for a, b in zip(dirs, full):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_directional_estimator_is_unbiased(order):
    """E over directions of (Dʲe[v₁..vⱼ])² equals ‖Dʲe‖²_F; tolerance from the standard error."""
    _, _, f = _case(3, 2)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(order))
    S = 20000
    stack = derivatives(
        f,
        x,
        order,
        directions=S,
        generator=torch.Generator().manual_seed(10 + order),
        create_graph=False,
    )
    samples = (stack[order] ** 2).sum(
        1
    )  # (B, S): squared directional derivative, summed over outputs
    full = derivatives(f, x, order, create_graph=False)[order]
    target = (full**2).reshape(4, -1).sum(1)
    mean, se = samples.mean(1), samples.std(1) / S**0.5
    z = (mean - target) / se
    assert z.abs().max() < 4.5, (mean, target, se)
    if order == 2:
        # one direction used twice is biased: E (vᵀAv)² = 2‖A‖²_F + (tr A)²
        v = torch.randn(S, 3, generator=torch.Generator().manual_seed(3))
        A = full[0, 0]
        q = torch.einsum("si,ij,sj->s", v, A, v) ** 2
        want = 2 * (A**2).sum() + A.trace() ** 2
        assert abs(q.mean() - want) < 4.5 * q.std() / S**0.5
        assert abs(q.mean() - (A**2).sum()) > 10 * q.std() / S**0.5


def test_graph_only_when_asked():
    net = MLP(2, 1, width=8, depth=1).double()
    x = torch.randn(3, 2)
    s = derivatives(net, x, 2, create_graph=False)
    assert not any(t.requires_grad for t in s)
    s = derivatives(net, x, 2)
    s[2].sum().backward()
    assert net.net[0].weight.grad is not None and net.net[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert not derivatives(net, x, 1)[1].requires_grad


def test_constant_higher_orders_are_zero():
    A = torch.randn(3, 2)
    s = derivatives(lambda x: x @ A, torch.randn(4, 3), 3, create_graph=False)
    assert s[1].shape == (4, 2, 3)
    torch.testing.assert_close(s[1], A.T.expand(4, 2, 3))
    assert s[2].abs().max() == 0 and s[3].abs().max() == 0


def test_bad_input_messages():
    f = lambda x: x.sum(-1, keepdim=True)
    with pytest.raises(ValueError, match="order"):
        derivatives(f, torch.randn(3, 2), -1)
    with pytest.raises(ValueError, match=r"shape \(batch, d\)"):
        derivatives(f, torch.randn(3), 1)
    with pytest.raises(ValueError, match="does not depend differentiably"):
        derivatives(
            lambda x: torch.from_numpy(x.detach().numpy().sum(1, keepdims=True)),
            torch.randn(3, 2),
            1,
        )
    with pytest.raises(ValueError, match="multi-indices"):
        partial_derivatives(f, torch.randn(3, 2), [(1, 0, 0)])
    with pytest.raises(ValueError, match="directions tensor"):
        derivatives(f, torch.randn(3, 2), 2, directions=torch.randn(4, 1, 3, 2))
    with pytest.raises(ValueError, match=r"\(batch, m\)"):
        derivatives(lambda x: x.sum(), torch.randn(3, 2), 1)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize(
    "call",
    [
        lambda model, x: derivatives(model, x, 1),
        lambda model, x: derivatives(model, x, 1, directions=2),
        lambda model, x: partial_derivatives(model, x, [(1,)]),
    ],
)
def test_derivatives_reject_non_finite_points(bad, call):
    x = torch.linspace(-2, 2, 16, dtype=torch.float64).unsqueeze(1)
    x[3, 0] = bad
    seed_everything(0)
    model = MLP(1, 1, width=8, depth=2).double()
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        call(model, x)


def _count_backward_vectors(monkeypatch):
    count = [0]
    real = torch.autograd.grad

    def grad(outputs, inputs, grad_outputs=None, **kw):
        count[0] += grad_outputs.shape[0] if kw.get("is_grads_batched") else 1
        return real(outputs, inputs, grad_outputs=grad_outputs, **kw)

    monkeypatch.setattr(torch.autograd, "grad", grad)
    return count


@pytest.mark.parametrize("d,S", [(1, 4), (3, 5), (3, 2)])
def test_order2_directions_use_min_S_d_products_and_match_the_hessian(monkeypatch, d, S):
    seed_everything(d)
    model = MLP(d, 1, width=8, depth=2).double()
    x = torch.randn(5, d, dtype=torch.float64)
    V = torch.randn(S, 2, 5, d, dtype=torch.float64)
    count = _count_backward_vectors(monkeypatch)
    stack = derivatives(model, x, 2, directions=V, create_graph=False)
    assert count[0] == 1 + min(S, d)  # the gradient, then min(S, d) Hessian-vector products
    H = vmap(hessian(lambda p: model(p[None])[0, 0]))(x)  # (B, d, d), an independent reference
    assert torch.allclose(
        stack[2][:, 0], torch.einsum("bij,sbi,sbj->bs", H, V[:, 0], V[:, 1]), atol=1e-10
    )


# --------------------------------------------------------------------------- options and paths


def test_sample_directions_follow_the_generator_and_dtype():
    got = sample_directions(2, 3, 4, 5, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(
        got, torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(7)), rtol=0, atol=0
    )
    low = sample_directions(
        2, 1, 4, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float32
    )
    assert low.dtype == torch.float32 and low.shape == (2, 1, 4, 5)
    assert sample_directions(1, 1, 2, 3, dtype=torch.float32, device="cpu").dtype == torch.float32


@pytest.mark.parametrize("order", [1, 2])
def test_output_columns_that_do_not_depend_on_x(order):
    """A constant output column has zero derivatives (its backward reaches no x)."""
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    f = lambda z: torch.stack(
        [torch.sin(z[:, 0]) * z[:, 1], torch.full_like(z[:, 0], 2.0).detach()], -1
    )
    stack = derivatives(f, x, order, create_graph=False)
    assert stack[1][:, 1].abs().max() == 0
    torch.testing.assert_close(stack[1][:, 0, 0], torch.cos(x[:, 0]) * x[:, 1])
    torch.testing.assert_close(stack[1][:, 0, 1], torch.sin(x[:, 0]))
    if order == 2:
        assert stack[2][:, 1].abs().max() == 0
        torch.testing.assert_close(stack[2][:, 0, 0, 1], torch.cos(x[:, 0]))


def test_linear_model_on_the_hessian_vector_path():
    """m = 1, order 2 with directions: gradient then Hessian-vector products; a linear model's
    are 0."""
    torch.manual_seed(0)
    lin = nn.Linear(3, 1)
    f = lambda z: lin(z)
    x = torch.randn(5, 3)
    V = torch.randn(2, 2, 5, 3)
    assert derivative_method(f, 2, d=3, m=1, n_sets=2) == "reverse"
    stack = derivatives(f, x, 2, directions=V)
    torch.testing.assert_close(
        stack[1], torch.einsum("d,sbd->bs", lin.weight[0], V[:, 0]).unsqueeze(1)
    )
    assert stack[2].shape == (5, 1, 2) and stack[2].abs().max() == 0


def test_direction_tensor_is_cast_to_x():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    V = torch.randn(2, 1, 5, 3)
    got = derivatives(net, x, 1, directions=V.float())
    assert got.directions.dtype == torch.float64 and got[1].dtype == torch.float64
    torch.testing.assert_close(
        got[1], derivatives(net, x, 1, directions=V.float().double())[1], rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("order", [1, 2, 3])
def test_vmapped_backward_path_equals_the_loop(monkeypatch, order):
    """The one-vmapped-backward path (used off CPU) gives the CPU loop's full stack, and
    parameter gradients."""
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


@pytest.mark.parametrize("vmapped", [False, True])
@pytest.mark.parametrize("m,d", [(1, 1), (1, 3), (2, 3)])
def test_full_hessian_of_a_linear_model_is_zero(monkeypatch, m, d, vmapped):
    """Du of a linear model does not depend on x: the backward of each of its m·d entries
    reaches no x (one backward when m·d = 1, else a loop or, as off CPU, one vmapped backward)."""
    if vmapped:
        monkeypatch.setattr(sys.modules["sobolev.derivatives"], "LOOP_BACKWARD_DEVICES", ())
    torch.manual_seed(0)
    lin = nn.Linear(d, m)
    x = torch.randn(4, d)
    for f in (lin, lambda z: lin(z)):
        stack = derivatives(f, x, 3)
        torch.testing.assert_close(stack[1], lin.weight.detach().expand(4, m, d))
        assert stack[2].shape == (4, m, d, d) and stack[2].abs().max() == 0
        assert stack[3].shape == (4, m, d, d, d) and stack[3].abs().max() == 0


_F = lambda z: z.sum(-1, keepdim=True)
_X = torch.zeros(3, 2)

MESSAGES = [  # (call, exception, the essential words of the message)
    (lambda: derivatives(_F, [[0.0, 1.0]]), TypeError, r"x must be a torch.Tensor.*got list"),
    (
        lambda: derivatives(_F, torch.zeros(3)),
        ValueError,
        r"x must have shape \(batch, d\).*\(3,\)",
    ),
    (
        lambda: derivatives(_F, torch.zeros(1, 3, 2)),
        ValueError,
        r"x must have shape \(batch, d\).*\(1, 3, 2\)",
    ),
    (
        lambda: derivatives(_F, torch.zeros(3, 2, dtype=torch.int64)),
        ValueError,
        "x must be a floating-point tensor.*int64",
    ),
    (lambda: derivatives(_F, torch.tensor([[0.0, float("nan")]])), ValueError, "x contains NaN"),
    (lambda: derivatives(_F, torch.tensor([[float("-inf"), 0.0]])), ValueError, "x contains.*Inf"),
    (lambda: derivatives(_F, _X, -1), ValueError, "order must be a non-negative integer.*-1"),
    (lambda: derivatives(_F, _X, 1.0), ValueError, "order must be a non-negative integer.*1.0"),
    (lambda: derivatives(_F, _X, "1"), ValueError, "order must be a non-negative integer.*'1'"),
    (lambda: derivatives(_F, _X, True), ValueError, "order must be a non-negative integer.*True"),
    (
        lambda: derivatives(lambda z: 1.0, _X),
        TypeError,
        r"f\(x\) must return a torch.Tensor.*float",
    ),
    (
        lambda: derivatives(lambda z: z.sum(), _X),
        ValueError,
        r"f\(x\) must return shape \(batch, m\) = \(3, m\), got \(\)",
    ),
    (
        lambda: derivatives(lambda z: z[:2], _X),
        ValueError,
        r"f\(x\) must return shape \(batch, m\).*\(2, 2\)",
    ),
    (
        lambda: derivatives(lambda z: z[:, :, None], _X),
        ValueError,
        r"f\(x\) must return shape \(batch, m\).*\(3, 2, 1\)",
    ),
    (
        lambda: derivatives(lambda z: z.sum(), _X, 2, directions=2),
        ValueError,
        r"f\(x\) must return shape \(batch, m\)",
    ),
    (
        lambda: derivatives(lambda z: torch.zeros(3, 1), _X),
        ValueError,
        "does not depend differentiably on x",
    ),
    (
        lambda: derivatives(lambda z: torch.zeros(3, 1, requires_grad=True) * 1, _X, 2),
        ValueError,
        "does not depend differentiably on x",
    ),
    (
        lambda: partial_derivatives(_F, _X, [(1, 0, 0)]),
        ValueError,
        r"partials must be multi-indices of 2 non-negative integers.*\(1, 0, 0\)",
    ),
    (
        lambda: partial_derivatives(_F, _X, [(0, 1), (1, -1)]),
        ValueError,
        r"partials must be multi-indices of 2 non-negative integers.*\(1, -1\)",
    ),
    (lambda: partial_derivatives(_F, _X, []), ValueError, "partials must be a non-empty"),
    (
        lambda: partial_derivatives(_F, torch.zeros(3), [(1,)]),
        ValueError,
        r"x must have shape \(batch, d\)",
    ),
    (
        lambda: derivatives(_F, _X, 1, directions=0),
        ValueError,
        "directions must be a positive number of direction sets.*0",
    ),
    (
        lambda: derivatives(_F, _X, 1, directions=True),
        TypeError,
        "directions must be None, an int or a Tensor.*bool",
    ),
    (
        lambda: derivatives(_F, _X, 1, directions=2.0),
        TypeError,
        "directions must be None, an int or a Tensor.*float",
    ),
    (
        lambda: derivatives(_F, _X, 2, directions=torch.zeros(4, 1, 3, 2)),
        ValueError,
        r"directions tensor must have shape \(S, k≥2, B=3, d=2\).*\(4, 1, 3, 2\)",
    ),
    (
        lambda: derivatives(_F, _X, 1, directions=torch.zeros(4, 1, 2, 2)),
        ValueError,
        r"directions tensor must have shape \(S, k≥1, B=3, d=2\).*\(4, 1, 2, 2\)",
    ),
    (
        lambda: derivatives(_F, _X, 1, directions=torch.zeros(4, 1, 3)),
        ValueError,
        r"directions tensor must have shape.*\(4, 1, 3\)",
    ),
    (
        lambda: derivatives(_F, _X, 1, directions=torch.zeros(4, 1, 3, 3)),
        ValueError,
        r"directions tensor must have shape.*\(4, 1, 3, 3\)",
    ),
    (
        lambda: derivatives(_F, _X, 1, directions=torch.zeros(4, 1, 5)),
        ValueError,
        r"directions tensor must have shape.*\(4, 1, 5\)",
    ),
    (
        lambda: derivatives(_F, _X, 1, directions=torch.zeros(2, 4, 1, 3, 2)),
        ValueError,
        r"directions tensor must have shape.*\(2, 4, 1, 3, 2\)",
    ),
    (
        lambda: sample_directions(0, 1, 3, 2),
        ValueError,
        "directions must be a positive number of direction sets.*0",
    ),
    (
        lambda: directional_stack(
            (_X[:, :1], torch.zeros(3, 1, 2), torch.zeros(3, 1, 2, 2)), torch.zeros(4, 1, 3, 2)
        ),
        ValueError,
        "directions hold 1 directions per set but the stack has order 2",
    ),
    (
        lambda: directional_stack((_X[:, :1], torch.zeros(3, 1, 5)), torch.zeros(4, 1, 3, 2)),
        ValueError,
        r"stack entry of order 1 must have shape \(B, m, d\) = \(3, m, 2\).*\(3, 1, 5\)",
    ),
    (
        lambda: directional_stack(
            (_X[:, :1], torch.zeros(3, 1, 2), torch.zeros(3, 1, 2, 3)), torch.zeros(4, 2, 3, 2)
        ),
        ValueError,
        r"stack entry of order 2 must have shape \(B, m, d, d\) = \(3, m, 2, 2\).*\(3, 1, 2, 3\)",
    ),
    (
        lambda: directional_stack((_X[:, :1], torch.zeros(2, 1, 2)), torch.zeros(4, 1, 3, 2)),
        ValueError,
        r"stack entry of order 1 must have shape.*\(2, 1, 2\)",
    ),
]


@pytest.mark.parametrize("call,exc,pattern", MESSAGES)
def test_error_messages(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_partials_are_a_separate_function():
    """derivatives() returns stacks only: selected partials come from partial_derivatives."""
    with pytest.raises(TypeError, match="partials"):
        derivatives(_F, _X, 1, partials=[(1, 0)])


def test_sample_directions_on_another_device_than_the_generator():
    """A generator on one device and a requested other device: drawn on the generator's, then
    moved."""
    want = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
    got = sample_directions(
        2, 3, 4, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float32, device="cpu:0"
    )  # a device that differs from the generator's torch.device("cpu")
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    meta = sample_directions(2, 3, 4, 5, generator=torch.Generator().manual_seed(7), device="meta")
    assert meta.device.type == "meta" and meta.shape == (2, 3, 4, 5) and meta.dtype == torch.float64
    plain = sample_directions(2, 1, 4, 5, device="meta")
    assert plain.device.type == "meta" and plain.shape == (2, 1, 4, 5)


def test_derivative_method_names():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    f = lambda z: net(z)
    assert derivative_method(net, 0, d=3, m=2) == "forward"
    assert derivative_method(net, 0, d=3, m=2, n_sets=1) == "forward"
    assert derivative_method(net, 3, d=3, m=2) == "reverse"
    assert derivative_method(f, 1, d=3, m=2, n_sets=2) == "reverse"
    assert derivative_method(f, 1, d=3, m=2, n_sets=1) == "jvp"
    assert derivative_method(net, 1, d=3, m=2, n_sets=1) == "jet"
    assert derivative_method(f, 2, d=3, m=1, n_sets=5) == "reverse"
    assert derivative_method(net, 2, d=3, m=2, n_sets=5) == "jet"
    assert derivative_method(f, 3, d=3, m=1, n_sets=5) == "jvp"


def test_stack_to_passes_keyword_arguments():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    s = derivatives(torch.sin, x, 1, directions=2, generator=torch.Generator().manual_seed(1))
    low = s.to(dtype=torch.float32)
    assert all(t.dtype == torch.float32 for t in low) and low.directions.dtype == torch.float32
    torch.testing.assert_close(low[1], s[1].float())
    assert derivatives(torch.sin, x, 1).to(dtype=torch.float32)[1].dtype == torch.float32


def _scaled_sin():
    w = torch.tensor(2.0, requires_grad=True)
    return w, lambda z: torch.sin(w * z).sum(-1, keepdim=True)


@pytest.mark.parametrize("B", [0, 1, 3])
def test_default_create_graph(B):
    """The graph is kept by default exactly when f has something to differentiate (order 0 at B = 0:
    higher orders fail on an empty batch, see the triage notes)."""
    x = torch.randn(B, 2, generator=torch.Generator().manual_seed(0))
    k = 1 if B else 0
    w, f = _scaled_sin()  # a parameter hidden in a closure: found by evaluating f on one row
    s = derivatives(f, x, k)
    assert s[k].requires_grad == (B > 0)  # an empty batch has no row to probe
    if B:
        (gw,) = torch.autograd.grad(s[1].sum(), w)
        torch.testing.assert_close(gw, (torch.cos(2 * x) - 2 * x * torch.sin(2 * x)).sum())
    assert not any(
        t.requires_grad for t in derivatives(torch.sin, x, k)
    )  # a parameter-free target: constant
    net = nn.Linear(2, 1)
    assert all(
        t.requires_grad for t in derivatives(net, x, k)
    )  # a module with parameters, even at B = 0
    xg = x.clone().requires_grad_(True)
    s = derivatives(torch.sin, xg, k)  # an x that requires grad: the graph to x is kept
    assert s[k].requires_grad
    if B:
        (gx,) = torch.autograd.grad(s[1].sum(), xg)
        torch.testing.assert_close(gx, -torch.sin(x))


def test_default_create_graph_with_zero_input_dimensions():
    """d = 0: the probe row still finds a parameter (the result is empty, its graph kept)."""
    w, f = _scaled_sin()
    s = derivatives(lambda z: f(z) + w, torch.zeros(3, 0), 1)
    assert s[1].shape == (3, 1, 0) and s[1].requires_grad


class _Counts:
    """Counts top-level forward calls of a module (the jet runs its layers, never the module itself)
    and ``torch.autograd.grad`` calls (reverse mode; nested jvp and the jet make none)."""

    def __init__(self, monkeypatch, net):
        self.forward = self.grad = 0
        net.register_forward_hook(lambda *_: self._add("forward"))
        grad = torch.autograd.grad
        monkeypatch.setattr(
            torch.autograd, "grad", lambda *a, **k: self._add("grad") or grad(*a, **k)
        )

    def _add(self, name):
        setattr(self, name, getattr(self, name) + 1)

    def path(self):
        return "jet" if self.forward == 0 else ("reverse" if self.grad else "jvp")


def test_hessian_vector_products_use_min_s_d_backward_passes(monkeypatch):
    """m = 1, order 2: one backward for the gradient, then min(S, d) Hessian-vector products."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
    x = torch.randn(4, 3)
    for S in (2, 3, 7):
        V = torch.randn(S, 2, 4, 3)
        want = directional_stack(derivatives(net, x, 2, create_graph=False), V)[2]
        counts = _Counts(monkeypatch, net)
        got = derivatives(lambda z: net(z), x, 2, directions=V, create_graph=False)
        assert counts.grad == 1 + min(S, 3)
        torch.testing.assert_close(got[2], want)


@pytest.mark.parametrize("S", [2, 5])
def test_hessian_vector_path_in_float32_and_detached(S):
    """x and f in float32 under a float64 default; create_graph=False gives detached results."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).float()
    x = torch.randn(4, 3, dtype=torch.float32)
    V = torch.randn(S, 2, 4, 3, dtype=torch.float32)
    got = derivatives(net, x, 2, directions=V, create_graph=False)
    assert all(t.dtype == torch.float32 and not t.requires_grad for t in got)
    want = directional_stack(
        derivatives(net.double(), x.double(), 2, create_graph=False), V.double()
    )
    torch.testing.assert_close(got[2], want[2].float(), rtol=1e-4, atol=1e-5)


def test_forward_mode_paths_detach_without_create_graph():
    """Nested jvp (directions) and partials with create_graph=False: no graph to f's parameters."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    f = lambda z: net(z)
    x = torch.randn(3, 2)
    assert derivative_method(f, 3, d=2, m=1, n_sets=2) == "jvp"
    assert not any(t.requires_grad for t in derivatives(f, x, 3, directions=2, create_graph=False))
    assert all(t.requires_grad for t in derivatives(f, x, 3, directions=2)[1:])
    parts = partial_derivatives(f, x, [(1, 0), (1, 1)], create_graph=False)
    assert not any(t.requires_grad for t in parts.values())
    assert all(t.requires_grad for t in partial_derivatives(f, x, [(1, 0), (1, 1)]).values())


def test_partials_keep_the_graph_to_x():
    """With an x that requires grad, ∂^α f(x) is differentiable in x:
    ∂/∂x₀ of ∂²(sin x₀ · x₁)/∂x₀∂x₁ = cos x₀ is −sin x₀."""
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    f = lambda z: (torch.sin(z[:, 0]) * z[:, 1]).unsqueeze(1)
    got = partial_derivatives(f, x, [(1, 1)])[(1, 1)]
    torch.testing.assert_close(got, torch.cos(x[:, :1]).detach())
    (gx,) = torch.autograd.grad(got.sum(), x)
    torch.testing.assert_close(gx, torch.stack([-torch.sin(x[:, 0]), torch.zeros(4)], 1).detach())


@pytest.mark.parametrize("plain", [False, True])
@pytest.mark.parametrize(
    "order,m,S,k,module_path",
    [
        (1, 2, 3, 1, "reverse"),  # m ≤ S: contract the full gradient
        (1, 2, 1, 1, "jet"),
        (1, 2, 1, 3, "jet"),
        (2, 1, 2, 2, "reverse"),  # m = 1: Hessian-vector products
        (2, 2, 2, 2, "jet"),
        (3, 1, 2, 3, "jet"),
    ],
)
def test_the_method_derivative_method_names_is_the_one_used(
    monkeypatch, order, m, S, k, module_path, plain
):
    """derivatives() takes the path derivative_method() names (a plain callable: jvp for the jet's
    cases), and every path gives the full stack contracted with the directions."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, m))
    f = (lambda z: net(z)) if plain else net
    want_path = "jvp" if plain and module_path == "jet" else module_path
    assert derivative_method(f, order, d=3, m=m, n_sets=S) == want_path
    x = torch.randn(4, 3)
    V = torch.randn(S, k, 4, 3)
    want = directional_stack(derivatives(net, x, order, create_graph=False), V)
    counts = _Counts(monkeypatch, net)
    got = derivatives(f, x, order, directions=V, create_graph=False)
    assert counts.path() == want_path
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_full_stack_backward_passes(monkeypatch):
    """Full stacks: one backward per m·dʲ⁻¹ outputs and order on CPU (a loop), one per order
    when vmapped."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    x = torch.randn(4, 3)
    counts = _Counts(monkeypatch, net)
    loop = derivatives(net, x, 2, create_graph=False)
    assert counts.grad == 2 + 2 * 3
    monkeypatch.setattr(sys.modules["sobolev.derivatives"], "LOOP_BACKWARD_DEVICES", ())
    counts.grad = 0
    batched = derivatives(net, x, 2, create_graph=False)
    assert counts.grad == 2
    for a, b in zip(batched, loop):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("plain", [False, True])
def test_a_chain_of_activations_only(plain):
    """A Sequential of activations only (output width d, from no Linear layer) by the jet, and as a
    plain callable by nested jvp: tanh′ = 1 − tanh², tanh″ = −2 tanh (1 − tanh²)."""
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    V = torch.randn(3, 2, 4, 2, generator=torch.Generator().manual_seed(1))
    net = nn.Sequential(nn.Tanh())
    f = (lambda z: net(z)) if plain else net
    assert derivative_method(f, 2, d=2, m=2, n_sets=3) == ("jvp" if plain else "jet")
    got = derivatives(f, x, 2, directions=V)
    t = torch.tanh(x)
    torch.testing.assert_close(got[1], ((1 - t**2).unsqueeze(-1) * V[:, 0].permute(1, 2, 0)))
    torch.testing.assert_close(
        got[2], (-2 * t * (1 - t**2)).unsqueeze(-1) * (V[:, 0] * V[:, 1]).permute(1, 2, 0)
    )


def test_derivatives_defaults_and_order_zero():
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    s = derivatives(torch.sin, x)
    assert s.order == 1 and not s.directional
    torch.testing.assert_close(s[1], torch.diag_embed(torch.cos(x)))
    (u,) = derivatives(torch.sin, x, 0)
    torch.testing.assert_close(u, torch.sin(x))
    (u,) = derivatives(torch.sin, x, 0, directions=2)
    torch.testing.assert_close(u, torch.sin(x))
    # an explicit create_graph=True keeps a graph where there is one ...
    assert derivatives(torch.sin, x, 1, create_graph=True)[1].requires_grad
    # ... but a parameter-free function of a constant x has none at order 0
    assert not derivatives(torch.sin, x, 0, create_graph=True)[0].requires_grad
    net = nn.Linear(2, 1)
    (u,) = derivatives(net, x, 0, directions=2)
    assert u.requires_grad
    (gw,) = torch.autograd.grad(u.sum(), net.weight)
    torch.testing.assert_close(gw, x.sum(0, keepdim=True))


@pytest.mark.parametrize("order", [0, 1, 3])
def test_sampled_directions_follow_generator_dtype_and_order(order):
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    s = derivatives(torch.sin, x, order, directions=2, generator=torch.Generator().manual_seed(5))
    k = max(order, 1)
    want = torch.randn(2, k, 4, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float32)
    assert s.directions.dtype == torch.float32
    torch.testing.assert_close(s.directions, want, rtol=0, atol=0)


def test_directional_stack_keeps_the_graph_to_x():
    """Order-1 directions of a parameter-free f at an x that requires grad:
    d/dx Σ cos(x)·v = −sin(x)·Σv."""
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    V = torch.randn(2, 1, 4, 3, generator=torch.Generator().manual_seed(1))
    f = lambda z: torch.sin(z).sum(-1)
    s = derivatives(f, x, 1, directions=V)
    torch.testing.assert_close(
        s[1], torch.einsum("bd,sbd->bs", torch.cos(x), V[:, 0]).unsqueeze(1).detach()
    )
    (gx,) = torch.autograd.grad(s[1].sum(), x)
    torch.testing.assert_close(gx, (-torch.sin(x) * V[:, 0].sum(0)).detach())


def test_directional_stack_of_a_high_order():
    """Order 15 at d = 1: Dʲu[v₁, …, vⱼ] = Dʲu · v₁⋯vⱼ (einsum needs 15 letters besides b, c, s)."""
    g = torch.Generator().manual_seed(0)
    B, m, S, k = 2, 2, 3, 15
    stack = [torch.randn(B, m, generator=g)] + [
        torch.randn(B, m, *(1,) * j, generator=g) for j in range(1, k + 1)
    ]
    V = torch.randn(S, k, B, 1, generator=g)
    got = directional_stack(stack, V)
    for j in (1, 2, k):
        want = stack[j].reshape(B, m, 1) * V[:, :j, :, 0].prod(1).T.unsqueeze(1)
        torch.testing.assert_close(got[j], want)


@pytest.mark.parametrize("directions", [None, "order1", "order2"])
def test_an_empty_batch_gives_empty_stacks(directions):
    """B = 0 on every reverse-mode path (found by mutation triage: reshape(0, -1) failed)."""
    torch.manual_seed(0)
    net = MLP(3, 1, width=4, depth=1)
    x = torch.zeros(0, 3)
    if directions is None:
        stack = derivatives(net, x, 2)
        assert [tuple(t.shape) for t in stack] == [(0, 1), (0, 1, 3), (0, 1, 3, 3)]
    else:
        k = int(directions[-1])
        stack = derivatives(net, x, k, directions=torch.randn(2, k, 0, 3))
        assert [tuple(t.shape) for t in stack] == [(0, 1)] + [(0, 1, 2)] * k


@pytest.mark.parametrize("S,d,order", [(2, 2, 16), (3, 2, 17)])
def test_directional_stack_at_high_orders(S, d, order):
    """Orders past the lower-case letters (s was reused at order 16): one axis at a time as
    reference."""
    g = torch.Generator().manual_seed(0)
    D = torch.randn(1, 2, *([d] * order), generator=g, dtype=torch.float64)
    V = torch.randn(S, order, 1, d, generator=g, dtype=torch.float64)
    stack = [torch.zeros(1, 2, *([d] * i), dtype=torch.float64) for i in range(order)] + [D]
    want = D.unsqueeze(2).expand(1, 2, S, *([d] * order))
    for i in reversed(range(order)):
        want = (want * V[:, i].permute(1, 0, 2).reshape(1, 1, S, *([1] * i), d)).sum(-1)
    torch.testing.assert_close(directional_stack(stack, V)[order], want, rtol=1e-12, atol=1e-12)


def _refusal(fn):
    """The message of the ValueError ``fn()`` raises, or None."""
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None


def test_exponential_orders_are_refused_at_once_with_their_cost():
    """Order 16 of tanh took 15 s+ and gigabytes; now every exponential path refuses at once,
    saying the cost and how to proceed, and the limits are what they say."""
    x = torch.linspace(-1, 1, 8, dtype=torch.float64).unsqueeze(1)
    cases = [
        (lambda: derivatives(torch.tanh, x, order=16), r"order=16 > MAX_FULL_ORDER=10.*3×"),
        (
            lambda: derivatives(torch.tanh, x, order=9, directions=2),
            r"order 9 > MAX_NESTED_ORDER=8 take 2\^9 = 512 nested",
        ),
        (
            lambda: derivatives(MLP(1, 1, width=4, depth=1), x, order=12, directions=1),
            r"nested forward mode.*order 12 > MAX_NESTED_ORDER",
        ),
        (
            lambda: partial_derivatives(torch.tanh, x, [(1,), (9,)]),
            r"partial derivatives \(9,\) of order 9 > MAX_NESTED_ORDER",
        ),
        (
            lambda: derivatives(lambda t: t, torch.zeros(64, 40), order=5),
            r"shape \(64, 40\) with m=40 outputs hold .*e\+1\d entries.*directions=S.*partial",
        ),
    ]
    for call, match in cases:
        msg = _refusal(call)  # refused before any derivative is taken
        assert msg is not None, match
        assert re.search(match, msg) and "\n" not in msg, msg
        assert "module constant sobolev.derivatives" in msg or "directions=S" in msg
    # at the limits everything still works (and matches the closed forms of a polynomial)
    poly = lambda t: t**10 / math.factorial(10)
    top = derivatives(poly, x, order=10)[10]
    assert torch.allclose(top, torch.ones_like(top))
    (p8,) = partial_derivatives(lambda t: t**8, x, [(8,)]).values()
    assert torch.allclose(p8, torch.full_like(p8, math.factorial(8)))
    assert derivatives(torch.tanh, x, order=3, directions=2)[3].shape == (8, 1, 2)


def test_the_order_limits_can_be_raised(monkeypatch):
    import importlib

    Dm = importlib.import_module("sobolev.derivatives")  # the package's attribute is the function

    x = torch.linspace(-1, 1, 4, dtype=torch.float64).unsqueeze(1)
    monkeypatch.setattr(Dm, "MAX_FULL_ORDER", 2)
    monkeypatch.setattr(Dm, "MAX_NESTED_ORDER", 2)
    with pytest.raises(ValueError, match="MAX_FULL_ORDER=2"):
        derivatives(lambda t: t**3, x, order=3)
    with pytest.raises(ValueError, match="MAX_NESTED_ORDER=2"):
        partial_derivatives(lambda t: t**3, x, [(3,)])
    monkeypatch.setattr(Dm, "MAX_FULL_ORDER", 3)
    monkeypatch.setattr(Dm, "MAX_NESTED_ORDER", 3)
    assert derivatives(lambda t: t**3, x, order=3)[3].allclose(
        torch.full((4, 1, 1, 1, 1), 6.0, dtype=torch.float64)
    )
    assert partial_derivatives(lambda t: t**3, x, [(3,)])[(3,)].allclose(
        torch.full((4, 1), 6.0, dtype=torch.float64)
    )
    monkeypatch.setattr(Dm, "MAX_STACK_ENTRIES", 4 * 3)
    with pytest.raises(ValueError, match=r"= 16 entries, more than MAX_STACK_ENTRIES=12"):
        derivatives(torch.sin, torch.zeros(4, 1), order=3)
