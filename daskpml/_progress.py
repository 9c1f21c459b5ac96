"""Progress for iterative algorithms: a ``\\r``-updated line on a terminal, a few lines in logs
(the first and one every twentieth of the run), and an HTML bar in a Jupyter notebook."""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from . import _config

NOTEBOOK_REFRESH_S = 0.2


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter (IPython kernel) session."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _bar_html(iteration: int, max_iter: int, text: str) -> str:
    return (f'<div style="font-family:monospace"><progress value="{iteration}" max="{max(max_iter, 1)}" '
            f'style="width:16em;vertical-align:middle"></progress> {html.escape(text)}</div>')


class ProgressLine:
    """``update(iteration, max_iter, text)`` after each iteration, ``close()`` at the end.

    ``show``: True always shows it, False never, None follows ``daskpml.progress`` and shows it
    on a terminal and in a notebook (not in logs).
    """

    def __init__(self, show: bool | None = None) -> None:
        wanted = _config.get("progress", True) if show is None else show
        self.notebook = in_notebook()
        self.show = bool(wanted) and (show is True or sys.stderr.isatty() or self.notebook)
        self._handle: Any = None
        self._last = 0.0
        self._state: tuple[int, int, str] | None = None

    def update(self, iteration: int, max_iter: int, text: str) -> None:
        if not self.show:
            return
        if self.notebook:
            self._state = (iteration, max_iter, text)
            now = time.monotonic()
            if self._handle is None or now - self._last >= NOTEBOOK_REFRESH_S:
                self._draw()
                self._last = now
        elif sys.stderr.isatty():
            print("\r" + text, end="", file=sys.stderr, flush=True)
        elif iteration == 1 or iteration % max(1, max_iter // 20) == 0:
            print(text, file=sys.stderr, flush=True)

    def _draw(self) -> None:
        from IPython.display import display

        iteration, max_iter, text = self._state
        data = {"text/html": _bar_html(iteration, max_iter, text), "text/plain": text}
        if self._handle is None:
            self._handle = display(data, raw=True, display_id=True)
        else:
            self._handle.update(data, raw=True)

    def close(self) -> None:
        if not self.show:
            return
        if self.notebook:
            if self._state is not None:
                self._draw()              # the last state, whatever the refresh interval skipped
        elif sys.stderr.isatty():
            print(file=sys.stderr, flush=True)
