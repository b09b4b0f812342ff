"""Tests of the benchmarks' measuring helpers (benchmarks/timing.py)."""

import runpy
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("double")


def test_peak_memory_bytes_counts_live_tensors():
    """The benchmarks' CPU memory probe sees exactly the peak of live tensor bytes."""
    timing = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "timing.py"))
    n = 1_000_000  # float64: 8 MB each

    def fn():
        a = torch.empty(n)
        b = torch.empty(n)
        del a
        c = torch.empty(n)  # a is gone: at most two live at once
        del b, c

    assert timing["peak_memory_bytes"](fn) == 2 * 8 * n


def test_the_differential_ml_epoch_benchmark_times_the_paper_recipe(monkeypatch):
    """One small cell: both methods train an epoch under the notebooks' batch rule."""
    from benchmarks import bench_differential_ml as b

    monkeypatch.setattr(b, "DIMS", (2,))
    monkeypatch.setattr(b, "QUICK_SIZES", (512,))
    (row,) = b.run(quick=True)["rows"]
    assert (row["d"], row["n"], row["batch"]) == (2, 512, 256)
    assert row["standard s/epoch"] > 0 and row["differential s/epoch"] > 0
