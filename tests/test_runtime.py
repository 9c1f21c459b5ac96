"""connect(): explicit address > DASK_SCHEDULER_ADDRESS > config > running client > new LocalCluster."""

from __future__ import annotations

import time

import dask
import pytest
from distributed import Client, Future, LocalCluster

from daskpml import runtime
from daskpml.runtime import connect, current_client, shutdown


@pytest.fixture(scope="module")
def two_clusters():
    kw = dict(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with LocalCluster(**kw) as a, LocalCluster(**kw) as b:
        yield a.scheduler_address, b.scheduler_address


@pytest.fixture(autouse=True)
def no_default_client(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    yield
    while (c := current_client()) is not None:
        c.close()
    shutdown()


def test_explicit_address_beats_environment(two_clusters, monkeypatch):
    a, b = two_clusters
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", b)
    assert connect(a).scheduler.address == a


def test_environment_beats_config(two_clusters, monkeypatch):
    a, b = two_clusters
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", b)
    with dask.config.set({"daskpml.scheduler-address": a}):
        assert connect().scheduler.address == b


def test_config_beats_running_client(two_clusters):
    a, b = two_clusters
    with Client(b, set_as_default=True), dask.config.set({"daskpml.scheduler-address": a}):
        assert connect().scheduler.address == a


def test_running_client_is_reused(two_clusters):
    _, b = two_clusters
    with Client(b, set_as_default=True) as running:
        assert connect() is running or connect().scheduler.address == b


def test_embedded_local_cluster_is_started_once():
    first = connect(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    assert first.cluster is not None and len(first.nthreads()) == 1
    first.close()
    second = connect(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    assert second.cluster is first.cluster
    assert second.submit(sum, [1, 2]).result() == 3


def test_address_without_scheduler_fails_fast_and_names_it():
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"No dask scheduler answered at 'tcp://127\.0\.0\.1:9' .*dask scheduler"):
        connect("tcp://127.0.0.1:9", timeout="2s")
    assert time.perf_counter() - start < 15


def test_gpu_without_packages_names_them():
    try:
        import cupy  # noqa: F401
        import dask_cuda  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"(CuPy|dask-cuda).*daskpml\[gpu\]"):
            connect(gpu=True)
    else:  # pragma: no cover - GPU machines
        pytest.skip("cupy and dask-cuda are installed")


def test_dashboard_link_printed_once(two_clusters, capsys):
    a, _ = two_clusters
    runtime._announced.discard(a)
    connect(a)
    connect(a)
    out = capsys.readouterr().out
    assert out.count(f"connected to {a}") == 1 and "dashboard" in out


def test_large_in_memory_inputs_are_scattered_not_pickled_into_graphs(two_clusters):
    """On a distributed client, a NumPy or SciPy input over 4 MiB is sent to the workers block by
    block; dask's "Sending large graph" warning must not appear and results must not change."""
    import warnings

    import numpy as np
    import scipy.sparse as sp

    from daskpml.decomposition import PCA
    from daskpml.runtime import distribute_rows
    from daskpml.sparse import from_array

    a, _ = two_clusters
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60_000, 20))            # 9.6 MB
    S = sp.random(60_000, 400, density=0.02, format="csr", random_state=0)
    with Client(a, set_as_default=True) as client, warnings.catch_warnings():
        warnings.simplefilter("error")               # dask's large-graph UserWarning included
        D = distribute_rows(X, 15_000)
        assert D.chunks[0] == (15_000,) * 4
        assert all(isinstance(v, Future) for v in dict(D.__dask_graph__()).values())
        np.testing.assert_array_equal(D.compute(), X)
        A = from_array(S, chunks=15_000)
        np.testing.assert_allclose((A @ np.ones(400)).compute(), S @ np.ones(400))
        pca = PCA(3, svd_solver="covariance_eigh").fit(X)
        assert pca.components_.shape == (3, 20)
        small = distribute_rows(X[:100], 50)          # small inputs stay in the graph
        assert not any(isinstance(v, Future) for v in dict(small.__dask_graph__()).values())
        del D, A
        client.close()


GUARDED = '''
import daskpml


def main():
    client = daskpml.connect(n_workers=1, threads_per_worker=1)
    print("workers", len(client.nthreads()))


if __name__ == "__main__":
    main()
'''


@pytest.mark.parametrize("body,ok", [
    ("import daskpml\nclient = daskpml.connect(n_workers=1, threads_per_worker=1)\n", False),
    ("import daskpml\n\ndef main():\n    daskpml.connect(n_workers=1, threads_per_worker=1)\n\nmain()\n", False),
    (GUARDED, True)], ids=["top-level", "unguarded-call", "guarded"])
def test_a_script_without_the_main_guard_is_told_the_fix(tmp_path, body, ok):
    """Spawned workers import the script again; without the guard each started a cluster of its
    own and the script died with 'Nanny failed to start' and pages of tracebacks."""
    import os
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(body)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path)
    if ok:
        assert out.returncode == 0 and "workers 1" in out.stdout, out.stderr
        return
    assert out.returncode != 0
    assert 'under `if __name__ == "__main__":`' in out.stderr and "script.py, line" in out.stderr
    assert "Nanny failed to start" not in out.stderr and out.stderr.count("Traceback") == 1


def _cluster_log_levels():
    import logging

    return [logging.getLogger(name).level for name in runtime.SHUTDOWN_LOGGERS]


def test_ctrl_c_quiets_a_worker_for_a_while_then_gives_its_logs_back(monkeypatch):
    """The SIGINT handler of the embedded cluster's workers (on the worker's process, here on
    this one): the cluster loggers fall silent at once, and get their levels back when the
    quiet time is over, unless the worker is closing by then."""
    import logging
    from types import SimpleNamespace

    from daskpml import _worker_setup as setup

    running = SimpleNamespace(status=SimpleNamespace(name="running"))
    closing = SimpleNamespace(status=SimpleNamespace(name="closing"))
    before = _cluster_log_levels()
    try:
        setup.quiet_after_interrupt(seconds=60)
        assert _cluster_log_levels() == [logging.CRITICAL] * len(before)
        assert not setup.restore_when_due(running)          # not yet
        setup.quiet_after_interrupt(seconds=0)               # a second Ctrl-C keeps the first levels
        assert setup.restore_when_due(running) and _cluster_log_levels() == before
        setup.quiet_after_interrupt(seconds=0)
        assert not setup.restore_when_due(closing)           # a closing worker stays quiet
        assert _cluster_log_levels() == [logging.CRITICAL] * len(before)
    finally:
        for name, level in zip(runtime.SHUTDOWN_LOGGERS, before):
            logging.getLogger(name).setLevel(level)
        setup._quiet.update(until=None, levels=None)


def _interrupt_self_and_report():
    import logging
    import os
    import signal

    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)                                         # (the handler runs in the main thread)
    return [logging.getLogger(name).level for name in runtime.SHUTDOWN_LOGGERS]


def test_the_embedded_clusters_workers_outlive_ctrl_c_and_fall_quiet():
    import logging

    client = connect(n_workers=1, threads_per_worker=1, dashboard_address=None)
    levels = client.run(_interrupt_self_and_report)
    assert list(levels.values()) == [[logging.CRITICAL] * len(runtime.SHUTDOWN_LOGGERS)]
    assert client.submit(sum, [1, 2]).result() == 3          # the worker lives on
