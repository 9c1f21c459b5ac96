"""Checkpoints of long iterative algorithms: one design for all of them.

Every iterative algorithm takes ``checkpoint=path`` (a directory), ``checkpoint_every=k``
and ``resume=True``, and drives a :class:`Checkpoint`::

    path/latest             name of the newest complete snapshot (written last, atomically)
    path/iter-000040/       one snapshot:
        manifest.json       format, algorithm, parameters, data, iteration, history, state
        arrays.npz          the small (O(model)) host arrays: weights, centres, optimizer state
        <name>-<i>.npy      blocks of the large distributed arrays (``.csr.npz`` for sparse
                            blocks), written by the tasks that hold them (nothing large
                            passes through the client)

Writes are atomic: a snapshot is built in ``iter-N.tmp`` and renamed, and ``latest`` is
replaced (write then rename) only after that, so an interruption at any moment leaves the
previous snapshot usable; older snapshots are removed afterwards. On a multi-machine cluster
``path`` must be on storage that every worker and the client reach.

A resume compares the manifest's algorithm, parameters and data description with the
current run and refuses with a message that names the first difference. Settings that only
say when to stop (``max_iter``, ``tol``) are not compared, so a run can be resumed for
longer.

The data themselves are compared through a *fingerprint* (:func:`block_fingerprint`), one
per block of every collection the algorithm names with :meth:`Checkpoint.watch`: the CRC-32
of up to 64 evenly spaced rows (their bytes, shape and dtype), and the sum and a
position-weighted sum of the row sums. Tasks compute it where the blocks live, once per run,
from the blocks the algorithm already holds in memory (never a second read of the file), and
only O(blocks) numbers reach the client. It detects another shape, dtype or chunking, any
change in a sampled row, and any change of the sums beyond rounding (labels flipped, rows
reordered, values scaled or shifted); it cannot detect a change confined to rows outside the
sample whose effect on both sums cancels out, or is below 1e-9 of the block's magnitude.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import dask
import numpy as np
import scipy.sparse

from ._files import DAMAGED, atomic_path, damaged_file, load_npy
from .backend import asarray_like, get_namespace, is_sparse, to_numpy

FORMAT = 1
LATEST = "latest"
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


#: rows of each block whose bytes enter the fingerprint
FINGERPRINT_ROWS = 64
#: relative tolerance of the fingerprint's sums (they may round differently on another machine)
FINGERPRINT_RTOL = 1e-9


class CheckpointError(ValueError):
    """A checkpoint cannot be used: damaged, or written for other data or settings."""


def block_fingerprint(block: Any) -> list:
    """``[rows, crc32 of sampled rows, sum, weighted sum, scale]`` of one dense or sparse block
    (1-D or 2-D), computed where the block lives; see the module docstring."""
    xp, _ = get_namespace(block)
    rows = int(block.shape[0])
    index = np.unique(np.linspace(0, max(rows - 1, 0), min(rows, FINGERPRINT_ROWS)).astype(np.int64))
    sample = to_numpy(block[xp.asarray(index)] if rows else block)
    crc = zlib.crc32(repr((tuple(block.shape), str(block.dtype))).encode())
    if is_sparse(sample):
        sample = scipy.sparse.csr_matrix(sample)
        parts = (sample.indptr, sample.indices, sample.data)
        row_sums = block.sum(axis=1)
    else:
        parts = (np.ascontiguousarray(sample),)
        row_sums = block.reshape(rows, -1).sum(axis=1) if block.ndim > 1 else block
    for part in parts:
        crc = zlib.crc32(np.ascontiguousarray(part).tobytes(), crc)
    row_sums = to_numpy(xp.asarray(row_sums, dtype=xp.float64).ravel()) if rows else np.zeros(0)
    weights = 1.0 + (np.arange(rows) % 97) / 97.0
    return [rows, int(crc), float(row_sums.sum()), float(weights @ row_sums), float(np.abs(row_sums).sum())]


def _fingerprint_tasks(collection: Any) -> tuple[list, list]:
    """(block labels, delayed fingerprints) of a dask array or CSRMatrix, of a list of delayed
    blocks or futures, or of an in-memory array (one block, fingerprinted here)."""
    if isinstance(collection, (list, tuple)):
        return [(i,) for i in range(len(collection))], [dask.delayed(block_fingerprint, pure=True)(b)
                                                         for b in collection]
    blocks = getattr(collection, "blocks", None) if hasattr(collection, "row_offsets") else None
    array = blocks if blocks is not None else collection
    if not dask.is_dask_collection(array):
        return [(0,)], [block_fingerprint(array)]
    delayed = array.to_delayed()
    labels = [tuple(int(i) for i in idx) for idx in np.ndindex(delayed.shape)]
    return labels, [dask.delayed(block_fingerprint, pure=True)(delayed[idx]) for idx in labels]


def _same_fingerprint(old: Sequence, new: Sequence) -> str:
    """Empty when two block fingerprints agree, else what differs."""
    if int(old[0]) != int(new[0]):
        return f"it has {new[0]} rows, not {old[0]}"
    if int(old[1]) != int(new[1]):
        return "its sampled rows differ"
    tol = FINGERPRINT_RTOL * max(float(old[4]), float(new[4]), 1e-300)
    if abs(float(old[2]) - float(new[2])) > tol or abs(float(old[3]) - float(new[3])) > tol:
        return "its sums differ"
    return ""


def start_over(path: str) -> str:
    """The fix for a checkpoint that cannot be used."""
    return f"Remove {path} (or pass resume=False) to start over."


def _save_block(block: Any, filename: str) -> int:
    """Write one block: ``filename.npy`` for dense, ``filename.csr.npz`` for sparse ones."""
    host = to_numpy(block)
    if is_sparse(host):
        scipy.sparse.save_npz(filename + ".csr.npz", scipy.sparse.csr_matrix(host), compressed=False)
    else:
        np.save(filename + ".npy", host)
    return 1


def _load_block(filename: str, like: Any) -> Any:
    """A block written by :func:`_save_block`, on the backend of ``like``."""
    if os.path.exists(filename + ".csr.npz"):
        _, xsp = get_namespace(like)
        try:
            host = scipy.sparse.load_npz(filename + ".csr.npz")
        except DAMAGED + (OSError, ValueError, KeyError) as err:
            raise CheckpointError(f"{damaged_file(filename + '.csr.npz', 'checkpoint block', err)} "
                                  f"{start_over(os.path.dirname(os.path.dirname(filename)))}") from err
        return host if xsp is scipy.sparse else xsp.csr_matrix(host)
    try:
        return asarray_like(load_npy(filename + ".npy"), like)
    except ValueError as err:
        raise CheckpointError(f"{err} {start_over(os.path.dirname(os.path.dirname(filename)))}") from err


def _jsonable(value: Any) -> Any:
    """Parameters as JSON sees them (tuples become lists, NumPy scalars plain numbers)."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


@dataclass
class Snapshot:
    """A restored snapshot: ``iteration``, host ``arrays``, ``blocks`` (name -> delayed
    blocks like the run's arrays), ``history`` (column -> list) and solver ``state``."""

    iteration: int
    arrays: dict[str, np.ndarray]
    blocks: dict[str, list]
    history: dict[str, list]
    state: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """The history as a list of row dicts."""
        keys = list(self.history)
        return [dict(zip(keys, values)) for values in zip(*(self.history[k] for k in keys))]


class Checkpoint:
    """The snapshots of one run of ``algorithm``.

    Parameters
    ----------
    path : directory, or None for no checkpoints (every method is then a no-op)
    algorithm : the algorithm's name, recorded and compared on resume
    params : JSON-able settings that change the result, compared on resume
    data : JSON-able description of the data (shape, dtype, chunks), compared on resume
    every : snapshot every ``every`` iterations (and at the end)
    resume : continue from the newest snapshot in ``path`` (from the start if it has none)
    """

    def __init__(self, path: str | os.PathLike | None, algorithm: str = "", params: Mapping[str, Any] | None = None,
                 data: Mapping[str, Any] | None = None, *, every: int = 10, resume: bool = False) -> None:
        if resume and path is None:
            raise ValueError("resume=True needs checkpoint='path' (the directory of the snapshots).")
        if int(every) < 1:
            raise ValueError(f"checkpoint_every must be a positive number of iterations, got {every}.")
        self.path = None if path is None else os.fspath(path)
        self.every = int(every)
        self.resume = bool(resume)
        self.describe(algorithm, params, data)
        self._watched: dict[str, Any] = {}
        self._fingerprint: dict[str, list] | None = None

    def watch(self, **collections: Any) -> Checkpoint:
        """Name the data whose fingerprint (:func:`block_fingerprint`, per block) the snapshots
        record and a resume compares: dask arrays, CSRMatrix or in-memory arrays."""
        self._watched = {k: v for k, v in collections.items() if v is not None}
        self._fingerprint = None
        return self

    def fingerprint(self) -> dict[str, list]:
        """``{name: [[block index, fingerprint], ...]}`` of the watched data, computed once (one
        task per block, where it lives)."""
        if self._fingerprint is None:
            labels, tasks = {}, {}
            for name, collection in self._watched.items():
                labels[name], tasks[name] = _fingerprint_tasks(collection)
            (values,) = dask.compute(tasks) if tasks else ({},)
            self._fingerprint = {name: [[list(label), list(fp)] for label, fp in zip(labels[name], values[name])]
                                 for name in labels}
        return self._fingerprint

    def describe(self, algorithm: str, params: Mapping[str, Any] | None = None,
                 data: Mapping[str, Any] | None = None) -> Checkpoint:
        """Set what a resume compares (for solvers that learn it only after the
        checkpoint was made)."""
        self.algorithm = algorithm
        self.params = _jsonable(dict(params or {}))
        self.data = _jsonable(dict(data or {}))
        return self

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def due(self, iteration: int, final: bool = False) -> bool:
        """Whether iteration ``iteration`` should be saved (``final``: the last one)."""
        return self.enabled and (final or int(iteration) % self.every == 0)

    # -- writing ---------------------------------------------------------------------------
    def save(self, iteration: int, *, arrays: Mapping[str, Any] | None = None,
             blocks: Mapping[str, Sequence[Any]] | None = None, history: Mapping[str, Sequence] | None = None,
             state: Mapping[str, Any] | None = None) -> str | None:
        """Write one snapshot; ``blocks`` (name -> delayed/persisted arrays) are written by
        tasks where they live, ``arrays`` (small, host or device) from here."""
        if not self.enabled:
            return None
        os.makedirs(self.path, exist_ok=True)
        name = f"iter-{int(iteration):06d}"
        final = os.path.join(self.path, name)
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        blocks = dict(blocks or {})
        writes = [dask.delayed(_save_block, pure=False)(block, os.path.join(tmp, f"{key}-{i}"))
                  for key, items in blocks.items() for i, block in enumerate(items)]
        if writes:
            dask.compute(*writes)
        np.savez(os.path.join(tmp, ARRAYS), **{k: to_numpy(v) for k, v in (arrays or {}).items()})
        manifest = {"format": FORMAT, "algorithm": self.algorithm, "params": self.params, "data": self.data,
                    "fingerprint": self.fingerprint() if self._watched else {},
                    "iteration": int(iteration), "blocks": {k: len(v) for k, v in blocks.items()},
                    "history": _jsonable({k: list(v) for k, v in (history or {}).items()}),
                    "state": _jsonable(dict(state or {}))}
        with open(os.path.join(tmp, MANIFEST), "w") as fh:
            json.dump(_jsonable(manifest), fh)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        with atomic_path(os.path.join(self.path, LATEST)) as t:
            with open(t, "w") as fh:
                fh.write(name)
        for old in os.listdir(self.path):
            if old.startswith("iter-") and old != name:
                shutil.rmtree(os.path.join(self.path, old), ignore_errors=True)
        return final

    # -- reading ---------------------------------------------------------------------------
    def restore(self, like: Any = None) -> Snapshot | None:
        """The newest snapshot when resuming (None when not resuming or when ``path`` holds
        none); refuses one written by another algorithm, other settings or other data."""
        if not (self.enabled and self.resume):
            return None
        manifest, directory = read_manifest(self.path)
        if manifest is None:
            return None
        where = f"the checkpoint in {self.path}"
        fix = ("Resume with the same data and settings, use another checkpoint path, "
               "or pass resume=False to start over.")
        if manifest.get("format") != FORMAT:
            raise CheckpointError(f"{where} has format {manifest.get('format')!r}; this daskpml reads format "
                                  f"{FORMAT}. {fix}")
        if manifest.get("algorithm") != self.algorithm:
            raise CheckpointError(f"{where} was written by {manifest.get('algorithm')}, not {self.algorithm}. {fix}")
        for section in ("data", "params"):
            old, new = manifest.get(section, {}), getattr(self, section)
            for key in list(new) + [k for k in old if k not in new]:
                if old.get(key) != new.get(key):
                    raise CheckpointError(f"{where} was written for {key}={old.get(key)!r} ({section}), but this "
                                          f"run has {key}={new.get(key)!r}. {fix}")
        self._compare_fingerprint(manifest.get("fingerprint") or {}, where, fix)
        try:
            with np.load(os.path.join(directory, ARRAYS)) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"{where}: {os.path.join(directory, ARRAYS)} is damaged ({err}); the snapshot "
                                  f"cannot be used. {start_over(self.path)}") from err
        blocks = {key: [dask.delayed(_load_block, pure=True)(os.path.join(directory, f"{key}-{i}"), like)
                        for i in range(count)]
                  for key, count in manifest["blocks"].items()}
        return Snapshot(int(manifest["iteration"]), arrays, blocks, manifest["history"], manifest["state"])

    def _compare_fingerprint(self, recorded: Mapping[str, list], where: str, fix: str) -> None:
        """Refuse data whose fingerprint differs from the one the snapshot recorded, naming the
        first block that differs."""
        if not (recorded and self._watched):
            return
        current = self.fingerprint()
        for name, blocks in recorded.items():
            if name not in current:
                continue
            now = dict((tuple(label), fp) for label, fp in current[name])
            for label, old in blocks:
                label = tuple(label)
                new = now.get(label)
                why = "it is missing" if new is None else _same_fingerprint(old, new)
                if why:
                    block = label if len(label) > 1 else label[0]
                    raise CheckpointError(f"{where} was written for other data: block {block} of {name} differs "
                                          f"from the data it was written for ({why}). {fix}")


def read_manifest(path: str | os.PathLike) -> tuple[dict | None, str]:
    """The newest snapshot's manifest and directory (``(None, "")`` when there is none);
    :class:`CheckpointError` naming the file when the checkpoint is damaged."""
    path = os.fspath(path)
    latest = os.path.join(path, LATEST)
    if not os.path.isfile(latest):
        return None, ""
    fix = start_over(path)
    with open(latest) as fh:
        name = fh.read().strip()
    directory = os.path.join(path, name)
    manifest = os.path.join(directory, MANIFEST)
    if not name or not os.path.isfile(manifest):
        raise CheckpointError(f"the checkpoint in {path} is damaged: {latest} names the snapshot {name!r}, but "
                              f"{manifest} does not exist (was the folder copied in part or edited?). {fix}")
    try:
        with open(manifest) as fh:
            data = json.load(fh)
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"the checkpoint in {path} is damaged: {manifest} is not valid JSON ({err}). "
                              f"{fix}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"the checkpoint in {path} is damaged: {manifest} does not hold a manifest. "
                              f"{fix}")
    return data, directory


def recorded_seed(path: str | os.PathLike | None, algorithm: str, random_state: Any,
                  section: str = "params") -> Any:
    """The seed a resume must draw with: ``random_state`` when one is given, else the ``seed``
    that the newest snapshot of ``algorithm`` in ``path`` recorded (in its ``section``), else
    None. A run started with ``random_state=None`` drew a fresh seed, which a resume cannot
    know otherwise."""
    if random_state is not None or path is None:
        return random_state
    manifest, _ = read_manifest(path)
    if manifest is None or manifest.get("algorithm") != algorithm:
        return None
    return manifest[section].get("seed")


def history_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Rows (dicts) as columns, for :meth:`Checkpoint.save`; a key missing in a row is NaN."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return {k: [row.get(k, np.nan) for row in rows] for k in keys}
