"""Helpers the tests import (fixtures live in conftest.py): backend moves, host copies, random CSR
matrices and a callback that kills a worker."""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from daskpml.backend import to_backend, to_numpy


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


def rank_workers(client) -> list[str]:
    """The workers running the ranks of an SPMD group now, in rank order (the ranks' tasks are
    named ``daskpml-spmd-<solver>-<group>-<rank>``)."""
    ranks = {}
    for worker, keys in client.processing().items():
        for key in keys:
            key = str(key)
            if key.startswith("daskpml-spmd-"):
                ranks[int(key.rsplit("-", 1)[1])] = worker
    return [ranks[r] for r in sorted(ranks)]


def worker_killer(client, at: int, rank: int = -1):
    """A solver callback that kills (``os._exit``) the worker process running rank ``rank`` of
    the solver's SPMD group (the last rank by default; any worker when the solver runs no
    group) at iteration / update ``at``; the returned list names the victim once it is done.

    The victim is found among the running tasks, not among the holders of the data: a worker
    holding only copies of blocks runs no rank, and killing it would not touch the group."""
    killed: list[str] = []

    def kill_one(record):
        if record["iteration"] == at and not killed:
            ranks = rank_workers(client)
            victim = ranks[rank] if ranks else sorted(client.scheduler_info()["workers"])[0]
            killed.append(victim)
            try:
                client.run(_exit_worker, workers=[victim])
            except Exception:                      # the worker dies before answering
                pass

    return kill_one, killed
