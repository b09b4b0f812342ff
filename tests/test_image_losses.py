"""Tests of sobolev.image_losses: analytic norms of trigonometric images, Parseval, FD terms by
hand, the official losses of arXiv 2509.19773 against a transcription of the official code, every
option reaching the loss, the return convention, argument checks, and properties (hypothesis): at
s = 0 every method is the mean squared error (the paper's two-axis loss: twice it)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sobolev.image_losses import (
    METHODS,
    ImageSobolevLoss,
    _fourier_per_sample,
    _paper_per_sample,
    image_derivatives,
    image_loss_options,
    image_sobolev_loss,
    loss_from_name,
    paper_axis_multiplier,
    sobolev_multiplier,
)

pytestmark = pytest.mark.usefixtures("double")


# --------------------------------------------------------------------------- values


def _wave(h, w, ky, kx, phase=0.3):
    """cos(2π(ky·i/h + kx·j/w) + phase) as a (1, 1, h, w) image; its |ξ|² (spacing 1)."""
    i = torch.arange(h)[:, None]
    j = torch.arange(w)[None, :]
    img = torch.cos(2 * math.pi * (ky * i / h + kx * j / w) + phase)
    return img.expand(1, 1, h, w).clone(), (2 * math.pi * ky / h) ** 2 + (2 * math.pi * kx / w) ** 2


def _pair(shape=(3, 2, 12, 10), seed=0, dtype=None):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(
        shape, generator=g, dtype=dtype
    )


@pytest.mark.parametrize("s", [0.5, 1.0, 2.0, 1.7])
@pytest.mark.parametrize("freq", [(1, 2), (0, 3), (5, 4), (-2, 1)])
def test_trigonometric_image_has_analytic_norm(s, freq):
    img, xi2 = _wave(12, 10, *freq)
    zero = torch.zeros_like(img)
    assert image_sobolev_loss(img, zero, s=s) == pytest.approx(
        (1 + xi2) ** s * F.mse_loss(img, zero).item(), rel=1e-12
    )


def test_spacing_scales_frequencies():
    img, _xi2 = _wave(12, 10, 1, 2)
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
    # u = 3x² + 2xy − y on a grid with spacing (hy, hx): central differences are exact
    # for quadratics.
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
    """``Denoising Autoencoder/train.py``:
    ``loss_H1 = der_x.pow(2).mean() + der_y.pow(2).mean()``."""
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
            lambda t, method=method: image_sobolev_loss(t, y, s=1.5, method=method), (x,)
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
    _total, terms = loss_from_name("H1")(a, b, return_terms=True)
    assert terms["mse"].item() == pytest.approx(F.mse_loss(a, b).item())


BAD_ARGUMENTS = [
    (dict(s=-1), "s must be a finite number ≥ 0"),
    (dict(s=math.inf), "s must be a finite number ≥ 0"),
    (dict(method="spectral"), r"method must be one of \('fourier', 'fd', 'paper', 'paper-l1'\)"),
    (dict(method="fd", s=1.5), "method='fd' needs an integer s"),
    (dict(method="paper", weights=(1, 1)), "weights apply to method='fd' only"),
    (dict(weights=(1, 1)), "weights apply to method='fd' only"),
    (dict(method="fd", weights=(1,)), "weights must have one entry per order"),
    (dict(method="fd", weights=(1, -1)), "weights must be non-negative"),
    (dict(spacing=0.0), "spacing must be a positive number"),
    (dict(spacing=(1.0, 2.0, 3.0)), "spacing must be a positive number or a pair"),
    (dict(reduction="avg"), "reduction must be one of"),
    (dict(method="fd", boundary="reflect"), "boundary must be one of"),
    (dict(method="fd", accuracy=3), "accuracy must be a positive even integer"),
]


@pytest.mark.parametrize("kwargs, match", BAD_ARGUMENTS)
def test_bad_arguments(kwargs, match):
    """The function and the module refuse the same arguments with the same message (one check,
    image_loss_options); the module at construction, before any image is seen."""
    a, b = _pair()
    with pytest.raises(ValueError, match=match):
        image_sobolev_loss(a, b, **kwargs)
    with pytest.raises(ValueError, match=match):
        ImageSobolevLoss(**kwargs)
    with pytest.raises(ValueError, match=match):
        image_loss_options(**kwargs)


def test_boundary_and_accuracy_are_checked_only_where_used():
    """Only method='fd' uses boundary and accuracy; the spectral methods ignore them."""
    a, b = _pair()
    for method in ("fourier", "paper", "paper-l1"):
        kw = dict(s=1, method=method, boundary="reflect", accuracy=3)
        c, d = (a[..., :10, :10], b[..., :10, :10]) if method != "fourier" else (a, b)
        assert torch.equal(
            ImageSobolevLoss(**kw)(c, d), image_sobolev_loss(c, d, s=1, method=method)
        )


def test_the_module_keeps_its_checked_options():
    loss = ImageSobolevLoss(2, "fd", spacing=0.5, weights=[1, 2, 1])
    assert loss.options == image_loss_options(s=2, method="fd", spacing=0.5, weights=(1, 2, 1))
    assert loss.options.spacing == (0.5, 0.5) and loss.options.weights == (1.0, 2.0, 1.0)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_method_returns_the_tensor_unless_terms_are_asked_for(method, reduction):
    a, b = _pair((2, 1, 8, 8))
    kw = dict(s=1, method=method, reduction=reduction)
    loss = image_sobolev_loss(a, b, **kw)
    assert isinstance(loss, torch.Tensor) and loss.shape == ((2,) if reduction == "none" else ())
    again, terms = image_sobolev_loss(a, b, **kw, return_terms=True)
    assert torch.equal(again, loss)
    assert set(terms) == ({"D0", "D1"} if method == "fd" else {"mse"})
    assert all(t.shape == loss.shape for t in terms.values())
    module = ImageSobolevLoss(**kw)
    assert torch.equal(module(a, b), loss)
    again, terms_module = module(a, b, return_terms=True)
    assert torch.equal(again, loss) and terms_module.keys() == terms.keys()


def test_bad_shapes_and_names():
    a, b = _pair()
    with pytest.raises(ValueError, match=r"pred must have shape \(B, C, H, W\)"):
        image_sobolev_loss(a[0], b[0])
    with pytest.raises(ValueError, match="must have the same shape"):
        image_sobolev_loss(a, b[:2])
    with pytest.raises(ValueError, match="pred must be a floating-point tensor.*int64"):
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
    for name in ("H", "L1", "H1-foo", "H1-paper-l2", "H1-fourier", "h1", "H-1"):
        with pytest.raises(ValueError, match="loss name must be 'L2' or 'H<s>'"):
            loss_from_name(name)
    for name in ("H3-fd", "H0-fd", "H1.5-fd"):
        with pytest.raises(ValueError, match="finite-difference losses need s ∈"):
            loss_from_name(name)


# --------------------------------------------------------------------------- options


def test_paper_axis_multiplier_values_in_float64():
    n, s = 7, 1.5
    got = paper_axis_multiplier(n, s)
    want = torch.tensor(
        [(1 + (2 * math.pi * k / n) ** 2) ** (s / 2) for k in range(n)], dtype=torch.float64
    )
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-14, atol=0)  # computed in float64, not float32
    assert paper_axis_multiplier(n, s, torch.float32).dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sobolev_multiplier_dtype_and_values(dtype):
    got = sobolev_multiplier(4, 6, 0.5, (0.5, 2.0), dtype=dtype)
    assert got.shape == (4, 6) and got.dtype == dtype
    fy = [0, 1, -2, -1]  # fftfreq(4) × 4
    fx = [0, 1, 2, -3, -2, -1]  # fftfreq(6) × 6
    want = [
        [
            (1 + (2 * math.pi * a / (4 * 0.5)) ** 2 + (2 * math.pi * b / (6 * 2.0)) ** 2) ** 0.5
            for b in fx
        ]
        for a in fy
    ]
    torch.testing.assert_close(
        got, torch.tensor(want, dtype=dtype), rtol=1e-6 if dtype == torch.float32 else 1e-14, atol=0
    )


def test_default_s_is_one_for_function_and_module():
    img, xi2 = _wave(8, 10, 1, 2)
    zero = torch.zeros_like(img)
    want = (1 + xi2) * img.square().mean().item()  # H^1 of a single wave
    assert image_sobolev_loss(img, zero).item() == pytest.approx(want, rel=1e-12)
    assert ImageSobolevLoss()(img, zero).item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(s=1, spacing=(0.5, 0.25)),
        dict(s=2, method="fd", weights=(1.0, 2.0, 1.0)),
        dict(s=1, method="fd", boundary="periodic"),
        dict(s=1, method="fd", accuracy=4),
        dict(s=1, reduction="sum"),
    ],
)
def test_module_passes_every_option_on(kwargs):
    a, b = _pair((3, 2, 8, 8), seed=1)
    got = ImageSobolevLoss(**kwargs)(a, b)
    assert torch.equal(got, image_sobolev_loss(a, b, **kwargs))
    # the option matters here, so dropping it would show
    base = {k: v for k, v in kwargs.items() if k in ("s", "method")}
    assert abs(got.item() - image_sobolev_loss(a, b, **base).item()) > 1e-3 * abs(got.item())


def test_module_reduction_none_gives_per_image_values():
    a, b = _pair((3, 1, 6, 6), seed=2)
    per = ImageSobolevLoss(1.0, reduction="none")(a, b)
    assert per.shape == (3,)
    for i in range(3):
        assert per[i].item() == pytest.approx(
            image_sobolev_loss(a[i : i + 1], b[i : i + 1], s=1).item(), rel=1e-12
        )


def test_module_repr_lists_its_options():
    loss = ImageSobolevLoss(2, "fd", weights=(1, 2, 1), boundary="periodic", accuracy=4)
    assert repr(loss) == (
        "ImageSobolevLoss(s=2, method='fd', spacing=(1.0, 1.0), weights=(1.0, 2.0, 1.0), "
        "reduction='mean', boundary='periodic', accuracy=4)"
    )


def _official_paper_per_image(e, s, squared):
    """The official loss image by image, written directly (no Parseval): dx, dy as in cheb_loss2."""
    n = e.shape[-1]
    m = (1 + (2 * math.pi * torch.arange(n, dtype=e.dtype) / n) ** 2) ** (s / 2)
    out = []
    for img in e:
        dx = torch.fft.ifft(torch.fft.fft(img, dim=-1) * m).abs()
        dy = torch.fft.ifft(torch.fft.fft(img, dim=-2) * m.view(-1, 1)).abs()
        out.append(dx.pow(2).mean() + dy.pow(2).mean() if squared else dx.mean() + dy.mean())
    return torch.stack(out)


@pytest.mark.parametrize("method", ["paper", "paper-l1"])
def test_paper_methods_per_image_and_sum(method):
    a, b = _pair((3, 2, 6, 6), seed=3)
    want = _official_paper_per_image(a - b, 1.5, squared=method == "paper")
    torch.testing.assert_close(
        image_sobolev_loss(a, b, s=1.5, method=method, reduction="none"), want, rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        image_sobolev_loss(a, b, s=1.5, method=method, reduction="sum"),
        want.sum(),
        rtol=1e-12,
        atol=0,
    )


@pytest.mark.parametrize("method", ["fourier", "paper", "paper-l1"])
def test_mse_term_is_per_image_with_reduction_none(method):
    a, b = _pair((3, 2, 6, 6), seed=4)
    _, terms = image_sobolev_loss(a, b, s=1, method=method, reduction="none", return_terms=True)
    torch.testing.assert_close(
        terms["mse"], ((a - b) ** 2).reshape(3, -1).mean(1), rtol=1e-12, atol=0
    )


def test_hessian_uses_each_axis_spacing():
    # u = 3y² + 2xy + 5x² with (h_y, h_x) = (0.5, 0.25): second differences are exact
    # for quadratics.
    hy, hx = 0.5, 0.25
    y = torch.arange(7)[:, None] * hy
    x = torch.arange(9)[None, :] * hx
    u = (3 * y**2 + 2 * x * y + 5 * x**2).reshape(1, 1, 7, 9)
    hess = image_derivatives(u, 2, (hy, hx))[2]
    for t, want in zip(hess, (6.0, 2.0, 2.0, 10.0), strict=True):  # u_yy, u_yx, u_xy, u_xx
        torch.testing.assert_close(t, torch.full_like(u, want), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["fourier", "fd", "paper", "paper-l1"])
def test_float32_images_give_float32_losses(method):
    a, b = _pair((2, 1, 8, 8), seed=5, dtype=torch.float32)
    got = image_sobolev_loss(a, b, s=1, method=method)
    assert got.dtype == torch.float32
    want = image_sobolev_loss(a.double(), b.double(), s=1, method=method)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_weights_follow_the_input_device():
    # The "meta" device stands in for an accelerator: weights built on the CPU could not
    # be combined.
    e = torch.empty(2, 1, 6, 6, device="meta")
    assert sobolev_multiplier(6, 6, 1.0, device="meta").device.type == "meta"
    assert paper_axis_multiplier(6, 1.0, device="meta").device.type == "meta"
    for per in (
        _fourier_per_sample(e, 1.0, (1.0, 1.0)),
        _paper_per_sample(e, 1.0, True),
        _paper_per_sample(e, 1.0, False),
    ):
        assert per.device.type == "meta" and per.shape == (2,)


_X = torch.zeros(1, 1, 4, 4)


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: image_sobolev_loss([0.0], _X), TypeError, r"pred must be a torch\.Tensor.*list"),
        (lambda: image_sobolev_loss(_X, 0.0), TypeError, r"target must be a torch\.Tensor.*float"),
        (lambda: image_sobolev_loss(_X, _X, s=True), ValueError, "s must be a finite number.*True"),
        (lambda: image_sobolev_loss(_X, _X, s="1"), ValueError, "s must be a finite number.*'1'"),
        (
            lambda: image_derivatives(_X, 3),
            ValueError,
            r"finite-difference image loss supports s ∈ \{0, 1, 2\}, got order 3",
        ),
        (lambda: ImageSobolevLoss(-1.0), ValueError, r"s must be a finite number ≥ 0.*-1\.0"),
        (
            lambda: ImageSobolevLoss(1.0, "paper", weights=(1, 1)),
            ValueError,
            "weights apply to method='fd' only; the 'paper' norm is set by s",
        ),
    ],
)
def test_error_messages(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


# -------------------------------------------------------------------------- properties (hypothesis)


SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=30)


def _random_pair(seed, B, C, H, W):
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
    pred, target = _random_pair(seed, B, C, H, W)
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
    """Official code at s = 0: each of the two per-axis terms is the MSE (Parseval along
    each axis)."""
    pred, target = _random_pair(seed, B, C, n, n)
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
    pred, target = _random_pair(seed, B, C, H, W)
    got = image_sobolev_loss(pred, target, s=0, method="fd", reduction="none")
    torch.testing.assert_close(got, _mse(pred, target), rtol=1e-12, atol=0)
