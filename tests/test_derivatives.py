"""Derivative stacks against symbolic derivatives (SymPy), torch.func.hessian, and statistics."""

import itertools
import math

import numpy as np
import pytest
import sympy as sp
import torch
from torch.func import hessian, vmap

from sobolev import MLP, derivatives, directional_stack, seed_everything
from sobolev.derivatives import sample_directions

pytestmark = pytest.mark.usefixtures("double")


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
    u, du, d2u = derivatives(net, x, 2, create_graph=False)
    ref_h = vmap(hessian(lambda z: net(z.unsqueeze(0)).squeeze(0)))(x)
    torch.testing.assert_close(d2u, ref_h)
    torch.testing.assert_close(u, net(x))


def test_partials_match_full_entries():
    xs, exprs, f = _case(3, 2)
    x = torch.randn(6, 3)
    full = derivatives(f, x, 3, create_graph=False)
    alphas = [(1, 0, 0), (0, 2, 0), (1, 1, 1), (0, 0, 0), (2, 0, 1)]
    got = derivatives(f, x, 3, partials=alphas, create_graph=False)
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
        derivatives(f, torch.randn(3, 2), 2, partials=[(1, 0, 0)])
    with pytest.raises(ValueError, match="directions tensor"):
        derivatives(f, torch.randn(3, 2), 2, directions=torch.randn(4, 1, 3, 2))
    with pytest.raises(ValueError, match=r"\(batch, m\)"):
        derivatives(lambda x: x.sum(), torch.randn(3, 2), 1)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("kw", [{}, {"directions": 2}, {"partials": [(1,)]}])
def test_derivatives_reject_non_finite_points(bad, kw):
    x = torch.linspace(-2, 2, 16, dtype=torch.float64).unsqueeze(1)
    x[3, 0] = bad
    seed_everything(0)
    model = MLP(1, 1, width=8, depth=2).double()
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        derivatives(model, x, 1, **kw)


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
