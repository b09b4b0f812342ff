"""Many seeds in one run: :func:`fit_ensemble` trains N members of one architecture at once.

Member n of ``fit_ensemble(models, objective, data, config, seeds=seeds)`` is the run
``fit(models[n], objective, data_n, replace(config, seed=seeds[n]))``: its own initialisation (the
model given), data (``data`` shared, or ``data(seed)`` per member), data order, random directions,
optimiser state and learning-rate schedule. The members are evaluated as one
:class:`sobolev.models.Ensemble` (a batched matrix product per layer, or ``torch.func.vmap``), and
the loss that is differentiated is the sum of the members' own losses, so each member's gradient
is its own: no loss, gradient norm (``grad_clip`` clips per member) or normalisation is shared.
Adam and SGD are elementwise, so one optimiser over the stacked parameters updates every member
as its own optimiser would; L-BFGS is not, and is refused.

What a single run gives, an ensemble gives per member: :func:`fit_ensemble` returns one
:class:`sobolev.training.History` per member (records as :func:`sobolev.fit` logs them; ``time`` is
the ensemble's), evaluation callbacks are called on each member as a standalone module, and
``metrics.jsonl`` holds every member's records with ``member`` and ``seed``. Checkpoints hold
every member's state and resume exactly; the trained parameters are copied back into ``models``
(in place, as :func:`sobolev.fit` trains its model), also after an interrupt. A member whose loss
becomes NaN or Inf stops being logged and its History's ``diverged`` holds the message
:func:`sobolev.fit` would have raised; the others train on (they never see its values).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import distributed as D
from .derivatives import sample_directions
from .losses import SobolevLoss
from .models.ensemble import Ensemble
from .training import (
    DTYPES,
    History,
    Objective,
    TrainConfig,
    _as_data,
    _Batches,
    _check_scale,
    _data_id,
    _model_dtype,
    _Plan,
    _Run,
    _run_config,
    magnitudes,
    resolve_device,
    run_locked,
    seed_everything,
)

__all__ = ["PASS_ENTRIES", "fit_ensemble", "members_per_pass", "seeded_models"]

Data = Sequence[Tensor] | Callable[[int], Sequence[Tensor]]
Evaluate = Callable[[nn.Module], dict[str, float]]


def seeded_models(make: Callable[[], nn.Module], seeds: Sequence[int]) -> list[nn.Module]:
    """``make()`` once per seed, after :func:`sobolev.training.seed_everything` of that seed: the
    initialisations that runs seeded with ``seeds`` start from."""
    models = []
    for s in seeds:
        seed_everything(s)
        models.append(make())
    return models


class _MemberBatches:
    """Every member's data order (its own generator, seeded with its seed) as one index into the
    member-major data: member n's rows first, offset by n·samples when the data are per member."""

    def __init__(
        self, n: int, batch_size: int | None, seeds: Sequence[int], per_member: bool
    ) -> None:
        self.n, self.per_member = n, per_member
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.orders = [_Batches(n, batch_size, g) for g in self.gens]

    def next(self) -> Tensor | None:
        idx = [b.next() for b in self.orders]
        if idx[0] is None:  # full batch
            if self.per_member:
                return None
            idx = [torch.arange(self.n)] * len(self.orders)
        if self.per_member:
            idx = [i + k * self.n for k, i in enumerate(idx)]
        return torch.cat(idx)

    def state(self) -> list[dict[str, Any]]:
        return [{**b.state(), "rng": g.get_state()} for b, g in zip(self.orders, self.gens)]

    def load(self, states: list[dict[str, Any]]) -> None:
        for b, g, s in zip(self.orders, self.gens, states):
            b.load(s)
            g.set_state(s["rng"])


class _EnsembleRun(_Run):
    """A :class:`sobolev.training._Run` over the members of an ensemble: values and terms are
    lists (one per member), records and evaluations per member."""

    def __init__(
        self,
        ensemble: Ensemble,
        members: list[nn.Module],
        objective: Objective | SobolevLoss,
        data: tuple[Tensor, ...],
        per_member: bool,
        cfg: TrainConfig,
        plan: _Plan,
        out: Path | None,
        evaluate: list[Evaluate | None],
        seeds: list[int],
        scales: list[tuple[float, float]],
        members_per_pass: int,
    ) -> None:
        self.members, self.seeds, self.per_member = members, seeds, per_member
        self.members_per_pass = members_per_pass
        self.n_members, self.evaluators = len(seeds), evaluate
        self.diverged: dict[int, tuple[int, str]] = {}
        self.kept: dict[int, list[Tensor]] = {}  # diverged members' parameters, put back each step
        self.scales = scales
        self.samples = data[0].shape[0] // (len(seeds) if per_member else 1)  # per member
        device = next(ensemble.parameters()).device
        self.direction_gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        scale = (max(s[0] for s in scales), max(s[1] for s in scales))
        super().__init__(ensemble, objective, data, cfg, plan, D.Dist(), out, None, scale)
        self.obj = self._member_objective(objective)

    # --- data order, losses per member ---------------------------------------------------------

    def _init_order(self) -> None:
        self.data_gen = None  # every member draws its order from its own generator
        self.batches = _MemberBatches(
            self.samples, self.cfg.batch_size, self.seeds, self.per_member
        )

    def _member_objective(
        self, objective: Objective | SobolevLoss
    ) -> Callable[[Ensemble, tuple[Tensor, ...], range], Any]:
        """``(ensemble, batch, members) -> (losses, {term: values})``, one value per member of
        the pass: a SobolevLoss per sample, reduced per member, with each member's directions
        from its own generator; any other objective must return per-member values itself."""
        if not isinstance(objective, SobolevLoss):
            return lambda model, batch, members: objective(model, batch)
        loss_fn = copy.copy(objective)  # the same settings, per-sample values
        loss_fn.reduction = "none"
        reduce = torch.mean if objective.reduction == "mean" else torch.sum
        k = max(objective.order, 1)

        def obj(model: nn.Module, batch: tuple[Tensor, ...], members: range):
            x, *target = batch
            N = len(members)
            V = None
            if objective.directions is not None:
                B, d = x.shape[0] // N, x.shape[1]
                V = torch.cat(
                    [
                        sample_directions(
                            objective.directions,
                            k,
                            B,
                            d,
                            generator=self.direction_gens[n],
                            dtype=x.dtype,
                            device=x.device,
                        )
                        for n in members
                    ],
                    dim=2,
                )
            tgt = target[0] if len(target) == 1 and callable(target[0]) else target
            total, terms = loss_fn(
                model, x, tgt, return_terms=True, check_finite=False, direction_sets=V
            )
            per = lambda t: reduce(t.reshape(N, -1), dim=1)
            return per(total), {name: per(t) for name, t in terms.items()}

        return obj

    def _loss(
        self, batch: tuple[Tensor, ...], flag: bool
    ) -> tuple[Tensor, dict[str, Tensor], bool]:
        """The members' losses and terms, (N,) each, in passes of ``members_per_pass`` members
        (each pass its own forward and backward, so its working set stays small)."""
        N, G = self.n_members, self.members_per_pass
        rows = batch[0].shape[0] // N
        losses, terms = [], []
        for lo in range(0, N, G):
            hi = min(lo + G, N)
            if G < N:
                part = tuple(t[lo * rows : hi * rows] for t in batch)
                with self.model.select(lo, hi):
                    res = self.obj(self.model, part, range(lo, hi))
            else:  # one pass over every member
                res = self.obj(self.model, batch, range(N))
            loss, tm = res if isinstance(res, tuple) else (res, {})
            for name, t in {"loss": loss, **tm}.items():
                if not isinstance(t, Tensor) or t.shape != (hi - lo,):
                    got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                    raise ValueError(
                        f"an ensemble's objective must return one {name} per member of the "
                        f"ensemble it is given (ensemble.members = {hi - lo}), got {got}"
                    )
            if torch.is_grad_enabled():
                loss.sum().backward()  # member n's parameters get member n's gradient only
            losses.append(loss.detach() if G < N else loss)
            terms.append({k: v.detach() if G < N else v for k, v in tm.items()})
        if len(losses) == 1:
            return losses[0], terms[0], flag
        return torch.cat(losses), {k: torch.cat([t[k] for t in terms]) for k in terms[0]}, flag

    def _value(self, t: Tensor) -> list[float]:
        return t.detach().tolist()

    def _check_finite(self, loss: Tensor) -> list[float]:
        """The members' losses; a member whose loss is not finite is marked diverged at this
        step, and its parameters are kept as they are (:meth:`_after_step` puts them back)."""
        values = self._value(loss)
        for n, v in enumerate(values):
            if n not in self.diverged and not math.isfinite(v):
                self.diverged[n] = (self.step, self._not_finite(v, self.scales[n]))
                with torch.no_grad():
                    self.kept[n] = [p[n].clone() for p in self.model.parameters()]
        return values

    def _after_step(self) -> None:
        with torch.no_grad():
            for n, saved in self.kept.items():
                for p, v in zip(self.model.parameters(), saved):
                    p[n] = v

    def _clip(self, max_norm: float) -> None:
        """``clip_grad_norm_`` per member: each member's gradient norm over its own slices."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return
        N = self.n_members
        norms = torch.stack([g.reshape(N, -1).norm(dim=1) for g in grads]).norm(dim=0)
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.reshape(N, *[1] * (g.ndim - 1)))

    def live(self) -> bool:
        return len(self.diverged) < self.n_members

    # --- evaluation and records per member -----------------------------------------------------

    def _evaluate(self) -> list[dict[str, float]]:
        if not any(self.evaluators):
            return [{}] * self.n_members
        self.model.load_members(self.members)
        out = []
        for n, (m, fn) in enumerate(zip(self.members, self.evaluators)):
            if fn is None or n in self.diverged:
                out.append({})
                continue
            m.eval()
            try:
                out.append({k: float(v) for k, v in fn(m).items()})
            finally:
                m.train()
        return out

    def log(
        self,
        loss: list[float],
        terms: dict[str, list[float]],
        evals: list[dict[str, float]] | dict,
        at_time: float,
        lr: float,
    ) -> None:
        evals = evals or [{}] * self.n_members
        recs = [
            {
                "step": self.step,
                "time": at_time,
                "loss": loss[n],
                **{k: v[n] for k, v in terms.items()},
                "lr": lr,
                "phase": self.phase,
                **evals[n],
                "member": n,
                "seed": seed,
            }
            for n, seed in enumerate(self.seeds)
            if n not in self.diverged
        ]
        self.history.records += recs
        self._write(recs)

    # --- checkpoints -----------------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        return {
            "members": {
                "direction_rng": [g.get_state() for g in self.direction_gens],
                "diverged": [[n, s, msg] for n, (s, msg) in sorted(self.diverged.items())],
            }
        }

    def _restore(self, ck: dict[str, Any], records: list[dict[str, Any]]) -> None:
        super()._restore(ck, records)
        for g, s in zip(self.direction_gens, ck["members"]["direction_rng"]):
            g.set_state(s)
        self.diverged = {n: (s, msg) for n, s, msg in ck["members"]["diverged"]}
        with torch.no_grad():
            self.kept = {n: [p[n].clone() for p in self.model.parameters()] for n in self.diverged}

    def histories(self) -> list[History]:
        """One :class:`History` per member, records as a single run logs them."""
        out = []
        for n in range(self.n_members):
            h = History(resumed_from=self.history.resumed_from)
            h.records = [
                {k: v for k, v in r.items() if k not in ("member", "seed")}
                for r in self.history.records
                if r["member"] == n
            ]
            h.diverged = self.diverged[n][1] if n in self.diverged else None
            out.append(h)
        return out


def _member_data(
    data: Data, seeds: list[int], device: torch.device, dtype: torch.dtype
) -> tuple[tuple[Tensor, ...], bool]:
    """The data as checked tensors: shared (as given), or per member (``data(seed)``) stacked
    member-major along the sample axis; and whether they are per member."""
    if not callable(data):
        return _as_data(data, device, dtype), False
    parts = [_as_data(data(s), device, dtype) for s in seeds]
    shapes = [[tuple(t.shape) for t in p] for p in parts]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(
            f"data(seed) must give every member data of the same shapes, got {shapes[0]} for "
            f"seed {seeds[0]} and {next(s for s in shapes if s != shapes[0])} for another"
        )
    return tuple(torch.cat(ts) for ts in zip(*parts)), True


def _evaluators(evaluate: Any, n: int) -> list[Evaluate | None]:
    if evaluate is None or callable(evaluate):
        return [evaluate] * n
    evaluate = list(evaluate)
    if len(evaluate) != n or not all(e is None or callable(e) for e in evaluate):
        raise ValueError(
            f"evaluate must be None, a callable, or one callable per member ({n}), "
            f"got {len(evaluate)} entries"
        )
    return evaluate


#: the most activation entries (rows × widest layer × (1 + order)) one pass over members holds on a
#: CPU; above
#: it the working set outgrows the caches and a pass over fewer members is faster (measured in
#: benchmarks/bench_ensemble.py)
PASS_ENTRIES = 2**19


def members_per_pass(ensemble: Ensemble, rows: int, device: torch.device, order: int = 1) -> int:
    """How many members one pass evaluates: on a CPU, as many as keep rows × width of their
    widest layer × (1 + the loss's derivative ``order``) under :data:`PASS_ENTRIES` entries
    together (at least one); on a GPU, all."""
    if device.type != "cpu":
        return ensemble.n_members
    width = max(max(p.shape[1:], default=1) for p in ensemble.parameters())
    per_member = max(rows * width * (1 + order), 1)
    return max(1, min(ensemble.n_members, PASS_ENTRIES // per_member))


def _check_passes(
    given: int | None, ensemble: Ensemble, rows: int, device: torch.device, order: int
) -> int:
    if given is None:
        return members_per_pass(ensemble, rows, device, order)
    if isinstance(given, bool) or not isinstance(given, int) or given < 1:
        raise ValueError(f"members_per_pass must be None or a positive integer, got {given!r}")
    return min(given, ensemble.n_members)


def fit_ensemble(
    models: Sequence[nn.Module],
    objective: Objective | SobolevLoss,
    data: Data,
    config: TrainConfig | None = None,
    *,
    seeds: Sequence[int],
    out_dir: str | Path | None = None,
    evaluate: Evaluate | Sequence[Evaluate | None] | None = None,
    desc: str = "train",
    method: str | None = None,
    members_per_pass: int | None = None,
) -> list[History]:
    """Train ``models[n]`` with seed ``seeds[n]`` for every n at once; one History per member.

    Args:
        models: the N members, initialised (e.g. by :func:`seeded_models`); one architecture.
            Trained in place: their parameters are the trained ones when this returns or raises.
        objective: a :class:`sobolev.SobolevLoss` (reduction ``"mean"`` or ``"sum"``; its
            directions are drawn per member, so it may not carry a ``generator``), or a callable
            ``objective(ensemble, batch) -> losses | (losses, terms)`` returning one value per
            member, shape (N,), where ``batch`` holds the members' rows member-major (N·B, …).
        data: the data of every member (as for :func:`sobolev.fit`), or a callable ``seed ->
            data`` giving each member its own (same shapes for every member).
        config: a :class:`sobolev.TrainConfig`; ``seed`` is replaced by each member's seed.
            Adam or SGD (L-BFGS is not elementwise: train such runs with :func:`sobolev.fit`).
        seeds: the members' seeds, one per model, distinct.
        out_dir: run directory (``metrics.jsonl`` with ``member`` and ``seed`` per record,
            ``checkpoint.pt`` of the whole ensemble); resumes as :func:`sobolev.fit` does.
        evaluate: called on each member (a standalone module) at each logged step: one callable
            for all, or one per member.
        method: how the ensemble evaluates its members
            (:data:`sobolev.models.ensemble.ENSEMBLE_METHODS`; ``None`` picks the batched layers
            where they apply).
        members_per_pass: how many members one forward and backward pass evaluates (the others
            follow in further passes of the same step); ``None`` picks it from the size of a
            member's activations (:func:`members_per_pass`): all members where they are small
            (per-call overhead dominates), fewer where the members' activations together would
            outgrow the CPU's caches. The results do not depend on it.

    Runs in one process (not under ``torchrun``).
    """
    cfg = config or TrainConfig()
    seeds = list(seeds)
    models = list(models)
    if (
        not seeds
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ValueError(f"seeds must be distinct non-negative integers, got {seeds!r}")
    if len(models) != len(seeds):
        raise ValueError(
            f"models must hold one model per seed: {len(models)} models for {len(seeds)} seeds"
        )
    if cfg.optimizer == "lbfgs" or cfg.lbfgs_at is not None:
        raise ValueError(
            "fit_ensemble trains with adam or sgd: L-BFGS is not elementwise over the members "
            "(its line search and history mix them); train L-BFGS runs with sobolev.fit"
        )
    if cfg.validation_split:
        raise ValueError(
            "fit_ensemble has no validation_split / early stopping (each member would stop at "
            "its own step): hold out data yourself and pass evaluate, or train with sobolev.fit"
        )
    if isinstance(objective, SobolevLoss):
        if objective.reduction == "none":
            raise ValueError("objective: a SobolevLoss with reduction 'mean' or 'sum' is needed")
        if objective.generator is not None:
            raise ValueError(
                "objective: a SobolevLoss with its own generator cannot give every member its "
                "own directions; leave generator=None (each member draws from its seed)"
            )
    evaluators = _evaluators(evaluate, len(seeds))
    ctx = D.setup()
    if ctx.enabled:
        raise ValueError("fit_ensemble runs in one process: launch it without torchrun")
    device = resolve_device(cfg.device)
    dtype = DTYPES[cfg.dtype] if cfg.dtype is not None else _model_dtype(models[0])
    flat, per_member = _member_data(data, seeds, device, dtype)
    _check_scale(flat, dtype, ctx)  # warns once for all members
    per = flat[0].shape[0] // len(seeds)
    scales = [
        magnitudes([t[n * per : (n + 1) * per] for t in flat]) if per_member else magnitudes(flat)
        for n in range(len(seeds))
    ]
    ensemble = Ensemble(models, method=method)  # checks the architecture
    samples = flat[0].shape[0] // (len(seeds) if per_member else 1)
    if not per_member and (cfg.batch_size or samples) >= samples:  # full batch: stack it once
        flat = tuple(t.repeat(len(seeds), *[1] * (t.ndim - 1)) for t in flat)
        per_member = True
    order = objective.order if isinstance(objective, SobolevLoss) else 1
    passes = _check_passes(
        members_per_pass, ensemble, min(cfg.batch_size or samples, samples), device, order
    )
    cfg = replace(cfg, seed=seeds[0])
    run_config = _run_config(cfg, dtype) | {"seeds": seeds, "ensemble": ensemble.method}
    data_id = _data_id(flat) | {"per_member": per_member}
    run: list[_EnsembleRun] = []

    def make_run(plan: _Plan, out: Path | None) -> _Run:
        ensemble.to(device=device, dtype=dtype)
        for m in models:
            m.to(device=device, dtype=dtype)
        run.append(
            _EnsembleRun(
                ensemble,
                models,
                objective,
                flat,
                per_member,
                cfg,
                plan,
                out,
                evaluators,
                seeds,
                scales,
                passes,
            )
        )
        return run[0]

    try:
        run_locked(out_dir, run_config, data_id, ctx, make_run, desc)
    finally:
        if run:
            ensemble.load_members(models)
    return run[0].histories()
