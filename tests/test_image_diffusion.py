"""DDPM schedule, forward process, objectives and the DDIM sampler; Fréchet and kernel distances;
image models (the official autoencoder against a transcription of the official code)."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from sobolev.diffusion import DDPMSchedule, ddim_sample, diffusion_objective, q_sample
from sobolev.fid import (
    FeatureDistances,
    frechet_distance,
    gaussian_fit,
    kernel_distance,
    rotation_task,
    train_classifier,
)
from sobolev.models.conv import ConvAutoencoder, ConvClassifier, PaperAutoencoder
from sobolev.models.unet import UNet, timestep_embedding


class Oracle(nn.Module):
    """The exact denoiser of a data set holding the single image ``c``."""

    def __init__(self, c, schedule, objective):
        super().__init__()
        self.c, self.schedule, self.objective = c, schedule, objective
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        if self.objective == "pred_x0":
            return self.c.expand_as(x)
        a, b = self.schedule.coefficients(t, x)
        return (x - a * self.c) / b


def test_schedule_values():
    s = DDPMSchedule(1000)
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    ac = s.alphas_cumprod
    assert ac[0].item() == pytest.approx(1 - 1e-4) and (ac[1:] < ac[:-1]).all() and ac[-1] < 1e-4
    cos = DDPMSchedule(100, "cosine").alphas_cumprod
    assert (cos[1:] < cos[:-1]).all() and cos[-1] < 1e-3
    with pytest.raises(ValueError, match="kind"):
        DDPMSchedule(10, "quadratic")


def test_q_sample_moments():
    s = DDPMSchedule(100)
    x0 = torch.full((20000, 1, 1, 1), 0.7)
    t = torch.full((20000,), 40)
    xt = q_sample(s, x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)))
    a = s.alphas_cumprod[40].item()
    assert xt.mean().item() == pytest.approx(0.7 * a**0.5, abs=0.02)
    assert xt.var().item() == pytest.approx(1 - a, rel=0.05)


@pytest.mark.parametrize("objective", ["pred_x0", "pred_noise"])
def test_ddim_with_oracle_returns_the_image(objective):
    s = DDPMSchedule(200)
    c = torch.linspace(-0.8, 0.8, 16).reshape(1, 1, 4, 4)
    out = ddim_sample(
        Oracle(c, s, objective),
        s,
        (3, 1, 4, 4),
        steps=7,
        objective=objective,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.allclose(out, c.expand(3, 1, 4, 4), atol=1e-5)


@pytest.mark.parametrize("objective", ["pred_x0", "pred_noise"])
def test_objective_is_zero_for_oracle_and_uses_global_rng(objective):
    s = DDPMSchedule(50)
    c = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(2)) * 2 - 1
    loss_fn = lambda a, b: (a - b).square().mean()
    obj = diffusion_objective(s, loss_fn, objective)
    loss, terms = obj(Oracle(c, s, objective), (c.expand(8, 1, 4, 4),))
    assert loss.item() == pytest.approx(0.0, abs=1e-9) and "mse" in terms
    model = UNet(1, base=8, mults=(1, 2))
    torch.manual_seed(3)
    first = obj(model, (c.expand(8, 1, 4, 4),))[0]
    torch.manual_seed(3)
    assert torch.equal(first, obj(model, (c.expand(8, 1, 4, 4),))[0])
    with pytest.raises(ValueError, match="objective"):
        diffusion_objective(s, loss_fn, "pred_v")


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    assert frechet_distance(mu1, np.eye(5), mu2, np.eye(5)) == pytest.approx(
        np.sum((mu1 - mu2) ** 2)
    )
    d1, d2 = rng.random(5) + 0.1, rng.random(5) + 0.1
    assert frechet_distance(mu1, np.diag(d1), mu1, np.diag(d2)) == pytest.approx(
        np.sum((d1**0.5 - d2**0.5) ** 2)
    )
    a, b = rng.standard_normal((5, 5)), rng.standard_normal((5, 3))
    c1, c2 = a @ a.T, b @ b.T  # the second one singular
    ref = np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(mu1, c1, mu1, c2) == pytest.approx(ref, rel=1e-6)
    mu, cov = gaussian_fit(torch.tensor(rng.standard_normal((50, 3))))
    assert mu.shape == (3,) and cov.shape == (3, 3)
    with pytest.raises(ValueError, match="N ≥ 2"):
        gaussian_fit(torch.zeros(1, 3))


def _kid_by_loops(x, y):
    """Unbiased MMD² with k(a, b) = (a·b/d + 1)³, written as the plain sums over pairs."""
    d = x.shape[1]
    k = lambda a, b: (float(a @ b) / d + 1) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kernel_distance_by_loops_and_sign():
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(7, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5,
    )
    assert kernel_distance(x, y) == pytest.approx(_kid_by_loops(x, y), rel=1e-12)
    # Same distribution: unbiased, so the mean over independent draws is near 0 (and single
    # draws can be negative); a shifted distribution is clearly positive.
    same = [
        kernel_distance(torch.randn(40, 4, generator=g), torch.randn(40, 4, generator=g))
        for _ in range(30)
    ]
    shifted = kernel_distance(
        torch.randn(40, 4, generator=g), torch.randn(40, 4, generator=g) + 1.0
    )
    assert abs(np.mean(same)) < 0.1 * shifted and min(same) < 0
    with pytest.raises(ValueError, match="m, n ≥ 2"):
        kernel_distance(x[:1], y)


def test_rotation_task():
    images = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 1, 3, 3)
    rotated, labels = rotation_task(images)
    assert rotated.shape == (8, 1, 3, 3) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(rotated[:2], images) and torch.equal(rotated[4], images[0].flip(-1, -2))
    with pytest.raises(ValueError, match="square"):
        rotation_task(torch.zeros(1, 1, 3, 4))


def test_classifier_features_and_distances():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 8, 8, generator=g)
    labels = (images.mean((1, 2, 3)) > images.mean()).long()
    clf = train_classifier(images, labels, 2, steps=3, batch_size=32, feature_dim=6)
    assert (
        clf.features(images).shape == (64, 6) and clf(images).shape == (64, 2) and not clf.training
    )
    dist = FeatureDistances(clf, images[:40])
    other = images[40:].flip(-1) * 0.5
    got = dist(other)
    f_ref, f_other = clf.features(images[:40]).detach(), clf.features(other).detach()
    assert got["fd"] == pytest.approx(
        frechet_distance(*gaussian_fit(f_other), *gaussian_fit(f_ref)), rel=1e-9
    )
    scale = f_ref.double().square().mean().sqrt()
    assert got["kd"] == pytest.approx(
        1e3 * kernel_distance(f_other / scale, f_ref / scale), rel=1e-9
    )
    assert got["fd"] > dist(images[40:])["fd"] > 0


def official_autoencoder(z_dim=32):
    """``AutoEncoder`` of ``Denoising Autoencoder/model.py``, transcribed."""
    encoder = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.LeakyReLU(),
        nn.Conv2d(32, 64, 3, padding=1, stride=2),
        nn.LeakyReLU(),
        nn.Conv2d(64, 64, 3, padding=1, stride=2),
        nn.LeakyReLU(),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, z_dim),
        nn.LeakyReLU(),
    )
    decoder = nn.Sequential(
        nn.Linear(z_dim, 64 * 7 * 7),
        nn.Unflatten(1, (64, 7, 7)),
        nn.LeakyReLU(),
        nn.ConvTranspose2d(64, 64, 3, padding=1, output_padding=1, stride=2),
        nn.LeakyReLU(),
        nn.ConvTranspose2d(64, 32, 3, padding=1, output_padding=1, stride=2),
        nn.LeakyReLU(),
        nn.ConvTranspose2d(32, 1, 3, padding=1),
    )
    return nn.Sequential(encoder, decoder)


def test_paper_autoencoder_is_the_official_model():
    ours, official = PaperAutoencoder(1, 28, 32), official_autoencoder(32)
    assert [p.shape for p in ours.parameters()] == [p.shape for p in official.parameters()]
    official.load_state_dict(
        {k.replace("encoder", "0").replace("decoder", "1"): v for k, v in ours.state_dict().items()}
    )
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ours(x), official(x))
    assert (
        sum(p.numel() for p in ours.parameters()) == 315_297
    )  # the official model.py, counted there
    assert PaperAutoencoder(3, 16, 8)(torch.zeros(2, 3, 16, 16)).shape == (2, 3, 16, 16)


def test_model_shapes_and_checks():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 12, 12, generator=g)
    assert ConvAutoencoder(3, 12, width=8, z_dim=4)(x).shape == x.shape
    assert ConvClassifier(3, 12, 7, width=8, feature_dim=5).features(x).shape == (5, 5)
    t = torch.randint(0, 1000, (5,), generator=g)
    assert UNet(3, base=8, mults=(1, 2, 2))(x, t).shape == x.shape
    emb = timestep_embedding(torch.tensor([0, 10]), 7)
    assert emb.shape == (2, 7) and emb[0, :3].abs().max() == 0 and emb[0, 3:6].eq(1).all()
    with pytest.raises(ValueError, match="multiple of 4"):
        ConvAutoencoder(1, 10)
    with pytest.raises(ValueError, match="divisible"):
        UNet(1, base=8, mults=(1, 2, 2))(torch.zeros(1, 1, 6, 6), torch.zeros(1))
