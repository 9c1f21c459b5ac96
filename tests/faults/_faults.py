"""Helpers that kill a worker in the middle of a run (the cluster with nannies is conftest's
``nanny_client`` fixture)."""

from __future__ import annotations

import os
import signal
import threading
import time



async def _exit_soon() -> None:
    """``os._exit(1)`` on the worker, a moment after the reply (a coroutine, so that the
    client need not wait for an answer that never comes)."""
    import asyncio

    asyncio.get_running_loop().call_later(0.05, os._exit, 1)


def victim(client) -> str:
    """The address of the worker to kill: the last one, by address."""
    return sorted(client.scheduler_info()["workers"])[-1]


def kill_worker(client, how: str) -> str:
    """Kill one worker: ``"exit"`` runs ``os._exit(1)`` on it, ``"sigkill"`` sends SIGKILL to its
    process from outside. The nanny starts a fresh worker afterwards."""
    address = victim(client)
    if how == "exit":
        client.run(_exit_soon, workers=[address], wait=False)
    else:
        pid = client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
    return address


class Killer:
    """A callback (any signature) that kills a worker the ``at``-th time it is called."""

    def __init__(self, client, how: str, at: int = 2) -> None:
        self.client, self.how, self.at, self.calls, self.killed = client, how, at, 0, None

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            self.killed = kill_worker(self.client, self.how)
        return False


def recover(client, n: int = 2, timeout: float = 60) -> None:
    """Wait (at most ``timeout`` seconds) until the nannies have brought the cluster back to
    ``n`` workers."""
    deadline = time.monotonic() + timeout
    while len(client.scheduler_info()["workers"]) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the nannies did not bring back {n} workers within {timeout} s")
        threading.Event().wait(0.2)
