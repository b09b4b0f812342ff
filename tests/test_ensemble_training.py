"""Many seeds in one run (:func:`sobolev.ensemble_training.fit_ensemble`) against the same seeds
trained alone with :func:`sobolev.fit`: parameters and every logged record, for every loss kind
(orders 0–2, directions, partials, custom objectives), optimiser setting (grad_clip, weight decay
on weights, SGD with momentum, schedules), per-member data and evaluations; resume after an
interrupt or a crash; members that diverge; and the refusals.
The Ensemble module itself: test_ensemble.py.
"""

import dataclasses
import json
import os
import signal
import types

import pytest
import torch
from torch import nn

from sobolev import (
    MLP,
    SobolevLoss,
    TrainConfig,
    TrainingInterrupted,
    derivatives,
    fit,
    heldout_evaluator,
    partial_derivatives,
    seed_everything,
)
from sobolev.ensemble_training import fit_ensemble, seeded_models
from sobolev.models import FourierFeatureMLP

pytestmark = pytest.mark.usefixtures("double")

SEEDS = (3, 5, 11)
N = len(SEEDS)
TOL = {"float64": 1e-12, "float32": 1e-5}


def _f(x):
    return torch.sin(x[:, :1]) * torch.cos(0.5 * x[:, 1:]) + 0.3 * x[:, :1] * x[:, 1:]


def _points(n=16, shift=0.0):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 2, generator=g, dtype=torch.float64) * 3 - 1.5) + shift


def _data(order=2, x=None):
    x = _points() if x is None else x
    return (x, *derivatives(_f, x, order, create_graph=False))


def _mlp():
    return MLP(2, 1, width=8, depth=2)


def _fourier():
    return FourierFeatureMLP(2, 1, n_features=3, width=6, depth=1)


def _cfg(**kw):
    base = dict(steps=10, log_every=1, checkpoint_every=0, progress=False, dtype="float64", lr=1e-2)
    return TrainConfig(**{**base, **kw})


def _single(make, seed, objective, data, cfg, **kw):
    """The reference: ``seed``'s model trained alone with fit."""
    seed_everything(seed)
    model = make()
    hist = fit(model, objective, data, dataclasses.replace(cfg, seed=seed), **kw)
    return model, hist


def _without(records, keys=("time",)):
    return [{k: v for k, v in r.items() if k not in keys} for r in records]


def _assert_records_close(got, want, rtol):
    assert len(got) == len(want) > 0
    for a, b in zip(_without(got), _without(want)):
        assert a.keys() == b.keys(), (a, b)
        for k, v in b.items():
            if isinstance(v, float):
                assert a[k] == pytest.approx(v, rel=rtol, abs=0), (b["step"], k)
            else:
                assert a[k] == v, (b["step"], k)


def _assert_params_close(got, want, rtol):
    assert got.state_dict().keys() == want.state_dict().keys()
    for (name, a), b in zip(got.state_dict().items(), want.state_dict().values()):
        assert a.dtype == b.dtype, name
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-3, msg=name)


def _assert_members_equal_single_runs(
    make,
    objective,
    data,
    cfg,
    *,
    seeds=SEEDS,
    single_objective=None,
    evaluate=None,
    method=None,
    members_per_pass=None,
):
    """fit_ensemble's members against fit of each seed alone (``data`` shared or per seed,
    ``evaluate`` one callable or one per member)."""
    models = seeded_models(make, seeds)
    hists = fit_ensemble(
        models,
        objective,
        data,
        cfg,
        seeds=seeds,
        evaluate=evaluate,
        method=method,
        members_per_pass=members_per_pass,
    )
    assert len(hists) == len(seeds)
    rtol = TOL[cfg.dtype]
    refs = []
    for n, seed in enumerate(seeds):
        ev = evaluate[n] if isinstance(evaluate, list) else evaluate
        ref_model, ref = _single(
            make,
            seed,
            single_objective or objective,
            data(seed) if callable(data) else data,
            cfg,
            evaluate=ev,
        )
        assert hists[n].diverged is None and hists[n].resumed_from is None
        steps = [*range(0, cfg.steps, cfg.log_every), cfg.steps]
        assert [r["step"] for r in hists[n].records] == steps
        _assert_records_close(hists[n].records, ref.records, rtol)
        _assert_params_close(models[n], ref_model, rtol)
        refs.append((ref_model, ref))
    return models, hists, refs


# --- each member is its seed trained alone ----------------------------------------------------

LOSS_CASES = {
    "order0": (lambda: SobolevLoss(0), 0, {}),
    "order1-minibatch": (lambda: SobolevLoss(1), 1, dict(batch_size=6)),
    "order2": (lambda: SobolevLoss(2), 2, {}),
    "order2-minibatch": (lambda: SobolevLoss(2), 2, dict(batch_size=5)),
    "directions1-minibatch": (lambda: SobolevLoss(1, directions=3), 1, dict(batch_size=6)),
    "directions2-minibatch": (lambda: SobolevLoss(2, directions=2), 2, dict(batch_size=5)),
    "directions2-full": (lambda: SobolevLoss(2, directions=1), 2, {}),
    "sum-dimension-weights": (
        lambda: SobolevLoss(1, weights=[1.0, 0.5], reduction="sum", weighting="dimension"),
        1,
        dict(batch_size=6),
    ),
}


@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_each_member_is_its_seed_trained_alone(case):
    loss, order, kw = LOSS_CASES[case]
    _assert_members_equal_single_runs(_mlp, loss(), _data(order), _cfg(**kw))


@pytest.mark.parametrize(
    "case", ["order1-minibatch", "directions2-minibatch", "directions1-minibatch"]
)
def test_each_member_is_its_seed_trained_alone_in_float32(case):
    loss, order, kw = LOSS_CASES[case]
    _assert_members_equal_single_runs(_mlp, loss(), _data(order), _cfg(dtype="float32", **kw))


@pytest.mark.parametrize("make,method", [(_mlp, "vmap"), (_fourier, None), (_fourier, "vmap")])
def test_each_member_is_its_seed_trained_alone_with_vmap(make, method):
    """vmap members (a Fourier-feature MLP: a fixed random buffer per member) train as alone."""
    _assert_members_equal_single_runs(
        make, SobolevLoss(2, directions=2), _data(2), _cfg(batch_size=6), method=method
    )


OPTIMIZER_CASES = {
    "weight-decay-on-weights": dict(weight_decay=0.5, weight_decay_on="weights"),
    "weight-decay-on-all": dict(weight_decay=0.5, weight_decay_on="all"),
    "sgd-momentum": dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.01),
    "sgd-momentum-minibatch": dict(optimizer="sgd", lr=0.01, momentum=0.5, batch_size=6),
    "cosine": dict(schedule="cosine", lr=5e-2, lr_min_factor=0.1),
    "step": dict(schedule="step", gamma=0.5, step_size=3, optimizer="sgd", lr=0.01),
    "exponential-betas": dict(schedule="exponential", gamma=0.9, betas=(0.5, 0.9), eps=1e-3),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
@pytest.mark.parametrize("make,method", [(_mlp, None), (_fourier, "vmap")], ids=["layers", "vmap"])
def test_optimiser_settings_act_per_member(case, make, method):
    _assert_members_equal_single_runs(
        make, SobolevLoss(1), _data(1), _cfg(**OPTIMIZER_CASES[case]), method=method
    )


def test_weight_decay_on_weights_spares_the_biases():
    """The test above detects a wrong grouping: decaying the biases too gives other members."""
    cfg = _cfg(weight_decay=0.5, weight_decay_on="weights")
    models = seeded_models(_mlp, SEEDS)
    fit_ensemble(models, SobolevLoss(1), _data(1), cfg, seeds=SEEDS)
    all_decayed, _ = _single(_mlp, SEEDS[0], SobolevLoss(1), _data(1), _cfg(weight_decay=0.5))
    assert not torch.allclose(models[0].net[0].bias, all_decayed.net[0].bias, rtol=1e-6)


def _per_member_data(order=1, scales=None):
    """seed -> data: each member its own points and its own target scale."""
    scales = scales or {s: 1.0 + i for i, s in enumerate(SEEDS)}

    def data(seed):
        x = _points(shift=0.1 * seed)
        return tuple(
            t if j == 0 else scales[seed] * t
            for j, t in enumerate((x, *derivatives(_f, x, order, create_graph=False)))
        )

    return data


@pytest.mark.parametrize("method", [None, "vmap"])
def test_grad_clip_clips_each_member_by_its_own_norm(method):
    """Member gradients of very different sizes (targets ×1, ×20, ×400): a global norm would clip
    the small ones by the large; the reference is torch's clip_grad_norm_ in fit."""
    scales = {SEEDS[0]: 1.0, SEEDS[1]: 20.0, SEEDS[2]: 400.0}
    data = _per_member_data(1, scales)
    cfg = _cfg(grad_clip=2.0, optimizer="sgd", lr=0.01, batch_size=6)
    make = _mlp if method is None else _fourier
    _, _, refs = _assert_members_equal_single_runs(make, SobolevLoss(1), data, cfg, method=method)
    unclipped = [
        _single(make, s, SobolevLoss(1), data(s), dataclasses.replace(cfg, grad_clip=None))[0]
        for s in SEEDS
    ]
    first = lambda m: next(m.parameters())
    differs = [not torch.allclose(first(r[0]), first(u)) for r, u in zip(refs, unclipped)]
    assert differs[1] and differs[2]  # the clip is active where the gradients are large


def test_per_member_data_and_per_member_evaluations():
    """data(seed) and one evaluate per member: each record holds its member's evaluation."""
    data = _per_member_data(2)
    evaluate = []
    for n, s in enumerate(SEEDS):
        x = data(s)[0]
        held = heldout_evaluator(lambda z, s=s: (1.0 + SEEDS.index(s)) * _f(z), x + 0.05, 1)
        evaluate.append(lambda m, held=held, n=n: {**held(m), "tag": float(n)})
    _, hists, _ = _assert_members_equal_single_runs(
        _mlp, SobolevLoss(2, directions=2), data, _cfg(batch_size=6), evaluate=evaluate
    )
    for n, h in enumerate(hists):
        assert {r["tag"] for r in h.records} == {float(n)}
        assert {"d0_rel", "d1_max"} <= set(h.records[-1])
    assert hists[0].records[0]["d0_rel"] != hists[1].records[0]["d0_rel"]


def test_one_evaluate_for_every_member_sees_each_member_alone():
    seen = []

    def evaluate(model):
        seen.append(type(model))
        return heldout_evaluator(_f, _points(8, shift=0.2), 1)(model)

    cfg = _cfg(batch_size=6, steps=6, log_every=3)
    _assert_members_equal_single_runs(_mlp, SobolevLoss(1), _data(1), cfg, evaluate=evaluate)
    assert set(seen) == {MLP}


def test_a_per_member_evaluate_may_be_none():
    cfg = _cfg(steps=3)
    models = seeded_models(_mlp, SEEDS)
    hists = fit_ensemble(
        models,
        SobolevLoss(1),
        _data(1),
        cfg,
        seeds=SEEDS,
        evaluate=[None, lambda m: {"e": 1.0}, None],
    )
    assert ["e" in r for r in hists[0].records] == [False] * 4
    assert ["e" in r for r in hists[1].records] == [True] * 4


def _partials_objectives(partials):
    """The partials loss for fit (a mean) and the same per member for fit_ensemble, shape (N,)."""

    def single(model, batch):
        x, *t = batch
        return SobolevLoss(partials=partials)(
            model, x, dict(zip(partials, t)), return_terms=True, check_finite=False
        )

    def ensemble(model, batch):
        x, *t = batch
        total, terms = SobolevLoss(partials=partials, reduction="none")(
            model, x, dict(zip(partials, t)), return_terms=True, check_finite=False
        )
        per = lambda v: v.reshape(model.members, -1).mean(1)
        return per(total), {k: per(v) for k, v in terms.items()}

    return single, ensemble


@pytest.mark.parametrize("make,method", [(_mlp, None), (_fourier, "vmap")], ids=["layers", "vmap"])
def test_a_partials_objective_trains_each_member_as_alone(make, method):
    partials = [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1)]
    x = _points()
    vals = partial_derivatives(_f, x, partials, create_graph=False)
    data = (x, *(vals[a] for a in partials))
    single, ensemble = _partials_objectives(partials)
    _, hists, _ = _assert_members_equal_single_runs(
        make, ensemble, data, _cfg(batch_size=6), single_objective=single, method=method
    )
    assert {"D(2,0)", "D(1,1)"} <= set(hists[0].records[0])


def test_a_custom_objective_returning_losses_only():
    def single(model, batch):
        x, u, _ = batch
        return ((model(x) - u) ** 2).mean()

    def ensemble(model, batch):
        x, u, _ = batch
        return ((model(x) - u) ** 2).reshape(model.members, -1).mean(1)

    _assert_members_equal_single_runs(
        _mlp, ensemble, _data(1), _cfg(batch_size=5), single_objective=single
    )


def _frozen_first_layer():
    model = _mlp()
    model.net[0].requires_grad_(False)  # a fixed random first layer, as fit leaves it
    return model


@pytest.mark.parametrize("wd", [0.0, 0.5])
def test_frozen_parameters_stay_frozen_as_in_fit(wd):
    """Parameters with requires_grad=False are not trained by fit (no gradient: Adam skips them,
    and weight decay does not reach them); each member must match."""
    cfg = _cfg(weight_decay=wd, weight_decay_on="weights" if wd else "all")
    models, _, _ = _assert_members_equal_single_runs(
        _frozen_first_layer, SobolevLoss(1), _data(1), cfg
    )
    for trained, init in zip(models, seeded_models(_frozen_first_layer, SEEDS)):
        assert torch.equal(trained.net[0].weight, init.net[0].weight)


@pytest.mark.parametrize("passes", [1, 2])
def test_members_per_pass_does_not_change_the_results(passes):
    """Members evaluated in passes of 1 or 2 (of 3): directions, per-member data and grad_clip
    (norms over gradients accumulated pass by pass), vmap, and a custom objective that is given
    the selected members only."""
    scales = {SEEDS[0]: 1.0, SEEDS[1]: 20.0, SEEDS[2]: 400.0}
    _assert_members_equal_single_runs(
        _mlp,
        SobolevLoss(2, directions=2),
        _per_member_data(2, scales),
        _cfg(batch_size=6, grad_clip=2.0, steps=6),
        members_per_pass=passes,
    )
    _assert_members_equal_single_runs(
        _fourier,
        SobolevLoss(1, directions=1),
        _data(1),
        _cfg(batch_size=5, steps=6),
        method="vmap",
        members_per_pass=passes,
    )
    partials = [(0, 0), (1, 0), (1, 1)]
    x = _points()
    vals = partial_derivatives(_f, x, partials, create_graph=False)
    single, ensemble = _partials_objectives(partials)
    _assert_members_equal_single_runs(
        _mlp,
        ensemble,
        (x, *(vals[a] for a in partials)),
        _cfg(batch_size=6, steps=6),
        single_objective=single,
        members_per_pass=passes,
    )


def test_members_per_pass_by_default_keeps_a_pass_under_pass_entries(monkeypatch):
    import sobolev.ensemble_training as E
    from sobolev.models import Ensemble

    ens = Ensemble(seeded_models(_mlp, SEEDS))  # widest layer: 8
    cpu = torch.device("cpu")
    assert E.members_per_pass(ens, 16, cpu, order=0) == N  # 3 · 16 · 8 entries: one pass
    assert E.members_per_pass(ens, E.PASS_ENTRIES // 16, cpu, order=0) == 2
    assert E.members_per_pass(ens, E.PASS_ENTRIES, cpu, order=0) == 1  # at least one member
    # a derivative order multiplies a member's working set: H1 holds twice L2's entries
    assert E.members_per_pass(ens, E.PASS_ENTRIES // 32, cpu, order=1) == 2
    assert E.members_per_pass(ens, E.PASS_ENTRIES, torch.device("cuda"), order=0) == N  # a GPU: all
    monkeypatch.setattr(E, "PASS_ENTRIES", 16 * 8)  # one member per pass for 16 rows
    calls = []
    real = Ensemble.select

    def select(self, lo, hi):
        calls.append((lo, hi))
        return real(self, lo, hi)

    monkeypatch.setattr(Ensemble, "select", select)
    _assert_members_equal_single_runs(_mlp, SobolevLoss(1), _data(1), _cfg(steps=3))
    assert calls[:3] == [(0, 1), (1, 2), (2, 3)]


def test_seeded_models_are_the_models_seeded_runs_start_from():
    models = seeded_models(_mlp, SEEDS)
    for s, m in zip(SEEDS, models):
        seed_everything(s)
        want = _mlp()
        assert all(torch.equal(a, b) for a, b in zip(m.parameters(), want.parameters()))
    assert not torch.equal(models[0].net[0].weight, models[1].net[0].weight)


def test_the_objective_given_is_not_changed():
    loss = SobolevLoss(1, directions=2)
    fit_ensemble(seeded_models(_mlp, SEEDS), loss, _data(1), _cfg(steps=2), seeds=SEEDS)
    assert loss.reduction == "mean" and loss.directions == 2 and loss.generator is None


# --- resume ------------------------------------------------------------------------------------


def _resume_cfg(**kw):
    return _cfg(
        **{
            **dict(
                steps=10,
                log_every=2,
                checkpoint_every=3,
                batch_size=6,
                schedule="cosine",
                lr=5e-2,
            ),
            **kw,
        }
    )


def _stopper(at_call, action):
    """An evaluate that does ``action()`` on its ``at_call``-th call (1-based)."""
    calls = [0]

    def evaluate(model):
        calls[0] += 1
        if calls[0] == at_call:
            action()
        return {}

    return evaluate


def _sigint():
    os.kill(os.getpid(), signal.SIGINT)


def _crash():
    raise RuntimeError("evaluation crashed")


def _loss():
    return SobolevLoss(2, directions=2)


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_metrics_hold_each_members_records(run_dir, hists, seeds=SEEDS):
    lines = _metrics(run_dir)
    assert len(lines) == sum(len(h.records) for h in hists)
    for line in lines:
        assert line["seed"] == seeds[line["member"]]
    for n, h in enumerate(hists):
        mine = [line for line in lines if line["member"] == n]
        assert _without(mine, ("member", "seed")) == h.records


@pytest.mark.parametrize(
    "how,at_step,ckpt_step,message",
    [
        ("sigint", 4, 5, "stopped at step 5 of 10; checkpoint in"),
        ("crash", 8, 6, "evaluation crashed"),
    ],
)
def test_resume_after_an_interrupt_equals_the_uninterrupted_run(
    tmp_path, how, at_step, ckpt_step, message
):
    """SIGINT at a logged step (the step finishes, a checkpoint is written), or a crash (the last
    checkpoint_every checkpoint is the resume point, later metrics are cut back): the models hold
    the trained parameters at that moment, and resuming gives the uninterrupted ensemble exactly,
    and each seed's fit alone."""
    cfg = _resume_cfg()
    action = _sigint if how == "sigint" else _crash
    error = TrainingInterrupted if how == "sigint" else RuntimeError
    at_call = at_step // cfg.log_every + 1

    ref_models = seeded_models(_mlp, SEEDS)
    ref = fit_ensemble(ref_models, _loss(), _data(2), cfg, seeds=SEEDS, out_dir=tmp_path / "ref")
    _assert_metrics_hold_each_members_records(tmp_path / "ref", ref)

    models = seeded_models(_mlp, SEEDS)
    evaluate = [None, _stopper(at_call, action), None]  # the middle member's evaluation stops it
    with pytest.raises(error, match=message):
        fit_ensemble(
            models, _loss(), _data(2), cfg, seeds=SEEDS, out_dir=tmp_path / "run", evaluate=evaluate
        )
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == ckpt_step
    # the parameters were copied back into the models: those of each seed's fit, stopped alike
    stopped_at = at_step + 1 if how == "sigint" else at_step
    for n, s in enumerate(SEEDS):
        seed_everything(s)
        alone = _mlp()
        with pytest.raises(error, match=message.split(";")[0].replace(" 5 ", f" {stopped_at} ")):
            fit(
                alone,
                _loss(),
                _data(2),
                dataclasses.replace(cfg, seed=s),
                evaluate=_stopper(at_call, action),
            )
        _assert_params_close(models[n], alone, TOL["float64"])
    lines = _metrics(tmp_path / "run")  # SIGINT: the step in flight is logged; a crash: not
    logged = range(0, at_step + 1 if how == "sigint" else at_step, cfg.log_every)
    assert [(line["step"], line["member"]) for line in lines] == [
        (s, n) for s in logged for n in range(N)
    ]

    resumed_models = seeded_models(_mlp, SEEDS)
    resumed = fit_ensemble(
        resumed_models, _loss(), _data(2), cfg, seeds=SEEDS, out_dir=tmp_path / "run"
    )
    for n in range(N):
        assert resumed[n].resumed_from == ckpt_step
        assert _without(resumed[n].records) == _without(ref[n].records)
        for a, b in zip(
            resumed_models[n].state_dict().values(), ref_models[n].state_dict().values()
        ):
            assert torch.equal(a, b)
    _assert_metrics_hold_each_members_records(tmp_path / "run", resumed)
    for n, s in enumerate(SEEDS):  # and the seeds trained alone
        alone, hist = _single(_mlp, s, _loss(), _data(2), cfg)
        _assert_records_close(resumed[n].records, hist.records, TOL["float64"])
        _assert_params_close(resumed_models[n], alone, TOL["float64"])


def test_resume_extends_a_finished_ensemble_run_exactly(tmp_path):
    cfg = lambda steps: _resume_cfg(steps=steps, schedule="constant", checkpoint_every=0)
    ref_models = seeded_models(_mlp, SEEDS)
    ref = fit_ensemble(ref_models, _loss(), _data(2), cfg(9), seeds=SEEDS)
    fit_ensemble(
        seeded_models(_mlp, SEEDS), _loss(), _data(2), cfg(5), seeds=SEEDS, out_dir=tmp_path
    )
    models = seeded_models(_mlp, SEEDS)
    ext = fit_ensemble(models, _loss(), _data(2), cfg(9), seeds=SEEDS, out_dir=tmp_path)
    for n in range(N):
        assert ext[n].resumed_from == 5
        assert _without(ext[n].records) == _without(ref[n].records)
        assert all(
            torch.equal(a, b) for a, b in zip(models[n].parameters(), ref_models[n].parameters())
        )


# --- members that diverge ----------------------------------------------------------------------


def _linear_net():
    return nn.Sequential(nn.Linear(1, 4), nn.Linear(4, 1))  # no saturation: SGD blows up


def _diverging_data(bad, big_y_for=None):
    """seed -> (x, u): x ×1000 for ``bad`` (too stiff for the learning rate)."""

    def data(seed):
        x = torch.linspace(-1, 1, 16, dtype=torch.float64).unsqueeze(1) * (1 + seed / 10)
        u = torch.sin(x) * (10.0 if seed == big_y_for else 1.0)
        return (1e3 * x if seed == bad else x, u)

    return data


def _diverging_single(seed, data, cfg, tmp_path, model_out=None):
    """fit of ``seed`` alone: its FloatingPointError and the records it logged before it (and
    the model it leaves, appended to ``model_out``)."""
    seed_everything(seed)
    model = _linear_net()
    out = tmp_path / f"alone-{seed}"
    with pytest.raises(FloatingPointError, match="loss became") as raised:
        fit(model, SobolevLoss(0), data(seed), dataclasses.replace(cfg, seed=seed), out_dir=out)
    if model_out is not None:
        model_out.append(model)
    return str(raised.value), _metrics(out)


@pytest.mark.parametrize("method", [None, "vmap"])
def test_a_member_that_diverges_stops_and_the_others_train_on(tmp_path, method):
    cfg = _cfg(optimizer="sgd", lr=0.1)
    bad = SEEDS[1]
    data = _diverging_data(bad)
    models = seeded_models(_linear_net, SEEDS)
    hists = fit_ensemble(
        models, SobolevLoss(0), data, cfg, seeds=SEEDS, out_dir=tmp_path / "ens", method=method
    )
    left: list = []
    message, logged = _diverging_single(bad, data, cfg, tmp_path, left)
    assert hists[1].diverged is not None and "loss became" in hists[1].diverged
    assert 0 < len(logged) < cfg.steps  # it diverges mid-run, after some logged steps
    _assert_records_close(hists[1].records, logged, TOL["float64"])  # its records stop there
    # its parameters are those fit leaves: before the step whose loss was not finite
    assert all(torch.isfinite(p).all() for p in models[1].parameters())
    _assert_params_close(models[1], left[0], TOL["float64"])
    assert hists[1].diverged.split(":")[0] == message.split(":")[0]  # "loss became inf at step k"
    for n in (0, 2):  # the others: their runs alone, to the end
        ref_model, ref = _single(_linear_net, SEEDS[n], SobolevLoss(0), data(SEEDS[n]), cfg)
        assert hists[n].diverged is None
        _assert_records_close(hists[n].records, ref.records, TOL["float64"])
        _assert_params_close(models[n], ref_model, TOL["float64"])
    _assert_metrics_hold_each_members_records(tmp_path / "ens", hists)


def test_a_diverged_members_message_is_the_one_fit_raises(tmp_path):
    """The whole message (data scales included) is what fit raises for that seed's data, also when
    another member's data are larger (here: its targets ×10)."""
    cfg = _cfg(optimizer="sgd", lr=0.1)
    data = _diverging_data(SEEDS[1], big_y_for=SEEDS[2])
    hists = fit_ensemble(seeded_models(_linear_net, SEEDS), SobolevLoss(0), data, cfg, seeds=SEEDS)
    message, _ = _diverging_single(SEEDS[1], data, cfg, tmp_path)
    assert hists[1].diverged == message


def test_a_diverged_member_survives_a_resume(tmp_path):
    cfg = _cfg(optimizer="sgd", lr=0.1, checkpoint_every=2)
    data = _diverging_data(SEEDS[1])
    ref = fit_ensemble(seeded_models(_linear_net, SEEDS), SobolevLoss(0), data, cfg, seeds=SEEDS)
    with pytest.raises(TrainingInterrupted):
        fit_ensemble(
            seeded_models(_linear_net, SEEDS),
            SobolevLoss(0),
            data,
            cfg,
            seeds=SEEDS,
            out_dir=tmp_path,
            evaluate=[_stopper(8, _sigint), None, None],  # after the divergence (step 4)
        )
    resumed = fit_ensemble(
        seeded_models(_linear_net, SEEDS), SobolevLoss(0), data, cfg, seeds=SEEDS, out_dir=tmp_path
    )
    for a, b in zip(resumed, ref):
        assert a.diverged == b.diverged
        assert _without(a.records) == _without(b.records)
    assert resumed[1].diverged is not None


def test_when_every_member_diverges_the_run_ends_without_an_error(tmp_path):
    cfg = _cfg(optimizer="sgd", lr=0.1)
    seeds = list(SEEDS[:2])
    data = lambda s: (1e3 * _diverging_data(None)(s)[0], _diverging_data(None)(s)[1])
    hists = fit_ensemble(seeded_models(_linear_net, seeds), SobolevLoss(0), data, cfg, seeds=seeds)
    for s, h in zip(seeds, hists):
        message, logged = _diverging_single(s, data, cfg, tmp_path)
        assert h.diverged is not None and h.diverged.split(":")[0] == message.split(":")[0]
        _assert_records_close(h.records, logged, TOL["float64"])


def _exploding_net():
    net = _linear_net()
    with torch.no_grad():
        net[0].weight.fill_(1e200)
        net[1].weight.fill_(1e200)
    return net


def test_when_every_member_diverges_at_step_0_with_progress_on(tmp_path):
    """progress=True (the default): no record is ever logged; the run ends as when progress is
    off, every History diverged with fit's message (fit raises it for each seed alone)."""
    seeds = list(SEEDS[:2])
    data = _diverging_data(None)(seeds[0])
    cfg = _cfg(progress=True)
    hists = fit_ensemble(
        seeded_models(_exploding_net, seeds), SobolevLoss(0), data, cfg, seeds=seeds
    )
    for s, h in zip(seeds, hists):
        seed_everything(s)
        with pytest.raises(FloatingPointError, match="loss became inf at step 0") as raised:
            fit(_exploding_net(), SobolevLoss(0), data, dataclasses.replace(cfg, seed=s))
        assert h.records == [] and h.diverged == str(raised.value)


# --- refusals ----------------------------------------------------------------------------------


def _refused(match, *, objective=None, data=None, cfg=None, seeds=SEEDS, models=None, **kw):
    models = seeded_models(_mlp, seeds) if models is None else models
    with pytest.raises(ValueError, match=match) as raised:
        fit_ensemble(
            models,
            SobolevLoss(1) if objective is None else objective,
            _data(1) if data is None else data,
            _cfg(steps=2) if cfg is None else cfg,
            seeds=seeds,
            **kw,
        )
    assert "\n" not in str(raised.value)


def test_lbfgs_is_refused():
    _refused("L-BFGS is not elementwise", cfg=_cfg(steps=2, optimizer="lbfgs", lr=1.0))
    _refused("L-BFGS is not elementwise", cfg=_cfg(steps=4, lbfgs_at=2))


def test_sobolev_losses_it_cannot_split_per_member_are_refused():
    gen = torch.Generator().manual_seed(0)
    _refused("own generator", objective=SobolevLoss(1, directions=2, generator=gen))
    _refused("reduction 'mean' or 'sum'", objective=SobolevLoss(1, reduction="none"))


def test_seeds_and_models_must_match():
    _refused("one model per seed: 2 models for 3 seeds", models=seeded_models(_mlp, SEEDS[:2]))
    _refused("one model per seed: 4 models for 3 seeds", models=seeded_models(_mlp, (1, 2, 3, 4)))
    _refused("distinct non-negative integers", seeds=(3, 5, 3), models=seeded_models(_mlp, SEEDS))
    _refused("distinct non-negative integers", seeds=(3, -5, 7), models=seeded_models(_mlp, SEEDS))
    _refused(
        "distinct non-negative integers", seeds=(3, True, 7), models=seeded_models(_mlp, SEEDS)
    )
    _refused("distinct non-negative integers", seeds=(), models=[])
    _refused("one architecture", models=[_mlp(), MLP(2, 1, width=9, depth=2), _mlp()])


def test_members_per_pass_must_be_a_positive_integer():
    for bad in (0, -1, True, 1.5):
        _refused("members_per_pass must be None or a positive integer", members_per_pass=bad)


def test_evaluate_must_be_one_callable_or_one_per_member():
    _refused(r"one callable per member \(3\), got 2 entries", evaluate=[None, None])
    _refused("one callable per member", evaluate=[None, "d0", None])


@pytest.mark.parametrize(
    "objective,got",
    [
        (lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), r"got \(\)"),
        (lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(1), r"got \(48,\)"),
        (lambda m, b: 1.0, "got float"),
    ],
    ids=["scalar", "per-sample", "float"],
)
def test_a_custom_objective_must_return_one_loss_per_member(objective, got):
    _refused(rf"one loss per member.*{got}", objective=objective)


def test_a_custom_objectives_terms_must_be_per_member():
    def objective(m, b):
        e = ((m(b[0]) - b[1]) ** 2).reshape(m.members, -1).mean(1)
        return e, {"D0": e.sum()}

    _refused(r"one D0 per member.*got \(\)", objective=objective)


def test_per_member_data_of_other_shapes_are_refused():
    def data(seed):
        x = _points(16 if seed != SEEDS[2] else 12)
        return (x, _f(x))

    _refused("same shapes", data=data, objective=SobolevLoss(0))


def test_fit_ensemble_refuses_to_run_under_torchrun(monkeypatch):
    import sobolev.ensemble_training as E

    monkeypatch.setattr(E.D, "setup", lambda: types.SimpleNamespace(enabled=True))
    _refused("without torchrun")


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_a_single_runs_checkpoint_and_an_ensembles_do_not_resume_each_other(tmp_path):
    cfg = _cfg(steps=2)
    single, ens = tmp_path / "single", tmp_path / "ens"
    fit(_mlp(), SobolevLoss(1), _data(1), dataclasses.replace(cfg, seed=SEEDS[0]), out_dir=single)
    fit_ensemble(
        seeded_models(_mlp, SEEDS), SobolevLoss(1), _data(1), cfg, seeds=SEEDS, out_dir=ens
    )
    before = _snapshot(single), _snapshot(ens)
    longer = _cfg(steps=4)
    _refused(r"config differs from the checkpoint's in \[.*'seeds'.*\]", cfg=longer, out_dir=single)
    with pytest.raises(
        ValueError, match=r"config differs from the checkpoint's in \[.*'seeds'.*\]"
    ):
        fit(
            _mlp(),
            SobolevLoss(1),
            _data(1),
            dataclasses.replace(longer, seed=SEEDS[0]),
            out_dir=ens,
        )
    # nor another ensemble: other seeds, another method, per-member data
    _refused(
        r"config differs from the checkpoint's in \['seeds'\]",
        cfg=longer,
        seeds=(3, 5, 12),
        out_dir=ens,
    )
    _refused(
        r"config differs from the checkpoint's in \['ensemble'\]",
        cfg=longer,
        out_dir=ens,
        method="vmap",
    )
    # (the same data given per member are the same run: a full batch is stacked per member anyway)
    _refused(
        "data differ from the checkpoint's",
        cfg=longer,
        out_dir=ens,
        data=lambda s: tuple(t * (s + 1) for t in _data(1)),
    )
    assert (_snapshot(single), _snapshot(ens)) == before  # a refused resume writes nothing
    resumed = fit_ensemble(
        seeded_models(_mlp, SEEDS), SobolevLoss(1), _data(1), longer, seeds=SEEDS, out_dir=ens
    )
    assert [h.resumed_from for h in resumed] == [2] * N
