"""The student-teacher, architectures and conditioning experiments: outputs exist and are well formed
(tiny settings; the scientific results come from the full runs)."""

import dataclasses
import json

import pytest

from sobolev.experiments import architectures, conditioning, student_teacher


def _check_outputs(summary, out):
    json.dumps(summary, allow_nan=False)  # strict JSON: no inf/NaN
    assert summary["figures"]
    for fig in summary["figures"]:
        assert (out / fig).stat().st_size > 1000
    assert (out / "table.md").read_text().startswith("### ")


def test_student_teacher_tiny(tmp_path):
    cfg = dataclasses.replace(student_teacher.Config.quick(), activations=("relu", "sine"), seeds=2, steps=20,
                              log_every=10, n_train=64, n_test=64, thresholds=(0.9, 1e-9))
    s = student_teacher.run(cfg, tmp_path)
    _check_outputs(s, tmp_path)
    for act in ("relu", "sine"):
        for loss in ("L2", "H1"):
            r = s["results"][act][loss]
            assert 0 < r["value_rel_err"] < 10 and 0 < r["grad_rel_err"] < 10
            assert r["value_rel_err_range"][0] <= r["value_rel_err"] <= r["value_rel_err_range"][1]
            assert r["reach_value_err"]["1e-09"] == {"step": None, "time": None, "reached": 0, "of": 2}
            assert (tmp_path / act / loss / "seed1" / "metrics.jsonl").exists()


def test_architectures_tiny(tmp_path):
    cfg = dataclasses.replace(architectures.Config.quick(), losses=("L2", "H2"), n_train=64, n_test=20, width=8,
                              depth=1, ff_features=4, steps=12, lbfgs_at=10, lbfgs_max_iter=3, log_every=4)
    s = architectures.run(cfg, tmp_path)
    _check_outputs(s, tmp_path)
    for model in architectures.MODELS:
        for loss in ("L2", "H2"):
            r = s["results"]["f1"][model][loss]
            assert all(r[f"d{j}_rel_err"] > 0 for j in range(3)) and r["train_time_s"] > 0
            recs = [json.loads(line) for line in (tmp_path / "f1" / model / loss / "rep0" / "metrics.jsonl").open()]
            assert {r["phase"] for r in recs} == {"adam", "lbfgs"}  # the switch happened
    with pytest.raises(ValueError, match="models"):
        architectures.run(dataclasses.replace(cfg, models=("resnet",)), tmp_path / "bad")


def test_conditioning_tiny_and_resume(tmp_path):
    cfg = dataclasses.replace(conditioning.Config.quick(), activations=("relu", "tanh"), steps=20, n_checkpoints=4,
                              n_train=100, n_test=100)
    s = conditioning.run(cfg, tmp_path)
    _check_outputs(s, tmp_path)
    for act in ("relu", "tanh"):
        for loss in ("L2", "H1"):
            r = s["results"][act][loss]
            assert r["eta"] > 0 and r["init"][f"{loss}_lmax"] > 0
            assert r["eta"] == pytest.approx(1.0 / r["init"][f"{loss}_lmax"])  # η = c/λ_max at the start
    assert len(s["rates"]) == 4
    if s["theory_available"]:
        assert "population" in s["results"]["relu"]["L2"] and "population" not in s["results"]["tanh"]["L2"]
    again = conditioning.run(cfg, tmp_path)  # every run resumes from its final checkpoint
    assert again["results"] == s["results"]
    with pytest.raises(ValueError, match="eta_factor"):
        conditioning.run(dataclasses.replace(cfg, eta_factor=2.5), tmp_path / "bad")
