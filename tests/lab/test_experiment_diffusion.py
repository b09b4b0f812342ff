"""Form of the diffusion experiment's outputs (tiny settings, digits or generated images: never the
real data; not the scientific result), its --paper settings, and tables from summaries."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from sobolev.data.images import FASHION_MNIST_DIR, is_idx_folder
from sobolev_lab.experiments import diffusion
from sobolev_lab.experiments.checks import check_config


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions: intra-op threads only add contention on a shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_diffusion_outputs(tmp_path, as_cli):
    cfg = replace(
        diffusion.Config.quick(),
        epochs=1,
        eval_every=1,
        n_test=197,
        batch_size=100,
        base=4,
        timesteps=20,
        sample_steps=3,
        n_fd_samples=16,
        classifier_steps=2,
        n_show=4,
    )
    summary = as_cli(diffusion.run(cfg, tmp_path), cfg, "ours")
    assert summary["data"] == {
        "name": "digits",
        "shape": [1, 16, 16],
        "n_train": 1600,
        "n_test": 197,
    }
    res = summary["results"]["pred_x0"]
    assert set(res) == {"L2", "H1"}
    floor = summary["floor"]
    for name, r in res.items():
        assert len(r["per_seed"]) == 2 and r["peak_step_memory_mb"] > 0
        # Samples of a 1-epoch, 4-channel UNet are far from the data: well above the
        # real-vs-real floor.
        assert r["final_fd"] > 3 * floor["fd"] and r["final_kd"] > floor["kd"] + 1
        assert summary["curves"]["pred_x0"][name]["fd"]["x"] == [0.0, 1.0]
    first = {name: summary["curves"]["pred_x0"][name]["fd"]["median"][0] for name in res}
    assert first["L2"] == first["H1"]  # same initial network and noise per seed
    assert (
        summary["classifier"]["task"] == "classes"
        and 0 <= summary["classifier"]["test_accuracy"] <= 1
    )
    assert summary["figures"] == ["fd_curves.png", "samples_pred_x0.png"]
    assert all((tmp_path / f).stat().st_size > 0 for f in summary["figures"])
    table = diffusion.tables(summary)
    assert (
        "not Inception FID/KID" in table and "2 seed(s)" in table and "real-vs-real floor" in table
    )
    assert (tmp_path / "pred_x0" / "H1" / "seed1" / "metrics.jsonl").exists() and (
        tmp_path / "classifier" / "checkpoint.pt"
    ).exists()


def test_diffusion_paper_settings_and_quick_run(tmp_path, as_cli):
    paper = diffusion.Config.paper()
    assert paper.objectives == ("pred_x0",) and paper.losses == ("L2", "H1-paper-l1", "H1")
    assert (paper.lr, paper.batch_size, paper.timesteps, paper.sample_steps, paper.mults) == (
        1e-4,
        48,
        1000,
        20,
        (1, 2, 4),
    )
    assert paper.seeds >= 2 and paper.data == "fashion-mnist"
    _diffusion_paper_quick(
        replace(diffusion.Config.paper(quick=True), losses=("L2", "H1-paper-l1")), tmp_path, as_cli
    )


@pytest.mark.slow
def test_diffusion_paper_quick_all_losses(tmp_path, as_cli):
    _diffusion_paper_quick(diffusion.Config.paper(quick=True), tmp_path, as_cli)


def _diffusion_paper_quick(cfg, tmp_path, as_cli):
    summary = as_cli(diffusion.run(replace(cfg, n_show=2), tmp_path), cfg, "paper")
    assert list(summary["results"]["pred_x0"]) == list(cfg.losses)
    assert summary["data"] == {"name": "digits", "shape": [1, 16, 16], "n_train": 96, "n_test": 299}
    assert "setting: paper" in diffusion.tables(summary)


def test_diffusion_on_an_rgb_folder_without_classes(tmp_path):
    """The CelebA-HQ code path: RGB, one class (features from rotation prediction), resized."""
    rng = np.random.default_rng(0)
    data = tmp_path / "faces"
    data.mkdir()
    for i in range(24):
        img = np.zeros((40, 40, 3), dtype=np.uint8)
        img[..., i % 3] = 60 + 8 * i
        y, x = rng.integers(0, 24, 2)
        img[y : y + 16, x : x + 8] = 255
        Image.fromarray(img, mode="RGB").save(data / f"{i:02d}.png")
    cfg = replace(
        diffusion.Config.quick(),
        data=str(data),
        channels=3,
        image_size=16,
        n_test=8,
        epochs=1,
        eval_every=1,
        batch_size=8,
        base=4,
        timesteps=20,
        sample_steps=2,
        n_fd_samples=8,
        classifier_steps=2,
        n_show=2,
        seeds=1,
        losses=("L2", "H1-paper-l1"),
    )
    summary = diffusion.run(cfg, tmp_path / "run")
    assert summary["data"]["shape"] == [3, 16, 16] and summary["classifier"]["task"] == "rotations"
    assert set(summary["results"]["pred_x0"]) == {"L2", "H1-paper-l1"}


def test_diffusion_bad_config():
    for kwargs, match in (
        (dict(objectives=("pred_v",)), "objectives must be"),
        (dict(losses=("H1-foo",)), "losses must be among"),
        (dict(n_fd_samples=1), "n_fd_samples"),
        (dict(eval_every=0), "eval_every"),
    ):
        with pytest.raises(ValueError, match=match):
            check_config(diffusion.Config(**kwargs), diffusion)
    for cfg in (
        diffusion.Config(),
        diffusion.Config.quick(),
        diffusion.Config.paper(),
        diffusion.Config.paper(quick=True),
    ):
        if cfg.data == "fashion-mnist" and not is_idx_folder(FASHION_MNIST_DIR):
            # the data source is checked before anything is written: missing data is an error
            with pytest.raises(ValueError, match="fashion-mnist needs the IDX files"):
                check_config(cfg, diffusion)
        else:
            check_config(cfg, diffusion)
