"""Shotgun Lasso against scikit-learn's Lasso: time to scikit-learn's objective.

    python benchmarks/bench_lasso.py [--rows 200000] [--cols 2000] [--alpha 1.0] [--blocks 2]

The data are ``make_regression(rows, cols, n_informative=cols // 10, noise=10,
random_state=0)`` (float64, C order, as the generator returns them). scikit-learn's
Lasso runs with its defaults (tol 1e-4, cyclic coordinate descent) on the NumPy array;
its final objective ``1/(2n) ||y - X w - b||^2 + alpha ||w||_1`` is the target.
daskpml's ``Lasso(solver="shotgun")`` runs on the threaded scheduler (2 threads, one
column block each) from the same array; its time to the target is read from
``history_`` (epoch by epoch, from the start of the solver) and its whole ``fit`` time
includes making the column blocks (a Fortran-ordered copy, as scikit-learn also makes).
Ratios are daskpml / scikit-learn.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def objective(X, y, coef, intercept, alpha):
    r = y - X @ coef - intercept
    return float(r @ r) / (2 * len(y)) + alpha * float(np.abs(coef).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=2_000)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--blocks", type=int, default=2)
    args = parser.parse_args()
    import dask
    from sklearn.datasets import make_regression
    from sklearn.linear_model import Lasso as SkLasso

    from daskpml.linear_model import Lasso

    X, y = make_regression(args.rows, args.cols, n_informative=args.cols // 10, noise=10.0, random_state=0)
    print(f"make_regression({args.rows:,} x {args.cols:,}), {X.nbytes / 2**30:.2f} GiB, Lasso alpha={args.alpha}")
    start = time.perf_counter()
    ref = SkLasso(alpha=args.alpha).fit(X, y)
    t_ref = time.perf_counter() - start
    f_ref = objective(X, y, ref.coef_, ref.intercept_, args.alpha)
    print(f"  scikit-learn Lasso: {t_ref:.2f} s, {ref.n_iter_} epochs, objective {f_ref:.8g}, "
          f"{np.count_nonzero(ref.coef_)} non-zero coefficients")

    dask.config.set(scheduler="threads", num_workers=2)
    start = time.perf_counter()
    model = Lasso(alpha=args.alpha, solver="shotgun", tol=1e-8, max_iter=200, random_state=0,
                  solver_kwargs={"n_blocks": args.blocks}).fit(X, y)
    t_fit = time.perf_counter() - start
    h = model.history_
    f_ours = objective(X, y, model.coef_, model.intercept_, args.alpha)
    reached = np.flatnonzero(h["objective"].values <= f_ref)
    setup = t_fit - float(h["time"][-1])
    print(f"  daskpml Lasso(solver='shotgun'): P = {model.n_parallel_} of {args.cols} "
          f"(rho estimate {h.attrs['rho']:.3f}), {model.n_iter_} epochs to tol 1e-8 in {t_fit:.2f} s "
          f"(set-up {setup:.2f} s), objective {f_ours:.10g}; coefficients differ from scikit-learn's by "
          f"{np.abs(model.coef_ - ref.coef_).max():.1e}")
    if len(reached):
        epoch = int(reached[0])
        t_to = setup + float(h["time"][epoch])
        print(f"  time to scikit-learn's objective: {t_to:.2f} s ({epoch + 1} epochs, set-up included): "
              f"{t_to / t_ref:.3f}x scikit-learn ({t_ref / t_to:.2f}x faster)")
    else:
        print("  daskpml did not reach scikit-learn's objective")


if __name__ == "__main__":
    main()
