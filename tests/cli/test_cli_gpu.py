"""``daskpml --gpu``: every subcommand moves its input to the GPU and writes host results, run here on
the strict stand-in for CuPy (tests/_strict.py) against an in-process cluster (its workers share
the stand-in), the way benchmarks/gpu_check.py runs them on a LocalCUDACluster."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from _strict import owns, strict, strict_sparse
from click.testing import CliRunner
from distributed import Client, LocalCluster

from daskpml.backend import device_standin
from daskpml.cli import cli
from daskpml.datasets import make_sbm


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpu-cli")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 5))
    np.savez(d / "binary.npz", X=X, y=(X[:, 0] + 0.5 * X[:, 1] > 0).astype(int))
    np.savez(d / "regression.npz", X=X, y=X @ np.arange(1.0, 6.0) + 0.1 * rng.standard_normal(400))
    centers = rng.standard_normal((3, 4)) * 6
    np.savez(d / "blobs.npz", X=np.concatenate([c + rng.standard_normal((100, 4)) for c in centers]))
    A, y = make_sbm(300, 3, in_degree=8, out_degree=1, shuffle=True, random_state=0, chunks=150)
    A, y = sp.csr_matrix(A.compute()), np.asarray(y.compute()).astype(np.int64)
    scipy.io.mmwrite(str(d / "sbm.mtx"), A)
    np.save(d / "lr.npy", np.abs(rng.standard_normal((300, 3))) @ np.abs(rng.standard_normal((3, 30))))
    F = sp.csr_matrix(np.where(rng.random((300, 6)) < 0.3, 1.0, 0.0) + 3.0 * np.eye(6)[y])
    order = rng.permutation(300)
    np.savez(d / "graph.npz", adj_data=A.data, adj_indices=A.indices, adj_indptr=A.indptr, adj_shape=A.shape,
             x_data=F.data, x_indices=F.indices, x_indptr=F.indptr, x_shape=F.shape, labels=y,
             idx_train=order[:60], idx_val=order[60:120], idx_test=order[120:])
    return d


@pytest.fixture(scope="module")
def address():
    with dask.config.set({"daskpml.progress": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False):
        yield cluster.scheduler_address


COMMANDS = {
    "train": (["train", "{d}/binary.npz", "--model", "logistic", "--out", "{o}/model.nc"], "model.nc"),
    "lasso": (["lasso", "{d}/regression.npz", "--alpha", "0.1", "--out", "{o}/lasso.nc"], "lasso.nc"),
    "spectral": (["spectral", "{d}/blobs.npz", "-k", "3", "--seed", "0", "--out", "{o}/labels.tsv"], "labels.tsv"),
    "eigsh": (["eigsh", "{d}/sbm.mtx", "--k", "3", "--seed", "0", "--out", "{o}/eig.nc"], "eig.nc"),
    "mcl": (["mcl", "{d}/sbm.mtx", "-I", "2.0", "--out", "{o}/clusters.txt"], "clusters.txt"),
    "nmf": (["nmf", "{d}/lr.npy", "-k", "3", "--seed", "0", "--max-iter", "500", "--out", "{o}/nmf.nc"], "nmf.nc"),
    "pca": (["pca", "{d}/lr.npy", "-k", "2", "--out", "{o}/pca.nc"], "pca.nc"),
    "gnn": (["gnn", "{d}/graph.npz", "--parts", "2", "--epochs", "10", "--seed", "0", "--out", "{o}/gnn.tsv"],
            "gnn.tsv"),
}


def _run(args, address):
    with device_standin(strict, strict_sparse, owns):
        return CliRunner().invoke(cli, ["--gpu", "--scheduler", address, *args], catch_exceptions=False)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_family_runs_with_gpu(name, inputs, address, tmp_path):
    template, out_name = COMMANDS[name]
    result = _run([a.format(d=inputs, o=tmp_path) for a in template], address)
    assert result.exit_code == 0, result.output
    assert (tmp_path / out_name).stat().st_size > 0


def test_predict_with_gpu_writes_host_labels(inputs, address, tmp_path):
    assert _run(["train", str(inputs / "binary.npz"), "--out", str(tmp_path / "m.nc")], address).exit_code == 0
    result = _run(["predict", str(tmp_path / "m.nc"), str(inputs / "binary.npz"), "--out", str(tmp_path / "p.txt")],
                  address)
    assert result.exit_code == 0, result.output
    labels = (tmp_path / "p.txt").read_text().split()
    assert len(labels) == 400 and set(labels) <= {"0", "1"}


def test_svm_with_gpu_is_refused_naming_the_alternative(inputs, address, tmp_path):
    result = _run(["svm", str(inputs / "binary.npz"), "--out", str(tmp_path / "s.nc")], address)
    assert result.exit_code == 2 and "without --gpu" in result.output and "train --model svm" in result.output
