"""Compiled ``nogil`` kernel of :mod:`daskpml.graph._mcl` (imported on first use, so that
importing daskpml does not import numba): one MCL iteration over a block of rows.

Rows are MCL's columns (the walk leaves node ``i`` along row ``i``). For each row of the
left block the expanded row ``L[i] @ R`` is accumulated in a dense scratch row, pruned as
van Dongen's mcl prunes a column, normalized, measured (chaos) and inflated, before the
next row starts: the unpruned product never exists beyond one row.
"""

import numpy as np
from .._numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros


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
def _before(v1, j1, v2, j2, by_value):
    """Whether entry ``(v1, j1)`` comes before ``(v2, j2)``: by decreasing value, then by
    column (``by_value``), or by column only."""
    if by_value:
        return v1 > v2 or (v1 == v2 and j1 < j2)
    return j1 < j2


@njit(nogil=True, cache=True)
def sort_entries(vals, cols, lo, hi, by_value, stack):
    """Sort the entries ``lo:hi`` (distinct columns) in place, in the order of :func:`_before`:
    quicksort (Hoare partition, middle pivot, the smaller side first) with insertion sort for
    short runs; ``stack`` holds at least 128 ints. No allocation."""
    top = 0
    stack[0] = lo
    stack[1] = hi - 1
    top = 2
    while top > 0:
        top -= 2
        a = stack[top]
        b = stack[top + 1]
        while b - a >= 16:
            mid = (a + b) >> 1
            pv = vals[mid]
            pj = cols[mid]
            x = a - 1
            y = b + 1
            while True:
                x += 1
                while _before(vals[x], cols[x], pv, pj, by_value):
                    x += 1
                y -= 1
                while _before(pv, pj, vals[y], cols[y], by_value):
                    y -= 1
                if x >= y:
                    break
                tv = vals[x]
                vals[x] = vals[y]
                vals[y] = tv
                tj = cols[x]
                cols[x] = cols[y]
                cols[y] = tj
            # [a, y] and [y + 1, b]: push the larger, go on with the smaller
            if y - a > b - y - 1:
                stack[top] = a
                stack[top + 1] = y
                a = y + 1
            else:
                stack[top] = y + 1
                stack[top + 1] = b
                b = y
            top += 2
        for x in range(a + 1, b + 1):
            tv = vals[x]
            tj = cols[x]
            y = x - 1
            while y >= a and _before(tv, tj, vals[y], cols[y], by_value):
                vals[y + 1] = vals[y]
                cols[y + 1] = cols[y]
                y -= 1
            vals[y + 1] = tv
            cols[y + 1] = tj


@njit(nogil=True, cache=True, inline="always")
def _span(p, li, lx, rp, rx, tau):
    """Entry ``p`` of a left row, ``a = L[i, k]``, and the part ``q0:q1`` of row ``k`` of ``R``
    whose products with it reach ``tau`` (``R``'s rows sorted by decreasing value)."""
    k = li[p]
    a = lx[p]
    q0 = rp[k]
    return a, q0, cut_point(rx, q0, rp[k + 1], tau / a)


@njit(nogil=True, cache=True)
def expand_rows(lp, li, lx, rp, ri, rx, n_cols, threshold, select, recover, pct, inflation,
                product_tol, sort_rows, capacity, row_offset, touch_ratio, scan_ratio):
    """Rows of ``L @ R`` pruned, normalized and inflated (``inflation == 1``: normalized only).

    ``product_tol > 0`` skips the products ``L[i, k] R[k, j] < product_tol / nnz(L[i])``, which
    needs the rows of ``R`` sorted by decreasing value (the loop over a row of ``R`` stops at
    the first small one); every expanded entry is then low by at most ``product_tol``.
    Row ``i`` of the block is node ``i + row_offset`` (a row left empty by pruning keeps that
    node's loop).

    Each row is accumulated in a dense scratch row; which columns it reached is read back
    in one of three ways, chosen per row (the result does not depend on the choice):

    * a row with fewer than ``n_cols / touch_ratio`` products lists the columns as it first
      reaches them;
    * a row expected to reach more than ``n_cols / scan_ratio`` columns (so did the row
      before, and its products allow it) scans the whole scratch row;
    * other rows set a bit per column and read the bitmap back a word at a time.

    The kept entries of a row are put in a canonical order before they are summed: by
    decreasing value (then column) when ``sort_rows`` (the order the product cut of the next
    iteration needs), else by column.

    Returns ``(indptr, indices, data, stats)`` with ``stats = [chaos, expanded entries,
    products, smallest kept mass, summed kept mass]``.
    """
    n_rows = lp.shape[0] - 1
    one = np.uint64(1)
    spa = np.zeros(n_cols, dtype=rx.dtype)
    bits = np.zeros((n_cols + 63) >> 6, dtype=np.uint64)
    vals = np.empty(n_cols, dtype=rx.dtype)
    cols = np.empty(n_cols, dtype=np.int64)
    stack = np.empty(128, dtype=np.int64)
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
    reached = n_cols          # columns the previous row reached (the estimate for this one)
    for i in range(n_rows):
        start, stop = lp[i], lp[i + 1]
        tau = product_tol / max(stop - start, 1)
        bound = 0
        for p in range(start, stop):
            bound += rp[li[p] + 1] - rp[li[p]]
        m = 0
        if bound * touch_ratio < n_cols:
            # few products: list each column when first reached
            for p in range(start, stop):
                a, q0, q1 = _span(p, li, lx, rp, rx, tau)
                for q in range(q0, q1):
                    j = ri[q]
                    v = spa[j]
                    prod = a * rx[q]
                    cols[m] = j
                    m += (v == 0.0) & (prod > 0.0)
                    spa[j] = v + prod
                products += q1 - q0
            for c in range(m):
                j = cols[c]
                vals[c] = spa[j]
                spa[j] = 0.0
        elif min(bound, reached) * scan_ratio > n_cols:
            # many columns: accumulate without tracking, then scan the scratch row
            for p in range(start, stop):
                a, q0, q1 = _span(p, li, lx, rp, rx, tau)
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
            # a bit per column reached, read back a word at a time
            for p in range(start, stop):
                a, q0, q1 = _span(p, li, lx, rp, rx, tau)
                for q in range(q0, q1):
                    j = ri[q]
                    spa[j] += a * rx[q]
                    bits[j >> 6] |= one << (j & 63)
                products += q1 - q0
            for w in range(bits.shape[0]):
                x = bits[w]
                if x != 0:
                    bits[w] = 0
                    base = w << 6
                    while x != 0:
                        j = base + trailing_zeros(x)
                        x &= x - one
                        v = spa[j]
                        vals[m] = v
                        cols[m] = j
                        m += v != 0.0
                        spa[j] = 0.0
        reached = m
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
        kept = 0
        for c in range(m):
            if vals[c] >= bar:
                vals[kept] = vals[c]
                cols[kept] = cols[c]
                kept += 1
        if kept == 0:
            # nothing left (mcl's emergency measure): the node keeps to itself
            vals[0] = 1.0
            cols[0] = i + row_offset
            kept = 1
        sort_entries(vals, cols, 0, kept, sort_rows, stack)
        mass = 0.0
        for c in range(kept):
            mass += vals[c]
        min_mass = min(min_mass, mass)
        sum_mass += mass
        top = 0.0
        squares = 0.0
        total = 0.0
        for c in range(kept):
            x = vals[c] / mass
            top = max(top, x)
            squares += x * x
            if inflation == 2.0:
                y = x * x
            elif inflation == 1.0:
                y = x
            else:
                y = x ** inflation
            vals[c] = y
            total += y
        chaos = max(chaos, (top - squares) * kept)
        for c in range(kept):
            out_ind[pos + c] = cols[c]
            out_val[pos + c] = vals[c] / total
        pos += kept
        out_ptr[i + 1] = pos
    stats = np.array([chaos, float(expanded), float(products), min_mass, sum_mass])
    return out_ptr, out_ind[:pos].copy(), out_val[:pos].copy(), stats


@njit(nogil=True, cache=True)
def sort_rows_descending(indptr, indices, data):
    """Sort each row's entries by decreasing value (then column), in place."""
    stack = np.empty(128, dtype=np.int64)
    for i in range(indptr.shape[0] - 1):
        sort_entries(data, indices, indptr[i], indptr[i + 1], True, stack)
