"""PCA of a tall 2,000,000 x 100 matrix: daskpml against scikit-learn and dask-ml.

    python benchmarks/bench_pca.py [--rows 2000000] [--cols 100] [--components 10] [--repeat 3]

The matrix has a decaying spectrum (rank-20 signal plus noise). All run in this process on
the same 2 cores: scikit-learn on the NumPy array, dask-ml and daskpml on the same dask
array (row chunks of 250,000, threaded scheduler). Times are medians of ``--repeat`` runs;
ratios are daskpml / anchor. The components are compared with scikit-learn's (largest
absolute difference after matching signs).
"""

from __future__ import annotations

import argparse
import time

import dask
import dask.array as da
import numpy as np


def median_time(func, repeat):
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def diff(a, b):
    a, b = np.asarray(a), np.asarray(b)
    signs = np.sign((a * b).sum(axis=1))
    return float(np.abs(a * signs[:, None] - b).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from sklearn.decomposition import PCA as SkPCA

    from daskpml.decomposition import PCA

    m, n, k = args.rows, args.cols, args.components
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((m, 20)) * np.geomspace(10, 1, 20)) @ rng.standard_normal((20, n))
    X += 0.5 * rng.standard_normal((m, n))
    X += 3.0
    A = da.from_array(X, chunks=(250_000, n), name=False)
    print(f"PCA of {m:,} x {n} (float64, {X.nbytes / 2**30:.2f} GiB), {k} components; medians of {args.repeat}")
    dask.config.set(scheduler="threads")
    t_sk, sk = median_time(lambda: SkPCA(k, random_state=0).fit(X), args.repeat)
    print(f"  scikit-learn PCA (svd_solver auto -> {sk._fit_svd_solver}): {t_sk:.2f} s")
    rows = {}
    for solver in ("covariance_eigh", "tsqr", "randomized", "auto"):
        t, model = median_time(lambda: PCA(k, svd_solver=solver, random_state=0).fit(A), args.repeat)
        rows[solver] = t
        print(f"  daskpml PCA svd_solver={solver} ({model.svd_solver_}): {t:.2f} s, {t / t_sk:.3f}x scikit-learn; "
              f"components differ by {diff(model.components_, sk.components_):.1e}, explained variance "
              f"ratio by {np.abs(model.explained_variance_ratio_ - sk.explained_variance_ratio_).max():.1e}")
    try:
        from dask_ml.decomposition import PCA as DmlPCA
    except ImportError:
        print("  dask-ml not installed: no anchor (pip install dask-ml)")
        return
    for solver in ("auto", "randomized"):
        t, dml = median_time(lambda: DmlPCA(k, svd_solver=solver, random_state=0).fit(A), args.repeat)
        print(f"  dask-ml PCA svd_solver={solver}: {t:.2f} s; components differ from scikit-learn's by "
              f"{diff(dml.components_, sk.components_):.1e}; daskpml / dask-ml: auto {rows['auto'] / t:.3f}, "
              f"tsqr {rows['tsqr'] / t:.3f}, randomized {rows['randomized'] / t:.3f}")


if __name__ == "__main__":
    main()
