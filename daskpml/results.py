"""Builders for labelled results as xarray objects.

* iteration histories: a :class:`xarray.Dataset` with dimension ``iteration``
  (and ``worker`` for per-worker quantities), settings in ``attrs``;
* labels: a :class:`xarray.DataArray` with dimension ``node`` (or ``sample``);
* embeddings: dimensions ``(node, component)``.

:func:`write_netcdf` / :func:`read_netcdf` store them (attributes are
converted to netCDF-compatible types).
"""

from __future__ import annotations

import dataclasses
import html
import os
import time
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from ._files import atomic_path, check_readable
from .backend import to_numpy


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
    the fields with the iteration history (an xarray Dataset) folded out below it."""

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


def history(records: Mapping[str, Sequence], *, per_worker: Mapping[str, Any] | None = None,
            workers: Sequence[str] | None = None, attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Iteration history as a Dataset.

    Parameters
    ----------
    records : mapping of name -> sequence
        One value per iteration for each quantity (all the same length).
    per_worker : mapping of name -> 2-D array (iteration x worker), optional
    workers : names of the workers (default ``0..P-1``)
    attrs : settings to record (solver, tolerances, ...)

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
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs or {}))


class HistoryRecorder:
    """Collects one record per iteration and builds :func:`history` at the end.

    The ``time`` column (seconds since the recorder was created) is added
    automatically.
    """

    def __init__(self, attrs: Mapping[str, Any] | None = None) -> None:
        self.attrs = dict(attrs or {})
        self._rows: list[dict[str, Any]] = []
        self._start = time.perf_counter()

    def record(self, **values: Any) -> None:
        values.setdefault("time", time.perf_counter() - self._start)
        self._rows.append(values)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The records so far (for checkpoints)."""
        return self._rows

    def resume(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Continue after ``rows`` (from a checkpoint): times go on from the last one."""
        self._rows = [dict(r) for r in rows]
        if self._rows:
            self._start = time.perf_counter() - float(self._rows[-1].get("time", 0.0))

    def to_xarray(self) -> xr.Dataset:
        keys: list[str] = []
        for row in self._rows:
            keys += [k for k in row if k not in keys]
        records = {k: [row.get(k, np.nan) for row in self._rows] for k in keys}
        return history(records, attrs=self.attrs)


def labels(values: Any, *, nodes: Sequence | None = None, dim: str = "node", name: str = "label",
           attrs: Mapping[str, Any] | None = None) -> xr.DataArray:
    """Labels (cluster ids, classes) as a DataArray over ``dim``, indexed by node names."""
    values = _host(values)
    coords = {dim: np.asarray(nodes) if nodes is not None else np.arange(values.shape[0])}
    return xr.DataArray(values, dims=(dim,), coords=coords, name=name, attrs=dict(attrs or {}))


def embedding(values: Any, *, nodes: Sequence | None = None, dim: str = "node",
              name: str = "embedding", attrs: Mapping[str, Any] | None = None) -> xr.DataArray:
    """An embedding (rows = nodes or samples, columns = components) as a DataArray."""
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
    """Write an xarray result to netCDF, atomically (write then rename)."""
    if not isinstance(obj, (xr.Dataset, xr.DataArray)):
        raise TypeError(f"write_netcdf expects an xarray Dataset or DataArray, got {type(obj).__name__}.")
    with atomic_path(path) as tmp:
        _clean_attrs(obj).to_netcdf(tmp)


def read_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Read a result written by :func:`write_netcdf` fully into memory."""
    with xr.open_dataset(check_readable(path)) as ds:
        return ds.load()
