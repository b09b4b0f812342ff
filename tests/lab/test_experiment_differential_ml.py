"""The differential-ml experiment: its helpers against hand computations, and `sobolev run
differential-ml --quick` end to end, with assertions that fail if the derivative term is broken."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sobolev import MLP, SobolevLoss
from sobolev.models import Ensemble, EnsembleMean
from sobolev_lab.cli import main
from sobolev_lab.experiments import differential_ml as dml
from sobolev_lab.experiments.checks import check_config


def test_match_size_interpolates_the_log_log_curve():
    sizes = (1024, 2048, 4096, 8192)
    errs = [n**-0.5 for n in sizes]  # a straight line on log–log axes
    assert dml.match_size(sizes, errs, 3000**-0.5) == pytest.approx(3000)
    assert dml.match_size(sizes, errs, 1.0) == 1024  # already below at the smallest size
    assert dml.match_size(sizes, errs, 1e-6) is None  # never reached
    # the first crossing counts, even if the curve rises again
    assert dml.match_size(sizes, [1.0, 0.25, 0.5, 0.1], 0.5) == pytest.approx(1024 * 2**0.5)
    assert dml.power_law_size(sizes, errs, 65536**-0.5) == pytest.approx(65536)
    assert dml.power_law_size(sizes, [1.0, 1.0, 1.1, 1.2], 0.5) is None


def test_plan_follows_the_paper_protocol_within_the_caps():
    cfg = dml.Config()
    assert cfg.plan(1024) == (256, 400)  # 100 epochs of 4 batches of 256
    assert cfg.plan(8192) == (512, 1600)  # 100 epochs of 16 batches
    assert cfg.plan(65536) == (1024, 1600)  # batch and steps capped
    with pytest.raises(ValueError, match="match_at must be among sizes"):
        dml.Config(match_at=(3000,))


def test_min_steps_adds_epochs_to_small_training_sets():
    cfg = dataclasses.replace(dml.Config.paper(), min_steps=1000)
    assert cfg.plan(1024) == (256, 1000) and cfg.epochs_at(1024) == 250  # 4 batches an epoch
    assert cfg.plan(65536) == (4096, 1600) and cfg.epochs_at(65536) == 100  # 100 epochs suffice
    odd = dataclasses.replace(cfg, min_steps=1001)
    assert odd.epochs_at(1024) == 251 and odd.plan(1024) == (256, 1004)  # whole epochs


def test_directional_objective_is_the_h1_loss_along_the_given_directions(double):
    d, B = 4, 64
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(B, d, generator=g), torch.randn(B, d, generator=g)
    y, grad = torch.randn(B, 1, generator=g), torch.randn(B, 1, d, generator=g)
    dw = (grad[:, 0] * w).sum(1).reshape(B, 1, 1)
    net = MLP(d, 1, 8, 2, "softplus")
    loss, terms = dml.directional_objective(d)(net, (x, y, w, dw))
    xg = x.clone().requires_grad_(True)
    u = net(xg)
    (du,) = torch.autograd.grad(u.sum(), xg)
    expected = ((u - y).square().mean() + ((du * w).sum(1) - dw[:, 0, 0]).square().mean()) / (1 + d)
    torch.testing.assert_close(loss, expected)
    assert set(terms) == {"D0", "D1"}


def test_directional_objective_on_an_ensemble_is_each_members_own_loss(double):
    d, B = 3, 16
    g = torch.Generator().manual_seed(1)
    nets = [MLP(d, 1, 8, 2, "softplus") for _ in range(2)]
    batches = [
        (
            torch.randn(B, d, generator=g),
            torch.randn(B, 1, generator=g),
            torch.randn(B, d, generator=g),
            torch.randn(B, 1, 1, generator=g),
        )
        for _ in nets
    ]
    objective = dml.directional_objective(d)
    losses, terms = objective(Ensemble(nets), tuple(torch.cat(t) for t in zip(*batches)))
    for n, (net, batch) in enumerate(zip(nets, batches)):
        own, own_terms = objective(net, batch)
        torch.testing.assert_close(losses[n], own)
        torch.testing.assert_close(terms["D1"][n], own_terms["D1"])


def test_members_train_a_mean_of_networks(tmp_path):
    cfg = dataclasses.replace(dml.Config.paper(quick=True), members=3, epochs=1)
    data = (torch.randn(512, 2), torch.randn(512, 1), torch.randn(512, 1, 2))
    net, secs = dml._train(cfg, 2, 0, SobolevLoss(1, weighting="dimension"), data)
    assert isinstance(net, EnsembleMean) and net.ensemble.n_members == 3 and secs > 0
    with pytest.raises(ValueError, match="members"):
        check_config(dml.Config(members=0), dml)


def test_quick_run_reproduces_the_differential_advantage(tmp_path):
    out = tmp_path / "dml"
    res = CliRunner().invoke(
        main,
        ["--threads", "1", "run", "differential-ml", "--quick", "--out", str(out)],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert s["setting"] == "ours" and s["config"]["seeds"] == 2
    r = s["results"]
    # with antithetic labels, measured differential ÷ standard per seed: d = 7 at 1024 price
    # 0.72–0.78, delta 0.37–0.53; d = 1 at 4096 delta 0.41–0.45; d = 7 at 4096 delta 0.35–0.50
    for d, n, metric, ratio in (
        ("7", "1024", "price_rmse", 0.9),
        ("7", "1024", "delta_rmse", 0.7),
        ("1", "4096", "delta_rmse", 0.7),
        ("7", "4096", "delta_rmse", 0.7),
    ):
        std, diff = r[d]["standard"][n], r[d]["differential"][n]
        for a, b in zip(std["per_seed"], diff["per_seed"]):  # in every seed, with margin
            assert b[metric] < ratio * a[metric], (d, n, metric, b[metric], a[metric])
    # the errors are those of a fitted surrogate: a few percent of the price scale (~0.1)
    assert all(0 < p["price_rmse"] < 0.03 for p in r["7"]["differential"]["1024"]["per_seed"])
    eff = r["7"]["efficiency"]["price_rmse"]["1024"]
    assert (
        eff["standard_size"] is None or eff["standard_size"] > 2048
    )  # standard needs > 2x the data
    h = {v: s["high_d"][v]["1024"] for v in dml.HIGH_D_VARIANTS}
    for v in ("differential", "random direction per step"):
        assert all(
            b["price_rmse"] < 0.8 * a["price_rmse"]
            for a, b in zip(h["standard"]["per_seed"], h[v]["per_seed"])
        ), v
    assert all(math.isfinite(h["directional labels"][k]) for k in ("price_rmse", "delta_rmse"))
    table = (out / "table.md").read_text()
    assert table == dml.tables(s) and "2 seeds" in table and "setting: ours" in table
    for fig in s["figures"]:
        assert (out / fig).stat().st_size > 1000


def test_the_pricing_model_settings_are_checked():
    with pytest.raises(ValueError, match="model must be one of"):
        dml.Config(model="heston")
    with pytest.raises(ValueError, match="dims must be 1"):
        dml.Config(model="black-scholes", dims=(1, 7))
    assert dml.Config(model="bachelier", dims=(1,)).antithetic is True


def test_the_paper_setting_is_the_notebooks_recipe():
    cfg = dml.Config.paper()
    assert (cfg.width, cfg.depth, cfg.activation, cfg.init) == (20, 4, "softplus", "glorot")
    assert (cfg.epochs, cfg.lr, cfg.schedule, cfg.dtype) == (100, 0.1, "one-cycle", "float32")
    assert cfg.antithetic and cfg.input_weights
    for n in (1024, 8192, 65536):  # batch max(256, m // 16), 16 batches an epoch, 100 epochs
        bs, steps = cfg.plan(n)
        assert bs == max(256, n // 16) and steps == 100 * math.ceil(n / bs)


def test_the_one_cycle_rates_are_the_notebooks_per_epoch():
    sched = dml.EpochOneCycle(steps_per_epoch=4, epochs=10)
    notebook = lambda e: np.interp(e / 10, [0, 0.2, 0.6, 0.9, 1], [1e-8, 0.1, 0.01, 1e-6, 1e-8])
    for step in range(40):
        assert 0.1 * sched(step) == pytest.approx(notebook(step // 4), rel=1e-9, abs=1e-15)


def test_glorot_initialisation_has_zero_biases_and_glorot_bounds():
    torch.manual_seed(0)
    net = dml.network(dataclasses.replace(dml.Config.paper(), init="glorot"), 7)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5
    for layer in linears:
        fan_out, fan_in = layer.weight.shape
        assert torch.all(layer.bias == 0)
        assert layer.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max() > 0.8 * math.sqrt(6 / (fan_in + fan_out))


def test_quick_paper_run_records_both_delta_errors(tmp_path, as_cli):
    cfg = dataclasses.replace(
        dml.Config.paper(quick=True), dims=(1, 3), sizes=(512, 1024), match_at=(512,), epochs=2
    )
    s = dml.run(cfg, tmp_path)
    for d in ("1", "3"):
        for m in ("standard", "differential"):
            r = s["results"][d][m]["1024"]
            assert {"price_rmse", "delta_rmse", "delta1_rmse"} <= set(r)
    one = s["results"]["1"]["differential"]["1024"]
    assert one["delta1_rmse"] == pytest.approx(one["delta_rmse"])  # d = 1: the same entry
    table = dml.tables(as_cli(s, cfg, "paper"))
    assert "Against the reference notebook" in table
    assert "| black-scholes | 1 | 1024 | standard | price | 0.59 |" in table
    assert "| black-scholes | 1 | 1024 | differential | delta | 2.47 |" in table
    assert "Against the reference notebook" not in dml.tables(as_cli(s, cfg, "ours"))
    # the label noise against the closed form: antithetic labels of a call are noisy, but far
    # less than the price scale; at d = 1 the first asset's delta is the delta
    noise = s["results"]["1"]["label_noise"]
    assert 0.005 < noise["price_rmse"] < 0.2 and noise["delta1_rmse"] == noise["delta_rmse"]
    assert "Noise of the training labels" in table
    assert 0 <= one["price_spread"] < 2
    assert "flat prediction" in table  # the collapse line: none, or which cells


def test_heldout_errors_against_the_closed_form(double):
    model = dml.pricing_model(3, seed=0)
    test = model.test_set(256, torch.Generator().manual_seed(0))

    class Exact:  # the closed form itself, then a flat price at the mean
        def __init__(self, flat: bool) -> None:
            self.flat = flat

        def predict(self, x):
            price = test.price.mean().expand_as(test.price) if self.flat else test.price
            return price, test.delta + 0.1

    exact, flat = dml.heldout_errors(Exact(False), test), dml.heldout_errors(Exact(True), test)
    assert exact["price_rmse"] == 0 and exact["price_spread"] == pytest.approx(1)
    assert exact["delta_rmse"] == pytest.approx(0.1) and exact["delta1_rmse"] == pytest.approx(0.1)
    assert flat["price_spread"] < 1e-12 and dml.FLAT > 0.1
    assert flat["price_rmse"] == pytest.approx(float(test.price.std(unbiased=False)))


def test_a_flat_prediction_is_named_in_the_tables(tmp_path, as_cli):
    cfg = dataclasses.replace(
        dml.Config.paper(quick=True), dims=(1,), sizes=(512, 1024), match_at=(512,), epochs=1
    )
    s = dml.run(cfg, tmp_path)
    for m in dml.METHODS:  # one epoch: networks may be flat; mark every run as a fit ...
        for n in cfg.sizes:
            for per in s["results"]["1"][m][str(n)]["per_seed"]:
                per["price_spread"] = 1.0
    s["results"]["1"]["differential"]["1024"]["per_seed"][1]["price_spread"] = 0.01  # ... but one
    table = dml.tables(as_cli(s, cfg, "paper"))
    assert "Collapsed to a flat prediction" in table
    assert "d = 1, n = 1024, differential: 1/2 seeds" in table


def test_versus_compares_two_runs_cell_by_cell(tmp_path, as_cli):
    cfg = dataclasses.replace(
        dml.Config.paper(quick=True), dims=(1,), sizes=(512, 1024), match_at=(512,), epochs=1
    )
    ref = as_cli(dml.run(cfg, tmp_path), cfg, "paper")
    ours = json.loads(json.dumps(ref)) | {"setting": "ours"}
    for per in ours["results"]["1"]["differential"]["1024"]["per_seed"][:1]:
        per["price_rmse"] /= 2  # ours lower in one seed's price, equal elsewhere
    for m in ("standard", "differential"):
        r = ours["results"]["1"][m]["512"]
        r["delta_rmse"] *= 3  # ours 3× worse in the median delta error at n = 512
        for per in r["per_seed"]:
            per["delta_rmse"] *= 3
    table = dml.versus(ours, ref)
    assert "ours against paper" in table and "paired seeds" in table
    assert "median of ours at most that of paper in 6 of 8 cells" in table
    assert "| 1 | 512 | standard |" in table and "| 3× | 0/2 |" in table
    row = next(r for r in table.splitlines() if r.startswith("| 1 | 1024 | differential |"))
    assert "1/2" in row  # price lower in the one halved seed
    unpaired = json.loads(json.dumps(ours))
    unpaired["config"]["paths_seed"] += 1
    assert "unpaired" in dml.versus(unpaired, ref)
