"""Shared fixtures: ``backend`` (numpy; cupy only with a GPU), ``in_process``, ``client`` (a small LocalCluster
per module) and ``cli_cluster`` (a real ``dask scheduler`` + ``dask worker`` pair). Helpers that tests import
live in ``tests/_helpers.py``."""

from __future__ import annotations

import os

import pytest
from distributed import Client, LocalCluster

from daskpml.backend import gpu_count


@pytest.fixture(params=["numpy", "strict", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request: pytest.FixtureRequest):
    """The array backend a test runs on: ``numpy``; ``strict`` (NumPy behind arrays that refuse
    implicit host conversion as CuPy does, in CuPy's place: ``tests/_strict.py``; the test sees
    the name ``"cupy"``); ``cupy`` (a GPU)."""
    if request.param == "cupy" and gpu_count() == 0:
        pytest.skip("the cupy backend needs CuPy and a CUDA GPU")
    if request.param == "strict":
        from _strict import owns, strict, strict_sparse

        from daskpml.backend import device_standin

        with device_standin(strict, strict_sparse, owns):
            yield "cupy"
        return
    yield request.param


@pytest.fixture()
def in_process():
    """dask's synchronous scheduler: algorithms that would use a cluster run their tasks in this process."""
    import dask

    with dask.config.set(scheduler="sync"):
        yield


@pytest.fixture()
def nanny_client(request):
    """A fresh cluster of worker processes with nannies (a worker that dies is restarted) per test,
    so that one test's kills cannot leave the next with a worker short. Two workers; a test
    asks for more with ``@pytest.mark.parametrize("nanny_client", [3], indirect=True)``."""
    n_workers = getattr(request, "param", 2)
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="2GiB", silence_logs=50) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=True) as c:
        yield c


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
