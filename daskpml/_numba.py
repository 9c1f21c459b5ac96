"""numba's ``njit`` with daskpml's kernels cached in a per-user folder, never in the package.

numba caches compiled kernels next to their source by default. For an installed daskpml that is
``site-packages/daskpml/*/__pycache__``, which ``pip uninstall`` leaves behind (the files are not
in the install record): the leftover folders then make ``daskpml`` a namespace package that
shadows a later editable install. The kernels here are cached in
:func:`numba_cache_dir` instead (``daskpml.numba-cache-dir``, default the platform's user cache
folder), unless ``NUMBA_CACHE_DIR`` names one. Every process that compiles (the client, each
worker) imports the kernels through this module, so the setting holds for all of them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, Callable

from . import _config


def numba_cache_dir() -> str:
    """The folder of daskpml's compiled numba kernels (created if needed): ``NUMBA_CACHE_DIR``,
    else ``daskpml.numba-cache-dir``, else the user cache folder (``$XDG_CACHE_HOME`` or
    ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows) plus
    ``daskpml/numba``; a temporary folder when that cannot be written.

    Returns
    -------
    path : str
        The folder of the compiled kernels.

    Examples
    --------
    >>> isinstance(numba_cache_dir(), str)
    True
    """
    chosen = os.environ.get("NUMBA_CACHE_DIR") or _config.get("numba-cache-dir")
    if not chosen:
        if sys.platform == "darwin":
            base = os.path.expanduser("~/Library/Caches")
        elif os.name == "nt":
            base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
        else:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        chosen = os.path.join(base, "daskpml", "numba")
    for folder in (chosen, os.path.join(tempfile.gettempdir(), f"daskpml-numba-{os.getuid() if hasattr(os, 'getuid') else 0}")):
        try:
            os.makedirs(folder, exist_ok=True)
            if os.access(folder, os.W_OK | os.X_OK):
                return folder
        except OSError:
            continue
    return chosen


_configured = False


def _configure() -> None:
    global _configured
    if _configured:
        return
    import numba

    numba.config.CACHE_DIR = numba_cache_dir()       # read when each kernel's cache is set up
    _configured = True


def njit(*args: Any, **kwargs: Any) -> Callable:
    """``numba.njit`` (same arguments), with ``cache=True`` kernels cached in :func:`numba_cache_dir`."""
    _configure()
    import numba

    return numba.njit(*args, **kwargs)
