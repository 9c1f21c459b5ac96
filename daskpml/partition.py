"""Graph partitions with owned nodes, halo (ghost) nodes and the index lists of a halo exchange.

A partition ``p`` owns some nodes. Message passing at an owned node ``i`` reads its
neighbours, the columns of row ``i`` of the adjacency (``A[i, j]``: ``i`` reads from ``j``).
Neighbours owned by other partitions are the *halo* of ``p``: read-only copies whose rows
(features, activations) are received from their owners before each layer, and whose
gradients are sent back to them after it.

Local numbering of partition ``p``: its owned nodes are ``0 .. n_owned - 1`` (in increasing
global id), its halo nodes follow (``n_owned .. n_owned + n_halo - 1``, grouped by owner,
then by global id). ``adjacency`` is the owned rows of ``A`` over those local columns.

Exchange lists, for every pair of partitions ``p`` and ``q`` that share a boundary:

* ``p.recv[q]``: the local halo positions (``0 .. n_halo - 1``) of ``p`` filled from ``q``;
* ``q.send[p]``: the local owned indices of ``q`` whose rows ``p`` needs, in the same order,
  so that ``halo_rows_of_p[p.recv[q]] = rows_of_q[q.send[p]]``.

Partitioning needs the graph's structure in one process (as METIS does): the adjacency is
brought to the host once; the local adjacencies are returned on the input's backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import xarray as xr
from scipy.sparse import csgraph

from .backend import get_namespace, is_sparse, to_numpy
from .validation import check_graph

Method = Literal["contiguous", "bfs", "spectral", "metis"]
METHODS = ("contiguous", "bfs", "spectral", "metis")

__all__ = ["GraphPartition", "Partitioning", "partition_graph", "METHODS"]


@dataclass(frozen=True)
class GraphPartition:
    """One partition: see the module's documentation for the numbering.

    Parameters
    ----------
    part : int
        Index of the partition.
    owned : numpy.ndarray
        Global indices of the nodes this partition owns.
    halo : numpy.ndarray
        Global indices of the neighbours it reads from other partitions.
    halo_owner : numpy.ndarray
        The partition that owns each halo node.
    adjacency : sparse matrix
        Rows of the owned nodes over the columns owned + halo.
    recv : dict
        Partition -> positions in the halo it sends here.
    send : dict
        Partition -> local rows it needs from here.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> p = partition_graph(sp.csr_matrix([[0, 1.0], [1.0, 0]]), 2, method="contiguous")
    >>> isinstance(p.parts[0], GraphPartition)
    True
    """

    part: int
    owned: np.ndarray                  # global ids of the owned nodes, increasing
    halo: np.ndarray                   # global ids of the halo nodes, grouped by owner
    halo_owner: np.ndarray             # the partition that owns each halo node
    adjacency: Any                     # CSR, n_owned x (n_owned + n_halo), local columns
    recv: dict = field(repr=False)     # q -> halo positions received from q
    send: dict = field(repr=False)     # q -> owned local indices sent to q

    @property
    def n_owned(self) -> int:
        return int(self.owned.shape[0])

    @property
    def n_halo(self) -> int:
        return int(self.halo.shape[0])

    @property
    def nodes(self) -> np.ndarray:
        """Global ids of the local columns: owned, then halo."""
        return np.concatenate([self.owned, self.halo])


@dataclass(frozen=True)
class Partitioning:
    """What :func:`partition_graph` returns.

    Parameters
    ----------
    parts : list of GraphPartition
        The partitions, in order.
    assignment : numpy.ndarray
        The partition of every node (global id -> part).
    stats : xarray.Dataset
        Over ``part``: owned, halo, send, recv, edges, cut_edges; ``attrs``: edge_cut (stored
        entries of ``A`` between partitions), edge_cut_fraction, balance (largest owned count
        over the mean), method, n_parts.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> p = partition_graph(sp.identity(4, format="csr"), 2, method="contiguous")
    >>> isinstance(p, Partitioning), p.n_parts
    (True, 2)
    """

    parts: list
    assignment: np.ndarray
    stats: xr.Dataset

    @property
    def n_parts(self) -> int:
        return len(self.parts)

    def __len__(self) -> int:
        return len(self.parts)

    def __iter__(self):
        return iter(self.parts)

    def __getitem__(self, p: int) -> GraphPartition:
        return self.parts[p]


# ---------------------------------------------------------------- assignments


def _even_cut(order: np.ndarray, n_parts: int) -> np.ndarray:
    """Cut a node order into ``n_parts`` consecutive pieces of sizes differing by at most one."""
    n = order.shape[0]
    bounds = (np.arange(n_parts + 1) * n) // n_parts
    assignment = np.empty(n, dtype=np.int64)
    for p in range(n_parts):
        assignment[order[bounds[p]:bounds[p + 1]]] = p
    return assignment


def _pseudo_peripheral(S: sp.csr_matrix, start: int) -> int:
    """A node far from the others in its component (repeated BFS, as George & Liu)."""
    node, depth = start, -1
    for _ in range(8):
        levels = csgraph.shortest_path(S, indices=node, unweighted=True, directed=False)
        levels[~np.isfinite(levels)] = -1
        far = int(np.argmax(levels))
        if levels[far] <= depth:
            break
        node, depth = far, levels[far]
    return node


def _bfs_order(S: sp.csr_matrix) -> np.ndarray:
    """Nodes in breadth-first order from a pseudo-peripheral node of each component
    (largest component first), so that consecutive pieces are connected and compact.

    The graph is permuted once so that each component is a contiguous range (ids kept in
    order inside it); each search then runs on its component's submatrix alone, so many
    small components cost no more than one large one."""
    n_comp, comp = csgraph.connected_components(S, directed=False)
    sizes = np.bincount(comp, minlength=n_comp)
    perm = np.argsort(comp, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    if n_comp > 1:
        S = S[perm][:, perm]
    pieces = []
    for c in np.argsort(-sizes, kind="stable"):
        lo, hi = starts[c], starts[c + 1]
        if hi - lo == 1:
            pieces.append(perm[lo:hi])
            continue
        sub = S[lo:hi, lo:hi]
        root = _pseudo_peripheral(sub, 0)
        pieces.append(perm[lo + csgraph.breadth_first_order(sub, root, directed=False, return_predecessors=False)])
    return np.concatenate(pieces)


def _fiedler_order(S: sp.csr_matrix, seed: int) -> np.ndarray:
    """The nodes of a connected graph sorted by the Fiedler vector of its normalized Laplacian."""
    n = S.shape[0]
    if n <= 2:
        return np.arange(n)
    L = csgraph.laplacian(S.astype(np.float64), normed=True)
    if n < 300:
        _, vecs = np.linalg.eigh(L.toarray())
        fiedler = vecs[:, 1]
    else:
        from scipy.sparse.linalg import eigsh

        # largest eigenpairs of 2I - L are the smallest of L (faster to converge)
        v0 = np.random.default_rng(seed).random(n)
        _, vecs = eigsh(2.0 * sp.identity(n, format="csr") - L, k=2, which="LA", v0=v0, tol=1e-6)
        fiedler = vecs[:, 0]
    fiedler = fiedler * np.sign(fiedler[np.argmax(np.abs(fiedler))])   # a deterministic sign
    return np.argsort(fiedler, kind="stable")


def _spectral_assignment(S: sp.csr_matrix, n_parts: int, seed: int) -> np.ndarray:
    """Recursive spectral bisection: each node set is split in two pieces sized in proportion
    to the partitions they will hold, along the Fiedler vector of its induced subgraph (whole
    components first where the set is disconnected)."""
    assignment = np.empty(S.shape[0], dtype=np.int64)
    stack = [(np.arange(S.shape[0]), 0, n_parts)]
    while stack:
        nodes, first, count = stack.pop()
        if count == 1:
            assignment[nodes] = first
            continue
        left_parts = count // 2
        n_left = (nodes.shape[0] * left_parts) // count
        sub = S[nodes][:, nodes]
        n_comp, comp = csgraph.connected_components(sub, directed=False)
        if n_comp > 1:
            # components by size, the largest split along its own Fiedler vector
            sizes = np.bincount(comp)
            big = int(np.argmax(sizes))
            inside = np.flatnonzero(comp == big)
            order_big = inside[_fiedler_order(sub[inside][:, inside], seed)]
            rest = np.flatnonzero(comp != big)
            rest = rest[np.argsort(comp[rest], kind="stable")]
            order = np.concatenate([order_big, rest])
        else:
            order = _fiedler_order(sub, seed)
        stack.append((nodes[order[:n_left]], first, left_parts))
        stack.append((nodes[order[n_left:]], first + left_parts, count - left_parts))
    return assignment


def _metis_assignment(S: sp.csr_matrix, n_parts: int, seed: int) -> np.ndarray:
    try:
        import pymetis
    except ImportError:
        raise ImportError(
            "method='metis' needs pymetis: pip install pymetis (or daskpml[metis]); "
            "method='bfs' or 'spectral' need nothing more."
        ) from None
    S = S.tocsr()
    S.setdiag(0)
    S.eliminate_zeros()
    options = pymetis.Options(seed=int(seed))
    graph = pymetis.CSRAdjacency(S.indptr.astype(np.int32), S.indices.astype(np.int32))
    _, membership = pymetis.part_graph(n_parts, adjacency=graph, options=options)
    return np.asarray(membership, dtype=np.int64)


def _edge_cut(S: sp.csr_matrix, assignment: np.ndarray) -> int:
    coo = S.tocoo()
    return int((assignment[coo.row] != assignment[coo.col]).sum())


def _refine(S: sp.csr_matrix, assignment: np.ndarray, n_parts: int, rounds: int) -> np.ndarray:
    """Balanced boundary refinement: each round, every node finds the partition holding most
    of its neighbours; for each pair of partitions, equal numbers of nodes that gain by
    moving across are swapped (largest gains first), so sizes never change. Returns the
    assignment with the fewest cut edges seen."""
    n = S.shape[0]
    rows = np.arange(n)
    best, best_cut = assignment.copy(), _edge_cut(S, assignment)
    a = assignment.copy()
    for _ in range(rounds):
        onehot = sp.csr_matrix((np.ones(n), (rows, a)), shape=(n, n_parts))
        counts = (S @ onehot).toarray()
        own = counts[rows, a].copy()
        counts[rows, a] = -1
        target = counts.argmax(axis=1)
        gain = counts[rows, target] - own
        moved = False
        for p in range(n_parts):
            for q in range(p + 1, n_parts):
                out = np.flatnonzero((a == p) & (target == q) & (gain > 0))
                back = np.flatnonzero((a == q) & (target == p) & (gain > 0))
                m = min(out.shape[0], back.shape[0])
                if m:
                    a[out[np.argsort(-gain[out], kind="stable")[:m]]] = q
                    a[back[np.argsort(-gain[back], kind="stable")[:m]]] = p
                    moved = True
        if not moved:
            break
        c = _edge_cut(S, a)
        if c < best_cut:
            best, best_cut = a.copy(), c
    return best


# ---------------------------------------------------------------- partitions


def _to_host_csr(A: Any) -> tuple[sp.csr_matrix, Any]:
    """The adjacency as a host SciPy CSR matrix, and the sparse module of the input's backend."""
    if hasattr(A, "compute"):
        A = A.compute()
    _, xsp = get_namespace(A)
    if not is_sparse(A):
        A = xsp.csr_matrix(A)
    return sp.csr_matrix(to_numpy(A)), xsp


def _build(H: sp.csr_matrix, assignment: np.ndarray, n_parts: int, xsp: Any) -> list:
    n = H.shape[0]
    owned_lists = [np.flatnonzero(assignment == p) for p in range(n_parts)]
    local = np.empty(n, dtype=np.int64)             # global id -> index among its owner's nodes
    for owned in owned_lists:
        local[owned] = np.arange(owned.shape[0])
    column = np.empty(n, dtype=np.int64)            # global id -> local column of the part at hand
    sends: list[dict] = [{} for _ in range(n_parts)]
    parts = []
    for p, owned in enumerate(owned_lists):
        rows = H[owned]
        cols = rows.indices
        outside = np.unique(cols[assignment[cols] != p])
        owner = assignment[outside]
        by_owner = np.lexsort((outside, owner))
        halo, halo_owner = outside[by_owner], owner[by_owner]
        column[owned] = np.arange(owned.shape[0])
        column[halo] = owned.shape[0] + np.arange(halo.shape[0])
        adj = sp.csr_matrix((rows.data, column[cols], rows.indptr), shape=(owned.shape[0], owned.shape[0] + halo.shape[0]))
        adj.sort_indices()
        recv = {}
        for q in np.unique(halo_owner):
            where = np.flatnonzero(halo_owner == q)
            recv[int(q)] = where
            sends[int(q)][p] = local[halo[where]]    # q's owned indices, in p's halo order
        parts.append((owned, halo, halo_owner, adj, recv))
    return [GraphPartition(part=p, owned=owned, halo=halo, halo_owner=halo_owner,
                           adjacency=adj if xsp is sp else xsp.csr_matrix(adj), recv=recv,
                           send=dict(sorted(sends[p].items())))
            for p, (owned, halo, halo_owner, adj, recv) in enumerate(parts)]


def _stats(H: sp.csr_matrix, assignment: np.ndarray, parts: list, method: str) -> xr.Dataset:
    coo = H.tocoo()
    cross = assignment[coo.row] != assignment[coo.col]
    n_parts = len(parts)
    owned = np.array([q.n_owned for q in parts])
    ds = xr.Dataset(
        {
            "owned": ("part", owned),
            "halo": ("part", np.array([q.n_halo for q in parts])),
            "send": ("part", np.array([sum(len(v) for v in q.send.values()) for q in parts])),
            "recv": ("part", np.array([sum(len(v) for v in q.recv.values()) for q in parts])),
            "edges": ("part", np.bincount(assignment[coo.row], minlength=n_parts)),
            "cut_edges": ("part", np.bincount(assignment[coo.row][cross], minlength=n_parts)),
        },
        coords={"part": np.arange(n_parts)},
    )
    ds.attrs.update(method=method, n_parts=n_parts, edge_cut=int(cross.sum()),
                    edge_cut_fraction=float(cross.mean()) if cross.shape[0] else 0.0,
                    balance=float(owned.max() / owned.mean()))
    return ds


def partition_graph(A: Any, n_parts: int, *, method: Method = "bfs", refine: int = 10,
                    random_state: int | None = 0) -> Partitioning:
    """Split a graph's nodes into ``n_parts`` partitions with halos and exchange lists.

    Parameters
    ----------
    A : (n, n) adjacency: SciPy / cupyx sparse, NumPy / CuPy dense, or a dask array or
        :class:`~daskpml.sparse.CSRMatrix` of them. ``A[i, j] != 0`` means node ``i`` reads
        from node ``j`` (for GNNs: a symmetric graph).
    n_parts : number of partitions, 1 to n.
    method : how nodes are assigned (every method gives sizes differing by at most one,
        except "metis", which balances within METIS's tolerance):

        * ``"contiguous"``: consecutive node ids;
        * ``"bfs"``: consecutive pieces of a breadth-first order from a pseudo-peripheral
          node of each component (compact pieces, few cut edges on mesh-like graphs);
        * ``"spectral"``: recursive bisection along Fiedler vectors of the normalized
          Laplacian (fewest cut edges of the three on clustered graphs, slowest);
        * ``"metis"``: METIS multilevel k-way, when ``pymetis`` is installed.
    refine : rounds of balanced boundary refinement after "bfs" and "spectral" (pairs of
        nodes that gain by changing sides are swapped, so sizes stay as they are; the
        assignment with the fewest cut edges is kept); 0 turns it off.
    random_state : seed of the eigensolver's start vector ("spectral") and of METIS.

    Returns
    -------
     : Partitioning, with ``parts`` (:class:`GraphPartition`), ``assignment`` and ``stats``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> partition_graph(sp.identity(4, format="csr"), 2, method="contiguous").n_parts
    2
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    H, xsp = _to_host_csr(A)
    check_graph(H, name="graph")
    n = H.shape[0]
    if n == 0:
        raise ValueError("the graph is empty (0 nodes); there is nothing to partition.")
    if isinstance(n_parts, bool) or not isinstance(n_parts, (int, np.integer)) or not 1 <= n_parts <= n:
        raise ValueError(f"n_parts must be an integer from 1 to the number of nodes ({n}), got {n_parts!r}.")
    n_parts = int(n_parts)
    if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
        raise ValueError(f"refine must be a number of rounds >= 0, got {refine!r}.")
    seed = 0 if random_state is None else int(random_state)
    S = (H != 0).astype(np.int8)
    S = (S + S.T).tocsr()                       # structure, either direction
    if n_parts == 1 or method == "contiguous":
        assignment = _even_cut(np.arange(n), n_parts)
    elif method == "bfs":
        assignment = _even_cut(_bfs_order(S), n_parts)
    elif method == "spectral":
        assignment = _spectral_assignment(S, n_parts, seed)
    else:
        assignment = _metis_assignment(S, n_parts, seed)
    if method in ("bfs", "spectral") and n_parts > 1 and refine:
        assignment = _refine(S, assignment, n_parts, int(refine))
    if np.bincount(assignment, minlength=n_parts).min() == 0:
        raise ValueError(f"method={method!r} left a partition empty; use fewer partitions than {n_parts}.")
    parts = _build(H, assignment, n_parts, xsp)
    return Partitioning(parts=parts, assignment=assignment, stats=_stats(H, assignment, parts, method))
