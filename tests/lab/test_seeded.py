"""Helpers of the paired-seed experiments (:mod:`sobolev_lab.experiments.seeded`): diverged seeds,
final values over seeds, the training settings of a run."""

import json
import math

import pytest

from sobolev.metrics import reach_over_seeds
from sobolev_lab.experiments import architectures, diffusion, regression, student_teacher
from sobolev_lab.experiments.seeded import (
    diverged_seeds,
    finals_over_seeds,
    records_or_diverged,
    train_config,
)
from sobolev_lab.report import json_safe
from sobolev_lab.seeds import paired_wins


def test_a_diverged_seed_counts_as_the_worst(tmp_path):
    """A run that raises FloatingPointError keeps what it logged and is continued with +∞ errors to
    the end: the worst seed in medians and paired comparisons, never reaching a threshold after it
    diverged, null in strict JSON (the official code drops such a repeat instead)."""
    (tmp_path / "metrics.jsonl").write_text(
        "".join(
            json.dumps(
                {"step": s, "time": 0.1 * s, "loss": 1.0 / (s + 1), "d0_rel": 0.5, "phase": "adam"}
            )
            + "\n"
            for s in (0, 5)
        )
    )

    def diverging():
        raise FloatingPointError("loss became inf")

    recs = records_or_diverged(diverging, tmp_path, 20, 5)
    assert [r["step"] for r in recs] == [0, 5, 10, 15, 20] and recs[1]["d0_rel"] == 0.5
    assert all(
        r["d0_rel"] == math.inf and r["loss"] == math.inf and r["diverged"] for r in recs[2:]
    )
    assert recs[-1]["time"] == 0.5 and recs[-1]["phase"] == "adam"
    ok = [
        {"step": s, "time": 0.1 * s, "loss": 0.1, "d0_rel": 0.01, "phase": "adam"}
        for s in (0, 5, 10, 15, 20)
    ]
    assert records_or_diverged(lambda: type("H", (), {"records": ok})(), tmp_path, 20, 5) == ok
    h1 = finals_over_seeds([recs, ok], {"value": "d0_rel"})
    l2 = finals_over_seeds([ok, ok], {"value": "d0_rel"})
    assert h1["range"]["value"] == [0.01, math.inf] and paired_wins(h1, l2, "value") == (0, 2)
    assert diverged_seeds(json.loads(json.dumps(json_safe(h1))), "value") == 1
    assert reach_over_seeds([recs], "d0_rel", [0.9, 0.1])["0.1"]["reached"] == 0


def test_train_config_takes_the_shared_settings_and_the_overrides():
    cfg = student_teacher.Config(batch_size=0, steps=40, lr=0.05, optimizer="sgd", dtype="float32")
    tc = train_config(cfg, seed=3, checkpoint_every=10, progress=False)
    assert (tc.steps, tc.lr, tc.optimizer, tc.dtype, tc.seed) == (40, 0.05, "sgd", "float32", 3)
    assert tc.batch_size is None  # 0: full batch
    assert (tc.checkpoint_every, tc.progress, tc.log_every) == (10, False, cfg.log_every)
    assert train_config(cfg, seed=0, batch_size=8).batch_size == 8  # overrides win
    ar = architectures.Config.paper()
    tc = train_config(ar, seed=ar.seed)
    assert tc.lbfgs_line_search is None and (tc.lbfgs_at, tc.lbfgs_lr) == (25_000, 0.01)


def test_train_config_ignores_settings_trainconfig_does_not_have():
    cfg = regression.Config()  # epochs, width, seed, … are the experiment's
    tc = train_config(cfg, seed=7, steps=cfg.epochs)
    assert (tc.steps, tc.seed, tc.schedule) == (5000, 7, "cosine")
    with pytest.raises(ValueError, match="schedule"):  # a name TrainConfig reads differently
        train_config(diffusion.Config(), seed=0)
