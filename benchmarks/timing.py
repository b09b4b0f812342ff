"""Timing and memory helpers shared by the benchmark modules.

Every benchmark reports the median of several repeats after warm-up, and ratios to a baseline
measured in the same process (this machine is noisy: absolute times move, ratios much less).
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from sobolev.memory import peak_memory_bytes  # noqa: F401  (re-exported for the benchmark modules)


def median_time(
    fn: Callable[[], Any], *, repeats: int = 7, warmup: int = 2, number: int = 1
) -> float:
    """Median wall time in seconds of ``number`` calls of ``fn``, over ``repeats``
    after ``warmup``."""
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


def interleaved_times(
    fns: dict[str, Callable[[], Any]], *, repeats: int = 7, warmup: int = 2
) -> dict[str, float]:
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


def matmul_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of the matrix products (``mm``, ``addmm``, ``bmm``) ``fn`` runs,
    backward passes included, from the PyTorch profiler's FLOP estimates."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    return int(
        sum(e.flops for e in prof.events() if e.name in ("aten::mm", "aten::addmm", "aten::bmm"))
    )


def python_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak Python-heap (NumPy included) memory while ``fn`` runs, via tracemalloc."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
