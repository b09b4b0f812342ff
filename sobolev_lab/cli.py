"""The ``sobolev`` command: ``sobolev demo``, ``sobolev run NAME``, ``sobolev list``,
``sobolev merge``, ``sobolev report``: the click layer over :mod:`sobolev_lab.runs` and
:mod:`sobolev_lab.results`.

``--nproc N`` trains data-parallel in N processes on this machine: it launches ``torchrun
--standalone --nproc_per_node N -m sobolev_lab …`` with the same command (``torchrun … -m
sobolev_lab run NAME …`` directly works too, also across nodes); see :mod:`sobolev_lab.runs`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sobolev import distributed as D

from . import experiments
from .runs import RunError, execute, launch, merge, relaunch_args

_run_options = [
    click.option(
        "--quick", is_flag=True, help="The small setting (about a minute on 2 CPU cores)."
    ),
    click.option(
        "--paper",
        is_flag=True,
        help="The official settings of the paper's code (with --quick: the same, scaled down).",
    ),
    click.option(
        "--out",
        type=click.Path(path_type=Path),
        default=None,
        help="Run directory (default: runs/NAME-TIMESTAMP).",
    ),
    click.option(
        "--resume", is_flag=True, help="Continue the interrupted run in --out from its checkpoints."
    ),
    click.option(
        "--overwrite",
        is_flag=True,
        help="Replace the run in a non-empty --out; the previous run is kept aside until the new "
        "one has finished, and put back if it fails or is interrupted.",
    ),
    click.option(
        "--nproc",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Train data-parallel in N processes on this machine (launches torchrun).",
    ),
]


def _dispatch(
    command: list[str],
    name: str,
    *,
    quick: bool,
    paper: bool,
    out: Path | None,
    sets: tuple[str, ...],
    resume: bool,
    overwrite: bool,
    nproc: int,
) -> None:
    """Run here, or (``nproc`` > 1, not yet under torchrun) check the arguments and relaunch
    ``command`` with them under ``torchrun`` in ``nproc`` processes."""
    if nproc == 1 or D.setup().enabled:
        execute(
            name, quick=quick, paper=paper, out=out, sets=sets, resume=resume, overwrite=overwrite
        )
        return
    args = relaunch_args(
        command,
        name,
        quick=quick,
        paper=paper,
        out=out,
        sets=sets,
        resume=resume,
        overwrite=overwrite,
    )
    rc = launch(args, nproc)
    if rc != 0:
        sys.exit(rc)


def _with_run_options(f):
    for opt in reversed(_run_options):
        f = opt(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sobolev")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    envvar="SOBOLEV_THREADS",
    help="torch CPU threads per process (default: torch's choice). Small models train faster "
    "with 1, and 1 avoids oversubscription when other jobs share the cores.",
)
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
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field (repeatable).",
)
def run(
    name: str,
    quick: bool,
    paper: bool,
    out: Path | None,
    resume: bool,
    overwrite: bool,
    nproc: int,
    sets: tuple[str, ...],
) -> None:
    """Run experiment NAME (see `sobolev list`)."""
    _dispatch(
        ["run", name],
        name,
        quick=quick,
        paper=paper,
        out=out,
        sets=sets,
        resume=resume,
        overwrite=overwrite,
        nproc=nproc,
    )


@main.command()
@_with_run_options
def demo(
    quick: bool, paper: bool, out: Path | None, resume: bool, overwrite: bool, nproc: int
) -> None:
    """The seed paper's worked examples: sin x and e^{-x} with L2, H1 and H2 losses."""
    _dispatch(
        ["demo"],
        "regression",
        quick=quick,
        paper=paper,
        out=out,
        sets=(),
        resume=resume,
        overwrite=overwrite,
        nproc=nproc,
    )


@main.command("merge")
@click.argument(
    "run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False)
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The merged run's directory (new or empty).",
)
@click.option(
    "--note",
    default="",
    help="Where and how the runs were made (machine, versions, commit), kept as the provenance.",
)
def merge_(run_dirs: tuple[Path, ...], out: Path, note: str) -> None:
    """Merge finished runs of one experiment that split a comparison (one loss per run, made in
    parallel or on another machine) into one run directory, to report or collect like any run."""
    summary = merge(list(run_dirs), out, note)
    click.echo(
        f"merged {len(run_dirs)} runs of {summary['experiment']!r} into {out}/summary.json",
        err=True,
    )


@main.command()
@click.option(
    "--collect",
    "run_dirs",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="First copy this finished run directory into docs/results (repeatable).",
)
@click.option(
    "--key",
    default=None,
    help="Name under docs/results for a single --collect (default: experiment[-paper]).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Change nothing; exit 1 if a file's tables differ from the committed results.",
)
@click.option(
    "--readme",
    "readmes",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Markdown file whose results blocks to rewrite (repeatable; default: README.md, the "
    "pages under docs/ and mutation/RESULTS.md).",
)
def report(
    run_dirs: tuple[Path, ...], key: str | None, check: bool, readmes: tuple[Path, ...]
) -> None:
    """Regenerate the results tables of the README and docs/ from the summaries in docs/results."""
    from . import results

    if key is not None and len(run_dirs) != 1:
        raise click.UsageError("--key names one collected run: pass exactly one --collect")
    try:
        for d in run_dirs:
            click.echo(f"collected {d} into {results.collect(d, key)}", err=True)
        for readme in readmes or results.documents():
            if not readme.is_file():
                raise ValueError(
                    f"{readme} not found: run from the repository root or pass --readme PATH"
                )
            if check:
                if results.render_document(readme.read_text()) != readme.read_text():
                    raise click.ClickException(
                        f"{readme} differs from the committed results: run `sobolev report`"
                    )
                click.echo(f"{readme} is in step with the committed results", err=True)
            else:
                click.echo(
                    f"{'rewrote' if results.write_document(readme) else 'unchanged:'} {readme}",
                    err=True,
                )
    except ValueError as e:
        raise RunError(str(e)) from None


if __name__ == "__main__":
    main()
