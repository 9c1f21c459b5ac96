"""Input shaping and block arithmetic shared by every algorithm: one place for each rule.

- sizes (what an array holds is :func:`daskpml.backend.nbytes`): :func:`even_split` (n into equal parts),
  :func:`block_rows` (row blocks of a target size, a multiple of the worker threads);
- row layout: :func:`check_row_chunked` (a dask array chunked along features is refused with the
  fix), :func:`as_row_chunks` (a vector in the row blocks of a matrix), :func:`as_points` (dense
  points, row-chunked);
- reductions: :func:`add` (the combine step) and :func:`tree_sum` (delayed parts summed up a tree
  of fan-in ``daskpml.optim.split-every``), :func:`tree_keys` (the same over raw graph keys),
  :func:`delayed_rows` and :func:`reduce_rows` (a function of every row block, summed);
- placement: :func:`is_small`, the rule under which a small in-memory problem runs in this
  process instead of paying task and round-trip costs on a cluster.

Core: knows no algorithm and no distributed container (the sparse layer builds on it).
"""

from __future__ import annotations

import math
import operator
from functools import reduce
from typing import Any

import dask.array as da
from dask import delayed

from . import _config
from .backend import is_sparse
from .runtime import distribute_rows, total_threads
from .validation import check_array

__all__ = ["add", "as_points", "as_row_chunks", "block_rows", "check_row_chunked", "delayed_rows", "even_split",
           "is_small", "reduce_rows", "tree_keys", "tree_sum"]


def even_split(n: int, parts: int) -> tuple[int, ...]:
    """``n`` items in ``parts`` (at most ``n``, at least 1) sizes differing by at most one.

    Examples
    --------
    >>> even_split(10, 3)
    (4, 3, 3)
    """
    parts = max(1, min(parts, n)) if n else 1
    base, extra = divmod(n, parts)
    return tuple(base + (i < extra) for i in range(parts))


def block_rows(n_rows: int, size: int, setting: str) -> tuple[int, ...]:
    """Row blocks of about ``daskpml.<setting>`` bytes each for ``size`` bytes of data, their
    number a multiple of the worker threads (every thread gets work in every round)."""
    threads = total_threads()
    parts = max(1, math.ceil(size / int(_config.get(setting))))
    return even_split(n_rows, min(n_rows, threads * math.ceil(parts / threads)))


def is_small(size: int, setting: str) -> bool:
    """Whether ``size`` bytes are at most ``daskpml.<setting>``: such problems run in this process
    (one block, a local scheduler), where task and round-trip costs would dominate on a cluster."""
    return int(size) <= int(_config.get(setting))


def check_row_chunked(X: Any, name: str = "X") -> Any:
    """``X`` itself; a dask array chunked along the features is refused, with the fix."""
    chunks = getattr(X, "chunks", None)
    if hasattr(X, "__dask_graph__") and chunks is not None and len(chunks) == 2 and len(chunks[1]) > 1:
        raise ValueError(
            f"{name} is chunked along the feature axis ({len(chunks[1])} column chunks); this needs whole "
            f"rows per chunk. Use {name}.rechunk({{1: {name}.shape[1]}})."
        )
    return X


def as_row_chunks(y: Any, chunks: tuple) -> da.Array:
    """``y`` as a dask array with the row ``chunks`` of a matrix (rechunked, or distributed)."""
    if isinstance(y, da.Array):
        return y.rechunk((chunks,)) if y.chunks[0] != chunks else y
    return distribute_rows(y, chunks)


def as_points(X: Any, name: str = "X") -> da.Array:
    """``X`` validated (dense, finite, 2-D) as a dask array chunked along rows only; in-memory
    points go in blocks of ``daskpml.graph.block-rows`` rows."""
    if is_sparse(X) or is_sparse(getattr(X, "_meta", None)):
        raise TypeError(f"{name} is sparse; this needs dense points ({name}.toarray()).")
    X = check_array(X, accept_sparse=False, name=name)
    if isinstance(X, da.Array):
        if len(X.chunks[1]) != 1:
            raise ValueError(
                f"{name} is chunked along the features ({len(X.chunks[1])} column chunks); this needs whole "
                f"rows in each block. Use {name}.rechunk({{1: {X.shape[1]}}})."
            )
        return X
    rows = max(1, min(X.shape[0], int(_config.get("graph.block-rows"))))
    return distribute_rows(X, rows)


def delayed_rows(A: Any) -> tuple[list, tuple]:
    """The delayed row blocks of ``A`` (a row-chunked dask array, rechunked to whole rows if
    needed, or a distributed CSR matrix) and their row counts."""
    if hasattr(A, "row_chunks"):                                    # a distributed CSR matrix
        return list(A.blocks.to_delayed()[:, 0]), A.row_chunks
    A = A.rechunk({1: -1}) if len(A.chunks[1]) > 1 else A
    return list(A.to_delayed()[:, 0]), A.chunks[0]


def reduce_rows(blocks: list, func: Any, *args: Any) -> Any:
    """``sum(func(block, *args) for block in blocks)`` as one delayed value, summed up a tree."""
    root, _ = tree_sum([delayed(func, pure=True)(b, *args) for b in blocks])
    return root


def add(*parts: Any) -> Any:
    """The sum of ``parts`` (arrays, sparse matrices or numbers): the combine step of every tree."""
    return reduce(operator.add, parts)


def tree_sum(parts: list, split_every: int | None = None) -> tuple[Any, int]:
    """Sum delayed values up a tree of fan-in ``split_every`` (``daskpml.optim.split-every``).

    Returns the root and the number of tree edges (messages between tasks, the root's delivery
    excluded).

    Parameters
    ----------
    parts : list of dask.delayed.Delayed
        Values to add.
    split_every : int, optional
        Fan-in of the tree (default ``daskpml.optim.split-every``).

    Returns
    -------
    root : dask.delayed.Delayed
        The sum.
    edges : int
        Messages between tasks (the root's delivery excluded).

    Examples
    --------
    >>> import dask
    >>> root, edges = tree_sum([dask.delayed(i) for i in range(10)], split_every=4)
    >>> root.compute(), edges
    (45, 13)
    """
    split_every = max(2, int(split_every or _config.get("optim.split-every")))
    edges = 0
    while len(parts) > 1:
        edges += len(parts)
        parts = [delayed(add, pure=True)(*parts[i:i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0], edges


def tree_keys(dsk: dict, name: str, keys: list, split_every: int | None = None, combine: Any = add) -> Any:
    """Add to the raw graph ``dsk`` a tree of ``combine`` tasks over ``keys`` (keys
    ``(name, level, i)``); returns the root's key."""
    split_every = max(2, int(split_every or _config.get("optim.split-every")))
    level = 0
    while len(keys) > 1:
        grouped = []
        for g in range(0, len(keys), split_every):
            key = (name, level, g)
            dsk[key] = (combine, *keys[g:g + split_every])
            grouped.append(key)
        keys, level = grouped, level + 1
    return keys[0]
