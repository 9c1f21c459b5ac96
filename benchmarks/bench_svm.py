"""Cascade SVM on a9a (RBF kernel, C = 1) against scikit-learn's SVC on the same split.

    python benchmarks/bench_svm.py [--data ../shared/data/a9a.svm.gz] [--passes 1 3]
                                   [--partitions 8] [--partition random kmeans] [--scheduler threads]

a9a is LIBSVM's adult data set: the first 32,561 rows train, the other 16,281 test (the
standard split). Both models use gamma="scale" on dense float64 rows. scikit-learn's SVC
fits in this process (libsvm, one core). CascadeSVC runs on the threaded scheduler (2
threads; libsvm releases the GIL) or, with ``--scheduler distributed``, on a LocalCluster
of 2 single-threaded worker processes. Fit times are the whole ``fit`` (partitioning,
gamma, every pass); predict times are on the test rows. Ratios are daskpml / scikit-learn.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time

import numpy as np


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "a9a.svm.gz"))
    parser.add_argument("--passes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--partition", nargs="+", default=["random", "kmeans"])
    parser.add_argument("--scheduler", choices=["threads", "distributed"], default="threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not os.path.exists(args.data):
        print(f"a9a not found at {args.data}; nothing to compare (see ../shared/data/README.md).")
        sys.exit(0)
    import dask
    from sklearn.datasets import load_svmlight_file
    from sklearn.svm import SVC

    from daskpml.svm import CascadeSVC

    with gzip.open(args.data) as fh:
        X, y = load_svmlight_file(fh, n_features=123)
    X = X.toarray()
    Xtr, ytr, Xte, yte = X[:32561], y[:32561], X[32561:], y[32561:]
    print(f"a9a: {Xtr.shape[0]:,} training rows, {Xte.shape[0]:,} test rows, {X.shape[1]} features; "
          "RBF, C=1, gamma='scale'")

    start = time.perf_counter()
    ref = SVC(C=1.0).fit(Xtr, ytr)
    t_ref = time.perf_counter() - start
    start = time.perf_counter()
    acc_ref = float((ref.predict(Xte) == yte).mean())
    p_ref = time.perf_counter() - start
    print(f"  scikit-learn SVC: fit {t_ref:.2f} s, predict {p_ref:.2f} s, test accuracy {acc_ref:.4f}, "
          f"{ref.support_.size} support vectors")

    client = None
    if args.scheduler == "distributed":
        from distributed import Client, LocalCluster

        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None))
    else:
        dask.config.set(scheduler="threads", num_workers=2)
    for partition in args.partition:
        for passes in args.passes:
            model = CascadeSVC(C=1.0, n_partitions=args.partitions, partition=partition, max_passes=passes,
                               random_state=args.seed)
            start = time.perf_counter()
            model.fit(Xtr, ytr)
            t = time.perf_counter() - start
            start = time.perf_counter()
            acc = float((model.predict(Xte) == yte).mean())
            p = time.perf_counter() - start
            top = model.history_.where(model.history_["layer"] == model.history_["layer"].max(), drop=True)
            print(f"  CascadeSVC partition={partition} n_partitions={args.partitions} max_passes={passes}: "
                  f"fit {t:.2f} s ({t / t_ref:.3f}x SVC, {t_ref / t:.2f}x faster), predict {p:.2f} s "
                  f"({p / p_ref:.3f}x), test accuracy {acc:.4f} ({100 * (acc - acc_ref):+.2f} points), "
                  f"{model.support_.size} support vectors, passes {model.n_passes_} "
                  f"(converged {model.converged_}), top objective per pass "
                  f"{np.round(top['objective'].values, 1).tolist()}", flush=True)
    if client is not None:
        client.close()


if __name__ == "__main__":
    main()
