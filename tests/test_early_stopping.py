"""Early stopping in :func:`sobolev.fit`: the held-out split (``validation_split``), ``val_loss``
records, ``patience``, ``restore_best`` and resume, against runs without it."""

import dataclasses
import signal

import pytest
import torch

from sobolev import MLP, SobolevLoss, TrainConfig, fit, fit_ensemble, seed_everything
from sobolev.training import TrainingInterrupted, validation_split

pytestmark = pytest.mark.usefixtures("double")


def _noisy():
    """Few noisy samples and a wide network: the held-out loss falls, then rises (overfit)."""
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-1, 1, 40, dtype=torch.float64).unsqueeze(1)
    y = torch.sin(3 * x) + 0.3 * torch.randn(40, 1, generator=g, dtype=torch.float64)
    return x, y


def _model():
    seed_everything(3)
    return MLP(1, 1, width=64, depth=3, activation="tanh").double()


def _cfg(**kw):
    base = dict(
        steps=1500,
        lr=1e-2,
        log_every=25,
        progress=False,
        checkpoint_every=0,
        seed=2,
        validation_split=0.25,
        patience=6,
    )
    return TrainConfig(**{**base, **kw})


def test_the_split_holds_out_a_seeded_quarter_that_training_never_sees():
    x = torch.arange(40.0).unsqueeze(1)
    train, val = validation_split((x, x), _cfg())
    assert val[0].shape[0] == 10 and train[0].shape[0] == 30
    assert set(train[0][:, 0].tolist()).isdisjoint(val[0][:, 0].tolist())
    again, _ = validation_split((x, x), _cfg())
    other, _ = validation_split((x, x), _cfg(seed=3))
    assert torch.equal(again[0], train[0]) and not torch.equal(other[0], train[0])
    seen = set()

    def objective(model, batch):
        if torch.is_grad_enabled():
            seen.update(batch[0][:, 0].tolist())
        return (model(batch[0]) - batch[1]).square().mean()

    fit(torch.nn.Linear(1, 1).double(), objective, (x, x), _cfg(steps=20, patience=None))
    assert seen == set(train[0][:, 0].tolist())


def test_val_loss_is_the_objective_on_the_held_out_samples():
    x, y = _noisy()
    model = _model()
    hist = fit(model, SobolevLoss(0), (x, y), _cfg(steps=50, patience=None, restore_best=False))
    _, (xv, yv) = validation_split((x, y), _cfg())
    want = (model(xv) - yv).square().mean().item()
    assert hist.records[-1]["val_loss"] == pytest.approx(want, rel=1e-12)
    assert all("val_loss" in r for r in hist.records)


def test_patience_stops_and_the_best_weights_are_restored():
    x, y = _noisy()
    model = _model()
    hist = fit(model, SobolevLoss(0), (x, y), _cfg())
    logged = [(r["step"], r["val_loss"]) for r in hist.records[:-1]]
    best_step, best = min(logged, key=lambda p: p[1])
    assert hist.stopped_at is not None and hist.stopped_at < 1500  # it overfits, then stops
    assert hist.best_step == best_step
    after = [s for s, _ in logged if s > best_step]
    assert len(after) == 6 and hist.stopped_at == after[-1] + 1  # patience: 6 logged steps
    assert hist.records[-1]["val_loss"] == pytest.approx(best, rel=1e-12)  # the best weights
    # the same run stopped at best_step by its budget ends with the same weights
    ref = _model()
    fit(ref, SobolevLoss(0), (x, y), _cfg(steps=best_step, patience=None, restore_best=False))
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_without_restore_best_the_run_ends_with_its_last_weights():
    x, y = _noisy()
    hist = fit(_model(), SobolevLoss(0), (x, y), _cfg(restore_best=False))
    assert hist.records[-1]["val_loss"] > min(r["val_loss"] for r in hist.records)


def test_an_interrupted_run_resumes_to_the_same_stop_and_weights(tmp_path):
    x, y = _noisy()
    ref_model = _model()
    ref = fit(ref_model, SobolevLoss(0), (x, y), _cfg())
    stop_at = ref.best_step + 25  # after the best: the best state must come from the checkpoint

    def stop(model, calls=[0]):  # noqa: B006 - a counter across calls
        calls[0] += 1
        if calls[0] == stop_at // 25 + 1:
            signal.raise_signal(signal.SIGINT)  # in this thread: fit turns it into a checkpoint
        return {}

    with pytest.raises(TrainingInterrupted):
        fit(_model(), SobolevLoss(0), (x, y), _cfg(), out_dir=tmp_path, evaluate=stop)
    model = _model()
    hist = fit(model, SobolevLoss(0), (x, y), _cfg(), out_dir=tmp_path)
    assert (hist.best_step, hist.stopped_at) == (ref.best_step, ref.stopped_at)
    assert [r["val_loss"] for r in hist.records] == [r["val_loss"] for r in ref.records]
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(validation_split=0.0, patience=3), "patience must be None without"),
        (dict(validation_split=1.0), "validation_split must be a fraction"),
        (dict(validation_split=-0.1), "validation_split must be a fraction"),
        (dict(patience=0), "patience must be"),
    ],
)
def test_bad_early_stopping_settings(kw, words):
    with pytest.raises(ValueError, match=words):
        _cfg(**kw)


def test_a_split_that_leaves_nothing_to_train_and_ensembles_are_refused():
    x = torch.zeros(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="leaves none to train on"):
        fit(torch.nn.Linear(1, 1).double(), SobolevLoss(0), (x, x), _cfg(validation_split=0.9))
    cfg = dataclasses.replace(_cfg(), steps=2)
    with pytest.raises(ValueError, match="no validation_split"):
        fit_ensemble([_model(), _model()], SobolevLoss(0), (x, x), cfg, seeds=[0, 1])
