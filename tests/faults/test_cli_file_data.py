"""A worker killed (SIGKILL) in the middle of ``daskpml train`` on file data: the data were read
on the client and scattered, which dask cannot recompute, so each block is kept on two workers
(``daskpml.scatter.replicas``). The solver's loop runs on the workers (an SPMD group): the group
ends with CommError when the worker dies and restarts on the workers that remain from the snapshot
the client keeps. The run must finish with the model of an undisturbed run."""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from sklearn.datasets import dump_svmlight_file

from daskpml.cli import cli

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]

N, D = 44_000, 48                 # 17 MB of float64: above fit_linear's in-process size, so it is scattered


def _data(tmp_path, kind):
    rng = np.random.default_rng(3)
    X = np.round(rng.standard_normal((N, D)), 3)
    y = (X @ rng.standard_normal(D) + 0.5 * rng.standard_normal(N) > 0).astype(float)
    path = tmp_path / f"d.{kind}"
    if kind == "npz":
        np.savez(path, X=X, y=y)
    elif kind == "svm":
        dump_svmlight_file(X, y, str(path), zero_based=False)
    else:
        np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%.3f")
    return path


def _train(path, out, monkeypatch=None, kill_at=None):
    from distributed import Client

    from daskpml._progress import ProgressLine

    killed = []
    if kill_at is not None:
        update = ProgressLine.update          # called on the client for every row the ranks send

        def kill_one(self, it, *args, **kwargs):
            if it == kill_at and not killed:
                client = Client.current()
                victim = sorted(client.scheduler_info()["workers"])[-1]
                pid = client.run(os.getpid, workers=[victim])[victim]
                os.kill(pid, signal.SIGKILL)
                killed.append(victim)
            return update(self, it, *args, **kwargs)

        monkeypatch.setattr(ProgressLine, "update", kill_one)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(cli, ["--workers", "2", "--threads", "1", "train", str(path), "--solver", "lbfgs",
                                          "--tol", "1e-8", "--max-iter", "40", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    if kill_at is not None:
        assert killed, "the worker was not killed: the run ended first"
        monkeypatch.undo()
    with xr.open_dataset(out) as ds:
        return ds["coef"].values.copy(), int(ds.attrs["n_iter"])


@pytest.mark.parametrize("kind", ["npz", "svm", "csv"])
def test_train_survives_a_killed_worker(tmp_path, monkeypatch, kind):
    path = _data(tmp_path, kind)
    reference, n_iter = _train(path, tmp_path / "ref.nc")
    assert n_iter > 4
    coef, n_iter_killed = _train(path, tmp_path / "killed.nc", monkeypatch, kill_at=3)
    assert n_iter_killed == n_iter
    np.testing.assert_allclose(coef, reference, rtol=1e-9, atol=1e-12)
