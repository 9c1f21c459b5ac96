"""Preloaded into the worker processes of the embedded cluster (``LocalCluster(preload=...)``).

Ctrl-C in a terminal sends SIGINT to the whole process group, the workers included. The
workers leave it to the client process, which stops the run and closes the cluster in the
order Distributed expects; without this, every worker prints a ``KeyboardInterrupt``
traceback of its event loop while it dies.

The workers also fall quiet for :data:`QUIET_S` seconds: the client's answer to Ctrl-C cancels
the tasks in flight (the ranks of an SPMD group among them) before it can tell the workers that
the cluster is closing, and each cancelled task, or a heartbeat to the closing scheduler, would
otherwise reach the terminal as a warning or an error about the interruption itself. A worker
that goes on running afterwards (an interrupted notebook cell) gets its logs back.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from .runtime import SHUTDOWN_LOGGERS

#: seconds a worker's cluster loggers stay silent after Ctrl-C
QUIET_S = 30.0

_quiet: dict = {"until": None, "levels": None}
_CLOSING = ("closing", "closing_gracefully", "closed", "failed")


def _closing(worker: Any) -> bool:
    return getattr(getattr(worker, "status", None), "name", "running") in _CLOSING


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger(name) for name in SHUTDOWN_LOGGERS]


def quiet_after_interrupt(seconds: float = QUIET_S) -> None:
    """Silence this process's cluster loggers for ``seconds`` (:func:`restore_when_due` gives
    them back their levels). Safe in a signal handler: it starts no thread and takes no lock
    that the interrupted code could hold (logging's own lock is reentrant)."""
    loggers = _loggers()
    if _quiet["levels"] is None:                    # a second Ctrl-C keeps the first one's levels
        _quiet["levels"] = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.CRITICAL)
    _quiet["until"] = time.monotonic() + seconds


def restore_when_due(worker: Any) -> bool:
    """Give the cluster loggers back the levels they had before Ctrl-C once the quiet time is
    over, unless ``worker`` is closing by then (its closing messages are the interruption's
    too); whether they were given back."""
    until, levels = _quiet["until"], _quiet["levels"]
    if until is None or levels is None or time.monotonic() < until:
        return False
    _quiet["until"] = _quiet["levels"] = None
    if _closing(worker):
        return False
    for log, level in zip(_loggers(), levels):
        log.setLevel(level)
    return True


def _watch(worker: Any) -> None:
    while not _closing(worker):
        restore_when_due(worker)
        time.sleep(1.0)


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda signum, frame: quiet_after_interrupt())
        threading.Thread(target=_watch, args=(worker,), name="daskpml-quiet-after-ctrl-c", daemon=True).start()
