"""``daskpml calibrate``: the fitted constants, the predictions and the measured ratios."""

from __future__ import annotations

import json

from click.testing import CliRunner

from daskpml import perf
from daskpml.cli import cli


def test_calibrate_prints_and_writes_the_model(tmp_path):
    out = tmp_path / "model.json"
    res = CliRunner().invoke(cli, ["--workers", "2", "--threads", "1", "calibrate", "--repeats", "1",
                                   "--max-bytes", "100000", "--predict", "2", "--predict", "8", "--measure",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "latency a" in res.output and "P=8" in res.output and "measured on 2 workers" in res.output
    record = json.loads(out.read_text())
    model = perf.CommModel(**record["model"])
    assert model.workers == 2 and model.latency + model.per_task > 0
    rows = record["measured"]["allreduce"]
    assert [r["bytes"] for r in rows] == [1_000, 10_000, 100_000]
    # the printed prediction is the model's
    assert f"{model.comm_time(100_000, 8, 'gossip') * 1e3:9.2f}" in res.output


def test_calibrate_needs_two_workers():
    res = CliRunner().invoke(cli, ["--workers", "1", "--threads", "1", "calibrate", "--repeats", "1",
                                   "--max-bytes", "10000"])
    assert res.exit_code != 0
    assert "at least 2 workers" in res.output
