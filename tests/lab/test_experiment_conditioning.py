"""The conditioning experiment: a tiny run, its tables, resume, and the η check."""

import dataclasses

import pytest

from sobolev_lab.experiments import conditioning


def test_conditioning_tiny_and_resume(tmp_path, check_outputs):
    cfg = dataclasses.replace(
        conditioning.Config.quick(),
        activations=("relu", "tanh"),
        steps=20,
        n_checkpoints=4,
        n_train=100,
        n_test=100,
        seeds=2,
    )
    s = conditioning.run(cfg, tmp_path)
    table = check_outputs(conditioning, cfg, s, tmp_path, 2)
    for act in ("relu", "tanh"):
        for loss in ("L2", "H1"):
            r = s["results"][act][loss]
            assert r["eta"] > 0 and r["init"][f"{loss}_lmax"] > 0 and len(r["per_seed"]) == 2
            for p in r["per_seed"]:  # η = c/λ_max at the start, per seed
                assert p["eta"] == pytest.approx(1.0 / p[f"init_{loss}_lmax"])
    # shallow ReLU students: H1's empirical Hessian is better conditioned at the same weights in
    # every seed (measured κ 10–13 against 70–73)
    relu = s["results"]["relu"]["L2"]
    for p in relu["per_seed"]:
        assert 3 * p["init_H1_cond"] < p["init_L2_cond"]
    assert "| relu | L2 | 72 [70, 73] | 12 [10, 13] | 2/2 |" in table
    assert len(s["rates"]) == 8
    if s["theory_available"]:
        assert (
            "population" in s["results"]["relu"]["L2"]
            and "population" not in s["results"]["tanh"]["L2"]
        )
    again = conditioning.run(cfg, tmp_path)  # every run resumes from its final checkpoint
    assert again["results"] == s["results"]
    with pytest.raises(ValueError, match="eta_factor"):
        conditioning.run(dataclasses.replace(cfg, eta_factor=2.5), tmp_path / "bad")
