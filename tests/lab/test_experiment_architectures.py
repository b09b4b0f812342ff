"""The architectures experiment: well-formed outputs, the derivative term's effect, and its
``Config.paper()`` networks checked against a plain-torch transcription of the official
``Architecture/model.py``."""

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from sobolev.models.paper import TrainableFourierNet, init_linear_weights, paper_model
from sobolev_lab.experiments import architectures


def test_architectures_tiny(tmp_path, check_outputs):
    cfg = dataclasses.replace(
        architectures.Config.quick(),
        losses=("L2", "H2"),
        n_train=64,
        n_test=20,
        width=8,
        depth=1,
        ff_features=4,
        steps=12,
        lbfgs_at=10,
        lbfgs_max_iter=3,
        log_every=4,
        seeds=2,
    )
    s = architectures.run(cfg, tmp_path)
    table = check_outputs(architectures, cfg, s, tmp_path, 2)
    for model in architectures.MODELS:
        for loss in ("L2", "H2"):
            r = s["results"]["f1"][model][loss]
            assert (
                all(r[f"d{j}_rel_err"] > 0 for j in range(3))
                and r["train_time_s"] > 0
                and len(r["per_seed"]) == 2
            )
            recs = [
                json.loads(line)
                for line in (tmp_path / "f1" / model / loss / "rep1" / "metrics.jsonl").open()
            ]
            assert {r["phase"] for r in recs} == {"adam", "lbfgs"}  # the switch happened
    assert "diverged (seeds)" in table
    with pytest.raises(ValueError, match="models"):
        architectures.run(dataclasses.replace(cfg, models=("resnet",)), tmp_path / "bad")
    with pytest.raises(ValueError, match="model_variant"):
        architectures.run(dataclasses.replace(cfg, model_variant="paper"), tmp_path / "bad")


def test_architectures_h1_fits_the_derivative(tmp_path):
    """Fourier features on f2 = x + sin(2πx⁴), 150 Adam steps: measured u' errors H1 0.012–0.063
    against L2 0.22–0.27 in the same seeds."""
    cfg = dataclasses.replace(
        architectures.Config.quick(),
        functions=("f2",),
        models=("fourier",),
        losses=("L2", "H1"),
        n_train=128,
        width=16,
        depth=2,
        ff_features=8,
        steps=155,
        lbfgs_at=150,
        lbfgs_max_iter=5,
        lr=1e-2,
        seeds=2,
        log_every=10,
    )
    r = architectures.run(cfg, tmp_path)["results"]["f2"]["fourier"]
    for h1, l2 in zip(r["H1"]["per_seed"], r["L2"]["per_seed"]):
        assert h1["d1_rel_err"] < 0.4 * l2["d1_rel_err"]
    assert r["H1"]["range"]["d1_rel_err"][1] < 0.15 and 0.1 < r["L2"]["range"]["d1_rel_err"][0]


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


def test_siren_at_w_is_a_siren_with_that_w0():
    cfg = architectures.Config()
    torch.manual_seed(0)
    a = architectures.make_model("siren@3", cfg)
    torch.manual_seed(0)
    b = architectures.make_model("siren", dataclasses.replace(cfg, siren_w0=3.0))
    x = torch.linspace(-1, 1, 7).unsqueeze(1)
    assert torch.equal(a(x), b(x))
    assert architectures.siren_w0("siren@0.5", cfg) == 0.5
    assert architectures.siren_w0("mlp", cfg) is None


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(models=("siren@-1",)), "siren@W"),
        (dict(models=("siren@x",)), "siren@W"),
        (dict(models=("siren@1", "siren@1")), "distinct"),
        (dict(models=("siren@1",), model_variant="official"), "not of model_variant"),
    ],
)
def test_bad_models_are_refused(kw, words):
    with pytest.raises(ValueError, match=words):
        architectures.validate(dataclasses.replace(architectures.Config(), **kw))


def test_a_run_over_siren_w0_names_each_in_its_table(tmp_path, check_outputs):
    cfg = dataclasses.replace(
        architectures.Config.quick(),
        models=("siren@1", "siren@30"),
        losses=("L2",),
        n_train=32,
        n_test=8,
        width=8,
        depth=1,
        steps=4,
        lbfgs_at=4,
        log_every=2,
        seeds=1,
    )
    s = architectures.run(cfg, tmp_path)
    table = check_outputs(architectures, cfg, s, tmp_path, 1)
    assert set(s["results"]["f1"]) == {"siren@1", "siren@30"}
    assert "SIREN ω₀ = 1, SIREN ω₀ = 30" in table
