"""TrainConfig: every setting is checked by :func:`sobolev.config.validate` (one line naming the
setting and what it must be), the cross-setting rules, and the values at its boundaries.
"""

import pytest

from sobolev import TrainConfig

pytestmark = pytest.mark.usefixtures("double")


_CONFIG_ERRORS = [
    (dict(steps=2.5), r"steps must be an integer ≥ 0, got 2.5"),
    (dict(steps=True), r"steps must be an integer ≥ 0, got True"),
    (dict(steps=-1), r"steps must be an integer ≥ 0, got -1"),
    (dict(optimizer="adagrad"), r"optimizer must be one of .*'adam', 'sgd', 'lbfgs'.*'adagrad'"),
    (dict(schedule="linear"), r"schedule must be one of .*'cosine', 'exponential', 'step'"),
    (dict(dtype="float16"), r"dtype must be None or one of .*'float32', 'float64'.*'float16'"),
    (dict(lr=0.0), r"lr must be positive, got 0.0"),
    (dict(lr=float("nan")), r"lr must be positive, got nan"),
    (dict(log_every=0), r"log_every must be an integer ≥ 1, got 0"),
    (dict(log_every=2.5), r"log_every must be an integer ≥ 1"),
    (dict(batch_size=0), r"batch_size must be None or an integer ≥ 1, got 0"),
    (dict(checkpoint_every=-1), r"checkpoint_every must be an integer ≥ 0, got -1"),
    (dict(step_size=0), r"step_size must be an integer ≥ 1, got 0"),
    (dict(schedule="step", step_size=0), r"step_size must be an integer ≥ 1"),
    (dict(lbfgs_at=-1, steps=10), r"lbfgs_at must be None or an integer ≥ 0, got -1"),
    (dict(lbfgs_at=11, steps=10), r"lbfgs_at must be None or in \[0, steps=10\], got 11"),
    (dict(lbfgs_max_iter=0), r"lbfgs_max_iter must be an integer ≥ 1"),
    (dict(lbfgs_line_search="armijo"), r"lbfgs_line_search must be None or one of"),
    (dict(gamma=0.0), r"gamma must be positive, got 0.0"),
    (dict(lbfgs_lr=-1.0), r"lbfgs_lr must be positive, got -1.0"),
    (dict(eps=0.0), r"eps must be positive, got 0.0"),
    (dict(eps=float("nan")), r"eps must be positive, got nan"),
    (dict(weight_decay=-1.0), r"weight_decay must be ≥ 0, got -1.0"),
    (dict(momentum=-0.1), r"momentum must be ≥ 0, got -0.1"),
    (dict(momentum=float("nan")), r"momentum must be ≥ 0, got nan"),
    (dict(seed=-1), r"seed must be an integer ≥ 0"),
    (dict(progress="yes"), r"progress must be True or False"),
    (dict(grad_clip=0.0), r"grad_clip must be None or positive, got 0.0"),
    (dict(grad_clip=float("nan")), r"grad_clip must be None or positive, got nan"),
    (dict(lr_min_factor=1.5), r"lr_min_factor must be in \[0, 1\], got 1.5"),
    (dict(lr_min_factor=-0.1), r"lr_min_factor must be in \[0, 1\], got -0.1"),
    (dict(optimizer="lbfgs", schedule="cosine"), r"schedule applies to adam and sgd only"),
    (dict(betas=(0.9, 1.0)), r"betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"),
    (dict(betas=(1.0, 0.9)), r"betas must be two numbers in \[0, 1\)"),
    (dict(betas=(-0.1, 0.9)), r"betas must be two numbers in \[0, 1\), got \(-0.1, 0.9\)"),
    (dict(betas=(0.9,)), r"betas must be two numbers in \[0, 1\), got \(0.9,\)"),
    (dict(betas=(0.9, 0.99, 0.5)), r"betas must be two numbers in \[0, 1\)"),
    (dict(betas="ab"), r"betas must be two numbers in \[0, 1\), got 'ab'"),
    (dict(betas=None), r"betas must be two numbers in \[0, 1\), got None"),
    (dict(weight_decay_on="bias"), r"weight_decay_on must be one of .*'all', 'weights'.*'bias'"),
]


@pytest.mark.parametrize(
    "kw,match",
    _CONFIG_ERRORS,
    ids=[f"{i}-{next(iter(kw))}" for i, (kw, _) in enumerate(_CONFIG_ERRORS)],
)
def test_a_bad_setting_is_one_line_naming_it_and_its_expectation(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        TrainConfig(**kw)
    assert "\n" not in str(err.value)


def test_config_accepts_its_boundaries_and_normalises_betas():
    TrainConfig(
        steps=0,
        lr=1e-300,
        log_every=1,
        batch_size=1,
        checkpoint_every=0,
        step_size=1,
        gamma=1e-300,
        lbfgs_lr=1e-300,
        eps=1e-300,
        weight_decay=0.0,
        momentum=0.0,
        lr_min_factor=0.0,
        grad_clip=1e-300,
    )
    TrainConfig(steps=5, lbfgs_at=0, lr_min_factor=1.0, schedule="step", dtype="float32")
    TrainConfig(steps=5, lbfgs_at=5, optimizer="lbfgs", dtype="float64")
    cfg = TrainConfig(betas=[0, 0.5])
    assert (
        cfg.betas == (0.0, 0.5)
        and type(cfg.betas) is tuple
        and all(type(b) is float for b in cfg.betas)
    )
    assert TrainConfig(betas=(0.0, 0.0)).betas == (0.0, 0.0)
