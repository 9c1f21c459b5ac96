"""Input validation with messages that name the problem and the fix.

Accepts NumPy/CuPy arrays, SciPy/cupyx sparse matrices, dask arrays and
daskpml's distributed sparse matrices (any dask collection with ``_meta``
and ``map_blocks``). The NaN/inf check really looks at every chunk: eagerly
(one pass now) or, with ``ensure_finite="lazy"``, fused into the first
computation that reads the data, where a bad chunk raises with its position.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from numbers import Integral, Real
from typing import Any, Callable, Iterable, Literal, Mapping

import dask
import numpy as np
from sklearn.exceptions import NotFittedError

from . import _config
from .backend import get_namespace, is_sparse, to_numpy

__all__ = ["check_array", "check_graph", "check_X_y", "check_indices", "check_is_fitted", "check_n_features",
           "check_params", "Interval", "NotFittedError",
           "NotSymmetricError", "Options", "ParamsValidated", "validate_params"]


class NotSymmetricError(ValueError):
    """A matrix that must be symmetric (an undirected graph, a matrix for ``eigsh``) is not;
    ``name`` says which input.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    name : str
        What to call the input in messages.

    Examples
    --------
    >>> NotSymmetricError("A is not symmetric", "A").name
    'A'
    """

    def __init__(self, message: str, name: str = "A") -> None:
        super().__init__(message)
        self.name = name

FiniteMode = bool | Literal["lazy", "eager"]


def _block_values(block: Any) -> Any:
    return block.data if is_sparse(block) else block


def _count_nonfinite(block: Any) -> int:
    xp, _ = get_namespace(block)
    values = _block_values(block)
    if values.size == 0 or values.dtype.kind not in "fc":
        return 0
    return int((~xp.isfinite(values)).sum())


def _count_negative(block: Any) -> int:
    values = _block_values(block)
    if values.size == 0:
        return 0
    return int((values < 0).sum())


def _where(block_info: dict | None) -> str:
    if not block_info or None not in block_info:
        return ""
    info = block_info[None]
    loc = info["chunk-location"]
    rows = info["array-location"][0]
    return f" in chunk {loc} (rows {rows[0]}-{rows[1] - 1})"


def _nonfinite_message(name: str, count: int, where: str = "") -> str:
    return (
        f"{name} contains {count} NaN or infinite value(s){where}. Remove or impute them "
        "first (for example with sklearn.impute.SimpleImputer or x[~isfinite(x)] = 0)."
    )


def _assert_finite_block(block: Any, label: str = "X", block_info: dict | None = None) -> Any:
    count = _count_nonfinite(block)
    if count:
        raise ValueError(_nonfinite_message(label, count, _where(block_info)))
    return block


def _is_dask(x: Any) -> bool:
    return dask.is_dask_collection(x)


def _block_array(X: Any) -> Any:
    """The dask array of blocks: ``X`` itself, or ``X.blocks`` for a distributed sparse matrix."""
    import dask.array as da

    return X if isinstance(X, da.Array) else X.blocks


def _per_block_counts(X: Any, func: Any) -> Any:
    """Per-chunk counts as a small dask array (one int per chunk)."""
    blocks = _block_array(X)
    out_chunks = tuple((1,) * len(c) for c in blocks.chunks)
    return blocks.map_blocks(lambda b: np.full((1,) * b.ndim, func(b), dtype=np.int64),
                             chunks=out_chunks, dtype=np.int64, meta=np.empty((0,) * blocks.ndim, np.int64))


def _first_bad_chunk(counts: np.ndarray, chunks: tuple) -> str:
    idx = tuple(int(i) for i in np.argwhere(counts > 0)[0])
    start = int(sum(chunks[0][: idx[0]]))
    return f" (first in chunk {idx}, rows {start}-{start + chunks[0][idx[0]] - 1})"


def _check_finite(X: Any, name: str, mode: FiniteMode) -> Any:
    if mode is False:
        return X
    if mode is True:
        mode = _config.get("validation.finite")
    if not _is_dask(X):
        count = _count_nonfinite(X)
        if count:
            raise ValueError(_nonfinite_message(name, count))
        return X
    if mode == "lazy":
        return X.map_blocks(_assert_finite_block, label=name, dtype=X.dtype, meta=X._meta)
    counts = np.asarray(_per_block_counts(X, _count_nonfinite).compute())
    if counts.sum():
        raise ValueError(_nonfinite_message(name, int(counts.sum()), _first_bad_chunk(counts, _chunks(X))))
    return X


def _chunks(X: Any) -> tuple:
    return _block_array(X).chunks


def _check_non_negative(X: Any, name: str) -> None:
    if _is_dask(X):
        counts = np.asarray(_per_block_counts(X, _count_negative).compute())
        total = int(counts.sum())
        where = _first_bad_chunk(counts, _chunks(X)) if total else ""
    else:
        total, where = _count_negative(X), ""
    if total:
        raise ValueError(
            f"Negative values in data: {name} has {total} negative value(s){where}, but negative values are "
            "not allowed here. Shift, clip (x.clip(min=0)) or take absolute values first."
        )


def check_array(X: Any, *, accept_sparse: bool = True, ensure_2d: bool = True,
                allow_1d: bool = False, ensure_finite: FiniteMode = True,
                ensure_non_negative: bool = False, ensure_min_samples: int = 1,
                ensure_min_features: int = 1, dtype: Literal["numeric"] | None = "numeric",
                name: str = "X") -> Any:
    """Validate an array-like input and return it (lists become NumPy arrays).

    Parameters
    ----------
    X : array-like, sparse matrix, dask array or daskpml CSRMatrix
    accept_sparse : bool
        Refuse sparse input when False.
    ensure_2d, allow_1d : bool
        Require 2-D input (1-D is allowed too with ``allow_1d``).
    ensure_finite : bool or {"eager", "lazy"}
        Refuse NaN/inf. ``True`` uses ``daskpml.validation.finite``; ``"lazy"``
        defers the check of dask input into its first computation.
    ensure_non_negative : bool
        Refuse negative entries (the message counts them and names the chunk).
    ensure_min_samples, ensure_min_features : int
        Smallest allowed number of rows / columns.
    dtype : "numeric" or None
        Require a numeric (bool, int, unsigned, float, complex) dtype.
    name : str
        What to call the input in messages.

    Returns
    -------
    X : array, sparse matrix, dask array or CSRMatrix
        The input (lists become NumPy arrays).

    Examples
    --------
    >>> import numpy as np
    >>> check_array([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    if X is None:
        raise ValueError(f"{name} is None; pass an array of shape (n_samples, n_features).")
    if not (hasattr(X, "shape") and hasattr(X, "dtype")):
        X = np.asarray(X)
    if dtype == "numeric" and isinstance(X, np.ndarray) and X.dtype == object:
        try:                                    # numbers stored as objects are numbers (as scikit-learn)
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} has dtype object with values that are not numbers ({exc}); "
                            "pass numeric data.") from None
    sparse = is_sparse(X)
    if sparse and getattr(X, "format", None) in ("dok", "lil", "dia"):
        X = X.tocsr()                           # formats without one array of stored values
    if sparse and not accept_sparse:
        raise TypeError(
            f"{name} is sparse, which is not supported here; convert it with X.toarray() "
            "(in memory) or X.map_blocks(lambda b: b.toarray()) (dask)."
        )
    ndim = len(X.shape)
    if ensure_2d and ndim != 2 and not (allow_1d and ndim == 1):
        expected = "1-D or 2-D" if allow_1d else "2-D"
        hint = (" Reshape your data: x.reshape(-1, 1) for one feature or x.reshape(1, -1) for one sample."
                if ndim == 1 else "")
        raise ValueError(f"{name} must be {expected}, got {ndim}-D with shape {tuple(X.shape)}.{hint}")
    if any(isinstance(s, float) and np.isnan(s) for s in X.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes {X.shape}; call x.compute_chunk_sizes() first."
        )
    if ndim >= 1 and X.shape[0] < ensure_min_samples:
        raise ValueError(
            f"{name} has {X.shape[0]} sample(s) (shape={tuple(X.shape)}) while a minimum of "
            f"{ensure_min_samples} is required; it is empty or too small."
        )
    if ndim == 2 and X.shape[1] < ensure_min_features:
        raise ValueError(
            f"{name} has {X.shape[1]} feature(s) (shape={tuple(X.shape)}) while a minimum of "
            f"{ensure_min_features} is required."
        )
    if dtype == "numeric" and np.dtype(X.dtype).kind not in "biufc":
        raise TypeError(
            f"{name} has dtype {X.dtype}, which is not numeric; convert it with x.astype(float)."
        )
    if dtype == "numeric" and np.dtype(X.dtype).kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}; pass its real part "
                         "(x.real) or its magnitude (abs(x)).")
    if ensure_non_negative:
        _check_non_negative(X, name)
    return _check_finite(X, name, ensure_finite)


def check_n_features(estimator: Any, X: Any) -> None:
    """Refuse ``X`` whose number of columns differs from the ``n_features_in_`` that ``estimator``
    was fitted with, in scikit-learn's words.

    Parameters
    ----------
    estimator : fitted estimator
        Has ``n_features_in_``.
    X : array-like of shape (n_samples, n_features)
        The input of ``predict``, ``transform`` or ``score``.

    Returns
    -------
    None

    Examples
    --------
    >>> class Fitted:
    ...     n_features_in_ = 3
    >>> check_n_features(Fitted(), np.ones((2, 3)))
    """
    n = X.shape[1] if len(X.shape) == 2 else None
    if n is not None and n != estimator.n_features_in_:
        raise ValueError(f"X has {n} features, but {type(estimator).__name__} is expecting "
                         f"{estimator.n_features_in_} features as input.")


def _is_symmetric(A: Any, tol: float) -> bool:
    if hasattr(A, "is_symmetric"):
        return bool(A.is_symmetric(tol=tol))
    if _is_dask(A):
        diff = abs(A - A.T).max()
        scale = abs(A).max()
        diff, scale = dask.compute(diff, scale)
    else:
        diff, scale = abs(A - A.T).max(), abs(A).max()
    return float(diff) <= tol * max(float(scale), 1e-300)


def check_graph(A: Any, *, symmetric: bool = False, non_negative: bool = True,
                ensure_finite: FiniteMode = True, tol: float = 1e-10, name: str = "graph") -> Any:
    """Validate an adjacency / affinity matrix: 2-D, square, finite, non-negative, optionally symmetric.

    Parameters
    ----------
    A : array, sparse matrix or dask array
        The matrix.
    symmetric : bool, default False
        Require ``A == A.T``.
    non_negative : bool, default True
        Refuse negative entries.
    ensure_finite : bool or {"eager", "lazy"}, default True
        Refuse NaN and infinity.
    tol : float, default 1e-10
        Tolerance of the symmetry test.
    name : str
        What to call the input in messages.

    Returns
    -------
    A : array, sparse matrix, dask array or CSRMatrix
        The validated matrix.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> check_graph(sp.csr_matrix([[0, 1.0], [1.0, 0]]), symmetric=True).shape
    (2, 2)
    """
    A = check_array(A, ensure_finite=ensure_finite, ensure_non_negative=non_negative, name=name)
    n_rows, n_cols = A.shape
    if n_rows != n_cols:
        raise ValueError(
            f"{name} must be a square adjacency matrix (n_nodes x n_nodes), got shape {tuple(A.shape)}; "
            "for points, build a graph first (for example a k-nearest-neighbour graph)."
        )
    if symmetric and not _is_symmetric(A, tol):
        raise NotSymmetricError(
            f"{name} is not symmetric (an undirected graph is required). Symmetrize it, "
            "for example with (A + A.T) / 2 or A.maximum(A.T).", name
        )
    return A


def check_X_y(X: Any, y: Any, *, y_numeric: bool = False, **kwargs: Any) -> tuple[Any, Any]:
    """Validate features ``X`` and targets ``y`` together (same number of rows, 1-D ``y``).

    Parameters
    ----------
    X : array-like
        Features (n x d).
    y : array-like
        Targets (n,).
    y_numeric : bool, default False
        Require numeric, finite targets.
    **kwargs
        Options of :func:`check_array` for ``X``.

    Returns
    -------
    X : array
        The features.
    y : array
        The targets.

    Examples
    --------
    >>> X, y = check_X_y([[1.0], [2.0]], [0, 1])
    >>> X.shape, y.shape
    ((2, 1), (2,))
    """
    X = check_array(X, **kwargs)
    y = check_array(y, ensure_2d=False, accept_sparse=False, name="y",
                    dtype="numeric" if y_numeric else None,
                    ensure_finite=kwargs.get("ensure_finite", True) if y_numeric else False)
    if len(y.shape) != 1:
        raise ValueError(f"y must be 1-D, got shape {tuple(y.shape)}; use y.ravel() for a column vector.")
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"X and y have different numbers of samples: {X.shape[0]} and {y.shape[0]}."
        )
    return X, y


def check_is_fitted(estimator: Any, attributes: str | Iterable[str] | None = None) -> None:
    """Raise :class:`sklearn.exceptions.NotFittedError` unless ``estimator`` was fitted.

    Parameters
    ----------
    estimator : estimator
        A scikit-learn-style estimator.
    attributes : str or sequence of str
        Fitted attributes that must exist.

    Examples
    --------
    >>> from daskpml.cluster import KMeans
    >>> try:
    ...     check_is_fitted(KMeans(), "cluster_centers_")
    ... except NotFittedError as err:
    ...     print("fit" in str(err))
    True
    """
    if attributes is None:
        fitted = [k for k in vars(estimator) if k.endswith("_") and not k.startswith("__")]
    else:
        attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        fitted = [a for a in attributes if hasattr(estimator, a)]
        if len(fitted) != len(attributes):
            fitted = []
    if not fitted:
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


# -- parameter constraints, declared once (scikit-learn's _parameter_constraints style) --------

class Interval:
    """Numbers of ``kind`` (``Integral`` or ``Real``; never bool) between ``left`` and ``right``
    (None: unbounded); ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``.

    Parameters
    ----------
    kind : type
        ``numbers.Integral`` or ``numbers.Real``.
    left : float or None
        Lower bound (None: unbounded).
    right : float or None
        Upper bound (None: unbounded).
    closed : {"left", "right", "both", "neither"}, default "left"
        Which bounds belong to the interval.

    Examples
    --------
    >>> from numbers import Real
    >>> Interval(Real, 0, 1, closed="both").is_satisfied_by(1.0)
    True
    """

    def __init__(self, kind: type, left: float | None, right: float | None, *, closed: str = "both") -> None:
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if isinstance(value, float) and np.isnan(value):
            return False
        lo_ok = self.left is None or (value >= self.left if self.closed in ("both", "left") else value > self.left)
        hi_ok = self.right is None or (value <= self.right if self.closed in ("both", "right") else value < self.right)
        return bool(lo_ok and hi_ok)

    def __str__(self) -> str:
        what = "an integer" if self.kind is Integral else "a number"
        if self.left is not None and self.right is None:
            return f"{what} {'>=' if self.closed in ('both', 'left') else '>'} {self.left}"
        if self.right is not None and self.left is None:
            return f"{what} {'<=' if self.closed in ('both', 'right') else '<'} {self.right}"
        if self.left is None:
            return what
        lo = "[" if self.closed in ("both", "left") else "("
        hi = "]" if self.closed in ("both", "right") else ")"
        return f"{what} in {lo}{self.left}, {self.right}{hi}"


class Options:
    """One of the given values (strings, usually).

    Parameters
    ----------
    *values : objects
        The allowed values.

    Examples
    --------
    >>> Options("a", "b").is_satisfied_by("c")
    False
    """

    def __init__(self, *values: Any) -> None:
        self.values = values

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, (str, int, float, type(None))) and not isinstance(value, bool) and value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


def _is_random_state(value: Any) -> bool:
    return value is None or (isinstance(value, Integral) and not isinstance(value, bool) and value >= 0) or \
        isinstance(value, (np.random.Generator, np.random.RandomState))


#: named constraints: a test and the words a message uses for it
NAMED = {
    "boolean": (lambda v: isinstance(v, (bool, np.bool_)), "True or False"),
    "random_state": (_is_random_state, "None, a non-negative integer or a numpy Generator"),
    "path": (lambda v: isinstance(v, (str, os.PathLike)), "a path (str or os.PathLike)"),
    "callable": (callable, "a callable"),
    "dict": (lambda v: isinstance(v, dict), "a dict"),
    "dtype": (lambda v: _is_float_dtype(v), "a floating dtype such as 'float32' or 'float64'"),
    "array-like": (lambda v: hasattr(v, "shape") or isinstance(v, (list, tuple)), "an array"),
    "checkpoint": (lambda v: isinstance(v, (str, os.PathLike)), "a checkpoint folder (str or os.PathLike)"),
}

#: constraints that every iterative algorithm shares (one protocol)
PROTOCOL = {"callback": [None, "callable"], "progress": [None, "boolean"], "checkpoint": [None, "checkpoint"],
            "checkpoint_every": [Interval(Integral, 1, None)], "resume": ["boolean"],
            "random_state": ["random_state"]}


def _is_float_dtype(value: Any) -> bool:
    try:
        return np.dtype(value).kind == "f"
    except TypeError:
        return False


def _satisfied(constraint: Any, value: Any) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, str):
        return bool(NAMED[constraint][0](value))
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.is_satisfied_by(value)


def _describe(constraint: Any) -> str:
    if constraint is None:
        return "None"
    if isinstance(constraint, str):
        return NAMED[constraint][1]
    if isinstance(constraint, type):
        return f"a {constraint.__name__}"
    return str(constraint)


def check_params(owner: str, constraints: Mapping[str, list], values: Mapping[str, Any]) -> None:
    """Refuse the first value in ``values`` that meets none of its ``constraints``, with one message
    naming the parameter, what it must be and what it got: ``"KMeans: max_iter must be an integer >= 1;
    got 0 (int)."``

    Parameters
    ----------
    owner : str
        The function or estimator, for the message.
    constraints : mapping of str to list
        Allowed values of each parameter (types, :class:`Interval`, :class:`Options`, named constraints such as ``"random_state"``).
    values : array-like
        One value per node or sample.

    Examples
    --------
    >>> from numbers import Integral
    >>> check_params("demo", {"k": [Interval(Integral, 1, None)]}, {"k": 3})
    """
    for name, allowed in constraints.items():
        if name not in values:
            continue
        value = values[name]
        if any(_satisfied(c, value) for c in allowed):
            continue
        words = " or ".join(_describe(c) for c in allowed)
        raise (TypeError if _wrong_type(allowed, value) else ValueError)(
            f"{owner}: {name} must be {words}; got {value!r} ({type(value).__name__}).")


def _wrong_type(allowed: list, value: Any) -> bool:
    """Whether ``value`` is refused for its type (a string where a number goes) rather than its value."""
    kinds = [c.kind for c in allowed if isinstance(c, Interval)]
    if kinds and not isinstance(value, (Real,)) and not any(isinstance(c, Options) for c in allowed):
        return True
    return isinstance(value, bool) and bool(kinds)


def validate_params(constraints: Mapping[str, list], *, removed: Mapping[str, str] | None = None) -> Callable:
    """Decorator: check a public function's arguments against ``constraints`` on every call.

    ``removed`` maps keyword arguments that the function no longer takes to what replaces them:
    passing one is a ``TypeError`` that says so (never a silent alias).

    Parameters
    ----------
    constraints : mapping of str to list
        Allowed values of each parameter (types, :class:`Interval`, :class:`Options`, named constraints such as ``"random_state"``).
    removed : mapping of str to str, optional
        Keyword arguments the function no longer takes, and what replaced them.

    Returns
    -------
    decorator : callable
        Wraps the function with the checks.

    Examples
    --------
    >>> from numbers import Integral
    >>> @validate_params({"k": [Interval(Integral, 1, None)]})
    ... def f(k):
    ...     return k
    >>> f(2)
    2
    """

    def decorate(function: Callable) -> Callable:
        signature = inspect.signature(function)
        own = {k: v for k, v in constraints.items() if k in signature.parameters}   # shared sets hold more
        gone = dict(removed or {})

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            for name in sorted(gone.keys() & kwargs.keys()):
                raise TypeError(f"{function.__name__}() no longer takes {name}=: {gone[name]}")
            bound = signature.bind_partial(*args, **kwargs)
            check_params(function.__name__, own, bound.arguments)
            return function(*args, **kwargs)

        checked.__wrapped_constraints__ = own
        return checked

    return decorate


class ParamsValidated:
    """Mixin of the estimators: ``fit`` calls :meth:`_validate_params`, which checks
    ``get_params()`` against the class's ``_parameter_constraints``.

    Examples
    --------
    >>> from daskpml.cluster import KMeans
    >>> isinstance(KMeans(), ParamsValidated)
    True
    """

    _parameter_constraints: dict[str, list] = {}

    def _validate_params(self) -> None:
        constraints: dict[str, list] = {}
        for cls in reversed(type(self).__mro__):
            constraints.update(getattr(cls, "_parameter_constraints", {}) or {})
        check_params(type(self).__name__, constraints, self.get_params(deep=False))


# -- values whose products overflow --------------------------------------------------------------

class ValuesOverflowError(ValueError):
    """Data whose squares and products overflow their floating type."""


def _max_abs(X: Any) -> float:
    """The largest absolute value of ``X`` (dense, sparse, dask or a CSRMatrix): one pass."""
    if hasattr(X, "blocks") and hasattr(X, "row_offsets"):
        X = X.blocks
    if _is_dask(X):
        import dask.array as da

        out = da.map_blocks(_block_max_abs, X, dtype=np.float64, chunks=tuple((1,) * len(c) for c in X.chunks))
        return float(np.asarray(out.max().compute()))
    return float(_block_max_abs(X).max())


def _block_max_abs(block: Any) -> Any:
    xp, _ = get_namespace(block)
    values = block.data if is_sparse(block) else block
    top = float(xp.abs(values).max()) if values.size else 0.0
    return np.full((1,) * block.ndim, top)


def overflow_message(X: Any, name: str = "X") -> str | None:
    """The error for data whose squares or products overflow their floating type (values near
    1e300 in float64, 1e19 in float32), or None when the data are not that large."""
    dtype = np.dtype(X.dtype) if np.dtype(X.dtype).kind == "f" else np.dtype(np.float64)
    biggest = _max_abs(X)
    limit = float(np.sqrt(np.finfo(dtype).max / max(int(np.prod(X.shape)), 1)))
    if not np.isfinite(biggest) or biggest > limit:
        return (f"{name} holds values as large as {biggest:.3g}: their squares and products overflow {dtype} "
                f"(largest {np.finfo(dtype).max:.3g}), so no decomposition of it can be computed. Scale it "
                f"first, for example {name} / abs({name}).max(), and scale the result back.")
    return None


@contextlib.contextmanager
def overflow_guard(X: Any, name: str = "X") -> Any:
    """Run a decomposition of ``X``; when it fails, or ``check(*arrays)`` finds non-finite results,
    because ``X``'s values are too large for their products, raise one error that says so instead of
    "Eigenvalues did not converge" and numpy's overflow warnings."""

    def check(*arrays: Any) -> None:
        for a in arrays:
            host = np.asarray(to_numpy(a))
            if host.size and not np.all(np.isfinite(host)):
                message = overflow_message(X, name)
                if message:
                    raise ValuesOverflowError(message)

    with np.errstate(over="ignore", invalid="ignore"):
        try:
            yield check
        except ValuesOverflowError:
            raise
        except (np.linalg.LinAlgError, FloatingPointError, ValueError) as err:
            message = overflow_message(X, name)
            if message:
                raise ValuesOverflowError(message) from err
            raise


def check_indices(idx: Any, n: int, name: str) -> np.ndarray:
    """``idx`` as distinct int64 indices into ``n`` items (negative ones counted from the end).

    Parameters
    ----------
    idx : array-like of int (NumPy, CuPy or dask)
        The indices.
    n : int
        The number of items indexed.
    name : str
        The name used in error messages.

    Returns
    -------
    numpy.ndarray
        The indices, each in ``[0, n)``.

    Examples
    --------
    >>> check_indices([0, -1], 5, "idx")
    array([0, 4])
    """
    idx = np.asarray(to_numpy(idx.compute() if hasattr(idx, "compute") else idx))
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise ValueError(f"{name} must be a 1-D array of integer indices, got dtype {idx.dtype} "
                         f"and shape {idx.shape}.")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)]
        raise ValueError(f"{name} has {bad.size} index(es) out of range for {n} items "
                         f"(for example {int(bad[0])}); indices must be in [0, {n}).")
    idx = np.where(idx < 0, idx + n, idx)
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{name} repeats indices; pass each one once.")
    return idx
