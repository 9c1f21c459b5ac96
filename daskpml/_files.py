"""File helpers shared by readers and writers: clear errors, atomic writes."""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from typing import Any, Iterator, Mapping

import numpy as np


class DataFormatError(ValueError):
    """A file's contents do not match the format its name (or the caller) says."""


#: the first bytes of the binary formats daskpml reads, and what they are
MAGIC = {b"PK\x03\x04": "a zip archive (.npz)", b"PK\x05\x06": "an empty zip archive (.npz)",
         b"\x1f\x8b": "gzip-compressed", b"\x93NUMPY": "a NumPy .npy array", b"%%Matrix": "Matrix Market (.mtx)",
         b"\x89HDF": "HDF5 / netCDF4", b"CDF": "netCDF3"}


def read_head(path: str, n: int = 64) -> bytes:
    """The first ``n`` bytes of a file."""
    with open(path, "rb") as f:
        return f.read(n)


def describe_head(head: bytes) -> str:
    """What a file starting with ``head`` looks like, in words ("a zip archive (.npz)", "text
    starting with 'x,y'", "an empty file", ...)."""
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of an unknown format"
    first = head.decode("utf-8", "replace").splitlines()[0][:40] if head.strip() else ""
    return f"text starting with {first!r}" if first else "an empty file"


def expect_magic(path: str, head: bytes, magic: tuple[bytes, ...], what: str) -> None:
    """Refuse a file named like ``what`` whose first bytes are none of ``magic``."""
    if not head.startswith(magic):
        raise DataFormatError(
            f"{path} is named like {what} but its contents are {describe_head(head)}. Rename it to "
            "match its contents, or convert it with `daskpml datasets convert IN OUT`."
        )


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


def temporary_name(path: str) -> str:
    """A name next to ``path`` for writing it before the rename: same folder (so the rename is
    atomic), same extension (writers that pick the format by the suffix see the right one)."""
    root, ext = os.path.splitext(path)
    return f"{root}.tmp-{os.getpid()}{ext}"


def check_writable(path: str | os.PathLike, what: str = "") -> str:
    """``path`` as a string, or an error naming the real path when it cannot be written: its
    folder is missing or not writable, it is a folder, or it exists and is read-only."""
    path = os.fspath(path)
    label = f"{what} {path}" if what else path
    if path == "":
        raise ValueError(f"{what or 'the output path'} is empty; give a file name.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {label}: it is a directory; give a file name inside it.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {label}: the folder {directory} does not exist; create it "
                                f"(mkdir -p {directory}) or write somewhere else.")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {label}: the folder {directory} is not writable (permission "
                              "denied); write somewhere else or fix its permissions.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(f"cannot write {label}: the file exists and is read-only; remove it, fix its "
                              "permissions or write somewhere else.")
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same resolved path, or the same inode (hard links,
    symbolic links, bind mounts)."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:                       # one of them does not exist (yet)
        return False


#: what a truncated or damaged archive raises while it is read
DAMAGED = (zipfile.BadZipFile, EOFError, zlib.error)


def damaged_file(path: str, what: str, err: BaseException) -> DataFormatError:
    """The error for a file of a known format that cannot be read to its end."""
    return DataFormatError(f"{path} is a damaged {what} ({type(err).__name__}: {err}); it may be truncated (an "
                           "interrupted write, copy or download). Write or copy it again.")


@contextlib.contextmanager
def open_npz(path: str | os.PathLike) -> Iterator[Any]:
    """``np.load(path)`` of a ``.npz`` archive (no pickles), with one clear error for a missing,
    empty, truncated or mislabelled file, also when a damaged member is read in the block."""
    path = check_readable(path)
    head = read_head(path)
    if not head:
        raise DataFormatError(f"{path} is an empty file (0 bytes), not a .npz archive; write it again "
                              "(numpy.savez or daskpml datasets ...).")
    expect_magic(path, head, (b"PK\x03\x04", b"PK\x05\x06"), "a .npz archive")
    # the file is opened here, not by np.load: np.load leaves its own handle open when the archive
    # turns out damaged (BadZipFile), and that leak surfaces later as a ResourceWarning
    with open(path, "rb") as fh:
        try:
            archive = np.load(fh, allow_pickle=False)
        except DAMAGED + (OSError, ValueError) as err:
            raise damaged_file(path, ".npz archive", err) from err
        with archive:
            try:
                yield archive
            except DAMAGED as err:
                raise damaged_file(path, ".npz archive", err) from err


def check_npy(path: str | os.PathLike) -> str:
    """``path`` of a readable, non-empty file that starts like a ``.npy`` array, or the error."""
    path = check_readable(path)
    head = read_head(path)
    if not head:
        raise DataFormatError(f"{path} is an empty file (0 bytes), not a .npy array; write it again (numpy.save).")
    expect_magic(path, head, (b"\x93NUMPY",), "a NumPy .npy array")
    return path


def load_npy(path: str | os.PathLike, **kwargs: Any) -> np.ndarray:
    """``np.load`` of a ``.npy`` array (no pickles), with one clear error for an empty,
    truncated or mislabelled file."""
    path = check_npy(path)
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except DAMAGED + (OSError, ValueError) as err:
        raise damaged_file(path, ".npy array", err) from err


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary name next to ``path``; rename it to ``path`` only if the block succeeds."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist.")
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Outputs:
    """The files one command writes, all or nothing.

    ``Outputs({"--out": "m.nc", "--history": "h.nc"}, inputs={"DATA": "d.npz"})`` checks, before
    any work, that every output can be written (its folder exists and is writable) and that no
    output is an input or another output (same resolved path or same inode). Inside ``with``,
    ``outputs["--out"]`` is a temporary name next to the final file; the temporary files are
    renamed to their final names only when the block ends without an error, after every one of
    them was written. On an error they are removed and no final file is touched.
    """

    def __init__(self, outputs: Mapping[str, str | os.PathLike | None],
                 inputs: Mapping[str, str | os.PathLike | None] | None = None) -> None:
        self.final = {name: os.fspath(p) for name, p in outputs.items() if p is not None}
        self.inputs = {name: os.fspath(p) for name, p in (inputs or {}).items() if p is not None}
        self.temporary = {name: temporary_name(p) for name, p in self.final.items()}
        self.check()

    def check(self) -> None:
        """Refuse outputs that would overwrite an input or each other, or cannot be written."""
        names = list(self.final)
        for i, name in enumerate(names):
            path = self.final[name]
            for input_name, source in self.inputs.items():
                if os.path.exists(source) and same_file(path, source):
                    raise ValueError(f"{name} {path} is the same file as the input {input_name} ({source}): "
                                     f"writing it would replace the input. Give {name} another file name.")
            for other in names[:i]:
                if same_file(path, self.final[other]):
                    raise ValueError(f"{other} and {name} both name {path}; give each output its own file.")
            check_writable(path, name)

    def __getitem__(self, name: str) -> str:
        return self.temporary[name]

    def __contains__(self, name: str) -> bool:
        return name in self.final

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, kind: type | None, *exc: object) -> None:
        try:
            if kind is None:
                missing = [n for n, t in self.temporary.items() if not os.path.exists(t)]
                if missing:
                    raise RuntimeError(f"internal error: {', '.join(missing)} was not written")
                for name, tmp in self.temporary.items():
                    os.replace(tmp, self.final[name])
        finally:
            for tmp in self.temporary.values():
                if os.path.exists(tmp):
                    os.remove(tmp)
