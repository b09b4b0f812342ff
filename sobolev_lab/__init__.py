"""sobolev_lab: the reproduction harness of :mod:`sobolev`.

Experiments (one module each under :mod:`sobolev_lab.experiments`), the ``sobolev`` command
(:mod:`sobolev_lab.cli`), figures and tables (:mod:`sobolev_lab.report`), statistics over paired
seeds (:mod:`sobolev_lab.seeds`) and the committed results behind the docs
(:mod:`sobolev_lab.results`). It depends on the library; the library never imports it.
"""
