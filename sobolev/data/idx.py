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
import math
import zlib
from pathlib import Path
from typing import BinaryIO

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
#: the largest data an IDX file may declare (bytes, after decompression); raise it for bigger sets
MAX_IDX_BYTES = 2 * 1024**3


def read_idx(path: str | Path) -> Tensor:
    """The uint8 array stored in one IDX file (gzip-compressed or raw), as a tensor of its shape.

    The header is read first and the declared size checked against :data:`MAX_IDX_BYTES` and
    against the file before the data are read; a gzip file is decompressed no further than the
    declared size (plus one byte, to refuse trailing data). Raises ``ValueError`` naming the file
    when the magic number, the type or the size is wrong.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not compressed:
            return _read_idx(raw, path, path.stat().st_size)
        try:
            with gzip.GzipFile(fileobj=raw) as fh:
                return _read_idx(fh, path, None)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: not a valid gzip file ({e})") from None


def _read_idx(fh: BinaryIO, path: Path, file_size: int | None) -> Tensor:
    """Header, checks, then exactly the declared data of an open IDX stream (``file_size``: the
    size of an uncompressed file, ``None`` for a decompressing stream)."""
    magic = fh.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file (the magic number must start with two zero bytes)"
        )
    if magic[2] != _UBYTE:
        raise ValueError(
            f"{path}: IDX type code 0x{magic[2]:02x} is not supported "
            "(expected 0x08, unsigned byte)"
        )
    ndim = magic[3]
    dims = fh.read(4 * ndim)
    if ndim == 0 or len(dims) < 4 * ndim:
        raise ValueError(f"{path}: IDX header is truncated or declares {ndim} dimensions")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    expected = math.prod(shape)
    if expected > MAX_IDX_BYTES:
        raise ValueError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes of data), more than "
            f"the limit of {MAX_IDX_BYTES} bytes (sobolev.data.idx.MAX_IDX_BYTES)"
        )
    if file_size is not None:  # raw: the file's size says it all, before reading
        held = file_size - 4 - 4 * ndim
        data = fh.read(expected) if held == expected else b""
        held = len(data) if held == expected else held
    else:  # gzip: decompress at most one byte more than declared
        data = fh.read(expected + 1)
        held = len(data)
    if held != expected:
        holds = f"more than {expected}" if held > expected else str(held)
        raise ValueError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes of data) "
            f"but the file holds {holds}"
        )
    arr = np.frombuffer(data, dtype=np.uint8, count=expected)
    return torch.from_numpy(arr.reshape(shape).copy())


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
    if 0 in images.shape:
        raise ValueError(
            f"{files['images']}: holds no images (declares shape {tuple(images.shape)}); "
            "expected at least one image of at least 1×1 pixels"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{files['labels']}: expected {images.shape[0]} labels (one per image in "
            f"{files['images'].name}), got shape {tuple(labels.shape)}"
        )
    return images.unsqueeze(1).float() / 255.0, labels.long()
