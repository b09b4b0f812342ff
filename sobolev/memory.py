"""Peak memory of a computation: the CUDA allocator's peak on GPU, the torch profiler on CPU.

On the CPU, ``tracemalloc`` does not see torch's allocations and process RSS is dominated by the
allocator's caching, so the peak is the running sum of the profiler's tensor allocation and free
records in time order: the peak of tensor memory allocated inside ``fn`` and live at once.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


def peak_memory_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of tensor memory allocated while ``fn`` runs, above what was live before.

    On GPU this is the CUDA allocator's peak. On the CPU it replays the profiler's allocator
    records (one ``[memory]`` record per allocation, +bytes, and per free, -bytes) in time order
    and returns the maximum of the running sum. Frees of tensors allocated before ``fn`` are not
    recorded, so memory released from earlier does not offset the count.
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
    with (
        _native_stderr_silenced(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
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


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: the profiler's C++ side logs start/stop lines there.
    Python exceptions still propagate (their tracebacks are printed later, after the restore)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def training_step_peak(
    model: nn.Module,
    objective: Callable[[nn.Module, tuple[Tensor, ...]], Any],
    batch: tuple[Tensor, ...],
) -> int:
    """Peak memory (bytes) of one training step's forward, loss and backward pass on ``batch``
    (parameters and optimiser state excluded: they are live before); gradients are cleared after."""

    def step() -> None:
        model.zero_grad(set_to_none=True)
        res = objective(model, batch)
        (res[0] if isinstance(res, tuple) else res).backward()

    try:
        return peak_memory_bytes(step)
    finally:
        model.zero_grad(set_to_none=True)
