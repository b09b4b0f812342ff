"""image_losses options: dtype/device followed, every option reaching the loss, exact error messages."""

import math

import pytest
import torch

from sobolev.image_losses import (
    ImageSobolevLoss,
    _fourier_per_sample,
    _paper_per_sample,
    image_derivatives,
    image_sobolev_loss,
    paper_axis_multiplier,
    sobolev_multiplier,
)

pytestmark = pytest.mark.usefixtures("double")


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


def _pair(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(
        shape, generator=g, dtype=dtype
    )


def _wave(n_y, n_x, ky, kx):
    """cos(2π(ky·i/n_y + kx·j/n_x) + 0.3), (1, 1, n_y, n_x), and its |ξ|² at spacing 1."""
    i, j = torch.arange(n_y)[:, None], torch.arange(n_x)[None, :]
    img = torch.cos(2 * math.pi * (ky * i / n_y + kx * j / n_x) + 0.3).reshape(1, 1, n_y, n_x)
    return img, (2 * math.pi * ky / n_y) ** 2 + (2 * math.pi * kx / n_x) ** 2


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
        "ImageSobolevLoss(s=2, method='fd', spacing=1.0, weights=(1, 2, 1), reduction='mean', "
        "boundary='periodic', accuracy=4)"
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
    # u = 3y² + 2xy + 5x² with (h_y, h_x) = (0.5, 0.25): second differences are exact for quadratics.
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
    # The "meta" device stands in for an accelerator: weights built on the CPU could not be combined.
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
    "call, message",
    [
        (
            lambda: image_sobolev_loss([0.0], _X),
            r"pred must be a torch\.Tensor of shape \(B, C, H, W\), got list",
        ),
        (
            lambda: image_sobolev_loss(_X, 0.0),
            r"target must be a torch\.Tensor of shape \(B, C, H, W\), got float",
        ),
        (lambda: image_sobolev_loss(_X, _X, s=True), r"s must be a finite number ≥ 0, got True"),
        (lambda: image_sobolev_loss(_X, _X, s="1"), r"s must be a finite number ≥ 0, got '1'"),
        (
            lambda: image_derivatives(_X, 3),
            r"the finite-difference image loss supports s ∈ \{0, 1, 2\}, got order 3",
        ),
        (lambda: ImageSobolevLoss(-1.0), r"s must be a finite number ≥ 0, got -1\.0"),
        (
            lambda: ImageSobolevLoss(1.0, "paper", weights=(1, 1)),
            r"weights apply to method='fd' only; the 'paper' norm is set by s",
        ),
    ],
)
def test_error_messages(call, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        call()
