"""Spectral methods against their anchors, side by side in one run (ratios printed).

1. ``eigsh``: the 8 smallest eigenpairs of L_sym of make_sbm(1_000_000 nodes, about 20 entries
   per row), tol 1e-6, against scipy.sparse.linalg.eigsh (ARPACK, which="SA" on the Laplacian
   formed by csgraph.laplacian) in one process. Both residuals ||L v - lambda v|| are printed.
2. Spectral clustering of make_blobs(20_000, 10 features, 8 centres, cluster_std=2) against
   scikit-learn SpectralClustering(affinity="nearest_neighbors", eigen_solver="arpack") and
   dask-ml SpectralClustering; ARI against the true labels. Digits: ARI.
3. ``--only big``: 1,000,000 points end to end (k-NN graph included): time and peak memory.

daskpml runs in this process on dask's threaded scheduler (2 cores here), BLAS at 1 thread
while it runs; the anchors run as they are. Usage::

    python benchmarks/bench_spectral.py [--quick] [--only eigsh|clustering|big] [--skip-daskml]
"""

from __future__ import annotations

import argparse
import resource

import numpy as np
from _common import PeakMemory, timed


def bench_eigsh(n: int) -> None:
    from scipy.sparse import csgraph
    from scipy.sparse.linalg import LinearOperator, eigsh
    from threadpoolctl import threadpool_limits

    from daskpml.datasets import make_sbm
    from daskpml.linalg import laplacian, laplacian_eigsh, laplacian_lanczos

    A, _ = make_sbm(n, 10, in_degree=16, out_degree=4, random_state=0)
    A = A.persist()
    W = A.to_scipy()
    print(f"\n== eigsh: 8 smallest of L_sym, make_sbm({n:,}), {W.nnz / n:.1f} entries per row, tol 1e-6")
    L, t_lap = timed(lambda: csgraph.laplacian(W, normed=True).tocsr())
    count = [0]

    def matvec(x):
        count[0] += 1
        return L @ x

    op = LinearOperator(L.shape, matvec=matvec, dtype=float)
    (w_ref, v_ref), t_ref = timed(lambda: eigsh(op, k=8, which="SA", tol=1e-6))
    res_ref = np.linalg.norm(L @ v_ref - v_ref * w_ref, axis=0)
    laplacian_eigsh(A, 2, tol=1e-2, return_eigenvectors=False)  # warm up (imports)
    with threadpool_limits(1):
        res, t = timed(lambda: laplacian_lanczos(A, 8, kind="sym", tol=1e-6, random_state=0))
        w, V, hist = res.eigenvalues, res.eigenvectors.compute(), res.history
    Ld = laplacian(A, "sym").to_scipy()
    res = np.linalg.norm(Ld @ V - V * w, axis=0)
    matvecs = int(hist.attrs["matvecs"])
    bytes_per_product = W.nnz * 12 + n * 8 * 3
    print(f"ARPACK:  {t_ref:7.2f} s (+{t_lap:.2f} s csgraph.laplacian), {count[0]} products, "
          f"{count[0] * bytes_per_product / t_ref / 1e9:.2f} GB/s effective, max residual {res_ref.max():.2e}")
    print(f"daskpml: {t:7.2f} s (Laplacian scaling included), {matvecs} products, {hist.attrs['restarts']} "
          f"restarts, {hist.attrs['rounds']} round trips, {matvecs * bytes_per_product / t / 1e9:.2f} GB/s "
          f"effective, max residual {res.max():.2e}")
    print(f"max |lambda - lambda_ARPACK| = {np.abs(np.sort(w_ref) - w).max():.2e}")
    print(f"ratio ARPACK / daskpml = {t_ref / t:.2f} (target >= 1.5); with the Laplacian: "
          f"{(t_ref + t_lap) / t:.2f}")


def bench_clustering(n: int, skip_daskml: bool) -> None:
    from sklearn.cluster import SpectralClustering as SK
    from sklearn.datasets import load_digits, make_blobs
    from sklearn.metrics import adjusted_rand_score as ari
    from threadpoolctl import threadpool_limits

    from daskpml.cluster import SpectralClustering

    X, y = make_blobs(n, 10, centers=8, cluster_std=2.0, random_state=0)
    print(f"\n== spectral clustering: make_blobs({n:,}, 10 features, 8 centres, std 2)")
    ref, t_ref = timed(lambda: SK(8, affinity="nearest_neighbors", eigen_solver="arpack",
                                  random_state=0).fit(X).labels_)
    print(f"scikit-learn: {t_ref:7.2f} s, ARI {ari(y, ref):.4f}")
    if not skip_daskml:
        import dask.array as da
        from dask_ml.cluster import SpectralClustering as DM

        Xd = da.from_array(X, chunks=(n // 4, -1))
        dm, t_dm = timed(lambda: np.asarray(DM(8, affinity="rbf", random_state=0, n_components=200)
                                            .fit(Xd).labels_))
        print(f"dask-ml:      {t_dm:7.2f} s, ARI {ari(y, dm):.4f}")
    with threadpool_limits(1):
        SpectralClustering(8, random_state=0).fit(X[:2000])  # warm up
        labels, t = timed(lambda: SpectralClustering(8, random_state=0).fit(X).labels_)
    print(f"daskpml:      {t:7.2f} s, ARI {ari(y, labels):.4f}")
    print(f"time daskpml / scikit-learn = {t / t_ref:.3f} (target <= 0.5)")
    if not skip_daskml:
        print(f"dask-ml / daskpml = {t_dm / t:.1f}x (target >= 10)")
    d = load_digits()
    with threadpool_limits(1):
        labels = SpectralClustering(10, random_state=0).fit(d.data).labels_
    sk = SK(10, affinity="nearest_neighbors", eigen_solver="arpack", random_state=0).fit(d.data).labels_
    print(f"digits ARI: daskpml {ari(d.target, labels):.4f}, scikit-learn {ari(d.target, sk):.4f} (target >= 0.75)")


def bench_big(n: int) -> None:
    from sklearn.metrics import adjusted_rand_score as ari
    from threadpoolctl import threadpool_limits

    from daskpml.cluster import SpectralClustering
    from daskpml.datasets import make_blobs

    X, y = make_blobs(n, 10, centers=8, cluster_std=2.0, random_state=0, chunks=50_000)
    X, y = X.persist(), y.compute()
    print(f"\n== end to end: SpectralClustering of {n:,} points (10-NN graph, 8 clusters)")
    with PeakMemory() as mem, threadpool_limits(1):
        model, t = timed(lambda: SpectralClustering(8, random_state=0).fit(X))
        labels = np.asarray(model.labels_.compute())
    print(f"daskpml: {t:.1f} s, peak RSS {mem.peak / 2**30:.2f} GiB (process max "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB), ARI {ari(y, labels):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small sizes (a smoke test).")
    parser.add_argument("--only", choices=["eigsh", "clustering", "big"], action="append")
    parser.add_argument("--skip-daskml", action="store_true")
    parser.add_argument("--big-n", type=int, default=1_000_000, help="Points for --only big.")
    args = parser.parse_args()
    only = args.only or ["eigsh", "clustering"]
    if "eigsh" in only:
        bench_eigsh(20_000 if args.quick else 1_000_000)
    if "clustering" in only:
        bench_clustering(4_000 if args.quick else 20_000, args.skip_daskml or args.quick)
    if "big" in only:
        bench_big(50_000 if args.quick else args.big_n)


if __name__ == "__main__":
    main()
