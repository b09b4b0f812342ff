"""Issue 14, library side: no data loss, no silent casts, constant targets, one-line errors,
optimiser options, fewer Hessian-vector products, and a `fit` made of named parts."""

import ast
import inspect
import math
import textwrap

import pytest
import torch

from sobolev import MLP, SobolevLoss, TrainConfig, derivatives, fit, seed_everything, training
from sobolev import distributed as D


def _problem(n=16):
    x = torch.linspace(-2, 2, n, dtype=torch.float64).unsqueeze(1)
    return x, derivatives(torch.sin, x, 1, create_graph=False)


def _model(dtype=torch.float64, **kw):
    seed_everything(0)
    return MLP(1, 1, width=8, depth=2, **kw).to(dtype)


def _cfg(**kw):
    return TrainConfig(
        **{**dict(steps=10, log_every=5, checkpoint_every=5, progress=False, seed=1), **kw}
    )


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


# --- item 1: a refused resume leaves the run directory byte for byte as it was -------------------


def test_refused_resume_leaves_the_run_directory_unchanged(tmp_path):
    x, stack = _problem()
    fit(_model(), SobolevLoss(1), (x, *stack), _cfg(), out_dir=tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"differs from the checkpoint's in \['lr'\]"):
        fit(_model(), SobolevLoss(1), (x, *stack), _cfg(lr=0.5), out_dir=tmp_path)
    assert _snapshot(tmp_path) == before


# --- item 4: the default config keeps the model's dtype ------------------------------------------


def test_default_config_keeps_the_model_dtype_and_casts_data_to_it():
    x, stack = _problem()
    seen = []

    def mse(model, batch):
        seen.append(batch[0].dtype)
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    model = _model(torch.float64)
    fit(model, mse, (x.float(), stack[0].float()), TrainConfig(steps=2, progress=False))
    assert all(p.dtype == torch.float64 for p in model.parameters()) and set(seen) == {
        torch.float64
    }
    model32 = _model(torch.float32)
    fit(model32, mse, (x, stack[0]), TrainConfig(steps=2, progress=False))
    assert all(p.dtype == torch.float32 for p in model32.parameters()) and seen[-1] == torch.float32
    fit(
        model, mse, (x, stack[0]), TrainConfig(steps=2, progress=False, dtype="float32")
    )  # explicit: cast
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_checkpoints_without_the_new_settings_still_resume(tmp_path):
    x, stack = _problem()
    fit(_model(), SobolevLoss(1), (x, *stack), _cfg(), out_dir=tmp_path)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    for k in ("betas", "eps", "weight_decay_on"):  # as written before these settings existed
        del ck["config"][k]
    torch.save(ck, tmp_path / "checkpoint.pt")
    assert (
        fit(_model(), SobolevLoss(1), (x, *stack), _cfg(steps=15), out_dir=tmp_path).resumed_from
        == 10
    )


# --- item 5: targets are constants ---------------------------------------------------------------


def test_target_stacks_carry_no_graph_into_the_loss():
    x, _ = _problem()
    target = lambda t: torch.sin(t) * t
    stack = derivatives(target, x, 1)  # grad mode on, create_graph left at its default
    assert not any(t.requires_grad for t in stack)
    model, loss_fn = _model(), SobolevLoss(1)
    for _ in range(2):  # a hand-written loop reusing the stack
        loss_fn(model, x, stack).backward()
    with_graph = derivatives(lambda t: target(t) * torch.ones(1, requires_grad=True), x, 1)
    assert with_graph[
        0
    ].requires_grad  # a callable with trainable tensors keeps its graph by default
    for _ in range(2):  # ... and passed as a target it is still a constant
        loss_fn(model, x, with_graph).backward()


# --- item 6: NaN/Inf points ----------------------------------------------------------------------


# --- item 8: unreadable checkpoints, array-like data ---------------------------------------------


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "foreign"])
def test_unreadable_checkpoint_is_a_value_error_naming_the_path(tmp_path, damage):
    x, stack = _problem()
    fit(_model(), SobolevLoss(1), (x, *stack), _cfg(), out_dir=tmp_path)
    ck = tmp_path / "checkpoint.pt"
    if damage == "foreign":
        torch.save({"weights": torch.zeros(2)}, ck)
    else:
        ck.write_bytes(
            {
                "empty": b"",
                "truncated": ck.read_bytes()[: ck.stat().st_size // 2],
                "garbage": b"not a checkpoint\n",
            }[damage]
        )
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="new out_dir") as err:
        fit(_model(), SobolevLoss(1), (x, *stack), _cfg(), out_dir=tmp_path)
    assert str(ck) in str(err.value) and "\n" not in str(err.value)
    assert _snapshot(tmp_path) == before


def test_fit_accepts_numpy_arrays_and_explains_nested_tuples():
    x, stack = _problem()
    arrays = tuple(t.numpy() for t in (x, *stack))
    hist = fit(_model(), SobolevLoss(1), arrays, _cfg(steps=3))
    assert math.isfinite(hist.records[-1]["loss"])
    mse = lambda model, batch: ((model(batch[0]) - batch[1]) ** 2).mean()
    fit(_model(), mse, (x.tolist(), stack[0].tolist()), _cfg(steps=2))  # nested lists of numbers
    with pytest.raises(ValueError, match=r"flat tuple of tensors.*\(x, \*stack\)"):
        fit(_model(), SobolevLoss(1), (x, stack), _cfg())
    with pytest.raises(ValueError, match=r"data\[1\] must be a tensor or a numeric array-like"):
        fit(_model(), mse, (x, ["a", "b"]), _cfg())
    with pytest.raises(ValueError, match="data must be a tuple of tensors"):
        fit(_model(), mse, x, _cfg())


# --- item 9: grid_derivatives messages, descending Chebyshev grids --------------------------------


# --- item 10: optimiser settings, MLP widths -----------------------------------------------------


def test_adam_betas_eps_and_weight_decay_on_weights_only(tmp_path):
    x, stack = _problem()
    fit(
        _model(),
        SobolevLoss(1),
        (x, *stack),
        _cfg(betas=[0.5, 0.9], eps=1e-6, weight_decay=0.1, weight_decay_on="weights"),
        out_dir=tmp_path,
    )
    groups = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["optimizer"]["param_groups"]
    assert [(g["betas"], g["eps"], g["weight_decay"]) for g in groups] == [
        ((0.5, 0.9), 1e-6, 0.1),
        ((0.5, 0.9), 1e-6, 0.0),
    ]
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    zero = lambda m, batch: sum(p.sum() for p in m.parameters()) * 0.0
    fit(
        model,
        zero,
        (x,),
        _cfg(optimizer="sgd", lr=0.1, weight_decay=0.5, weight_decay_on="weights", steps=4),
    )
    for b, p in zip(before, model.parameters()):
        assert torch.allclose(p, b * (1 - 0.05) ** 4 if p.ndim >= 2 else b)
    for bad, match in [
        (dict(betas=(0.9,)), "betas"),
        (dict(eps=0.0), "eps"),
        (dict(weight_decay_on="biases"), "weight_decay_on"),
        (dict(weight_decay=-1.0), "weight_decay"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)


def test_mlp_with_a_list_of_hidden_widths():
    net = MLP(2, 3, widths=[20, 10])
    shapes = [tuple(m.weight.shape) for m in net.net if isinstance(m, torch.nn.Linear)]
    assert shapes == [(20, 2), (10, 20), (3, 10)]
    assert net(torch.zeros(4, 2)).shape == (4, 3)
    assert len(MLP(2, 1, 16, 2)(torch.zeros(1, 2))) == 1  # the positional signature still works
    with pytest.raises(ValueError, match=r"widths\[1\] must be a positive integer"):
        MLP(2, widths=[4, 0])
    with pytest.raises(ValueError, match="either widths or width/depth"):
        MLP(2, width=8, widths=[4])


# --- item 11: per-step work done once, not per step (timings: benchmarks/bench_overhead.py) ------


def test_fit_checks_data_once_and_skips_averaging_in_one_process(monkeypatch):
    x, stack = _problem()
    calls = []
    real = torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: calls.append(1) or real(t))

    def no_average(*args, **kwargs):
        raise AssertionError("distributed averaging called in a single process")

    monkeypatch.setattr(D, "average", no_average)
    counts = []
    for steps in (2, 12):
        calls.clear()
        fit(_model(), SobolevLoss(1), (x, *stack), _cfg(steps=steps, checkpoint_every=0))
        counts.append(len(calls))
    assert counts[0] == counts[1] == 3  # one check per data tensor, none per step


# --- item 12: order-2 directions take min(S, d) Hessian-vector products ---------------------------


# --- item 13: fit is a few named parts ----------------------------------------------------------


def test_fit_reads_as_named_parts_without_nested_closures():
    tree = ast.parse(textwrap.dedent(inspect.getsource(training.fit)))
    nested = [
        n.name
        for n in ast.walk(tree.body[0])
        if isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not tree.body[0]
    ]
    assert nested == []
    for part in ("_as_data", "_plan", "_prepare_out"):
        assert callable(getattr(training, part))
    for method in ("train_step", "log", "checkpoint", "final"):
        assert callable(getattr(training._Run, method))
