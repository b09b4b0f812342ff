"""Sobolev (H^s) losses between images: the error's norm weighted towards its spatial derivatives.

For an error image ``e = pred − target`` of N = H·W pixels, the periodic H^s norm is

    ‖e‖²_{H^s} = (1/N²) Σ_ξ (1 + |ξ|²)^s |ê(ξ)|²,
    ê = fft2(e),  ξ = 2π·fftfreq(n, d=spacing) per axis,

i.e. the mean over pixels of |(1 − Δ)^{s/2} e|²; by Parseval s = 0 is the mean squared error, and
s = 1 is ``mean(e²) + mean(|∇e|²)`` with spectral derivatives (ξ in radians per unit of
``spacing``). ``method="fd"`` computes the same kind of norm for non-periodic images from finite
differences (:func:`sobolev.numdiff.fd_derivative`): value, gradient and Hessian terms with
explicit boundary handling and a weight per order.

``method="paper"`` and ``method="paper-l1"`` are the losses of the official code of "Sobolev
acceleration for neural networks" (arXiv 2509.19773): a sum of two per-axis terms, see
:func:`image_sobolev_loss`. The methods are the keys of :data:`METHODS`.

Return values and ``reduction`` follow the losses' convention (:mod:`sobolev.losses`): the loss,
or ``(loss, terms)`` with ``return_terms=True``. :func:`image_sobolev_loss` and
:class:`ImageSobolevLoss` validate their arguments with one function, :func:`image_loss_options`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import lookup
from .losses import REDUCTIONS, Reduction, check_reduction, check_weights
from .numdiff import fd_derivative
from .numdiff.validation import check_accuracy, check_boundary

__all__ = [
    "LOSS_NAMES",
    "METHODS",
    "ImageLossOptions",
    "ImageSobolevLoss",
    "image_derivatives",
    "image_loss_options",
    "image_sobolev_loss",
    "loss_from_name",
    "paper_axis_multiplier",
    "sobolev_multiplier",
]


def _check_images(pred: Tensor, target: Tensor) -> None:
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(t).__name__}"
            )
        if not t.is_floating_point():
            raise ValueError(
                f"{name} must be a floating-point tensor (e.g. float32), got dtype {t.dtype}"
            )
        if t.ndim != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or Inf values; the loss needs finite images")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape"
        )


def _spacings(spacing: float | Sequence[float]) -> tuple[float, float]:
    """(h_y, h_x) from one spacing or a pair; positive and finite."""
    hs = (spacing, spacing) if isinstance(spacing, (int, float)) else tuple(spacing)
    if len(hs) != 2 or not all(
        isinstance(h, (int, float)) and math.isfinite(h) and h > 0 for h in hs
    ):
        raise ValueError(
            f"spacing must be a positive number or a pair (h_y, h_x) of them, got {spacing!r}"
        )
    return float(hs[0]), float(hs[1])


def sobolev_multiplier(
    height: int,
    width: int,
    s: float,
    spacing: float | Sequence[float] = 1.0,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The (H, W) weight ``(1 + ξ_y² + ξ_x²)^s`` applied to |fft2(e)|² by :func:`image_sobolev_loss`
    (``method="fourier"``, before normalisation), with ``ξ = 2π·fftfreq(n, d=h)`` per axis."""
    hy, hx = _spacings(spacing)
    xi_y = 2 * math.pi * torch.fft.fftfreq(height, d=hy, dtype=torch.float64)
    xi_x = 2 * math.pi * torch.fft.fftfreq(width, d=hx, dtype=torch.float64)
    return ((1 + xi_y[:, None] ** 2 + xi_x[None, :] ** 2) ** s).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def _half_spectrum_weights(
    height: int,
    width: int,
    s: float,
    spacing: tuple[float, float],
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """Weights on the ``rfft2`` half spectrum (H, W//2+1) whose weighted sum of |·|² equals the full
    weighted sum divided by N² (N = H·W: Parseval's mean over pixels): each kept column k
    (0 < k < W/2) also carries its dropped mirror (−k_y, W−k)."""
    w = sobolev_multiplier(height, width, s, spacing)
    half = w[:, : width // 2 + 1].clone()
    cols = torch.arange(1, (width - 1) // 2 + 1)
    mirror_rows = (-torch.arange(height)) % height
    half[:, cols] += w[mirror_rows][:, width - cols]
    n = height * width
    return (half / (n * n)).to(dtype=dtype, device=device)


def _fourier_per_sample(err: Tensor, s: float, spacing: tuple[float, float]) -> Tensor:
    """(B,) weighted spectral energy, averaged over channels."""
    h, w = err.shape[-2:]
    weights = _half_spectrum_weights(h, w, float(s), spacing, err.dtype, err.device)
    spec = torch.fft.rfft2(err)
    energy = spec.real.square() + spec.imag.square()
    return (energy * weights).sum((-2, -1)).mean(1)


def paper_axis_multiplier(
    n: int, s: float, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> Tensor:
    """The official code's per-axis amplitude multiplier ``m_k = (1 + ξ_k²)^{s/2}``, (n,), on the
    one-sided grid ``ξ_k = 2πk/n``, k = 0…n−1 (so frequency −k gets the weight of n − k)."""
    xi = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return ((1 + xi**2) ** (s / 2)).to(dtype=dtype, device=device)


def _paper_per_sample(err: Tensor, s: float, squared: bool) -> Tensor:
    """(B,) per-image official loss: mean over (C, H, W) of ``dx² + dy²`` (``squared``) or
    ``dx + dy``, with ``dx = |ifft(fft(e, −1)·m)|`` and ``dy = |ifft(fft(e, −2)·m[:, None])|``, the
    inverse transform of ``dy`` along the last axis as in the official code."""
    m = paper_axis_multiplier(err.shape[-1], s, err.dtype, err.device)
    if squared:
        # Parseval along the axis each inverse FFT runs over: Σ_j |ifft(G)_j|² = Σ_k |G_k|² / n. So
        # mean(dx²) and mean(dy²) are weighted energies of the 1-D spectra along x and along y.
        n = err.shape[-1]
        w2 = m.square() / n
        energy = lambda f: f.real.square() + f.imag.square()
        ex = energy(torch.fft.fft(err, dim=-1)) * w2
        ey = energy(torch.fft.fft(err, dim=-2)) * w2[:, None]
        return (ex + ey).mean((1, 2, 3))
    dx = torch.fft.ifft(torch.fft.fft(err, dim=-1) * m).abs()
    dy = torch.fft.ifft(torch.fft.fft(err, dim=-2) * m[:, None]).abs()
    return (dx + dy).mean((1, 2, 3))


def _center_crop(t: Tensor, height: int, width: int) -> Tensor:
    dy, dx = (t.shape[-2] - height) // 2, (t.shape[-1] - width) // 2
    return t[..., dy : dy + height, dx : dx + width]


def image_derivatives(
    img: Tensor,
    order: int,
    spacing: tuple[float, float] = (1.0, 1.0),
    *,
    boundary: str = "one-sided",
    accuracy: int = 2,
) -> list[list[Tensor]]:
    """Finite-difference derivatives of images (B, C, H, W):
    ``[[u], [u_y, u_x], [u_yy, u_yx, u_xy, u_xx]]`` up to ``order`` ≤ 2 (the entries of the gradient
    and of the full Hessian tensor).

    ``boundary`` as in :func:`sobolev.numdiff.fd_derivative`: ``"one-sided"`` (same size, one-sided
    stencils at the edges), ``"periodic"``, or ``"interior"`` (each order cropped to the pixels
    where all its stencils fit).
    """
    if order not in (0, 1, 2):
        raise ValueError(
            f"the finite-difference image loss supports s ∈ {{0, 1, 2}}, got order {order}"
        )
    hy, hx = spacing
    d = lambda t, k, axis: fd_derivative(
        t, hy if axis == -2 else hx, k, axis=axis, accuracy=accuracy, boundary=boundary
    )
    out = [[img]]
    if order >= 1:
        dy, dx = d(img, 1, -2), d(img, 1, -1)
        out.append([dy, dx])
    if order >= 2:
        out.append([d(img, 2, -2), d(dx, 1, -2), d(dy, 1, -1), d(img, 2, -1)])
    if (
        boundary == "interior"
    ):  # one pixel set per order: the intersection of its entries' interiors
        for j in range(1, len(out)):
            hh, ww = min(t.shape[-2] for t in out[j]), min(t.shape[-1] for t in out[j])
            out[j] = [_center_crop(t, hh, ww) for t in out[j]]
    return out


def _fd_terms(
    err: Tensor, order: int, spacing: tuple[float, float], boundary: str, accuracy: int
) -> list[Tensor]:
    """(B,) per-order terms: mean over channels and pixels of Σ_entries (Dʲe)²."""
    stack = image_derivatives(err, order, spacing, boundary=boundary, accuracy=accuracy)
    return [sum(t.square() for t in entries).mean((1, 2, 3)) for entries in stack]


@dataclasses.dataclass(frozen=True)
class ImageLossOptions:
    """Validated arguments of :func:`image_sobolev_loss` (made by :func:`image_loss_options`):
    ``spacing`` as ``(h_y, h_x)``, ``weights`` one per order for ``"fd"`` (else ``None``)."""

    s: float
    method: str
    spacing: tuple[float, float]
    weights: tuple[float, ...] | None
    reduction: Reduction
    boundary: str
    accuracy: int


def image_loss_options(
    *,
    s: float = 1.0,
    method: str = "fourier",
    spacing: float | Sequence[float] = 1.0,
    weights: Sequence[float] | None = None,
    reduction: Reduction = "mean",
    boundary: str = "one-sided",
    accuracy: int = 2,
) -> ImageLossOptions:
    """Check the arguments of :func:`image_sobolev_loss` (one ``ValueError`` naming the first bad
    one); ``boundary`` and ``accuracy`` are checked for ``method="fd"``, the only one using them."""
    lookup(METHODS, method, "method")
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not (math.isfinite(s) and s >= 0):
        raise ValueError(f"s must be a finite number ≥ 0, got {s!r}")
    check_reduction(reduction)
    if weights is not None and method != "fd":
        raise ValueError(f"weights apply to method='fd' only; the {method!r} norm is set by s")
    hs = _spacings(spacing)
    if method == "fd":
        if s not in (0, 1, 2):
            raise ValueError(f"method='fd' needs an integer s in {{0, 1, 2}}, got {s!r}")
        weights = tuple(check_weights(weights, int(s) + 1, "order"))
        check_boundary(boundary)
        check_accuracy(accuracy)
    return ImageLossOptions(s, method, hs, weights, reduction, boundary, accuracy)


def _mse_terms(err: Tensor, options: ImageLossOptions, return_terms: bool) -> dict[str, Tensor]:
    """``{"mse": …}`` reduced over the batch (detached), the term of the spectral losses."""
    if not return_terms:
        return {}
    return {"mse": REDUCTIONS[options.reduction](err.detach().square().mean((1, 2, 3)))}


def _fourier_loss(
    pred: Tensor, target: Tensor, options: ImageLossOptions, return_terms: bool
) -> tuple[Tensor, dict[str, Tensor]]:
    err, reduce = pred - target, REDUCTIONS[options.reduction]
    if options.s == 0:
        total = (
            F.mse_loss(pred, target)
            if options.reduction == "mean"
            else reduce(err.square().mean((1, 2, 3)))
        )
    else:
        total = reduce(_fourier_per_sample(err, options.s, options.spacing))
    return total, _mse_terms(err, options, return_terms)


def _fd_loss(
    pred: Tensor, target: Tensor, options: ImageLossOptions, return_terms: bool
) -> tuple[Tensor, dict[str, Tensor]]:
    err, reduce = pred - target, REDUCTIONS[options.reduction]
    order = int(options.s)
    per_order = _fd_terms(err, order, options.spacing, options.boundary, options.accuracy)
    total = reduce(sum(w * t for w, t in zip(options.weights, per_order)))
    terms = {f"D{j}": reduce(t) for j, t in enumerate(per_order)} if return_terms else {}
    return total, terms


def _paper_loss(
    pred: Tensor, target: Tensor, options: ImageLossOptions, return_terms: bool, *, squared: bool
) -> tuple[Tensor, dict[str, Tensor]]:
    err = pred - target
    if err.shape[-2] != err.shape[-1]:
        raise ValueError(
            f"method={options.method!r} (the official code) needs square images, H = W; "
            f"got H×W = {err.shape[-2]}×{err.shape[-1]}"
        )
    total = REDUCTIONS[options.reduction](_paper_per_sample(err, options.s, squared))
    return total, _mse_terms(err, options, return_terms)


ImageNorm = Callable[[Tensor, Tensor, ImageLossOptions, bool], tuple[Tensor, dict[str, Tensor]]]
"""``(pred, target, options, return_terms) -> (loss, terms)``; ``terms`` empty unless asked for."""

#: image losses by ``method`` name (see :func:`image_sobolev_loss`)
METHODS: dict[str, ImageNorm] = {
    "fourier": _fourier_loss,
    "fd": _fd_loss,
    "paper": functools.partial(_paper_loss, squared=True),
    "paper-l1": functools.partial(_paper_loss, squared=False),
}


def _image_loss(
    pred: Tensor, target: Tensor, options: ImageLossOptions, return_terms: bool
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    _check_images(pred, target)
    total, terms = METHODS[options.method](pred, target, options, return_terms)
    return (total, terms) if return_terms else total


def image_sobolev_loss(
    pred: Tensor,
    target: Tensor,
    *,
    s: float = 1.0,
    method: str = "fourier",
    spacing: float | Sequence[float] = 1.0,
    weights: Sequence[float] | None = None,
    reduction: Reduction = "mean",
    boundary: str = "one-sided",
    accuracy: int = 2,
    return_terms: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """H^s-type loss of ``pred − target`` for images (B, C, H, W), averaged over channels.

    ``method="fourier"`` (periodic, the default): ``(1/N²) Σ_ξ (1 + |ξ|²)^s |fft2(e)(ξ)|²`` with
    symmetric frequencies ``ξ = 2π·fftfreq(n, d=spacing)`` (``spacing``: one number or
    ``(h_y, h_x)``), any real ``s ≥ 0``; ``s = 0`` is exactly ``F.mse_loss`` (computed as such).

    ``method="fd"`` (non-periodic): ``Σ_j λ_j · mean_pixels Σ_entries (Dʲe)²`` for j ≤ s ∈
    {0, 1, 2}, Dʲ the finite-difference value / gradient / full Hessian (see
    :func:`image_derivatives`; ``boundary``, ``accuracy`` as in
    :func:`sobolev.numdiff.fd_derivative`), ``weights`` = λ_0..λ_s (default ones). With weights
    (1, 2, 1) at s = 2, or ones at s = 1, it approximates the Fourier norm for smooth
    periodic images.

    ``method="paper"``: the official denoising-autoencoder loss of arXiv 2509.19773
    (``Denoising Autoencoder/train.py``), ``mean(dx²) + mean(dy²)`` with
    ``dx = |ifft(fft(e, dim=−1)·m)|``, ``dy = |ifft(fft(e, dim=−2)·m[:, None])|`` (the inverse FFT
    of ``dy`` along the last axis, as written there), ``m = (1 + ξ²)^{s/2}`` on the one-sided grid
    ``ξ = 2πk/W``, k = 0…W−1, for both axes (so H must equal W). A sum of two per-axis terms: at
    s = 0 it is 2 × MSE; a constant error of 1 gives 2. ``method="paper-l1"``: the official
    diffusion loss (``DIffusion_Models/utils.py``, ``cheb_loss2``), ``mean(dx) + mean(dy)`` of
    the same dx, dy (absolute values, not squared). ``spacing`` is ignored by both (grid units).

    ``weights`` must be ``None`` except for ``"fd"`` (the other norms are set by ``s``).
    ``reduction`` over the batch of per-image values: ``"mean"``, ``"sum"`` or ``"none"`` (B,).
    Returns the loss; with ``return_terms`` the pair ``(loss, terms)``, ``terms`` being
    ``{"mse": …}`` (Fourier, paper) or the unweighted per-order terms ``{"D0", "D1", …}`` (FD).
    """
    options = image_loss_options(
        s=s,
        method=method,
        spacing=spacing,
        weights=weights,
        reduction=reduction,
        boundary=boundary,
        accuracy=accuracy,
    )
    return _image_loss(pred, target, options, return_terms)


class ImageSobolevLoss(nn.Module):
    """:func:`image_sobolev_loss` as a module: ``loss_fn(pred, target)`` on (B, C, H, W); the
    arguments are checked once here (:func:`image_loss_options`) and kept in ``options``."""

    def __init__(
        self,
        s: float = 1.0,
        method: str = "fourier",
        *,
        spacing: float | Sequence[float] = 1.0,
        weights: Sequence[float] | None = None,
        reduction: Reduction = "mean",
        boundary: str = "one-sided",
        accuracy: int = 2,
    ) -> None:
        super().__init__()
        self.options = image_loss_options(
            s=s,
            method=method,
            spacing=spacing,
            weights=weights,
            reduction=reduction,
            boundary=boundary,
            accuracy=accuracy,
        )

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.options).items())

    def forward(
        self, pred: Tensor, target: Tensor, *, return_terms: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        return _image_loss(pred, target, self.options, return_terms)


#: the names the image experiments accept in ``--set losses=…`` (:func:`loss_from_name` reads
#: any H<s>)
LOSS_NAMES = (
    "L2",
    "H0.5",
    "H1",
    "H1.5",
    "H2",
    "H1-fd",
    "H2-fd",
    "H0.5-paper",
    "H1-paper",
    "H2-paper",
    "H0.5-paper-l1",
    "H1-paper-l1",
    "H2-paper-l1",
)

#: the suffix of a loss name ``H<s><suffix>`` -> its method
NAME_SUFFIXES = {"": "fourier", "-fd": "fd", "-paper": "paper", "-paper-l1": "paper-l1"}

_NAME = re.compile(r"^H(?P<s>\d+(?:\.\d+)?)(?P<suffix>.*)$")


def loss_from_name(name: str) -> ImageSobolevLoss:
    """``"L2"`` (= H0), ``"H<s>"`` (Fourier, e.g. ``H1``, ``H0.5``), ``"H<s>-fd"`` (finite
    differences, s ∈ {1, 2}), ``"H<s>-paper"`` (the official autoencoder loss) or
    ``"H<s>-paper-l1"`` (the official diffusion loss): the suffixes of :data:`NAME_SUFFIXES`."""
    if name == "L2":
        return ImageSobolevLoss(0.0)
    m = _NAME.match(name) if isinstance(name, str) else None
    if m is None or m["suffix"] not in NAME_SUFFIXES:
        raise ValueError(
            f"loss name must be 'L2' or 'H<s>' followed by one of {tuple(NAME_SUFFIXES)} "
            f"(e.g. 'H1', 'H0.5', 'H1-fd'), got {name!r}"
        )
    s, method = float(m["s"]), NAME_SUFFIXES[m["suffix"]]
    if method == "fd" and s not in (1.0, 2.0):
        raise ValueError(f"finite-difference losses need s ∈ {{1, 2}}, got {name!r}")
    return ImageSobolevLoss(int(s) if method == "fd" else s, method)
