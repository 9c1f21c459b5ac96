"""Progress for iterative algorithms: a ``\\r``-updated line on a terminal, an HTML bar in a Jupyter
notebook, and without a terminal (a log file, CI, ``nohup``) a line every
``daskpml.progress-interval`` (5 s), the first and the last."""

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


def interval() -> float:
    """Seconds between progress lines when standard error is not a terminal."""
    from dask.utils import parse_timedelta

    return float(parse_timedelta(_config.get("progress-interval")))


class ProgressLine:
    """``update(iteration, max_iter, text)`` after each iteration, ``close()`` at the end.

    ``show``: True always shows it, False never, None follows ``daskpml.progress``. On a terminal
    the line is rewritten in place; in a notebook it is a bar; otherwise (a log) a line is printed
    at the first update, then every :func:`interval` seconds, and the last state at ``close``.
    """

    def __init__(self, show: bool | None = None) -> None:
        wanted = _config.get("progress") if show is None else show
        self.notebook = in_notebook()
        self.tty = sys.stderr.isatty()
        self.show = bool(wanted)
        self.every = interval()
        self._handle: Any = None
        self._last = 0.0
        self._state: tuple[int, int, str] | None = None
        self._printed: tuple[int, int, str] | None = None

    def update(self, iteration: int, max_iter: int, text: str) -> None:
        if not self.show:
            return
        if self.notebook:
            self._state = (iteration, max_iter, text)
            now = time.monotonic()
            if self._handle is None or now - self._last >= NOTEBOOK_REFRESH_S:
                self._draw()
                self._last = now
        elif self.tty:
            print("\r" + text, end="", file=sys.stderr, flush=True)
        else:
            self._state = (iteration, max_iter, text)
            now = time.monotonic()
            if self._printed is None or now - self._last >= self.every:
                print(text, file=sys.stderr, flush=True)
                self._printed, self._last = self._state, now

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
        elif self.tty:
            print(file=sys.stderr, flush=True)
        elif self._state is not None and self._state != self._printed:
            print(self._state[2], file=sys.stderr, flush=True)
            self._printed = self._state
