"""A progress line for iterative algorithms on the console (``\\r``-updated on a terminal; in
logs, the first line and one every twentieth of the run)."""

from __future__ import annotations

import sys

from . import _config


class ProgressLine:
    """``update(iteration, max_iter, text)`` after each iteration, ``close()`` at the end.

    ``show``: True always shows it, False never, None follows ``daskpml.progress`` and shows it
    only on a terminal.
    """

    def __init__(self, show: bool | None = None) -> None:
        wanted = _config.get("progress", True) if show is None else show
        self.show = bool(wanted) and (show is True or sys.stderr.isatty())

    def update(self, iteration: int, max_iter: int, text: str) -> None:
        if not self.show:
            return
        if sys.stderr.isatty():
            print("\r" + text, end="", file=sys.stderr, flush=True)
        elif iteration == 1 or iteration % max(1, max_iter // 20) == 0:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.show and sys.stderr.isatty():
            print(file=sys.stderr, flush=True)
