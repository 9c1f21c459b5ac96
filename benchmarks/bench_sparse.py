"""Distributed SpMV / SpMM against one SciPy CSR product in one process.

    python benchmarks/bench_sparse.py [--quick]

Workload: make_sbm(1_000_000 nodes, in_degree=16, out_degree=4: about 20 stored entries per row),
unshuffled and shuffled. Anchor: ``M @ x`` / ``M @ X`` (16 columns) with one scipy.sparse CSR
matrix in this process. daskpml: ``(A @ x).compute()`` with ``A`` persisted on a local cluster
and ``x`` a NumPy array on the client, so the time includes building the graph, sending ``x``
to the workers and gathering the result. Two layouts are timed: 2 single-threaded worker
processes, and 1 worker with 2 threads in this process; the faster one is reported.

Also: effective GB/s of each product beside this machine's memory bandwidth (a NumPy copy),
and the per-call overhead of a distributed SpMV on a 1,000-node graph, beside the round trip of
a task that does nothing on the same cluster (the floor that dask.distributed sets).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from _common import machine


def median_time(func, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(n_bytes: int) -> float:
    src = np.ones(n_bytes // 8)
    dst = np.empty_like(src)
    t = median_time(lambda: np.copyto(dst, src), 5)
    return 2 * src.nbytes / t / 1e9  # read + write


def spmv_bytes(nnz: int, n: int, k: int) -> int:
    """Bytes an SpMV/SpMM must move: values + column indices + row pointers + x + y."""
    return nnz * (8 + 4) + (n + 1) * 4 + 2 * n * k * 8


LAYOUTS = {"2 workers x 1 thread (processes)": dict(n_workers=2, threads_per_worker=1, processes=True),
           "1 worker x 2 threads (in-process)": dict(n_workers=1, threads_per_worker=2, processes=False)}


def run_layout(layout: dict, n: int, shuffle: bool, blocks: int, reps: int, x, X, M) -> dict:
    from distributed import Client, LocalCluster

    from daskpml.datasets import make_sbm

    with LocalCluster(dashboard_address=None, **layout) as cluster, Client(cluster) as client:
        A, _ = make_sbm(n, 10, in_degree=16, out_degree=4, shuffle=shuffle, chunks=-(-n // blocks), random_state=0)
        A = A.persist()
        client.wait_for_workers(layout["n_workers"])
        from distributed import wait

        wait(A.blocks)
        y = (A @ x).compute()
        Y = (A @ X).compute()
        ok = bool(np.allclose(y, M @ x) and np.allclose(Y, M @ X))
        t_spmv = median_time(lambda: (A @ x).compute(), reps)
        t_spmm = median_time(lambda: (A @ X).compute(), max(3, reps // 2))
    return {"spmv_s": t_spmv, "spmm_s": t_spmm, "correct": ok}


def overhead(layout: dict, reps: int) -> dict:
    from distributed import Client, LocalCluster, wait

    from daskpml.datasets import make_sbm

    def noop():
        return None

    with LocalCluster(dashboard_address=None, **layout) as cluster, Client(cluster) as client:
        A, _ = make_sbm(1000, 4, in_degree=8, out_degree=2, random_state=0)
        A = A.persist()
        wait(A.blocks)
        x = np.random.default_rng(0).random(1000)
        per_call = median_time(lambda: (A @ x).compute(), reps, warmup=5)
        floor = median_time(lambda: client.submit(noop, pure=False).result(), reps, warmup=5)
        chain = 100

        def chained():
            v = x
            for _ in range(chain):
                v = A @ v
            v.compute()

        pipelined = median_time(chained, 3) / chain
    return {"per_call_s": per_call, "noop_roundtrip_s": floor, "pipelined_per_spmv_s": pipelined}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100k nodes, fewer repeats (under a minute)")
    parser.add_argument("--blocks", type=int, default=16, help="row blocks of the distributed matrix")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    reps = 3 if args.quick else 7

    from daskpml.datasets import make_sbm

    info = machine()
    info["copy_GBps"] = copy_bandwidth(128 * 2**20 if args.quick else 1024 * 2**20)
    print(f"machine: {info['cores']} cores, {info['memory_GiB']} GiB, NumPy copy bandwidth "
          f"{info['copy_GBps']:.1f} GB/s (read + write)")
    rng = np.random.default_rng(0)
    x, X = rng.random(n), rng.random((n, 16))
    rows = []
    for shuffle in (False, True):
        A, _ = make_sbm(n, 10, in_degree=16, out_degree=4, shuffle=shuffle, chunks=-(-n // args.blocks),
                        random_state=0)
        M = A.compute(scheduler="threads")
        nnz = M.nnz
        anchor_spmv = median_time(lambda: M @ x, reps)
        anchor_spmm = median_time(lambda: M @ X, max(3, reps // 2))
        results = {name: run_layout(layout, n, shuffle, args.blocks, reps, x, X, M) for name, layout in LAYOUTS.items()}
        for op, anchor, k in (("SpMV", anchor_spmv, 1), ("SpMM-16", anchor_spmm, 16)):
            key = "spmv_s" if k == 1 else "spmm_s"
            best = min(results, key=lambda name: results[name][key])
            t = results[best][key]
            gbytes = spmv_bytes(nnz, n, k) / 1e9
            rows.append({"workload": f"sbm n={n} nnz={nnz} {'shuffled' if shuffle else 'unshuffled'}", "op": op,
                         "scipy_s": anchor, "daskpml_s": t, "ratio": anchor / t, "layout": best,
                         "scipy_GBps": gbytes / anchor, "daskpml_GBps": gbytes / t,
                         "all_layouts_s": {name: r[key] for name, r in results.items()},
                         "correct": all(r["correct"] for r in results.values())})
        M = None                                # free the anchor matrix before the next layout
    print(f"\n{'workload':<42} {'op':<8} {'scipy s':>9} {'daskpml s':>10} {'ratio':>6} {'GB/s scipy':>11} "
          f"{'GB/s daskpml':>13}  layout (other layout s)")
    for r in rows:
        other = ", ".join(f"{v:.4f}" for name, v in r["all_layouts_s"].items() if name != r["layout"])
        print(f"{r['workload']:<42} {r['op']:<8} {r['scipy_s']:>9.4f} {r['daskpml_s']:>10.4f} {r['ratio']:>6.2f} "
              f"{r['scipy_GBps']:>11.2f} {r['daskpml_GBps']:>13.2f}  {r['layout']} ({other}){'' if r['correct'] else '  WRONG RESULT'}")
    print(f"(memory bandwidth reference: NumPy copy {info['copy_GBps']:.1f} GB/s)")

    over = {name: overhead(layout, 15 if args.quick else 50) for name, layout in LAYOUTS.items()}
    print("\nper-call overhead, distributed SpMV on a 1,000-node graph (target < 5 ms):")
    for name, o in over.items():
        print(f"  {name}: SpMV round trip {o['per_call_s'] * 1e3:.2f} ms | no-op task round trip "
              f"{o['noop_roundtrip_s'] * 1e3:.2f} ms | per SpMV in a chain of 100 {o['pipelined_per_spmv_s'] * 1e3:.2f} ms")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_sparse.json").write_text(json.dumps({"machine": info, "rows": rows, "overhead": over}, indent=2))
    print(f"\nwrote {out / 'bench_sparse.json'}")


if __name__ == "__main__":
    main()
