"""Offline image data: the bundled digits, a user's folder of PNG/JPEG files, corruptions."""

import math

import pytest
import torch
from PIL import Image

from sobolev.data.images import corrupt, digits, image_folder, load_images, resize, sinusoid_pattern


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


def _write(path, array, mode):
    Image.fromarray(array, mode=mode).save(path)


def test_image_folder_greyscale_rgb_and_labels(tmp_path):
    import numpy as np

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
    assert rgb.images[0, 0].mean().item() == pytest.approx(50 / 255, abs=1e-6) and rgb.images[0, 1].max() == 0
    assert load_images(str(tmp_path), 8).images.shape == (5, 1, 8, 8)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="no PNG/JPEG"):
        image_folder(tmp_path)
    with pytest.raises(ValueError, match="existing folder"):
        image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="channels"):
        image_folder(tmp_path, channels=2)
    with pytest.raises(ValueError, match="one channel"):
        load_images("", 16, channels=3)
    with pytest.raises(ValueError, match="size"):
        digits(2)
    with pytest.raises(ValueError, match="corruption"):
        corrupt(torch.zeros(1, 1, 4, 4), "blur", 1.0)


def test_corruptions():
    pattern = sinusoid_pattern(8, 8, 0.3)
    assert pattern[0, 0] == 0 and pattern[0, 2].item() == pytest.approx(0.3 * math.sin(2 * math.pi * 2 / 8))
    assert pattern[1, 1].item() == pytest.approx(0.3)  # sin(2π(1/8 + 1/8)) = 1
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(corrupt(x, "sinusoid", 0.3) - x, pattern.float().expand_as(x))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    n1, n2 = corrupt(x, "gaussian", 0.5, g1), corrupt(x, "gaussian", 0.5, g2)
    assert torch.equal(n1, n2) and 0.3 < (n1 - x).std() < 0.7
    assert resize(x, 8) is x and resize(x, 4).shape == (4, 1, 4, 4)
