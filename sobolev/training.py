"""The training loop: optimisers (Adam, SGD, L-BFGS, Adam → L-BFGS), schedules, progress, JSONL
metrics, atomic checkpoints and bit-for-bit resume.

A run directory holds ``metrics.jsonl`` (one JSON record per logged step) and ``checkpoint.pt``
(written atomically every ``checkpoint_every`` steps, on SIGINT/SIGTERM and at the end). A
checkpoint holds only tensors and plain data (RNG states as lists and tuples, the config as a
dict) and is loaded with ``weights_only=True``, so loading one cannot run code. Calling
:func:`fit` again on the same directory resumes from the checkpoint: model, optimiser, schedule,
step counter, data order and all RNG streams are restored, so the resumed run reproduces the
uninterrupted one exactly; metrics logged after the checkpoint are dropped and recomputed. A
resume must be the same run: the same settings (``steps`` may grow unless a cosine schedule runs
over it; ``log_every``, ``checkpoint_every``, ``progress`` and ``device`` may change) and the same
data (the checkpoint holds their shapes and a digest).

The run directory is locked while :func:`fit` trains in it (``.lock``, holding the pid, under
``flock``: one process at a time; a lock left by a killed process is taken over with a warning),
and nothing is written through a symbolic link: a directory that is a link, or whose
``checkpoint.pt``, ``metrics.jsonl``, their ``.tmp`` files or ``.lock`` are links, is refused
before anything is written, and files are opened with ``O_NOFOLLOW``.

:func:`fit` reads in three parts: validate and plan (:func:`_as_data` checks and converts the
data once; :func:`_plan` decides between a fresh start and a resume and checks the checkpoint
against the config, all before anything is written, so a refused call leaves the run directory
as it was), then :meth:`_Run.train_step` once per step, which logs and checkpoints when due, and
finally the last checkpoint and record.

Launched with ``torchrun`` (or inside an initialised process group), :func:`fit` trains data-
parallel (see :mod:`sobolev.distributed`): every rank draws the same global batch, trains on its
shard with the unwrapped model, and gradients, loss and terms are averaged over ranks weighted by
shard size, so each step equals the single-process step on the global batch. Random directions
and other draws from torch's global RNG are reseeded each step from (seed, rank, step). Rank 0
writes the metrics and checkpoints (with every rank's RNG states) and shows progress; on resume
rank 0 reads the checkpoint and broadcasts it, each rank restoring its own RNG states.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import random
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain, pairwise
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed as D
from .config import (
    Rule,
    at_least,
    between,
    boolean,
    error,
    integer,
    one_of,
    positive,
    rules,
    validate,
)
from .losses import SobolevLoss
from .models.ensemble import Ensemble

try:
    import fcntl
except ImportError:  # not POSIX: the lock falls back to the pid it holds
    fcntl = None  # type: ignore[assignment]

Objective = Callable[[nn.Module, tuple[Tensor, ...]], "Tensor | tuple[Tensor, dict[str, Tensor]]"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
OPTIMIZERS = ("adam", "sgd", "lbfgs")
SCHEDULES = ("constant", "cosine", "exponential", "step", "one-cycle", "piecewise-linear")
#: the one-cycle schedule of the differential ML notebooks (Huge & Savine), as (fraction of the
#: horizon, factor of ``lr``) knots: from ~0 up to ``lr`` at 20 %, down to lr/10 at 60 %, to
#: lr·1e-5 at 90 %, ~0 at the end (with lr = 0.1, the notebooks' rates exactly)
ONE_CYCLE_KNOTS: tuple[tuple[float, float], ...] = (
    (0.0, 1e-7),
    (0.2, 1.0),
    (0.6, 0.1),
    (0.9, 1e-5),
    (1.0, 1e-7),
)
_KNOTS = Rule(
    "(fraction, factor) pairs with fractions increasing from 0 to 1 and factors ≥ 0",
    lambda k: (
        not isinstance(k, str)
        and len(k) >= 2
        and all(len(p) == 2 and all(math.isfinite(float(v)) for v in p) for p in k)
        and float(k[0][0]) == 0.0
        and float(k[-1][0]) == 1.0
        and all(float(a[0]) < float(b[0]) for a, b in pairwise(k))
        and all(float(p[1]) >= 0 for p in k)
    ),
)


_SPLIT = Rule("a fraction in [0, 1)", lambda v: 0 <= float(v) < 1)


def _schedule_rule(v: object) -> bool:
    return callable(v) or v in SCHEDULES


WEIGHT_DECAY_ON = ("all", "weights")
_BETAS = Rule(
    "two numbers in [0, 1)",
    lambda b: len(b) == 2 and all(0 <= float(v) < 1 for v in b) and not isinstance(b, str),
)


@dataclass
class TrainConfig:
    """Settings of :func:`fit`.

    ``lbfgs_at``: switch from the first optimiser to L-BFGS at this step (the published
    experiments switch at half the budget). ``batch_size=None`` trains full-batch; distributed,
    ``batch_size`` is the global batch, split over the ranks.
    ``schedule``: ``constant``, ``cosine`` (to ``lr·lr_min_factor``), ``exponential``
    (factor ``gamma`` per step), ``step`` (×``gamma`` every ``step_size`` steps),
    ``piecewise-linear`` (``lr`` × the factor interpolated linearly between the ``lr_knots``
    (fraction of the steps, factor)), ``one-cycle`` (piecewise-linear on :data:`ONE_CYCLE_KNOTS`,
    the differential ML notebooks' schedule with peak ``lr``), or any callable ``f(step) ->
    factor of lr`` (saved by its qualified name: a resume needs the same function); it applies to
    the first optimiser only, whose steps (up to ``lbfgs_at``) are the horizon.
    ``betas``, ``eps``: Adam's. ``weight_decay_on``: ``"all"`` parameters, or ``"weights"`` only
    (parameters with ≥ 2 dimensions: not biases or normalisation gains); Adam and SGD.
    ``dtype``: ``None`` keeps the model's floating dtype (data are cast to it); ``"float32"`` or
    ``"float64"`` casts model and data. ``checkpoint_every=0`` checkpoints only at the end and on
    an interrupt. ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
    …; a device this machine lacks is refused here.

    Early stopping: ``validation_split`` holds out that fraction of the samples (drawn with
    ``seed``, never trained on) and logs the objective on them as ``val_loss`` at every logged
    step; with ``patience`` training stops after that many logged steps without a lower
    ``val_loss``; with ``restore_best`` the run ends with the weights of the lowest ``val_loss``
    (:attr:`History.best_step`). Resuming restores all of it.

    Each setting's rule is in its field's metadata, checked by :func:`sobolev.config.validate`
    (``lbfgs_at`` ≤ ``steps`` and L-BFGS without a schedule are checked after it).
    """

    steps: int = field(default=1000, metadata=rules(integer(0)))
    optimizer: str = field(default="adam", metadata=rules(one_of(OPTIMIZERS)))
    lr: float = field(default=1e-3, metadata=rules(positive))
    momentum: float = field(default=0.0, metadata=rules(at_least(0)))
    weight_decay: float = field(default=0.0, metadata=rules(at_least(0)))
    lbfgs_at: int | None = field(default=None, metadata=rules(integer(0)))
    lbfgs_lr: float = field(default=1.0, metadata=rules(positive))
    lbfgs_max_iter: int = field(default=20, metadata=rules(integer(1)))
    lbfgs_line_search: str | None = field(
        default="strong_wolfe", metadata=rules(one_of(("strong_wolfe",)))
    )
    schedule: str | Callable[[int], float] = field(
        default="constant",
        metadata=rules(Rule(f"one of {SCHEDULES} or a callable step -> factor", _schedule_rule)),
    )
    lr_knots: tuple[tuple[float, float], ...] = field(
        default=ONE_CYCLE_KNOTS, metadata=rules(_KNOTS)
    )
    gamma: float = field(default=0.1, metadata=rules(positive))
    step_size: int = field(default=1000, metadata=rules(integer(1)))
    lr_min_factor: float = field(default=0.0, metadata=rules(between(0, 1)))
    batch_size: int | None = field(default=None, metadata=rules(integer(1)))
    log_every: int = field(default=100, metadata=rules(integer(1)))
    checkpoint_every: int = field(default=500, metadata=rules(integer(0)))
    seed: int = field(default=0, metadata=rules(integer(0)))
    dtype: str | None = field(default=None, metadata=rules(one_of(DTYPES)))
    device: str = "auto"
    progress: bool = field(default=True, metadata=rules(boolean))
    grad_clip: float | None = field(default=None, metadata=rules(positive))
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata=rules(_BETAS))
    eps: float = field(default=1e-8, metadata=rules(positive))
    weight_decay_on: str = field(default="all", metadata=rules(one_of(WEIGHT_DECAY_ON)))
    validation_split: float = field(default=0.0, metadata=rules(_SPLIT))
    patience: int | None = field(default=None, metadata=rules(integer(1)))
    restore_best: bool = field(default=True, metadata=rules(boolean))

    def __post_init__(self) -> None:
        validate(self)
        if self.patience is not None and self.validation_split == 0:
            raise error("patience", "None without a validation_split > 0", self.patience)
        if self.lbfgs_at is not None and self.lbfgs_at > self.steps:
            raise error("lbfgs_at", f"None or in [0, steps={self.steps}]", self.lbfgs_at)
        if self.optimizer == "lbfgs" and self.schedule != "constant":
            raise ValueError(
                "schedule applies to adam and sgd only: "
                "use schedule='constant' with optimizer='lbfgs'"
            )
        self.betas = tuple(float(b) for b in self.betas)
        self.lr_knots = tuple((float(f), float(v)) for f, v in self.lr_knots)
        resolve_device(self.device)  # a device this machine lacks is refused here, not mid-run


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :func:`fit` after SIGINT/SIGTERM, once the checkpoint of the last step is
    written."""


@dataclass
class History:
    """What :func:`fit` returns: the logged records, and the step it resumed from (if any).

    ``diverged``: for a member of :func:`sobolev.fit_ensemble` whose loss became NaN or Inf, the
    message :func:`fit` raises (as ``FloatingPointError``) in that case; its records stop there.
    With a ``validation_split``: ``best_step``, the logged step of the lowest ``val_loss`` (the
    weights the run ends with under ``restore_best``), and ``stopped_at``, the step at which
    ``patience`` ran out (``None`` if the budget did).
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None
    diverged: str | None = None
    best_step: int | None = None
    stopped_at: int | None = None

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
    """``"auto"`` picks CUDA when present, else CPU; a device this machine lacks is a
    ``ValueError`` naming it."""
    expected = "'auto', 'cpu', 'cuda', 'cuda:N' or another torch device name"
    if not isinstance(device, str):
        raise error("device", expected, device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise error("device", expected, device) from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(
                f"device={device!r} but CUDA is not available on this machine: "
                "use device='auto' or 'cpu'"
            )
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device={device!r} but this machine has {n} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} but MPS is not available on this machine")
    return dev


def _make_optimizer(name: str, model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if name == "lbfgs":
        lr = cfg.lbfgs_lr if cfg.optimizer != "lbfgs" else cfg.lr
        return torch.optim.LBFGS(
            model.parameters(),
            lr=lr,
            max_iter=cfg.lbfgs_max_iter,
            line_search_fn=cfg.lbfgs_line_search,
        )
    params: Any = model.parameters()
    if cfg.weight_decay_on == "weights" and cfg.weight_decay > 0:
        ps = [p for p in model.parameters() if p.requires_grad]
        axis = 1 if isinstance(model, Ensemble) else 0  # a member axis leads every parameter
        params = [
            g
            for g in (
                {"params": [p for p in ps if p.ndim - axis >= 2]},
                {"params": [p for p in ps if p.ndim - axis < 2], "weight_decay": 0.0},
            )
            if g["params"]
        ]
    if name == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _interpolate(knots: tuple[tuple[float, float], ...], t: float) -> float:
    """The factor at fraction ``t`` of the horizon, linear between the knots (the last factor
    after 1)."""
    return float(np.interp(t, [f for f, _ in knots], [v for _, v in knots]))


def schedule_name(schedule: str | Callable[[int], float]) -> str:
    """A schedule as stored in checkpoints: its name, or ``callable:module.qualname``."""
    if callable(schedule):
        mod = getattr(schedule, "__module__", None) or "?"
        return f"callable:{mod}.{getattr(schedule, '__qualname__', type(schedule).__name__)}"
    return schedule


def _make_schedule(
    opt: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule of the first optimiser (``None`` for a constant rate)."""
    if cfg.schedule == "constant":
        return None
    if callable(cfg.schedule):
        return torch.optim.lr_scheduler.LambdaLR(opt, cfg.schedule)
    horizon = cfg.lbfgs_at if cfg.lbfgs_at is not None else cfg.steps
    knots = ONE_CYCLE_KNOTS if cfg.schedule == "one-cycle" else cfg.lr_knots
    lr_at: Callable[[int], float] = {
        "one-cycle": lambda s: _interpolate(knots, s / max(horizon, 1)),
        "piecewise-linear": lambda s: _interpolate(knots, s / max(horizon, 1)),
        "cosine": lambda s: (
            cfg.lr_min_factor
            + (1 - cfg.lr_min_factor)
            * 0.5
            * (1 + math.cos(math.pi * min(s, horizon) / max(horizon, 1)))
        ),
        "exponential": lambda s: cfg.gamma**s,
        "step": lambda s: cfg.gamma ** (s // cfg.step_size),
    }[cfg.schedule]
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def _rng_state(data_gen: torch.Generator | None) -> dict[str, Any]:
    """Every RNG stream as plain data (tensors, ints, floats, lists), which ``torch.load`` reads
    with ``weights_only=True``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "python": random.getstate(),
        "data": None if data_gen is None else data_gen.get_state(),
    }


def _set_rng_state(state: dict[str, Any], data_gen: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if data_gen is not None:
        data_gen.set_state(state["data"])


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_nofollow(path: Path, mode: str) -> Any:
    """``open(path, mode)`` (``"wb"``, ``"w"`` or ``"a"``) that refuses to write through a symbolic
    link (``O_NOFOLLOW``: a link planted after the checks of :func:`_check_run_dir` is refused)."""
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link: refusing to write through it")
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW
    flags |= os.O_APPEND if mode == "a" else os.O_TRUNC
    return os.fdopen(os.open(path, flags, 0o644), mode)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, fsync, then rename over ``path``: never a torn file.

    Neither ``path`` nor its temporary file may be a symbolic link (``ValueError`` naming it)."""
    tmp = path.with_name(path.name + ".tmp")
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link: refusing to write through it")
    with _open_nofollow(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a checkpoint is always
    consistent."""

    def __init__(self) -> None:
        self.flag = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
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


def as_objective(objective: Objective | SobolevLoss, *, check_finite: bool = True) -> Objective:
    """``objective`` as a callable ``(model, batch) -> loss | (loss, terms)`` (a SobolevLoss
    reads ``batch = (x, u, Du, …)``).

    ``check_finite=False`` skips the SobolevLoss's per-call NaN/Inf check of supplied target
    stacks (for data checked once up front, as :func:`fit` does); targets from a callable are
    always checked.
    """
    if isinstance(objective, SobolevLoss):
        loss_fn = objective

        def obj(model: nn.Module, batch: tuple[Tensor, ...]):
            x, *target = batch
            if len(target) == 1 and callable(
                target[0]
            ):  # (x, target_fn): exact derivatives by autodiff
                return loss_fn(model, x, target[0], return_terms=True)
            return loss_fn(model, x, target, return_terms=True, check_finite=check_finite)

        return obj
    return objective


def call_objective(
    obj: Objective, model: nn.Module, batch: tuple[Tensor, ...]
) -> tuple[Tensor, dict[str, Tensor]]:
    """``(loss, terms)`` of an objective, ``terms`` empty when it returns only the loss."""
    res = obj(model, batch)
    return res if isinstance(res, tuple) else (res, {})


# --- the run directory: no symbolic links, one process at a time ---------------------------------

#: the lock file of a run directory (holds the pid of the process training in it)
LOCK_NAME = ".lock"
#: every entry :func:`fit` writes in its run directory
_RUN_ENTRIES = (
    "checkpoint.pt",
    "checkpoint.pt.tmp",
    "metrics.jsonl",
    "metrics.jsonl.tmp",
    LOCK_NAME,
)


def _check_run_dir(out: Path) -> None:
    """Refuse a run directory that is a symbolic link, or whose entries that :func:`fit` writes
    are links or not regular files, before anything is written (writes never follow a link)."""
    if out.is_symlink():
        raise ValueError(
            f"out_dir {out} is a symbolic link: refusing to write through it; "
            f"pass the directory itself ({out.resolve()})"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a directory")
    for name in _RUN_ENTRIES:
        p = out / name
        if p.is_symlink():
            raise ValueError(
                f"{p} is a symbolic link: refusing to write through it out of the run "
                "directory; remove it or use a new out_dir"
            )
        if p.exists() and not p.is_file():
            raise ValueError(f"{p} is not a regular file; remove it or use a new out_dir")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


class _RunLock:
    """The lock of a run directory: ``out/.lock`` holding the owner's pid, held with ``flock``
    (released by the system when the process dies) and removed on release.

    A second process gets a one-line ``ValueError``; a lock file left by a process that died
    (kill -9) is taken over with a warning. Without ``fcntl`` the pid decides: a live pid holds it.
    """

    def __init__(self, out: Path) -> None:
        self.path, self.fd = out / LOCK_NAME, -1
        for _ in range(5):  # the holder may remove the file between our open and flock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
            except OSError as e:  # read-only, or a link planted since _check_run_dir
                raise ValueError(f"cannot lock out_dir {out} ({self.path}: {e.strerror})") from None
            try:
                old = os.read(fd, 64).decode(errors="replace").strip()
                if not self._lock(fd, old):
                    raise ValueError(
                        f"out_dir {out} is in use by process {old or '?'} (lock {self.path}): "
                        "wait for it to finish, or use another out_dir"
                    )
                st, now = os.fstat(fd), os.stat(self.path, follow_symlinks=False)
                if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            if old and old != str(os.getpid()):
                warnings.warn(
                    f"{self.path}: took over the stale lock of process {old}, which is no longer "
                    "running (it was killed, or the machine restarted)",
                    stacklevel=4,
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self.fd = fd
            return
        raise ValueError(f"could not lock out_dir {out} (its lock {self.path} keeps changing)")

    @staticmethod
    def _lock(fd: int, old: str) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError:  # a file system without flock: the pid decides
                pass
        return not (old.isdigit() and int(old) != os.getpid() and _pid_alive(int(old)))

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            st, now = os.fstat(self.fd), os.stat(self.path, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self.fd)  # closing releases the flock
            self.fd = -1


# --- validate and plan: nothing is written until the run is known to be valid ------------------

#: settings a resumed run may change: the budget, and how it is watched and stored
_RESUME_MAY_CHANGE = ("steps", "progress", "log_every", "checkpoint_every", "device")
_CHECKPOINT_KEYS = (
    "model",
    "optimizer",
    "schedule",
    "phase",
    "step",
    "elapsed",
    "batches",
    "rng_ranks",
    "config",
    "n_records",
)
_DATA_EXPECTED = (
    "a tuple of tensors (or NumPy arrays) with a common first dimension, e.g. (x, u, Du)"
)


def _model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter or buffer (torch's default if
    none)."""
    return next(
        (t.dtype for t in chain(model.parameters(), model.buffers()) if t.is_floating_point()),
        torch.get_default_dtype(),
    )


def _as_data(data: Any, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """``data`` as checked tensors on ``device``, floating ones cast to ``dtype``; array-likes
    are converted."""
    if (
        isinstance(data, (Tensor, np.ndarray, str, bytes))
        or not isinstance(data, Sequence)
        or not data
    ):
        raise ValueError(
            f"data must be {_DATA_EXPECTED}, got {type(data).__name__}"
            + (" (wrap a single tensor as (x,))" if isinstance(data, (Tensor, np.ndarray)) else "")
        )
    out = []
    for i, t in enumerate(data):
        if not isinstance(t, Tensor):
            if isinstance(t, (tuple, list)) and any(isinstance(s, Tensor) for s in t):
                raise ValueError(
                    f"data[{i}] is a {type(t).__name__} of tensors: data must be a flat tuple of "
                    "tensors; unpack a derivative stack, e.g. (x, *stack)"
                )
            try:
                t = torch.as_tensor(np.asarray(t))
            except (TypeError, ValueError, RuntimeError):
                raise ValueError(
                    f"data[{i}] must be a tensor or a numeric array-like, got {type(t).__name__}"
                ) from None
        if t.ndim == 0:
            raise ValueError(f"data[{i}] must have a first (sample) dimension, got a 0-d value")
        out.append(t.detach().to(device=device, dtype=dtype if t.is_floating_point() else t.dtype))
    n = out[0].shape[0]
    if any(t.shape[0] != n for t in out):
        raise ValueError(
            f"data tensors must share their first dimension, got {[tuple(t.shape) for t in out]}"
        )
    if n == 0:
        raise ValueError("data must hold at least one sample, got a first dimension of 0")
    for i, t in enumerate(out):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"data[{i}] contains NaN or Inf")
    return tuple(out)


def _data_id(data: tuple[Tensor, ...]) -> dict[str, Any]:
    """What a checkpoint records of its data: the shapes, and a digest of the shapes, dtypes and
    up to 4096 evenly spaced values of each tensor (cheap; another data set of the same shape
    differs in it)."""
    h = hashlib.blake2b(digest_size=16)
    for t in data:
        flat = t.detach().reshape(-1)
        idx = torch.linspace(0, max(flat.numel() - 1, 0), min(flat.numel(), 4096)).long()
        idx.clamp_(max=max(flat.numel() - 1, 0))  # float32 rounds indices above 2**24 up
        sample = flat[idx.to(flat.device)].cpu()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(sample.to(torch.float64 if t.is_floating_point() else torch.int64).numpy())
    return {"shapes": [list(t.shape) for t in data], "digest": h.hexdigest()}


#: inputs resolved more coarsely than this (|x|·eps of the dtype) are warned about
INPUT_RESOLUTION_LIMIT = 2.0**-10


def magnitudes(data: Sequence[Tensor]) -> tuple[float, float]:
    """The largest magnitude of the inputs (``data[0]``) and of the other floating data."""
    mags = [float(t.abs().max()) if t.is_floating_point() and t.numel() else 0.0 for t in data]
    return mags[0], max(mags[1:], default=0.0)


def _check_scale(data: tuple[Tensor, ...], dtype: torch.dtype, ctx: D.Dist) -> tuple[float, float]:
    """The largest magnitudes of the inputs (``data[0]``) and of the other floating data; warns
    when the inputs are so large that ``dtype`` resolves them only coarsely (float32: |x| ≳ 8e3),
    where a network's units saturate and its derivatives lose their precision."""
    x_max, rest = magnitudes(data)
    step = x_max * torch.finfo(dtype).eps
    if step > INPUT_RESOLUTION_LIMIT and ctx.is_main:
        name = str(dtype).removeprefix("torch.")
        warnings.warn(
            f"the inputs x (data[0]) reach |x| = {x_max:.3g}, where {name} resolves x only to "
            f"{step:.2g}: a network's units saturate and its derivatives lose their precision, so "
            "training may stall; standardise x (sobolev.normalize.Normalizer) or use float64",
            stacklevel=3,
        )
    return x_max, rest


def _run_config(cfg: TrainConfig, dtype: torch.dtype) -> dict[str, Any]:
    """The settings that define a run: ``cfg`` with ``dtype`` resolved to the one trained in."""
    return {
        **asdict(cfg),
        "dtype": str(dtype).removeprefix("torch."),
        "schedule": schedule_name(cfg.schedule),
        "lr_knots": [list(k) for k in cfg.lr_knots],
    }


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, or a ``ValueError`` naming it when it cannot be read.

    It is loaded with ``weights_only=True``: only tensors and plain data (ints, floats, strings,
    lists, tuples, dicts) are read, so a file that would run code when unpickled is refused.
    """
    what = "delete it (or the run directory) to start afresh, or use a new out_dir"
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise ValueError(_unreadable(path, e, what)) from None
        raise ValueError(
            f"checkpoint {path} holds objects other than tensors and plain data (a file written "
            f"by an older sobolev, or not by sobolev.fit), which could run code when loaded: "
            f"refused; {what}"
        ) from None
    except Exception as e:  # noqa: BLE001 — empty, truncated, foreign: torch raises many kinds
        raise ValueError(_unreadable(path, e, what)) from None
    missing = (
        [k for k in _CHECKPOINT_KEYS if k not in ck]
        if isinstance(ck, dict)
        else list(_CHECKPOINT_KEYS)
    )
    if missing:
        raise ValueError(f"{path} is not a checkpoint of sobolev.fit (missing {missing}); {what}")
    return ck


def _unreadable(path: Path, e: Exception, what: str) -> str:
    reason = (str(e).splitlines() or [""])[0]
    return (
        f"checkpoint {path} cannot be read ({type(e).__name__}: {reason}): "
        f"it is empty, truncated or not a checkpoint; {what}"
    )


def _check_resumable(
    ck: dict[str, Any], run_config: dict[str, Any], data_id: dict[str, Any], out_dir: Any
) -> None:
    """A checkpoint continues only the run it belongs to: same settings and data (:func:`_data_id`),
    not past ``steps``; ``steps`` may grow unless a cosine schedule runs over it.

    Settings a checkpoint predates count at their defaults (the behaviour it was written with).
    """
    if ck["step"] > run_config["steps"]:
        raise ValueError(
            f"the checkpoint in {out_dir} is at step {ck['step']} > steps={run_config['steps']}: "
            "use a new out_dir or a larger steps"
        )
    defaults = _run_config(TrainConfig(), torch.get_default_dtype())
    del defaults["dtype"]  # a checkpoint always records its dtype
    saved = {**defaults, **ck["config"]}
    if isinstance(saved["betas"], list):
        saved["betas"] = tuple(saved["betas"])
    diff = sorted(
        {k for k, v in run_config.items() if k not in _RESUME_MAY_CHANGE and saved.get(k) != v}
        | {k for k in saved if k not in run_config}  # an ensemble's checkpoint, for one run
    )
    if diff:
        raise ValueError(
            f"config differs from the checkpoint's in {diff}: resuming would mix two runs; "
            "use a new out_dir"
        )
    if (
        run_config["schedule"] == "cosine"
        and run_config["lbfgs_at"] is None
        and saved["steps"] != run_config["steps"]
    ):
        raise ValueError(
            f"config differs from the checkpoint's in ['steps'] ({saved['steps']} → "
            f"{run_config['steps']}): the cosine schedule runs over steps, so resuming would mix "
            "two schedules; use a new out_dir"
        )
    if "data" in ck and ck["data"] != data_id:  # checkpoints before 'data' are not checked
        raise ValueError(
            f"data differ from the checkpoint's in {out_dir} (shapes {ck['data']['shapes']} → "
            f"{data_id['shapes']}, or other values): resuming would mix two runs; "
            "use a new out_dir"
        )


def _read_records(path: Path, keep: int) -> list[dict[str, Any]]:
    """The first ``keep`` records of ``metrics.jsonl`` (those logged before the checkpoint);
    reads only."""
    lines = path.read_text().splitlines() if path.exists() else []
    if len(lines) < keep:
        raise ValueError(
            f"{path} has {len(lines)} records but the checkpoint beside it expects {keep}: "
            "the run directory is incomplete; use a new out_dir"
        )
    try:
        return [json.loads(line) for line in lines[:keep]]
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON lines ({e}); use a new out_dir") from None


@dataclass
class _Plan:
    """Rank 0's decision, shared with every rank: a fresh run, or a resume from ``ck`` with
    ``records``."""

    config: dict[str, Any]
    data: dict[str, Any]
    checkpointing: bool
    ck: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)


def _plan(
    out: Path | None,
    run_config: dict[str, Any],
    data_id: dict[str, Any],
    ctx: D.Dist,
    out_dir: Any,
) -> _Plan:
    """Fresh start or resume, decided and checked on every rank before anything is written."""
    plan = _Plan(run_config, data_id, checkpointing=out is not None)
    if out is not None and (out / "checkpoint.pt").exists():
        plan.ck = _load_checkpoint(out / "checkpoint.pt")
        plan.records = _read_records(out / "metrics.jsonl", plan.ck["n_records"])
    plan = D.broadcast_object(plan, ctx)
    if plan.config != run_config or plan.data["shapes"] != data_id["shapes"]:
        raise ValueError(
            f"rank {ctx.rank} called fit with a config or data size other than rank 0's: "
            "every rank must pass the same config and data"
        )
    if plan.ck is not None:
        _check_resumable(plan.ck, run_config, data_id, out_dir)
    return plan


def _prepare_out(out: Path | None, plan: _Plan) -> None:
    """Rank 0: create the run directory, or cut ``metrics.jsonl`` back to the checkpoint's
    records."""
    if out is None:
        return
    metrics = out / "metrics.jsonl"
    if plan.ck is None:
        out.mkdir(parents=True, exist_ok=True)
        if metrics.exists():
            metrics.unlink()
    elif len(metrics.read_text().splitlines()) != len(plan.records):
        tmp = metrics.with_name(metrics.name + ".tmp")
        with _open_nofollow(tmp, "w") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in plan.records))
        os.replace(tmp, metrics)


# --- one run: its state, one step, logging and checkpoints ---------------------------------------


def _reseed(seed: int, rank: int, step: int, objective: Any) -> None:
    """Distributed runs: torch's global RNG (and a SobolevLoss's own generator) from
    (seed, rank, step)."""
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


class _Run:
    """The state of one training run (model, optimiser, schedule, data order, step, records) and
    its parts: :meth:`step` (one optimiser step), :meth:`log`, :meth:`checkpoint`, :meth:`final`."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective | SobolevLoss,
        data: tuple[Tensor, ...],
        cfg: TrainConfig,
        plan: _Plan,
        ctx: D.Dist,
        out: Path | None,
        evaluate: Callable[[nn.Module], dict[str, float]] | None,
        scale: tuple[float, float] = (0.0, 0.0),
        val: tuple[Tensor, ...] | None = None,
    ) -> None:
        self.scale, self.val = scale, val
        self.best: float | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.bad, self.stopped = 0, False
        self.model, self.objective, self.data, self.cfg, self.ctx, self.evaluate_fn = (
            model,
            objective,
            data,
            cfg,
            ctx,
            evaluate,
        )
        self.obj = as_objective(objective, check_finite=False)  # data were checked once in _as_data
        self.run_config, self.data_id = plan.config, plan.data
        self.checkpointing = plan.checkpointing
        self.ckpt_path = out / "checkpoint.pt" if out is not None else None
        self.metrics_path = out / "metrics.jsonl" if out is not None else None
        self._init_order()
        self.phase = cfg.optimizer
        self.opt = _make_optimizer(self.phase, model, cfg)
        self.sched = _make_schedule(self.opt, cfg)
        self.step, self.elapsed = 0, 0.0
        self.history = History()
        if plan.ck is None:
            torch.manual_seed(cfg.seed)
            D.broadcast_module(model, ctx)
        else:
            self._restore(plan.ck, plan.records)

    def _init_order(self) -> None:
        """The data order: a generator seeded with ``seed`` drawing one permutation per epoch."""
        self.data_gen = torch.Generator().manual_seed(self.cfg.seed)
        self.batches = _Batches(self.data[0].shape[0], self.cfg.batch_size, self.data_gen)

    def _restore(self, ck: dict[str, Any], records: list[dict[str, Any]]) -> None:
        self.model.load_state_dict(ck["model"])
        self.phase = ck["phase"]
        if self.phase != self.cfg.optimizer:
            self.opt = _make_optimizer(self.phase, self.model, self.cfg)
        self.opt.load_state_dict(ck["optimizer"])
        if self.sched is not None:
            self.sched.load_state_dict(ck["schedule"])
        self.step, self.elapsed = ck["step"], ck["elapsed"]
        self.batches.load(ck["batches"])
        rngs = ck["rng_ranks"]
        if len(rngs) != self.ctx.world_size and self.ctx.is_main:
            warnings.warn(
                f"resuming with {self.ctx.world_size} process(es) "
                f"a run checkpointed with {len(rngs)}: "
                "training continues correctly but is not bit-for-bit the uninterrupted run",
                stacklevel=6,
            )
        _set_rng_state(rngs[self.ctx.rank % len(rngs)], self.data_gen)
        self.history.resumed_from = self.step
        self.history.records = records
        es = ck.get("early_stopping")
        if es is not None:
            self.best, self.bad, self.stopped = es["best"], es["bad"], es["stopped"]
            self.best_state = es["state"]
            self.history.best_step, self.history.stopped_at = es["best_step"], es["stopped_at"]

    def _batch(self) -> tuple[Tensor, ...]:
        if self.ctx.enabled:
            _reseed(self.cfg.seed, self.ctx.rank, self.step, self.objective)
        return _local_batch(self.data, self.batches.next(), self.ctx)

    def _loss(
        self, batch: tuple[Tensor, ...], flag: bool
    ) -> tuple[Tensor, dict[str, Tensor], bool]:
        """Loss and terms averaged over ranks (after ``backward`` when grad is on, averaging
        gradients too), and the ranks' agreed stop flag."""
        loss, terms = call_objective(self.obj, self.model, batch)
        if torch.is_grad_enabled():
            loss.backward()
        if not self.ctx.enabled:
            return loss, terms, flag
        params = self.model.parameters() if torch.is_grad_enabled() else ()
        (loss, *vals), flag = D.average(
            params, [loss, *terms.values()], batch[0].shape[0], flag, self.ctx
        )
        return loss, dict(zip(terms, vals)), flag

    def train_step(self, stop: _Interrupt) -> bool:
        """One optimiser step (logged first when due); returns the ranks' agreed stop flag."""
        cfg = self.cfg
        if cfg.lbfgs_at is not None and self.step >= cfg.lbfgs_at and self.phase != "lbfgs":
            self.phase = "lbfgs"
            self.opt = _make_optimizer(self.phase, self.model, cfg)
        logging = self.step % cfg.log_every == 0
        evals = self._evaluate() if logging else {}
        if logging:  # at the parameters this step starts from, which the best state keeps
            self._early_stopping(evals)
        batch = self._batch()
        sink: dict[str, Any] = {}

        def closure() -> (
            Tensor
        ):  # returns the global loss: every rank takes the same L-BFGS decisions
            self.opt.zero_grad(set_to_none=True)
            loss, terms, sink["halt"] = self._loss(batch, stop.flag)
            value = self._check_finite(loss)
            if cfg.grad_clip is not None:
                self._clip(cfg.grad_clip)
            if "loss" not in sink:  # the first evaluation is at the step's starting parameters
                sink["loss"] = value
                if logging:
                    sink["terms"] = {k: self._value(v) for k, v in terms.items()}
            return loss

        t_start, lr, t0 = self.elapsed, self.opt.param_groups[0]["lr"], time.perf_counter()
        if self.phase == "lbfgs":
            self.opt.step(closure)
        else:
            closure()
            self.opt.step()
            if self.sched is not None:
                self.sched.step()
        self._after_step()
        self.elapsed += time.perf_counter() - t0
        if logging:  # values at the parameters this step started from
            self.log(sink["loss"], sink["terms"], evals, t_start, lr)
        self.step += 1
        if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
            self.checkpoint()
        return sink["halt"]

    def live(self) -> bool:
        """Whether anything is left to train (not after early stopping; an ensemble stops when
        every member diverged)."""
        return not self.stopped

    def _validate(self) -> dict[str, float]:
        """``val_loss``: the objective on the held-out samples (none without a split)."""
        if self.val is None:
            return {}
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():  # derivatives w.r.t. x still work
                loss, _, _ = self._loss(_local_batch(self.val, None, self.ctx), False)
        finally:
            self.model.train(was)
        return {"val_loss": self._value(loss)}

    def _early_stopping(self, evals: dict[str, float]) -> None:
        """Keep the weights of the lowest ``val_loss`` so far; stop after ``patience`` logged
        steps without one."""
        if "val_loss" not in evals:
            return
        v = evals["val_loss"]
        if self.best is None or v < self.best:
            self.best, self.bad, self.history.best_step = v, 0, self.step
            if self.cfg.restore_best:
                state = self.model.state_dict()
                self.best_state = {k: t.detach().clone() for k, t in state.items()}
            return
        self.bad += 1
        if self.cfg.patience is not None and self.bad >= self.cfg.patience:
            self.stopped, self.history.stopped_at = True, self.step + 1

    def _value(self, t: Tensor) -> Any:
        """A logged value: a float (one run), or a list of floats, one per member (ensembles)."""
        return t.detach().item()

    def _check_finite(self, loss: Tensor) -> Any:
        """The loss as logged (:meth:`_value`); ``FloatingPointError`` when it is not finite."""
        value = self._value(loss)
        if not math.isfinite(value):
            raise FloatingPointError(self._not_finite(value))
        return value

    def _after_step(self) -> None:
        """After each optimiser step (an ensemble puts back its diverged members)."""

    def _clip(self, max_norm: float) -> None:
        nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)

    def _not_finite(self, value: float, scale: tuple[float, float] | None = None) -> str:
        dtype = _model_dtype(self.model)
        x_max, rest = scale or self.scale
        return (
            f"loss became {value} at step {self.step}: lower the learning rate, or rescale the "
            f"data: the inputs x reach |x| = {x_max:.3g} and the other data "
            f"{rest:.3g} ({str(dtype).removeprefix('torch.')} overflows above "
            f"{torch.finfo(dtype).max:.3g}; standardise them, e.g. sobolev.normalize.Normalizer)"
        )

    def final(self) -> None:
        """Log the loss, terms and evaluation at the final parameters (no optimiser step): with
        ``restore_best``, those of the lowest ``val_loss``."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        batch = self._batch()
        with torch.no_grad():  # derivatives w.r.t. x still work; no graph to the parameters
            loss, terms, _ = self._loss(batch, False)
        self.log(
            self._value(loss),
            {k: self._value(v) for k, v in terms.items()},
            self._evaluate(),
            self.elapsed,
            self.opt.param_groups[0]["lr"],
        )

    def _evaluate(self) -> dict[str, float]:
        val = self._validate()
        if self.evaluate_fn is None:
            return val
        self.model.eval()
        try:
            return {**val, **{k: float(v) for k, v in self.evaluate_fn(self.model).items()}}
        finally:
            self.model.train()

    def log(
        self,
        loss: float,
        terms: dict[str, float],
        evals: dict[str, float],
        at_time: float,
        lr: float,
    ) -> None:
        rec = {
            "step": self.step,
            "time": at_time,
            "loss": loss,
            **terms,
            "lr": lr,
            "phase": self.phase,
            **evals,
        }
        self.history.records.append(rec)
        self._write([rec])

    def _write(self, records: list[dict[str, Any]]) -> None:
        if self.metrics_path is not None and records:
            with _open_nofollow(self.metrics_path, "a") as fh:
                fh.write("".join(json.dumps(r) + "\n" for r in records))

    def _n_records(self) -> int:
        return len(self.history.records)

    def checkpoint(self) -> None:
        """Rank 0 writes the state after the last completed step (with every rank's RNG streams)."""
        if not self.checkpointing:
            return
        rngs = D.gather_objects(_rng_state(self.data_gen), self.ctx)
        if self.ckpt_path is not None:
            save_atomic(
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.opt.state_dict(),
                    "schedule": None if self.sched is None else self.sched.state_dict(),
                    "phase": self.phase,
                    "step": self.step,
                    "elapsed": self.elapsed,
                    "batches": self.batches.state(),
                    "rng_ranks": rngs,
                    "config": self.run_config,
                    "data": self.data_id,
                    "n_records": self._n_records(),
                    **self._extra_state(),
                },
                self.ckpt_path,
            )

    def _extra_state(self) -> dict[str, Any]:
        if self.val is None:
            return {}
        return {
            "early_stopping": {
                "best": self.best,
                "bad": self.bad,
                "stopped": self.stopped,
                "state": self.best_state,
                "best_step": self.history.best_step,
                "stopped_at": self.history.stopped_at,
            }
        }


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
        model: the network; moved to ``config.device`` (and ``config.dtype`` when set; by default
            it keeps its dtype). A ``DistributedDataParallel`` wrapper is unwrapped (gradients are
            averaged by hand).
        objective: a :class:`SobolevLoss` (data is then ``(x, u, Du, …)``), or any callable
            ``objective(model, batch) -> loss`` or ``-> (loss, {term: value})``, where ``batch`` is
            the tuple of data tensors indexed by a minibatch. Distributed runs need it to be a mean
            over the samples of the batch (as ``SobolevLoss`` with ``reduction="mean"`` is).
        data: tensors (or NumPy arrays, converted) with a common first (sample) dimension;
            floating ones are cast to the model's dtype.
        config: a :class:`TrainConfig`.
        out_dir: run directory for ``metrics.jsonl`` and ``checkpoint.pt``; if it holds a
            checkpoint, training resumes from it (a refused resume leaves the directory as it
            was). ``None`` trains in memory only. Distributed: rank 0's ``out_dir`` is the one used.
            It is locked while training (``out_dir/.lock``: a second ``fit`` on it is refused; the
            lock of a process that died is taken over with a warning), and ``fit`` refuses a
            directory that is a symbolic link or whose entries it writes are links.
        evaluate: called on the model at each logged step; its floats are logged (held-out
            errors, for example). Distributed: called on every rank, so every rank returns the
            same :class:`History`.
        desc: label of the progress bar.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) or an initialised process group, every rank calls
    ``fit`` with the same arguments and trains its shard of each global batch
    (``batch_size`` is the global batch; full batch shards all samples); see the module doc.
    """
    # 1. validate and plan: fresh start or resume, checked on every rank; nothing written yet
    cfg = config or TrainConfig()
    ctx = D.setup()
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    device = ctx.device(resolve_device(cfg.device))
    dtype = DTYPES[cfg.dtype] if cfg.dtype is not None else _model_dtype(model)
    data = _as_data(data, device, dtype)
    scale = _check_scale(data, dtype, ctx)
    train, val = validation_split(data, cfg)

    def make_run(plan: _Plan, out: Path | None) -> _Run:
        model.to(device=device, dtype=dtype)  # once the run is known to be valid
        return _Run(model, objective, train, cfg, plan, ctx, out, evaluate, scale, val)

    return run_locked(out_dir, _run_config(cfg, dtype), _data_id(data), ctx, make_run, desc)


def validation_split(
    data: tuple[Tensor, ...], cfg: TrainConfig
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...] | None]:
    """The training and held-out samples of ``data`` under ``cfg.validation_split``: a random
    ``round(fraction · N)`` of the rows (at least one, drawn with ``cfg.seed``) are held out;
    ``(data, None)`` without a split. A ValueError when nothing would be left to train on."""
    n = data[0].shape[0]
    if cfg.validation_split == 0:
        return data, None
    n_val = max(1, round(cfg.validation_split * n))
    if n_val >= n:
        raise ValueError(
            f"validation_split={cfg.validation_split} of {n} samples leaves none to train on"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 1_000_003))
    keep, held = perm[: n - n_val].sort().values, perm[n - n_val :].sort().values
    keep, held = keep.to(data[0].device), held.to(data[0].device)
    return tuple(t[keep] for t in data), tuple(t[held] for t in data)


def run_locked(
    out_dir: str | Path | None,
    run_config: dict[str, Any],
    data_id: dict[str, Any],
    ctx: D.Dist,
    make_run: Callable[[_Plan, Path | None], _Run],
    desc: str,
) -> History:
    """Steps 1 to 3 of :func:`fit` once the data are checked: lock and check the run directory,
    plan (fresh start or resume), build the run with ``make_run(plan, out)``, train."""
    out = Path(out_dir) if out_dir is not None and ctx.is_main else None
    lock = None
    if out is not None:
        _check_run_dir(out)
        if out.is_dir():  # locked before the checkpoint is read
            lock = _RunLock(out)
    try:
        plan = _plan(out, run_config, data_id, ctx, out_dir)
        if out is not None and lock is None:  # a new directory: locked once created
            out.mkdir(parents=True, exist_ok=True)
            lock = _RunLock(out)
            if (out / "checkpoint.pt").exists():
                raise ValueError(f"another process started a run in out_dir {out} meanwhile")
        if ctx.is_main:
            _prepare_out(out, plan)
        run = make_run(plan, out)
        return _train(run, ctx, out, desc)
    finally:
        if lock is not None:
            lock.release()


def _train(run: _Run, ctx: D.Dist, out: Path | None, desc: str) -> History:
    """Steps 2 and 3 of :func:`fit`: train, then the final checkpoint and record."""
    cfg = run.cfg

    # 2. train, one step at a time, logging and checkpointing as configured
    bar = None
    if cfg.progress and ctx.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=cfg.steps,
            initial=run.step,
            desc=desc,
            leave=False,
            dynamic_ncols=True,
            disable=None,
        )
    run.model.train()
    halt = False  # distributed: the ranks' agreed stop (a signal may reach them at different steps)
    with _Interrupt() as stop:
        while run.step < cfg.steps and not (halt if ctx.enabled else stop.flag) and run.live():
            halt = run.train_step(stop)
            if bar is not None:
                bar.update(1)
                if (run.step - 1) % cfg.log_every == 0 and run.history.records:
                    bar.set_postfix(loss=f"{run.history.records[-1]['loss']:.3e}")
    if bar is not None:
        bar.close()

    # 3. the final checkpoint and record
    run.checkpoint()  # the state after the last completed step; the final record below is not in it
    if run.step < cfg.steps and run.live():
        raise TrainingInterrupted(
            f"stopped at step {run.step} of {cfg.steps}" + (f"; checkpoint in {out}" if out else "")
        )
    run.final()
    return run.history
