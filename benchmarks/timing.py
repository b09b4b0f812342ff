"""Timing and memory helpers shared by the benchmark modules.

Every benchmark reports the median of several repeats after warm-up, and ratios to a baseline
measured in the same process (this machine is noisy: absolute times move, ratios much less).
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from typing import Any, Callable

import torch


def median_time(fn: Callable[[], Any], *, repeats: int = 7, warmup: int = 2, number: int = 1) -> float:
    """Median wall time in seconds of ``number`` calls of ``fn``, over ``repeats`` after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def interleaved_times(fns: dict[str, Callable[[], Any]], *, repeats: int = 7, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin so drift hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def peak_memory_bytes(fn: Callable[[], Any]) -> int:
    """Peak memory allocated while ``fn`` runs: CUDA allocator on GPU, else CPU allocations.

    On the CPU this uses the PyTorch profiler's memory accounting of tensor allocations.
    """
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # Running sum of allocations and frees in event order gives the peak of live tensor memory.
    events = sorted(
        (e for e in prof.events() if e.cpu_memory_usage != 0),
        key=lambda e: e.time_range.start,
    )
    live = peak = 0
    for e in events:
        live += e.cpu_memory_usage
        peak = max(peak, live)
    return peak


def python_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak Python-heap (NumPy included) memory while ``fn`` runs, via tracemalloc."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
