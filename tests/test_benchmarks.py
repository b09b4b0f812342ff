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
