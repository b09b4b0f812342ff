"""The ``sobolev`` command: ``sobolev demo``, ``sobolev run NAME``, ``sobolev list``.

Each run writes one directory: ``config.json``, ``summary.json``, figures (PNG), tables, and per
training run ``metrics.jsonl`` and ``checkpoint.pt``. ``--resume`` continues an interrupted run
in its directory from the last checkpoints, with the configuration it was started with.

``--nproc N`` trains data-parallel in N processes on this machine: it launches ``torchrun
--standalone --nproc_per_node N -m sobolev …`` with the same command (``torchrun … -m sobolev run
NAME …`` directly works too, also across nodes). Every rank runs the experiment; rank 0 writes the
run directory, the other ranks write their (identical) figures into a scratch directory.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
import typing
from pathlib import Path
from typing import Any

import click

from . import distributed as D
from . import experiments
from .training import TrainingInterrupted


def _coerce(text: str, default: Any, hint: Any) -> Any:
    """Parse ``text`` into the type of a config field (from its default, else its annotation)."""
    if isinstance(default, bool) or hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(default, (tuple, list)):
        items = json.loads(text) if text.startswith("[") else [t.strip() for t in text.split(",") if t.strip()]
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


def apply_overrides(cfg: Any, assignments: tuple[str, ...]) -> Any:
    """``cfg`` with ``key=value`` overrides applied; unknown keys and bad values are errors."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for a in assignments:
        if "=" not in a:
            raise click.BadParameter(f"expected key=value, got {a!r}", param_hint="--set")
        key, text = a.split("=", 1)
        if key not in fields:
            raise click.BadParameter(f"unknown setting {key!r}; settings: {', '.join(fields)}", param_hint="--set")
        try:
            changes[key] = _coerce(text, getattr(cfg, key), hints.get(key))
        except ValueError as e:
            raise click.BadParameter(f"{key}: {e}", param_hint="--set") from None
    return dataclasses.replace(cfg, **changes)


def _check_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out / "config.json").exists():
            raise click.UsageError(f"--resume needs an existing run directory with config.json; {out} has none")
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise click.UsageError(f"{out} exists and is not empty: pass --resume to continue it or --overwrite to start over")


def _prepare_dir(out: Path, resume: bool) -> None:
    """An empty ``out`` for a new run (after :func:`_check_dir` allowed it); a resumed one stays."""
    if resume:
        return
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _module(name: str):
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


def _configure(mod, name: str, quick: bool, out: Path, sets: tuple[str, ...], resume: bool) -> Any:
    """The run's config: the saved one when resuming, else the default or quick one with ``sets``."""
    if not resume:
        return apply_overrides(mod.Config.quick() if quick else mod.Config(), sets)
    saved = json.loads((out / "config.json").read_text())
    if saved["experiment"] != name:
        raise click.UsageError(f"{out} holds a run of {saved['experiment']!r}, not {name!r}")
    if sets:
        raise click.UsageError("--set cannot change a resumed run's configuration")
    return mod.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()})


def execute(name: str, *, quick: bool, out: Path | None, sets: tuple[str, ...], resume: bool, overwrite: bool) -> dict:
    """Run experiment ``name`` into ``out`` and return its summary (the CLI's core, callable from Python).

    Under ``torchrun`` every rank calls it: rank 0 prepares ``out`` and broadcasts the config;
    the other ranks run into a scratch directory, deleted afterwards, and write nothing else.
    """
    mod = _module(name)
    ctx = D.setup()
    cfg = None
    if ctx.is_main:
        out = _out_dir(name, quick, out, resume)
        _check_dir(out, resume, overwrite)
        cfg = _configure(mod, name, quick, out, sets, resume)
        _prepare_dir(out, resume)
        if not resume:
            (out / "config.json").write_text(json.dumps({"experiment": name, "quick": quick, "config": dataclasses.asdict(cfg)}, indent=2) + "\n")
        click.echo(f"sobolev: running {name!r} into {out}" + (f" on {ctx.world_size} processes" if ctx.enabled else ""), err=True)
    cfg = D.broadcast_object(cfg, ctx)
    work = out if ctx.is_main else Path(tempfile.mkdtemp(prefix=f"sobolev-rank{ctx.rank}-"))
    t0 = time.perf_counter()
    try:
        summary = mod.run(cfg, work)
    except TrainingInterrupted as e:
        if ctx.is_main:
            click.echo(f"\ninterrupted ({e}); continue with: sobolev run {name} --out {out} --resume"
                       + (f" --nproc {ctx.world_size}" if ctx.enabled else ""), err=True)
        sys.exit(130)
    finally:
        if not ctx.is_main:
            shutil.rmtree(work, ignore_errors=True)
    summary = {"experiment": name, "wall_time_s": time.perf_counter() - t0, **summary}
    if not ctx.is_main:
        return summary
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    table = out / "table.md"
    if table.exists():
        click.echo(table.read_text())
    click.echo(f"wrote {out}/summary.json ({summary['wall_time_s']:.1f} s)", err=True)
    return summary


_run_options = [
    click.option("--quick", is_flag=True, help="The small setting (about a minute on 2 CPU cores)."),
    click.option("--out", type=click.Path(path_type=Path), default=None, help="Run directory (default: runs/NAME-TIMESTAMP)."),
    click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its checkpoints."),
    click.option("--overwrite", is_flag=True, help="Delete a non-empty --out first."),
    click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Train data-parallel in N processes on this machine (launches torchrun)."),
]


def _dispatch(command: list[str], name: str, *, quick: bool, out: Path | None, sets: tuple[str, ...],
              resume: bool, overwrite: bool, nproc: int) -> None:
    """Run here, or (``nproc`` > 1, not yet under torchrun) check the arguments and relaunch
    ``command`` with them under ``torchrun`` in ``nproc`` processes."""
    if nproc == 1 or D.setup().enabled:
        execute(name, quick=quick, out=out, sets=sets, resume=resume, overwrite=overwrite)
        return
    mod = _module(name)
    out = _out_dir(name, quick, out, resume)  # fixed here: every rank must agree on the directory
    _check_dir(out, resume, overwrite)
    _configure(mod, name, quick, out, sets, resume)
    flags = [f for f, on in (("--quick", quick), ("--resume", resume), ("--overwrite", overwrite)) if on]
    rc = D.launch([*command, "--out", str(out), *flags, *(a for s in sets for a in ("--set", s))], nproc)
    if rc != 0:
        sys.exit(rc)


def _with_run_options(f):
    for opt in reversed(_run_options):
        f = opt(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sobolev")
@click.option("--threads", type=click.IntRange(min=1), default=None, envvar="SOBOLEV_THREADS",
              help="torch CPU threads per process (default: torch's choice). Small models train faster "
                   "with 1, and 1 avoids oversubscription when other jobs share the cores.")
def main(threads: int | None) -> None:
    """Sobolev training of neural networks: losses that match derivatives as well as values."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@main.command("list")
def list_() -> None:
    """List the experiments."""
    for name in experiments.EXPERIMENTS:
        doc = (experiments.get(name).__doc__ or "").strip().splitlines()[0]
        click.echo(f"{name:24s} {doc}")


@main.command()
@click.argument("name")
@_with_run_options
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config field (repeatable).")
def run(name: str, quick: bool, out: Path | None, resume: bool, overwrite: bool, nproc: int, sets: tuple[str, ...]) -> None:
    """Run experiment NAME (see `sobolev list`)."""
    _dispatch(["run", name], name, quick=quick, out=out, sets=sets, resume=resume, overwrite=overwrite, nproc=nproc)


@main.command()
@_with_run_options
def demo(quick: bool, out: Path | None, resume: bool, overwrite: bool, nproc: int) -> None:
    """The seed paper's worked examples: sin x and e^{-x} with L2, H1 and H2 losses."""
    _dispatch(["demo"], "regression", quick=quick, out=out, sets=(), resume=resume, overwrite=overwrite, nproc=nproc)


if __name__ == "__main__":
    main()
