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
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
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


def test_cli_with_scheduler_option(scheduler_address, tmp_path):
    out = subprocess.run([sys.executable, "-m", "daskpml.cli", "--scheduler", scheduler_address, "demo", "--quick"],
                         capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    assert f"cluster: {scheduler_address} with 2 worker(s)" in out.stdout and "SpGEMM" in out.stdout
