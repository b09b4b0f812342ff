"""The theory experiment (sobolev_lab.experiments.theory): a tiny run end to end, and the quick
one."""

import json

import pytest

from sobolev_lab.experiments import theory


def test_theory_experiment_tiny(tmp_path):
    cfg = theory.Config(
        dims=(3,),
        widths=(1, 2),
        n_mc=20_000,
        spec_dim=4,
        spec_width=1,
        n_angles=4,
        n_scales=3,
        flow_dim=4,
        flow_widths=(1,),
        flow_inits=1,
        flow_t_max=15.0,
        n_trajectory_spectra=3,
    )
    summary = theory.run(cfg, tmp_path)
    json.dumps(summary, allow_nan=False)
    for name in summary["figures"] + summary["tables"]:
        assert (tmp_path / name).stat().st_size > 0
    assert summary["validation"]["max_abs_z_loss"] < 5
    assert summary["flow"]["K1"]["param_error<=0.01"]["acceleration"]["H_over_L"] > 1.5


@pytest.mark.slow
def test_theory_experiment_quick(tmp_path):
    summary = theory.run(theory.Config.quick(), tmp_path)
    json.dumps(summary, allow_nan=False)
    assert summary["validation"]["min_over_configs_max_abs_z_grad_J_autodiff_vs_population"] > 5
