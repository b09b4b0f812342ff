"""Paired seeds (:mod:`sobolev_lab.seeds`): the runner, medians and ranges over seeds, paired
wins."""

import math

import pytest
import torch

from sobolev_lab.seeds import over_seeds, paired_runs, paired_wins


def test_paired_runs_seeds_every_setting_alike_after_preparing_each_seed_once():
    calls = []

    def prepare(seed):
        calls.append(("prepare", seed))
        torch.rand(5)  # the seed's data may use the RNG: the settings still start alike
        return f"data{seed}"

    def train(setting, seed, shared):
        calls.append((setting, seed, shared))
        return (setting, seed, torch.rand(()).item())  # the "initialisation"

    runs = paired_runs(["L2", "H1"], [3, 7], train, prepare)
    assert calls == [
        ("prepare", 3),
        ("L2", 3, "data3"),
        ("H1", 3, "data3"),
        ("prepare", 7),
        ("L2", 7, "data7"),
        ("H1", 7, "data7"),
    ]
    assert list(runs) == ["L2", "H1"] and [r[1] for r in runs["H1"]] == [3, 7]
    for i in range(2):  # paired: the same draw for both settings in each seed
        assert runs["L2"][i][2] == runs["H1"][i][2]
    assert runs["L2"][0][2] != runs["L2"][1][2]
    torch.manual_seed(3)
    assert runs["L2"][0][2] == torch.rand(()).item()  # seeded with the seed itself


def test_paired_runs_without_prepare_passes_none_and_settings_may_be_tuples():
    runs = paired_runs([(1, "a"), (2, "a")], range(2), lambda s, seed, shared: (s, seed, shared))
    assert runs[(2, "a")] == [((2, "a"), 0, None), ((2, "a"), 1, None)]


def test_paired_runs_refuses_repeated_settings():
    with pytest.raises(ValueError, match="settings must be distinct"):
        paired_runs(["L2", "L2"], range(1), lambda *a: None)


def test_over_seeds_medians_ranges_and_diverged_seeds():
    r = over_seeds(
        [{"err": 0.3, "name": "a"}, {"err": math.nan, "name": "b"}, {"err": 0.1, "name": "c"}]
    )
    assert r["err"] == 0.3 and r["range"]["err"] == [0.1, math.inf]  # NaN counts as +inf
    assert r["name"] == "a" and "name" not in r["range"]  # non-numbers: the first seed's
    assert [p["name"] for p in r["per_seed"]] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="at least one seed"):
        over_seeds([])


def test_paired_wins_counts_seeds_by_index():
    a = over_seeds([{"e": 1.0}, {"e": 5.0}, {"e": math.inf}])
    b = over_seeds([{"e": 2.0}, {"e": 4.0}, {"e": 3.0}])
    assert paired_wins(a, b, "e") == (1, 3)
    # a non-finite value (a diverged seed) loses either way
    assert paired_wins(a, b, "e", lower_is_better=False) == (1, 3)
    with pytest.raises(ValueError, match="same seeds.*3 and 1"):
        paired_wins(a, over_seeds([{"e": 1.0}]), "e")
