"""Reader for the IDX files of MNIST and Fashion-MNIST (gzip-compressed or raw).

An IDX file is a 4-byte magic number — two zero bytes, a type code (0x08 = unsigned byte, the
only type these data sets use) and the number of dimensions d — then d big-endian uint32 sizes,
then the values in C order. A folder holds four files named as in the original distribution:
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally with ``.gz``.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, MIT licence; 60,000 + 10,000 grey 28×28 images of
10 clothing classes) is shipped by Debian as the package ``dataset-fashion-mnist`` into
:data:`FASHION_MNIST_DIR`; ``make data`` installs it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SPLITS = {"train": "train", "test": "t10k"}
_UBYTE = 0x08


def read_idx(path: str | Path) -> Tensor:
    """The uint8 array stored in one IDX file (gzip-compressed or raw), as a tensor of its shape.

    Raises ``ValueError`` naming the file when the magic number, the type or the size is wrong.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: not a valid gzip file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file (the magic number must start with two zero bytes)"
        )
    if raw[2] != _UBYTE:
        raise ValueError(
            f"{path}: IDX type code 0x{raw[2]:02x} is not supported (expected 0x08, unsigned byte)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: IDX header is truncated or declares {ndim} dimensions")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes of data) "
            f"but the file holds {len(raw) - header}"
        )
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy())


def idx_file(folder: str | Path, split: str, kind: str) -> Path | None:
    """The IDX file of ``split`` ("train" | "test") and ``kind`` ("images" | "labels") in
    ``folder`` (``.gz`` or raw), or ``None`` when there is none."""
    stem = f"{SPLITS[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for name in (stem + ".gz", stem):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def is_idx_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds at least the training images in IDX form."""
    return idx_file(folder, "train", "images") is not None


def read_idx_split(folder: str | Path, split: str) -> tuple[Tensor, Tensor]:
    """Images (N, 1, H, W) float32 in [0, 1] and labels (N,) int64 of one split of an IDX folder."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    files = {kind: idx_file(folder, split, kind) for kind in ("images", "labels")}
    missing = [k for k, f in files.items() if f is None]
    if missing:
        names = ", ".join(
            f"{SPLITS[split]}-{k}-idx{3 if k == 'images' else 1}-ubyte[.gz]" for k in missing
        )
        raise ValueError(f"IDX folder {str(folder)!r} lacks {names}")
    images, labels = read_idx(files["images"]), read_idx(files["labels"])
    if images.ndim != 3:
        raise ValueError(
            f"{files['images']}: expected images of shape (N, H, W), got {tuple(images.shape)}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{files['labels']}: expected {images.shape[0]} labels (one per image in "
            f"{files['images'].name}), got shape {tuple(labels.shape)}"
        )
    return images.unsqueeze(1).float() / 255.0, labels.long()
