"""Image H^s losses: analytic norms of trigonometric images, Parseval, FD terms by hand, the
paper-compatible multiplier, and argument checks."""

import math

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
    assert image_sobolev_loss(img, zero, s=s) == pytest.approx((1 + xi2) ** s * F.mse_loss(img, zero).item(), rel=1e-12)


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
    assert image_sobolev_loss(a, b, s=1e-12).item() == pytest.approx(F.mse_loss(a, b).item(), rel=1e-9)
    e = a - b
    n = e.shape[-1] * e.shape[-2]
    assert (torch.fft.fft2(e).abs().square().sum((-2, -1)) / n).mean() / n == pytest.approx(F.mse_loss(a, b).item(), rel=1e-12)


def test_full_spectrum_weighting_matches_rfft_folding_for_odd_and_even_sizes():
    for shape in [(2, 1, 9, 7), (2, 3, 8, 6), (1, 1, 5, 8)]:
        a, b = _pair(shape, seed=1)
        e = a - b
        h, w = shape[-2:]
        for paper in (False, True):
            mult = sobolev_multiplier(h, w, 1.3, paper_compatible=paper)
            full = (mult * torch.fft.fft2(e).abs().square()).sum((-2, -1)).mean()
            expected = full / (h * w) ** (1 if paper else 2)
            got = image_sobolev_loss(a, b, s=1.3, paper_compatible=paper, reduction="sum") / shape[0]
            assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def test_reductions_and_linearity_in_batch():
    a, b = _pair()
    per = image_sobolev_loss(a, b, s=1, reduction="none")
    assert per.shape == (3,)
    assert image_sobolev_loss(a, b, s=1).item() == pytest.approx(per.mean().item())
    assert image_sobolev_loss(a, b, s=1, reduction="sum").item() == pytest.approx(per.sum().item())
    assert image_sobolev_loss(a[1:2], b[1:2], s=1).item() == pytest.approx(per[1].item())
    assert torch.allclose(image_sobolev_loss(a, b, s=0, reduction="none"), (a - b).square().mean((1, 2, 3)))


def test_gradient_flows_to_pred():
    a, b = _pair()
    a.requires_grad_(True)
    for kw in (dict(s=1), dict(s=1, method="fd"), dict(s=1, paper_compatible=True)):
        (g,) = torch.autograd.grad(image_sobolev_loss(a, b, **kw), a)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    # Fourier H^1 gradient of ½‖e‖²: (2/N)(1 − Δ)e per image / (B·C): compare with a finite check.
    e = (a - b).detach()
    lap = sum(torch.fft.ifft2(torch.fft.fft2(e) * -(2 * math.pi * torch.fft.fftfreq(n)) .square().reshape(shape)).real
              for n, shape in ((12, (12, 1)), (10, (1, 10))))
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
    assert [t.unique().tolist() for t in stack[2]] == [[0.0], [2.0], [2.0], [6.0]]  # u_yy, u_yx, u_xy, u_xx
    total, terms = image_sobolev_loss(u, zero, s=2, method="fd", spacing=(hy, hx), weights=(1, 0.5, 0.25),
                                      return_terms=True)
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
    d1 = ((e[..., 2:, 1:-1] - e[..., :-2, 1:-1]) / 2).square() + ((e[..., 1:-1, 2:] - e[..., 1:-1, :-2]) / 2).square()
    _, terms = image_sobolev_loss(a, b, s=1, method="fd", boundary="interior", return_terms=True)
    assert terms["D1"].item() == pytest.approx(d1.mean().item())


def test_fd_periodic_matches_fourier_for_smooth_images():
    img, _ = _wave(64, 64, 1, 1)
    zero = torch.zeros_like(img)
    fd = image_sobolev_loss(img, zero, s=1, method="fd", boundary="periodic", accuracy=8)
    assert fd.item() == pytest.approx(image_sobolev_loss(img, zero, s=1).item(), rel=1e-10)
    fd2 = image_sobolev_loss(img, zero, s=2, method="fd", boundary="periodic", accuracy=8, weights=(1, 2, 1))
    assert fd2.item() == pytest.approx(image_sobolev_loss(img, zero, s=2).item(), rel=1e-9)


def test_paper_compatible_multiplier_on_hand_built_example():
    h, w = 4, 6
    mult = sobolev_multiplier(h, w, 1.0, paper_compatible=True)
    for ky in range(h):
        for kx in range(w):
            expected = (1 + (2 * math.pi * ky / h) ** 2) * (1 + (2 * math.pi * kx / w) ** 2)
            assert mult[ky, kx].item() == pytest.approx(expected)
    # One wave of frequency (1, 2): E is nonzero at (1, 2) and its mirror (3, 4) with |E|² = (N/2)² each.
    img, _ = _wave(h, w, 1, 2)
    zero = torch.zeros_like(img)
    n = h * w
    expected = ((n / 2) ** 2 * (mult[1, 2] + mult[3, 4]) / n).item()
    assert image_sobolev_loss(img, zero, s=1, paper_compatible=True).item() == pytest.approx(expected)
    # s = 0 is N × MSE (unnormalised FFT, mean over coefficients).
    a, b = _pair()
    assert image_sobolev_loss(a, b, s=0, paper_compatible=True).item() == pytest.approx(120 * F.mse_loss(a, b).item())


def test_paper_compatible_differs_from_symmetric_at_high_frequencies():
    h = w = 16
    sym = sobolev_multiplier(h, w, 1.0)
    paper = sobolev_multiplier(h, w, 1.0, paper_compatible=True)
    assert paper[0, 1].item() == pytest.approx(sym[0, 1].item())  # low positive frequencies agree
    assert paper[0, w - 1].item() > 30 * sym[0, w - 1].item()  # frequency −1 weighted as 15
    # On a real image k and n−k act together: the paper's effective weight per unit of MSE (÷N) is
    # 1 + 2π²(k² + (n−k)²)/n², largest at |k| = 1 and smallest at Nyquist; the symmetric one grows with |k|.
    zero = torch.zeros(1, 1, h, w)
    paper_w, sym_w = [], []
    for k in range(1, w // 2 + 1):
        img, _ = _wave(h, w, 0, k)
        mse = F.mse_loss(img, zero).item()
        paper_w.append(image_sobolev_loss(img, zero, s=1, paper_compatible=True).item() / (h * w) / mse)
        sym_w.append(image_sobolev_loss(img, zero, s=1).item() / mse)
        assert paper_w[-1] == pytest.approx(1 + 2 * math.pi**2 * (k**2 + (w - k) ** 2) / w**2)
    assert all(p1 > p2 for p1, p2 in zip(paper_w, paper_w[1:]))
    assert all(s1 < s2 for s1, s2 in zip(sym_w, sym_w[1:]))
    assert paper_w[-1] == pytest.approx(sym_w[-1])  # they agree at the Nyquist frequency only


def test_module_and_names():
    a, b = _pair()
    assert torch.equal(ImageSobolevLoss(1.0)(a, b), image_sobolev_loss(a, b, s=1.0))
    assert torch.equal(loss_from_name("L2")(a, b), F.mse_loss(a, b))
    assert torch.equal(loss_from_name("H0.5")(a, b), image_sobolev_loss(a, b, s=0.5))
    assert torch.equal(loss_from_name("H1-fd")(a, b), image_sobolev_loss(a, b, s=1, method="fd"))
    assert torch.equal(loss_from_name("H1-paper")(a, b), image_sobolev_loss(a, b, s=1, paper_compatible=True))
    total, terms = loss_from_name("H1")(a, b, return_terms=True)
    assert terms["mse"].item() == pytest.approx(F.mse_loss(a, b).item())


@pytest.mark.parametrize("kwargs, match", [
    (dict(s=-1), "s must be"),
    (dict(method="spectral"), "method must be"),
    (dict(method="fd", s=1.5), "integer s"),
    (dict(method="fd", paper_compatible=True), "paper_compatible"),
    (dict(weights=(1, 1)), "weights apply"),
    (dict(method="fd", weights=(1,)), "weights must have one entry per order"),
    (dict(spacing=0.0), "spacing"),
    (dict(reduction="avg"), "reduction"),
    (dict(method="fd", boundary="reflect"), "boundary"),
])
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
    for name in ("H", "L1", "H3-fd", "H1-foo"):
        with pytest.raises(ValueError, match="loss name|s ∈"):
            loss_from_name(name)
