"""Fixtures of the harness tests: a summary as the CLI stores it, and the checks every
experiment's outputs pass."""

import dataclasses
import json

import pytest


def _as_cli(summary: dict, cfg, setting: str = "ours") -> dict:
    return json.loads(
        json.dumps({**summary, "config": dataclasses.asdict(cfg), "setting": setting})
    )


@pytest.fixture
def as_cli():
    """``as_cli(summary, cfg, setting="ours")``: an experiment's ``run`` summary as the CLI stores
    it (config and setting added, through JSON), the input of its ``tables``."""
    return _as_cli


@pytest.fixture
def check_outputs():
    """``check_outputs(mod, cfg, summary, out, seeds)``: the summary is strict JSON, every figure
    was written, and ``mod.tables`` (returned) names the setting and the seeds."""

    def check(mod, cfg, summary, out, seeds: int) -> str:
        json.dumps(summary, allow_nan=False)  # strict JSON: no inf/NaN
        assert summary["figures"]
        for fig in summary["figures"]:
            assert (out / fig).stat().st_size > 1000
        assert not (out / "table.md").exists()  # the CLI writes it, from tables(summary)
        table = mod.tables(_as_cli(summary, cfg))
        assert table.startswith("### ") and f"setting: ours, {seeds} seed" in table
        return table

    return check


def _member_records(setting_dir, seed: int) -> list[dict]:
    """The records of ``seed`` in a setting's run directory: ``ensemble/metrics.jsonl`` (every
    seed at once, with ``seed`` per record) or ``seed<seed>/metrics.jsonl`` (one run per seed)."""
    ens = setting_dir / "ensemble" / "metrics.jsonl"
    if ens.exists():
        recs = [json.loads(line) for line in ens.read_text().splitlines()]
        return [
            {k: v for k, v in r.items() if k not in ("member", "seed")}
            for r in recs
            if r["seed"] == seed
        ]
    path = setting_dir / f"seed{seed}" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def member_records():
    """``member_records(setting_dir, seed)``: one seed's training records, from an ensemble's
    run directory or from the seed's own."""
    return _member_records
