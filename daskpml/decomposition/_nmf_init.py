"""Initial factors for NMF, made where they are used.

Blocks of ``W`` are produced by tasks next to the row blocks of ``A`` (stored
transposed, ``Wt_i``, k x m_i); ``H`` (k x n) is small and made on the client,
then split into the column blocks of the layout.

* ``"random"``: scikit-learn's scaling, ``sqrt(mean(A) / k) |N(0, 1)|``. ``H``
  comes from ``numpy.random.RandomState(seed)`` as in scikit-learn; each block
  of ``W`` from its own stream ``[seed, block]``, so the values of ``W`` are not
  scikit-learn's (they cannot be without drawing all of W in one place).
* ``"nndsvd"`` / ``"nndsvda"`` / ``"nndsvdar"``: Boutsidis & Gallopoulos (2008),
  as scikit-learn, from :func:`daskpml.linalg.truncated_svd`: exact (Gram) for
  up to ``daskpml.linalg.gram-columns`` columns, randomized above (its random
  sketch differs from scikit-learn's, so the factors agree to the SVD's accuracy).
* ``"custom"``: the given ``W`` and ``H``.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np

from ..backend import get_namespace, to_numpy
from .._random import ROWS, block_rng, resolve_seed
from ..linalg import truncated_svd

INITS = ("nndsvda", "nndsvd", "nndsvdar", "random", "custom")


def _mean(A: Any) -> float:
    return float(A.sum().compute()) / (A.shape[0] * A.shape[1])


def _random_block(seed: int, i: int, rows: int, k: int, avg: float, like: Any) -> Any:
    xp, _ = get_namespace(like)
    values = avg * np.abs(block_rng(seed, ROWS, i).standard_normal((k, rows)))
    return xp.asarray(values.astype(like.dtype, copy=False))


def _nndsvd_block(Ut: Any, mode: np.ndarray, coef: np.ndarray, eps: float, fill: str, avg: float,
                  seed: int, block_id: tuple = (0, 0)) -> Any:
    """``Wt_i`` from the (transposed) rows ``U_i`` of the left singular vectors (see :func:`_nndsvd`)."""
    xp, _ = get_namespace(Ut)
    mode, coef = xp.asarray(mode)[:, None], xp.asarray(coef, dtype=Ut.dtype)[:, None]
    part = xp.where(mode == 0, xp.abs(Ut), xp.where(mode == 1, xp.maximum(Ut, 0), xp.maximum(-Ut, 0)))
    Wt = xp.ascontiguousarray(part * coef)
    Wt[Wt < eps] = 0
    _fill_zeros(Wt, fill, avg, block_rng(seed, ROWS, block_id[1]))
    return Wt


def _fill_zeros(M: Any, fill: str, avg: float, rng: np.random.Generator) -> None:
    xp, _ = get_namespace(M)
    zero = M == 0
    if fill == "nndsvda":
        M[zero] = avg
    elif fill == "nndsvdar":
        count = int(zero.sum())
        M[zero] = xp.asarray(np.abs(avg * rng.standard_normal(count) / 100).astype(M.dtype))


def _nndsvd(A: Any, k: int, row_chunks: tuple, fill: str, seed: int, eps: float = 1e-6) -> tuple[da.Array, Any]:
    U, S, Vt = truncated_svd(A, k, random_state=seed)
    U = U.rechunk({0: row_chunks, 1: -1})
    S, V = to_numpy(S), to_numpy(Vt)
    pos = da.maximum(U, 0)
    neg = da.maximum(-U, 0)
    u_pos, u_neg = dask.compute(da.sqrt((pos * pos).sum(axis=0)), da.sqrt((neg * neg).sum(axis=0)))
    u_pos, u_neg = to_numpy(u_pos), to_numpy(u_neg)
    mode = np.zeros(k, dtype=np.int8)
    coef = np.zeros(k)
    H = np.zeros_like(V)
    coef[0] = np.sqrt(S[0])
    H[0] = np.sqrt(S[0]) * np.abs(V[0])
    for j in range(1, k):
        y = V[j]
        y_pos, y_neg = np.maximum(y, 0), np.maximum(-y, 0)
        y_pos_n, y_neg_n = np.linalg.norm(y_pos), np.linalg.norm(y_neg)
        m_pos, m_neg = u_pos[j] * y_pos_n, u_neg[j] * y_neg_n
        if m_pos > m_neg:
            mode[j], sigma, u_n, v, v_n = 1, m_pos, u_pos[j], y_pos, y_pos_n
        else:
            mode[j], sigma, u_n, v, v_n = 2, m_neg, u_neg[j], y_neg, y_neg_n
        if sigma > 0:           # (both parts vanish only for a zero singular vector pair)
            lbd = np.sqrt(S[j] * sigma)
            coef[j] = lbd / u_n
            H[j] = lbd * v / v_n
    H[H < eps] = 0
    avg = _mean(A) if fill != "nndsvd" else 0.0
    _fill_zeros(H, fill, avg, np.random.default_rng([seed, 1]))
    Wt = U.T.map_blocks(_nndsvd_block, mode, coef, eps, fill, avg, seed, dtype=U.dtype)
    return Wt, H


def _random_wt(seed: int, k: int, avg: float, row_chunks: tuple, like: Any) -> da.Array:
    meta = like[:0, :0]
    blocks = [da.from_delayed(dask.delayed(_random_block, pure=True)(seed, i, rows, k, avg, like), shape=(k, rows),
                              dtype=like.dtype, meta=meta) for i, rows in enumerate(row_chunks)]
    return da.concatenate(blocks, axis=1)


def initialize(A: Any, k: int, init: str, row_chunks: tuple, like: Any, *, W: Any = None, H: Any = None,
               random_state: Any = None) -> tuple[da.Array, Any]:
    """Initial ``(Wt, H)``: ``Wt`` a lazy dask array (k x m) chunked like A's rows, ``H`` (k x n)
    on the client."""
    xp, _ = get_namespace(like)
    dtype = like.dtype
    if init == "custom":
        if isinstance(W, da.Array):
            Wt = W.astype(dtype).rechunk({0: row_chunks, 1: -1}).T.map_blocks(xp.ascontiguousarray)
        else:
            Wt = da.from_array(xp.ascontiguousarray(xp.asarray(W, dtype=dtype).T), chunks=(k, row_chunks))
        return Wt, xp.asarray(H.compute() if isinstance(H, da.Array) else H, dtype=dtype)
    seed = resolve_seed(random_state)
    if init == "random":
        avg = float(np.sqrt(_mean(A) / k))
        H = avg * np.abs(np.random.RandomState(seed % 2**32).standard_normal((k, A.shape[1])))
        return _random_wt(seed, k, avg, row_chunks, like), xp.asarray(H.astype(dtype, copy=False))
    Wt, H = _nndsvd(A, k, row_chunks, init, seed)
    return Wt.astype(dtype), xp.asarray(H.astype(dtype, copy=False))
