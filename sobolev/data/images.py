"""Offline image data for the image experiments, chosen by one string (``--set data=…``):

* ``"fashion-mnist"``: Fashion-MNIST's IDX files from the Debian package ``dataset-fashion-mnist``
  (:data:`sobolev.data.idx.FASHION_MNIST_DIR`; ``make data`` installs it), its own train/test split;
* ``"digits"``: scikit-learn's bundled handwritten digits (always available, used by ``--quick``);
* a folder path: IDX files (e.g. a user's MNIST download, see :mod:`sobolev.data.idx`) or PNG/JPEG
  images (grey or RGB; sub-folders are classes).

Plus the corruptions of the denoising experiment. The digits are the UCI "Optical Recognition of
Handwritten Digits" test set shipped inside scikit-learn (``sklearn.datasets.load_digits``: 1797
grey-level 8×8 images, 16 levels, 10 classes; scikit-learn is BSD-3-Clause, the data are CC BY
4.0 from the UCI repository), scaled to [0, 1] and upsampled bilinearly. Nothing is downloaded.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, is_idx_folder, read_idx_split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CORRUPTIONS = ("sinusoid", "gaussian")
GRIDS = ("periodic", "linspace")
DIGITS_SIZE = 16  # the digits' side when image_size = 0 (they are 8×8, too small for SSIM)


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
            raise ValueError(
                f"batch_size must be in [1, {len(self)}] (the number of images), got {batch_size}"
            )
        return len(self) // batch_size

    def pick(self, idx: Tensor) -> ImageSet:
        """The images at indices ``idx``."""
        return ImageSet(self.images[idx], self.labels[idx], self.classes, self.source)

    def split(self, n_test: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """A seeded random (train, test) split with ``n_test`` test images."""
        if len(self) < 2:
            raise ValueError(
                f"{self.source} holds {len(self)} image(s); at least 2 are needed "
                "(one to train on and one to test on)"
            )
        if not 0 < n_test < len(self):
            raise ValueError(
                f"n_test must be in [1, {len(self) - 1}] for the {len(self)} images of "
                f"{self.source}, got {n_test}"
            )
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.pick(perm[n_test:]), self.pick(perm[:n_test])

    def subset(self, n: int | None, name: str, seed: int = 0) -> ImageSet:
        """``n`` images drawn without replacement by a seeded permutation (all of them when n is
        ``None``); ``name`` is the argument named in the error."""
        if n is None:
            return self
        if not 0 < n <= len(self):
            raise ValueError(
                f"{name} must be in [1, {len(self)}] (or None: all) for {self.source}, got {n}"
            )
        return self.pick(
            torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        )


@dataclass
class DataSplit:
    """Train and test images of one data source, and its name for summaries."""

    train: ImageSet
    test: ImageSet
    name: str

    def info(self) -> dict:
        """``{"name", "shape": [C, H, W], "n_train", "n_test"}`` for ``summary.json``."""
        return {
            "name": self.name,
            "shape": list(self.train.images.shape[1:]),
            "n_train": len(self.train),
            "n_test": len(self.test),
        }


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 4:
        raise ValueError(f"image_size must be an integer ≥ 4 (pixels per side), got {size!r}")


def resize(images: Tensor, size: int) -> Tensor:
    """Bilinear (antialiased) resize of (N, C, H, W) to (N, C, size, size), clamped to [0, 1]."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    ).clamp(0, 1)


def digits(size: int = DIGITS_SIZE, dtype: torch.dtype = torch.float32) -> ImageSet:
    """scikit-learn's 1797 handwritten digits (8×8, one channel), upsampled to ``size``×``size``."""
    _check_size(size)
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.as_tensor(d.images, dtype=dtype).unsqueeze(1) / 16.0
    return ImageSet(
        resize(images, size),
        torch.as_tensor(d.target, dtype=torch.long),
        tuple(str(c) for c in d.target_names),
        "sklearn digits (UCI optdigits, 8×8)",
    )


def _read_image(p: Path, mode: str):
    """The image ``p`` in ``mode``; an unreadable image, or one larger than PIL's decompression-
    bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, where PIL would only warn too), is a one-line
    ``ValueError`` naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                return im.convert(mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        reason = str(e).split(" could be")[0].rstrip(", ")
        raise ValueError(
            f"{p}: refused as a possible decompression bomb ({reason}; the limit is "
            f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} pixels)"
        ) from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{p}: not a readable PNG/JPEG image ({type(e).__name__})") from None


def image_folder(
    path: str | Path, size: int | None = None, channels: int = 1, dtype: torch.dtype = torch.float32
) -> ImageSet:
    """All PNG/JPEG files under ``path`` (recursively) as (N, channels, S, S) in [0, 1].

    Resize rule: ``size=None`` keeps the images' own size, which must be square and the same for
    all (otherwise an error names two files that differ); ``size=N`` resizes every image to N×N
    (bilinear, stretching non-square images, as ``torchvision.transforms.Resize((N, N))``).
    ``channels``: 1 (greyscale) or 3 (RGB). Labels: the name of each file's first sub-folder of
    ``path`` (images directly in ``path`` form one class ``"."``), sorted.
    """
    from PIL import Image

    if size is not None:
        _check_size(size)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
    root = Path(path)
    if not root.is_dir():
        raise ValueError(
            f"data must be 'fashion-mnist', 'digits' or an existing folder, got {str(path)!r}"
        )
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no PNG/JPEG images (nor IDX files) found under {str(path)!r}")
    class_of = [
        p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "." for p in files
    ]
    classes = tuple(sorted(set(class_of)))
    mode = "L" if channels == 1 else "RGB"
    arrays: list[Tensor] = []
    first: tuple[Path, tuple[int, int]] | None = None
    for p in files:
        im = _read_image(p, mode)
        if size:
            im = im.resize((size, size), Image.BILINEAR)
        elif first is None:
            first = (p, im.size)
            if im.size[0] != im.size[1]:
                raise ValueError(
                    f"{p} is {im.size[0]}×{im.size[1]}, not square; "
                    "set image_size=N to resize every image to N×N"
                )
        elif im.size != first[1]:
            raise ValueError(
                f"images under {str(path)!r} differ in size "
                f"({first[0].name}: {first[1][0]}×{first[1][1]}, "
                f"{p.name}: {im.size[0]}×{im.size[1]}); "
                "set image_size=N to resize every image to N×N"
            )
        w, h = im.size
        arrays.append(
            torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
            .reshape(h, w, channels)
            .permute(2, 0, 1)
        )
    images = torch.stack(arrays).to(dtype) / 255.0
    labels = torch.tensor([classes.index(c) for c in class_of], dtype=torch.long)
    return ImageSet(images, labels, classes, f"image folder {root}")


def _idx_split(
    folder: Path, image_size: int | None, channels: int, name: str, classes: tuple[str, ...] | None
) -> DataSplit:
    if channels != 1:
        raise ValueError(f"IDX data ({name}) have one channel, got channels={channels}")
    sets = []
    for split in ("train", "test"):
        images, labels = read_idx_split(folder, split)
        if classes is not None and int(labels.max()) >= len(classes):
            raise ValueError(
                f"{name}: {split} labels go up to {int(labels.max())}, expected the "
                f"{len(classes)} classes 0…{len(classes) - 1}"
            )
        names = classes or tuple(str(c) for c in range(int(labels.max()) + 1))
        sets.append(
            ImageSet(resize(images, image_size) if image_size else images, labels, names, name)
        )
    return DataSplit(sets[0], sets[1], name)


def load_data(
    data: str,
    *,
    image_size: int | None = None,
    channels: int = 1,
    n_train: int | None = None,
    n_test: int | None = None,
) -> DataSplit:
    """Train/test images of ``data``: ``"fashion-mnist"``, ``"digits"`` or a folder (IDX or
    PNG/JPEG).

    ``image_size``: ``None`` keeps the native size (digits: :data:`DIGITS_SIZE`), N resizes to
    N×N (bilinear). Sources with their own test split (IDX) keep it; the others (digits, image
    folders) are split at random (seed 0) with ``n_test`` test images (``None``: one in six).
    Then ``n_train`` / ``n_test`` take random subsets drawn with seed 0 (``None``: all), so every
    seed of an experiment sees the same images.
    """
    if not isinstance(data, str) or not data:
        raise ValueError(f"data must be 'fashion-mnist', 'digits' or a folder path, got {data!r}")
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be an integer ≥ 1 or None (all), got {v!r}")
    if image_size is not None:
        _check_size(image_size)
    if data == "fashion-mnist":
        if not is_idx_folder(FASHION_MNIST_DIR):
            raise ValueError(
                f"data=fashion-mnist needs the IDX files in {FASHION_MNIST_DIR}: "
                "install the Debian package dataset-fashion-mnist (`make data`), "
                "or pass --set data=PATH (a folder of IDX or PNG/JPEG files) or data=digits"
            )
        split = _idx_split(
            FASHION_MNIST_DIR, image_size, channels, "fashion-mnist", FASHION_MNIST_CLASSES
        )
        test = split.test.subset(n_test, "n_test")
    elif data != "digits" and is_idx_folder(data):
        split = _idx_split(Path(data), image_size, channels, f"IDX folder {data}", None)
        test = split.test.subset(n_test, "n_test")
    else:
        if data == "digits":
            if channels != 1:
                raise ValueError(f"the bundled digits have one channel, got channels={channels}")
            pool = digits(image_size or DIGITS_SIZE)
        else:
            pool = image_folder(data, image_size, channels)
        train, test = pool.split(n_test if n_test is not None else max(len(pool) // 6, 1))
        split = DataSplit(train, test, "digits" if data == "digits" else f"image folder {data}")
    return DataSplit(split.train.subset(n_train, "n_train"), test, split.name)


def sinusoid_pattern(
    height: int,
    width: int,
    amplitude: float = 0.3,
    frequency: float = 2 * math.pi,
    grid: str = "periodic",
) -> Tensor:
    """The paper's fixed corruption ``amplitude·sin(frequency·(x + y))``, (H, W), on the grid
    ``"periodic"`` (x = j/W, y = i/H) or ``"linspace"`` (x = j/(W−1), y = i/(H−1): the official
    code's ``torch.linspace(0, 1, W)``). The official training noise has frequency 2π; its
    generalisation test uses 10π."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")

    def axis(n: int) -> Tensor:
        return (
            torch.linspace(0, 1, n, dtype=torch.float64)
            if grid == "linspace"
            else torch.arange(n, dtype=torch.float64) / n
        )

    return amplitude * torch.sin(frequency * (axis(width)[None, :] + axis(height)[:, None]))


def corrupt(
    images: Tensor,
    kind: str,
    level: float,
    generator: torch.Generator | None = None,
    *,
    frequency: float = 2 * math.pi,
    grid: str = "periodic",
) -> Tensor:
    """Corrupted copy of images (B, C, H, W): ``"sinusoid"`` adds :func:`sinusoid_pattern` of
    amplitude ``level`` (``frequency``, ``grid``); ``"gaussian"`` adds N(0, level²) noise drawn
    from ``generator`` (default: torch's global generator). Not clipped."""
    if kind == "sinusoid":
        return images + sinusoid_pattern(*images.shape[-2:], level, frequency, grid).to(images)
    if kind == "gaussian":
        noise = torch.randn(
            images.shape,
            generator=generator,
            dtype=images.dtype,
            device="cpu" if generator else images.device,
        )
        return images + level * noise.to(images.device)
    raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {kind!r}")
