"""Preloaded into the worker processes of the embedded cluster (``LocalCluster(preload=...)``).

Ctrl-C in a terminal sends SIGINT to the whole process group, the workers included. The
workers leave it to the client process, which stops the run and closes the cluster in the
order Distributed expects; without this, every worker prints a ``KeyboardInterrupt``
traceback of its event loop while it dies.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
