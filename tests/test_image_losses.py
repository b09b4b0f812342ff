"""Image H^s losses: analytic norms of trigonometric images, Parseval, FD terms by hand, the
official losses of arXiv 2509.19773 against a transcription of the official code, and argument
checks."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sobolev.image_losses import (
    ImageSobolevLoss,
    image_derivatives,
    image_sobolev_loss,
    loss_from_name,
    sobolev_multiplier,
)

pytestmark = pytest.mark.usefixtures("double")


def _wave(h, w, ky, kx, phase=0.3):
    """cos(2π(ky·i/h + kx·j/w) + phase) as a (1, 1, h, w) image; its |ξ|² (spacing 1)."""
    i = torch.arange(h)[:, None]
    j = torch.arange(w)[None, :]
    img = torch.cos(2 * math.pi * (ky * i / h + kx * j / w) + phase)
    return img.expand(1, 1, h, w).clone(), (2 * math.pi * ky / h) ** 2 + (2 * math.pi * kx / w) ** 2


def _pair(shape=(3, 2, 12, 10), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("s", [0.5, 1.0, 2.0, 1.7])
@pytest.mark.parametrize("freq", [(1, 2), (0, 3), (5, 4), (-2, 1)])
def test_trigonometric_image_has_analytic_norm(s, freq):
    img, xi2 = _wave(12, 10, *freq)
    zero = torch.zeros_like(img)
    assert image_sobolev_loss(img, zero, s=s) == pytest.approx(
        (1 + xi2) ** s * F.mse_loss(img, zero).item(), rel=1e-12
    )


def test_spacing_scales_frequencies():
    img, xi2 = _wave(12, 10, 1, 2)
    zero = torch.zeros_like(img)
    hy, hx = 0.5, 0.25
    xi2_h = (2 * math.pi * 1 / (12 * hy)) ** 2 + (2 * math.pi * 2 / (10 * hx)) ** 2
    got = image_sobolev_loss(img, zero, s=1, spacing=(hy, hx))
    assert got == pytest.approx((1 + xi2_h) * F.mse_loss(img, zero).item(), rel=1e-12)


def test_s0_is_exactly_mse_and_parseval_holds_on_spectral_path():
    a, b = _pair()
    assert torch.equal(image_sobolev_loss(a, b, s=0), F.mse_loss(a, b))
    # Tiny s goes through the FFT path: continuity at s = 0 is Parseval with the 1/N² normalisation.
    assert image_sobolev_loss(a, b, s=1e-12).item() == pytest.approx(
        F.mse_loss(a, b).item(), rel=1e-9
    )
    e = a - b
    n = e.shape[-1] * e.shape[-2]
    assert (torch.fft.fft2(e).abs().square().sum((-2, -1)) / n).mean() / n == pytest.approx(
        F.mse_loss(a, b).item(), rel=1e-12
    )


def test_full_spectrum_weighting_matches_rfft_folding_for_odd_and_even_sizes():
    for shape in [(2, 1, 9, 7), (2, 3, 8, 6), (1, 1, 5, 8)]:
        a, b = _pair(shape, seed=1)
        e = a - b
        h, w = shape[-2:]
        mult = sobolev_multiplier(h, w, 1.3)
        full = (mult * torch.fft.fft2(e).abs().square()).sum((-2, -1)).mean()
        got = image_sobolev_loss(a, b, s=1.3, reduction="sum") / shape[0]
        assert got.item() == pytest.approx((full / (h * w) ** 2).item(), rel=1e-12)


def test_reductions_and_linearity_in_batch():
    a, b = _pair()
    per = image_sobolev_loss(a, b, s=1, reduction="none")
    assert per.shape == (3,)
    assert image_sobolev_loss(a, b, s=1).item() == pytest.approx(per.mean().item())
    assert image_sobolev_loss(a, b, s=1, reduction="sum").item() == pytest.approx(per.sum().item())
    assert image_sobolev_loss(a[1:2], b[1:2], s=1).item() == pytest.approx(per[1].item())
    assert torch.allclose(
        image_sobolev_loss(a, b, s=0, reduction="none"), (a - b).square().mean((1, 2, 3))
    )


def test_gradient_flows_to_pred():
    a, b = _pair()
    a.requires_grad_(True)
    for kw in (dict(s=1), dict(s=1, method="fd")):
        (g,) = torch.autograd.grad(image_sobolev_loss(a, b, **kw), a)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    # Fourier H^1 gradient of ½‖e‖²: (2/N)(1 − Δ)e per image / (B·C): compare with a finite check.
    e = (a - b).detach()
    lap = sum(
        torch.fft.ifft2(
            torch.fft.fft2(e) * -(2 * math.pi * torch.fft.fftfreq(n)).square().reshape(shape)
        ).real
        for n, shape in ((12, (12, 1)), (10, (1, 10)))
    )
    (g,) = torch.autograd.grad(image_sobolev_loss(a, b, s=1), a)
    assert torch.allclose(g, 2 * (e - lap) / e.numel(), atol=1e-12)


def test_fd_terms_by_hand():
    # u = 3x² + 2xy − y on a grid with spacing (hy, hx): central differences are exact for quadratics.
    hy, hx = 0.5, 0.25
    y = torch.arange(7)[:, None] * hy
    x = torch.arange(9)[None, :] * hx
    u = (3 * x**2 + 2 * x * y - y).expand(2, 1, 7, 9)
    zero = torch.zeros_like(u)
    stack = image_derivatives(u, 2, (hy, hx))
    assert torch.allclose(stack[1][0], (2 * x - 1).expand_as(u), atol=1e-12)  # u_y
    assert torch.allclose(stack[1][1], (6 * x + 2 * y).expand_as(u), atol=1e-12)  # u_x
    assert [t.unique().tolist() for t in stack[2]] == [
        [0.0],
        [2.0],
        [2.0],
        [6.0],
    ]  # u_yy, u_yx, u_xy, u_xx
    total, terms = image_sobolev_loss(
        u, zero, s=2, method="fd", spacing=(hy, hx), weights=(1, 0.5, 0.25), return_terms=True
    )
    d0 = u.square().mean()
    d1 = ((2 * x - 1) ** 2 + (6 * x + 2 * y) ** 2).mean()
    assert terms["D0"].item() == pytest.approx(d0.item())
    assert terms["D1"].item() == pytest.approx(d1.item())
    assert terms["D2"].item() == pytest.approx(0 + 4 + 4 + 36)
    assert total.item() == pytest.approx(d0.item() + 0.5 * d1.item() + 0.25 * 44)


def test_fd_interior_boundary_crops_each_order():
    a, b = _pair((1, 1, 8, 9))
    stack = image_derivatives(a - b, 2, (1.0, 1.0), boundary="interior")
    assert stack[0][0].shape[-2:] == (8, 9)
    assert {t.shape[-2:] for t in stack[1]} == {torch.Size([6, 7])}
    assert {t.shape[-2:] for t in stack[2]} == {torch.Size([6, 7])}
    e = a - b
    d1 = ((e[..., 2:, 1:-1] - e[..., :-2, 1:-1]) / 2).square() + (
        (e[..., 1:-1, 2:] - e[..., 1:-1, :-2]) / 2
    ).square()
    _, terms = image_sobolev_loss(a, b, s=1, method="fd", boundary="interior", return_terms=True)
    assert terms["D1"].item() == pytest.approx(d1.mean().item())


def test_fd_periodic_matches_fourier_for_smooth_images():
    img, _ = _wave(64, 64, 1, 1)
    zero = torch.zeros_like(img)
    fd = image_sobolev_loss(img, zero, s=1, method="fd", boundary="periodic", accuracy=8)
    assert fd.item() == pytest.approx(image_sobolev_loss(img, zero, s=1).item(), rel=1e-10)
    fd2 = image_sobolev_loss(
        img, zero, s=2, method="fd", boundary="periodic", accuracy=8, weights=(1, 2, 1)
    )
    assert fd2.item() == pytest.approx(image_sobolev_loss(img, zero, s=2).item(), rel=1e-9)


def official_cheb_loss2(out, power):
    """``cheb_loss2`` of the official code (``DIffusion_Models/utils.py``; the autoencoder's
    ``train.py`` has the same body and returns ``dx, dy``), transcribed line by line; only
    ``torch.range(0, n-1)`` (deprecated) is written ``torch.arange(0, n)`` in the input's dtype."""
    n = out.size(-1)
    xi = (torch.arange(0, n, dtype=out.dtype) * (2 * np.pi / n)).to(out.device)
    fhat_x = torch.fft.fft(out, dim=-1)
    dx = torch.fft.ifft(fhat_x * ((1 + xi**2) ** (power / 2))).abs()

    fhat_y = torch.fft.fft(out, dim=-2)
    dy = torch.fft.ifft(fhat_y * ((1 + xi**2) ** (power / 2)).view(-1, 1)).abs()
    return dx, dy


def official_dae_loss(output, data, power):
    """``Denoising Autoencoder/train.py``: ``loss_H1 = der_x.pow(2).mean() + der_y.pow(2).mean()``."""
    der_x, der_y = official_cheb_loss2(output - data, power)
    return der_x.pow(2).mean() + der_y.pow(2).mean()


def official_diffusion_loss(model_out, target, power):
    """``DIffusion_Models/utils.py``: ``return dx.mean() + dy.mean()``."""
    dx, dy = official_cheb_loss2(model_out - target, power)
    return dx.mean() + dy.mean()


@pytest.mark.parametrize("shape", [(2, 1, 28, 28), (3, 3, 7, 7), (1, 2, 16, 16), (4, 1, 5, 5)])
@pytest.mark.parametrize("s", [0.0, 0.5, 1.0, 2.0])
def test_paper_methods_equal_the_official_code(shape, s):
    a, b = _pair(shape, seed=shape[-1])
    got = image_sobolev_loss(a, b, s=s, method="paper")
    assert got.item() == pytest.approx(official_dae_loss(a, b, s).item(), rel=1e-12, abs=0)
    got_l1 = image_sobolev_loss(a, b, s=s, method="paper-l1")
    assert got_l1.item() == pytest.approx(official_diffusion_loss(a, b, s).item(), rel=1e-12, abs=0)
    # Per-image values: the official loss of each image alone.
    per = image_sobolev_loss(a, b, s=s, method="paper-l1", reduction="none")
    assert per[-1].item() == pytest.approx(
        official_diffusion_loss(a[-1:], b[-1:], s).item(), rel=1e-12
    )


def test_paper_loss_is_a_sum_of_two_axis_terms():
    zero = torch.zeros(1, 1, 28, 28)
    one = torch.ones_like(zero)
    # A constant error of 1: only k = 0 (weight 1) in each axis term → 1 + 1. In the L1 form the
    # axis slip shows: dy is n at (0, 0) and 0 elsewhere, so mean(dy) = 1/n, not 1.
    assert image_sobolev_loss(one, zero, s=1, method="paper").item() == pytest.approx(
        2.0, rel=1e-14
    )
    assert image_sobolev_loss(one, zero, s=1, method="paper-l1").item() == pytest.approx(
        1 + 1 / 28, rel=1e-14
    )
    a, b = _pair((2, 3, 9, 9))
    assert image_sobolev_loss(a, b, s=0, method="paper").item() == pytest.approx(
        2 * F.mse_loss(a, b).item(), rel=1e-12
    )
    # One wave along x of frequency k: the x term weights it by 1 + ξ_k² or 1 + ξ_{n−k}² (its two
    # coefficients k and n−k each carry half the energy); the y term sees no variation → MSE.
    n, k = 12, 2
    img, _ = _wave(n, n, 0, k)
    xi = lambda j: 2 * math.pi * j / n
    mse = img.square().mean().item()
    expected = mse * (1 + (xi(k) ** 2 + xi(n - k) ** 2) / 2) + mse
    assert image_sobolev_loss(
        img, torch.zeros_like(img), s=1, method="paper"
    ).item() == pytest.approx(expected, rel=1e-12)


def test_paper_l1_axis_slip_by_hand():
    # An error that varies along y only: e[i, j] = v_i. fft along y gives V_k in every column j;
    # the official code then inverts along x (not y), leaving |V_k|·m_k at j = 0 and 0 elsewhere.
    # So mean(dy) = Σ_k |V_k| m_k / N, while mean(dx) = mean|e| (constant rows: only k = 0).
    n = 8
    v = torch.randn(n, generator=torch.Generator().manual_seed(3))
    e = v[:, None].expand(n, n).reshape(1, 1, n, n)
    zero = torch.zeros_like(e)
    m = (1 + (2 * math.pi * torch.arange(n) / n) ** 2) ** 0.5
    expected = e.abs().mean() + (torch.fft.fft(v).abs() * m).sum() / n**2
    assert image_sobolev_loss(e, zero, s=1, method="paper-l1").item() == pytest.approx(
        expected.item(), rel=1e-12
    )
    # Without the slip (dy inverted along y) it would be mean(|ifft_y(V·m)|), a different number.
    without = torch.fft.ifft(torch.fft.fft(v) * m).abs().mean() + e.abs().mean()
    assert abs(without.item() - expected.item()) > 0.05 * expected.item()


def test_paper_methods_differ_from_symmetric_weights():
    # The symmetric H1 weight grows with |k|; the official one (frequency −k weighted as n − k)
    # gives frequency 1 and n − 1 (the same real wave) the same, much larger, weight.
    n = 16
    zero = torch.zeros(1, 1, n, n)
    xi2 = lambda j: (2 * math.pi * j / n) ** 2
    for k in (1, 3, n // 2):
        img, _ = _wave(n, n, 0, k)
        ratio = (
            image_sobolev_loss(img, zero, s=1, method="paper").item()
            / image_sobolev_loss(img, zero, s=1).item()
        )
        assert ratio == pytest.approx((2 + (xi2(k) + xi2(n - k)) / 2) / (1 + xi2(k)), rel=1e-12)
        if k == 1:
            assert ratio > 15  # the lowest non-constant frequency is weighted like a high one


def test_paper_methods_need_square_images_and_are_differentiable():
    a, b = _pair((2, 1, 6, 8))
    for method in ("paper", "paper-l1"):
        with pytest.raises(ValueError, match="square images, H = W; got H×W = 6×8"):
            image_sobolev_loss(a, b, method=method)
    x = torch.randn(1, 1, 5, 5, generator=torch.Generator().manual_seed(1), requires_grad=True)
    y = torch.zeros(1, 1, 5, 5)
    for method in ("paper", "paper-l1"):
        assert torch.autograd.gradcheck(
            lambda t: image_sobolev_loss(t, y, s=1.5, method=method), (x,)
        )


def test_module_and_names():
    a, b = _pair()
    assert torch.equal(ImageSobolevLoss(1.0)(a, b), image_sobolev_loss(a, b, s=1.0))
    assert torch.equal(loss_from_name("L2")(a, b), F.mse_loss(a, b))
    assert torch.equal(loss_from_name("H0.5")(a, b), image_sobolev_loss(a, b, s=0.5))
    assert torch.equal(loss_from_name("H1-fd")(a, b), image_sobolev_loss(a, b, s=1, method="fd"))
    c, d = _pair((2, 1, 8, 8))
    assert torch.equal(
        loss_from_name("H1-paper")(c, d), image_sobolev_loss(c, d, s=1, method="paper")
    )
    assert torch.equal(
        loss_from_name("H2-paper-l1")(c, d), image_sobolev_loss(c, d, s=2, method="paper-l1")
    )
    total, terms = loss_from_name("H1")(a, b, return_terms=True)
    assert terms["mse"].item() == pytest.approx(F.mse_loss(a, b).item())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(s=-1), "s must be"),
        (dict(method="spectral"), "method must be"),
        (dict(method="fd", s=1.5), "integer s"),
        (dict(method="paper", weights=(1, 1)), "weights apply"),
        (dict(weights=(1, 1)), "weights apply"),
        (dict(method="fd", weights=(1,)), "weights must have one entry per order"),
        (dict(spacing=0.0), "spacing"),
        (dict(reduction="avg"), "reduction"),
        (dict(method="fd", boundary="reflect"), "boundary"),
    ],
)
def test_bad_arguments(kwargs, match):
    a, b = _pair()
    with pytest.raises(ValueError, match=match):
        image_sobolev_loss(a, b, **kwargs)


def test_bad_shapes_and_names():
    a, b = _pair()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        image_sobolev_loss(a[0], b[0])
    with pytest.raises(ValueError, match="same shape"):
        image_sobolev_loss(a, b[:2])
    with pytest.raises(ValueError, match="dtype torch.int64"):
        image_sobolev_loss(
            torch.ones(1, 1, 4, 4, dtype=torch.long), torch.ones(1, 1, 4, 4, dtype=torch.long)
        )
    for bad in (float("nan"), float("inf")):
        c = a.clone()
        c[0, 0, 1, 1] = bad
        for method in ("fourier", "paper"):
            with pytest.raises(ValueError, match="pred contains NaN or Inf"):
                image_sobolev_loss(c[:, :, :10, :10], b[:, :, :10, :10], method=method)
        with pytest.raises(ValueError, match="target contains NaN or Inf"):
            image_sobolev_loss(b, c)
    for name in ("H", "L1", "H3-fd", "H1-foo", "H1-paper-l2"):
        with pytest.raises(ValueError, match="loss name|s ∈"):
            loss_from_name(name)
