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
    """Peak bytes of tensor memory allocated while ``fn`` runs, above what was live before.

    On GPU this is the CUDA allocator's peak. On the CPU it replays the profiler's allocator
    records (one ``[memory]`` record per allocation, +bytes, and per free, -bytes) in time
    order and returns the maximum of the running sum: the peak of bytes allocated inside ``fn``
    and live at the same time. Frees of tensors allocated before ``fn`` are not recorded, so
    memory released from earlier does not offset the count.
    """
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    records = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    )
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
        peak = max(peak, live)
    return peak


def matmul_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of the matrix products (``mm``, ``addmm``, ``bmm``) ``fn`` runs,
    backward passes included, from the PyTorch profiler's FLOP estimates."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    return int(sum(e.flops for e in prof.events() if e.name in ("aten::mm", "aten::addmm", "aten::bmm")))


def python_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak Python-heap (NumPy included) memory while ``fn`` runs, via tracemalloc."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
