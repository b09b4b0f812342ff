"""SobolevLoss and derivative options against written-out formulas: p ≠ 2, reduction sum/none as a
module, directions given as an (S, k, d) tensor, DerivativeStack.detach/.to; dict and mixed stacks,
per-sample directional terms, check_finite and teacher targets, and every error message in full."""

import math
import re

import pytest
import torch

from sobolev import MLP, DerivativeStack, SobolevLoss, derivatives, directional_stack, sobolev_loss
from sobolev.derivatives import sample_directions
from sobolev.losses import loss_order, reduce_batch

pytestmark = pytest.mark.usefixtures("double")


def _setup(d=3, m=2, B=5):
    torch.manual_seed(0)
    net = MLP(d, m, width=8, depth=2)
    f = lambda x: torch.stack([torch.sin(x).sum(-1), (x**2).prod(-1)], -1)[:, :m]
    return net, f, torch.randn(B, d)


def _errors(net, f, x, order):
    return [p - t for p, t in zip(derivatives(net, x, order), derivatives(f, x, order))]


@pytest.mark.parametrize("p", [1, 1.5, 3])
def test_p_norm_terms(p):
    net, f, x = _setup()
    got, terms = SobolevLoss(2, p=p, weights=[1.0, 0.5, 0.25])(net, x, f, return_terms=True)
    e = _errors(net, f, x, 2)
    want = [(t.abs() ** p).reshape(5, -1).sum(1).mean() for t in e]
    for j in range(3):
        assert terms[f"D{j}"].item() == pytest.approx(want[j].item(), rel=1e-12)
    assert got.item() == pytest.approx((want[0] + 0.5 * want[1] + 0.25 * want[2]).item(), rel=1e-12)


def test_reductions_as_a_module():
    net, f, x = _setup()
    e = _errors(net, f, x, 1)
    per_sample = (e[0] ** 2).sum(1) + 0.3 * (e[1] ** 2).sum((1, 2))  # (B,)
    none = SobolevLoss(1, weights=[1.0, 0.3], reduction="none")(net, x, f)
    assert none.shape == (5,)
    torch.testing.assert_close(none, per_sample, rtol=1e-12, atol=0)
    assert SobolevLoss(1, weights=[1.0, 0.3], reduction="sum")(net, x, f).item() == pytest.approx(
        per_sample.sum().item(), rel=1e-12
    )
    assert SobolevLoss(1, weights=[1.0, 0.3])(net, x, f).item() == pytest.approx(
        per_sample.mean().item(), rel=1e-12
    )
    dim = SobolevLoss(1, weights=[1.0, 0.3], reduction="none", weighting="dimension")(net, x, f)
    torch.testing.assert_close(dim, per_sample / 4, rtol=1e-12, atol=0)  # Σ_j dʲ = 1 + 3


def test_directions_shared_over_the_batch():
    """A (S, k, d) tensor is one set of directions for every sample: Dʲu[v₁..vⱼ] by einsum on the full stack."""
    net, _, x = _setup()
    V = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1))
    got = derivatives(net, x, 2, directions=V)
    full = derivatives(net, x, 2)
    assert got.directions.shape == (4, 2, 5, 3)
    torch.testing.assert_close(got[0], full[0])
    torch.testing.assert_close(
        got[1], torch.einsum("bci,si->bcs", full[1], V[:, 0]), rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(
        got[2], torch.einsum("bcij,si,sj->bcs", full[2], V[:, 0], V[:, 1]), rtol=1e-10, atol=1e-12
    )
    with pytest.raises(ValueError, match="directions tensor must have shape"):
        derivatives(net, x, 2, directions=torch.randn(4, 1, 3))  # k = 1 < order 2


def test_derivative_stack_detach_and_to():
    net, _, x = _setup()
    V = torch.randn(2, 1, 5, 3)
    stack = derivatives(net, x, 1, directions=V)
    assert all(t.requires_grad for t in stack)
    det = stack.detach()
    assert (
        isinstance(det, DerivativeStack)
        and det.directions is V
        and det.order == 1
        and det.directional
    )
    assert not any(t.requires_grad for t in det)
    assert all(torch.equal(a, b) for a, b in zip(det, stack))
    low = stack.to(torch.float32)
    assert isinstance(low, DerivativeStack) and low.directions.dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in low)
    torch.testing.assert_close(low[1], stack[1].detach().float())
    full = DerivativeStack((x, x[:, :, None]))
    assert full.to(torch.float32).directions is None and not full.directional


def test_check_finite_skips_supplied_stacks_but_never_callable_targets():
    """check_finite=False (data already checked, as fit does) lets a supplied NaN through; a target
    computed from a callable is always checked, and the error names the term."""
    net, _, x = _setup(d=2, m=1, B=3)
    u, du = torch.zeros(3, 1), torch.full((3, 1, 2), float("nan"))
    assert torch.isnan(SobolevLoss(1)(net, x, (u, du), check_finite=False))
    with pytest.raises(ValueError, match="target D1 contains NaN or Inf"):
        SobolevLoss(1)(net, x, (u, du))
    f_nan = lambda z: torch.sqrt(z[:, :1] - 10.0)
    for check in (True, False):
        with pytest.raises(ValueError, match="target D0 contains NaN or Inf"):
            SobolevLoss(1)(net, x, f_nan, check_finite=check)
        with pytest.raises(ValueError, match=r"target D\(1,0\) contains NaN or Inf"):
            SobolevLoss(partials=[(1, 0)])(net, x, f_nan, check_finite=check)


def test_argument_errors_name_what_is_expected():
    from sobolev.losses import loss_order

    with pytest.raises(ValueError, match=r"losses must be among \('L2', 'H1', 'H2'\), got 'H3'"):
        loss_order("H3")
    u = torch.zeros(2, 1)
    with pytest.raises(TypeError, match="must both be sequences .orders. or both dicts .partials."):
        sobolev_loss((u,), {(0,): u})
    with pytest.raises(ValueError, match=r"one entry per partial \(2\), got 1"):
        sobolev_loss({(0, 0): u, (1, 0): u}, {(0, 0): u, (1, 0): u}, weights=[1.0])
    for bad in (1.5, True, -1, "1"):
        with pytest.raises(ValueError, match="order must be a non-negative integer"):
            SobolevLoss(bad)
    with pytest.raises(ValueError, match="pass either partials or directions, not both"):
        SobolevLoss(partials=[(1, 0)], directions=2)


def _random_stacks(seed, B, m, d, k):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(B, m, *(d,) * j, generator=g) for j in range(k + 1)] for _ in range(2)]


def test_reduce_batch():
    t = torch.tensor([1.0, 2.0, 6.0])
    assert reduce_batch(t, "mean").item() == 3.0
    assert reduce_batch(t, "sum").item() == 9.0
    assert reduce_batch(t, "none") is t
    with pytest.raises(
        ValueError, match=r"^reduction must be 'mean', 'sum' or 'none', got 'MEAN'$"
    ):
        reduce_batch(t, "MEAN")


@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
def test_per_sample_terms_at_every_p(p):
    """reduction="none": Σ |e|^p over every non-batch entry of each order, per sample (errors of both signs)."""
    pred, true = _random_stacks(0, 4, 2, 3, 2)
    total, terms = sobolev_loss(pred, true, p=p, weights=[1.0, 0.5, 0.25], reduction="none")
    want = [((a - b).abs() ** p).reshape(4, -1).sum(1) for a, b in zip(pred, true)]
    for j in range(3):
        torch.testing.assert_close(terms[f"D{j}"], want[j], rtol=1e-12, atol=0)
    torch.testing.assert_close(total, want[0] + 0.5 * want[1] + 0.25 * want[2], rtol=1e-12, atol=0)


def test_per_sample_directional_terms_average_over_the_sets():
    """reduction="none" on directional stacks, m = 2 outputs and S = 3 sets: order j ≥ 1 is
    Σ_c Σ_s (Dʲe[v₁..vⱼ])² / S per sample (contracted here by einsum); order 0 is Σ_c e²."""
    pred, true = _random_stacks(1, 4, 2, 3, 2)
    V = torch.randn(3, 2, 4, 3, generator=torch.Generator().manual_seed(2))
    e = [a - b for a, b in zip(pred, true)]
    e1 = torch.einsum("bci,sbi->bcs", e[1], V[:, 0])
    e2 = torch.einsum("bcij,sbi,sbj->bcs", e[2], V[:, 0], V[:, 1])
    want = [(e[0] ** 2).sum(1), (e1**2).sum((1, 2)) / 3, (e2**2).sum((1, 2)) / 3]
    total, terms = sobolev_loss(
        directional_stack(pred, V), directional_stack(true, V), reduction="none"
    )
    for j in range(3):
        torch.testing.assert_close(terms[f"D{j}"], want[j], rtol=1e-12, atol=0)
    torch.testing.assert_close(total, sum(want), rtol=1e-12, atol=0)
    # the module's per-sample path agrees with the same directions drawn from the same seed
    net, f, x = _setup(d=3, m=2, B=4)
    got = SobolevLoss(
        2, directions=3, reduction="none", generator=torch.Generator().manual_seed(5)
    )(net, x, f)
    W = torch.randn(3, 2, 4, 3, generator=torch.Generator().manual_seed(5))
    full = _errors(net, f, x, 2)
    d1 = torch.einsum("bci,sbi->bcs", full[1], W[:, 0])
    d2 = torch.einsum("bcij,sbi,sbj->bcs", full[2], W[:, 0], W[:, 1])
    torch.testing.assert_close(
        got,
        (full[0] ** 2).sum(1) + (d1**2).sum((1, 2)) / 3 + (d2**2).sum((1, 2)) / 3,
        rtol=1e-10,
        atol=1e-12,
    )


def test_dict_stacks_with_several_outputs():
    """Partials stacks (dicts) with m = 2: each term sums over the outputs, averages over the batch only."""
    z = torch.zeros(2, 2)
    pred = {
        (0, 0): torch.tensor([[1.0, 2.0], [0.0, 0.0]]),
        (1, 0): torch.tensor([[0.0, 0.0], [3.0, 0.0]]),
    }
    total, terms = sobolev_loss(pred, {(1, 0): z, (0, 0): z}, weights=[1.0, 2.0])
    assert terms["D(0,0)"].item() == 2.5 and terms["D(1,0)"].item() == 4.5
    assert total.item() == 2.5 + 2 * 4.5
    none, _ = sobolev_loss(pred, {(0, 0): z, (1, 0): z}, weights=[1.0, 2.0], reduction="none")
    assert none.tolist() == [5.0, 18.0]


def test_plain_sequences_mix_with_full_derivative_stacks():
    """A plain list and a non-directional DerivativeStack are the same layout, in either role."""
    pred, true = _random_stacks(3, 3, 1, 2, 1)
    want = sum(((a - b) ** 2).reshape(3, -1).sum(1).mean() for a, b in zip(pred, true))
    for a, b in ((pred, DerivativeStack(true)), (DerivativeStack(pred), true)):
        assert sobolev_loss(a, b)[0].item() == pytest.approx(want.item(), rel=1e-12)


def test_default_order_is_one():
    net, f, x = _setup(d=2, m=1, B=3)
    loss = SobolevLoss()
    assert loss.order == 1 and loss.weights == [1.0, 1.0]
    _, terms = loss(net, x, f, return_terms=True)
    assert set(terms) == {"D0", "D1"}


def test_one_dimensional_values_are_accepted():
    """u of shape (B,) in a supplied stack is taken as (B, 1)."""
    net, f, x = _setup(d=2, m=1, B=3)
    u, du = derivatives(f, x, 1, create_graph=False)
    a = SobolevLoss(1)(net, x, (u[:, 0], du))
    b = SobolevLoss(1)(net, x, (u, du))
    assert a.item() == b.item()
    assert SobolevLoss(0)(net, x, u[:, 0]).item() == pytest.approx(
        ((net(x) - u) ** 2).mean().item(), rel=1e-12
    )


def _nan_x(B=3, d=2):
    x = torch.randn(B, d, generator=torch.Generator().manual_seed(4))
    x[1, 0] = float("nan")
    return x


@pytest.mark.parametrize("kind", ["stack", "directions", "partials"])
def test_check_finite_of_x(kind):
    """check_finite=False lets a NaN in x through (the loss is NaN); the default raises before any
    model call; a callable target on such x is still checked (its message names the target term)."""
    net, f, _ = _setup(d=2, m=1, B=3)
    x = _nan_x()
    xf = torch.nan_to_num(x)
    if kind == "partials":
        loss = SobolevLoss(partials=[(0, 0), (1, 0)])
        supplied = derivatives(f, xf, 1, partials=[(0, 0), (1, 0)], create_graph=False)
        first = "D(0,0)"
    else:
        loss = SobolevLoss(
            1,
            directions=2 if kind == "directions" else None,
            generator=torch.Generator().manual_seed(0),
        )
        supplied, first = derivatives(f, xf, 1, create_graph=False), "D0"
    assert torch.isnan(loss(net, x, supplied, check_finite=False))
    for target in (supplied, f):
        with pytest.raises(
            ValueError, match=r"^x contains NaN or Inf: derivatives need finite points$"
        ):
            loss(net, x, target)
    with pytest.raises(ValueError, match=f"^target {re.escape(first)} contains NaN or Inf$"):
        loss(net, x, f, check_finite=False)


def test_directions_are_sampled_in_the_dtype_of_x():
    """float32 points under a float64 default: the S sets are drawn as float32 from the generator
    (not drawn as float64 and cast, which gives other numbers)."""
    torch.manual_seed(0)
    net = MLP(2, 1, width=8, depth=2).float()
    f = lambda z: torch.sin(z).sum(-1, keepdim=True)
    x = torch.randn(4, 2, dtype=torch.float32)
    got = SobolevLoss(1, directions=3, generator=torch.Generator().manual_seed(7))(net, x, f)
    V = sample_directions(
        3, 1, 4, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float32
    )
    e = _errors(net, f, x, 1)
    want = (e[0] ** 2).sum(1).mean() + (torch.einsum("bci,sbi->bcs", e[1], V[:, 0]) ** 2).sum(
        1
    ).mean()
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("kw", [{}, {"directions": 2}, {"partials": [(0, 0), (1, 0), (0, 1)]}])
def test_a_teacher_module_target_gets_no_gradient(kw):
    """A target that is itself a trainable module is a constant: backward reaches only the student."""
    torch.manual_seed(0)
    student, teacher = MLP(2, 1, width=8, depth=2), MLP(2, 1, width=8, depth=2)
    SobolevLoss(**kw)(student, torch.randn(5, 2), teacher).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


@pytest.mark.parametrize("kw", [{}, {"directions": 2}, {"partials": [(0, 0), (1, 0)]}])
def test_the_model_sees_only_full_batches(kw):
    """The graph to the parameters is requested outright, so a model given as a plain function is
    never probed on a single row (which would break batch-statistics models such as BatchNorm)."""
    net, f, x = _setup(d=2, m=1, B=4)
    seen = []

    def model(y):
        seen.append(y.shape[0])
        return net(y)

    SobolevLoss(**kw)(model, x, f).backward()
    assert seen and set(seen) == {4}
    assert all(p.grad is not None for p in net.parameters())


def _u(B=3, m=1):
    return torch.zeros(B, m)


_V = torch.zeros(2, 1, 3, 2)
_DIR = directional_stack((_u(), torch.zeros(3, 1, 2)), _V)
_FULL = DerivativeStack((_u(), torch.zeros(3, 1, 2)))

MESSAGES = [  # (call, exception, the whole message)
    (lambda: loss_order("H3"), ValueError, "losses must be among ('L2', 'H1', 'H2'), got 'H3'"),
    (
        lambda: sobolev_loss((_u(),), {(0,): _u()}),
        TypeError,
        "pred_stack and target_stack must both be sequences (orders) or both dicts (partials)",
    ),
    (
        lambda: sobolev_loss({(0, 0): _u(), (1, 0): _u()}, {(0, 0): _u(), (0, 1): _u()}),
        ValueError,
        "partials differ: pred has [(0, 0), (1, 0)], target has [(0, 0), (0, 1)]",
    ),
    (
        lambda: sobolev_loss((_u(), _u()), (_u(),)),
        ValueError,
        "pred_stack has orders 0..1 but target_stack has orders 0..0: stacks must have the same length",
    ),
    (
        lambda: sobolev_loss(_DIR, _FULL),
        ValueError,
        "pred_stack is directional but target_stack is not (or vice versa): contract full targets with "
        "sobolev.directional_stack first",
    ),
    (
        lambda: sobolev_loss(_FULL, _DIR),
        ValueError,
        "pred_stack is directional but target_stack is not (or vice versa): contract full targets with "
        "sobolev.directional_stack first",
    ),
    (
        lambda: sobolev_loss(_DIR, _DIR, p=1),
        ValueError,
        "directional stacks give unbiased estimates only for p = 2, got p=1",
    ),
    (lambda: sobolev_loss((), ()), ValueError, "stacks must hold at least the order-0 values"),
    (lambda: sobolev_loss({}, {}), ValueError, "stacks must hold at least the order-0 values"),
    (
        lambda: sobolev_loss((_u(),), (_u(),), reduction="avg"),
        ValueError,
        "reduction must be 'mean', 'sum' or 'none', got 'avg'",
    ),
    (lambda: sobolev_loss((_u(),), (_u(),), p=0.5), ValueError, "p must be a number ≥ 1, got 0.5"),
    (
        lambda: sobolev_loss((_u(), _u()), (_u(), _u()), weights=[1.0]),
        ValueError,
        "weights must have one entry per order (2), got 1",
    ),
    (
        lambda: sobolev_loss((_u(), _u()), (_u(), _u()), weights=[1.0, -1.0]),
        ValueError,
        "weights must be non-negative and finite, got [1.0, -1.0]",
    ),
    (
        lambda: sobolev_loss((_u(),), (_u(),), weights=[float("nan")]),
        ValueError,
        "weights must be non-negative and finite, got [nan]",
    ),
    (
        lambda: sobolev_loss((_u(), _u(3, 2)), (_u(), _u(3, 1))),
        ValueError,
        "shape mismatch at D1: prediction (3, 2) vs target (3, 1)",
    ),
    (
        lambda: sobolev_loss((_u(),), (torch.full((3, 1), float("inf")),)),
        ValueError,
        "target D0 contains NaN or Inf",
    ),
    (lambda: SobolevLoss(-1), ValueError, "order must be a non-negative integer, got -1"),
    (lambda: SobolevLoss(1, p=0), ValueError, "p must be a number ≥ 1, got 0"),
    (
        lambda: SobolevLoss(1, directions=0),
        ValueError,
        "directions must be None or a positive int, got 0",
    ),
    (
        lambda: SobolevLoss(1, directions=2.5),
        ValueError,
        "directions must be None or a positive int, got 2.5",
    ),
    (
        lambda: SobolevLoss(1, directions=True),
        ValueError,
        "directions must be None or a positive int, got True",
    ),
    (
        lambda: SobolevLoss(1, directions="2"),
        ValueError,
        "directions must be None or a positive int, got '2'",
    ),
    (
        lambda: SobolevLoss(1, p=3, directions=2),
        ValueError,
        "directional estimates are unbiased only for p = 2; use full derivatives for p ≠ 2",
    ),
    (
        lambda: SobolevLoss(partials=[]),
        ValueError,
        "partials must be a non-empty list of multi-indices, e.g. [(0, 0), (1, 0)]",
    ),
    (
        lambda: SobolevLoss(partials=[(1, 0)], directions=2),
        ValueError,
        "pass either partials or directions, not both",
    ),
    (
        lambda: SobolevLoss(partials=[(1, 0)], weighting="dimension"),
        ValueError,
        "weighting='dimension' balances whole orders; with partials give explicit weights",
    ),
    (
        lambda: SobolevLoss(1, weighting="entries"),
        ValueError,
        "weighting must be 'none' or 'dimension', got 'entries'",
    ),
    (
        lambda: SobolevLoss(1, reduction="avg"),
        ValueError,
        "reduction must be 'mean', 'sum' or 'none', got 'avg'",
    ),
    (
        lambda: SobolevLoss(1, weights=[1.0]),
        ValueError,
        "weights must have one entry per order (2), got 1",
    ),
    (
        lambda: SobolevLoss(partials=[(1, 0), (0, 1)], weights=[1.0]),
        ValueError,
        "weights must have one entry per partial (2), got 1",
    ),
]


def _call(loss, target):
    return lambda: loss(MLP(2, 1, width=4, depth=1), torch.zeros(3, 2), target)


FORWARD_MESSAGES = [
    (
        SobolevLoss(1),
        torch.zeros(3, 1),
        ValueError,
        "a Tensor target gives values only; order=1 needs a derivative stack (u, Du, …) or a callable target",
    ),
    (
        SobolevLoss(1),
        5,
        TypeError,
        "target must be a derivative stack, a Tensor or a callable, got int",
    ),
    (
        SobolevLoss(1),
        "ab",
        TypeError,
        "target must be a derivative stack, a Tensor or a callable, got str",
    ),
    (
        SobolevLoss(1),
        {(0, 0): _u()},
        TypeError,
        "target must be a derivative stack, a Tensor or a callable, got dict",
    ),
    (SobolevLoss(1), (_u(),), ValueError, "target stack has 1 entries but order=1 needs 2"),
    (
        SobolevLoss(partials=[(1, 0)]),
        (_u(),),
        TypeError,
        "with partials, target must be a dict {multi-index: (B, m)} or a callable",
    ),
]


@pytest.mark.parametrize(
    "call,exc,message", MESSAGES + [(_call(lo, t), e, m) for lo, t, e, m in FORWARD_MESSAGES]
)
def test_error_messages_in_full(call, exc, message):
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        call()


@pytest.mark.parametrize("kw", [{}, {"directions": 2}, {"partials": [(0,)]}])
def test_one_dimensional_x_gets_the_shape_message(kw):
    net = MLP(1, 1, width=4, depth=1)
    with pytest.raises(ValueError, match=r"^x must have shape \(batch, d\), got shape \(3,\)$"):
        SobolevLoss(**kw)(net, torch.zeros(3), lambda z: z.sin())


def test_bad_inputs_found_by_mutation_triage():
    """Infinite weights, boolean p and a non-tensor or 0-d x are one-line errors naming the argument."""
    u = torch.zeros(3, 1)
    for bad in ([math.inf], [1.0, -math.inf]):
        with pytest.raises(ValueError, match=r"^weights must be non-negative and finite, got "):
            sobolev_loss(tuple([u] * len(bad)), tuple([u] * len(bad)), weights=bad)
    with pytest.raises(ValueError, match=r"^weights must be non-negative and finite, got \[inf\]$"):
        SobolevLoss(0, weights=[math.inf])
    with pytest.raises(ValueError, match=r"^p must be a number ≥ 1, got True$"):
        SobolevLoss(1, p=True)
    net = MLP(2, 1, width=4, depth=1)
    with pytest.raises(
        TypeError, match=r"^x must be a torch.Tensor of shape \(batch, d\), got list$"
    ):
        SobolevLoss(1)(net, [[0.0, 1.0]], lambda z: z[:, :1])
    with pytest.raises(ValueError, match=r"^x must have shape \(batch, d\), got shape \(\)$"):
        SobolevLoss(1)(net, torch.tensor(1.0), lambda z: z[:, :1])
