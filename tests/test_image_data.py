"""Offline image data: IDX files (Fashion-MNIST's format), the bundled digits, a user's folder of
PNG/JPEG files, the data= choice, and the corruptions (against the official code's)."""

import gzip
import math

import numpy as np
import pytest
import torch
from PIL import Image

from sobolev.data import idx as idx_mod
from sobolev.data import images as images_mod
from sobolev.data.idx import FASHION_MNIST_DIR, read_idx, read_idx_split
from sobolev.data.images import corrupt, digits, image_folder, load_data, resize, sinusoid_pattern


def _idx_bytes(array: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return head + array.astype(np.uint8).tobytes()


def _write_idx_folder(folder, n_train=12, n_test=5, size=8, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        arrays[split] = (rng.integers(0, 256, (n, size, size)), rng.integers(0, 10, n))
        for kind, a in (("images-idx3", arrays[split][0]), ("labels-idx1", arrays[split][1])):
            raw = _idx_bytes(a)
            path = folder / f"{split}-{kind}-ubyte{'.gz' if gz else ''}"
            path.write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arrays = _write_idx_folder(tmp_path, gz=gz)
    images, labels = read_idx_split(tmp_path, "train")
    assert images.shape == (12, 1, 8, 8) and images.dtype == torch.float32
    assert torch.equal(
        (images[:, 0] * 255).round().to(torch.uint8),
        torch.from_numpy(arrays["train"][0].astype(np.uint8)),
    )
    assert labels.tolist() == arrays["train"][1].tolist()
    split = load_data(str(tmp_path))
    assert split.info() == {
        "name": f"IDX folder {tmp_path}",
        "shape": [1, 8, 8],
        "n_train": 12,
        "n_test": 5,
    }
    sub = load_data(str(tmp_path), n_train=4, n_test=2, image_size=16)
    assert sub.info()["shape"] == [1, 16, 16] and (len(sub.train), len(sub.test)) == (4, 2)
    assert torch.equal(
        load_data(str(tmp_path), n_train=4).train.images,
        load_data(str(tmp_path), n_train=4).train.images,
    )


def test_idx_errors_name_the_file(tmp_path):
    good = _idx_bytes(np.zeros((3, 4, 4)))
    cases = {
        "magic.idx": (b"\x01" + good[1:], "magic number"),
        "type.idx": (good[:2] + b"\x0d" + good[3:], "type code 0x0d"),
        "short.idx": (
            good[:-3],
            r"declares shape \(3, 4, 4\) \(48 bytes of data\) but the file holds 45",
        ),
        "bad.gz": (b"\x1f\x8b" + b"junk", "not a valid gzip"),
    }
    for name, (content, match) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=match) as e:
            read_idx(tmp_path / name)
        assert name in str(e.value)
    _write_idx_folder(tmp_path, gz=False)
    with pytest.raises(ValueError, match=r"n_train must be in \[1, 12\] \(or None: all\)"):
        load_data(str(tmp_path), n_train=13)
    with pytest.raises(ValueError, match="one channel"):
        load_data(str(tmp_path), channels=3)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(4)))
    with pytest.raises(ValueError, match="expected 5 labels"):
        read_idx_split(tmp_path, "test")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="lacks t10k-labels-idx1-ubyte"):
        load_data(str(tmp_path))


def test_missing_fashion_mnist_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(images_mod, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(ValueError) as e:
        load_data("fashion-mnist")
    msg = str(e.value)
    assert (
        "\n" not in msg and "dataset-fashion-mnist" in msg and "make data" in msg and "data=" in msg
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not idx_mod.is_idx_folder(FASHION_MNIST_DIR), reason="Fashion-MNIST not installed (make data)"
)
def test_real_fashion_mnist():
    split = load_data("fashion-mnist")
    assert split.info() == {
        "name": "fashion-mnist",
        "shape": [1, 28, 28],
        "n_train": 60000,
        "n_test": 10000,
    }
    assert (
        split.train.classes[9] == "Ankle boot"
        and torch.bincount(split.train.labels).tolist() == [6000] * 10
    )
    assert split.train.images.min() == 0 and split.train.images.max() == 1


def test_digits_shapes_range_and_split():
    data = digits(16)
    assert data.images.shape == (1797, 1, 16, 16) and data.labels.shape == (1797,)
    assert data.images.min() >= 0 and data.images.max() <= 1 and data.images.max() > 0.9
    assert data.classes == tuple(str(i) for i in range(10))
    train, test = data.split(297, seed=0)
    assert len(train) == 1500 and len(test) == 297
    again, _ = data.split(297, seed=0)
    assert torch.equal(train.images, again.images)
    raw = digits(8).images * 16
    assert (raw.round() - raw).abs().max() < 1e-5  # the raw 17 grey levels, unresized
    split = load_data("digits", image_size=28, n_test=300)
    assert split.info() == {"name": "digits", "shape": [1, 28, 28], "n_train": 1497, "n_test": 300}


def _write(path, array, mode):
    Image.fromarray(array, mode=mode).save(path)


def test_image_folder_greyscale_rgb_and_labels(tmp_path):
    for cls, value in (("cats", 50), ("dogs", 200)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            rgb = np.zeros((10, 14, 3), dtype=np.uint8)
            rgb[..., 0] = value
            _write(tmp_path / cls / f"{i}.png", rgb, "RGB")
    _write(tmp_path / "dogs" / "x.jpeg", np.full((9, 9), 255, dtype=np.uint8), "L")
    (tmp_path / "notes.txt").write_text("not an image")
    grey = image_folder(tmp_path, size=8)
    assert grey.images.shape == (5, 1, 8, 8) and grey.classes == ("cats", "dogs")
    assert grey.labels.tolist() == [0, 0, 1, 1, 1]
    rgb = image_folder(tmp_path, size=8, channels=3)
    assert rgb.images.shape == (5, 3, 8, 8)
    assert (
        rgb.images[0, 0].mean().item() == pytest.approx(50 / 255, abs=1e-6)
        and rgb.images[0, 1].max() == 0
    )
    split = load_data(str(tmp_path), image_size=8, n_test=2)
    assert split.info() == {
        "name": f"image folder {tmp_path}",
        "shape": [1, 8, 8],
        "n_train": 3,
        "n_test": 2,
    }


def test_image_folder_native_size_and_errors(tmp_path):
    for i in range(3):
        _write(tmp_path / f"{i}.png", np.full((6, 6), 10 * i, dtype=np.uint8), "L")
    assert image_folder(tmp_path).images.shape == (3, 1, 6, 6)  # size None: kept
    _write(tmp_path / "3.png", np.zeros((8, 8), dtype=np.uint8), "L")
    with pytest.raises(
        ValueError, match=r"differ in size \(0.png: 6×6, 3.png: 8×8\); set image_size=N"
    ):
        image_folder(tmp_path)
    assert image_folder(tmp_path, size=4).images.shape == (4, 1, 4, 4)  # the stated resize rule
    (tmp_path / "4.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ValueError, match="4.png: not a readable PNG/JPEG image") as e:
        image_folder(tmp_path, size=4)
    assert "\n" not in str(e.value)
    wide = tmp_path / "wide"
    wide.mkdir()
    _write(wide / "a.png", np.zeros((4, 6), dtype=np.uint8), "L")
    with pytest.raises(ValueError, match="6×4, not square"):
        image_folder(wide)
    one = tmp_path / "one"
    one.mkdir()
    _write(one / "a.png", np.zeros((8, 8), dtype=np.uint8), "L")
    with pytest.raises(ValueError, match="holds 1 image\\(s\\); at least 2 are needed"):
        load_data(str(one))
    with pytest.raises(ValueError, match=r"n_test must be in \[1, 1\] for the 2 images"):
        _write(one / "b.png", np.zeros((8, 8), dtype=np.uint8), "L")
        load_data(str(one), n_test=5)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="no PNG/JPEG"):
        image_folder(tmp_path)
    with pytest.raises(ValueError, match="existing folder"):
        load_data(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="channels"):
        image_folder(tmp_path, channels=2)
    with pytest.raises(ValueError, match="one channel"):
        load_data("digits", channels=3)
    with pytest.raises(ValueError, match="image_size"):
        digits(2)
    with pytest.raises(ValueError, match="n_train must be an integer ≥ 1 or None"):
        load_data("digits", n_train=-3)
    with pytest.raises(ValueError, match="corruption"):
        corrupt(torch.zeros(1, 1, 4, 4), "blur", 1.0)
    with pytest.raises(ValueError, match="grid"):
        sinusoid_pattern(4, 4, grid="cell")


def official_make_freq_noisy(data, amp=0.3, noise_amplitude=2):
    """``make_freq_noisy`` of ``Denoising Autoencoder/train.py`` (and ``test.py``), transcribed
    (``meshgrid`` with its default ``indexing="ij"`` written out)."""
    freq = noise_amplitude * np.pi
    x = torch.linspace(0, 1, data.size()[-1])
    y = torch.linspace(0, 1, data.size()[-1])
    xx, yy = torch.meshgrid(x, y, indexing="ij")
    return data + (amp * torch.sin(freq * xx + freq * yy)).to(data.device)


def test_corruptions():
    pattern = sinusoid_pattern(8, 8, 0.3)
    assert pattern[0, 0] == 0 and pattern[0, 2].item() == pytest.approx(
        0.3 * math.sin(2 * math.pi * 2 / 8)
    )
    assert pattern[1, 1].item() == pytest.approx(0.3)  # sin(2π(1/8 + 1/8)) = 1
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(corrupt(x, "sinusoid", 0.3) - x, pattern.float().expand_as(x))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    n1, n2 = corrupt(x, "gaussian", 0.5, g1), corrupt(x, "gaussian", 0.5, g2)
    assert torch.equal(n1, n2) and 0.4 < (n1 - x).std() < 0.6
    assert resize(x, 8) is x and resize(x, 4).shape == (4, 1, 4, 4)


@pytest.mark.parametrize("noise_amplitude", [2, 10])
def test_linspace_sinusoid_is_the_official_corruption(noise_amplitude):
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    ours = corrupt(x, "sinusoid", 0.3, frequency=noise_amplitude * math.pi, grid="linspace")
    assert torch.allclose(
        ours, official_make_freq_noisy(x, noise_amplitude=noise_amplitude), atol=1e-6
    )
    assert not torch.allclose(
        corrupt(x, "sinusoid", 0.3, frequency=noise_amplitude * math.pi), ours, atol=1e-3
    )


def _gzip_bomb(path, declared, actual):
    """An IDX header declaring ``declared`` (N, 28, 28) images followed by ``actual`` zero bytes,
    gzip-compressed (zeros compress about 1000:1)."""
    head = bytes([0, 0, 0x08, 3]) + np.asarray((declared, 28, 28), dtype=">u4").tobytes()
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(head)
        chunk = bytes(1 << 20)
        for start in range(0, actual, len(chunk)):
            fh.write(chunk[: min(len(chunk), actual - start)])


def test_idx_header_is_checked_before_decompressing(tmp_path, monkeypatch):
    """A small gzip file declaring a huge array is refused from its header alone, and a file that
    decompresses to more than it declares is refused after at most one byte more."""
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    _gzip_bomb(bomb, declared=4_000_000, actual=64 << 20)  # declares 3.1 GB, holds 64 MB
    assert bomb.stat().st_size < 1 << 20
    monkeypatch.setattr(idx_mod, "MAX_IDX_BYTES", 1 << 20)
    with pytest.raises(
        ValueError, match=r"declares shape \(4000000, 28, 28\).*more than the limit"
    ):
        read_idx(bomb)
    read = []
    real_read = gzip.GzipFile.read
    monkeypatch.setattr(
        gzip.GzipFile, "read", lambda self, n=-1: read.append(n) or real_read(self, n)
    )
    monkeypatch.setattr(idx_mod, "MAX_IDX_BYTES", 1 << 30)
    long = tmp_path / "long-idx3-ubyte.gz"
    _gzip_bomb(long, declared=10, actual=64 << 20)  # declares 7840 bytes, holds 64 MB
    with pytest.raises(
        ValueError, match=r"declares shape \(10, 28, 28\).*holds more than 7840"
    ) as e:
        read_idx(long)
    assert "long-idx3-ubyte.gz" in str(e.value) and "\n" not in str(e.value)
    assert -1 not in read and max(read) <= 7841  # never decompressed past the declared size
    short = tmp_path / "short-idx3-ubyte.gz"
    _gzip_bomb(short, declared=10, actual=7000)
    with pytest.raises(ValueError, match=r"declares shape \(10, 28, 28\).*holds 7000"):
        read_idx(short)


def test_raw_idx_size_is_checked_against_the_file_and_the_limit(tmp_path, monkeypatch):
    good = _idx_bytes(np.arange(48).reshape(3, 4, 4) % 256)
    (tmp_path / "long.idx").write_bytes(good + b"\x00")
    with pytest.raises(ValueError, match=r"\(48 bytes of data\) but the file holds more than 48"):
        read_idx(tmp_path / "long.idx")
    huge = bytes([0, 0, 0x08, 4]) + np.asarray([65535] * 4, dtype=">u4").tobytes()
    (tmp_path / "huge.idx").write_bytes(huge)  # 1.8e19 bytes: past int64, refused by the limit
    with pytest.raises(ValueError, match="huge.idx.*more than the limit"):
        read_idx(tmp_path / "huge.idx")
    (tmp_path / "ok.idx").write_bytes(good)
    monkeypatch.setattr(idx_mod, "MAX_IDX_BYTES", 47)
    with pytest.raises(ValueError, match=r"ok.idx.*48 bytes of data.*MAX_IDX_BYTES"):
        read_idx(tmp_path / "ok.idx")
    monkeypatch.setattr(idx_mod, "MAX_IDX_BYTES", 48)
    assert torch.equal(read_idx(tmp_path / "ok.idx").flatten(), torch.arange(48, dtype=torch.uint8))


def test_an_idx_folder_without_images_is_a_one_line_error(tmp_path):
    _write_idx_folder(tmp_path, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((0, 8, 8))))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(0)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: holds no images") as e:
        load_data(str(tmp_path))
    assert "\n" not in str(e.value)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((12, 0, 8))))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(12)))
    with pytest.raises(ValueError, match=r"holds no images \(declares shape \(12, 0, 8\)\)"):
        load_data(str(tmp_path))


def test_labels_beyond_the_named_classes_are_refused(tmp_path, monkeypatch):
    _write_idx_folder(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([0, 1, 2, 3, 200])))
    monkeypatch.setattr(images_mod, "FASHION_MNIST_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"test labels go up to 200, expected the 10 classes"):
        load_data("fashion-mnist")


@pytest.mark.parametrize("pixels", [16 * 16, 12 * 12], ids=["bomb-error", "bomb-warning"])
def test_a_decompression_bomb_image_is_a_one_line_error(tmp_path, monkeypatch, pixels):
    """Past 2 × MAX_IMAGE_PIXELS PIL raises DecompressionBombError, past MAX_IMAGE_PIXELS it
    warns (and decodes); both are refused with the file named."""
    side = math.isqrt(pixels)
    Image.new("L", (side, side), 128).save(tmp_path / "big.png")
    Image.new("L", (4, 4), 128).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match=r"big.png: refused as a possible decompression bomb") as e:
        image_folder(tmp_path)
    assert "\n" not in str(e.value) and "MAX_IMAGE_PIXELS = 100" in str(e.value)
