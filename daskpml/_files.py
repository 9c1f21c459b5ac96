"""File helpers shared by readers and writers: clear errors, atomic writes."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


class DataFormatError(ValueError):
    """A file's contents do not match the format its name (or the caller) says."""


def check_readable(path: str | os.PathLike) -> str:
    """``path`` as a string, or FileNotFoundError / PermissionError that says what to fix."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: no such file. Check the path (relative paths start at {os.getcwd()})."
        )
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; give the path of a file inside it.")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path} cannot be read (permission denied); check its permissions (chmod +r).")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary name next to ``path``; rename it to ``path`` only if the block succeeds."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist.")
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp-{os.getpid()}{ext}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
