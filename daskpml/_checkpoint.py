"""Checkpoints of iterative algorithms: blocks written by the tasks that hold them.

A checkpoint ``path`` is a directory::

    path/latest             name of the newest complete snapshot (written last, atomically)
    path/iter-000040/       one snapshot: state.json and one .npy file per block

Blocks are saved by tasks, where they live, so nothing large passes through
the client; on a multi-machine cluster ``path`` must be on storage that every
worker and the client can reach. A snapshot becomes ``latest`` only after all
its files are written, and older snapshots are removed after that, so an
interruption at any moment leaves the previous snapshot usable.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Mapping, Sequence

import dask
import numpy as np

from ._files import atomic_path
from .backend import asarray_like, to_numpy

LATEST = "latest"
STATE = "state.json"


def _save_block(block: Any, filename: str) -> int:
    np.save(filename, to_numpy(block))
    return 1


def _load_block(filename: str, like: Any) -> Any:
    return asarray_like(np.load(filename), like)


def save(path: str | os.PathLike, iteration: int, blocks: Mapping[str, Sequence[Any]],
         state: Mapping[str, Any]) -> str:
    """Write a snapshot of ``blocks`` (name -> delayed/persisted arrays) and ``state`` (JSON-able)."""
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    name = f"iter-{int(iteration):06d}"
    final = os.path.join(path, name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    writes = [dask.delayed(_save_block, pure=False)(block, os.path.join(tmp, f"{key}-{i}.npy"))
              for key, items in blocks.items() for i, block in enumerate(items)]
    dask.compute(*writes)
    counts = {key: len(items) for key, items in blocks.items()}
    with open(os.path.join(tmp, STATE), "w") as fh:
        json.dump({"iteration": int(iteration), "blocks": counts, **state}, fh)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    with atomic_path(os.path.join(path, LATEST)) as t:
        with open(t, "w") as fh:
            fh.write(name)
    for old in os.listdir(path):
        if old.startswith("iter-") and old != name:
            shutil.rmtree(os.path.join(path, old), ignore_errors=True)
    return final


def load(path: str | os.PathLike, like: Any) -> tuple[dict, dict[str, list]] | None:
    """The newest snapshot as ``(state, blocks)`` (blocks as delayed arrays like ``like``), or
    None when ``path`` holds none."""
    path = os.fspath(path)
    latest = os.path.join(path, LATEST)
    if not os.path.isfile(latest):
        return None
    with open(latest) as fh:
        directory = os.path.join(path, fh.read().strip())
    with open(os.path.join(directory, STATE)) as fh:
        state = json.load(fh)
    blocks = {key: [dask.delayed(_load_block, pure=True)(os.path.join(directory, f"{key}-{i}.npy"), like)
                    for i in range(count)]
              for key, count in state["blocks"].items()}
    return state, blocks
