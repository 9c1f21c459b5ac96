"""A scheduler that goes away mid-run ends the command with one line naming it (in a module
of its own: no other client may be running in this process)."""

from __future__ import annotations


import numpy as np
import pytest
from click.testing import CliRunner

from daskpml.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.distributed
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_scheduler_that_goes_away_is_one_line(tmp_path, monkeypatch, cli_cluster):
    from daskpml._progress import ProgressLine

    address, scheduler = cli_cluster
    update = ProgressLine.update               # called here for every row the solver's ranks send

    def kill_scheduler(self, it, *args, **kwargs):
        if it == 2:
            scheduler.kill()
            scheduler.wait()
        return update(self, it, *args, **kwargs)

    monkeypatch.setattr(ProgressLine, "update", kill_scheduler)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50_000, 48))              # 19 MB: above the in-process size, so chunks go to the worker
    np.savez(tmp_path / "big.npz", X=X, y=(X[:, 0] > 0).astype(float))
    result = run("--scheduler", address, "train", str(tmp_path / "big.npz"), "--solver",
                 "gradient_descent", "--tol", "0", "--max-iter", "100000", "--quiet",
                 "--out", str(tmp_path / "m.nc"))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    line = [x for x in result.output.splitlines() if x.startswith("Error:")][0]
    assert f"the connection to the scheduler at {address} was lost" in line
