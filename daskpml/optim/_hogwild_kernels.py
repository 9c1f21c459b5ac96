"""Compiled ``nogil`` kernels of :mod:`daskpml.optim._hogwild` (imported on first use,
so that importing daskpml does not import numba).

Loss kinds: 0 squared ``(z - y)^2 / 2``, 1 logistic, 2 hinge, 3 squared hinge (labels
0/1 become -1/+1). Schedules: 0 constant, 1 ``eta0 / (t + 1)^power_t``,
2 ``1 / (lam (t0 + t))``. ``w`` is shared between threads and written without locks.
"""

import math

from .._numba import njit


@njit(nogil=True, cache=True)
def dloss(kind, z, y):
    """(d loss / dz, loss) of one row."""
    if kind == 0:
        r = z - y
        return r, 0.5 * r * r
    s = 2.0 * y - 1.0
    m = s * z
    if kind == 1:
        if m > 0:
            e = math.exp(-m)
            return -s * e / (1.0 + e), math.log1p(e)
        e = math.exp(m)
        return -s / (1.0 + e), -m + math.log1p(e)
    if kind == 2:
        if m < 1.0:
            return -s, 1.0 - m
        return 0.0, 0.0
    if m < 1.0:
        return -2.0 * s * (1.0 - m), (1.0 - m) * (1.0 - m)
    return 0.0, 0.0


@njit(nogil=True, cache=True)
def rate(schedule, eta0, power_t, lam, t0, t):
    if schedule == 0:
        return eta0
    if schedule == 1:
        return eta0 / (t + 1.0) ** power_t
    return 1.0 / (lam * (t0 + t))


@njit(nogil=True, cache=True)
def sweep_csr(data, indices, indptr, y, rows, w, inv_freq, n_features, intercept, kind, schedule, eta0, power_t,
              lam, t0, t_start, t_stride, intercept_decay, out):
    """SGD over ``rows`` of a CSR matrix, touching only the row's non-zeros.

    The L2 term is applied to the touched coordinates only, scaled by the inverse of
    their frequency: ``w_j <- (1 - eta lam / d_j) w_j`` with ``d_j`` the fraction of rows
    where feature ``j`` is non-zero (``inv_freq = 1 / d_j``), which decays every
    coordinate by ``eta lam`` per row on average (Niu et al. 2011, section 5). Intercept
    steps are scaled by ``intercept_decay`` (scikit-learn uses 0.01 on sparse data)."""
    t = t_start
    total = 0.0
    for r in rows:
        eta = rate(schedule, eta0, power_t, lam, t0, t)
        z = w[n_features] if intercept else 0.0
        for p in range(indptr[r], indptr[r + 1]):
            z += data[p] * w[indices[p]]
        g, loss = dloss(kind, z, y[r])
        total += loss
        step = eta * g
        decay = eta * lam
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            w[j] = max(0.0, 1.0 - decay * inv_freq[j]) * w[j] - step * data[p]
        if intercept:
            w[n_features] -= intercept_decay * step
        t += t_stride
    out[0] = total


@njit(nogil=True, cache=True)
def sweep_dense(X, y, rows, w, n_features, intercept, kind, schedule, eta0, power_t, lam, t0, t_start, t_stride,
                out):
    """SGD over ``rows`` of a dense matrix."""
    t = t_start
    total = 0.0
    for r in rows:
        z = w[n_features] if intercept else 0.0
        for j in range(n_features):
            z += X[r, j] * w[j]
        g, loss = dloss(kind, z, y[r])
        total += loss
        eta = rate(schedule, eta0, power_t, lam, t0, t)
        shrink = max(0.0, 1.0 - eta * lam)
        for j in range(n_features):
            w[j] = shrink * w[j] - eta * g * X[r, j]
        if intercept:
            w[n_features] -= eta * g
        t += t_stride
    out[0] = total
