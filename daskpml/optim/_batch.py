"""Full-batch synchronous solvers: gradient descent, L-BFGS, Newton-CG, FISTA.

Each takes an :class:`~daskpml.optim.Objective` and a starting point and
returns an :class:`~daskpml.optim.OptimizeResult`. The parameters live on the
client (O(model) memory); every objective or Hessian-vector evaluation is one
communication round (one tree all-reduce, one ``compute``), so the history's
``rounds`` column counts exactly the materialization points.

Communication cost per round (``|W|`` parameter bytes, ``P`` chunks, ``s`` the
fan-in): broadcast ``P |W|`` bytes and reduce ``(P - 1) (|W| + 8)`` bytes along
``ceil(log_s P)`` levels, so about ``2 a ceil(log_s P) + b (|W| P + (P - 1) |W|)``
seconds with latency ``a`` and inverse bandwidth ``b``; the bound for an optimal
all-reduce (reduce-scatter + all-gather) is ``2 a log2 P + 2 b (P - 1)/P |W|``.
Rounds per iteration: gradient descent 1 + rejected trial steps, L-BFGS about 1
(1 + extra line-search trials), Newton-CG 1 + the CG iterations, FISTA 2.
"""

from __future__ import annotations

import os
from typing import Callable, Literal

import numpy as np

from ._objective import Objective
from ._ranks import on_ranks
from ._run import OptimizeResult, Run


def _require_smooth_penalty(objective: Objective, solver: str) -> None:
    if objective.penalty.l1 and objective.lam:
        raise ValueError(f"{solver} needs a smooth penalty, but this objective has an L1 part; "
                         "use solver='proximal_gradient' (FISTA) or 'sgd' for L1 and elastic-net penalties.")


#: shorter steps tried before gradient descent declares that no decrease is representable
STAGNATION_TRIALS = 8


def _max_abs(g: np.ndarray) -> float:
    return float(np.max(np.abs(g))) if g.size else 0.0


@on_ranks
def gradient_descent(objective: Objective, theta0: np.ndarray, *, step: float | Literal["backtracking"] = "backtracking",
                     max_iter: int = 1000, tol: float = 1e-4, callback: Callable | None = None,
                     progress: bool | None = None, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """Full-batch gradient descent with a fixed step or Armijo backtracking.

    With ``step="backtracking"`` each iteration tries ``t`` (twice the last accepted
    step), halving it until ``F(theta - t g) <= F(theta) - t/2 ||g||^2``; the accepted
    trial's gradient is reused, so an iteration is one round plus one per rejection.
    Stops when ``max |g| <= tol``.

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    step : float or "backtracking"
        A fixed step, or Armijo backtracking.
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
    tol : float
        Stopping tolerance (see the method's description).
    callback : callable(record) -> bool, optional
        Called after every history row with the row, ``iteration`` and the current ``theta``; a true return value stops the solver with the model it has.
    progress : bool, optional
        A progress line (default: on a terminal, ``daskpml.progress``).
    checkpoint : str or os.PathLike, optional
        A folder for snapshots of the solver's state and history.
    checkpoint_every : int, default 10
        Iterations (updates for the asynchronous solvers) between snapshots.
    resume : bool, default False
        Continue from the newest snapshot in ``checkpoint``; the result equals an uninterrupted run's.

    Returns
    -------
    result : OptimizeResult
        The packed parameters ``theta``, the history, ``n_iter``, ``converged``, ``message`` and ``status``.

    References
    ----------
    Nocedal & Wright, *Numerical Optimization*, 2nd ed., section 3.1.

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((300, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> coef, b, res = fit_linear(X, y, family="squared", solver="gradient_descent", lam=1e-6, max_iter=5000)
    >>> np.round(coef, 1).tolist(), res.history.sizes["iteration"] > 0
    ([1.0, -2.0, 0.5], True)
    """
    _require_smooth_penalty(objective, "gradient_descent")
    fixed = step != "backtracking"
    if fixed and not float(step) > 0:
        raise ValueError(f"step must be 'backtracking' or a positive number, got {step!r}.")
    run = Run("gradient_descent", objective, max_iter=max_iter, tol=tol, callback=callback,
              progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, step=str(step))
    snap = run.snapshot
    if snap is None:
        theta = np.array(theta0, dtype=np.float64)
        f, g = objective.value_grad(theta)
        t = float(step) if fixed else 1.0 / max(np.linalg.norm(g), 1e-12)
        it = 0
    else:
        theta, g, f, t, it = snap.arrays["theta"], snap.arrays["g"], snap.state["f"], snap.state["t"], snap.iteration
    converged = _max_abs(g) <= tol
    status = ""
    while not converged and it < max_iter:
        it += 1
        gg = float(g @ g)
        while True:
            trial = theta - t * g
            ft, gt = objective.value_grad(trial)
            if fixed or ft <= f - 0.5 * t * gg or t < 1e-20:
                break
            t *= 0.5
        if not fixed and not ft < f:
            # Armijo accepted a step only because its decrease rounds to zero (or the steps
            # ran below 1e-20). A few shorter steps may still decrease f; if none does, no
            # decrease is representable from here, and doubling and halving the step again
            # would repeat this iteration until max_iter.
            for _ in range(STAGNATION_TRIALS):
                t *= 0.5
                trial = theta - t * g
                ft, gt = objective.value_grad(trial)
                if ft < f:
                    break
            else:
                status = "stagnated"
                break
        theta, f, g = trial, ft, gt
        converged = _max_abs(g) <= tol
        stop = run.record(it, theta, f, _max_abs(g), step=t)
        if stop or not np.isfinite(f):
            break
        if not fixed:
            t *= 2.0
        run.save(it, final=converged, arrays=dict(theta=theta, g=g), f=float(f), t=t)
    if status == "stagnated":
        it -= 1                                 # the last trial changed nothing
        run.save(it, final=True, arrays=dict(theta=theta, g=g), f=float(f), t=t)
        return run.finish(theta, it, False, f"stopped after iteration {it}: no decrease of the objective "
                          f"is representable in floating point from here (max |grad| {_max_abs(g):.3g} > "
                          f"tol {tol:g}); the point is as accurate as this precision allows", status="stagnated")
    return run.finish(theta, it, converged, "" if np.isfinite(f) else "the objective diverged; use a smaller step")


def _cubic_min(a: float, fa: float, da: float, b: float, fb: float, db: float) -> float | None:
    """Minimizer of the cubic interpolating (a, fa, da), (b, fb, db), or None."""
    d1 = da + db - 3 * (fa - fb) / (a - b)
    sq = d1 * d1 - da * db
    if sq < 0:
        return None
    d2 = np.sign(b - a) * np.sqrt(sq)
    x = b - (b - a) * (db + d2 - d1) / (db - da + 2 * d2)
    return float(x) if np.isfinite(x) else None


def wolfe_line_search(phi: Callable[[float], tuple[float, float]], f0: float, d0: float, alpha: float, *,
                      c1: float = 1e-4, c2: float = 0.9, max_evals: int = 20) -> float | None:
    """Step satisfying the strong Wolfe conditions (Nocedal & Wright, algorithms 3.5-3.6).

    ``phi(a)`` returns ``(F(theta + a d), grad F(theta + a d) . d)``; the caller
    caches the evaluations so the accepted one is reused. Returns None on failure.

    Parameters
    ----------
    phi : callable
        ``phi(a)`` returns ``(F(theta + a d), grad F(theta + a d) . d)``.
    f0 : float
        ``phi(0)``'s value.
    d0 : float
        ``phi(0)``'s slope (negative).
    alpha : float
        The first trial step.
    c1 : float, default 1e-4
        Sufficient-decrease constant.
    c2 : float, default 0.9
        Curvature constant.
    max_evals : int, default 20
        Evaluations of ``phi`` at most.

    Returns
    -------
    step : float or None
        A step satisfying the strong Wolfe conditions, or None on failure.

    Examples
    --------
    >>> phi = lambda a: ((a - 2.0) ** 2, 2.0 * (a - 2.0))     # F along d, minimum at 2
    >>> wolfe_line_search(phi, 4.0, -4.0, 1.0)             # the first trial meets both conditions
    1.0
    """
    evals = 0

    def zoom(lo: float, hi: float, f_lo: float, d_lo: float, f_hi: float, d_hi: float) -> float | None:
        nonlocal evals
        while evals < max_evals:
            finite = np.isfinite(f_lo) and np.isfinite(f_hi) and np.isfinite(d_lo) and np.isfinite(d_hi)
            a = _cubic_min(lo, f_lo, d_lo, hi, f_hi, d_hi) if finite else None
            width = abs(hi - lo)
            if a is None or not (min(lo, hi) + 0.1 * width <= a <= max(lo, hi) - 0.1 * width):
                a = 0.5 * (lo + hi)
            f, d = phi(a)
            evals += 1
            if not np.isfinite(f) or f > f0 + c1 * a * d0 or f >= f_lo:
                hi, f_hi, d_hi = a, f, d
            else:
                if abs(d) <= -c2 * d0:
                    return a
                if d * (hi - lo) >= 0:
                    hi, f_hi, d_hi = lo, f_lo, d_lo
                lo, f_lo, d_lo = a, f, d
            if width < 1e-16:
                break
        return None

    a_prev, f_prev, d_prev = 0.0, f0, d0
    for i in range(max_evals):
        f, d = phi(alpha)
        evals += 1
        if not (np.isfinite(f) and np.isfinite(d)):
            return zoom(a_prev, alpha, f_prev, d_prev, np.inf, np.inf)
        if f > f0 + c1 * alpha * d0 or (i > 0 and f >= f_prev):
            return zoom(a_prev, alpha, f_prev, d_prev, f, d)
        if abs(d) <= -c2 * d0:
            return alpha
        if d >= 0:
            return zoom(alpha, a_prev, f, d, f_prev, d_prev)
        a_prev, f_prev, d_prev = alpha, f, d
        alpha *= 2.0
    return None


class _Evaluations:
    """Caches ``value_grad`` along a search direction so an accepted trial costs nothing more."""

    def __init__(self, objective: Objective, theta: np.ndarray, direction: np.ndarray) -> None:
        self.objective, self.theta, self.direction = objective, theta, direction
        self.cache: dict[float, tuple[float, np.ndarray]] = {}

    def __call__(self, a: float) -> tuple[float, float]:
        if a not in self.cache:
            self.cache[a] = self.objective.value_grad(self.theta + a * self.direction)
        f, g = self.cache[a]
        return f, float(g @ self.direction)

    def at(self, a: float) -> tuple[np.ndarray, float, np.ndarray]:
        self(a)
        f, g = self.cache[a]
        return self.theta + a * self.direction, f, g


def _two_loop(g: np.ndarray, s_list: list, y_list: list) -> np.ndarray:
    q = -g.copy()
    alphas = []
    for s, y in zip(reversed(s_list), reversed(y_list)):
        rho = 1.0 / float(y @ s)
        a = rho * float(s @ q)
        q -= a * y
        alphas.append((rho, a))
    if s_list:
        q *= float(s_list[-1] @ y_list[-1]) / float(y_list[-1] @ y_list[-1])
    for (s, y), (rho, a) in zip(zip(s_list, y_list), reversed(alphas)):
        q += (a - rho * float(y @ q)) * s
    return q


@on_ranks
def lbfgs(objective: Objective, theta0: np.ndarray, *, m: int = 10, max_iter: int = 100, tol: float = 1e-4,
          ftol: float = 64 * np.finfo(float).eps, callback: Callable | None = None,
          progress: bool | None = None, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """Limited-memory BFGS with a strong-Wolfe line search.

    The ``m`` correction pairs and the two-loop recursion live on the client
    (``O(m |W|)``); each trial point is one distributed round returning loss and
    gradient together, and the unit step is accepted in most iterations, so an
    iteration costs about one pass over the data. Stops when ``max |g| <= tol``
    or the relative decrease of ``F`` falls below ``ftol`` (SciPy's rules).

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    m : int, default 10
        Correction pairs kept.
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
    tol : float
        Stopping tolerance (see the method's description).
    ftol : float
        Relative decrease of the objective below which the solver stops (SciPy's rule).
    callback : callable(record) -> bool, optional
        Called after every history row with the row, ``iteration`` and the current ``theta``; a true return value stops the solver with the model it has.
    progress : bool, optional
        A progress line (default: on a terminal, ``daskpml.progress``).
    checkpoint : str or os.PathLike, optional
        A folder for snapshots of the solver's state and history.
    checkpoint_every : int, default 10
        Iterations (updates for the asynchronous solvers) between snapshots.
    resume : bool, default False
        Continue from the newest snapshot in ``checkpoint``; the result equals an uninterrupted run's.

    Returns
    -------
    result : OptimizeResult
        The packed parameters ``theta``, the history, ``n_iter``, ``converged``, ``message`` and ``status``.

    References
    ----------
    Liu & Nocedal (1989), *On the limited memory BFGS method for large scale
    optimization*. Nocedal & Wright, algorithm 7.4.

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((300, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> coef, b, res = fit_linear(X, y, family="squared", solver="lbfgs", lam=1e-6)
    >>> np.round(coef, 2).tolist(), res.history.sizes["iteration"] > 0
    ([1.0, -2.0, 0.5], True)
    """
    _require_smooth_penalty(objective, "lbfgs")
    run = Run("lbfgs", objective, max_iter=max_iter, tol=tol, callback=callback, progress=progress,
              checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, m=m)
    snap = run.snapshot
    s_list: list[np.ndarray] = []
    y_list: list[np.ndarray] = []
    if snap is None:
        theta = np.array(theta0, dtype=np.float64)
        f, g = objective.value_grad(theta)
        converged, message, it = _max_abs(g) <= tol, "", 0
    else:
        theta, g, f, it = snap.arrays["theta"], snap.arrays["g"], snap.state["f"], snap.iteration
        s_list, y_list = list(snap.arrays["s"]), list(snap.arrays["y"])
        converged, message = bool(snap.state["converged"]), ""
    while not converged and it < max_iter:
        it += 1
        d = _two_loop(g, s_list, y_list)
        slope = float(g @ d)
        if slope >= 0:                          # lost descent: restart from the gradient
            s_list.clear(), y_list.clear()
            d, slope = -g, -float(g @ g)
        a0 = 1.0 if s_list else min(1.0, 1.0 / max(np.linalg.norm(g), 1e-12))
        evals = _Evaluations(objective, theta, d)
        a = wolfe_line_search(evals, f, slope, a0)
        if a is None:
            message = "the line search found no acceptable step (the objective may be too flat to make progress)"
            converged = _max_abs(g) <= max(tol, 1e-6)
            break
        new_theta, f_new, g_new = evals.at(a)
        s, yv = new_theta - theta, g_new - g
        if float(s @ yv) > 1e-10 * float(yv @ yv):
            s_list.append(s), y_list.append(yv)
            if len(s_list) > m:
                s_list.pop(0), y_list.pop(0)
        small_decrease = (f - f_new) <= ftol * max(abs(f), abs(f_new), 1.0)
        theta, f, g = new_theta, f_new, g_new
        converged = _max_abs(g) <= tol or small_decrease
        if run.record(it, theta, f, _max_abs(g), step=a, evaluations=len(evals.cache)):
            break
        run.save(it, final=converged, f=float(f), converged=bool(converged), arrays=dict(
            theta=theta, g=g, s=np.reshape(s_list, (len(s_list), len(theta))),
            y=np.reshape(y_list, (len(y_list), len(theta)))))
    return run.finish(theta, it, converged, message)


@on_ranks
def newton_cg(objective: Objective, theta0: np.ndarray, *, max_iter: int = 50, tol: float = 1e-4,
              max_cg: int = 50, callback: Callable | None = None, progress: bool | None = None,
              checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """Truncated Newton: conjugate gradients on ``H d = -g`` with distributed
    Hessian-vector products, then a Wolfe line search from the unit step.

    Each CG step is one round (``X.T @ (curvature * (X @ v))`` chunk by chunk, in one
    sweep); CG stops at the Eisenstat-Walker tolerance ``min(0.5, sqrt|g|) |g|`` or on
    negative curvature.

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
    tol : float
        Stopping tolerance (see the method's description).
    max_cg : int
        Conjugate-gradient steps per Newton iteration at most.
    callback : callable(record) -> bool, optional
        Called after every history row with the row, ``iteration`` and the current ``theta``; a true return value stops the solver with the model it has.
    progress : bool, optional
        A progress line (default: on a terminal, ``daskpml.progress``).
    checkpoint : str or os.PathLike, optional
        A folder for snapshots of the solver's state and history.
    checkpoint_every : int, default 10
        Iterations (updates for the asynchronous solvers) between snapshots.
    resume : bool, default False
        Continue from the newest snapshot in ``checkpoint``; the result equals an uninterrupted run's.

    Returns
    -------
    result : OptimizeResult
        The packed parameters ``theta``, the history, ``n_iter``, ``converged``, ``message`` and ``status``.

    References
    ----------
    Nocedal & Wright, algorithm 7.1 (line search Newton-CG).

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((300, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> coef, b, res = fit_linear(X, y, family="squared", solver="newton_cg", lam=1e-6)
    >>> np.round(coef, 2).tolist(), res.history.sizes["iteration"] > 0
    ([1.0, -2.0, 0.5], True)
    """
    _require_smooth_penalty(objective, "newton_cg")
    if not objective.family.smooth:
        objective.family.hess_dz(None, None, None)
    run = Run("newton_cg", objective, max_iter=max_iter, tol=tol, callback=callback, progress=progress,
              checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, max_cg=max_cg)
    snap = run.snapshot
    if snap is None:
        theta = np.array(theta0, dtype=np.float64)
        f, g = objective.value_grad(theta)
        it = 0
    else:
        theta, g, f, it = snap.arrays["theta"], snap.arrays["g"], snap.state["f"], snap.iteration
    converged, message = _max_abs(g) <= tol, ""
    while not converged and it < max_iter:
        it += 1
        gnorm = float(np.linalg.norm(g))
        eta = min(0.5, np.sqrt(gnorm)) * gnorm
        d = np.zeros_like(g)
        r, p = -g.copy(), -g.copy()
        rr = float(r @ r)
        n_cg = 0
        for n_cg in range(1, max_cg + 1):
            Hp = objective.hvp(theta, p)
            curv = float(p @ Hp)
            if curv <= 1e-16 * float(p @ p):
                if n_cg == 1:
                    d = -g
                break
            alpha = rr / curv
            d += alpha * p
            r -= alpha * Hp
            rr_new = float(r @ r)
            if np.sqrt(rr_new) <= eta:
                break
            p = r + (rr_new / rr) * p
            rr = rr_new
        evals = _Evaluations(objective, theta, d)
        a = wolfe_line_search(evals, f, float(g @ d), 1.0)
        if a is None:
            message = "the line search found no acceptable step"
            converged = _max_abs(g) <= max(tol, 1e-6)
            break
        theta, f, g = evals.at(a)
        converged = _max_abs(g) <= tol
        if run.record(it, theta, f, _max_abs(g), step=a, cg_iterations=n_cg):
            break
        run.save(it, final=converged, arrays=dict(theta=theta, g=g), f=float(f))
    return run.finish(theta, it, converged, message)


@on_ranks
def proximal_gradient(objective: Objective, theta0: np.ndarray, *, max_iter: int = 1000, tol: float = 1e-4,
                      accelerate: bool = True, callback: Callable | None = None,
                      progress: bool | None = None, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """FISTA (accelerated proximal gradient) with backtracking on the Lipschitz
    constant and adaptive restart, for L1 and elastic-net penalties.

    The smooth part (loss + L2 part) is handled by gradients, the L1 part by soft
    thresholding of the coefficients. Two rounds per iteration (the trial point and
    the extrapolated point). Stops when the gradient mapping ``L |x+ - y|`` has
    max-norm ``<= tol``.

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
    tol : float
        Stopping tolerance (see the method's description).
    accelerate : bool, default True
        FISTA's momentum (False: plain proximal gradient).
    callback : callable(record) -> bool, optional
        Called after every history row with the row, ``iteration`` and the current ``theta``; a true return value stops the solver with the model it has.
    progress : bool, optional
        A progress line (default: on a terminal, ``daskpml.progress``).
    checkpoint : str or os.PathLike, optional
        A folder for snapshots of the solver's state and history.
    checkpoint_every : int, default 10
        Iterations (updates for the asynchronous solvers) between snapshots.
    resume : bool, default False
        Continue from the newest snapshot in ``checkpoint``; the result equals an uninterrupted run's.

    Returns
    -------
    result : OptimizeResult
        The packed parameters ``theta``, the history, ``n_iter``, ``converged``, ``message`` and ``status``.

    References
    ----------
    Beck & Teboulle (2009), *A fast iterative shrinkage-thresholding algorithm for
    linear inverse problems*. O'Donoghue & Candes (2015), *Adaptive restart for
    accelerated gradient schemes*.

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((300, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> coef, b, res = fit_linear(X, y, family="squared", solver="proximal_gradient", lam=1e-6, max_iter=5000)
    >>> np.round(coef, 1).tolist(), res.history.sizes["iteration"] > 0
    ([1.0, -2.0, 0.5], True)
    """
    run = Run("proximal_gradient", objective, max_iter=max_iter, tol=tol, callback=callback,
              progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, accelerate=int(accelerate))
    snap = run.snapshot
    if snap is None:
        x = np.array(theta0, dtype=np.float64)
        y, t = x.copy(), 1.0
        fy, gy = objective.value_grad(y)
        F_x = objective.total(fy, x)
        L = max(np.linalg.norm(gy), 1e-12)
        converged, it = False, 0
    else:
        x, y, gy = snap.arrays["x"], snap.arrays["y"], snap.arrays["gy"]
        t, fy, F_x, L, converged = (snap.state[k] for k in ("t", "fy", "F_x", "L", "converged"))
        it = snap.iteration
    while it < max_iter:
        it += 1
        while True:
            x_new = objective.prox(y - gy / L, 1.0 / L)
            diff = x_new - y
            fx, gx = objective.value_grad(x_new)
            if fx <= fy + float(gy @ diff) + 0.5 * L * float(diff @ diff) * (1 + 1e-12) or L > 1e20:
                break
            L *= 2.0
        mapping = L * _max_abs(diff)
        F_new = objective.total(fx, x_new)
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t)) if accelerate else 1.0
        if F_new > F_x:                           # adaptive restart
            t_new = 1.0
        beta = (t - 1.0) / t_new if accelerate and F_new <= F_x else 0.0
        converged = mapping <= tol
        stop = run.record(it, x_new, F_new, mapping, lipschitz=L)
        if beta > 0:
            y = x_new + beta * (x_new - x)
            fy, gy = objective.value_grad(y)
        else:
            y, fy, gy = x_new, fx, gx
        x, t, F_x = x_new, t_new, F_new
        L *= 0.9
        if converged or stop:
            break
        run.save(it, arrays=dict(x=x, y=y, gy=gy), t=float(t), fy=float(fy), F_x=float(F_x), L=float(L),
                 converged=bool(converged))
    return run.finish(x, it, converged)
