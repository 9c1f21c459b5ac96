"""Plotting helpers for daskpml's results (matplotlib is an optional dependency:
``pip install daskpml[plot]``). Each function takes the xarray results the estimators
store (``history_``, embeddings, components) and returns the matplotlib ``Axes``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .backend import to_numpy


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:                        # pragma: no cover - depends on the environment
        raise ImportError("daskpml.plot needs matplotlib: pip install 'daskpml[plot]' (or matplotlib).") from None
    return plt


def _axes(ax: Any) -> Any:
    return ax if ax is not None else _pyplot().subplots(figsize=(5, 3.5))[1]


def convergence(history: Any, variables: str | Sequence[str] = "objective", *, x: str | None = None,
                ax: Any = None, logy: bool = True, label: str | None = None) -> Any:
    """Convergence curves: ``variables`` of an iteration history (an xarray Dataset with an
    ``iteration`` dimension) against it or against ``x``
    (for example ``"time"``). NaN rows (unsampled iterations) are skipped.

    Parameters
    ----------
    history : xarray.Dataset
        An iteration history.
    variables : str or sequence of str
        Columns plotted (default "objective").
    x : array, sparse matrix or dask collection
        The input.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default a new figure).
    logy : bool, default True
        Log scale when every value is positive.
    label : str, optional
        Legend label.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from daskpml.results import history
    >>> ax = convergence(history({"objective": [3.0, 2.0, 1.5]}))
    >>> ax.get_xlabel()
    'iteration'
    """
    if isinstance(variables, str):
        variables = [variables]
    missing = [v for v in variables if v not in history]
    if missing:
        raise ValueError(f"the history has no variable {missing[0]!r}; it has {sorted(history.data_vars)}.")
    ax = _axes(ax)
    dim = next(iter(history[variables[0]].dims))
    for name in variables:
        y = np.asarray(history[name].values, dtype=float)
        xs = np.asarray(history[x].values if x else history[dim].values, dtype=float)
        keep = np.isfinite(y)
        ax.plot(xs[keep], y[keep], marker="." if keep.sum() < 60 else None,
                label=label or (name if len(variables) > 1 else None))
    ax.set_xlabel(x or dim)
    ax.set_ylabel(variables[0] if len(variables) == 1 else "value")
    if logy and all((np.asarray(history[v].values, dtype=float)[np.isfinite(history[v].values)] > 0).all()
                    for v in variables):
        ax.set_yscale("log")
    if len(variables) > 1 or label:
        ax.legend()
    return ax


def embedding(points: Any, labels: Any = None, *, ax: Any = None, size: float = 6.0, title: str | None = None) -> Any:
    """A 2-D scatter of the first two columns of ``points`` (an embedding: spectral, PCA),
    coloured by ``labels`` (clusters or classes).

    Parameters
    ----------
    points : array or xarray.DataArray
        Coordinates (n x >= 2); the first two are drawn.
    labels : array, optional
        Colour of each point.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default a new figure).
    size : float, default 6.0
        Marker size.
    title : str, optional
        Title of the axes.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = embedding(np.random.default_rng(0).normal(size=(20, 2)), labels=np.arange(20) % 2)
    >>> len(ax.collections) > 0
    True
    """
    P = np.asarray(to_numpy(getattr(points, "values", points)))
    if P.ndim != 2 or P.shape[1] < 2:
        raise ValueError(f"points must be (n, 2 or more), got shape {P.shape}.")
    ax = _axes(ax)
    c = None if labels is None else np.asarray(to_numpy(getattr(labels, "values", labels)))
    ax.scatter(P[:, 0], P[:, 1], c=c, s=size, cmap="tab10" if c is not None else None)
    if title:
        ax.set_title(title)
    return ax


def components(H: Any, image_shape: tuple[int, int], *, n_cols: int = 5, fig: Any = None) -> Any:
    """Each row of ``H`` (NMF or PCA components) as an image of ``image_shape`` (digits:
    (8, 8)); returns the figure.

    Parameters
    ----------
    H : array
        Components (k x n_features), one image each.
    image_shape : tuple of int
        The shape of one image (rows, columns).
    n_cols : int, default 5
        Images per row.
    fig : matplotlib.figure.Figure, optional
        Where to draw (default a new figure).

    Returns
    -------
    fig : matplotlib.figure.Figure
        One image per component.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig = components(np.random.default_rng(0).random((2, 64)), (8, 8))
    >>> len(fig.axes) >= 2
    True
    """
    H = np.asarray(to_numpy(getattr(H, "values", H)))
    if H.ndim != 2 or H.shape[1] != int(np.prod(image_shape)):
        raise ValueError(f"components of {H.shape[1] if H.ndim == 2 else '?'} values cannot be shown as "
                         f"{image_shape} images; give the image shape whose product is the number of features.")
    plt = _pyplot()
    k = H.shape[0]
    rows = int(np.ceil(k / n_cols))
    fig = fig or plt.figure(figsize=(1.4 * min(k, n_cols), 1.5 * rows))
    for i in range(k):
        ax = fig.add_subplot(rows, min(k, n_cols), i + 1)
        ax.imshow(H[i].reshape(image_shape), cmap="gray_r")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{i}", fontsize=8)
    return fig


def accuracy(history: Any, *, ax: Any = None) -> Any:
    """GNN training: train and validation accuracy per epoch (from ``GCN.history_``).

    Parameters
    ----------
    history : xarray.Dataset
        An iteration history.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default a new figure).

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from daskpml.results import history
    >>> accuracy(history({"train_accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]})).get_ylabel()
    'accuracy'
    """
    names = [v for v in ("train_accuracy", "val_accuracy") if v in history]
    if not names:
        raise ValueError("the history has no train_accuracy / val_accuracy; pass a GNN estimator's history_.")
    ax = convergence(history, names, logy=False, ax=ax)
    ax.set_ylabel("accuracy")
    return ax


__all__ = ["accuracy", "components", "convergence", "embedding"]
