"""Markov clustering against the mcl program and the markov_clustering package, in one run.

Graph: make_sbm(50_000 nodes, 500 planted blocks, mean in-block degree 10, out-of-block
degree 1), written as an .abc file (label pairs) for mcl.

1. At inflation 1.6 and 2.0: ``mcl GRAPH --abc -I I -te 2`` (the whole process: reading the
   file, clustering, writing clusters) against ``daskpml.graph.mcl`` on the same graph in this
   process (dask's threaded scheduler, 2 threads here; numba's compilation is done once before
   timing). Medians of ``--repeat`` runs; ARI of daskpml against mcl's own clustering and of
   both against the planted blocks.
2. At inflation 2.0: the ``markov_clustering`` PyPI package (``run_mcl`` with its defaults
   but the inflation), one run; ARI against mcl.
3. ``--only big``: make_sbm(1_000_000 nodes, 10_000 blocks, in-degree 18, out-degree 2), about
   20M stored entries: time and peak memory of daskpml at inflation 2.0 (run it on its own,
   as peak memory is the process's).

Usage::

    python benchmarks/bench_mcl.py [--repeat 3] [--only anchors|markov|big] [--inflation 1.6 ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile

import numpy as np
import scipy.sparse as sp
from _common import PeakMemory, timed
from sklearn.metrics import adjusted_rand_score as ari


def read_mcl(path: str, n: int) -> np.ndarray:
    labels = np.full(n, -1)
    with open(path) as f:
        for c, line in enumerate(f):
            labels[[int(float(x)) for x in line.split()]] = c
    return labels


def anchors(A, planted, inflations, repeat, tmp):
    from daskpml.datasets import save_graph
    from daskpml.graph import mcl

    program = shutil.which("mcl")
    graph = os.path.join(tmp, "g.abc")
    save_graph(graph, A)
    mcl(sp.random(50, 50, density=0.2, format="csr", random_state=0) + sp.eye(50), 2.0)   # compile once
    mcl(sp.random(50, 50, density=0.2, format="csr", random_state=0, dtype=np.float64), 2.0, dtype=np.float64)
    host = A.to_scipy()
    out = {}
    for inflation in inflations:
        row = {}
        if program:
            times = []
            for _ in range(repeat):
                _, t = timed(lambda: subprocess.run([program, graph, "--abc", "-I", str(inflation), "-te", "2", "-o",
                                                     os.path.join(tmp, "out")], check=True, capture_output=True))
                times.append(t)
            row["mcl"] = statistics.median(times)
            theirs = read_mcl(os.path.join(tmp, "out"), A.shape[0])
            print(f"I={inflation}: mcl -te 2: median {row['mcl']:.2f} s of {[round(t, 2) for t in times]}, "
                  f"{theirs.max() + 1} clusters, ARI vs planted {ari(planted, theirs):.4f}", flush=True)
        else:
            theirs = None
            print(f"I={inflation}: the mcl program is not installed (apt-get install mcl); no anchor", flush=True)
        times = []
        for _ in range(repeat):
            result, t = timed(lambda: mcl(host, inflation))
            times.append(t)
        row["daskpml"] = statistics.median(times)
        labels = result.labels.values
        h = result.history
        print(f"I={inflation}: daskpml: median {row['daskpml']:.2f} s of {[round(t, 2) for t in times]}, "
              f"{result.n_iter} iterations, {len(result.clusters)} clusters, ARI vs planted {ari(planted, labels):.4f}"
              f", largest iterand {int(h.nnz.max()):,} entries, most expanded {int(h.expanded.max()):,}, "
              f"{float(h.products.sum()):.3g} products", flush=True)
        if theirs is not None:
            row["ari"] = ari(theirs, labels)
            print(f"I={inflation}: ARI daskpml vs mcl {row['ari']:.4f}; time ratio daskpml / mcl "
                  f"{row['daskpml'] / row['mcl']:.3f} (target <= 0.25), {row['mcl'] / row['daskpml']:.2f}x faster",
                  flush=True)
        out[inflation] = (row, theirs, result)
    return out


def markov(A, planted, theirs, ours_time):
    import markov_clustering as mc

    host = A.to_scipy().tocsr()
    (matrix, t) = timed(lambda: mc.run_mcl(host, inflation=2.0))
    clusters = mc.get_clusters(matrix)
    labels = np.full(A.shape[0], -1)
    for c, members in enumerate(clusters):
        labels[list(members)] = c
    line = (f"I=2.0: markov_clustering: {t:.2f} s, {len(clusters)} clusters, ARI vs planted "
            f"{ari(planted, labels):.4f}")
    if theirs is not None:
        line += f", ARI vs mcl {ari(theirs, labels):.4f}"
    if ours_time:
        line += f"; daskpml is {t / ours_time:.1f}x faster (target >= 10x)"
    print(line, flush=True)


def big(n):
    from daskpml.datasets import make_sbm
    from daskpml.graph import mcl

    A, planted = make_sbm(n, n // 100, in_degree=18, out_degree=2, random_state=0)
    A = A.persist()
    print(f"big: {n:,} nodes, {A.nnz:,} stored entries", flush=True)
    with PeakMemory() as peak:
        result, t = timed(lambda: mcl(A, 2.0, progress=True))
    h = result.history
    print(f"big: {t:.1f} s, {result.n_iter} iterations, converged {result.converged}, {len(result.clusters):,} "
          f"clusters, ARI vs planted {ari(np.asarray(planted), result.labels.values):.4f}; peak RSS "
          f"{peak.peak / 2**30:.2f} GiB (ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}"
          f" GiB); largest iterand {int(h.nnz.max()):,} entries ({int(h.bytes.max()) / 2**30:.2f} GiB), "
          f"largest task {int(h.task_bytes.max()) / 2**30:.2f} GiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["anchors", "markov", "big"], action="append")
    parser.add_argument("--inflation", type=float, action="append")
    parser.add_argument("--nodes", type=int, default=50_000)
    parser.add_argument("--big-n", type=int, default=1_000_000)
    args = parser.parse_args()
    only = set(args.only or ["anchors", "markov"])
    if "big" in only:
        big(args.big_n)
        only.discard("big")
    if not only:
        return
    from daskpml.datasets import make_sbm

    A, planted = make_sbm(args.nodes, args.nodes // 100, in_degree=10, out_degree=1, random_state=0)
    A = A.persist()
    planted = np.asarray(planted)
    print(f"graph: {A.shape[0]:,} nodes, {A.nnz:,} stored entries", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        if "anchors" in only:
            rows = anchors(A, planted, args.inflation or [1.6, 2.0], args.repeat, tmp)
        if "markov" in only:
            row, theirs, _ = rows.get(2.0, ({}, None, None))
            markov(A, planted, theirs, row.get("daskpml"))


if __name__ == "__main__":
    main()
