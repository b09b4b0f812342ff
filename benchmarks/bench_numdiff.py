"""Throughput of sobolev.numdiff against findiff (finite differences)
and numpy.polynomial.chebyshev.

Rows compare the same float64 arrays on the CPU: ``ratio = baseline_s / sobolev_s`` (above 1:
sobolev.numdiff is faster). Finite differences: first derivative at accuracy 2 and 4 and second
derivative, 1-D and 2-D (both axes), up to 10^6 points, uniform grids (plus one non-uniform case),
each findiff operator built once outside the timing. Chebyshev: one derivative of ``lines`` lines
of N points, matrix and FFT paths, against ``chebfit`` + ``chebder`` + ``chebval`` (the NumPy way to
differentiate nodal values), with the largest difference between the two results.
"""

from __future__ import annotations

import functools
import time

import findiff
import numpy as np
import numpy.polynomial.chebyshev as npc
import torch

from benchmarks.timing import interleaved_times, median_time
from sobolev.numdiff import chebyshev_derivative, chebyshev_grid, fd_derivative

FD_SETTINGS = [(1, 2), (1, 4), (2, 2), (2, 4)]  # (derivative order, accuracy)


def _fd_rows(
    shapes: list[tuple[int, ...]], settings: list[tuple[int, int]], repeats: int
) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for shape in shapes:
        array = rng.random(shape)
        tensor = torch.from_numpy(array)
        for axis in range(len(shape)):
            h = 1.0 / (shape[axis] - 1)
            for order, accuracy in settings:
                op = findiff.Diff(axis, h, acc=accuracy) ** order
                times = interleaved_times(
                    {
                        "sobolev": functools.partial(
                            fd_derivative, tensor, h, order, axis=axis, accuracy=accuracy
                        ),
                        "findiff": functools.partial(op, array),
                    },
                    repeats=repeats,
                )
                rows.append(_row(f"fd d{order} acc{accuracy} axis{axis}", shape, times, "findiff"))
    return rows


def _fd_nonuniform_row(n: int, repeats: int) -> dict:
    coords = np.sort(np.random.default_rng(1).random(n))
    array = np.sin(coords)
    tensor, coords_t = torch.from_numpy(array), torch.from_numpy(coords)
    op = findiff.Diff(0, coords, acc=2)
    fd_derivative(
        tensor, coords_t
    )  # stencil weights are cached per grid, as findiff's are per operator
    times = interleaved_times(
        {
            "sobolev": lambda: fd_derivative(tensor, coords_t, 1, accuracy=2),
            "findiff": lambda: op(array),
        },
        repeats=repeats,
    )
    return _row("fd d1 acc2 non-uniform", (n,), times, "findiff")


def _chebyshev_rows(sizes: list[int], repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        lines = 64
        x = chebyshev_grid(n, dtype=torch.float64)
        values = torch.cos(3 * x + torch.linspace(0, 1, lines, dtype=torch.float64)[:, None])
        y = values.numpy().T.copy()  # (n, lines): one column per line
        xs = x.numpy()

        def numpy_derivative(xs=xs, y=y, n=n) -> np.ndarray:
            return npc.chebval(xs, npc.chebder(npc.chebfit(xs, y, n - 1)))  # (lines, n)

        reference = numpy_derivative()
        baseline = _seconds_per_call(numpy_derivative, repeats)
        for method in ("matrix", "fft"):
            ours = chebyshev_derivative(values, 1, method=method)
            seconds = _seconds_per_call(
                functools.partial(chebyshev_derivative, values, 1, method=method), repeats
            )
            rows.append(
                {
                    "case": f"chebyshev d1 {method}",
                    "size": n,
                    "lines": lines,
                    "sobolev_s": seconds,
                    "numpy_s": baseline,
                    "ratio": baseline / seconds,
                    "max_abs_diff": float(np.abs(ours.numpy() - reference).max()),
                }
            )
    return rows


def _seconds_per_call(fn, repeats: int) -> float:
    """Median seconds per call, batching fast calls into groups of about 10 ms; fewer repeats
    if slow."""
    t0 = time.perf_counter()
    fn()  # also the warm-up
    single = time.perf_counter() - t0
    if single > 0.1:
        return median_time(fn, repeats=min(repeats, 3), warmup=0)
    return median_time(fn, repeats=repeats, warmup=0, number=max(1, int(0.01 / max(single, 1e-6))))


def _row(case: str, shape: tuple[int, ...], times: dict[str, float], baseline: str) -> dict:
    return {
        "case": case,
        "size": int(np.prod(shape)),
        "shape": "x".join(map(str, shape)),
        "sobolev_s": times["sobolev"],
        f"{baseline}_s": times[baseline],
        "ratio": times[baseline] / times["sobolev"],
    }


def run(quick: bool = False) -> dict:
    """Benchmark rows; ``quick`` keeps it to about 20 s. Torch runs on one thread, like NumPy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = _rows(quick)
    finally:
        torch.set_num_threads(threads)
    fd_ratios = [r["ratio"] for r in rows if r["case"].startswith("fd")]
    notes = (
        "float64 on CPU, torch on 1 thread (findiff and NumPy are single-threaded; on a loaded "
        "shared machine torch's thread pool also makes multi-threaded timings erratic); ratio = "
        "baseline_s / sobolev_s (>1: sobolev faster). Finite differences vs findiff "
        f"{findiff.__version__}: ratio min {min(fd_ratios):.2f}, median "
        f"{float(np.median(fd_ratios)):.2f}. Chebyshev vs numpy chebfit/chebder/chebval on 64 "
        "lines."
    )
    return {
        "title": "sobolev.numdiff vs findiff and numpy.polynomial.chebyshev",
        "rows": rows,
        "notes": notes,
    }


def _rows(quick: bool) -> list[dict]:
    if quick:
        shapes = [(10**5,), (10**6,), (1000, 1000)]
        settings, repeats, cheb_sizes, nonuniform = FD_SETTINGS[:3], 5, [16, 64], 10**5
    else:
        shapes = [(10**4,), (10**5,), (10**6,), (100, 100), (316, 316), (1000, 1000)]
        settings, repeats, cheb_sizes, nonuniform = FD_SETTINGS, 7, [16, 64, 256], 10**6
    rows = _fd_rows(shapes, settings, repeats)
    rows.append(_fd_nonuniform_row(nonuniform, repeats))
    return rows + _chebyshev_rows(cheb_sizes, repeats)


if __name__ == "__main__":
    import sys

    result = run(quick="--quick" in sys.argv)
    print(result["title"])
    for row in result["rows"]:
        print({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()})
    print(result["notes"])
