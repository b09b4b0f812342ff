"""Run directories: run an experiment into one, resume it, or relaunch it under ``torchrun``.

Each run writes one directory: ``config.json``, ``summary.json``, figures (PNG), tables, and per
training run ``metrics.jsonl`` and ``checkpoint.pt``. ``resume=True`` continues an interrupted run
in its directory from the last checkpoints, with the configuration it was started with.

A run directory is locked while a command runs in it (``.sobolev-run.lock``, holding the pid;
a lock left by a process that died is taken over with a message). ``--overwrite`` moves the
previous run aside (``.NAME.replaced``) and deletes it only once the new run has finished; an
error or interrupt (Ctrl-C, SIGTERM) puts it back, and after kill -9 the next command for that
``--out`` puts it back first. An ``--out`` inside another run's directory, or a symbolic link, is
refused.

Under ``torchrun`` every rank runs the experiment: rank 0 writes the run directory, the other ranks
write their (identical) figures into a scratch directory. :func:`launch` starts ``python -m
sobolev_lab …`` that way on this machine. Bad arguments raise ``click.UsageError``, bad settings,
data or files :class:`RunError`: the ``sobolev`` command (:mod:`sobolev_lab.cli`) shows either as
one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from sobolev import distributed as D

from . import experiments
from .experiments.checks import check_config
from .report import json_safe

__all__ = ["RunError", "apply_overrides", "execute", "launch", "merge", "relaunch_args"]


class RunError(click.ClickException):
    """A one-line ``Error: …`` and exit status 2 (bad settings, data or files)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def _coerce(text: str, default: Any, hint: Any) -> Any:
    """Parse ``text`` into the type of a config field (from its default, else its annotation)."""
    if isinstance(default, bool) or hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(default, (tuple, list)):
        items = (
            json.loads(text)
            if text.startswith("[")
            else [t.strip() for t in text.split(",") if t.strip()]
        )
        args = typing.get_args(hint)
        if args and Ellipsis not in args and len(items) != len(args):
            raise ValueError(f"expected {len(args)} comma-separated values, got {len(items)}")
        elem = default[0] if default else None
        elem_hint = args[0] if len(args) == 2 and args[1] is Ellipsis else None  # tuple[T, ...]
        if elem is None and elem_hint is None:
            return tuple(items)
        return tuple(_coerce(str(i), elem, elem_hint) for i in items)
    if isinstance(default, int) or hint is int:
        return int(text)
    if isinstance(default, float) or hint is float:
        return float(text)
    if isinstance(default, str) or hint is str:
        return text
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: Any, assignments: Sequence[str]) -> Any:
    """``cfg`` with ``key=value`` overrides applied; unknown keys and bad values are one-line
    :class:`RunError` s naming ``--set`` and the setting."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for a in assignments:
        if "=" not in a:
            raise RunError(f"--set: expected key=value, got {a!r}")
        key, text = a.split("=", 1)
        if key not in fields:
            raise RunError(f"--set: unknown setting {key!r}; settings: {', '.join(fields)}")
        try:
            changes[key] = _coerce(text, getattr(cfg, key), hints.get(key))
        except (ValueError, OverflowError, RecursionError) as e:
            raise RunError(f"--set {key}: {e}") from None
    try:
        return dataclasses.replace(cfg, **changes)
    except (ValueError, TypeError) as e:  # the config's own checks (__post_init__)
        raise RunError(f"--set {e}") from None


def _module(name: str) -> ModuleType:
    try:
        return experiments.get(name)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None


def _out_dir(name: str, quick: bool, out: Path | None, resume: bool) -> Path:
    if out is not None:
        return out
    if resume:
        raise click.UsageError("--resume needs --out DIR (the run directory to continue)")
    return Path("runs") / f"{name}{'-quick' if quick else ''}-{time.strftime('%Y%m%d-%H%M%S')}"


#: the lock file of a run directory of the command line (holds the pid of the process running it);
#: :func:`sobolev.fit` locks the training runs' own directories with a file of its own
LOCK_NAME = ".sobolev-run.lock"
#: the marker of a new run that ``--overwrite`` started in place of a previous one, which is kept
#: aside (in :func:`_aside`) until the new run has finished
OVERWRITING = ".sobolev-overwriting"
#: entries of the command's own that a run directory may hold and still count as empty
_OWN = frozenset({LOCK_NAME, OVERWRITING})


def _aside(out: Path) -> Path:
    """Where ``--overwrite`` keeps the previous run of ``out`` until the new one has finished."""
    return out.with_name(f".{out.name}.replaced")


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


class RunLock:
    """The lock of a run directory: ``DIR/.sobolev-run.lock`` holding the owner's pid, held with
    ``flock`` (the system releases it when the process dies) and removed on :meth:`release`.

    A second process gets a one-line :class:`RunError`; a lock left by a process that is no
    longer running (kill -9) is taken over with a message (not with ``quiet``). Where the file
    system has no ``flock``, the pid decides: a live process holds the lock."""

    def __init__(self, run_dir: Path, *, quiet: bool = False) -> None:
        self.path, self.fd = run_dir / LOCK_NAME, -1
        for _ in range(5):  # the holder may remove the file between our open and flock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as e:
                raise RunError(
                    f"cannot lock the run directory {run_dir}: {self.path}: {e}"
                ) from None
            try:
                old = os.read(fd, 64).decode(errors="replace").strip()
                if not self._lock(fd, old):
                    raise RunError(
                        f"{run_dir} is in use by process {old or '?'} (lock {self.path}): wait "
                        "for it to finish, or run into another --out"
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
            if old and old != str(os.getpid()) and not quiet:
                click.echo(
                    f"sobolev: {self.path}: recovered the stale lock of process {old}, which is "
                    "no longer running",
                    err=True,
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self.fd = fd
            return
        raise RunError(f"could not lock {run_dir} (its lock {self.path} keeps changing)")

    @staticmethod
    def _lock(fd: int, old: str) -> bool:
        try:
            import fcntl
        except ImportError:  # not POSIX
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError:  # a file system without flock: the pid decides
                pass
        return not (old.isdigit() and int(old) != os.getpid() and _pid_alive(int(old)))

    def moved(self, run_dir: Path) -> None:
        """The locked directory was renamed to ``run_dir`` (the lock, on the file, stays held)."""
        self.path = run_dir / LOCK_NAME

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and release the lock."""
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


def _is_empty(out: Path) -> bool:
    """No entry in ``out`` but the command's own (a lock, the marker of an ``--overwrite``)."""
    return all(p.name in _OWN for p in out.iterdir())


def _refuse_nested(out: Path) -> None:
    """Refuse an ``--out`` inside another run's directory (an ancestor holding a run's
    ``config.json``), before anything is written."""
    for parent in out.resolve().parents:
        saved = parent / "config.json"
        if saved.is_file() and _names_experiment(saved):
            raise RunError(
                f"--out {out} is inside the run directory {parent} (it holds a run's "
                "config.json): choose a directory outside any run"
            )


def _names_experiment(path: Path) -> bool:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and "experiment" in saved


def _trash(out: Path) -> Path:
    """A fresh name next to ``out`` for the partial run an interrupted ``--overwrite`` left."""
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.discarded-", dir=out.parent))


def _put_back(out: Path, aside: Path) -> None:
    """The previous run ``aside`` back in ``out``, in place of the unfinished new one (deleted:
    this command or an interrupted ``--overwrite`` made it, as its marker says)."""
    trash = None
    if out.exists():
        trash = _trash(out)
        out.rename(trash / "run")
    aside.rename(out)
    own = out / LOCK_NAME  # the lock of the --overwrite that set it aside
    own.unlink(missing_ok=True)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _recover(out: Path) -> None:
    """Put back a previous run that an ``--overwrite`` set aside and did not finish (kill -9),
    before anything else happens to ``out``; where ``out`` holds another run, say where the
    previous one is (it is never deleted)."""
    aside = _aside(out)
    if aside.is_symlink() or not aside.is_dir() or out.is_symlink():
        return
    lock_aside = RunLock(aside, quiet=True)  # fails while a live --overwrite holds it
    lock_out = None
    try:
        if out.is_dir() and not out.is_symlink():
            lock_out = RunLock(out, quiet=True)
        unfinished = not out.exists() or (
            out.is_dir() and ((out / OVERWRITING).exists() or _is_empty(out))
        )
        if not unfinished:
            click.echo(
                f"sobolev: note: {aside} holds a previous run of {out}, set aside by an "
                "--overwrite that did not finish; it is kept: move or delete it yourself",
                err=True,
            )
            return
        with _signals_blocked():
            if lock_out is not None:
                lock_out.release()
                lock_out = None
            lock_aside.release()
            _put_back(out, aside)
        click.echo(
            f"sobolev: restored the previous run of {out}, which an interrupted --overwrite had "
            f"set aside in {aside}",
            err=True,
        )
    finally:
        if lock_out is not None:
            lock_out.release()
        lock_aside.release()


class _signals_blocked:
    """SIGINT and SIGTERM wait while directories are swapped (a second Ctrl-C does not leave a
    run half moved)."""

    def __enter__(self) -> None:
        self.old = None
        if hasattr(signal, "pthread_sigmask"):
            self.old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)


class _Interrupted(KeyboardInterrupt):
    """SIGTERM outside training (which turns it into a checkpoint and ``TrainingInterrupted``)."""


class _on_sigterm:
    """SIGTERM raises :class:`_Interrupted` in the main thread, as Ctrl-C raises
    ``KeyboardInterrupt``: the run directory is settled either way."""

    def __enter__(self) -> None:
        self.old = None
        try:
            self.old = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread
            pass

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise _Interrupted("SIGTERM")

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)


def _check_dir(out: Path, resume: bool, overwrite: bool) -> None:
    _refuse_nested(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise RunError(
            f"--out {out} is {'a symbolic link' if out.is_symlink() else 'not a directory'}: "
            "pass a directory"
        )
    if resume:
        if not (out / "config.json").exists():
            raise click.UsageError(
                f"--resume needs an existing run directory with config.json; {out} has none"
            )
    elif out.exists() and not _is_empty(out) and not overwrite:
        raise click.UsageError(
            f"{out} exists and is not empty: "
            "pass --resume to continue it or --overwrite to start over"
        )


class _Prepared:
    """The locked run directory of this command, and the previous run that ``--overwrite`` set
    aside (locked too) until the new one has finished."""

    def __init__(self, out: Path, lock: RunLock, aside: Path | None, aside_lock: RunLock | None):
        self.out, self.lock, self.aside, self.aside_lock = out, lock, aside, aside_lock

    def finish(self) -> None:
        """The new run has finished: delete the previous one (which this command set aside)."""
        if self.aside is not None:
            with _signals_blocked():
                (self.out / OVERWRITING).unlink(missing_ok=True)
                self.aside_lock.release()
                shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None
        self.lock.release()

    def restore(self) -> None:
        """The new run did not finish: put the previous one back (the new one is deleted)."""
        if self.aside is not None:
            with _signals_blocked():
                self.lock.release()
                self.aside_lock.release()
                _put_back(self.out, self.aside)
            self.aside = None
        self.lock.release()


def _prepare_dir(out: Path, resume: bool) -> _Prepared:
    """Lock ``out`` (after :func:`_check_dir` and the config checks allowed it). A previous run in
    ``out`` (``--overwrite``) is moved aside, not deleted, and stays there, locked, until the new
    run has finished (:meth:`_Prepared.finish`), else it is put back (:meth:`_Prepared.restore`).
    """
    if resume:
        lock = RunLock(out)
        if not (out / "config.json").exists():  # another process started over meanwhile
            lock.release()
            raise RunError(f"{out} has no config.json any more; nothing to resume")
        return _Prepared(out, lock, None, None)
    aside = aside_lock = None
    if out.exists() and not _is_empty(out):
        aside_lock = RunLock(out)
        aside = _aside(out)
        if os.path.lexists(aside):
            aside_lock.release()
            raise RunError(
                f"{aside} holds a previous run of {out} (kept by an --overwrite that did not "
                "finish): move or delete it, then run again"
            )
        with _signals_blocked():
            out.rename(aside)
            aside_lock.moved(aside)
            out.mkdir()
            (out / OVERWRITING).write_text(f"{aside.name}\n")
    out.mkdir(parents=True, exist_ok=True)
    try:
        lock = RunLock(out)
    except BaseException:
        if aside is not None:
            aside_lock.release()
            _put_back(out, aside)
        raise
    if aside is None and (out / "config.json").exists():
        lock.release()
        raise RunError(f"another process started a run in {out} meanwhile")
    return _Prepared(out, lock, aside, aside_lock)


def _setting(paper: bool) -> str:
    return "paper" if paper else "ours"


def _saved(out: Path, name: str) -> dict[str, Any]:
    """The ``config.json`` of the run of ``name`` in ``out``."""
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(
            f"cannot read {out / 'config.json'} ({e}); start a new run with --overwrite"
        ) from None
    if saved.get("experiment") != name:
        raise click.UsageError(f"{out} holds a run of {saved.get('experiment')!r}, not {name!r}")
    return saved


def _configure(
    mod: ModuleType,
    name: str,
    quick: bool,
    paper: bool,
    out: Path,
    sets: Sequence[str],
    resume: bool,
) -> tuple[Any, bool, bool]:
    """The run's checked config, ``quick`` and ``paper``: the saved ones when resuming, else the
    default, quick or paper config with ``sets``. Nothing is written or deleted before this has
    succeeded."""
    if not resume:
        if paper and not hasattr(mod.Config, "paper"):
            raise click.UsageError(
                f"experiment {name!r} has no --paper setting (no official code to follow)"
            )
        if paper:
            base = mod.Config.paper(quick=quick)
        else:
            base = mod.Config.quick() if quick else mod.Config()
        cfg = apply_overrides(base, sets)
    else:
        saved = _saved(out, name)
        if sets:
            raise click.UsageError("--set cannot change a resumed run's configuration")
        was = (bool(saved.get("quick")), saved.get("setting", "ours"))
        if (quick, _setting(paper)) != was and (quick or paper):
            raise click.UsageError(
                f"{out} was started with setting {was[1]!r}{' --quick' if was[0] else ''}: "
                "resume it without --quick/--paper (a resumed run keeps its configuration)"
            )
        quick, paper = was[0], was[1] == "paper"
        try:
            cfg = mod.Config(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()}
            )
        except TypeError as e:
            raise RunError(
                f"{out / 'config.json'} does not fit experiment {name!r} ({e}); "
                "start a new run with --overwrite"
            ) from None
    try:
        check_config(cfg, mod)
    except ValueError as e:
        raise RunError(f"--set {e}" if not resume else f"{out / 'config.json'}: {e}") from None
    return cfg, quick, paper


def execute(
    name: str,
    *,
    quick: bool,
    out: Path | None,
    sets: Sequence[str],
    resume: bool,
    overwrite: bool,
    paper: bool = False,
) -> dict:
    """Run experiment ``name`` into ``out`` and return its summary (the CLI's core).

    ``out=None`` runs into ``runs/NAME[-quick]-TIMESTAMP``; ``sets`` are ``key=value`` overrides of
    the config. The configuration is checked before anything in ``out`` is written or deleted.
    Under ``torchrun`` every rank calls it: rank 0 prepares ``out`` and broadcasts the config; the
    other ranks run into a scratch directory, deleted afterwards, and write nothing else.
    """
    mod = _module(name)
    ctx = D.setup()
    plan = prepared = None
    with _on_sigterm():
        if ctx.is_main:
            out = _out_dir(name, quick, out, resume)
            _refuse_nested(out)
            _recover(out)
            _check_dir(out, resume, overwrite)
            plan = _configure(mod, name, quick, paper, out, sets, resume)
            prepared = _prepare_dir(out, resume)
        try:
            return _execute(mod, name, ctx, out, plan, prepared, resume)
        finally:
            if prepared is not None:
                prepared.restore()  # a no-op once the run has finished


def _execute(
    mod: ModuleType,
    name: str,
    ctx: D.Dist,
    out: Path,
    plan: tuple[Any, bool, bool] | None,
    prepared: _Prepared | None,
    resume: bool,
) -> dict:
    """:func:`execute` once ``out`` is prepared (rank 0) and locked."""
    replacing = prepared is not None and prepared.aside is not None
    if ctx.is_main:
        if not resume:
            saved = {
                "experiment": name,
                "setting": _setting(plan[2]),
                "quick": plan[1],
                "config": dataclasses.asdict(plan[0]),
            }
            (out / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
        click.echo(
            f"sobolev: running {name!r} into {out}"
            + (f" on {ctx.world_size} processes" if ctx.enabled else ""),
            err=True,
        )
    cfg, quick, paper = D.broadcast_object(plan, ctx)
    work = out if ctx.is_main else Path(tempfile.mkdtemp(prefix=f"sobolev-rank{ctx.rank}-"))
    t0 = time.perf_counter()
    try:
        summary = mod.run(cfg, work)
    except KeyboardInterrupt as e:  # TrainingInterrupted (a checkpoint is saved), Ctrl-C, SIGTERM
        if ctx.is_main:
            if replacing:
                prepared.restore()
                then = f"the previous run in {out} is back as it was (the new one is discarded)"
            else:
                then = f"continue with: sobolev run {name} --out {out} --resume" + (
                    f" --nproc {ctx.world_size}" if ctx.enabled else ""
                )
            click.echo(f"\ninterrupted ({str(e) or type(e).__name__}); {then}", err=True)
        sys.exit(130)
    except ValueError as e:
        if prepared is not None:
            prepared.restore()
        if os.environ.get("SOBOLEV_DEBUG"):
            raise
        then = (
            f"the previous run in {out} is kept as it was"
            if replacing
            else f"fix the cause, then start over with --overwrite (or delete {out})"
        )
        raise RunError(
            f"{e} [the run stopped; {then}; SOBOLEV_DEBUG=1 shows the traceback]"
        ) from None
    finally:
        if not ctx.is_main:
            shutil.rmtree(work, ignore_errors=True)
    summary = {
        "experiment": name,
        "setting": _setting(paper),
        "quick": quick,
        "wall_time_s": time.perf_counter() - t0,
        "one_pass": not resume,  # wall_time_s is the whole run's (a resume times its last pass)
        "config": json_safe(dataclasses.asdict(cfg)),
        **summary,
    }
    if not ctx.is_main:
        return summary
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    if hasattr(mod, "tables"):
        (out / "table.md").write_text(mod.tables(summary))
    prepared.finish()
    table = out / "table.md"
    if table.exists():
        click.echo(table.read_text())
    click.echo(f"wrote {out}/summary.json ({summary['wall_time_s']:.1f} s)", err=True)
    return summary


def relaunch_args(
    command: Sequence[str],
    name: str,
    *,
    quick: bool,
    paper: bool,
    out: Path | None,
    sets: Sequence[str],
    resume: bool,
    overwrite: bool,
) -> list[str]:
    """The arguments that rerun ``command`` (``["run", NAME]`` or ``["demo"]``) with these options
    in every process of a :func:`launch`, after checking them here as :func:`execute` would: the
    run directory is fixed now, so that every rank agrees on it."""
    mod = _module(name)
    out = _out_dir(name, quick, out, resume)
    _check_dir(out, resume, overwrite)
    _configure(mod, name, quick, paper, out, sets, resume)
    flags = [
        flag
        for flag, on in (
            ("--quick", quick),
            ("--paper", paper),
            ("--resume", resume),
            ("--overwrite", overwrite),
        )
        if on
    ]
    return [*command, "--out", str(out), *flags, *(a for s in sets for a in ("--set", s))]


def launch(args: Sequence[str], nproc: int) -> int:
    """Run ``python -m sobolev_lab ARGS`` in ``nproc`` processes on this machine with ``torchrun``
    (``--standalone``: a free local rendezvous); returns the exit status."""
    if nproc < 1:
        raise ValueError(f"nproc must be ≥ 1, got {nproc}")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "sobolev_lab",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(cmd, env=env, check=False).returncode


def _finished_summary(run_dir: Path) -> dict[str, Any]:
    """The ``summary.json`` of a finished run (a regular file; a link is not followed)."""
    path = run_dir / "summary.json"
    if path.is_symlink() or not path.is_file():
        raise RunError(f"{run_dir} has no summary.json (a regular file): only finished runs merge")
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"cannot read {path} ({e})") from None
    if not isinstance(summary, dict) or type(summary.get("experiment")) is not str:
        raise RunError(f"{path} names no experiment: not a summary of `sobolev run`")
    return summary


def merge(run_dirs: Sequence[Path], out: Path, note: str = "") -> dict:
    """Merge finished runs of one experiment that split a comparison between processes or
    machines (one loss per run, say) into the run directory ``out``, new or empty, and return its
    summary. The experiment's ``merge(summaries)`` checks that the runs fit together and returns
    the merged config and results, its ``merge_figures(summary, run_dirs, out)`` draws the
    merged run's figures into ``out``; ``note`` (where and how the runs were made) is kept as
    the summary's ``provenance``. Every check runs before ``out`` is written; the runs are only
    read."""
    if len(run_dirs) < 2:
        raise click.UsageError("merge needs at least two run directories")
    summaries = [_finished_summary(Path(d)) for d in run_dirs]
    name = summaries[0]["experiment"]
    mod = _module(name)
    for d, s in zip(run_dirs, summaries):
        if (s["experiment"], s.get("setting"), s.get("quick")) != (
            name,
            summaries[0].get("setting"),
            summaries[0].get("quick"),
        ):
            raise RunError(
                f"{d} is a run of {s['experiment']!r} ({s.get('setting')}"
                f"{', quick' if s.get('quick') else ''}), {run_dirs[0]} of {name!r} "
                f"({summaries[0].get('setting')}{', quick' if summaries[0].get('quick') else ''}): "
                "only runs of one experiment and setting merge"
            )
    if not hasattr(mod, "merge"):
        raise RunError(f"experiment {name!r} cannot merge runs (it has no merge)")
    _refuse_nested(out)
    for d in run_dirs:
        if Path(d).resolve() == out.resolve() or Path(d).resolve() in out.resolve().parents:
            raise RunError(f"--out {out} is (inside) the merged run {d}: choose a new directory")
    _check_dir(out, resume=False, overwrite=False)
    try:
        config, body = mod.merge(summaries)
    except ValueError as e:
        raise RunError(str(e)) from None
    prepared = _prepare_dir(out, resume=False)
    try:
        saved = {
            "experiment": name,
            "setting": summaries[0].get("setting", "ours"),
            "quick": bool(summaries[0].get("quick")),
            "config": config,
        }
        (out / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
        summary = {
            **saved,
            "wall_time_s": sum(s["wall_time_s"] for s in summaries),
            "one_pass": False,  # the parts ran separately: their wall times are summed
            "merged_from": [
                {"run": Path(d).name, "wall_time_s": s["wall_time_s"]}
                for d, s in zip(run_dirs, summaries)
            ],
            "provenance": " ".join(note.split()),
            **body,
        }
        summary["figures"] = mod.merge_figures(summary, [Path(d) for d in run_dirs], out)
        (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n")
        if hasattr(mod, "tables"):
            (out / "table.md").write_text(mod.tables(summary))
    except BaseException as e:
        prepared.restore()
        shutil.rmtree(out, ignore_errors=True)
        if isinstance(e, ValueError):
            raise RunError(f"{e}; nothing was merged into {out}") from None
        raise
    prepared.finish()
    return summary
