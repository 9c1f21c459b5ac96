"""Scaling study: speedup ratio, communication cost and stragglers, measured and modelled.

    python benchmarks/scaling.py [--quick] [--workers 1 2 4 8] [--repeats 3]
                                 [--only scaling comm stragglers batch] [--render]

Every part runs on real ``dask scheduler`` / ``dask worker`` processes on 127.0.0.1 (one
thread per worker, started by this script through the ``dask`` command line) and writes
its numbers to ``benchmarks/scaling/scaling.json``; the plots go to
``benchmarks/scaling/scaling_*.png`` and ``benchmarks/SCALING.md`` is rendered from the
JSON at the end (``--render`` renders it again without running anything).

1. ``scaling``: the eight algorithm families (L-BFGS, sync SGD, local SGD, async SGD,
   Lanczos, NMF, MCL, GCN), each a fixed amount of work (fixed iterations or a
   deterministic stopping rule, so the work does not depend on the worker count).
   Strong scaling: the same problem on 1, 2, 4, 8 workers, always in 8 row chunks.
   Weak scaling: the problem grows with the workers (scale m / 2, 4 chunks per unit).
   Speedup = time on 1 worker / time on m; efficiency = speedup / m (strong) or
   t1 / tm (weak). The split into compute / communication / waiting is read from the
   dask task stream of the timed run (``daskpml.perf.time_split``).
2. ``comm``: ``daskpml.perf.calibrate`` on each cluster, then the measured time per round
   of all-reduce, parameter server and gossip for vectors of 1 KB to 100 MB, against
   the fitted model; and the model's predicted speedup of the L-BFGS family against
   the measured one.
3. ``stragglers``: sync SGD, local SGD, async SGD, EASGD and gossip SGD on 4 workers,
   one worker's chunk slowed 1x-8x by the ``delay`` hook; time to a target objective.
4. ``batch``: the critical mini-batch size of least squares: serial steps to a target
   loss as the batch grows, against the bound E||x||^2 / lambda_max
   (``daskpml.optim.critical_batch_size``).

This computer has 2 cores: more than 2 workers oversubscribe it, so the 4- and 8-worker
runs measure communication and scheduling overhead, not speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from _common import machine

HERE = Path(__file__).parent
RESULTS = HERE / "scaling"  # committed: SCALING.md shows these
JSON = RESULTS / "scaling.json"
DOC = HERE / "SCALING.md"


# ----------------------------------------------------------------------------- the cluster
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cli() -> list[str]:
    exe = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
    return [exe] if exe else [sys.executable, "-m", "dask"]


@contextmanager
def cli_cluster(n_workers: int):
    """``dask scheduler`` and ``n_workers`` ``dask worker`` processes (1 thread each) on
    127.0.0.1, and a client connected to them."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    procs = [subprocess.Popen([*_dask_cli(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], **quiet)]
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("dask scheduler did not start") from None
                time.sleep(0.2)
        for i in range(n_workers):
            procs.append(subprocess.Popen([*_dask_cli(), "worker", address, "--nthreads", "1", "--name", f"w{i}",
                                           "--no-dashboard", "--memory-limit", "0"], **quiet))
        with Client(address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=120)
            yield client
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


# ----------------------------------------------------------------------------- the families
# Each family: setup(scale, n_chunks, quick) -> (run, info). ``run()`` does a fixed amount
# of work on data already on the workers; ``info`` describes the problem.

def _chunk(n: int, k: int) -> int:
    return max(1, -(-n // max(1, k)))


def _linear_data(scale: float, k: int, quick: bool):
    import dask

    from daskpml.datasets import make_classification

    n = int(1_000_000 * scale // (4 if quick else 1))
    X, y = make_classification(n, 50, chunks=_chunk(n, k), random_state=0)
    X, y = dask.persist(X, y.astype(float))
    return X, y, {"rows": n, "cols": 50, "data_bytes": int(X.nbytes), "model_bytes": 8 * 51}


def fam_lbfgs(scale, k, quick):
    from daskpml.optim import fit_linear

    X, y, info = _linear_data(scale, k, quick)
    return (lambda: fit_linear(X, y, family="logistic", lam=1e-4, solver="lbfgs", max_iter=15, tol=0.0,
                               progress=False)), {**info, "work": "15 L-BFGS iterations, logistic"}


def fam_sgd(scale, k, quick):
    from daskpml.optim import fit_linear

    X, y, info = _linear_data(scale, k, quick)
    batch = 2048 * k            # 2048 rows from each chunk per step: per worker the same in weak scaling
    return (lambda: fit_linear(X, y, family="logistic", lam=1e-4, solver="sgd", batch_size=batch, max_iter=1,
                               tol=0.0, n_iter_no_change=10**9, random_state=0, progress=False)), \
        {**info, "work": "1 epoch, 2048 rows per chunk per step"}


def fam_local_sgd(scale, k, quick):
    from daskpml.optim import fit_linear

    X, y, info = _linear_data(scale, k, quick)
    return (lambda: fit_linear(X, y, family="logistic", lam=1e-4, solver="local_sgd", local_steps=16,
                               batch_size=256, max_iter=2, tol=0.0, n_iter_no_change=10**9, random_state=0,
                               progress=False)), {**info, "work": "2 epochs, 16 local steps of 256 rows per round"}


def fam_async_sgd(scale, k, quick):
    from daskpml.optim import fit_linear

    X, y, info = _linear_data(scale, k, quick)
    return (lambda: fit_linear(X, y, family="logistic", lam=1e-4, solver="async_sgd", batch_size=1024,
                               max_iter=1, tol=None, random_state=0, progress=False)), \
        {**info, "work": "1 epoch, 1024 rows per update"}


def _sbm(n: int, k: int, seed: int = 0):
    from daskpml.datasets import make_sbm

    W, labels = make_sbm(n, 8, in_degree=12.0, out_degree=2.0, chunks=_chunk(n, k), random_state=seed)
    return W.persist(), labels


def fam_lanczos(scale, k, quick):
    from daskpml.linalg import NoConvergence, laplacian_eigsh

    n = int(100_000 * scale // (4 if quick else 1))
    W, _ = _sbm(n, k)

    def run():                  # a fixed budget (6 restarts of 24 vectors): the work does not depend on n
        try:
            return laplacian_eigsh(W, k=8, kind="sym", ncv=24, maxiter=6, tol=0.0, random_state=0)
        except NoConvergence as stop:
            return stop

    return run, {"rows": n, "data_bytes": 0, "model_bytes": 8 * n,
                 "work": "L_sym, k 8, 6 thick restarts of 24 Lanczos vectors"}


def fam_nmf(scale, k, quick):
    from daskpml.datasets import make_low_rank
    from daskpml.decomposition import nmf

    n = int(40_000 * scale // (4 if quick else 1))
    A = make_low_rank(n, 500, 10, chunks=_chunk(n, k), random_state=0).persist()
    return (lambda: nmf(A, 10, max_iter=20, tol=0.0, random_state=0, progress=False)), \
        {"rows": n, "cols": 500, "data_bytes": int(A.nbytes), "model_bytes": 8 * 10 * 500,
         "work": "20 HALS iterations, rank 10"}


def fam_mcl(scale, k, quick):
    from daskpml.graph import mcl

    n = int(10_000 * scale // (4 if quick else 1))
    W, _ = _sbm(n, k)
    return (lambda: mcl(W, 2.0, max_iter=8, tol=1e-300, n_blocks=k, progress=False)), \
        {"rows": n, "model_bytes": 0, "work": "8 MCL iterations (expansion 2, inflation 2)"}


def fam_gcn(scale, k, quick):
    from daskpml.graph import train_gnn

    n = int(10_000 * scale // (4 if quick else 1))
    W, labels = _sbm(n, k)
    A = W.compute()
    y = np.asarray(labels.compute() if hasattr(labels, "compute") else labels)
    rng = np.random.default_rng(0)
    features = (np.eye(8)[y] + rng.standard_normal((n, 8))).astype(np.float32)
    train = rng.choice(n, n // 10, replace=False)
    return (lambda: train_gnn(A, features, y, train, epochs=20, n_parts=k, random_state=0, progress=False)), \
        {"rows": n, "model_bytes": 4 * (8 * 16 + 16 * 8), "work": "20 full-batch epochs, 2-layer GCN"}


FAMILIES = {
    "L-BFGS": fam_lbfgs, "sync SGD": fam_sgd, "local SGD": fam_local_sgd, "async SGD": fam_async_sgd,
    "Lanczos": fam_lanczos, "NMF": fam_nmf, "MCL": fam_mcl, "GCN": fam_gcn,
}


# ----------------------------------------------------------------------------- part 1: scaling
def _timed_run(client, run, repeats: int) -> dict:
    """Median wall time of ``repeats`` runs; the split comes from the median run's task stream."""
    from distributed import get_task_stream

    from daskpml.perf import time_split

    threads = sum(client.nthreads().values())
    runs = []
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with get_task_stream(client=client) as ts:
                t0 = time.perf_counter()
                out = run()
                wall = time.perf_counter() - t0
        runs.append((wall, time_split(ts.data, wall, threads)))
    runs.sort(key=lambda r: r[0])
    wall, split = runs[len(runs) // 2]
    rec = {"time_s": wall, "runs_s": [r[0] for r in runs], "split": split}
    history = getattr(out[-1] if isinstance(out, tuple) else out, "history", None)
    if history is not None and "rank_compute_s" in history.attrs:
        # the loop ran on the ranks (one long task per worker): the task stream sees one task, so the
        # split comes from the ranks' own timers, over the user's wall time (startup included)
        compute = float(np.sum(history.attrs["rank_compute_s"]))
        comm = float(np.sum(history.attrs["rank_comm_s"]))
        total = threads * wall
        waiting = max(0.0, total - compute - comm)
        rec["split"] = {"compute_s": compute, "transfer_s": comm, "waiting_s": waiting, "capacity_s": total,
                        "compute": compute / total, "transfer": comm / total, "waiting": waiting / total,
                        "source": "rank timers"}
    if history is not None and "total_rounds" in history.attrs:
        rec["rounds"] = int(history.attrs["total_rounds"])          # synchronous communication rounds
    return rec


def scaling_on(client, m: int, args, out: dict) -> None:
    for name, setup in FAMILIES.items():
        if args.families and name not in args.families:
            continue
        for mode, scale, k in (("strong", 1.0, 8), ("weak", m / 2, 4 * m)):
            warm, _ = setup(0.05, 2, True)                  # imports and compiles on the workers, untimed
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                warm()
            run, info = setup(scale, k, args.quick)
            rec = _timed_run(client, run, args.repeats)
            rec.update(info=info, chunks=k)
            out.setdefault(name, {}).setdefault(mode, {})[str(m)] = rec
            sp = rec["split"]
            print(f"  {name:<10} {mode:<6} m={m}  {rec['time_s']:7.2f} s  compute {sp['compute']:5.0%}  "
                  f"transfer {sp['transfer']:5.0%}  waiting {sp['waiting']:5.0%}", flush=True)
            del run
            client.cancel(list(client.futures.values()))        # free this family's data before the next


def speedups(scaling: dict) -> None:
    """Add speedup and efficiency to every record (against the 1-worker run)."""
    for modes in scaling.values():
        for mode, runs in modes.items():
            if "1" not in runs:
                continue
            t1 = runs["1"]["time_s"]
            for m, rec in runs.items():
                rec["speedup"] = t1 / rec["time_s"]
                rec["efficiency"] = rec["speedup"] / int(m) if mode == "strong" else t1 / rec["time_s"]


# ----------------------------------------------------------------------------- part 2: communication
def comm_on(client, m: int, args, out: dict) -> None:
    from daskpml import perf

    sizes = perf.DEFAULT_SIZES[:4] if args.quick else perf.DEFAULT_SIZES
    model = perf.calibrate(client, sizes=sizes, repeats=args.comm_repeats)
    rec = {"model": model.to_dict(), "patterns": {}}
    print(f"  m={m}: a = {model.latency * 1e3:.2f} ms, c = {model.per_task * 1e3:.2f} ms/task, "
          f"1/b = {f'{1 / model.inv_bandwidth / 1e9:.2f} GB/s' if model.inv_bandwidth else '-'} per link, "
          f"machine {'-' if not model.shared_inv_bandwidth else f'{1 / model.shared_inv_bandwidth / 1e9:.2f} GB/s'}, "
          f"overhead {model.overhead * 1e3:.1f} ms (fit error {model.fit['max_rel_error']:.0%})", flush=True)
    for pattern in perf.PATTERNS:
        rows = []
        for size in sizes:
            measured = perf.measure(client, pattern, size, repeats=args.comm_repeats)
            predicted = model.comm_time(size, m, pattern)
            rows.append({"bytes": size, "measured_s": measured, "predicted_s": predicted,
                         "ratio": measured / predicted})
            print(f"    {pattern:<17} {size:>11,d} B  measured {measured * 1e3:8.2f} ms  predicted "
                  f"{predicted * 1e3:8.2f} ms  ratio {measured / predicted:4.2f}", flush=True)
        rec["patterns"][pattern] = rows
    out[str(m)] = rec


def predicted_speedups(result: dict) -> None:
    """The model's speedup of the L-BFGS family: per communication round, the driver's round
    trip, the compute of the 1-worker run (from its task stream) over min(P, cores) workers,
    and a parameter-server round on the model, with the constants fitted on each cluster."""
    from daskpml.perf import CommModel

    comm, scaling = result.get("comm", {}), result.get("scaling", {}).get("L-BFGS", {}).get("strong", {})
    one = scaling.get("1")
    if not one or not one.get("rounds"):
        return
    compute = one["split"]["compute_s"] / one["rounds"]
    for m, rec in scaling.items():
        fitted = comm.get(m)
        if m == "1" or not fitted:
            continue
        model = CommModel(**fitted["model"])
        rec["predicted_speedup"] = model.speedup(model_bytes=one["info"]["model_bytes"], compute_s=compute,
                                                 n_workers=int(m))


# ----------------------------------------------------------------------------- part 3: stragglers
def stragglers(client, args) -> dict:
    import dask

    from daskpml.datasets import make_classification
    from daskpml.optim import ASYNC_SOLVERS, fit_linear

    n, b = (100_000, 2048) if args.quick else (400_000, 8192)
    P = 4
    X, y = make_classification(n, 100, chunks=n // P, random_state=0)
    X, y = dask.persist(X, y.astype(float))
    common = dict(family="logistic", lam=1.0 / n, eta0=0.5, learning_rate="invscaling", random_state=0,
                  progress=False)
    steps = -(-n // (P * b))
    # the asynchronous solvers count epochs over all workers' updates (fast workers do more of
    # them); the budget is long enough for each to reach the target at every slowdown here
    E_ASYNC = 12
    methods = {
        "sync SGD": dict(solver="sgd", batch_size=P * b, max_iter=3, tol=0.0, n_iter_no_change=10**9,
                         eval_every=max(1, steps // 4)),
        "local SGD": dict(solver="local_sgd", local_steps=4, batch_size=b, max_iter=3, tol=0.0,
                          n_iter_no_change=10**9, eval_every=1),
        "async SGD": dict(solver="async_sgd", staleness="divide", batch_size=b, max_iter=E_ASYNC),
        "EASGD": dict(solver="easgd", local_steps=4, batch_size=b, max_iter=E_ASYNC),
        "gossip SGD": dict(solver="gossip_sgd", local_steps=4, batch_size=b, max_iter=E_ASYNC),
    }
    from bench_async import time_to

    # the target: 1.01 x the objective sync SGD reaches in 3 epochs with no straggler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_linear(X, y, solver="async_sgd", **dict(common, max_iter=0.05, batch_size=b))      # warm up
        _, _, ref = fit_linear(X, y, **common, **methods["sync SGD"])
    target = float(ref.history.objective.values[-1]) * 1.01
    out = {"rows": n, "features": 100, "workers": P, "batch_per_worker": b, "target": target,
           "async_epochs": E_ASYNC, "methods": {}}
    slowdowns = (1, 2, 4, 8)
    for name, opts in methods.items():
        rows = {}
        for s in slowdowns:
            times = []
            for _ in range(args.repeats):
                extra = {"max_time": 60.0} if opts["solver"] in ASYNC_SOLVERS else {}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _, _, res = fit_linear(X, y, delay={P - 1: float(s)} if s > 1 else None, **common, **opts,
                                           **extra)
                times.append(time_to(res.history, target))
            rows[str(s)] = {"time_to_target_s": statistics.median(times), "runs_s": times}
            print(f"  {name:<11} slowdown {s}x  time to target {rows[str(s)]['time_to_target_s']:7.2f} s", flush=True)
        out["methods"][name] = rows
    return out


# ----------------------------------------------------------------------------- part 4: critical batch
def critical_batch(args) -> dict:
    """Serial mini-batch SGD steps to reach a target loss on least squares, batch 1..4096.

    The data are realizable (y = X w*, no noise) with covariance eigenvalues 1/sqrt(i),
    so the bound E||x||^2 / lambda_max is about 19. Step size for batch B is the largest
    safe one of Ma, Bassily & Belkin (2018) with the mean norm, eta(B) = B / (E||x||^2 +
    (B - 1) lambda_max), and the best of eta(B) x {0.5, 1, 1.5} is kept. The steps are a
    plain NumPy loop (a count of serial steps does not depend on the runtime)."""
    import dask.array as da

    from daskpml.optim import critical_batch_size

    rng = np.random.default_rng(0)
    n, d = (20_000, 100) if args.quick else (100_000, 100)
    scales = 1 / np.arange(1, d + 1) ** 0.25
    X = rng.standard_normal((n, d)) * scales
    w_star = rng.standard_normal(d)
    y = X @ w_star
    bound = critical_batch_size(da.from_array(X, chunks=(n // 4, d)))
    mean_sq = float((X * X).sum(1).mean())
    cov = X.T @ X / n
    lam_max = float(np.linalg.eigvalsh(cov)[-1])
    loss0 = 0.5 * float(np.mean(y * y))
    target = 1e-3 * loss0
    batches = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    out = {"rows": n, "features": d, "bound": bound, "mean_sq_norm": mean_sq, "lambda_max": lam_max,
           "target": "loss <= 1e-3 x initial loss", "batches": {}}
    for B in batches:
        eta0 = B / (mean_sq + (B - 1) * lam_max)
        best = None
        for mult in (0.5, 1.0, 1.5):
            steps = _steps_to(X, y, w_star, cov, B, eta0 * mult, target, seed=B, limit=200_000)
            if steps is not None and (best is None or steps < best[0]):
                best = (steps, eta0 * mult)
        out["batches"][str(B)] = {"steps": best[0] if best else None, "eta": best[1] if best else None}
    s1 = out["batches"]["1"]["steps"]
    for rec in out["batches"].values():
        rec["speedup"] = s1 / rec["steps"] if rec["steps"] else None
    print(f"  bound E||x||^2/lambda_max = {bound:.1f} (direct: {mean_sq / lam_max:.1f})")
    for B, rec in out["batches"].items():
        print(f"  batch {B:>5}: {rec['steps']} steps, serial-step speedup {rec['speedup']:.1f}", flush=True)
    return out


def _steps_to(X, y, w_star, cov, B, eta, target, seed, limit):
    """Steps of mini-batch SGD (batch B, step eta) from w = 0 until the loss
    0.5 (w - w*)' cov (w - w*) (exact for realizable data) is at most ``target``."""
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    w = np.zeros(X.shape[1])
    for t in range(1, limit + 1):
        idx = rng.integers(0, n, B)
        Xb = X[idx]
        w -= eta / B * (Xb.T @ (Xb @ w - y[idx]))
        e = w - w_star
        loss = 0.5 * float(e @ (cov @ e))
        if not np.isfinite(loss) or loss > 1e6:
            return None
        if loss <= target:
            return t
    return None


# ----------------------------------------------------------------------------- plots
def _save(fig, name: str, made: list) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(RESULTS / name, dpi=110)
    plt.close(fig)
    made.append(name)


def plots(result: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    scaling = result.get("scaling", {})
    if scaling:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for name, modes in scaling.items():
            for ax, mode in zip(axes, ("strong", "weak")):
                runs = modes.get(mode, {})
                ms = sorted(int(m) for m in runs if "speedup" in runs[m])
                if ms:
                    key = "speedup" if mode == "strong" else "efficiency"
                    ax.plot(ms, [runs[str(m)][key] for m in ms], "o-", label=name)
        axes[0].plot([1, 8], [1, 8], "k:", label="ideal")
        axes[0].axvspan(2, 8, color="0.9", zorder=-1)
        axes[0].set(xscale="log", yscale="log", xlabel="workers", ylabel="speedup (t1 / tm)",
                    title="Strong scaling (shaded: more workers than cores)")
        axes[1].axhline(1, color="k", ls=":")
        axes[1].axvspan(2, 8, color="0.9", zorder=-1)
        axes[1].set(xscale="log", xlabel="workers", ylabel="weak efficiency (t1 / tm)", title="Weak scaling")
        for ax in axes:
            ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        axes[0].legend(fontsize=7, ncol=2)
        _save(fig, "scaling_speedup.png", made)
    comm = result.get("comm", {})
    if comm:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
        ax = axes[0]
        marks = {"allreduce": "o", "parameter_server": "s", "gossip": "^"}
        colors = {"2": "C0", "4": "C1", "8": "C2"}
        lo, hi = float("inf"), 0.0
        for m, rec in comm.items():
            for pattern, rows in rec["patterns"].items():
                x = [r["predicted_s"] * 1e3 for r in rows]
                y = [r["measured_s"] * 1e3 for r in rows]
                lo, hi = min(lo, *x, *y), max(hi, *x, *y)
                ax.scatter(x, y, marker=marks[pattern], color=colors.get(m, "C3"), s=22,
                           label=f"{pattern}, {m} workers")
        line = np.array([lo / 1.5, hi * 1.5])
        ax.plot(line, line, "k-", lw=0.8)
        ax.fill_between(line, line / 2, line * 2, color="0.9", zorder=-1, label="within a factor 2")
        ax.set(xscale="log", yscale="log", xlabel="predicted (ms)", ylabel="measured (ms)",
               title="Communication per round, 1 KB to 100 MB")
        ax.legend(fontsize=6, ncol=1)
        ax = axes[1]
        strong = scaling.get("L-BFGS", {}).get("strong", {})
        ms = sorted(int(m) for m in strong if "speedup" in strong[m])
        if ms:
            ax.plot(ms, [strong[str(m)]["speedup"] for m in ms], "o-", label="measured")
            pm = [m for m in ms if "predicted_speedup" in strong[str(m)]]
            ax.plot([1] + pm, [1.0] + [strong[str(m)]["predicted_speedup"] for m in pm], "s--", label="model")
            ax.set_xticks(ms, [str(m) for m in ms])
            ax.legend()
        ax.set(xlabel="workers", ylabel="speedup", title="L-BFGS: the model's speedup against the measured")
        _save(fig, "scaling_comm.png", made)
    strag = result.get("stragglers")
    if strag:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, rows in strag["methods"].items():
            s = sorted(int(k) for k in rows)
            ax.plot(s, [rows[str(k)]["time_to_target_s"] for k in s], "o-", label=name)
        ax.set(xscale="log", xlabel="slowdown of one worker (x)", ylabel="time to target (s)",
               title=f"Stragglers: {strag['workers']} workers, one slowed")
        ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        ax.set_xticks([], minor=True)
        ax.legend()
        _save(fig, "scaling_stragglers.png", made)
    batch = result.get("batch")
    if batch:
        fig, ax = plt.subplots(figsize=(6, 4))
        bs = sorted(int(b) for b in batch["batches"] if batch["batches"][b]["speedup"])
        ax.plot(bs, [batch["batches"][str(b)]["speedup"] for b in bs], "o-", label="measured (serial steps)")
        ax.plot(bs, bs, "k:", label="linear")
        ax.axvline(batch["bound"], color="C3", ls="--", label=f"E||x||²/λmax = {batch['bound']:.1f}")
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="steps(1) / steps(B)",
               title="Critical batch size, least squares")
        ax.legend()
        _save(fig, "scaling_batch.png", made)
    return made


# ----------------------------------------------------------------------------- SCALING.md
def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def render(result: dict) -> str:
    mach = result.get("machine", {})
    L = ["# Scaling study", "",
         "Produced by `python benchmarks/scaling.py` (every table and plot below comes from "
         "`benchmarks/scaling/scaling.json`, which that script writes; `--render` rebuilds this file).", "",
         "## The machine", "",
         f"- {mach.get('cores')} cores ({mach.get('cpu') or 'CPU model unknown'}), {mach.get('memory_GiB')} GiB "
         f"memory, no GPU; {mach.get('os')}.",
         f"- Python {mach.get('python')}, NumPy {mach.get('numpy')}, dask {mach.get('dask')}, "
         f"distributed {mach.get('distributed')}.",
         f"- Run on {result.get('date', '?')}, {'quick sizes' if result.get('quick') else 'full sizes'}, "
         f"medians of {result.get('repeats')} runs (transfer timings: {result.get('comm_repeats', '?')}).",
         "- Every cluster is a `dask scheduler` and m `dask worker --nthreads 1` processes on 127.0.0.1, started "
         "through the `dask` command line; data are generated on the workers and persisted before timing.",
         "- **This computer has 2 cores. With 4 or 8 workers the cores are oversubscribed:** those runs show the "
         "cost of communication and scheduling as workers are added, not speed. On a cluster with a core per "
         "worker the compute part keeps shrinking where here it cannot.", ""]
    scaling = result.get("scaling", {})
    if scaling:
        ms = sorted({int(m) for modes in scaling.values() for runs in modes.values() for m in runs})
        L += ["## 1. Strong and weak scaling", "",
              "Speedup = t(1 worker) / t(m workers). Strong: the same problem in 8 row chunks for every m; "
              "efficiency = speedup / m. Weak: scale m/2 of the strong problem in 4m chunks; efficiency = "
              "t1 / tm (1.0 is perfect). The split is of the m worker threads' time during the median run, "
              "read from the dask task stream: **compute** (tasks running), **transfer** (worker-to-worker "
              "data moves) and **waiting** (idle threads: the scheduler, the driver, dependencies). Dask "
              "overlaps transfers with compute, so the split is an estimate.", "",
              "![speedup](scaling/scaling_speedup.png)", ""]
        for mode in ("strong", "weak"):
            head = "| family | work | " + " | ".join(f"{m} w: time / speedup / eff." for m in ms) + " |"
            L += [f"### {mode.capitalize()} scaling", "", head, "|" + "---|" * (len(ms) + 2)]
            for name, modes in scaling.items():
                runs = modes.get(mode, {})
                cells = []
                for m in ms:
                    r = runs.get(str(m))
                    cells.append(f"{r['time_s']:.2f} s / {r.get('speedup', float('nan')):.2f} / "
                                 f"{r.get('efficiency', float('nan')):.2f}" if r else "-")
                work = next(iter(runs.values()))["info"]["work"] if runs else ""
                L.append(f"| {name} | {work} | " + " | ".join(cells) + " |")
            L += ["", f"Time split ({mode}), compute / transfer / waiting:", "",
                  "| family | " + " | ".join(f"{m} workers" for m in ms) + " |", "|" + "---|" * (len(ms) + 1)]
            for name, modes in scaling.items():
                runs = modes.get(mode, {})
                cells = [" / ".join(_pct(runs[str(m)]["split"][k]) for k in ("compute", "transfer", "waiting"))
                         if str(m) in runs else "-" for m in ms]
                L.append(f"| {name} | " + " | ".join(cells) + " |")
            L.append("")
        L += ["Sizes (strong problem): " + "; ".join(
            f"{name}: {modes['strong']['1']['info']['rows']:,} rows" for name, modes in scaling.items()
            if "1" in modes.get("strong", {})) + ".", ""]
    comm = result.get("comm", {})
    if comm:
        L += ["## 2. The communication model", "",
              "`daskpml.perf` models one round of each pattern (a = latency of a level of dependent tasks, "
              "c = scheduler cost per task in the level, b = seconds per byte through one worker's link, "
              "beta = seconds per byte of all the level's traffic together, gamma = seconds per byte of an add):",
              "", "- all-reduce (reduce-scatter + all-gather, `daskpml.perf.allreduce`): a local split level, "
              "then log2 P halving steps and log2 P doubling steps moving m = n/2, n/4, ... each: "
              "T = (2 log2 P + 1) a + c (tasks) + 2 sum over steps of max(b m, beta P m) + gamma s (n + (P-1)/P n), "
              "with s = max(1, P / cores) (the adds and the one final concatenation share the cores). With a and "
              "b alone: (2 log2 P + 1) a + 2 b (P-1)/P n. The textbook 2 a log P + b (P-1)/P |W| counts one "
              "phase's bytes and no split level.",
              "- parameter server (the server adds P-1 vectors and sends P-1 copies back; the pattern of the "
              "synchronous solvers, whose driver is the server): T = 2 a + c (P+1) + 2 max(b, beta) (P-1) n + "
              "gamma (P-1) n.",
              "- gossip (each worker averages with its ring neighbour): T = a + c P + max(b n, beta P n) + "
              "2 gamma s n.",
              "", "`daskpml.perf.calibrate(client)` fits the constants on the running cluster from two transfer "
              "experiments (one vector bounced between two workers; all workers swapping in pairs at once), "
              "then `daskpml.perf.measure` times each pattern. Times per round exclude the client's submit "
              "and wait (chains of 1 and 4 rounds, differenced).", "",
              "![comm](scaling/scaling_comm.png)", "",
              "| workers | a (ms) | c (ms/task) | 1/b (GB/s) | 1/beta (GB/s) | gamma (GB/s) | round trip (ms) | "
              "fit error |", "|---|---|---|---|---|---|---|---|"]
        worst = (1.0, "")
        for m, rec in sorted(comm.items(), key=lambda kv: int(kv[0])):
            md = rec["model"]
            inv = lambda v: f"{1 / v / 1e9:.2f}" if v else "-"      # noqa: E731
            L.append(f"| {m} | {md['latency'] * 1e3:.2f} | {md['per_task'] * 1e3:.2f} | {inv(md['inv_bandwidth'])} | "
                     f"{inv(md['shared_inv_bandwidth'])} | {inv(md['reduce_per_byte'])} | "
                     f"{md['overhead'] * 1e3:.1f} | {_pct(md['fit']['max_rel_error'])} |")
            for pattern, rows in rec["patterns"].items():
                for r in rows:
                    off = max(r["ratio"], 1 / r["ratio"])
                    if off > worst[0]:
                        worst = (off, f"{pattern}, {m} workers, {r['bytes']:,} B (measured / predicted = "
                                      f"{r['ratio']:.2f})")
        sizes = sorted({r["bytes"] for rec in comm.values() for rows in rec["patterns"].values() for r in rows})
        L += ["", "Measured / predicted time per round:", "",
              "| pattern | workers | " + " | ".join(_size(s) for s in sizes) + " |", "|" + "---|" * (len(sizes) + 2)]
        for pattern in ("allreduce", "parameter_server", "gossip"):
            for m, rec in sorted(comm.items(), key=lambda kv: int(kv[0])):
                rows = {r["bytes"]: r for r in rec["patterns"].get(pattern, [])}
                L.append(f"| {pattern} | {m} | " + " | ".join(
                    f"{rows[s]['measured_s'] * 1e3:.1f} / {rows[s]['predicted_s'] * 1e3:.1f} ms ({rows[s]['ratio']:.2f})"
                    if s in rows else "-" for s in sizes) + " |")
        inside = worst[0] <= 2.0
        L += ["", f"**Acceptance (within a factor 2 for 1 KB to 100 MB): {'met' if inside else 'NOT met'}.** "
              f"The largest miss is a factor {worst[0]:.2f}: {worst[1]}.", ""]
        strong = scaling.get("L-BFGS", {}).get("strong", {})
        pred = [(m, r) for m, r in sorted(strong.items(), key=lambda kv: int(kv[0])) if "predicted_speedup" in r]
        if pred:
            L += ["Predicted speedup of the L-BFGS family against the measured. Per communication round "
                  "(one gradient pass): the driver's round trip, the compute of the 1-worker run (task stream "
                  "compute / rounds) over min(P, cores) workers, and a parameter-server round on the model, "
                  "with the constants fitted on each cluster:", "", "| workers | measured | predicted |", "|---|---|---|"]
            L += [f"| {m} | {r['speedup']:.2f} | {r['predicted_speedup']:.2f} |" for m, r in pred]
            L.append("")
    strag = result.get("stragglers")
    if strag:
        slows = sorted({int(s) for rows in strag["methods"].values() for s in rows})
        L += ["## 3. Stragglers", "",
              f"{strag['rows']:,} x {strag['features']} logistic regression on {strag['workers']} workers (one "
              f"chunk each), {strag['batch_per_worker']} rows per worker step. The last worker's tasks are slowed "
              "by the `delay` hook (`daskpml.optim.slowdown`: they sleep (factor - 1) x their compute time). "
              f"Target: 1.01 x the objective sync SGD reaches in 3 epochs without a straggler "
              f"({strag['target']:.5f}). Time to target = solver time at the first sampled objective at or "
              "below it (history evaluations excluded). The synchronous methods run 3 epochs; the asynchronous "
              f"ones (async SGD, EASGD, gossip) stop after {strag.get('async_epochs', 6)} epochs of updates counted "
              "over all workers, or 60 s; nan = target not reached within that.", "",
              "![stragglers](scaling/scaling_stragglers.png)", "",
              "| method | " + " | ".join(f"{s}x" for s in slows) + " | 8x / 1x |", "|" + "---|" * (len(slows) + 2)]
        for name, rows in strag["methods"].items():
            t = [rows[str(s)]["time_to_target_s"] for s in slows]
            L.append(f"| {name} | " + " | ".join(f"{v:.2f} s" for v in t) + f" | {t[-1] / t[0]:.2f} |")
        L.append("")
    batch = result.get("batch")
    if batch:
        L += ["## 4. Critical batch size (least squares)", "",
              f"{batch['rows']:,} x {batch['features']} Gaussian rows with covariance eigenvalues 1/sqrt(i), "
              "y = X w* (no noise). Mini-batch SGD from 0 with the step eta(B) = B / (E||x||^2 + (B-1) lambda_max) "
              "(best of 0.5, 1, 1.5 times it) until the loss is at most 1e-3 of the initial loss. "
              f"`daskpml.optim.critical_batch_size(X)` = **{batch['bound']:.1f}** "
              f"(E||x||^2 = {batch['mean_sq_norm']:.2f}, lambda_max = {batch['lambda_max']:.3f}).", "",
              "![batch](scaling/scaling_batch.png)", "",
              "| batch | steps | serial-step speedup | speedup / batch |", "|---|---|---|---|"]
        for B, rec in sorted(batch["batches"].items(), key=lambda kv: int(kv[0])):
            if rec["steps"]:
                L.append(f"| {B} | {rec['steps']:,} | {rec['speedup']:.1f} | {rec['speedup'] / int(B):.2f} |")
        L.append("")
    L += findings(result)
    L += ["## Reproducing on a cluster of several machines", "",
          "```bash",
          "# on the scheduler machine",
          "dask scheduler --port 8786",
          "# on each worker machine (one thread per worker, as here; or --nthreads = cores)",
          "dask worker tcp://SCHEDULER:8786 --nthreads 1",
          "```", "",
          "Then, from any machine that reaches the scheduler:", "",
          "```python",
          "from distributed import Client",
          "from daskpml import perf",
          "client = Client('tcp://SCHEDULER:8786')",
          "model = perf.calibrate(client)           # a, c, b, beta, gamma, round trip, compute rate",
          "perf.measure(client, 'allreduce', 10_000_000)      # seconds per round, measured",
          "model.comm_time(10_000_000, 16, 'allreduce')       # and predicted, for 16 workers",
          "model.speedup(model_bytes=8 * 1000, data_bytes=8e9, n_workers=16)",
          "```", "",
          "`python benchmarks/scaling.py --scheduler tcp://SCHEDULER:8786 --workers N` runs the same study on a "
          "running cluster of N workers instead of starting local processes (restart the workers between "
          "worker counts). On separate machines beta is the network's bisection bound rather than the "
          "memory's, and `cores` is None (each worker has its own), so the compute term keeps scaling.", ""]
    return "\n".join(L)


def findings(result: dict) -> list[str]:
    """What the numbers above say, computed from them."""
    out = []
    scaling = result.get("scaling", {})
    strong = {name: modes.get("strong", {}) for name, modes in scaling.items()}
    at2 = {name: runs["2"]["speedup"] for name, runs in strong.items() if "speedup" in runs.get("2", {})}
    if at2:
        best, worst = max(at2, key=at2.get), min(at2, key=at2.get)
        out.append(f"- With 2 workers (one per core) the strong speedup runs from {at2[worst]:.2f} ({worst}) to "
                   f"{at2[best]:.2f} ({best}); the ideal is 2.")
        waits = {name: runs["1"]["split"]["waiting"] for name, runs in strong.items() if "1" in runs}
        idle = sorted(n for n, w in waits.items() if w >= 0.5)
        if idle:
            out.append(f"- On 1 worker, the worker thread is idle at least half of the time in {len(idle)} of "
                       f"{len(waits)} families ({', '.join(idle)}): the driver's work and the scheduler's round "
                       "trip per iteration are as long as the compute at these sizes, and more workers cannot "
                       "shorten them. That is the ceiling on their speedup here; larger problems scale better.")
        at8 = {name: runs["8"] for name, runs in strong.items() if "8" in runs and "4" in runs}
        if at8:
            slower = sorted(n for n, r in at8.items() if r["time_s"] > strong[n]["2"]["time_s"])
            out.append(f"- From 2 to 8 workers (oversubscribed) {len(slower)} of {len(at8)} families get slower"
                       + (f" ({', '.join(slower)})" if slower else "") + "; the transfer share grows with the "
                       "workers: " + ", ".join(f"{n} {_pct(strong[n]['2']['split']['transfer'])} -> "
                                               f"{_pct(r['split']['transfer'])}" for n, r in at8.items()) + ".")
    strag = result.get("stragglers")
    if strag:
        ratio = {name: rows["8"]["time_to_target_s"] / rows["1"]["time_to_target_s"]
                 for name, rows in strag["methods"].items() if "8" in rows and "1" in rows}
        if ratio:
            out.append("- One worker 8x slower multiplies the time to target by " + ", ".join(
                f"{v:.2f} ({n})" for n, v in sorted(ratio.items(), key=lambda kv: kv[1])) + ".")
            faster = sorted(n for n, v in ratio.items() if v < 1)
            if faster:
                out.append(f"- {', '.join(faster)} got faster with a straggler: {strag['workers']} workers share "
                           f"{result['machine']['cores']} cores here, so a sleeping worker hands its core to the others, and "
                           "these methods never wait for it (its few, stale updates also weigh less). On a core per "
                           "worker expect a ratio near 1, not below.")
    batch = result.get("batch")
    if batch:
        rows = sorted(((int(b), r) for b, r in batch["batches"].items() if r["speedup"]), key=lambda br: br[0])
        linear = [b for b, r in rows if r["speedup"] >= 0.75 * b]
        out.append(f"- Least squares: the serial-step speedup stays within 25% of linear up to batch "
                   f"{max(linear)} and reaches {rows[-1][1]['speedup']:.0f} at batch {rows[-1][0]}, against the "
                   f"bound E||x||^2/lambda_max = {batch['bound']:.1f}.")
    return (["## What the numbers say", ""] + out + [""]) if out else []


def _size(s: int) -> str:
    for unit, f in (("MB", 1e6), ("KB", 1e3)):
        if s >= f:
            return f"{s / f:g} {unit}"
    return f"{s} B"


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small problems and sizes up to 1 MB")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--comm-repeats", type=int, default=5, help="repeats of each transfer timing")
    parser.add_argument("--only", nargs="*", choices=["scaling", "comm", "stragglers", "batch"])
    parser.add_argument("--families", nargs="*", help="subset of " + ", ".join(FAMILIES))
    parser.add_argument("--scheduler", help="use this running cluster (its workers) instead of local processes")
    parser.add_argument("--render", action="store_true", help="only rebuild SCALING.md and the plots")
    args = parser.parse_args()
    parts = set(args.only or ["scaling", "comm", "stragglers", "batch"])
    RESULTS.mkdir(exist_ok=True)
    result = json.loads(JSON.read_text()) if JSON.exists() else {}
    if not args.render:
        result.update(machine=machine(), date=time.strftime("%Y-%m-%d"), quick=args.quick, repeats=args.repeats,
                      comm_repeats=args.comm_repeats)
        if parts & {"scaling", "comm"}:
            for m in args.workers:
                print(f"{m} worker(s)", flush=True)
                with _cluster(args, m) as client:
                    if "scaling" in parts:
                        scaling_on(client, m, args, result.setdefault("scaling", {}))
                    if "comm" in parts and m >= 2:
                        comm_on(client, m, args, result.setdefault("comm", {}))
                JSON.write_text(json.dumps(result, indent=1, default=float))
        if "stragglers" in parts:
            print("stragglers (4 workers)", flush=True)
            with _cluster(args, 4) as client:
                result["stragglers"] = stragglers(client, args)
        if "batch" in parts:
            print("critical batch size", flush=True)
            result["batch"] = critical_batch(args)
    speedups(result.get("scaling", {}))
    predicted_speedups(result)
    JSON.write_text(json.dumps(result, indent=1, default=float))
    made = plots(result)
    DOC.write_text(render(result))
    print(f"wrote {JSON}, {', '.join(made)} and {DOC}")


@contextmanager
def _cluster(args, m: int):
    if args.scheduler:
        from distributed import Client

        with Client(args.scheduler) as client:
            have = len(client.scheduler_info(n_workers=-1)["workers"])
            if have != m:
                raise SystemExit(f"the cluster at {args.scheduler} has {have} workers; this step needs {m}.")
            yield client
    else:
        with cli_cluster(m) as client:
            yield client


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
