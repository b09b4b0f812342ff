"""Speed and memory benchmarks of `sobolev` (run with ``python -m benchmarks``
or ``make bench``)."""
