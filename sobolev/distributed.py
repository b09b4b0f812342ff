"""Multi-process (data-parallel) training on torch.distributed: process group, sharding, gradient
averaging and per-rank seeds (the ``torchrun`` launcher is ``sobolev_lab.cli.launch``).

Design. :func:`sobolev.fit` does not wrap the model in ``DistributedDataParallel``. Sobolev losses
differentiate the model with respect to its inputs (``torch.func`` transforms, double backward
with ``create_graph=True``), which a DDP-wrapped module does not support, and a term that leaves
some parameters without a gradient (a derivative-only loss never reaches the last bias) makes
DDP raise or hang. Instead every rank computes its loss on the *unwrapped* model over its shard of
the global batch, runs one ordinary backward, and :func:`average` then all-reduces, in one
collective, the gradients (a missing gradient counts as zero; it stays ``None`` only when it is
missing on every rank), the loss and its terms, and the ranks' stop flags. Each rank's values are
weighted by its shard size, so for an objective that is a mean over the batch, the averaged
gradient equals the single-process gradient of the whole global batch even when the shards are
unequal. Parameters are broadcast from rank 0 once; after that every rank applies the same
averaged gradient, so the parameters stay identical (and the model's ``state_dict`` has no
``module.`` prefix: checkpoints move freely between single- and multi-process runs).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Dist:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its
    node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """``device`` with CUDA pinned to this process's GPU (``cuda:local_rank``) when
        distributed."""
        if self.enabled and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return device


def setup() -> Dist:
    """The process group of this process, initialising it from ``torchrun``'s environment if needed.

    An already initialised group is used as it is. Otherwise, when ``WORLD_SIZE`` > 1 and ``RANK``
    are set (``torchrun``, or ``MASTER_ADDR``/``MASTER_PORT`` set by hand), the group is
    initialised with ``gloo`` (CPU build) or ``cpu:gloo,cuda:nccl`` (CUDA: NCCL for GPU tensors),
    and this process is pinned to GPU ``LOCAL_RANK``. Otherwise: one process (``Dist()``).
    """
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), local)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return Dist()
    if not dist.is_available():
        raise RuntimeError(
            f"WORLD_SIZE={world} asks for {world} processes, "
            "but this torch build has no torch.distributed"
        )
    if torch.cuda.is_available():
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    atexit.register(_teardown)
    return Dist(dist.get_rank(), dist.get_world_size(), local)


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, ctx: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; tensors should be on the CPU)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, ctx: Dist) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_module(model: nn.Module, ctx: Dist) -> None:
    """Overwrite every rank's parameters and buffers with rank 0's."""
    if ctx.enabled:
        with torch.no_grad():
            for t in chain(model.parameters(), model.buffers()):
                dist.broadcast(t.data, src=0)


def shard(idx: Tensor, ctx: Dist) -> Tensor:
    """This rank's part of the global batch ``idx`` (sample indices, (B,)):
    ``idx[rank::world_size]``.

    Whole samples go to a rank (a sample is one row of the data: a point with its derivative
    targets, or a whole image or grid), so numerical derivative targets stay intact. Shard sizes
    differ by at most one; :func:`average` weights each rank by its shard size.
    """
    if not ctx.enabled:
        return idx
    if idx.numel() < ctx.world_size:
        raise ValueError(
            f"the global batch has {idx.numel()} samples, "
            f"fewer than the {ctx.world_size} processes: "
            "raise batch_size or use fewer processes"
        )
    return idx[ctx.rank :: ctx.world_size]


def step_seed(seed: int, rank: int, step: int) -> int:
    """A well-mixed 32-bit seed from (seed, rank, step): per-rank, reproducible random streams."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def average(
    params: Iterable[nn.Parameter],
    values: Sequence[Tensor],
    weight: float,
    flag: bool,
    ctx: Dist,
) -> tuple[list[Tensor], bool]:
    """Average gradients and scalars over ranks, weighted by ``weight`` (this rank's shard size).

    In one all-reduce: each ``p.grad`` becomes ``Σ_r w_r g_r / Σ_r w_r`` (``None`` counts as zero;
    it stays ``None`` when it is ``None`` on every rank, as in a single process); ``values``
    (scalar tensors: the loss and its terms) are averaged the same way and returned detached;
    the flag is OR-ed over ranks. One process: returns ``values`` and ``flag`` as they are.
    """
    if not ctx.enabled:
        return list(values), flag
    params = [p for p in params if p.requires_grad]
    ref = values[0]
    parts = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(ref.dtype) * weight
        for p in params
    ]
    parts += [v.detach().reshape(1).to(ref.dtype) * weight for v in values]
    parts.append(
        torch.tensor(
            [weight, float(flag), *(float(p.grad is not None) for p in params)],
            dtype=ref.dtype,
            device=ref.device,
        )
    )
    buf = torch.cat(parts)
    dist.all_reduce(buf)
    n_p, n_v = len(params), len(values)
    total, stop, has = buf[-n_p - 2], bool(buf[-n_p - 1] > 0), buf[buf.numel() - n_p :]
    offset = 0
    for p, h in zip(params, has.tolist()):
        g = buf[offset : offset + p.numel()].view_as(p) / total
        offset += p.numel()
        p.grad = g.to(p.dtype) if h > 0 else None
    averaged = list((buf[offset : offset + n_v] / total).unbind())
    return averaged, stop
