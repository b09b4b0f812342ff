"""The training loop: optimisers (Adam, SGD, L-BFGS, Adam → L-BFGS), schedules, progress, JSONL
metrics, atomic checkpoints and bit-for-bit resume.

A run directory holds ``metrics.jsonl`` (one JSON record per logged step) and ``checkpoint.pt``
(written atomically every ``checkpoint_every`` steps, on SIGINT/SIGTERM and at the end). Calling
:func:`fit` again on the same directory resumes from the checkpoint: model, optimiser, schedule,
step counter, data order and all RNG streams are restored, so the resumed run reproduces the
uninterrupted one exactly; metrics logged after the checkpoint are dropped and recomputed.

Launched with ``torchrun`` (or inside an initialised process group), :func:`fit` trains data-
parallel (see :mod:`sobolev.distributed`): every rank draws the same global batch, trains on its
shard with the unwrapped model, and gradients, loss and terms are averaged over ranks weighted by
shard size, so each step equals the single-process step on the global batch. Random directions
and other draws from torch's global RNG are reseeded each step from (seed, rank, step). Rank 0
writes the metrics and checkpoints (with every rank's RNG states) and shows progress; on resume
rank 0 reads the checkpoint and broadcasts it, each rank restoring its own RNG states.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed as D
from .losses import SobolevLoss

Objective = Callable[[nn.Module, tuple[Tensor, ...]], "Tensor | tuple[Tensor, dict[str, Tensor]]"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
OPTIMIZERS = ("adam", "sgd", "lbfgs")
SCHEDULES = ("constant", "cosine", "exponential", "step")


@dataclass
class TrainConfig:
    """Settings of :func:`fit`.

    ``lbfgs_at``: switch from the first optimiser to L-BFGS at this step (the published
    experiments switch at half the budget). ``batch_size=None`` trains full-batch; distributed,
    ``batch_size`` is the global batch, split over the ranks.
    ``schedule``: ``constant``, ``cosine`` (to ``lr·lr_min_factor``), ``exponential``
    (factor ``gamma`` per step) or ``step`` (×``gamma`` every ``step_size`` steps); it applies to
    the first optimiser only.
    """

    steps: int = 1000
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    lbfgs_at: int | None = None
    lbfgs_lr: float = 1.0
    lbfgs_max_iter: int = 20
    lbfgs_line_search: str | None = "strong_wolfe"
    schedule: str = "constant"
    gamma: float = 0.1
    step_size: int = 1000
    lr_min_factor: float = 0.0
    batch_size: int | None = None
    log_every: int = 100
    checkpoint_every: int = 500
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    progress: bool = True
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be an integer ≥ 0, got {self.steps!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be ≥ 1, got {self.log_every}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be None or ≥ 1, got {self.batch_size}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be ≥ 0 (0: only at the end and on interrupt), got {self.checkpoint_every}")
        if self.step_size < 1:
            raise ValueError(f"step_size must be ≥ 1, got {self.step_size}")
        if self.lbfgs_at is not None and not 0 <= self.lbfgs_at <= self.steps:
            raise ValueError(f"lbfgs_at must be None or in [0, steps={self.steps}], got {self.lbfgs_at}")
        for name in ("gamma", "lbfgs_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be None or positive, got {self.grad_clip}")
        if not 0 <= self.lr_min_factor <= 1:
            raise ValueError(f"lr_min_factor must be in [0, 1], got {self.lr_min_factor}")
        if self.optimizer == "lbfgs" and self.schedule != "constant":
            raise ValueError("schedule applies to adam and sgd only: use schedule='constant' with optimizer='lbfgs'")


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :func:`fit` after SIGINT/SIGTERM, once the checkpoint of the last step is written."""


@dataclass
class History:
    """What :func:`fit` returns: the logged records, and the step it resumed from (if any)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one logged quantity."""
        pts = [(r["step"], r[key]) for r in self.records if key in r]
        return [s for s, _ in pts], [v for _, v in pts]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _make_optimizer(name: str, params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    lr = cfg.lbfgs_lr if cfg.optimizer != "lbfgs" else cfg.lr
    return torch.optim.LBFGS(params, lr=lr, max_iter=cfg.lbfgs_max_iter, line_search_fn=cfg.lbfgs_line_search)


def _make_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    horizon = cfg.lbfgs_at if cfg.lbfgs_at is not None else cfg.steps
    lr_at: Callable[[int], float] = {
        "constant": lambda s: 1.0,
        "cosine": lambda s: cfg.lr_min_factor + (1 - cfg.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * min(s, horizon) / max(horizon, 1))),
        "exponential": lambda s: cfg.gamma**s,
        "step": lambda s: cfg.gamma ** (s // cfg.step_size),
    }[cfg.schedule]
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def _rng_state(data_gen: torch.Generator) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "data": data_gen.get_state(),
    }


def _set_rng_state(state: dict[str, Any], data_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    data_gen.set_state(state["data"])


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, fsync, then rename over ``path``: never a torn file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a checkpoint is always consistent."""

    def __init__(self) -> None:
        self.flag = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Interrupt":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.flag = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Batches:
    """Endless minibatches of ``data`` in a seeded random order (one permutation per epoch)."""

    def __init__(self, n: int, batch_size: int | None, gen: torch.Generator) -> None:
        self.n, self.bs, self.gen = n, batch_size, gen
        self.perm: Tensor | None = None
        self.pos = 0

    def next(self) -> Tensor | None:
        if self.bs is None or self.bs >= self.n:
            return None
        if self.perm is None or self.pos + self.bs > self.n:
            self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
        idx = self.perm[self.pos : self.pos + self.bs]
        self.pos += self.bs
        return idx

    def state(self) -> dict[str, Any]:
        return {"perm": self.perm, "pos": self.pos}

    def load(self, s: dict[str, Any]) -> None:
        self.perm, self.pos = s["perm"], s["pos"]


def as_objective(objective: Objective | SobolevLoss) -> Objective:
    """``objective`` as a callable ``(model, batch) -> loss | (loss, terms)`` (a SobolevLoss reads ``batch = (x, u, Du, …)``)."""
    if isinstance(objective, SobolevLoss):
        loss_fn = objective

        def obj(model: nn.Module, batch: tuple[Tensor, ...]):
            x, *target = batch
            if len(target) == 1 and callable(target[0]):  # (x, target_fn): exact derivatives by autodiff
                target = target[0]
            return loss_fn(model, x, target, return_terms=True)

        return obj
    return objective


def call_objective(obj: Objective, model: nn.Module, batch: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Tensor]]:
    """``(loss, terms)`` of an objective, ``terms`` empty when it returns only the loss."""
    res = obj(model, batch)
    return res if isinstance(res, tuple) else (res, {})


#: settings a resumed run may change: the budget, and how it is watched and stored
_RESUME_MAY_CHANGE = ("steps", "progress", "log_every", "checkpoint_every", "device")


def _check_resumable(ck: dict[str, Any], cfg: TrainConfig, out_dir: Any) -> None:
    """A checkpoint continues only the run it belongs to: same settings, not past ``cfg.steps``."""
    if ck["step"] > cfg.steps:
        raise ValueError(f"the checkpoint in {out_dir} is at step {ck['step']} > steps={cfg.steps}: "
                         "use a new out_dir or a larger steps")
    diff = sorted(k for k, v in asdict(cfg).items() if k not in _RESUME_MAY_CHANGE and ck["config"].get(k) != v)
    if diff:
        raise ValueError(f"config differs from the checkpoint's in {diff}: resuming would mix two runs; "
                         "use a new out_dir")


def _read_records(path: Path, keep: int) -> list[dict[str, Any]]:
    """The first ``keep`` records of ``metrics.jsonl`` (those logged before the checkpoint);
    rewrites the file without the rest, so resumed logging continues it seamlessly."""
    lines = path.read_text().splitlines() if path.exists() else []
    if len(lines) < keep:
        raise RuntimeError(f"{path} has {len(lines)} records but the checkpoint expects {keep}")
    records = [json.loads(line) for line in lines[:keep]]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)
    return records


def _reseed(seed: int, rank: int, step: int, objective: Any) -> None:
    """Distributed runs: torch's global RNG (and a SobolevLoss's own generator) from (seed, rank, step)."""
    s = D.step_seed(seed, rank, step)
    torch.manual_seed(s)
    gen = getattr(objective, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(s)


def _local_batch(data: tuple[Tensor, ...], idx: Tensor | None, ctx: D.Dist) -> tuple[Tensor, ...]:
    """The samples ``idx`` of the global batch (``None``: all) that fall to this rank."""
    if ctx.enabled:
        idx = D.shard(torch.arange(data[0].shape[0]) if idx is None else idx, ctx)
    return data if idx is None else tuple(t[idx] for t in data)


def fit(
    model: nn.Module,
    objective: Objective | SobolevLoss,
    data: Sequence[Tensor],
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    desc: str = "train",
) -> History:
    """Train ``model`` on ``data`` and return its :class:`History`.

    Args:
        model: the network; moved to ``config.device`` and ``config.dtype``. A
            ``DistributedDataParallel`` wrapper is unwrapped (gradients are averaged by hand).
        objective: a :class:`SobolevLoss` (data is then ``(x, u, Du, …)``), or any callable
            ``objective(model, batch) -> loss`` or ``-> (loss, {term: value})``, where ``batch`` is
            the tuple of data tensors indexed by a minibatch. Distributed runs need it to be a mean
            over the samples of the batch (as ``SobolevLoss`` with ``reduction="mean"`` is).
        data: tensors with a common first (sample) dimension.
        config: a :class:`TrainConfig`.
        out_dir: run directory for ``metrics.jsonl`` and ``checkpoint.pt``; if it holds a
            checkpoint, training resumes from it. ``None`` trains in memory only. Distributed:
            rank 0's ``out_dir`` is the one used.
        evaluate: called on the model at each logged step; its floats are logged (held-out
            errors, for example). Distributed: called on every rank, so every rank returns the
            same :class:`History`.
        desc: label of the progress bar.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) or an initialised process group, every rank calls
    ``fit`` with the same arguments and trains its shard of each global batch
    (``batch_size`` is the global batch; full batch shards all samples); see the module doc.
    """
    cfg = config or TrainConfig()
    ctx = D.setup()
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    device, dtype = ctx.device(resolve_device(cfg.device)), DTYPES[cfg.dtype]
    data = tuple(t.detach().to(device=device, dtype=dtype if t.is_floating_point() else t.dtype) for t in data)
    if not data:
        raise ValueError("data must hold at least one tensor")
    n = data[0].shape[0]
    if any(t.shape[0] != n for t in data):
        raise ValueError(f"data tensors must share their first dimension, got {[tuple(t.shape) for t in data]}")
    for i, t in enumerate(data):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"data[{i}] contains NaN or Inf")
    model.to(device=device, dtype=dtype)
    obj = as_objective(objective)
    out = Path(out_dir) if out_dir is not None and ctx.is_main else None
    ckpt_path = out / "checkpoint.pt" if out else None
    metrics_path = out / "metrics.jsonl" if out else None

    data_gen = torch.Generator().manual_seed(cfg.seed)
    batches = _Batches(n, cfg.batch_size, data_gen)
    phase = cfg.optimizer
    opt = _make_optimizer(phase, model.parameters(), cfg)
    sched = _make_schedule(opt, cfg)
    step, elapsed = 0, 0.0
    history = History()
    # rank 0 decides between a fresh start and a resume, and hands its checkpoint to every rank
    ck, records = None, []
    if ckpt_path is not None and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        records = _read_records(metrics_path, ck["n_records"])
    elif out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if metrics_path.exists():
            metrics_path.unlink()
    plan = D.broadcast_object({"ck": ck, "records": records, "checkpointing": ckpt_path is not None,
                               "config": asdict(cfg), "n": n}, ctx)
    if plan["config"] != asdict(cfg) or plan["n"] != n:
        raise ValueError(f"rank {ctx.rank} called fit with a config or data size other than rank 0's: "
                         "every rank must pass the same config and data")
    if plan["ck"] is not None:
        _check_resumable(plan["ck"], cfg, out_dir)
    checkpointing, ck = plan["checkpointing"], plan["ck"]
    if ck is not None:
        model.load_state_dict(ck["model"])
        phase = ck["phase"]
        if phase != cfg.optimizer:
            opt = _make_optimizer(phase, model.parameters(), cfg)
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["schedule"])
        step, elapsed = ck["step"], ck["elapsed"]
        batches.load(ck["batches"])
        rngs = ck["rng_ranks"]
        if len(rngs) != ctx.world_size and ctx.is_main:
            warnings.warn(f"resuming with {ctx.world_size} process(es) a run checkpointed with {len(rngs)}: "
                          "training continues correctly but is not bit-for-bit the uninterrupted run", stacklevel=2)
        _set_rng_state(rngs[ctx.rank % len(rngs)], data_gen)
        history.resumed_from = step
        history.records = plan["records"]
    else:
        torch.manual_seed(cfg.seed)
        D.broadcast_module(model, ctx)

    def checkpoint() -> None:
        if not checkpointing:
            return
        rngs = D.gather_objects(_rng_state(data_gen), ctx)  # every rank's streams, for exact resume
        if ckpt_path is not None:
            save_atomic({
                "model": model.state_dict(), "optimizer": opt.state_dict(), "schedule": sched.state_dict(),
                "phase": phase, "step": step, "elapsed": elapsed, "batches": batches.state(),
                "rng_ranks": rngs, "config": asdict(cfg), "n_records": len(history.records),
            }, ckpt_path)

    def log(loss: float, terms: dict[str, float], evals: dict[str, float], at_time: float, lr: float) -> None:
        rec = {"step": step, "time": at_time, "loss": loss, **terms, "lr": lr,
               "phase": phase, **evals}
        history.records.append(rec)
        if metrics_path is not None:
            with open(metrics_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")

    def run_evaluate() -> dict[str, float]:
        if evaluate is None:
            return {}
        model.eval()
        try:
            return {k: float(v) for k, v in evaluate(model).items()}
        finally:
            model.train()

    def global_loss(batch: tuple[Tensor, ...], sink: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss and terms averaged over ranks (after ``backward`` when grad is on, averaging gradients too)."""
        loss, terms = call_objective(obj, model, batch)
        if torch.is_grad_enabled():
            loss.backward()
        (loss, *vals), halt = D.average(model.parameters() if torch.is_grad_enabled() else (),
                                        [loss, *terms.values()], batch[0].shape[0], stop.flag, ctx)
        sink["halt"] = sink.get("halt", False) or halt
        return loss, dict(zip(terms, vals))

    def closure_for(batch: tuple[Tensor, ...], sink: dict[str, Any]) -> Callable[[], Tensor]:
        def closure() -> Tensor:  # returns the global loss: every rank takes the same L-BFGS decisions
            opt.zero_grad(set_to_none=True)
            loss, terms = global_loss(batch, sink)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower the learning rate")
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if "loss" not in sink:  # the first evaluation is at the step's starting parameters
                sink["loss"], sink["terms"] = loss.detach(), {k: v.detach() for k, v in terms.items()}
            return loss
        return closure

    bar = None
    if cfg.progress and ctx.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc=desc, leave=False, dynamic_ncols=True, disable=None)
    model.train()
    halt = False  # distributed: the ranks' agreed stop (a signal may reach them at different steps)
    with _Interrupt() as stop:
        while step < cfg.steps and not (halt if ctx.enabled else stop.flag):
            if cfg.lbfgs_at is not None and step >= cfg.lbfgs_at and phase != "lbfgs":
                phase = "lbfgs"
                opt = _make_optimizer(phase, model.parameters(), cfg)
            if ctx.enabled:
                _reseed(cfg.seed, ctx.rank, step, objective)
            logging = step % cfg.log_every == 0
            evals = run_evaluate() if logging else {}
            batch = _local_batch(data, batches.next(), ctx)
            sink: dict[str, Any] = {}
            t_start, lr, t0 = elapsed, opt.param_groups[0]["lr"], time.perf_counter()
            opt.step(closure_for(batch, sink))
            if phase != "lbfgs":
                sched.step()
            elapsed += time.perf_counter() - t0
            halt = sink["halt"]
            if logging:  # values at the parameters this step started from
                log(float(sink["loss"]), {k: float(v) for k, v in sink["terms"].items()}, evals, t_start, lr)
                if bar is not None:
                    bar.set_postfix(loss=f"{float(sink['loss']):.3e}")
            step += 1
            if bar is not None:
                bar.update(1)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint()
    if bar is not None:
        bar.close()
    checkpoint()  # the state after the last completed step; the final record below is not in it
    if step < cfg.steps:
        raise TrainingInterrupted(f"stopped at step {step} of {cfg.steps}" + (f"; checkpoint in {out}" if out else ""))
    if step == cfg.steps:
        if ctx.enabled:
            _reseed(cfg.seed, ctx.rank, step, objective)
        batch = _local_batch(data, batches.next(), ctx)
        with torch.no_grad():  # derivatives w.r.t. x still work; no graph to the parameters
            loss, terms = global_loss(batch, {})
        log(float(loss), {k: float(v) for k, v in terms.items()}, run_evaluate(), elapsed, opt.param_groups[0]["lr"])
    return history
