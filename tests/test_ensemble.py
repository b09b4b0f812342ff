"""Ensembles (:class:`sobolev.models.Ensemble`): N members evaluated as one module on member-major
rows, against each member evaluated alone: values, full / directional / partial derivatives and
parameter gradients, for both methods ("layers": batched ``nn.Linear`` chains, the Taylor-mode jet
included; "vmap": any module); member(n) and load_members; the refusals.
Training many seeds at once (fit_ensemble): test_ensemble_training.py.
"""

import pytest
import torch
from torch import nn

from sobolev import derivatives, partial_derivatives, sample_directions
from sobolev.derivatives import derivative_method
from sobolev.models import MLP, Ensemble, EnsembleLinear, EnsembleMean, FourierFeatureMLP

pytestmark = pytest.mark.usefixtures("double")

N, B, D_IN, D_OUT = 3, 4, 2, 2


class Residual(nn.Module):
    """Not a chain: a skip connection, a product of branches and a fixed buffer (vmap only)."""

    def __init__(self, d_in=D_IN, d_out=D_OUT, width=6):
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, d_out)
        self.register_buffer("scale", 0.5 + torch.rand(d_in))

    def forward(self, x):
        h = torch.tanh(self.inp(x * self.scale))
        h = h + torch.sin(self.hidden(h)) * torch.tanh(h)
        return self.out(h)


def _mlp(activation="tanh"):
    return MLP(D_IN, D_OUT, width=6, depth=2, activation=activation)


def _fourier():
    return FourierFeatureMLP(D_IN, D_OUT, n_features=3, width=6, depth=1)


MAKERS = {
    "layers-mlp-tanh": (lambda: _mlp("tanh"), "layers"),
    "layers-mlp-sine": (lambda: _mlp("sine"), "layers"),
    "layers-sequential-no-bias": (
        lambda: nn.Sequential(nn.Linear(D_IN, 5, bias=False), nn.Softplus(), nn.Linear(5, D_OUT)),
        "layers",
    ),
    "vmap-mlp": (lambda: _mlp("tanh"), "vmap"),
    "vmap-fourier": (_fourier, "vmap"),
    "vmap-residual": (Residual, "vmap"),
}


def _members(key, n=N):
    make, method = MAKERS[key]
    models = []
    for s in range(n):
        torch.manual_seed(10 + s)
        models.append(make())
    return models, method


def _rows(n=N, b=B, d=D_IN, seed=0):
    return torch.randn(n * b, d, generator=torch.Generator().manual_seed(seed))


def _assert_cat_close(got, parts, dim=0):
    torch.testing.assert_close(got, torch.cat(parts, dim=dim), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("key", sorted(MAKERS))
def test_forward_is_each_members_forward(key):
    models, method = _members(key)
    ens = Ensemble(models, method=method)
    assert ens.method == method and ens.members == N
    x = _rows()
    _assert_cat_close(ens(x), [m(xn) for m, xn in zip(models, x.chunk(N))])


@pytest.mark.parametrize("key", sorted(MAKERS))
def test_ensemble_mean_is_the_mean_of_the_members_and_of_their_derivatives(key):
    models, method = _members(key)
    mean = EnsembleMean(models, method=method)
    x = _rows(n=1, b=5)
    for j, got in enumerate(derivatives(mean, x, 2)):
        parts = [derivatives(m, x, 2)[j] for m in models]
        torch.testing.assert_close(got, torch.stack(parts).mean(0), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("key", sorted(MAKERS))
def test_full_derivatives_of_orders_0_to_2_are_each_members_own(key):
    models, method = _members(key)
    ens = Ensemble(models, method=method)
    x = _rows()
    for order in (0, 1, 2):
        got = derivatives(ens, x, order)
        parts = [derivatives(m, xn, order) for m, xn in zip(models, x.chunk(N))]
        assert len(got) == order + 1
        for j in range(order + 1):
            _assert_cat_close(got[j], [p[j] for p in parts])


@pytest.mark.parametrize("key", sorted(MAKERS))
@pytest.mark.parametrize("order,sets", [(1, 1), (1, 3), (2, 1), (2, 2), (3, 2)])
def test_directional_derivatives_are_each_members_own(key, order, sets):
    """Member n's rows of the stacked directions (S, k, N·B, d) are its own sample_directions;
    at m=2 > S (order 1), at order 2 with m=2 and at order 3 the jet runs for "layers"."""
    models, method = _members(key)
    ens = Ensemble(models, method=method)
    x = _rows()
    V_n = [
        sample_directions(sets, order, B, D_IN, generator=torch.Generator().manual_seed(s))
        for s in range(N)
    ]
    V = torch.cat(V_n, dim=2)
    chosen = derivative_method(ens, order, d=D_IN, m=D_OUT, n_sets=sets)
    single = derivative_method(models[0], order, d=D_IN, m=D_OUT, n_sets=sets)
    if method == "layers":
        assert chosen == single  # the batched chain takes the members' own route (jet included)
    elif single == "jet":
        assert chosen == "jvp"  # vmap: the nested-jvp fallback, still the members' numbers
    got = derivatives(ens, x, order, directions=V)
    assert torch.equal(got.directions, V)
    parts = [derivatives(m, xn, order, directions=v) for m, xn, v in zip(models, x.chunk(N), V_n)]
    for j in range(order + 1):
        _assert_cat_close(got[j], [p[j] for p in parts])


def test_the_jet_runs_through_ensemble_linear_layers():
    """The cases above that pick the jet for a "layers" ensemble really take it."""
    models, _ = _members("layers-mlp-tanh")
    ens = Ensemble(models)
    assert all(isinstance(m, EnsembleLinear) for m in ens.jet_layers()[::2])
    assert derivative_method(ens, 2, d=D_IN, m=D_OUT, n_sets=1) == "jet"
    assert derivative_method(ens, 3, d=D_IN, m=D_OUT, n_sets=2) == "jet"
    assert Ensemble(models, method="vmap").jet_layers() is None


@pytest.mark.parametrize("key", sorted(MAKERS))
def test_partial_derivatives_are_each_members_own(key):
    models, method = _members(key)
    ens = Ensemble(models, method=method)
    x = _rows()
    alphas = [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (2, 1)]
    got = partial_derivatives(ens, x, alphas)
    parts = [partial_derivatives(m, xn, alphas) for m, xn in zip(models, x.chunk(N))]
    assert list(got) == alphas
    for a in alphas:
        _assert_cat_close(got[a], [p[a] for p in parts])


@pytest.mark.parametrize("key", ["layers-mlp-tanh", "vmap-fourier", "vmap-residual"])
def test_a_loss_summed_over_members_gives_each_member_its_own_gradient(key):
    """The ensemble's parameter gradient, read back per member with load_members, is each
    member's gradient of its own loss (a Sobolev-like loss through first derivatives)."""
    models, method = _members(key)
    ens = Ensemble(models, method=method)
    x = _rows()

    def loss(f, pts):
        u, du = derivatives(f, pts, 1)
        return (u**2).sum() + (du**3).sum()

    loss(ens, x).backward()
    for m, xn in zip(models, x.chunk(N)):
        loss(m, xn).backward()
    with torch.no_grad():  # the gradients in place of the parameters, to read them per member
        for p in ens.parameters():
            p.copy_(p.grad)
    grads = [_members(key)[0][n] for n in range(N)]
    ens.load_members(grads)
    for m, g in zip(models, grads):
        for (name, p), q in zip(m.named_parameters(), g.parameters()):
            torch.testing.assert_close(q, p.grad, rtol=1e-12, atol=1e-13, msg=name)


@pytest.mark.parametrize("key", ["layers-mlp-tanh", "vmap-fourier", "vmap-residual"])
def test_member_and_load_members_round_trip(key):
    models, method = _members(key)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    ens = Ensemble(models, method=method)
    first = [ens.member(n) for n in range(N)]
    for n, m in enumerate(first):  # member(n) is models[n]: type, state (buffers included)
        assert type(m) is type(models[n])
        assert m.state_dict().keys() == before[n].keys()
        for k, v in m.state_dict().items():
            assert torch.equal(v, before[n][k]), k
    with pytest.raises(IndexError, match=f"member {N} of an ensemble of {N}"):
        ens.member(N)
    with pytest.raises(IndexError, match="member -1"):
        ens.member(-1)

    # change the ensemble: the models it was built from and the members taken before stay as they
    # were (copies), load_members writes the new values, and they compute the ensemble's rows
    opt = torch.optim.SGD(ens.parameters(), lr=0.1)
    ens(_rows()).pow(2).sum().backward()
    opt.step()
    for n in range(N):
        for k, v in models[n].state_dict().items():
            assert torch.equal(v, before[n][k]), k
        for k, v in first[n].state_dict().items():
            assert torch.equal(v, before[n][k]), k
    fresh = _members(key)[0]
    for m in fresh:  # other initial values everywhere, so every entry must be written
        with torch.no_grad():
            for p in m.parameters():
                p.fill_(7.0)
    ens.load_members(fresh)
    x = _rows(seed=1)
    _assert_cat_close(ens(x), [m(xn) for m, xn in zip(fresh, x.chunk(N))])
    for n in range(N):
        after = ens.member(n)
        for (k, v), w in zip(after.state_dict().items(), fresh[n].state_dict().values()):
            assert torch.equal(v, w), k
        changed = [
            not torch.equal(v, before[n][k]) for k, v in after.state_dict().items() if "scale" != k
        ]
        assert any(changed)


@pytest.mark.parametrize("key", ["layers-mlp-tanh", "vmap-fourier", "vmap-residual"])
def test_select_evaluates_a_range_of_members_as_themselves(key):
    """Within select(1, 3) of 4 members, rows (2·B, d) go through members 1 and 2: values,
    directional derivatives (the jet for "layers") and gradients, which reach only their slices."""
    models, method = _members(key, n=4)
    ens = Ensemble(models, method=method)
    x = _rows(n=2)
    V_n = [
        sample_directions(1, 2, B, D_IN, generator=torch.Generator().manual_seed(s)) for s in (1, 2)
    ]
    with ens.select(1, 3) as selected:
        assert selected is ens and ens.members == 2
        _assert_cat_close(ens(x), [models[1](x[:B]), models[2](x[B:])])
        got = derivatives(ens, x, 2, directions=torch.cat(V_n, dim=2))
        parts = [
            derivatives(models[n], xn, 2, directions=v) for n, xn, v in zip((1, 2), x.chunk(2), V_n)
        ]
        for j in range(3):
            _assert_cat_close(got[j], [p[j] for p in parts])
        (got[1] ** 2).sum().backward()
        with pytest.raises(ValueError, match="member-major rows.*members=2"):
            ens(torch.randn(3, D_IN))
    for n, xn in zip((1, 2), x.chunk(2)):
        (derivatives(models[n], xn, 2, directions=V_n[n - 1])[1] ** 2).sum().backward()
    assert ens.members == 4 and ens(_rows(n=4)).shape == (4 * B, D_OUT)
    zero = lambda p: torch.zeros_like(p) if p.grad is None else p.grad
    with torch.no_grad():
        for p in ens.parameters():
            p.copy_(zero(p))
    grads = _members(key, n=4)[0]
    ens.load_members(grads)
    for n in range(4):
        for (name, p), q in zip(models[n].named_parameters(), grads[n].parameters()):
            want = zero(p) if n in (1, 2) else torch.zeros_like(p)
            torch.testing.assert_close(q, want, rtol=1e-12, atol=1e-13, msg=f"{n} {name}")


def test_select_is_undone_after_an_error_and_checks_its_range():
    ens = Ensemble(_members("layers-mlp-tanh", n=4)[0])
    with pytest.raises(RuntimeError, match="inside"), ens.select(0, 1):
        raise RuntimeError("inside")
    assert ens.members == 4 and ens(_rows(n=4)).shape == (4 * B, D_OUT)
    for lo, hi in [(2, 2), (-1, 1), (0, 5), (3, 1)]:
        with pytest.raises(ValueError, match="select needs 0 ≤ lo < hi ≤ 4"), ens.select(lo, hi):
            pass
    assert ens.members == 4


def test_member_keeps_the_ensembles_dtype():
    models, _ = _members("layers-mlp-tanh")
    ens = Ensemble(models).to(torch.float32)
    m = ens.member(1)
    assert all(p.dtype == torch.float32 for p in m.parameters())
    x = _rows().float()
    torch.testing.assert_close(ens(x)[B : 2 * B], m(x[B : 2 * B]), rtol=1e-6, atol=1e-6)


def test_method_is_chosen_by_the_architecture():
    mlps, _ = _members("layers-mlp-tanh")
    assert Ensemble(mlps).method == "layers"
    assert Ensemble(_members("vmap-fourier")[0]).method == "vmap"
    assert Ensemble(_members("vmap-residual")[0]).method == "vmap"
    normed = [nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1)) for _ in range(2)]
    assert Ensemble(normed).method == "vmap"  # a layer with parameters that is not nn.Linear
    assert Ensemble(mlps[:1]).members == 1


def test_method_layers_on_a_module_that_is_not_a_chain_is_refused():
    for models in (
        _members("vmap-fourier")[0],
        _members("vmap-residual")[0],
        [nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1)) for _ in range(2)],
    ):
        with pytest.raises(ValueError, match="method='layers' needs a chain of nn.Linear"):
            Ensemble(models, method="layers")


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match=r"method must be None or one of \('layers', 'vmap'\)"):
        Ensemble(_members("layers-mlp-tanh")[0], method="loop")


def test_members_of_another_architecture_are_refused():
    a, b = MLP(2, 1, width=6, depth=2), MLP(2, 1, width=7, depth=2)
    with pytest.raises(ValueError, match=r"one architecture.*models\[1\] differs from models\[0\]"):
        Ensemble([a, b, a])
    with pytest.raises(ValueError, match=r"models\[2\] differs from models\[0\]"):
        Ensemble([a, a, MLP(2, 1, width=6, depth=3)])
    with pytest.raises(ValueError, match=r"models\[1\] differs"):
        Ensemble([a, MLP(2, 1, width=6, depth=2).float()])  # another dtype

    class Other(MLP):  # the same parameters, another type
        pass

    with pytest.raises(ValueError, match=r"models\[1\] differs"):
        Ensemble([a, Other(2, 1, width=6, depth=2)])
    with pytest.raises(ValueError, match="non-empty sequence of nn.Module"):
        Ensemble([])
    with pytest.raises(ValueError, match="non-empty sequence of nn.Module"):
        Ensemble([a, lambda x: x])


ACTIVATION_PAIRS = {
    "mlp-tanh-sine": (lambda: _mlp("tanh"), lambda: _mlp("sine")),
    "mlp-tanh-softplus": (lambda: _mlp("tanh"), lambda: _mlp("softplus")),
    "siren-w0": (
        lambda: MLP(D_IN, D_OUT, width=6, depth=2, activation="sine", w0=30.0),
        lambda: MLP(D_IN, D_OUT, width=6, depth=2, activation="sine", w0=5.0),
    ),
    "fourier-tanh-sine": (
        _fourier,
        lambda: FourierFeatureMLP(D_IN, D_OUT, n_features=3, width=6, depth=1, activation="sine"),
    ),
}


@pytest.mark.parametrize("pair", sorted(ACTIVATION_PAIRS))
def test_members_that_differ_in_an_activation_are_refused_or_evaluated_as_themselves(pair):
    """Members with the same parameters (names, shapes, values) but another activation (or SIREN's
    w0) are not one architecture: refused, or else each evaluated as itself, never silently as
    models[0]."""
    torch.manual_seed(0)
    models = [make() for make in ACTIVATION_PAIRS[pair]]
    models[1].load_state_dict(models[0].state_dict())  # only the activation differs
    x = _rows(n=2)
    assert not torch.allclose(models[0](x[B:]), models[1](x[B:]))
    try:
        ens = Ensemble(models)
    except ValueError as e:
        assert "differs" in str(e)
        return
    _assert_cat_close(ens(x), [models[0](x[:B]), models[1](x[B:])])


@pytest.mark.parametrize("key", ["layers-mlp-tanh", "vmap-residual"])
def test_rows_that_are_not_a_multiple_of_the_members_are_refused(key):
    ens = Ensemble(*_members(key))
    with pytest.raises(ValueError, match=r"member-major rows.*members=3.*\(7, 2\)"):
        ens(torch.randn(7, 2))
    with pytest.raises(ValueError, match="member-major rows"):
        derivatives(ens, torch.randn(8, 2), 1)
