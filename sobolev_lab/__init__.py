"""sobolev_lab: the reproduction harness of :mod:`sobolev`.

Experiments (one module each under :mod:`sobolev_lab.experiments`), run directories
(:mod:`sobolev_lab.runs`) and the ``sobolev`` command over them (:mod:`sobolev_lab.cli`), figures
and tables (:mod:`sobolev_lab.report`), the paired-seed runner and statistics over seeds
(:mod:`sobolev_lab.seeds`) and the committed results behind the docs (:mod:`sobolev_lab.results`).
It depends on the library; the library never imports it. Imports within it go one way:
``cli`` → ``runs`` → ``experiments`` → ``seeds``, ``report``; ``results`` → ``runs``.
"""
