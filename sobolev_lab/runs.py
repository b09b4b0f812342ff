"""Run directories: run an experiment into one, resume it, or relaunch it under ``torchrun``.

Each run writes one directory: ``config.json``, ``summary.json``, figures (PNG), tables, and per
training run ``metrics.jsonl`` and ``checkpoint.pt``. ``resume=True`` continues an interrupted run
in its directory from the last checkpoints, with the configuration it was started with.

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
from sobolev.training import TrainingInterrupted

from . import experiments
from .experiments.checks import check_config
from .report import json_safe

__all__ = ["RunError", "apply_overrides", "execute", "launch", "relaunch_args"]


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
        return tuple(_coerce(str(i), elem, None) if elem is not None else i for i in items)
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
    """``cfg`` with ``key=value`` overrides applied; unknown keys and bad values are errors."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for a in assignments:
        if "=" not in a:
            raise click.BadParameter(f"expected key=value, got {a!r}", param_hint="--set")
        key, text = a.split("=", 1)
        if key not in fields:
            raise click.BadParameter(
                f"unknown setting {key!r}; settings: {', '.join(fields)}", param_hint="--set"
            )
        try:
            changes[key] = _coerce(text, getattr(cfg, key), hints.get(key))
        except ValueError as e:
            raise click.BadParameter(f"{key}: {e}", param_hint="--set") from None
    return dataclasses.replace(cfg, **changes)


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


def _check_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out / "config.json").exists():
            raise click.UsageError(
                f"--resume needs an existing run directory with config.json; {out} has none"
            )
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise click.UsageError(
            f"{out} exists and is not empty: "
            "pass --resume to continue it or --overwrite to start over"
        )


def _prepare_dir(out: Path, resume: bool) -> Path | None:
    """An empty ``out`` for a new run (after :func:`_check_dir` allowed it); a resumed one stays.
    A previous run in ``out`` (``--overwrite``) is moved aside, not deleted: its new place is
    returned, so that it can be restored if the new run fails (:func:`_settle_previous`)."""
    if resume:
        return None
    previous = None
    if out.exists() and any(out.iterdir()):
        previous = out.with_name(f".{out.name}.replaced")
        shutil.rmtree(previous, ignore_errors=True)
        out.rename(previous)
    out.mkdir(parents=True, exist_ok=True)
    return previous


def _settle_previous(out: Path, previous: Path | None, *, restore: bool) -> None:
    """Delete the run that ``--overwrite`` replaced, or (``restore``) put it back in ``out``."""
    if previous is None or not previous.exists():
        return
    if restore:
        shutil.rmtree(out, ignore_errors=True)
        previous.rename(out)
    else:
        shutil.rmtree(previous, ignore_errors=True)


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
    plan = previous = None
    if ctx.is_main:
        out = _out_dir(name, quick, out, resume)
        _check_dir(out, resume, overwrite)
        plan = _configure(mod, name, quick, paper, out, sets, resume)
        previous = _prepare_dir(out, resume)
        if not resume:
            saved = {
                "experiment": name,
                "setting": _setting(paper),
                "quick": quick,
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
    except TrainingInterrupted as e:
        _settle_previous(out, previous, restore=False)
        if ctx.is_main:
            click.echo(
                f"\ninterrupted ({e}); continue with: sobolev run {name} --out {out} --resume"
                + (f" --nproc {ctx.world_size}" if ctx.enabled else ""),
                err=True,
            )
        sys.exit(130)
    except ValueError as e:
        _settle_previous(out, previous, restore=True)
        if os.environ.get("SOBOLEV_DEBUG"):
            raise
        then = (
            f"the previous run in {out} is kept as it was"
            if previous is not None
            else f"fix the cause, then start over with --overwrite (or delete {out})"
        )
        raise RunError(
            f"{e} [the run stopped; {then}; SOBOLEV_DEBUG=1 shows the traceback]"
        ) from None
    except BaseException:
        _settle_previous(out, previous, restore=True)
        raise
    finally:
        if not ctx.is_main:
            shutil.rmtree(work, ignore_errors=True)
    _settle_previous(out, previous, restore=False)
    summary = {
        "experiment": name,
        "setting": _setting(paper),
        "quick": quick,
        "wall_time_s": time.perf_counter() - t0,
        "config": json_safe(dataclasses.asdict(cfg)),
        **summary,
    }
    if not ctx.is_main:
        return summary
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    if hasattr(mod, "tables"):
        (out / "table.md").write_text(mod.tables(summary))
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
