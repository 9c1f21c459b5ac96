"""The ``strict`` test backend: NumPy/SciPy that refuse implicit host conversion the way CuPy does.

Tests run the CuPy code paths on a machine without a GPU through it (``daskpml.backend.device_standin``
routes the ``"cupy"`` backend here). What CuPy refuses, this refuses, so the commonest GPU
mistakes fail here too:

- ``np.asarray(x)`` / ``np.array(x)`` (``__array__``), ``x.tolist()``: implicit conversion to NumPy;
  ``x.get()`` (or ``daskpml.backend.to_numpy``) is the explicit way, as with CuPy;
- a NumPy function on a device array that the namespace lacks, or that CuPy cannot do (``repeat``
  with an array of counts);
- mixing host NumPy arrays into device functions and operators (``x + numpy_array``);
- SciPy functions on the sparse counterpart (they need ``__array__``, which refuses), and sparse
  formats cupyx lacks (LIL, DOK, BSR).

Reductions give 0-d arrays, and a single element indexed out is a 0-d array, as in CuPy.
"""

from __future__ import annotations

import operator
import types
from typing import Any

import numpy as np
import scipy.sparse as _sp

import os as _os
import traceback as _tb

REFUSE = ("Implicit conversion to a NumPy array is not allowed (strict test backend, as CuPy): use "
          "daskpml.backend.to_numpy(x) or x.get() where a host copy is meant")


def _debug() -> None:
    """STRICT_DEBUG=1: print where a refusal came from (dask's scheduler drops those frames)."""
    if _os.environ.get("STRICT_DEBUG"):
        _tb.print_stack(limit=12)


def _unwrap(obj: Any, where: str) -> Any:
    """Strict arrays to their NumPy arrays (recursing into lists and tuples); refuses NumPy arrays."""
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, StrictSparse):
        return obj._m
    if isinstance(obj, np.ndarray):
        _debug()
        raise TypeError(f"{where}: a NumPy array mixed into a device operation (strict test backend, as CuPy: "
                        f"'Unsupported type numpy.ndarray'); move it to the device first")
    if _sp.issparse(obj):
        raise TypeError(f"{where}: a SciPy sparse matrix mixed into a device operation (strict test backend)")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, where) for o in obj)
    return obj


def _wrap(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return StrictArray(obj)
    if isinstance(obj, np.generic) and not isinstance(obj, (np.str_, np.bytes_, np.void)):
        return StrictArray(np.asarray(obj))            # a reduction's result: a 0-d device array
    if _sp.issparse(obj):
        return StrictSparse(obj)
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _foreign(other: Any) -> bool:
    """A collection that handles device arrays itself (a dask array): it gets the operation."""
    return hasattr(other, "__dask_graph__")


def _call(fn: Any, where: str, args: tuple, kwargs: dict) -> Any:
    """``fn`` on the unwrapped arguments, its result wrapped."""
    return _wrap(fn(*_unwrap(args, where), **{k: _unwrap(v, where) for k, v in kwargs.items()}))


def _method(attr: Any, where: str) -> Any:
    """An attribute of a wrapped array or matrix: values wrapped, methods taking strict arguments."""
    if not callable(attr):
        return _wrap(attr)
    return lambda *args, **kwargs: _call(attr, where, args, kwargs)


def _binary(name: str, field: str, kind: str):
    """``__name__``, ``__rname__`` and ``__iname__`` on the wrapped ``field`` (``_a`` or ``_m``);
    a dense operand gives way to a sparse one and both give way to a dask collection."""
    fn = getattr(operator, name)

    def op(self, other):
        if _foreign(other) or (field == "_a" and isinstance(other, StrictSparse)):
            return NotImplemented
        return _wrap(fn(getattr(self, field), _unwrap(other, f"{kind}.__{name}__")))

    def rop(self, other):
        if _foreign(other):
            return NotImplemented
        return _wrap(fn(_unwrap(other, f"{kind}.__r{name}__"), getattr(self, field)))

    def iop(self, other):
        getattr(operator, "i" + name)(getattr(self, field), _unwrap(other, f"{kind}.__i{name}__"))
        return self

    return op, rop, iop


class StrictArray:
    """A NumPy array that refuses implicit conversion to NumPy (see the module's description)."""

    __slots__ = ("_a",)
    __array_priority__ = 1000
    __hash__ = None

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    # -- what CuPy refuses
    def __array__(self, dtype=None, copy=None):
        _debug()
        raise TypeError(REFUSE)

    def tolist(self):
        raise TypeError("x.tolist() on a device array (strict test backend): it copies to the host; use "
                        "daskpml.backend.to_numpy(x).tolist() where that is meant")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = _unwrap(list(inputs), f"numpy.{ufunc.__name__}")
        if "out" in kwargs:
            kwargs["out"] = _unwrap(tuple(kwargs["out"]), f"numpy.{ufunc.__name__}")
        return _wrap(getattr(ufunc, method)(*args, **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        name, module = func.__name__, func.__module__ or ""
        space = strict.linalg if module.endswith("linalg") else strict if module.split(".")[0] == "numpy" else None
        impl = getattr(space, name, None) if space is not None else None
        if impl is None:
            raise TypeError(f"{module}.{name} called on a device array: not in the strict (CuPy-like) namespace; "
                            f"use the array namespace of the input (daskpml.get_namespace)")
        return impl(*args, **kwargs)

    # -- explicit conversion, as CuPy
    def get(self, stream=None, order="C", out=None):
        return np.array(self._a, order=order)

    # -- attributes and methods: NumPy's, on the device
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))
    real = property(lambda self: StrictArray(self._a.real))
    imag = property(lambda self: StrictArray(self._a.imag))
    base = property(lambda self: None if self._a.base is None else StrictArray(self._a.base))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):        # __array_interface__, __array_struct__, buffers: host views
            raise AttributeError(f"{name} (strict test backend, as CuPy: no host view of device memory)")
        return _method(getattr(self._a, name), f"ndarray.{name}")

    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        if isinstance(value, np.ndarray):                     # CuPy copies host values in
            self._a[_index(key)] = value
        else:
            self._a[_index(key)] = _unwrap(value, "ndarray.__setitem__")

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __index__(self):
        return operator.index(self._a)

    def __neg__(self):
        return StrictArray(-self._a)

    def __pos__(self):
        return StrictArray(+self._a)

    def __abs__(self):
        return StrictArray(abs(self._a))

    def __invert__(self):
        return StrictArray(~self._a)

    def __repr__(self):
        return f"strict.{self._a!r}"

    def __format__(self, spec):
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __reduce__(self):
        return (StrictArray, (self._a,))

    def __copy__(self):
        return StrictArray(self._a.copy())

    def __deepcopy__(self, memo):
        return StrictArray(self._a.copy())


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_", "xor",
              "lshift", "rshift"):
    _op, _rop, _iop = _binary(_name, "_a", "ndarray")
    _dunder = _name.rstrip("_")
    setattr(StrictArray, f"__{_dunder}__", _op)
    setattr(StrictArray, f"__r{_dunder}__", _rop)
    setattr(StrictArray, f"__i{_dunder}__", _iop)
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(StrictArray, f"__{_name}__", _binary(_name, "_a", "ndarray")[0])


def _index(key: Any) -> Any:
    """An index for the wrapped array: strict arrays unwrapped; NumPy index arrays allowed (CuPy
    takes them)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, StrictArray):
        return key._a
    if isinstance(key, StrictSparse):
        raise TypeError("a sparse matrix as an index")
    return key


# ----------------------------------------------------------------------------- sparse
NO_SUCH_FORMAT = ("tolil", "todok", "tobsr")


class StrictSparse:
    """A SciPy sparse matrix in cupyx's place: SciPy functions refuse it (``__array__``); its
    arrays (``data``, ``indices``...) are strict arrays sharing the matrix's memory."""

    __array_priority__ = 1001
    __hash__ = None

    def __init__(self, m: Any) -> None:
        object.__setattr__(self, "_m", m)

    def __array__(self, dtype=None, copy=None):
        _debug()
        raise TypeError("A SciPy function (or np.asarray) on a device sparse matrix (strict test backend, as "
                        "cupyx): use the input's sparse namespace (daskpml.get_namespace(x)[1]) or .get()")

    def get(self, stream=None):
        return self._m.copy()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in NO_SUCH_FORMAT:
            raise AttributeError(f"'{name}': cupyx.scipy.sparse has no such format (strict test backend)")
        return _method(getattr(self._m, name), f"sparse.{name}")

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._m, name, _unwrap(value, f"sparse.{name} ="))

    T = property(lambda self: StrictSparse(self._m.T))
    shape = property(lambda self: self._m.shape)
    dtype = property(lambda self: self._m.dtype)
    ndim = property(lambda self: 2)
    nnz = property(lambda self: self._m.nnz)
    format = property(lambda self: self._m.format)

    def __getitem__(self, key):
        return _wrap(self._m[_index(key)])

    def __len__(self):
        raise TypeError("sparse matrix length is ambiguous; use getnnz() or shape[0]")

    def __neg__(self):
        return StrictSparse(-self._m)

    def __abs__(self):
        return StrictSparse(abs(self._m))

    def __repr__(self):
        return f"strict.{self._m!r}"

    def __reduce__(self):
        return (StrictSparse, (self._m,))


for _name in ("add", "sub", "mul", "truediv", "matmul", "pow"):
    _op, _rop, _iop = _binary(_name, "_m", "sparse")
    setattr(StrictSparse, f"__{_name}__", _op)
    setattr(StrictSparse, f"__r{_name}__", _rop)
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(StrictSparse, f"__{_name}__", _binary(_name, "_m", "sparse")[0])


# ----------------------------------------------------------------------------- the namespaces
#: NumPy functions whose CuPy counterpart cannot take what NumPy takes
def _repeat(a, repeats, axis=None):
    if isinstance(repeats, (StrictArray, np.ndarray)):
        raise TypeError("repeat with an array of counts: CuPy takes an int or a list of ints only "
                        "(strict test backend); build the index with cumsum/searchsorted instead")
    return _wrap(np.repeat(_unwrap(a, "repeat"), repeats, axis=axis))


def _host_in(name: str):
    """A creation function: host input is allowed (it is copied to the device)."""
    fn = getattr(np, name)

    def create(obj, *args, **kwargs):
        if isinstance(obj, (StrictArray, StrictSparse)):
            obj = obj._a if isinstance(obj, StrictArray) else obj
            if isinstance(obj, StrictSparse):
                raise TypeError(f"{name} of a sparse matrix: use .toarray()")
        elif isinstance(obj, np.ndarray):             # host to device: a copy, as CuPy
            obj = obj.copy()
        elif isinstance(obj, (list, tuple)):
            obj = _unwrap_loose(obj)
        return StrictArray(fn(obj, *args, **kwargs))

    return create


def _unwrap_loose(obj: Any) -> Any:
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap_loose(o) for o in obj)
    return obj


class _Namespace(types.ModuleType):
    """Every attribute of ``base`` (a module): functions take and give strict arrays."""

    def __init__(self, name: str, base: Any, special: dict, missing: tuple = ()) -> None:
        super().__init__(name)
        self._base = base
        self._missing = set(missing)
        self.__dict__.update(special)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in self._missing:
            raise AttributeError(f"{self.__name__} has no {name!r} (strict test backend, as CuPy/cupyx)")
        attr = getattr(self._base, name)
        if isinstance(attr, (type, np.dtype)) or not callable(attr):
            return attr                          # dtypes, scalar types, constants
        return _Function(self.__name__, name)

    def __reduce__(self):
        return (_namespace, (self.__name__,))


class _Function:
    """A function of a namespace: strict arrays in and out (picklable, as CuPy's functions are)."""

    def __init__(self, space: str, name: str) -> None:
        self.space, self.__name__ = space, name
        self._fn = getattr(_namespace(space)._base, name)

    def __call__(self, *args, **kwargs):
        where = f"{self.space}.{self.__name__}"
        return _call(self._fn, where, args, kwargs)

    def __reduce__(self):
        return (_Function, (self.space, self.__name__))


def _namespace(name: str) -> "_Namespace":
    return {"strict": strict, "strict.linalg": strict.linalg, "strict.sparse": strict_sparse}[name]


class _Stream:
    def synchronize(self) -> None:
        pass


_cuda = types.SimpleNamespace(get_current_stream=lambda: _Stream(),
                              runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))


class _RandomState:
    def __init__(self, seed=None):
        self._rs = np.random.RandomState(seed)

    def __getattr__(self, name):
        fn = getattr(self._rs, name)
        return lambda *a, **k: _wrap(fn(*_unwrap(a, f"random.{name}"), **k))


def _default_rng(seed=None):
    rng = np.random.default_rng(seed)

    class _Generator:
        def __getattr__(self, name):
            fn = getattr(rng, name)
            return lambda *a, **k: _wrap(fn(*_unwrap(a, f"random.{name}"), **k))

    return _Generator()


strict = _Namespace("strict", np, {
    "ndarray": StrictArray, "asarray": _host_in("asarray"), "array": _host_in("array"),
    "ascontiguousarray": _host_in("ascontiguousarray"), "asfortranarray": _host_in("asfortranarray"),
    "asnumpy": lambda x, stream=None: x.get() if isinstance(x, StrictArray) else np.asarray(x),
    "get_array_module": lambda *args: strict, "repeat": _repeat, "cuda": _cuda,
    "random": types.SimpleNamespace(RandomState=_RandomState, default_rng=_default_rng),
    "linalg": _Namespace("strict.linalg", np.linalg, {}),
})


def _sparse_ctor(name: str):
    cls = getattr(_sp, name)

    def ctor(arg1, shape=None, dtype=None, copy=False):
        if _sp.issparse(arg1):                           # a host SciPy matrix is copied to the device
            return StrictSparse(cls(arg1, shape=shape, dtype=dtype, copy=True))
        return StrictSparse(cls(_unwrap(arg1, f"cupyx.scipy.sparse.{name}"), shape=shape, dtype=dtype, copy=copy))

    return ctor


def _issparse(x: Any) -> bool:
    return isinstance(x, StrictSparse)


strict_sparse = _Namespace("strict.sparse", _sp, {
    "csr_matrix": _sparse_ctor("csr_matrix"), "csc_matrix": _sparse_ctor("csc_matrix"),
    "coo_matrix": _sparse_ctor("coo_matrix"), "dia_matrix": _sparse_ctor("dia_matrix"),
    "spmatrix": StrictSparse, "issparse": _issparse, "isspmatrix": _issparse,
    "isspmatrix_csr": lambda x: _issparse(x) and x.format == "csr",
    "isspmatrix_csc": lambda x: _issparse(x) and x.format == "csc",
    "isspmatrix_coo": lambda x: _issparse(x) and x.format == "coo",
}, missing=("lil_matrix", "dok_matrix", "bsr_matrix", "lil_array", "dok_array", "bsr_array"))


def owns(obj: Any) -> bool:
    return isinstance(obj, (StrictArray, StrictSparse))


def _register_with_dask() -> None:
    """What dask registers for CuPy and cupyx (dask/array/backends.py), for the stand-ins."""
    from dask.array import backends
    from dask.array.chunk_types import register_chunk_type

    register_chunk_type(StrictArray)         # dask arrays keep the operations with these chunks
    register_chunk_type(StrictSparse)
    from dask.array.dispatch import (concatenate_lookup, einsum_lookup, empty_lookup, nannumel_lookup,
                                     numel_lookup, take_lookup, tensordot_lookup, to_numpy_dispatch)

    concatenate_lookup.register(StrictArray, strict.concatenate)
    take_lookup.register(StrictArray, strict.take)
    tensordot_lookup.register(StrictArray, strict.tensordot)
    numel_lookup.register(StrictArray, backends._numel_arraylike)
    nannumel_lookup.register(StrictArray, backends._nannumel)
    empty_lookup.register(StrictArray, strict.empty)
    to_numpy_dispatch.register(StrictArray, lambda data, **kwargs: data.get())
    einsum_lookup.register(StrictArray, lambda *a, **k: strict.einsum(
        *a, **{key: v for key, v in k.items() if key not in ("casting", "order")}))

    def concat_sparse(L, axis=0):
        if axis not in (0, 1):
            raise ValueError(f"Can only concatenate sparse matrices for axis in {{0, 1}}. Got {axis}")
        return (strict_sparse.vstack if axis == 0 else strict_sparse.hstack)(L)

    concatenate_lookup.register(StrictSparse, concat_sparse)
    tensordot_lookup.register(StrictSparse, backends._tensordot_scipy_sparse)
    take_lookup.register(StrictSparse, backends.sparse_take)


_register_with_dask()
