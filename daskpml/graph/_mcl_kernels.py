"""Compiled ``nogil`` kernel of :mod:`daskpml.graph._mcl` (imported on first use, so that
importing daskpml does not import numba): one MCL iteration over a block of rows.

Rows are MCL's columns (the walk leaves node ``i`` along row ``i``). For each row of the
left block the expanded row ``L[i] @ R`` is accumulated in a dense scratch row, pruned as
van Dongen's mcl prunes a column, normalized, measured (chaos) and inflated, before the
next row starts: the unpruned product never exists beyond one row.
"""

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def kth_largest(values, k):
    """The k-th largest (1-based) of ``values`` (not modified)."""
    work = -values
    work = np.partition(work, k - 1)
    return -work[k - 1]


@njit(nogil=True, cache=True)
def cut_point(values, lo, hi, limit):
    """First position in ``values[lo:hi]`` (sorted by decreasing value) below ``limit``."""
    if limit <= 0.0 or hi == lo or values[hi - 1] >= limit:
        return hi
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < limit:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(nogil=True, cache=True)
def count_at_least(vals, cnt, bar):
    """How many of ``vals[:cnt]`` reach ``bar``, and their sum."""
    n = 0
    mass = 0.0
    for c in range(cnt):
        if vals[c] >= bar:
            n += 1
            mass += vals[c]
    return n, mass


@njit(nogil=True, cache=True)
def prune_bar(vals, cnt, threshold, select, recover, pct):
    """The value a kept entry must reach, following mcl's rules (ties at the bar are kept).

    1. Entries below ``threshold`` go.
    2. If what is left has fewer than ``recover`` entries and less than ``pct`` of the mass,
       the largest discarded entries come back, up to ``recover`` entries.
    3. Otherwise, if more than ``select`` are left, only the ``select`` largest stay; if those
       hold less than ``pct`` of the mass (and fewer than ``recover`` entries), entries come
       back up to ``recover`` (at most those that passed the threshold).
    """
    n_thr, m_thr = count_at_least(vals, cnt, threshold)
    if recover > 0 and n_thr < recover and m_thr < pct:
        if cnt > recover:
            return kth_largest(vals[:cnt], recover)
        return -1.0
    if select > 0 and n_thr > select:
        above = np.empty(n_thr, dtype=vals.dtype)
        t = 0
        for c in range(cnt):
            if vals[c] >= threshold:
                above[t] = vals[c]
                t += 1
        sbar = kth_largest(above, select)
        n_s, m_s = count_at_least(above, n_thr, sbar)
        if recover > 0 and n_s < recover and m_s < pct:
            if recover < n_thr:
                return kth_largest(above, recover)
            return threshold
        return sbar
    return threshold


@njit(nogil=True, cache=True)
def expand_rows(lp, li, lx, rp, ri, rx, n_cols, threshold, select, recover, pct, inflation,
                product_tol, sort_rows, capacity, row_offset, dense_ratio):
    """Rows of ``L @ R`` pruned, normalized and inflated (``inflation == 1``: normalized only).

    ``product_tol > 0`` skips the products ``L[i, k] R[k, j] < product_tol / nnz(L[i])``, which
    needs the rows of ``R`` sorted by decreasing value (the loop over a row of ``R`` stops at
    the first small one); every expanded entry is then low by at most ``product_tol``.
    ``sort_rows`` sorts the output rows that way for the next iteration. Row ``i`` of the
    block is node ``i + row_offset`` (a row left empty by pruning keeps that node's loop).

    A row whose products could touch more than ``n_cols / dense_ratio`` columns is
    accumulated without tracking which (no dependence between successive products) and read
    back by scanning the scratch row.

    Returns ``(indptr, indices, data, stats)`` with ``stats = [chaos, expanded entries,
    products, smallest kept mass, summed kept mass]``.
    """
    n_rows = lp.shape[0] - 1
    spa = np.zeros(n_cols, dtype=rx.dtype)
    touched = np.empty(n_cols, dtype=np.int64)
    vals = np.empty(n_cols, dtype=rx.dtype)
    cols = np.empty(n_cols, dtype=np.int64)
    out_ptr = np.empty(n_rows + 1, dtype=np.int64)
    out_ind = np.empty(max(capacity, 16), dtype=li.dtype)
    out_val = np.empty(max(capacity, 16), dtype=rx.dtype)
    out_ptr[0] = 0
    pos = 0
    chaos = 0.0
    expanded = 0
    products = 0
    min_mass = np.inf
    sum_mass = 0.0
    for i in range(n_rows):
        start, stop = lp[i], lp[i + 1]
        tau = product_tol / max(stop - start, 1)
        bound = 0
        for p in range(start, stop):
            bound += rp[li[p] + 1] - rp[li[p]]
        m = 0
        if bound * dense_ratio > n_cols:
            # a dense-ish row: accumulate without tracking, then scan the scratch row
            for p in range(start, stop):
                k = li[p]
                a = lx[p]
                q0 = rp[k]
                q1 = cut_point(rx, q0, rp[k + 1], tau / a)
                for q in range(q0, q1):
                    spa[ri[q]] += a * rx[q]
                products += q1 - q0
            for j in range(n_cols):
                v = spa[j]
                vals[m] = v
                cols[m] = j
                m += v != 0.0
                spa[j] = 0.0
        else:
            cnt = 0
            for p in range(start, stop):
                k = li[p]
                a = lx[p]
                q0 = rp[k]
                q1 = cut_point(rx, q0, rp[k + 1], tau / a)
                for q in range(q0, q1):
                    j = ri[q]
                    v = spa[j]
                    prod = a * rx[q]
                    touched[cnt] = j
                    cnt += (v == 0.0) & (prod > 0.0)
                    spa[j] = v + prod
                products += q1 - q0
            for c in range(cnt):
                j = touched[c]
                vals[m] = spa[j]
                cols[m] = j
                spa[j] = 0.0
                m += 1
        expanded += m
        bar = prune_bar(vals, m, threshold, select, recover, pct)
        need = pos + max(m, 1)
        if need > out_ind.shape[0]:
            grown = max(need, 2 * out_ind.shape[0])
            new_ind = np.empty(grown, dtype=out_ind.dtype)
            new_ind[:pos] = out_ind[:pos]
            out_ind = new_ind
            new_val = np.empty(grown, dtype=out_val.dtype)
            new_val[:pos] = out_val[:pos]
            out_val = new_val
        row0 = pos
        mass = 0.0
        for c in range(m):
            if vals[c] >= bar:
                out_ind[pos] = cols[c]
                out_val[pos] = vals[c]
                mass += vals[c]
                pos += 1
        if pos == row0:
            # nothing left (mcl's emergency measure): the node keeps to itself
            out_ind[pos] = i + row_offset
            out_val[pos] = 1.0
            mass = 1.0
            pos += 1
        min_mass = min(min_mass, mass)
        sum_mass += mass
        top = 0.0
        squares = 0.0
        total = 0.0
        for c in range(row0, pos):
            x = out_val[c] / mass
            top = max(top, x)
            squares += x * x
            if inflation == 2.0:
                y = x * x
            elif inflation == 1.0:
                y = x
            else:
                y = x ** inflation
            out_val[c] = y
            total += y
        chaos = max(chaos, (top - squares) * (pos - row0))
        for c in range(row0, pos):
            out_val[c] = out_val[c] / total
        if sort_rows and pos - row0 > 1:
            order = np.argsort(-out_val[row0:pos], kind="mergesort")
            out_ind[row0:pos] = out_ind[row0:pos][order]
            out_val[row0:pos] = out_val[row0:pos][order]
        out_ptr[i + 1] = pos
    stats = np.array([chaos, float(expanded), float(products), min_mass, sum_mass])
    return out_ptr, out_ind[:pos].copy(), out_val[:pos].copy(), stats


@njit(nogil=True, cache=True)
def sort_rows_descending(indptr, indices, data):
    """Sort each row's entries by decreasing value, in place (ties keep their order)."""
    for i in range(indptr.shape[0] - 1):
        a, b = indptr[i], indptr[i + 1]
        if b - a > 1:
            order = np.argsort(-data[a:b], kind="mergesort")
            indices[a:b] = indices[a:b][order]
            data[a:b] = data[a:b][order]
