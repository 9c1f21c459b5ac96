"""Blockwise NMF against scikit-learn, side by side in one run.

1. Dense 20,000 x 2,000 = rank-20 non-negative product + 0.1 uniform noise, k = 20,
   200 iterations: scikit-learn ``NMF(solver="cd")`` and ``"mu"`` against daskpml
   HALS and MU (same nndsvda initialization rule; the same algorithm, so the same
   error after the same iterations). Also accelerated HALS (``inner_iter="auto"``,
   Gillis & Glineur): the time until it reaches scikit-learn cd's 200-iteration
   error. Achieved GFLOP/s beside this machine's matrix-multiply peak, measured here.
2. Sparse 100,000 x 20,000 with 2M stored entries from a rank-32 non-negative
   model, k = 32 (scipy.sparse input for scikit-learn).
3. scikit-learn's digits, k = 10.

Usage::

    python benchmarks/bench_nmf.py [--quick] [--only dense|sparse|digits] [--repeat R]

daskpml runs on dask's threaded scheduler in this process (no cluster), with
single-threaded BLAS inside its tasks (one task per core); scikit-learn runs
with the BLAS threads it finds (all cores). Times are medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import NMF as SK
from threadpoolctl import threadpool_limits

from daskpml.decomposition import nmf


def median_time(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def gemm_peak() -> float:
    """GFLOP/s of a 4000^3 double-precision matrix product on all cores (best of 3)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((4000, 4000)), rng.random((4000, 4000))
    best = min(_timed(lambda: a @ b) for _ in range(3))
    return 2 * 4000 ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sklearn_fit(A, k, solver, max_iter, tol=0.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SK(k, solver=solver, init="nndsvda", max_iter=max_iter, tol=tol, random_state=0).fit(A)


def daskpml_fit(A, k, solver, max_iter, tol=0.0, inner_iter=1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with threadpool_limits(1, user_api="blas"):
            return nmf(A, k, solver=solver, init="nndsvda", max_iter=max_iter, tol=tol, random_state=0,
                       inner_iter=inner_iter, progress=False)


def time_to_error(A, k, target: float, repeat: int):
    """Accelerated HALS (inner_iter="auto"): wall time (initialization included) until the relative
    error first reaches ``target``, and the iteration; medians over ``repeat`` runs."""
    times, iters, finals = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = daskpml_fit(A, k, "hals", 200, inner_iter="auto")
        total = time.perf_counter() - t0
        hist = res.history
        setup = total - float(hist.time[-1])
        hit = np.flatnonzero(hist.relative_error.values <= target)
        finals.append(float(hist.relative_error[-1]))
        if len(hit):
            times.append(setup + float(hist.time[hit[0]]))
            iters.append(int(hit[0]))
    if not times:
        return None, None, statistics.median(finals), hist.attrs
    return statistics.median(times), int(statistics.median(iters)), statistics.median(finals), hist.attrs


def compare(title: str, A, k: int, max_iter: int, repeat: int, target: float, flops_per_iter: float | None):
    norm = float(np.sqrt((A.multiply(A)).sum())) if sp.issparse(A) else float(np.linalg.norm(A))
    print(f"\n== {title}")
    rows = {}
    for solver in ("cd", "mu"):
        t, model = median_time(lambda: sklearn_fit(A, k, solver, max_iter), repeat)
        rows[f"scikit-learn {solver}"] = (t, model.reconstruction_err_ / norm, model.n_iter_)
    for solver in ("hals", "mu"):
        t, res = median_time(lambda: daskpml_fit(A, k, solver, max_iter), repeat)
        rows[f"daskpml {solver}"] = (t, float(res.history.relative_error[-1]), res.n_iter)
        if solver == "hals":
            hist = res.history
    for name, (t, err, it) in rows.items():
        print(f"{name:18s} {t:8.2f} s   relative error {err:.6f}   iterations {it}")
    cd_t, cd_err, _ = rows["scikit-learn cd"]
    mu_t, mu_err, _ = rows["scikit-learn mu"]
    h_t, h_err, h_it = rows["daskpml hals"]
    m_t, m_err, _ = rows["daskpml mu"]
    print(f"daskpml hals vs scikit-learn cd: {cd_t / h_t:.2f}x faster (target >= {target}), "
          f"error {h_err:.6f} vs {cd_err:.6f} ({'<=' if h_err <= cd_err * (1 + 1e-9) else '>'})")
    print(f"daskpml hals vs scikit-learn mu: {mu_t / h_t:.2f}x faster, error {h_err:.6f} vs {mu_err:.6f}")
    print(f"daskpml mu   vs scikit-learn mu: {mu_t / m_t:.2f}x faster, error {m_err:.6f} vs {mu_err:.6f}")
    t_fast, it_fast, final_fast, attrs = time_to_error(A, k, cd_err, repeat)
    if t_fast is None:
        print(f"daskpml hals, inner_iter='auto': did not reach {cd_err:.6f} in 200 iterations "
              f"(final {final_fast:.6f})")
    else:
        print(f"daskpml hals, inner_iter='auto' (up to {attrs['max_inner_w']}/{attrs['max_inner_h']} updates of W/H "
              f"per pass over A): scikit-learn cd's 200-iteration error at iteration {it_fast}, {t_fast:.2f} s: "
              f"{cd_t / t_fast:.2f}x faster (target >= {target}); after 200 iterations {final_fast:.6f}")
    iter_time = float(hist.time[-1] - hist.time[0]) / max(h_it, 1)
    print(f"daskpml hals: {iter_time * 1e3:.1f} ms per iteration, {int(hist.bytes[-1]):,} bytes between "
          f"tasks per iteration (A: {A.data.nbytes if sp.issparse(A) else A.nbytes:,} bytes, never moved)")
    if flops_per_iter is not None:
        print(f"daskpml hals: {flops_per_iter / iter_time / 1e9:.1f} GFLOP/s in the iterations "
              f"(matrix-multiply peak here: {gemm_peak():.1f} GFLOP/s)")


def dense(quick: bool, repeat: int) -> None:
    m, n, k = (4000, 800, 20) if quick else (20_000, 2_000, 20)
    rng = np.random.default_rng(0)
    A = rng.random((m, k)) @ rng.random((k, n)) + 0.1 * rng.random((m, n))
    compare(f"dense {m:,} x {n:,}, rank {k} + 0.1 uniform noise, k = {k}, 200 iterations", A, k, 200,
            repeat, 4, 4.0 * m * n * k)


def sparse(quick: bool, repeat: int) -> None:
    m, n, k, nnz = (20_000, 4_000, 32, 400_000) if quick else (100_000, 20_000, 32, 2_000_000)
    rng = np.random.default_rng(1)
    W, H = rng.random((m, k)), rng.random((k, n))
    flat = np.unique(rng.integers(0, m * n, nnz))
    r, c = np.divmod(flat, n)
    values = np.einsum("ij,ji->i", W[r], H[:, c])
    A = sp.csr_matrix((values, (r, c)), shape=(m, n))
    compare(f"sparse {m:,} x {n:,}, {A.nnz:,} stored entries of a rank-{k} model, k = {k}, 200 iterations",
            A, k, 200, repeat, 3, None)


def digits() -> None:
    from sklearn.datasets import load_digits

    X = load_digits().data
    norm = np.linalg.norm(X)
    print("\n== digits (1797 x 64), k = 10, tol 1e-4, max_iter 200")
    sk = sklearn_fit(X, 10, "cd", 200, tol=1e-4)
    res = daskpml_fit(X, 10, "hals", 200, tol=1e-4)
    ours = float(res.history.relative_error[-1])
    theirs = sk.reconstruction_err_ / norm
    print(f"relative error: daskpml hals {ours:.6f} ({res.n_iter} iterations), scikit-learn cd {theirs:.6f} "
          f"({sk.n_iter_} iterations): {'<=' if ours <= theirs * (1 + 1e-9) else '>'} (target <=)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small sizes (a smoke test).")
    parser.add_argument("--only", choices=["dense", "sparse", "digits"], action="append")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per timing (median).")
    args = parser.parse_args()
    only = args.only or ["dense", "sparse", "digits"]
    if "dense" in only:
        dense(args.quick, args.repeat)
    if "sparse" in only:
        sparse(args.quick, args.repeat)
    if "digits" in only:
        digits()


if __name__ == "__main__":
    main()
