"""Offline image data: scikit-learn's bundled handwritten digits, or a user's folder of PNG/JPEG files;
and the corruptions of the denoising experiment.

The digits are the UCI "Optical Recognition of Handwritten Digits" test set shipped inside
scikit-learn (``sklearn.datasets.load_digits``: 1797 grey-level 8×8 images, 16 levels, 10 classes;
scikit-learn is BSD-3-Clause, the data are CC BY 4.0 from the UCI repository). Nothing is
downloaded. Images are scaled to [0, 1] and upsampled bilinearly to ``size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CORRUPTIONS = ("sinusoid", "gaussian")


@dataclass
class ImageSet:
    """Images (N, C, H, W) with values in [0, 1], integer labels (N,) and the class names."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return self.images.shape[0]

    def batches_per_epoch(self, batch_size: int) -> int:
        """Whole minibatches of ``batch_size`` in one pass over the images (at least one)."""
        if not 1 <= batch_size <= len(self):
            raise ValueError(f"batch_size must be in [1, {len(self)}] (the number of images), got {batch_size}")
        return len(self) // batch_size

    def split(self, n_test: int, seed: int = 0) -> tuple["ImageSet", "ImageSet"]:
        """A seeded random (train, test) split with ``n_test`` test images."""
        if not 0 < n_test < len(self):
            raise ValueError(f"n_test must be in (0, {len(self)}), got {n_test}")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        pick = lambda idx: ImageSet(self.images[idx], self.labels[idx], self.classes, self.source)
        return pick(perm[n_test:]), pick(perm[:n_test])


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 4:
        raise ValueError(f"size must be an integer ≥ 4 (pixels per side), got {size!r}")


def resize(images: Tensor, size: int) -> Tensor:
    """Bilinear resize of (N, C, H, W) to (N, C, size, size), clamped to [0, 1]."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def digits(size: int = 16, dtype: torch.dtype = torch.float32) -> ImageSet:
    """scikit-learn's 1797 handwritten digits (8×8, one channel), upsampled to ``size``×``size``."""
    _check_size(size)
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.as_tensor(d.images, dtype=dtype).unsqueeze(1) / 16.0
    return ImageSet(resize(images, size), torch.as_tensor(d.target, dtype=torch.long),
                    tuple(str(c) for c in d.target_names), "sklearn digits (UCI optdigits, 8×8)")


def image_folder(path: str | Path, size: int = 32, channels: int = 1, dtype: torch.dtype = torch.float32) -> ImageSet:
    """All PNG/JPEG files under ``path`` (recursively), resized to ``size``×``size``.

    ``channels``: 1 (greyscale) or 3 (RGB). Labels: the name of each file's first sub-folder of
    ``path`` (images directly in ``path`` form one class ``"."``), sorted.
    """
    from PIL import Image

    _check_size(size)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"image_dir must be an existing folder, got {str(path)!r}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no PNG/JPEG images found under {str(path)!r}")
    class_of = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "." for p in files]
    classes = tuple(sorted(set(class_of)))
    mode = "L" if channels == 1 else "RGB"
    arrays = []
    for p in files:
        with Image.open(p) as im:
            im = im.convert(mode).resize((size, size), Image.BILINEAR)
            t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).reshape(size, size, channels)
        arrays.append(t.permute(2, 0, 1))
    images = torch.stack(arrays).to(dtype) / 255.0
    labels = torch.tensor([classes.index(c) for c in class_of], dtype=torch.long)
    return ImageSet(images, labels, classes, f"image folder {root}")


def load_images(image_dir: str = "", size: int = 16, channels: int = 1) -> ImageSet:
    """The bundled digits when ``image_dir`` is empty, else :func:`image_folder` of it."""
    if image_dir:
        return image_folder(image_dir, size, channels)
    if channels != 1:
        raise ValueError(f"the bundled digits have one channel, got channels={channels}")
    return digits(size)


def sinusoid_pattern(height: int, width: int, amplitude: float = 0.3) -> Tensor:
    """The paper's fixed corruption ``amplitude·sin(2π(x + y))`` on x = j/W, y = i/H: (H, W)."""
    y = torch.arange(height, dtype=torch.float64)[:, None] / height
    x = torch.arange(width, dtype=torch.float64)[None, :] / width
    return amplitude * torch.sin(2 * math.pi * (x + y))


def corrupt(images: Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> Tensor:
    """Corrupted copy of images (B, C, H, W): ``"sinusoid"`` adds :func:`sinusoid_pattern` of
    amplitude ``level``; ``"gaussian"`` adds N(0, level²) noise drawn from ``generator`` (default:
    torch's global generator). Not clipped."""
    if kind == "sinusoid":
        return images + sinusoid_pattern(*images.shape[-2:], level).to(images)
    if kind == "gaussian":
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype, device="cpu" if generator else images.device)
        return images + level * noise.to(images.device)
    raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {kind!r}")
