"""PSNR and SSIM: known values, scikit-image's reference value, and monotonicity in the
noise level."""

import math

import numpy as np
import pytest
import torch

from sobolev.image_metrics import gaussian_window, image_errors, psnr, ssim

pytestmark = pytest.mark.usefixtures("double")


def _reference_pair():
    rng = np.random.default_rng(0)
    a = rng.random((20, 23))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    return a, b


def test_psnr_known_value():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.full_like(x, 0.1)
    assert torch.allclose(psnr(y, x), torch.full((2,), 20.0))  # MSE 0.01 → 20 dB
    assert psnr(y * 2, x, data_range=2.0)[0].item() == pytest.approx(20.0)


def test_ssim_identity_and_decrease_with_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 16, 16, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(3))
    values = [
        ssim((x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1), x).mean().item()
        for sigma in (0.02, 0.1, 0.3)
    ]
    assert 1 > values[0] > values[1] > values[2]


def test_ssim_matches_scikit_image_recorded_value():
    # skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    #     use_sample_covariance=False, data_range=1.0) with scikit-image 0.26.0:
    a, b = _reference_pair()
    got = ssim(torch.tensor(a)[None, None], torch.tensor(b)[None, None]).item()
    assert got == pytest.approx(0.8131268018124113, abs=1e-12)


def test_ssim_matches_scikit_image_if_installed():
    metrics = pytest.importorskip("skimage.metrics")
    a, b = _reference_pair()
    ref = metrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert ssim(torch.tensor(a)[None, None], torch.tensor(b)[None, None]).item() == pytest.approx(
        ref, abs=1e-12
    )


def test_window_and_errors_and_checks():
    w = gaussian_window(1.5)
    assert w.numel() == 11 and w.sum().item() == pytest.approx(1.0) and torch.equal(w, w.flip(0))
    x = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    errs = image_errors(x + 0.1, x)
    assert (
        errs["mse"] == pytest.approx(0.01)
        and errs["psnr"] == pytest.approx(20.0)
        and errs["ssim"] < 1
    )
    with pytest.raises(ValueError, match="at least 11 pixels"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:1])
    assert math.isfinite(psnr(x, x)[0].item())
