"""``Config.paper()``: the official settings of arXiv 2509.19773's code, checked against independent
re-statements of that code (networks, FD and Chebyshev targets, loss), and ``--paper --quick`` runs.

The reference functions below transcribe the official ``Architecture/model.py`` and
``Differentiation/{domain,matrix,train}.py`` (read-only checkout, not part of this project) in
plain torch, so that a deviation of our implementation from the official one fails here.
"""

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from sobolev.models.paper import TrainableFourierNet, init_linear_weights, paper_model
from sobolev_lab.experiments import architectures, numdiff_targets, student_teacher

# --------------------------------------------------------------------------- settings


def test_paper_settings_are_the_official_ones():
    nd = numdiff_targets.Config.paper()
    assert (nd.n_grid, nd.n_cheb, nd.l2_exact_grid, nd.fd_accuracy, nd.fd_boundary) == (
        100,
        101,
        "chebyshev",
        2,
        "per-axis",
    )
    assert (nd.width, nd.depth, nd.activation, nd.optimizer, nd.lr, nd.schedule) == (
        64,
        4,
        "tanh",
        "adam",
        1e-4,
        "constant",
    )
    assert (nd.steps, nd.seeds, nd.thresholds, nd.reach_on, nd.dtype) == (
        200_000,
        5,
        (1e-3, 1e-4, 1e-5),
        "train",
        "float32",
    )
    ar = architectures.Config.paper()
    assert (ar.model_variant, ar.width, ar.n_train, ar.n_test, ar.seeds) == (
        "official",
        64,
        1000,
        100,
        20,
    )
    assert (ar.lr, ar.lbfgs_at, ar.steps, ar.lbfgs_lr, ar.lbfgs_max_iter, ar.lbfgs_line_search) == (
        1e-5,
        25_000,
        50_000,
        0.01,
        20,
        "none",
    )
    assert (
        ar.functions == ("f1", "f2", "f3")
        and ar.losses == ("L2", "H1", "H2")
        and ar.dtype == "float32"
    )
    st = student_teacher.Config.paper()
    assert st.optimizer == "sgd" and st.losses == ("L2", "H1")
    assert st.activations == ("relu", "leaky_relu", "gelu", "tanh", "sine")


@pytest.mark.parametrize(
    "mod, scaled",
    [
        (numdiff_targets, {"steps", "seeds", "log_every", "n_test"}),
        (architectures, {"steps", "lbfgs_at", "seeds", "log_every", "functions"}),
        (student_teacher, {"steps", "seeds", "log_every", "n_train", "n_test"}),
    ],
)
def test_paper_quick_scales_down_only_budget_fields(mod, scaled):
    full, quick = (
        dataclasses.asdict(mod.Config.paper()),
        dataclasses.asdict(mod.Config.paper(quick=True)),
    )
    assert {k for k in full if full[k] != quick[k]} == scaled
    assert quick["steps"] < full["steps"] and quick["seeds"] < full["seeds"]


# --------------------------------------------------------------------------- official networks


class _OfficialFourier(nn.Module):  # Architecture/model.py: FourierFeatureModel
    def __init__(self, f=64):
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.fc4 = (
            nn.Linear(1, f),
            nn.Linear(f, f),
            nn.Linear(f, f),
            nn.Linear(f, 1),
        )

    def forward(self, x):
        x = torch.sin(2 * math.pi * self.fc1(x))
        return self.fc4(torch.tanh(self.fc3(torch.tanh(self.fc2(x)))))


class _OfficialPlain(nn.Module):  # StandardModel (act = tanh) and SIRENModel (act = sin)
    def __init__(self, act, f=64):
        super().__init__()
        self.act = act
        self.fc1, self.fc2, self.fc3, self.fc4 = (
            nn.Linear(1, f),
            nn.Linear(f, f),
            nn.Linear(f, f),
            nn.Linear(f, 1),
        )

    def forward(self, x):
        return self.fc4(self.act(self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))))


def _linears(m):
    return [l for l in m.modules() if isinstance(l, nn.Linear)]


@pytest.mark.parametrize(
    "name, official",
    [
        ("mlp", lambda: _OfficialPlain(torch.tanh)),
        ("siren", lambda: _OfficialPlain(torch.sin)),
        ("fourier", _OfficialFourier),
    ],
)
def test_paper_models_compute_the_official_networks(name, official):
    torch.manual_seed(0)
    ours, ref = paper_model(name, 64), official()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    with torch.no_grad():
        for a, b in zip(_linears(ours), _linears(ref)):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
    x = torch.linspace(-1, 1, 50).unsqueeze(1)
    assert torch.allclose(ours(x), ref(x), atol=1e-6)
    assert all(p.requires_grad for p in ours.parameters())  # the Fourier layer is trained too


def test_paper_models_use_the_official_initialisations():
    torch.manual_seed(1)
    for name in (
        "mlp",
        "siren",
    ):  # kaiming_uniform_: U(±√(6/fan_in)) weights, default biases U(±1/√fan_in)
        for lin in _linears(paper_model(name, 256)):
            bound = math.sqrt(6 / lin.in_features)
            w = lin.weight.abs().max().item()
            assert 0.95 * bound < w <= bound or lin.weight.numel() < 300
            assert lin.bias.abs().max().item() <= 1 / math.sqrt(lin.in_features)
    net = TrainableFourierNet(1, 1, 4096, 2)
    assert net.features.weight.std().item() == pytest.approx(1.0, rel=0.05)  # N(0, 1) frequencies
    assert net.features.bias.abs().max().item() <= 1.0  # default bias, U(±1)
    for lin in _linears(net.mlp):  # Xavier-uniform: U(±√(6/(fan_in + fan_out)))
        bound = math.sqrt(6 / (lin.in_features + lin.out_features))
        assert lin.weight.abs().max().item() <= bound
    with pytest.raises(ValueError, match="scheme"):
        init_linear_weights(nn.Linear(2, 2), "orthogonal")
    with pytest.raises(ValueError, match="models"):
        paper_model("resnet")


# --------------------------------------------------------------------------- official numerical targets


def _official_ackley(x, y):  # Differentiation/func.py
    return (
        -20 * torch.exp(-0.2 * torch.sqrt(0.5 * (x**2 + y**2)))
        - torch.exp(0.5 * (torch.cos(2 * math.pi * x) + torch.cos(2 * math.pi * y)))
        + math.e
        + 20
    )


def _official_fdm_matrix(X):  # Differentiation/matrix.py: FDM_matrix
    N = X.size(0) - 2
    h = torch.tensor([[X[i] - X[i - 2]] * (N + 2) for i in range(2, N + 2)], dtype=X.dtype)
    out = torch.zeros((N, N + 2), dtype=X.dtype)
    for i in range(N):
        out[i] = torch.cat((torch.zeros(i), torch.tensor([-1.0, 0.0, 1.0]), torch.zeros(N - 1 - i)))
    return out / h


def _official_cheb_matrix(n_plus_1):  # Differentiation/matrix.py: cheb_matrix (float64 here)
    N = n_plus_1 - 1
    x = torch.cos(torch.pi * torch.arange(0, N + 1, dtype=torch.float64) / N)
    out = torch.zeros((N + 1, N + 1), dtype=torch.float64)
    mid = torch.arange(1, N)
    out[0, 0] = (2 * N**2 + 1) / 6
    out[0, 1:N] = 2 * (-1.0) ** mid / (1 - x[1:N])
    out[0, N] = 0.5 * (-1) ** N
    out[mid, 0] = -0.5 * (-1.0) ** mid / (1 - x[mid])
    out[mid, mid] = -x[mid] / (2 * (1 - x[mid] ** 2))
    out[mid, N] = 0.5 * (-1.0) ** (N + mid) / (1 + x[mid])
    out[N, 0] = -0.5 * (-1) ** N
    out[N, 1:N] = -2 * (-1.0) ** (N + mid) / (1 + x[1:N])
    out[N, N] = -(2 * N**2 + 1) / 6
    I, J = torch.meshgrid(mid, mid, indexing="ij")
    mask = I != J
    out[I[mask], J[mask]] = (-1.0) ** (I + J)[mask] / (x[I] - x[J])[mask]
    return x, out


def test_per_axis_fd_targets_and_loss_are_the_official_ones():
    n = 20
    X, u, G, M, exact = numdiff_targets.per_axis_fd_set(2, n, 2)
    x = torch.linspace(-2, 2, n, dtype=torch.float64)
    XX, YY = torch.meshgrid(x, x, indexing="ij")  # the official torch.meshgrid(X, Y) (ij)
    target = _official_ackley(XX, YY)
    xder = _official_fdm_matrix(x) @ target  # (n-2, n): ∂x at the x-interior
    yder = (_official_fdm_matrix(x) @ target.T).T  # (n, n-2)
    assert torch.allclose(u.reshape(n, n), target)
    Gx, Gy, Mx, My = (t.reshape(n, n) for t in (G[:, 0], G[:, 1], M[:, 0], M[:, 1]))
    assert torch.allclose(Gx[1:-1, :], xder) and torch.allclose(Gy[:, 1:-1], yder)
    assert (
        Mx.sum() == My.sum() == (n - 2) * n and Mx[0].sum() == Mx[-1].sum() == My[:, 0].sum() == 0
    )
    # the exact gradient is the official target_x / target_y (Differentiation/func.py)
    xs, ys = X[:, 0], X[:, 1]
    r, e = (
        torch.sqrt(xs**2 + ys**2),
        torch.exp(0.5 * (torch.cos(2 * math.pi * xs) + torch.cos(2 * math.pi * ys))),
    )
    radial = -1 / (5 * math.sqrt(2)) / r * (-20 * torch.exp(-0.2 * torch.sqrt(0.5 * r**2)))
    assert torch.allclose(exact[:, 0], radial * xs + math.pi * torch.sin(2 * math.pi * xs) * e)
    assert torch.allclose(exact[:, 1], radial * ys + math.pi * torch.sin(2 * math.pi * ys) * e)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    ours, terms = numdiff_targets.PerAxisLoss()(model, (X, u, G, M))
    # the official FDM_loss, on (X, Y) grids with requires_grad
    Xg, Yg = XX.clone().requires_grad_(True), YY.clone().requires_grad_(True)
    pred = model(torch.stack([Xg.reshape(-1), Yg.reshape(-1)], 1)).view(n, n)
    dx = torch.autograd.grad(pred, Xg, torch.ones_like(pred), create_graph=True)[0]
    dy = torch.autograd.grad(pred, Yg, torch.ones_like(pred), create_graph=True)[0]
    official = (
        ((dx[1:-1, :] - xder) ** 2).mean()
        + ((dy[:, 1:-1] - yder) ** 2).mean()
        + ((pred - target) ** 2).mean()
    )
    assert ours.item() == pytest.approx(official.item(), rel=1e-12)
    assert terms["D0"].item() == pytest.approx(((pred - target) ** 2).mean().item(), rel=1e-12)


def test_chebyshev_targets_are_the_official_ones():
    cfg = numdiff_targets.Config.paper()
    n = 21  # N = 20
    X, (u, du), _ = numdiff_targets.training_set("chebyshev", 2, n, cfg)
    x_desc, D = _official_cheb_matrix(n)
    assert torch.allclose(
        torch.sort(2 * x_desc).values, X[::n, 0], atol=1e-14
    )  # the same CGL points
    # the official grid: X[i, j] = x_j, Y[i, j] = y_i (meshgrid, then transposed), nodes descending
    XX, YY = torch.meshgrid(2 * x_desc, 2 * x_desc, indexing="ij")
    XX, YY = XX.T, YY.T
    target = _official_ackley(XX, YY)
    xder = (D @ target.T * 2.0 / 4).T
    yder = D @ target * 2.0 / 4
    # ours is in ascending ij order: point (a, b) = (x_a, y_b); the official's (i, j) = (y_i, x_j) descending
    ours_dx = du[:, 0, 0].reshape(n, n).flip(0, 1).T
    ours_dy = du[:, 0, 1].reshape(n, n).flip(0, 1).T
    assert torch.allclose(ours_dx, xder, atol=1e-9) and torch.allclose(ours_dy, yder, atol=1e-9)
    X_l2, _, _ = numdiff_targets.training_set("L2", 2, n, cfg)
    assert torch.equal(X_l2, X)  # the paper trains L2 and exact on the CGL grid too


# --------------------------------------------------------------------------- --paper --quick runs


def _tables(mod, cfg, summary):
    return mod.tables(
        json.loads(json.dumps({"setting": "paper", "config": dataclasses.asdict(cfg), **summary}))
    )


@pytest.mark.parametrize("mod", [numdiff_targets, architectures, student_teacher])
def test_paper_quick_runs(mod, tmp_path):
    cfg = mod.Config.paper(quick=True)
    summary = mod.run(cfg, tmp_path)
    json.dumps(summary, allow_nan=False)
    table = _tables(mod, cfg, summary)
    assert f"setting: paper, {cfg.seeds} seeds" in table
    for fig in summary["figures"]:
        assert (tmp_path / fig).stat().st_size > 1000
