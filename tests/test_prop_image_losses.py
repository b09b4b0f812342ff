"""Property tests (hypothesis) of the image losses: at s = 0 every method is the mean squared
error (the paper's two-axis loss: twice it) for any image shape, batch and reduction."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sobolev.image_losses import image_sobolev_loss

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=30)


def _pair(seed, B, C, H, W):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, C, H, W, generator=g, dtype=torch.float64),
        torch.randn(B, C, H, W, generator=g, dtype=torch.float64),
    )


def _mse(pred, target):
    """Per-image mean squared error, (B,), written out."""
    return ((pred - target) ** 2).reshape(pred.shape[0], -1).mean(1)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(1, 3),
    C=st.integers(1, 3),
    H=st.integers(1, 12),
    W=st.integers(1, 12),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    spacing=st.floats(0.1, 3),
)
def test_s0_is_mse_for_any_shape(seed, B, C, H, W, reduction, spacing):
    pred, target = _pair(seed, B, C, H, W)
    per = _mse(pred, target)
    want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    got = image_sobolev_loss(pred, target, s=0, reduction=reduction, spacing=spacing)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    # the spectral path itself (s ≈ 0 goes through the FFT): Parseval's normalisation
    tiny = image_sobolev_loss(pred, target, s=1e-12, reduction=reduction, spacing=spacing)
    torch.testing.assert_close(tiny, want, rtol=1e-9, atol=0)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1), B=st.integers(1, 3), C=st.integers(1, 2), n=st.integers(1, 10)
)
def test_paper_loss_at_s0(seed, B, C, n):
    """Official code at s = 0: each of the two per-axis terms is the MSE (Parseval along each axis)."""
    pred, target = _pair(seed, B, C, n, n)
    torch.testing.assert_close(
        image_sobolev_loss(pred, target, s=0, method="paper"),
        2 * _mse(pred, target).mean(),
        rtol=1e-12,
        atol=0,
    )


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(1, 3),
    C=st.integers(1, 2),
    H=st.integers(3, 12),
    W=st.integers(3, 12),
)
def test_fd_at_s0_is_mse(seed, B, C, H, W):
    pred, target = _pair(seed, B, C, H, W)
    got = image_sobolev_loss(pred, target, s=0, method="fd", reduction="none")
    torch.testing.assert_close(got, _mse(pred, target), rtol=1e-12, atol=0)
