"""Asynchronous SGD against synchronous SGD with a straggler; Hogwild against scikit-learn.

    python benchmarks/bench_async.py [--quick] [--only stragglers|hogwild|rate|shards]

Part 1, stragglers. ``make_classification`` (daskpml.datasets, seed 0), N x 100 float64,
logistic loss + ||w||^2 / (2 n), on a LocalCluster of 4 worker *processes* x 1 thread
(this machine has 2 cores, so 4 workers oversubscribe it; the comparison is still fair
because every method runs on the same cluster). One row chunk per worker; chunk 3 is
made 4x slower by the ``delay`` hook (its tasks sleep 3x their compute time).

- synchronous SGD (``solver="sgd"``): global mini-batch 4 b (b rows from each chunk) for
  E epochs; its final objective f_sync defines the target f_sync * 1.01.
- ``async_sgd`` with ``staleness="divide"`` and ``"none"``, ``easgd`` (async and sync),
  ``gossip_sgd`` and ``local_sgd``: b rows per worker step, same eta0 and schedule.

Each method's time to target is the solver's wall time (``history.time``; objective
evaluations for the history are excluded) at its first sampled objective <= the target.
Ratio = async time / sync time (the issue's bar: at most 0.6). The figures come from one
run of each method; ``--repeats`` > 1 reports medians. A plot of objective against wall
time goes to ``benchmarks/results/bench_async.png``.

Part 3, rate (``--only rate``). 200,000 x 20 logistic (``lam = 1e-4``), batch 256, on the default
``daskpml.connect()`` cluster: updates per second of ``async_sgd``, ``easgd`` and ``gossip_sgd`` with
their loop on the ranks (``daskpml.optim.on-ranks``, the default) and on futures (one client round
trip per update), and each one's solver time to the objective scikit-learn's ``SGDClassifier``
reaches in 2 epochs (median over ``--seeds`` seeds), against ``SGDClassifier``'s time.

Part 4, shards (``--only shards``). ``async_sgd`` with a 1,000,000-weight model (100,000 rows with
14 ones among 1,000,000 columns, logistic labels), batch 256, constant steps, on the default
cluster: updates per second with one server (rank 0) and with the server split by key range over
2, 4, ... ranks (``n_servers``, up to the number of workers).

Part 2, Hogwild. a9a-like sparse data (binary features, 123 columns, about 14 non-zeros
per row, logistic labels; ``../shared/data/a9a.svm.gz`` is used too when present):
updates per second with 1 and 2 threads (one worker process), and the time to reach the
objective of scikit-learn ``SGDClassifier(loss="log_loss", alpha=lam, max_iter=5, tol=None)``
(``learning_rate="optimal"``; Hogwild uses the same schedule), against ``SGDClassifier``'s own
time. SGD objectives after 5 epochs vary with the shuffling seed by a few percent, so the
target is the median over ``--seeds`` seeds of SGDClassifier's objective, and each time is a
median over the same seeds. Hogwild's time is its solver time up to the first epoch whose
objective is at or below the target (objectives are sampled once per epoch). A third data
set, 500,000 rows with 14 ones among 100,000 columns, shows the thread scaling when rows are
sparse relative to the model (a9a's 123 weights fit in 16 cache lines, which two threads
write all the time).
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


def time_to(history, target: float) -> float:
    f = history.objective.values
    t = history.time.values
    hit = np.flatnonzero(np.isfinite(f) & (f <= target))
    return float(t[hit[0]]) if hit.size else float("nan")


def curve(history) -> tuple[list, list]:
    f = history.objective.values
    ok = np.isfinite(f)
    return history.time.values[ok].tolist(), f[ok].tolist()


def stragglers(args) -> dict:
    import dask
    from distributed import Client, LocalCluster

    from daskpml.datasets import make_classification
    from daskpml.optim import ASYNC_SOLVERS, fit_linear

    n, b, E = args.rows, args.batch, args.epochs
    slow = {3: args.slowdown}
    out: dict = {"rows": n, "features": 100, "batch_per_worker": b, "epochs": E, "slowdown": args.slowdown,
                 "workers": 4, "methods": {}}
    with LocalCluster(n_workers=4, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        X, y = make_classification(n, 100, chunks=n // 4, random_state=0)
        X, y = dask.persist(X, y.astype(float))
        lam = 1.0 / n
        common = dict(family="logistic", lam=lam, eta0=args.eta0, learning_rate="invscaling",
                      random_state=0, progress=False)
        sync_steps = -(-n // (4 * b))
        runs = {
            "sync SGD": dict(solver="sgd", batch_size=4 * b, max_iter=E, tol=0.0, n_iter_no_change=10**9,
                             eval_every=max(1, sync_steps // 4)),
            "async_sgd divide": dict(solver="async_sgd", staleness="divide", batch_size=b, max_iter=2 * E),
            "async_sgd none": dict(solver="async_sgd", staleness="none", batch_size=b, max_iter=2 * E),
            "easgd async": dict(solver="easgd", local_steps=4, batch_size=b, max_iter=2 * E),
            "easgd sync": dict(solver="easgd", local_steps=4, synchronous=True, batch_size=b, max_iter=2 * E),
            "gossip_sgd": dict(solver="gossip_sgd", local_steps=4, batch_size=b, max_iter=2 * E),
            "local_sgd H=4": dict(solver="local_sgd", local_steps=4, batch_size=b, max_iter=E, tol=0.0,
                                  n_iter_no_change=10**9, eval_every=1),
        }
        fit_linear(X, y, solver="async_sgd", **dict(common, max_iter=0.05, batch_size=b))     # warm up workers
        target = None
        for name, opts in runs.items():
            if args.only_methods and name not in args.only_methods and name != "sync SGD":
                continue
            times, hist = [], None
            for _ in range(args.repeats):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    extra = {"max_time": args.max_time} if opts["solver"] in ASYNC_SOLVERS else {}
                    _, _, res = fit_linear(X, y, delay=slow, **common, **opts, **extra)
                    wall = time.perf_counter() - t0
                hist = res.history
                if name == "sync SGD" and target is None:
                    target = float(hist.objective.values[-1]) * 1.01
                times.append(time_to(hist, target))
            tt = statistics.median(times)
            rec = {"time_to_target_s": tt, "runs": times, "final_objective": float(hist.objective.values[-1]),
                   "wall_s": wall, "updates": int(hist.attrs.get("updates", hist.sizes["iteration"])),
                   "rounds": int(hist.attrs["total_rounds"]), "curve": curve(hist)}
            if "updates" in hist:
                rec["updates_per_worker"] = hist.updates.values.tolist()
                rec["max_staleness_seen"] = int(hist.staleness.max())
            out["methods"][name] = rec
            print(f"  {name:<18} time to target {tt:7.3f} s  final f {rec['final_objective']:.6f}  "
                  f"({rec['updates']} updates, wall {wall:.2f} s)"
                  + (f"  per worker {rec['updates_per_worker']}" if "updates_per_worker" in rec else ""),
                  flush=True)
        out["target"] = target
        base = out["methods"]["sync SGD"]["time_to_target_s"]
        print(f"\n  target = 1.01 x sync SGD final objective = {target:.6f}")
        for name, rec in out["methods"].items():
            rec["ratio_vs_sync"] = rec["time_to_target_s"] / base
            print(f"  {name:<18} {rec['time_to_target_s']:7.3f} s   ratio vs sync SGD {rec['ratio_vs_sync']:.2f}")
    return out


def rate_part(args) -> dict:
    """Updates per second and time to SGDClassifier's objective on the default cluster."""
    import dask
    from sklearn.linear_model import SGDClassifier

    import daskpml
    from daskpml.optim import fit_linear

    n, d, b = args.rate_rows, 20, 256
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    y = (X @ (np.arange(d) / 10) + rng.standard_normal(n) > 0).astype(float)
    lam = 1e-4

    def f_of(coef, intercept):
        z = X @ np.ravel(coef) + float(np.ravel(intercept)[0])
        w = np.ravel(coef)
        return float(np.mean(np.logaddexp(0, z) - y * z) + 0.5 * lam * w @ w)

    sk_times, sk_f = [], []
    for seed in range(args.seeds):
        clf = SGDClassifier(loss="log_loss", alpha=lam, max_iter=2, tol=None, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            clf.fit(X, y)
            sk_times.append(time.perf_counter() - t0)
        sk_f.append(f_of(clf.coef_, clf.intercept_))
    target, sk_t = statistics.median(sk_f), statistics.median(sk_times)
    print(f"  SGDClassifier 2 epochs of {n:,} x {d}: {sk_t:.3f} s, objective {target:.5f} (median of "
          f"{args.seeds} seeds)", flush=True)
    client = daskpml.connect()
    out: dict = {"rows": n, "batch": b, "sklearn_time_s": sk_t, "target": target,
                 "workers": len(client.nthreads()), "methods": {}}
    # constant steps (scikit-learn's "optimal" schedule is per-row; these are tuned for batches of 256)
    runs = {"async_sgd": dict(solver="async_sgd", eta0=1.0, learning_rate="constant"),
            "easgd (8 local steps)": dict(solver="easgd", eta0=0.5, local_steps=8, learning_rate="constant"),
            "gossip_sgd (8 local steps)": dict(solver="gossip_sgd", eta0=0.5, local_steps=8, learning_rate="constant")}
    for name, opts in runs.items():
        recs = []
        for on in (True, False):
            with dask.config.set({"daskpml.optim.on-ranks": on}), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_linear(X, y, family="logistic", lam=lam, batch_size=b, max_iter=0.05, random_state=0,
                           progress=False, **opts)                        # warm up the workers
                t0 = time.perf_counter()
                _, _, res = fit_linear(X, y, family="logistic", lam=lam, batch_size=b, max_iter=3 if on else 0.3,
                                       random_state=0, progress=False, eval_every=25, **opts)
                wall = time.perf_counter() - t0
            h = res.history
            solver_s = float(h.time.values[-1])
            steps = int(h.attrs.get("local_steps", 1))
            rate = res.n_iter / solver_s
            reach = time_to(h, target)
            recs.append((on, wall, solver_s, rate, reach, res.n_iter, float(h.objective.values[-1])))
            where = "ranks" if h.attrs.get("on_ranks") else "futures"
            print(f"  {name:<28} {where:<8} {res.n_iter:6d} updates ({steps} SGD steps "
                  f"each) in {solver_s:6.2f} s solver time (wall {wall:5.2f} s): {rate:7.0f} updates/s; "
                  f"final objective {recs[-1][-1]:.5f}; time to SGDClassifier's objective "
                  f"{reach:.3f} s = {reach / sk_t:.2f}x SGDClassifier's time", flush=True)
        out["methods"][name] = [dict(on_ranks_setting=r[0], wall_s=r[1], solver_s=r[2], updates_per_s=r[3],
                                     time_to_target_s=r[4], updates=r[5], final_objective=r[6]) for r in recs]
    return out


def shards_part(args) -> dict:
    """async_sgd with a large model on the default cluster: one server (rank 0) against the
    server split by key range over the ranks (``n_servers``)."""
    import dask

    import daskpml
    from daskpml.optim import fit_linear

    n, d = args.shard_rows, args.shard_features
    X, y = wide_sparse(n, d=d, nnz=14, seed=1)
    client = daskpml.connect()
    P = len(client.nthreads())
    out: dict = {"rows": n, "features": d, "model_bytes": 8 * (d + 1), "workers": P, "runs": []}
    kw = dict(family="logistic", lam=1e-5, solver="async_sgd", batch_size=256, eta0=2.0, learning_rate="constant",
              random_state=0, progress=False, chunks=-(-n // P))
    for servers in [1] + [s for s in (2, 4, 8) if s <= P]:
        with warnings.catch_warnings(), dask.config.set({"daskpml.optim.shard-bytes": 1 << 40}):
            warnings.simplefilter("ignore")
            fit_linear(X, y, max_iter=0.01, n_servers=servers, **kw)          # warm up
            t0 = time.perf_counter()
            _, _, res = fit_linear(X, y, max_iter=args.shard_epochs, n_servers=servers, **kw)
            wall = time.perf_counter() - t0
        h = res.history
        solver_s = float(h.time.values[-1])
        rec = dict(n_servers=int(h.attrs["n_servers"]), updates=res.n_iter, solver_s=solver_s, wall_s=wall,
                   updates_per_s=res.n_iter / solver_s, final_objective=float(h.objective.values[-1]))
        out["runs"].append(rec)
        print(f"  n_servers={rec['n_servers']}: {res.n_iter} updates in {solver_s:.2f} s solver time (wall "
              f"{wall:.2f} s): {rec['updates_per_s']:.1f} updates/s; final objective {rec['final_objective']:.5f}; "
              f"{rec['updates_per_s'] / out['runs'][0]['updates_per_s']:.2f}x one server", flush=True)
    return out


def a9a_like(n: int, seed: int = 0):
    """Binary sparse rows (123 columns, ~14 non-zeros, one-hot-like groups as in a9a)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    groups = np.array_split(np.arange(123), 14)
    cols = np.stack([rng.choice(g, size=n) for g in groups], axis=1)
    X = sp.csr_matrix((np.ones(cols.size), cols.ravel(), np.arange(0, cols.size + 1, 14)), shape=(n, 123))
    w = rng.standard_normal(123)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w - np.median(X @ w))))).astype(float)
    return X, y


def wide_sparse(n: int, d: int = 100_000, nnz: int = 14, seed: int = 0):
    """Rows with ``nnz`` ones among ``d`` columns at random: sparse relative to ``d``, the
    setting Hogwild was designed for (threads rarely write the same coordinates)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    cols = np.sort(rng.integers(0, d, size=(n, nnz)), axis=1)
    X = sp.csr_matrix((np.ones(n * nnz), cols.ravel(), np.arange(0, n * nnz + 1, nnz)), shape=(n, d))
    X.sum_duplicates()
    w = rng.standard_normal(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w)))).astype(float)
    return X, y


def hogwild_part(args) -> dict:
    import dask
    from distributed import Client, LocalCluster
    from sklearn.linear_model import SGDClassifier

    from daskpml.datasets import load_svmlight
    from daskpml.optim import fit_linear
    from daskpml.sparse import from_array

    data = {"a9a-like (synthetic)": a9a_like(args.hogwild_rows),
            "wide sparse (100,000 features)": wide_sparse(args.hogwild_rows)}
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "a9a.svm.gz"
    if path.exists():
        Xa, ya = load_svmlight(path)
        data["a9a (shared)"] = (Xa.to_scipy().astype(np.float64), (ya.compute() > 0).astype(float))
    out: dict = {}
    lam = 1e-4
    seeds = range(args.seeds)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        for label, (X, y) in data.items():
            rec: dict = {"rows": int(X.shape[0]), "nnz_per_row": X.nnz / X.shape[0], "lam": lam}
            sk_times, sk_f = [], []
            for seed in seeds:
                clf = SGDClassifier(loss="log_loss", alpha=lam, max_iter=5, tol=None, random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    clf.fit(X, y)
                    sk_times.append(time.perf_counter() - t0)
                z = X @ clf.coef_.ravel() + clf.intercept_[0]
                w = clf.coef_.ravel()
                sk_f.append(float(np.mean(np.logaddexp(0, z) - y * z) + 0.5 * lam * w @ w))
            f_sk = statistics.median(sk_f)
            rec.update(sklearn_time_s=statistics.median(sk_times), sklearn_objective=f_sk, sklearn_objectives=sk_f)
            print(f"  {label}: {X.shape[0]} rows; SGDClassifier 5 epochs {rec['sklearn_time_s']:.3f} s, "
                  f"objective {f_sk:.5f} (median of seeds; {', '.join(f'{v:.4f}' for v in sk_f)})", flush=True)
            Xd = from_array(X, chunks=X.shape[0])             # one chunk on the one worker, persisted once
            yd = dask.array.from_array(y, chunks=X.shape[0])
            with warnings.catch_warnings():                # the one-off upload of the in-memory matrix
                warnings.simplefilter("ignore", UserWarning)
                Xd, yd = dask.persist(Xd, yd)
            for threads in (1, 2):
                fit_linear(Xd, yd, family="logistic", lam=lam, solver="hogwild", n_threads=threads, max_iter=1,
                           progress=False)        # compile / load the kernels on the worker
                hits, ups, epochs = [], [], []
                for seed in seeds:
                    _, _, res = fit_linear(Xd, yd, family="logistic", lam=lam, solver="hogwild", n_threads=threads,
                                           max_iter=args.hogwild_epochs, random_state=seed, progress=False)
                    h = res.history
                    hits.append(time_to(h, f_sk))
                    ups.append(float(h.updates_per_second.values[0]))
                    reached = np.flatnonzero(h.objective.values <= f_sk)
                    epochs.append(int(reached[0] + 1) if reached.size else None)
                r = rec[f"threads_{threads}"] = {
                    "updates_per_second": statistics.median(ups), "time_to_sklearn_objective_s": statistics.median(hits),
                    "runs_s": hits, "epochs_to_sklearn_objective": epochs}
                r["speed_ratio_vs_sklearn"] = rec["sklearn_time_s"] / r["time_to_sklearn_objective_s"]
                print(f"    hogwild {threads} thread(s): {r['updates_per_second'] / 1e6:.2f} M updates/s, "
                      f"time to SGDClassifier's objective {r['time_to_sklearn_objective_s']:.3f} s "
                      f"(epochs {epochs}), sklearn time / hogwild time = {r['speed_ratio_vs_sklearn']:.2f}",
                      flush=True)
            out[label] = rec
    return out


def plot(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no plot)")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rec in result["methods"].items():
        t, f = rec["curve"]
        ax.plot(t, f, marker=".", label=name)
    ax.axhline(result["target"], color="k", ls="--", lw=0.8, label="target (sync final + 1%)")
    ax.set_xlabel("solver wall time (s)")
    ax.set_ylabel("objective")
    ax.set_yscale("log")
    ax.set_title(f"logistic, {result['rows']:,} x 100, 4 workers, chunk 3 {result['slowdown']:g}x slower")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"  plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", choices=["stragglers", "hogwild", "rate", "shards"])
    parser.add_argument("--shard-rows", type=int, default=100_000)
    parser.add_argument("--shard-features", type=int, default=1_000_000, help="the model's size (float64)")
    parser.add_argument("--shard-epochs", type=float, default=0.5)
    parser.add_argument("--rate-rows", type=int, default=200_000)
    parser.add_argument("--methods", nargs="*", dest="only_methods", help="subset of the straggler methods")
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=8192, help="rows per worker step")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of synchronous SGD")
    parser.add_argument("--eta0", type=float, default=0.5)
    parser.add_argument("--slowdown", type=float, default=4.0)
    parser.add_argument("--max-time", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--hogwild-rows", type=int, default=500_000)
    parser.add_argument("--hogwild-epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for SGDClassifier and Hogwild (medians)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.batch, args.hogwild_rows = 40_000, 1024, 50_000
        args.shard_rows, args.shard_features = 20_000, 100_000
    RESULTS.mkdir(exist_ok=True)
    result: dict = {"machine": machine(), "argv": sys.argv[1:]}
    if args.only in (None, "stragglers"):
        print("Part 1: stragglers (4 worker processes, chunk 3 slowed by the delay hook)", flush=True)
        result["stragglers"] = stragglers(args)
        plot(result["stragglers"], RESULTS / "bench_async.png")
    if args.only in (None, "rate"):
        print("Part 3: updates per second, 200,000 x 20 logistic, batch 256, the default cluster", flush=True)
        result["rate"] = rate_part(args)
    if args.only in (None, "hogwild"):
        print("Part 2: Hogwild on sparse data", flush=True)
        result["hogwild"] = hogwild_part(args)
    if args.only in (None, "shards"):
        print(f"Part 4: async_sgd with a {args.shard_features:,}-weight model, one server against a server "
              f"sharded over the ranks (the default cluster)", flush=True)
        result["shards"] = shards_part(args)
    (RESULTS / "bench_async.json").write_text(json.dumps(result, indent=1))
    print(f"  results: {RESULTS / 'bench_async.json'}")


if __name__ == "__main__":
    main()
