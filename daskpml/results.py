"""Builders for labelled results as xarray objects.

* iteration histories: a :class:`xarray.Dataset` with dimension ``iteration``
  (and ``worker`` for per-worker quantities), settings in ``attrs``;
* labels: a :class:`xarray.DataArray` with dimension ``node`` (or ``sample``);
* embeddings: dimensions ``(node, component)``.

:func:`write_netcdf` / :func:`read_netcdf` store them (attributes are
converted to netCDF-compatible types).
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import os
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import xarray as xr

from ._files import atomic_path, check_readable
from .backend import to_numpy

__all__ = ["BYTES_SOURCES", "HistoryRecorder", "ResultDisplay", "embedding", "history", "labels", "read_netcdf",
           "write_netcdf"]


def _summary(value: Any) -> str:
    """One line about a result field: numbers and short strings as they are, arrays and
    collections by shape and type (never computed)."""
    if isinstance(value, (bool, int, float, str, np.number, np.bool_)) or value is None:
        text = repr(value.item() if isinstance(value, np.generic) else value)
        return text if len(text) <= 80 else text[:77] + "..."
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} {tuple(shape)} {getattr(value, 'dtype', '')}".strip()
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_summary(v)}" for k, v in list(value.items())[:6]) + "}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


class ResultDisplay:
    """Mixin for the result dataclasses: a short text repr and, in Jupyter, an HTML table of
    the fields with the iteration history (an xarray Dataset) folded out below it.

    Examples
    --------
    >>> from daskpml.linalg import LanczosResult
    >>> issubclass(LanczosResult, ResultDisplay)
    True
    """

    def _fields(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]

    def __repr__(self) -> str:
        parts = [f"{name}={_summary(value)}" for name, value in self._fields() if not isinstance(value, xr.Dataset)]
        return f"{type(self).__name__}({', '.join(parts)})"

    def _repr_html_(self) -> str:
        rows, extra = [], []
        for name, value in self._fields():
            if isinstance(value, (xr.Dataset, xr.DataArray)):
                extra.append(f"<details><summary>{html.escape(name)}</summary>{value._repr_html_()}</details>")
            else:
                rows.append(f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
                            f"<td style='text-align:left'><code>{html.escape(_summary(value))}</code></td></tr>")
        return (f"<div><strong>{html.escape(type(self).__name__)}</strong>"
                f"<table>{''.join(rows)}</table>{''.join(extra)}</div>")


def _host(values: Any) -> np.ndarray:
    if hasattr(values, "compute"):
        values = values.compute()
    return np.asarray(to_numpy(values))


#: What a ``bytes`` column holds, said in its attrs: ``"model"`` (counted from the sizes of the
#: arrays an iteration moves) or ``"measured"`` (read from the workers' transfer counters).
BYTES_SOURCES = ("model", "measured")


def history(records: Mapping[str, Sequence], *, per_worker: Mapping[str, Any] | None = None,
            workers: Sequence[str] | None = None, attrs: Mapping[str, Any] | None = None,
            bytes_source: str | None = None) -> xr.Dataset:
    """Iteration history as a Dataset.

    Parameters
    ----------
    records : mapping of name -> sequence
        One value per iteration for each quantity (all the same length).
    per_worker : mapping of name -> 2-D array (iteration x worker), optional
    workers : names of the workers (default ``0..P-1``)
    attrs : settings to record (solver, tolerances, ...)
    bytes_source : {"model", "measured"}, optional
        What the ``bytes`` column holds (see :data:`BYTES_SOURCES`), written in its attrs.

    Returns
    -------
    history : xarray.Dataset
        Dimension ``iteration`` (and ``worker``), settings in ``attrs``.

    Examples
    --------
    >>> h = history({"objective": [3.0, 2.0], "time": [0.1, 0.2]})
    >>> h.sizes["iteration"]
    2
    """
    lengths = {k: len(v) for k, v in records.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history records have different lengths: {lengths}.")
    n = next(iter(lengths.values()), 0)
    data_vars: dict[str, Any] = {k: ("iteration", np.asarray(v)) for k, v in records.items()}
    coords: dict[str, Any] = {"iteration": np.arange(n)}
    for key, value in (per_worker or {}).items():
        value = np.asarray(value)
        if value.ndim != 2 or value.shape[0] != n:
            raise ValueError(f"per-worker record {key!r} must have shape ({n}, n_workers), got {value.shape}.")
        data_vars[key] = (("iteration", "worker"), value)
        coords["worker"] = np.asarray(workers if workers is not None else np.arange(value.shape[1]))
    out = xr.Dataset(data_vars, coords=coords, attrs=dict(attrs or {}))
    if bytes_source is not None:
        if bytes_source not in BYTES_SOURCES:
            raise ValueError(f"bytes_source must be one of {BYTES_SOURCES}, got {bytes_source!r}.")
        if "bytes" in out:
            out["bytes"].attrs.update(source=bytes_source, units="bytes", description=(
                "bytes moved in the iteration, counted from the sizes of the arrays sent (a model)"
                if bytes_source == "model" else
                "bytes moved in the iteration, read from the workers' transfer counters (a measurement)"))
    return out


class HistoryRecorder:
    """The one recorder of iteration histories, for every iterative algorithm.

    Each :meth:`record` appends one row (a ``time`` column, the seconds of work so far, is
    added) and calls ``callback(record)``, where ``record`` is the row just appended plus
    ``iteration`` and the algorithm's current model under its documented keys. A true return
    value asks the algorithm to stop cleanly (as Ctrl-C does), keeping the model it has.
    :meth:`to_xarray` builds the :func:`history` Dataset, dimension ``iteration`` (and
    ``worker`` for per-worker columns).

    Parameters
    ----------
    attrs : mapping, optional
        Settings recorded in the Dataset's attrs.
    callback : callable(record) -> bool or None, optional
        Called after every row.
    bytes_source : {"model", "measured"}, optional
        What the ``bytes`` column holds (see :data:`BYTES_SOURCES`); written in its attrs.

    Examples
    --------
    >>> rec = HistoryRecorder({"solver": "demo"}, callback=lambda r: r["iteration"] == 2)
    >>> rec.record(1, objective=3.0), rec.record(2, objective=2.0)
    (False, True)
    >>> rec.to_xarray()["objective"].values.tolist()
    [3.0, 2.0]
    """

    def __init__(self, attrs: Mapping[str, Any] | None = None, *, callback: Callable | None = None,
                 bytes_source: str | None = None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable as callback(record), got {type(callback).__name__}.")
        if bytes_source is not None and bytes_source not in BYTES_SOURCES:
            raise ValueError(f"bytes_source must be one of {BYTES_SOURCES}, got {bytes_source!r}.")
        self.attrs = dict(attrs or {})
        self.callback = callback
        self.bytes_source = bytes_source
        self.stopped = False
        self._rows: list[dict[str, Any]] = []
        self._per_worker: list[dict[str, Any]] = []
        self._start = time.perf_counter()
        self._paused = 0.0

    # -- time -----------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds of work so far: wall time less the time spent in :meth:`paused` blocks."""
        return time.perf_counter() - self._start - self._paused

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Keep the enclosed monitoring work out of the ``time`` column."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - t0

    # -- rows -----------------------------------------------------------------------------
    def record(self, iteration: int, state: Mapping[str, Any] | None = None, *,
               per_worker: Mapping[str, Any] | None = None, notify: bool = True, **values: Any) -> bool:
        """Append one row of ``values`` (and ``per_worker`` values, one per worker), then call
        the callback with the row, ``iteration`` and ``state`` (the current model), unless
        ``notify`` is False (a row that does not end an iteration). Returns True when the
        callback asked to stop (and from then on :attr:`stopped` is True)."""
        values.setdefault("time", self.elapsed())
        self._rows.append(values)
        if per_worker:
            self._per_worker.append({k: np.asarray(v) for k, v in per_worker.items()})
        if notify and self.callback is not None and \
                self.callback({"iteration": int(iteration), **values, **(state or {})}):
            self.stopped = True
        return self.stopped

    def fill(self, index: int, **values: Any) -> None:
        """Set values of an earlier row (quantities evaluated after the fact)."""
        self._rows[index].update(values)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows so far (for checkpoints)."""
        return self._rows

    @property
    def per_worker_rows(self) -> list[dict[str, Any]]:
        """The per-worker values so far, one mapping per row that had them."""
        return self._per_worker

    def resume(self, rows: Sequence[Mapping[str, Any]], per_worker: Sequence[Mapping[str, Any]] = ()) -> None:
        """Continue after ``rows`` (from a checkpoint): times go on from the last one."""
        self._rows = [dict(r) for r in rows]
        self._per_worker = [dict(r) for r in per_worker]
        if self._rows:
            self._start = time.perf_counter() - float(self._rows[-1].get("time", 0.0)) - self._paused

    def columns(self) -> dict[str, list]:
        """The rows as columns; a value missing in a row is NaN."""
        keys: list[str] = []
        for row in self._rows:
            keys += [k for k in row if k not in keys]
        return {k: [row.get(k, np.nan) for row in self._rows] for k in keys}

    def to_xarray(self, workers: Sequence | None = None, attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
        """The history Dataset (see :func:`history`)."""
        per_worker = None
        if self._per_worker and len(self._per_worker) == len(self._rows):
            per_worker = {k: np.stack([r[k] for r in self._per_worker]) for k in self._per_worker[0]}
        return history(self.columns(), per_worker=per_worker, workers=workers,
                       attrs={**self.attrs, **(attrs or {})}, bytes_source=self.bytes_source)


def labels(values: Any, *, nodes: Sequence | None = None, dim: str = "node", name: str = "label",
           attrs: Mapping[str, Any] | None = None) -> xr.DataArray:
    """Labels (cluster ids, classes) as a DataArray over ``dim``, indexed by node names.

    Parameters
    ----------
    values : array-like
        One value per node or sample.
    nodes : sequence, optional
        Names of the nodes (default their indices).
    dim : str, default "node"
        Name of the dimension.
    name : str
        What to call the input in messages.
    attrs : mapping, optional
        Attributes stored with the result.

    Returns
    -------
    labels : xarray.DataArray
        Over ``dim``.

    Examples
    --------
    >>> labels([0, 1], nodes=["a", "b"]).sel(node="b").item()
    1
    """
    values = _host(values)
    coords = {dim: np.asarray(nodes) if nodes is not None else np.arange(values.shape[0])}
    return xr.DataArray(values, dims=(dim,), coords=coords, name=name, attrs=dict(attrs or {}))


def embedding(values: Any, *, nodes: Sequence | None = None, dim: str = "node",
              name: str = "embedding", attrs: Mapping[str, Any] | None = None) -> xr.DataArray:
    """An embedding (rows = nodes or samples, columns = components) as a DataArray.

    Parameters
    ----------
    values : array-like
        One value per node or sample.
    nodes : sequence, optional
        Names of the nodes (default their indices).
    dim : str, default "node"
        Name of the dimension.
    name : str
        What to call the input in messages.
    attrs : mapping, optional
        Attributes stored with the result.

    Returns
    -------
    embedding : xarray.DataArray
        Over ``(dim, component)``.

    Examples
    --------
    >>> embedding(np.ones((3, 2))).dims
    ('node', 'component')
    """
    values = _host(values)
    coords = {dim: np.asarray(nodes) if nodes is not None else np.arange(values.shape[0]),
              "component": np.arange(values.shape[1])}
    return xr.DataArray(values, dims=(dim, "component"), coords=coords, name=name, attrs=dict(attrs or {}))


def _netcdf_attr(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if value is None:
        return "None"
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)) and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value):
        return np.asarray(value)
    return str(value)


def _clean_attrs(obj: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    obj = obj.copy()
    obj.attrs = {k: _netcdf_attr(v) for k, v in obj.attrs.items()}
    if isinstance(obj, xr.Dataset):
        for var in obj.variables.values():
            var.attrs = {k: _netcdf_attr(v) for k, v in var.attrs.items()}
    return obj


def write_netcdf(obj: xr.Dataset | xr.DataArray, path: str | os.PathLike) -> None:
    """Write an xarray result to netCDF, atomically (write then rename).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The result.
    path : str or os.PathLike
        The file.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "h.nc")
    >>> write_netcdf(history({"objective": [1.0]}), path)
    >>> read_netcdf(path)["objective"].values.tolist()
    [1.0]
    """
    if not isinstance(obj, (xr.Dataset, xr.DataArray)):
        raise TypeError(f"write_netcdf expects an xarray Dataset or DataArray, got {type(obj).__name__}.")
    with atomic_path(path) as tmp:
        _clean_attrs(obj).to_netcdf(tmp)


def read_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Read a result written by :func:`write_netcdf` fully into memory.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    result : xarray.Dataset
        Loaded into memory.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "h.nc")
    >>> write_netcdf(history({"objective": [1.0]}), path)
    >>> read_netcdf(path).sizes["iteration"]
    1
    """
    with xr.open_dataset(check_readable(path)) as ds:
        return ds.load()
