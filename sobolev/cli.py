"""The ``sobolev`` command: ``sobolev demo``, ``sobolev run NAME``, ``sobolev list``.

Each run writes one directory: ``config.json``, ``summary.json``, figures (PNG), tables, and per
training run ``metrics.jsonl`` and ``checkpoint.pt``. ``--resume`` continues an interrupted run
in its directory from the last checkpoints, with the configuration it was started with.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
import typing
from pathlib import Path
from typing import Any

import click

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
        items = json.loads(text) if text.startswith("[") else [t for t in text.split(",") if t.strip()]
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


def _prepare_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out / "config.json").exists():
            raise click.UsageError(f"--resume needs an existing run directory with config.json; {out} has none")
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise click.UsageError(f"{out} exists and is not empty: pass --resume to continue it or --overwrite to start over")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def execute(name: str, *, quick: bool, out: Path | None, sets: tuple[str, ...], resume: bool, overwrite: bool) -> dict:
    """Run experiment ``name`` into ``out`` and return its summary (the CLI's core, callable from Python)."""
    try:
        mod = experiments.get(name)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None
    if out is None:
        if resume:
            raise click.UsageError("--resume needs --out DIR (the run directory to continue)")
        out = Path("runs") / f"{name}{'-quick' if quick else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    _prepare_dir(out, resume, overwrite)
    if resume:
        saved = json.loads((out / "config.json").read_text())
        if saved["experiment"] != name:
            raise click.UsageError(f"{out} holds a run of {saved['experiment']!r}, not {name!r}")
        if sets:
            raise click.UsageError("--set cannot change a resumed run's configuration")
        cfg = mod.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()})
    else:
        cfg = apply_overrides(mod.Config.quick() if quick else mod.Config(), sets)
        (out / "config.json").write_text(json.dumps({"experiment": name, "quick": quick, "config": dataclasses.asdict(cfg)}, indent=2) + "\n")
    click.echo(f"sobolev: running {name!r} into {out}", err=True)
    t0 = time.perf_counter()
    try:
        summary = mod.run(cfg, out)
    except TrainingInterrupted as e:
        click.echo(f"\ninterrupted ({e}); continue with: sobolev run {name} --out {out} --resume", err=True)
        sys.exit(130)
    summary = {"experiment": name, "wall_time_s": time.perf_counter() - t0, **summary}
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
]


def _with_run_options(f):
    for opt in reversed(_run_options):
        f = opt(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sobolev")
def main() -> None:
    """Sobolev training of neural networks: losses that match derivatives as well as values."""


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
def run(name: str, quick: bool, out: Path | None, resume: bool, overwrite: bool, sets: tuple[str, ...]) -> None:
    """Run experiment NAME (see `sobolev list`)."""
    execute(name, quick=quick, out=out, sets=sets, resume=resume, overwrite=overwrite)


@main.command()
@_with_run_options
def demo(quick: bool, out: Path | None, resume: bool, overwrite: bool) -> None:
    """The seed paper's worked examples: sin x and e^{-x} with L2, H1 and H2 losses."""
    execute("regression", quick=quick, out=out, sets=(), resume=resume, overwrite=overwrite)


if __name__ == "__main__":
    main()
