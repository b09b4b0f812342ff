"""Form of the denoising-autoencoder experiment's outputs (tiny settings, digits: never the real
data; not the scientific result), its --paper settings, and tables from summaries."""

import json
from dataclasses import replace

import pytest
import torch

from sobolev.data.images import FASHION_MNIST_DIR, is_idx_folder
from sobolev_lab.experiments import denoising
from sobolev_lab.experiments.checks import check_config


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions: intra-op threads only add contention on a shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_denoising_outputs(tmp_path, as_cli):
    cfg = replace(
        denoising.Config.quick(),
        epochs=1,
        n_test=197,
        batch_size=100,
        losses=("L2", "H1-fd"),
        corruptions=("gaussian",),
        width=4,
        z_dim=4,
        n_show=3,
    )
    summary = as_cli(denoising.run(cfg, tmp_path), cfg, "ours")
    assert summary["data"] == {
        "name": "digits",
        "shape": [1, 16, 16],
        "n_train": 1600,
        "n_test": 197,
    }
    assert set(summary["results"]) == {"gaussian"}
    for loss in ("L2", "H1-fd"):
        r = summary["results"]["gaussian"][loss]
        assert (
            len(r["per_seed"]) == 2
            and r["range"]["test_mse"][0] <= r["test_mse"] <= r["range"]["test_mse"][1]
        )
        # An untrained-ish tiny autoencoder on digits: between a perfect reconstruction and the
        # error of predicting 0.5 everywhere (≈ 0.2 on digits).
        assert 0.02 < r["test_mse"] < 0.2 and 0 < r["test_ssim"] < 0.5 and "ood_mse" not in r
        assert r["time_per_epoch_s"] > 0 and r["peak_step_memory_mb"] > 0
        for seed in (0, 1):
            records = [
                json.loads(l)
                for l in (tmp_path / "gaussian" / loss / f"seed{seed}" / "metrics.jsonl")
                .read_text()
                .splitlines()
            ]
            assert [r["step"] for r in records] == [0, 16] and "test_psnr" in records[-1]
        assert summary["curves"]["gaussian"][loss]["test_mse"]["x"] == [0.0, 1.0]
    # Same initial network per seed for every loss: identical step-0 errors.
    l2, fd = (summary["curves"]["gaussian"][k]["test_mse"] for k in ("L2", "H1-fd"))
    assert l2["median"][0] == fd["median"][0] and l2["lo"][0] < l2["hi"][0]
    assert summary["figures"] == ["reconstructions.png", "curves.png"]
    assert all((tmp_path / f).stat().st_size > 0 for f in summary["figures"])
    table = denoising.tables(summary)
    assert "setting: ours" in table and "2 seed(s)" in table and "n_train = 1600" in table
    assert "| H1-fd |" in table and "/2 |" in table and "test on gaussian σ = 0.3" in table


def test_denoising_paper_settings_and_quick_run(tmp_path, as_cli):
    paper = denoising.Config.paper()
    assert (paper.model, paper.z_dim, paper.lr, paper.batch_size, paper.epochs) == (
        "paper",
        32,
        5e-3,
        128,
        20,
    )
    assert (
        paper.seeds >= 3
        and paper.data == "fashion-mnist"
        and (paper.n_train, paper.n_test) == (None, None)
    )
    assert paper.losses == ("L2", "H1-paper", "H0.5", "H1", "H2") and paper.corruptions == (
        "sinusoid",
    )
    assert (paper.grid, paper.noise_frequency, paper.ood_frequency, paper.sinusoid_amplitude) == (
        "linspace",
        2.0,
        10.0,
        0.3,
    )
    quick = denoising.Config.paper(quick=True)
    assert (
        replace(
            quick, data=paper.data, image_size=None, n_train=None, n_test=None, epochs=20, seeds=3
        )
        == paper
    )
    _denoising_paper_quick(replace(quick, losses=("L2", "H1-paper")), tmp_path, as_cli)


@pytest.mark.slow
def test_denoising_paper_quick_all_losses(tmp_path, as_cli):
    _denoising_paper_quick(denoising.Config.paper(quick=True), tmp_path, as_cli)


def _denoising_paper_quick(cfg, tmp_path, as_cli):
    summary = as_cli(denoising.run(replace(cfg, n_show=2), tmp_path), cfg, "paper")
    assert summary["data"] == {"name": "digits", "shape": [1, 28, 28], "n_train": 128, "n_test": 64}
    res = summary["results"]["sinusoid"]
    assert list(res) == list(cfg.losses)
    for r in res.values():
        assert len(r["per_seed"]) == 2 and {"test_mse", "ood_mse", "ood_ssim"} <= set(r)
        assert (
            0.01 < r["ood_mse"] < 3 and r["peak_step_memory_mb"] > 0
        )  # 2 steps at lr 5e-3: H2 can overshoot
    table = denoising.tables(summary)
    assert "setting: paper" in table and "unseen sinusoid 10π" in table and "model: paper" in table


def test_denoising_bad_config():
    for kwargs, match in (
        (dict(model="big"), "model must be"),
        (dict(losses=("L7",)), "losses must be among"),
        (dict(losses=()), "non-empty"),
        (dict(epochs=0), "epochs must be"),
        (dict(lr=-1.0), "lr must be"),
        (dict(grid="cell"), "grid must be"),
        (dict(corruptions=("blur",)), "corruptions must be"),
        (dict(n_train=0), "n_train must be"),
    ):
        with pytest.raises(ValueError, match=match):
            check_config(denoising.Config(**kwargs), denoising)
    for cfg in (
        denoising.Config(),
        denoising.Config.quick(),
        denoising.Config.paper(),
        denoising.Config.paper(quick=True),
    ):
        if cfg.data == "fashion-mnist" and not is_idx_folder(FASHION_MNIST_DIR):
            # the data source is checked before anything is written: missing data is an error
            with pytest.raises(ValueError, match="fashion-mnist needs the IDX files"):
                check_config(cfg, denoising)
        else:
            check_config(cfg, denoising)
