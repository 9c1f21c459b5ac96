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
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import dask
import numpy as np
import scipy.sparse

from ._files import atomic_path
from .backend import asarray_like, get_namespace, is_sparse, to_numpy

FORMAT = 1
LATEST = "latest"
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


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
        host = scipy.sparse.load_npz(filename + ".csr.npz")
        return host if xsp is scipy.sparse else xsp.csr_matrix(host)
    return asarray_like(np.load(filename + ".npy"), like)


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
                    "iteration": int(iteration), "blocks": {k: len(v) for k, v in blocks.items()},
                    "history": _jsonable({k: list(v) for k, v in (history or {}).items()}),
                    "state": _jsonable(dict(state or {}))}
        with open(os.path.join(tmp, MANIFEST), "w") as fh:
            json.dump(manifest, fh)
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
            raise ValueError(f"{where} has format {manifest.get('format')!r}; this daskpml reads format "
                             f"{FORMAT}. {fix}")
        if manifest["algorithm"] != self.algorithm:
            raise ValueError(f"{where} was written by {manifest['algorithm']}, not {self.algorithm}. {fix}")
        for section in ("data", "params"):
            old, new = manifest[section], getattr(self, section)
            for key in list(new) + [k for k in old if k not in new]:
                if old.get(key) != new.get(key):
                    raise ValueError(f"{where} was written for {key}={old.get(key)!r} ({section}), but this "
                                     f"run has {key}={new.get(key)!r}. {fix}")
        with np.load(os.path.join(directory, ARRAYS)) as npz:
            arrays = {k: npz[k] for k in npz.files}
        blocks = {key: [dask.delayed(_load_block, pure=True)(os.path.join(directory, f"{key}-{i}"), like)
                        for i in range(count)]
                  for key, count in manifest["blocks"].items()}
        return Snapshot(int(manifest["iteration"]), arrays, blocks, manifest["history"], manifest["state"])


def read_manifest(path: str | os.PathLike) -> tuple[dict | None, str]:
    """The newest snapshot's manifest and directory (``(None, "")`` when there is none)."""
    path = os.fspath(path)
    latest = os.path.join(path, LATEST)
    if not os.path.isfile(latest):
        return None, ""
    with open(latest) as fh:
        directory = os.path.join(path, fh.read().strip())
    with open(os.path.join(directory, MANIFEST)) as fh:
        return json.load(fh), directory


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
