"""Shared fixtures: ``backend`` (numpy; cupy only with a GPU) and ``client`` (a small LocalCluster per module)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp
from distributed import Client, LocalCluster

from daskpml.backend import gpu_count, to_backend, to_numpy


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "cupy" and gpu_count() == 0:
        pytest.skip("the cupy backend needs CuPy and a CUDA GPU")
    return request.param


@pytest.fixture()
def in_process():
    """dask's synchronous scheduler: algorithms that would use a cluster run their tasks in this process."""
    import dask

    with dask.config.set(scheduler="sync"):
        yield


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=True) as c:
        yield c


def on(backend: str, x):
    """``x`` (NumPy / SciPy) moved to ``backend``."""
    return to_backend(x, backend)


def host(x):
    """A computed result as NumPy / SciPy, for comparison with a reference."""
    if hasattr(x, "compute"):
        x = x.compute()
    x = to_numpy(x)
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def random_csr(m: int, n: int, density: float, seed: int, dtype=np.float64) -> sp.csr_matrix:
    return sp.random(m, n, density=density, format="csr", random_state=seed, dtype=dtype)


def _exit_worker():
    os._exit(1)


def worker_killer(client, at: int):
    """A solver callback that kills one worker process (``os._exit``) at iteration / update
    ``at``; the returned list names the victim once it is done."""
    killed: list[str] = []

    def kill_one(record):
        if record["iteration"] == at and not killed:
            victim = sorted(client.scheduler_info()["workers"])[0]
            killed.append(victim)
            try:
                client.run(_exit_worker, workers=[victim])
            except Exception:                      # the worker dies before answering
                pass

    return kill_one, killed


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def cli_cluster():
    """A ``dask scheduler`` and one ``dask worker`` process on 127.0.0.1, for tests that kill the
    scheduler: yields ``(address, scheduler process)``; both are killed at the end."""
    import subprocess
    import sys

    port = _free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--dashboard-address", ":0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
                               "--nthreads", "1", "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        yield f"tcp://127.0.0.1:{port}", scheduler
    finally:
        for p in (worker, scheduler):
            p.kill()
            p.wait()
