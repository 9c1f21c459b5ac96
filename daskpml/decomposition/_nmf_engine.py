"""The task graphs of one NMF iteration, over a p x q grid of blocks of ``A``.

State between iterations, all persisted where the tasks ran (never gathered):

* ``Wt_i`` (k x m_i), the transposed row blocks of ``W``, one per row block of ``A``;
* ``H_j`` (k x n_j), the column blocks of ``H`` (one block, replicated, in the row layout);
* ``G = H H^T`` (k x k).

**Row layout** (q = 1, the default): one task per row block reads ``A_i``
once, in cache-sized sub-blocks, and returns the new ``Wt_i`` with the
partial sums ``W_i^T A_i`` (k x n) and ``W_i^T W_i`` (k x k) (the fused kernel
:func:`~._nmf_kernels.update_rows`). The partial sums go up a tree (fan-in
``daskpml.optim.split-every``); one task updates ``H`` from them.

**Grid layout** (q > 1, for an ``H`` too large to replicate): ``H_j A_ij^T``
(k x m_i) is summed over j into the data term of ``W_i``; the new ``W_i``
meets every ``A_ij`` again for ``W_i^T A_ij`` (k x n_j), summed over i into
the data term of ``H_j``. A task holds one ``A_ij``, one ``H_j`` and one
``W_i``, so memory per worker stays bounded; ``A`` is read twice per
iteration instead of once.

Either way ``A`` never moves: only k x n_j, k x m_i and k x k partial sums and
a few numbers per iteration cross between tasks, and the client receives the
numbers (violation and the pieces of the error ``||A||^2 - 2 <W^T A, H> +
<W^T W, H H^T>``). One materialization point per iteration: the new state is
persisted and the numbers computed.
"""

from __future__ import annotations

import operator
from typing import Any

import dask
from dask.base import tokenize
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from .. import _config
from .._blocks import tree_keys
from . import _nmf_kernels as K


def _numbers(firsts: list, crosses: list, WtW: Any, G: Any) -> tuple[float, float, float]:
    """(sum of ``firsts``, sum of the cross terms ``<W^T A_j, H_j>``, ``<W^T W, H H^T>``)."""
    return float(sum(firsts)), float(sum(crosses)), float((WtW * G).sum())


def _columns(M: Any, lo: int, hi: int) -> Any:
    return M[:, lo:hi] if lo > 0 or hi < M.shape[1] else M


def _w_update(Wt: Any, R: Any, G: Any, solver: str, l1: float, l2: float,
              inner: tuple[int, float]) -> tuple[Any, Any, float]:
    """Grid layout: update ``Wt_i`` from its summed data term; also ``W_i^T W_i``."""
    Wt, violation = K.update_cols(Wt, R, G, solver, l1, l2, inner)
    return Wt, Wt @ Wt.T, violation


class Engine:
    """Builds and runs the graph of each iteration; keeps the persisted state."""

    def __init__(self, grid: Any, k: int, solver: str, reg: tuple[float, float, float, float], *,
                 sub_rows: int, inner: tuple[tuple[int, float], tuple[int, float]] = ((1, 0.0), (1, 0.0)),
                 h_parts: int = 1, split_every: int | None = None) -> None:
        self.grid = grid
        self.k, self.solver, self.reg, self.sub_rows = k, solver, reg, sub_rows
        self.inner_w, self.inner_h = inner
        self.p, self.q = grid.numblocks
        # Column blocks of H: the grid's; in the row layout H is whole for the row tasks but
        # updated in ``h_parts`` column blocks in parallel (its columns are independent).
        n = grid.shape[1]
        parts = max(1, min(int(h_parts), n)) if self.q == 1 else self.q
        self.h_cols = grid.chunks[1] if self.q > 1 else tuple(
            n // parts + (1 if j < n % parts else 0) for j in range(parts))
        self.h_bounds = np.concatenate([[0], np.cumsum(self.h_cols)]).astype(int)
        self.nh = len(self.h_cols)
        self.fan_in = max(2, int(split_every or _config.get("optim.split-every")))
        # deterministic names (dask's habit): the same inputs give the same keys
        self.token = tokenize(grid, k, solver, reg, sub_rows, inner, h_parts, self.fan_in)[:12]
        self.counter = 0
        self.Wt: list[Delayed] = []
        self.H: list[Delayed] = []
        self.G: Delayed | None = None
        self.itemsize = np.dtype(grid.dtype).itemsize

    # ------------------------------------------------------------------ helpers
    def _key(self, what: str) -> str:
        self.counter += 1
        return f"nmf-{what}-{self.token}-{self.counter}"

    def _a(self, i: int, j: int) -> tuple:
        return (self.grid.name, i, j)

    def _run(self, name: str, dsk: dict, states: list[tuple[list, list, Any]], numbers: list) -> list:
        """Persist the states ``(Wt keys, H keys, G key)`` of each iteration of ``dsk`` and
        return the numbers of each; the engine moves to the last state."""
        deps = [self.grid, *self.Wt, *self.H, *([self.G] if self.G is not None else [])]
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
        keys = [key for Wt, H, G in states for key in (*Wt, *H, G)] + list(numbers)
        persisted = iter(dask.persist(*[Delayed(key, graph, layer=name) for key in keys], optimize_graph=False))
        self.states = [([next(persisted) for _ in Wt], [next(persisted) for _ in H], next(persisted))
                       for Wt, H, G in states]
        values = dask.compute(*list(persisted))
        self.rewind(len(states) - 1)
        return list(values)

    def rewind(self, index: int) -> None:
        """Make the state after iteration ``index`` of the last round the current one (the later
        ones are dropped)."""
        self.Wt, self.H, self.G = self.states[index]
        self.states = self.states[:index + 1]

    # ------------------------------------------------------------------ phases
    def start(self, Wt: Any, H: Any) -> tuple[float, float, float]:
        """Take the initial factors, dask arrays ``Wt`` (k x m, chunked like A's rows) and ``H``
        (k x n, chunked like A's columns); return ``||A||^2`` and the cross and quadratic terms
        of the initial error (one pass over ``A``)."""
        self.token = tokenize(self.token, Wt, H)[:12]
        name = self._key("start")
        if Wt.chunks[1] != self.grid.chunks[0] or H.chunks[1] != self.h_cols:
            raise ValueError(f"initial factors are chunked {Wt.chunks} / {H.chunks}, expected "
                             f"{self.grid.chunks[0]} / {self.h_cols}.")
        self.Wt, self.H, self.G = [Wt, H], [], None      # dependencies of this graph only
        dsk: dict = {}
        # This layer's own keys alias the given blocks: the persisted state never depends on
        # collections that their owners may release.
        wt_keys, h_keys = [(name, "wt", i) for i in range(self.p)], [(name, "h", j) for j in range(self.nh)]
        for i, key in enumerate(wt_keys):
            dsk[key] = (Wt.name, 0, i)
        for j, key in enumerate(h_keys):
            dsk[key] = (H.name, 0, j)
        norms, wtw = [], []
        wta: dict = {j: [] for j in range(self.nh)}
        for i in range(self.p):
            for j in range(self.q):
                key = (name, "e", i, j)
                dsk[key] = (K.error_pieces, self._a(i, j), wt_keys[i], j == 0)
                dsk[(name, "wta", i, j)] = (operator.getitem, key, 0)
                dsk[(name, "n", i, j)] = (operator.getitem, key, 2)
                norms.append((name, "n", i, j))
                if self.q > 1:
                    wta[j].append((name, "wta", i, j))
                if j == 0:
                    dsk[(name, "wtw", i)] = (operator.getitem, key, 1)
                    wtw.append((name, "wtw", i))
            if self.q == 1:
                self._split_h(dsk, name, i, (name, "wta", i, 0), wta)
        sums = [tree_keys(dsk, f"{name}-wta{j}", wta[j], self.fan_in) for j in range(self.nh)]
        G, crosses = self._h_terms(dsk, name, h_keys, sums)
        WtW = tree_keys(dsk, f"{name}-wtw", wtw, self.fan_in)
        dsk[(name, "numbers")] = (_numbers, norms, crosses, WtW, G)
        return self._run(name, dsk, [(wt_keys, h_keys, G)], [(name, "numbers")])[0]

    def _split_h(self, dsk: dict, name: str, i: int, full: Any, wta: dict) -> None:
        """Row layout: the column pieces of row block i's ``W_i^T A_i`` (one per block of H)."""
        for j in range(self.nh):
            dsk[(name, "wta-part", i, j)] = (_columns, full, int(self.h_bounds[j]), int(self.h_bounds[j + 1]))
            wta[j].append((name, "wta-part", i, j))

    def _h_terms(self, dsk: dict, name: str, h_keys: list, sums: list) -> tuple[Any, list]:
        """``G = sum_j H_j H_j^T`` (tree) and the cross terms ``<W^T A_j, H_j>``."""
        grams, crosses = [], []
        for j in range(self.nh):
            dsk[(name, "ht", j)] = (K.h_terms, h_keys[j], sums[j])
            dsk[(name, "hg", j)] = (operator.getitem, (name, "ht", j), 0)
            dsk[(name, "hc", j)] = (operator.getitem, (name, "ht", j), 1)
            grams.append((name, "hg", j))
            crosses.append((name, "hc", j))
        return tree_keys(dsk, f"{name}-g", grams, self.fan_in), crosses

    def advance(self, count: int) -> list[tuple[float, float, float]]:
        """``count`` iterations in one task graph (one round trip); returns, for each,
        (violation, <W^T A, H>, <W^T W, H H^T>). The state after every one of them is kept
        (see :meth:`rewind`) so that a stop inside the round loses nothing."""
        name = self._key("iter")
        dsk: dict = {}
        state = ([b.key for b in self.Wt], [b.key for b in self.H], self.G.key)
        states, numbers = [], []
        for b in range(count):
            state, number = self._iteration(dsk, f"{name}-{b}", *state)
            states.append(state)
            numbers.append(number)
        return self._run(name, dsk, states, numbers)

    def _iteration(self, dsk: dict, name: str, Wt: list, H: list, G_old: Any) -> tuple[tuple, Any]:
        """Tasks of one iteration (W, then H) from the state keys ``Wt``, ``H``, ``G_old``."""
        l1w, l2w, l1h, l2h = self.reg
        violations: list = []
        wt_new, wtw = [], []
        wta: dict = {j: [] for j in range(self.nh)}
        if self.q == 1:
            for i in range(self.p):
                key = (name, "row", i)
                dsk[key] = (K.update_rows, self._a(i, 0), Wt[i], list(H), G_old, self.solver, l1w, l2w,
                            self.sub_rows, self.inner_w)
                for part, what in enumerate(("wt", "wta", "wtw", "v")):
                    dsk[(name, what, i)] = (operator.getitem, key, part)
                wt_new.append((name, "wt", i))
                self._split_h(dsk, name, i, (name, "wta", i), wta)
                wtw.append((name, "wtw", i))
                violations.append((name, "v", i))
        else:
            for i in range(self.p):
                parts = []
                for j in range(self.q):
                    dsk[(name, "p", i, j)] = (K.data_term, H[j], self._a(i, j))
                    parts.append((name, "p", i, j))
                R = tree_keys(dsk, f"{name}-r{i}", parts, self.fan_in)
                key = (name, "w", i)
                dsk[key] = (_w_update, Wt[i], R, G_old, self.solver, l1w, l2w, self.inner_w)
                for part, what in enumerate(("wt", "wtw", "v")):
                    dsk[(name, what, i)] = (operator.getitem, key, part)
                wt_new.append((name, "wt", i))
                wtw.append((name, "wtw", i))
                violations.append((name, "v", i))
                for j in range(self.q):
                    dsk[(name, "q", i, j)] = (K.left_product, (name, "wt", i), self._a(i, j))
                    wta[j].append((name, "q", i, j))
        WtW = tree_keys(dsk, f"{name}-wtw", wtw, self.fan_in)
        h_new, sums = [], []
        for j in range(self.nh):
            sums.append(tree_keys(dsk, f"{name}-wta{j}", wta[j], self.fan_in))
            key = (name, "h", j)
            dsk[key] = (K.update_cols, H[j], sums[j], WtW, self.solver, l1h, l2h, self.inner_h)
            dsk[(name, "hn", j)] = (operator.getitem, key, 0)
            dsk[(name, "hv", j)] = (operator.getitem, key, 1)
            h_new.append((name, "hn", j))
            violations.append((name, "hv", j))
        G, crosses = self._h_terms(dsk, name, h_new, sums)
        dsk[(name, "numbers")] = (_numbers, violations, crosses, WtW, G)
        return (wt_new, h_new, G), (name, "numbers")

    def bytes_per_iteration(self) -> int:
        """Bytes that cross between tasks in one iteration if every task ran on its own worker
        (an upper bound on the network traffic): factor blocks and partial sums, never ``A``."""
        k, m, n = self.k, self.grid.shape[0], self.grid.shape[1]
        p, q = self.p, self.q
        kk = k * k
        if q == 1:
            words = p * k * n + p * kk + p * (k * n + kk) + k * n + kk
        else:
            words = (p * k * n + q * k * m + k * m + p * kk + q * k * m + p * k * n + p * kk
                     + k * n + q * kk)
        return int(words * self.itemsize)
