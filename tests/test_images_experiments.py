"""Form of the image experiments' outputs (tiny settings; not the scientific result)."""

import json
from dataclasses import replace

import pytest
import torch

from sobolev.experiments import denoising, diffusion


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions: intra-op threads only add contention on a shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_denoising_outputs(tmp_path):
    cfg = replace(denoising.Config.quick(), epochs=1, n_test=1597, batch_size=100, losses=("L2", "H1-fd"),
                  corruptions=("gaussian",), width=4, z_dim=4, n_show=3)
    summary = denoising.run(cfg, tmp_path)
    json.dumps(summary)
    assert set(summary["results"]) == {"gaussian"}
    for kind in ("gaussian",):
        for loss in ("L2", "H1-fd"):
            r = summary["results"][kind][loss]
            assert 0 < r["test_mse"] < 1 and -1 <= r["test_ssim"] <= 1 and r["time_per_epoch_s"] > 0
            assert r["peak_step_memory_mb"] > 0
            records = [json.loads(l) for l in (tmp_path / kind / loss / "metrics.jsonl").read_text().splitlines()]
            assert [r["step"] for r in records] == [0, 2] and "test_psnr" in records[-1]
            assert (tmp_path / kind / loss / "checkpoint.pt").exists()
        assert summary["results"][kind]["L2"]["time_ratio"] == 1.0
    assert summary["figures"] == ["reconstructions.png", "curves.png"]
    assert all((tmp_path / f).stat().st_size > 0 for f in summary["figures"])
    table = (tmp_path / "table.md").read_text()
    assert "| H1-fd |" in table and "PSNR" in table and "sklearn digits" in table


def test_diffusion_outputs(tmp_path):
    cfg = replace(diffusion.Config.quick(), epochs=1, eval_every=1, n_test=1597, batch_size=100, base=4,
                  timesteps=20, sample_steps=3, n_fd_samples=16, classifier_steps=2, n_show=4)
    summary = diffusion.run(cfg, tmp_path)
    json.dumps(summary)
    res = summary["results"]["pred_x0"]
    assert set(res) == {"L2", "H1"}
    for r in res.values():
        assert list(r["fd_by_epoch"]) == ["0", "1"] and r["final_fd"] >= 0 and r["peak_step_memory_mb"] > 0
    assert res["L2"]["fd_by_epoch"]["0"] == res["H1"]["fd_by_epoch"]["0"]  # same initial network and noise
    assert summary["fd_label"] == "FD in classifier feature space, not Inception FID"
    assert summary["figures"] == ["fd_curves.png", "samples_pred_x0.png"]
    assert all((tmp_path / f).stat().st_size > 0 for f in summary["figures"])
    assert "not Inception FID" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "pred_x0" / "H1" / "metrics.jsonl").exists() and (tmp_path / "classifier" / "checkpoint.pt").exists()
