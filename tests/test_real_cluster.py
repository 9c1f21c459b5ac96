"""A real `dask scheduler` and `dask worker` on 127.0.0.1, reached through connect(address) and the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp

pytestmark = pytest.mark.distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"no scheduler on port {port} after {timeout} s")


@pytest.fixture(scope="module")
def scheduler_address():
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        _wait_for_port(port)
        for _ in range(2):                      # two `dask worker` processes
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                           "--nthreads", "1", "--no-dashboard"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_connect_and_sparse_product(scheduler_address):
    from daskpml import connect
    from daskpml.sparse import from_array

    client = connect(scheduler_address)
    try:
        assert client.scheduler.address == scheduler_address and len(client.nthreads()) == 2
        M = sp.random(400, 400, density=0.02, format="csr", random_state=0)
        A = from_array(M, chunks=100).persist()
        x = np.arange(400.0)
        np.testing.assert_allclose((A @ x).compute(), M @ x)
        np.testing.assert_allclose((A @ A).to_scipy().toarray(), (M @ M).toarray())
    finally:
        client.close()


def _lbfgs_and_async_sgd(scheduler_address):
    import dask

    from daskpml import connect
    from daskpml.optim import fit_linear

    client = connect(scheduler_address)
    try:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((20_000, 5))
        y = (X @ np.arange(1.0, 6.0) + rng.standard_normal(20_000) > 0).astype(float)
        Xd, yd = dask.array.from_array(X, chunks=5000), dask.array.from_array(y, chunks=5000)
        _, _, ranks = fit_linear(Xd, yd, family="logistic", lam=1e-3, solver="lbfgs", tol=1e-8, progress=False)
        with dask.config.set({"daskpml.optim.on-ranks": False}):
            _, _, graphs = fit_linear(Xd, yd, family="logistic", lam=1e-3, solver="lbfgs", tol=1e-8, progress=False)
        _, _, asynchronous = fit_linear(X, y, family="logistic", lam=1e-3, solver="async_sgd", max_iter=2,
                                        eta0=0.5, random_state=0, progress=False)
        return ranks, graphs, asynchronous
    finally:
        client.close()


def test_solvers_run_on_the_ranks_of_a_real_cluster(scheduler_address):
    """The loop of L-BFGS and async SGD's parameter server on `dask worker` processes (SPMD
    groups; the workers' plugin is registered by the first group)."""
    ranks, graphs, asynchronous = _lbfgs_and_async_sgd(scheduler_address)
    assert ranks.history.attrs["n_ranks"] == 2 and ranks.history.bytes.attrs["source"] == "measured"
    assert ranks.n_iter == graphs.n_iter
    np.testing.assert_allclose(ranks.theta, graphs.theta, rtol=1e-7)
    h = asynchronous.history
    assert h.attrs["on_ranks"] == 1 and int(h.updates.sum()) == asynchronous.n_iter > 0
    assert (h.updates.values > 0).all() and np.isfinite(h.objective.values[-1])
    assert all(a.startswith("tcp://") for a in h.address.values)


def test_cli_with_scheduler_option(scheduler_address, tmp_path):
    out = subprocess.run([sys.executable, "-m", "daskpml.cli", "--scheduler", scheduler_address, "demo", "--quick",
                          "--only", "sparse"],
                         capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    assert f"cluster: {scheduler_address} with 2 worker(s)" in out.stdout and "SpGEMM" in out.stdout


# -- every CLI subcommand against the real cluster, compared with the embedded default -------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import importlib.util

    d = tmp_path_factory.mktemp("cli-inputs")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    np.savez(d / "binary.npz", X=X, y=y)
    np.savez(d / "regression.npz", X=X, y=X @ np.arange(1.0, 6.0) + 0.1 * rng.standard_normal(600))
    spec = importlib.util.spec_from_file_location("cli_gnn", os.path.join(os.path.dirname(__file__), "cli",
                                                                           "test_cli_gnn.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_data(d / "cora-like.npz")
    for args in (["make-blobs", "--samples", "600", "--centers", "3", "--out", str(d / "blobs.npz")],
                 ["make-sbm", "--nodes", "600", "--clusters", "3", "--in-degree", "10", "--out-degree", "1",
                  "--out", str(d / "sbm.mtx")],
                 ["make-low-rank", "--rows", "300", "--cols", "40", "--rank", "4", "--out", str(d / "lr.npy")]):
        _cli(["datasets", *args])
    return d


def _cli(args, scheduler=None, timeout=240):
    head = ["--scheduler", scheduler] if scheduler else ["--workers", "2", "--threads", "1"]
    out = subprocess.run([sys.executable, "-m", "daskpml.cli", *head, *args], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore", "DASKPML__PROGRESS": "0"})
    assert out.returncode == 0, f"daskpml {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _same_files(a, b):
    """Byte-equal files, or netCDF files with equal numbers outside the timing columns."""
    if a.suffix != ".nc":
        assert a.read_bytes() == b.read_bytes()
        return
    import xarray as xr

    with xr.open_dataset(a) as da_, xr.open_dataset(b) as db:
        for name, var in da_.data_vars.items():
            if any(word in name for word in ("time", "bytes", "busy")) or var.dtype.kind not in "fiub":
                continue
            np.testing.assert_allclose(var.values, db[name].values, rtol=1e-5, atol=1e-8, err_msg=name)


SUBCOMMANDS = {
    "info": ([], None),
    "datasets": (["datasets", "convert", "{d}/sbm.mtx", "{o}"], "graph.npz"),
    "train": (["train", "{d}/binary.npz", "--model", "logistic", "--out", "{o}"], "model.nc"),
    "predict": (["predict", "{d}/model-embedded.nc", "{d}/binary.npz", "--out", "{o}"], "pred.txt"),
    "spectral": (["spectral", "{d}/blobs.npz", "-k", "3", "--seed", "0", "--out", "{o}"], "labels.tsv"),
    "eigsh": (["eigsh", "{d}/sbm.mtx", "--k", "4", "--seed", "0", "--out", "{o}"], "eig.nc"),
    "mcl": (["mcl", "{d}/sbm.mtx", "-I", "2.0", "--out", "{o}"], "clusters.txt"),
    "nmf": (["nmf", "{d}/lr.npy", "-k", "4", "--seed", "0", "--max-iter", "50", "--out", "{o}"], "nmf.nc"),
    "pca": (["pca", "{d}/lr.npy", "-k", "3", "--out", "{o}"], "pca.nc"),
    "gnn": (["gnn", "{d}/cora-like.npz", "--parts", "2", "--epochs", "20", "--seed", "0", "--out", "{o}"], "p.tsv"),
    "svm": (["svm", "{d}/binary.npz", "--partitions", "2", "--out", "{o}"], "svm.nc"),
    "lasso": (["lasso", "{d}/regression.npz", "--alpha", "0.1", "--out", "{o}"], "lasso.nc"),
    "demo": (["demo", "--quick", "--only", "linear"], None),
}


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_every_subcommand_against_real_cluster(scheduler_address, inputs, tmp_path, name):
    template, out_name = SUBCOMMANDS[name]
    if name == "predict":
        _cli(["train", str(inputs / "binary.npz"), "--model", "logistic", "--out", str(inputs / "model-embedded.nc")])
    if name == "info":
        text = _cli(["info"], scheduler_address)
        assert scheduler_address in text
        return
    outputs = []
    for where in ("embedded", "real"):
        out = tmp_path / f"{where}-{out_name}" if out_name else None
        args = [a.format(d=inputs, o=out) for a in template]
        text = _cli(args, scheduler_address if where == "real" else None)
        if where == "real" and name not in ("datasets",):
            assert scheduler_address in text, text
        outputs.append(out)
    if out_name:
        _same_files(*outputs)
