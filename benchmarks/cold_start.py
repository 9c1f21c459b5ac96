"""Cold start: the first call of the algorithms with compiled (numba) kernels on fresh workers.

For each of mcl, hogwild, gnn and svm: a fresh 2-worker ``LocalCluster`` (worker processes),
the first call timed, then the same call again on the same cluster (warm: kernels loaded). The
first call is timed twice: with numba's cache emptied (the first run after an install) and with
the cache filled by the previous run (every later run in fresh processes).

    python benchmarks/cold_start.py [--repeats 3] [--only mcl hogwild]

Which cache is emptied: the in-tree ``__pycache__`` files next to daskpml's kernels (where numba
puts them by default) and daskpml's per-user numba cache (``daskpml.numba_cache_dir()`` where
it exists), so the script measures whichever the installed daskpml uses.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402


def _mcl():
    from daskpml.datasets import make_sbm
    from daskpml.graph import mcl

    A, _ = make_sbm(3000, 6, in_degree=10, out_degree=1, random_state=0)
    return lambda: mcl(A, 2.0, progress=False)


def _hogwild():
    from daskpml.optim import fit_linear

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 20))
    y = (X[:, 0] > 0).astype(float)
    return lambda: fit_linear(X, y, family="logistic", lam=1e-4, solver="hogwild", max_iter=1, tol=None,
                              progress=False)


def _gnn():
    from daskpml.datasets import make_sbm
    from daskpml.graph import train_gnn

    A, y = make_sbm(2000, 4, in_degree=8, out_degree=2, random_state=0)
    A, y = A.to_scipy(), np.asarray(y)
    features = (np.random.default_rng(0).standard_normal((2000, 16)) + y[:, None]).astype(np.float32)
    return lambda: train_gnn(A, features, y, np.arange(0, 2000, 10), epochs=3, n_parts=2, random_state=0,
                             progress=False)


def _svm():
    from sklearn.datasets import make_classification

    from daskpml.svm import CascadeSVC

    X, y = make_classification(4000, 10, random_state=0)
    return lambda: CascadeSVC(n_partitions=4, max_passes=1, random_state=0).fit(X, y)


CASES = {"mcl": _mcl, "hogwild": _hogwild, "gnn": _gnn, "svm": _svm}


def kernel_caches() -> list[str]:
    """Where compiled kernels of daskpml may be cached."""
    import daskpml

    root = os.path.dirname(daskpml.__file__)
    found = glob.glob(os.path.join(root, "**", "__pycache__", "*.nb[ic]"), recursive=True)
    try:
        from daskpml import numba_cache_dir
    except ImportError:
        return found
    return found + [numba_cache_dir()]


def empty_caches() -> None:
    for path in kernel_caches():
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)


def time_case(name: str, cold: bool) -> tuple[float, float]:
    from distributed import Client, LocalCluster

    if cold:
        empty_caches()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2)
        call = CASES[name]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            call()
            first = time.perf_counter() - start
            start = time.perf_counter()
            call()
            second = time.perf_counter() - start
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), default=sorted(CASES))
    args = parser.parse_args()
    print(json.dumps(machine()))
    print(f"{'case':<8} {'first, empty cache':>19} {'first, cached':>14} {'second call':>12}   (medians of "
          f"{args.repeats}, seconds; fresh 2-worker LocalCluster each time)")
    rows = []
    for name in args.only:
        cold = [time_case(name, True) for _ in range(args.repeats)]
        warm = [time_case(name, False) for _ in range(args.repeats)]
        row = {"case": name, "first_empty_cache_s": statistics.median(c[0] for c in cold),
               "first_cached_s": statistics.median(w[0] for w in warm),
               "second_call_s": statistics.median(w[1] for w in warm)}
        rows.append(row)
        print(f"{name:<8} {row['first_empty_cache_s']:19.2f} {row['first_cached_s']:14.2f} "
              f"{row['second_call_s']:12.2f}", flush=True)
    out = os.path.join(os.path.dirname(__file__), "results", "cold_start.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"machine": machine(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
