"""The synchronous solvers on the ranks (daskpml.comm) against their task-graph runs and scikit-learn.

    python benchmarks/bench_ranks.py [--quick] [--rows N] [--scheduler tcp://host:8786]

Data: an ill-conditioned logistic problem, N x 100 float64 (default 2,000,000 rows), features
``standard_normal * s_j`` with scales ``s_j`` spread 15x (``geomspace(1, 15)``), labels from a
logistic model; in row chunks of 250,000, persisted on the cluster. scikit-learn gets the same
rows as one NumPy array. Objective: mean log-loss + ||w||^2 / (2 n) (C = 1), intercept free.

1. ``LogisticRegression()`` as a user calls it: scikit-learn (lbfgs, its defaults) and daskpml
   (``solver="auto"``: newton here) on the default ``daskpml.connect()`` cluster (worker
   processes), and daskpml's ``solver="lbfgs"``. Time of ``fit``; objective reached; ratio.
2. L-BFGS counts: daskpml's ``lbfgs`` iterations and function evaluations (rounds) against SciPy's
   ``L-BFGS-B`` (``scipy.optimize.minimize``, the same objective and tolerance ``gtol``) on the
   NumPy data.
3. The loop on the ranks against the task graphs driven from the client
   (``daskpml.optim.on-ranks`` false): lbfgs (15 iterations) and sgd (one epoch, 2048 rows per
   chunk per step), time and the ranks' own split (compute, allreduce, rest).
4. The default layout: the same runs on worker processes (2 x 1 thread) and in one process
   (threads: ``processes=False``, 2 workers x 1 thread).

Medians of ``--repeats`` after a warm-up run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _common import machine

RESULTS = Path(__file__).parent / "results"


def make(n: int, d: int = 100, seed: int = 0):
    import dask.array as da

    scales = np.geomspace(1.0, 15.0, d)
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((n, d), chunks=(250_000, d)) * scales
    w = np.random.default_rng(seed).standard_normal(d) / scales
    y = (rng.random(n, chunks=250_000) < 1 / (1 + da.exp(-(X @ w)))).astype(float)
    return X, y


def objective(X, y, coef, intercept) -> float:
    z = X @ np.ravel(coef) + float(np.ravel(intercept)[0])
    n = X.shape[0]
    return float(np.mean(np.logaddexp(0, z) - y * z) + 0.5 * float(np.ravel(coef) @ np.ravel(coef)) / n)


def median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def scipy_counts(Xn, yn, gtol):
    from scipy.optimize import minimize

    n, d = Xn.shape

    def fg(theta):
        z = Xn @ theta[:d] + theta[d]
        p = 1 / (1 + np.exp(-z))
        f = np.mean(np.logaddexp(0, z) - yn * z) + 0.5 * theta[:d] @ theta[:d] / n
        r = (p - yn) / n
        return f, np.concatenate([Xn.T @ r + theta[:d] / n, [r.sum()]])

    res = minimize(fg, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"gtol": gtol, "maxiter": 1000})
    return int(res.nit), int(res.nfev), float(res.fun)


def part_default(client_label, X, y, Xn, yn, repeats, out):
    from sklearn.linear_model import LogisticRegression as SkLR

    import daskpml.linear_model as lm

    sk_t, sk = median_time(lambda: SkLR(max_iter=1000).fit(Xn, yn), repeats)
    f_sk = objective(Xn, yn, sk.coef_, sk.intercept_)
    rows = {"scikit-learn lbfgs": (sk_t, f_sk, int(sk.n_iter_[0]), "")}
    for label, kw in (("daskpml LogisticRegression() (auto)", {}), ("daskpml solver='lbfgs'", {"solver": "lbfgs"})):
        t, m = median_time(lambda: lm.LogisticRegression(**kw).fit(X, y), repeats)
        rows[label] = (t, objective(Xn, yn, m.coef_, m.intercept_), int(m.n_iter_), m.solver_)
    print(f"\n1. LogisticRegression on {Xn.shape[0]:,} x {Xn.shape[1]} (ill-conditioned), {client_label}")
    for label, (t, f, it, solver) in rows.items():
        ratio = sk_t / t
        print(f"   {label:<38} {t:7.2f} s  objective {f:.8f}  iterations {it:4d} {solver:>8}"
              f"  sklearn time / this = {ratio:5.2f}", flush=True)
    out["default"] = {k: dict(time_s=v[0], objective=v[1], n_iter=v[2], solver=v[3], ratio_vs_sklearn=sk_t / v[0])
                      for k, v in rows.items()}


def part_counts(X, y, Xn, yn, out):
    from daskpml.optim import fit_linear

    n = Xn.shape[0]
    for gtol in (1e-4,):
        nit, nfev, f_scipy = scipy_counts(Xn, yn, gtol)
        _, _, res = fit_linear(X, y, family="logistic", lam=1.0 / n, solver="lbfgs", tol=gtol, max_iter=1000,
                               progress=False)
        rounds = int(res.history.attrs["total_rounds"])
        print(f"2. tol {gtol:g}: daskpml lbfgs {res.n_iter} iterations, {rounds} evaluations "
              f"(f {float(res.history.objective[-1]):.8f});  SciPy L-BFGS-B {nit} iterations, {nfev} "
              f"evaluations (f {f_scipy:.8f});  ratios {res.n_iter / nit:.2f} / {rounds / nfev:.2f}", flush=True)
        out.setdefault("counts", {})[str(gtol)] = dict(daskpml_iterations=res.n_iter, daskpml_evaluations=rounds,
                                                       scipy_iterations=nit, scipy_evaluations=nfev)


def split_of(history, wall, threads):
    a = history.attrs
    if "rank_compute_s" not in a:
        return ""
    c, m = float(np.sum(a["rank_compute_s"])), float(np.sum(a["rank_comm_s"]))
    total = threads * wall
    return f"compute {c / total:4.0%}  allreduce {m / total:4.0%}  rest (idle) {max(0, 1 - (c + m) / total):4.0%}"


def part_ranks(label, X, y, repeats, threads, out):
    import dask

    from daskpml.optim import fit_linear

    n_chunks = len(X.chunks[0])
    runs = {
        "lbfgs 15 iterations": dict(solver="lbfgs", max_iter=15, tol=0.0),
        "sgd 1 epoch": dict(solver="sgd", batch_size=2048 * n_chunks, max_iter=1, tol=0.0,
                            n_iter_no_change=10**9, random_state=0),
    }
    print(f"\n3/4. {label}: the loop on the ranks against task graphs from the client")
    rec = out.setdefault("ranks", {}).setdefault(label, {})
    for name, opts in runs.items():
        times = {}
        for on in (True, False):
            with dask.config.set({"daskpml.optim.on-ranks": on}), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_linear(X, y, family="logistic", lam=1e-4, progress=False, **{**opts, "max_iter": 1})
                t, (_, _, res) = median_time(lambda: fit_linear(X, y, family="logistic", lam=1e-4, progress=False,
                                                                **opts), repeats)
            times[on] = t
            print(f"   {name:<20} {'ranks' if on else 'task graphs':<12} {t:7.2f} s  "
                  f"{split_of(res.history, t, threads)}", flush=True)
            rec[f"{name} {'ranks' if on else 'graphs'}"] = dict(time_s=t, attrs={k: res.history.attrs[k] for k in (
                "rank_compute_s", "rank_comm_s", "rank_wall_s") if k in res.history.attrs})
        print(f"   {name:<20} speedup of the ranks: {times[False] / times[True]:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--only", choices=["default", "counts", "ranks"], nargs="*")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 200_000, 1
    import dask
    from distributed import Client, LocalCluster

    import daskpml

    out: dict = {"machine": machine(), "argv": sys.argv[1:], "rows": args.rows}
    only = set(args.only or ["default", "counts", "ranks"])
    client = Client(args.scheduler) if args.scheduler else daskpml.connect()
    label = f"dask scheduler {args.scheduler}" if args.scheduler else "daskpml.connect() (worker processes)"
    threads = sum(client.nthreads().values())
    print(f"{label}: {len(client.nthreads())} workers, {threads} threads", flush=True)
    X, y = dask.persist(*make(args.rows))
    Xn, yn = (X.compute(), y.compute()) if only & {"default", "counts"} else (None, None)
    if "default" in only:
        part_default(label, X, y, Xn, yn, args.repeats, out)
    if "counts" in only:
        part_counts(X, y, Xn, yn, out)
    if "ranks" in only:
        part_ranks(label, X, y, args.repeats, threads, out)
    client.close()
    if "ranks" in only and not args.scheduler:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
                Client(cluster):
            X, y = dask.persist(*make(args.rows))
            part_ranks("one process, 2 workers x 1 thread (processes=False)", X, y, args.repeats, 2, out)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_ranks.json").write_text(json.dumps(out, indent=1, default=str))
    print(f"\nresults: {RESULTS / 'bench_ranks.json'}")


if __name__ == "__main__":
    main()
