"""SMO for the binary C-SVM dual with the kernel matrix in memory (numba).

The solver is libsvm's (Fan, Chen and Lin, 2005): second-order working-set selection
(WSS3), the analytic two-variable update with clipping, and the bias from the free
variables. The kernel matrix is computed once with BLAS (:func:`kernel_matrix`) instead
of row by row with scalar loops, and the solver may start from any feasible ``alpha``
(a cascade node starts from its children's solutions).

Dual: minimize ``f(a) = 1/2 a^T Q a - sum(a)`` with ``Q_ij = y_i y_j K_ij``,
``0 <= a <= C`` and ``y^T a = 0``.
"""

from __future__ import annotations

from .._numba import njit
import numpy as np

TAU = 1e-12


@njit(cache=True, nogil=True)
def gradient(K, y, alpha):
    """``G = Q alpha - 1`` (uses only the columns with ``alpha > 0``)."""
    n = y.shape[0]
    G = -np.ones(n)
    for j in range(n):
        a = alpha[j]
        if a != 0.0:
            s = a * y[j]
            for k in range(n):
                G[k] += y[k] * s * K[j, k]
    return G


@njit(cache=True, nogil=True)
def smo(K, y, alpha, C, eps, max_iter):
    """Solve in place from a feasible ``alpha``; returns ``(G, rho, n_iter)``.

    ``K`` is the symmetric kernel matrix (C-contiguous), ``y`` holds +1/-1.
    Stops when the maximal violating pair's gap ``Gmax + Gmax2`` is below ``eps``
    (libsvm's ``tol``) or after ``max_iter`` updates.
    """
    n = y.shape[0]
    G = gradient(K, y, alpha)
    it = 0
    while it < max_iter:
        # i: the most violating index in I_up
        gmax = -np.inf
        i = -1
        for t in range(n):
            if y[t] > 0:
                if alpha[t] < C and -G[t] >= gmax:
                    gmax = -G[t]
                    i = t
            else:
                if alpha[t] > 0.0 and G[t] >= gmax:
                    gmax = G[t]
                    i = t
        if i < 0:
            break
        # j: the second-order choice in I_low
        gmax2 = -np.inf
        j = -1
        best = np.inf
        kii = K[i, i]
        yi = y[i]
        for t in range(n):
            if y[t] > 0:
                if alpha[t] > 0.0:
                    diff = gmax + G[t]
                    if G[t] >= gmax2:
                        gmax2 = G[t]
                    if diff > 0.0:
                        quad = kii + K[t, t] - 2.0 * yi * y[t] * K[i, t] * yi
                        if quad <= 0.0:
                            quad = TAU
                        obj = -(diff * diff) / quad
                        if obj <= best:
                            best = obj
                            j = t
            else:
                if alpha[t] < C:
                    diff = gmax - G[t]
                    if -G[t] >= gmax2:
                        gmax2 = -G[t]
                    if diff > 0.0:
                        quad = kii + K[t, t] + 2.0 * yi * y[t] * K[i, t] * yi
                        if quad <= 0.0:
                            quad = TAU
                        obj = -(diff * diff) / quad
                        if obj <= best:
                            best = obj
                            j = t
        if gmax + gmax2 < eps or j < 0:
            break
        it += 1
        qij = y[i] * y[j] * K[i, j]
        ai, aj = alpha[i], alpha[j]
        if y[i] != y[j]:
            quad = K[i, i] + K[j, j] + 2.0 * qij
            if quad <= 0.0:
                quad = TAU
            delta = (-G[i] - G[j]) / quad
            diff = ai - aj
            alpha[i] += delta
            alpha[j] += delta
            if diff > 0.0:
                if alpha[j] < 0.0:
                    alpha[j] = 0.0
                    alpha[i] = diff
            else:
                if alpha[i] < 0.0:
                    alpha[i] = 0.0
                    alpha[j] = -diff
            if diff > 0.0:             # C_i - C_j = 0
                if alpha[i] > C:
                    alpha[i] = C
                    alpha[j] = C - diff
            else:
                if alpha[j] > C:
                    alpha[j] = C
                    alpha[i] = C + diff
        else:
            quad = K[i, i] + K[j, j] - 2.0 * qij
            if quad <= 0.0:
                quad = TAU
            delta = (G[i] - G[j]) / quad
            total = ai + aj
            alpha[i] -= delta
            alpha[j] += delta
            if total > C:
                if alpha[i] > C:
                    alpha[i] = C
                    alpha[j] = total - C
            else:
                if alpha[j] < 0.0:
                    alpha[j] = 0.0
                    alpha[i] = total
            if total > C:
                if alpha[j] > C:
                    alpha[j] = C
                    alpha[i] = total - C
            else:
                if alpha[i] < 0.0:
                    alpha[i] = 0.0
                    alpha[j] = total
        dai = alpha[i] - ai
        daj = alpha[j] - aj
        si = dai * y[i]
        sj = daj * y[j]
        for k in range(n):
            G[k] += y[k] * (si * K[i, k] + sj * K[j, k])
    # bias: the mean of y G over free variables, else the middle of the feasible interval
    ub = np.inf
    lb = -np.inf
    nfree = 0
    sfree = 0.0
    for t in range(n):
        yg = y[t] * G[t]
        if alpha[t] >= C:
            if y[t] < 0:
                ub = min(ub, yg)
            else:
                lb = max(lb, yg)
        elif alpha[t] <= 0.0:
            if y[t] > 0:
                ub = min(ub, yg)
            else:
                lb = max(lb, yg)
        else:
            nfree += 1
            sfree += yg
    rho = sfree / nfree if nfree > 0 else (ub + lb) / 2.0
    return G, rho, it
