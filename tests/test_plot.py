"""daskpml.plot draws what it is given (checked on the Agg backend's artists)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")

from daskpml import plot  # noqa: E402


def test_convergence_skips_nan_and_uses_log_scale():
    h = xr.Dataset({"objective": ("iteration", [1.0, np.nan, 0.1, 0.01]), "time": ("iteration", [0, 1, 2, 3.0])},
                   coords={"iteration": [1, 2, 3, 4]})
    ax = plot.convergence(h, x="time")
    (line,) = ax.get_lines()
    assert line.get_xdata().tolist() == [0, 2, 3] and ax.get_yscale() == "log" and ax.get_xlabel() == "time"
    with pytest.raises(ValueError, match="no variable 'loss'"):
        plot.convergence(h, "loss")


def test_embedding_components_accuracy():
    ax = plot.embedding(np.random.default_rng(0).standard_normal((50, 3)), np.arange(50) % 3, title="t")
    assert ax.collections[0].get_offsets().shape == (50, 2)
    fig = plot.components(np.random.default_rng(0).random((6, 64)), (8, 8), n_cols=3)
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="image shape"):
        plot.components(np.ones((2, 10)), (8, 8))
    h = xr.Dataset({"train_accuracy": ("epoch", [0.5, 0.8]), "val_accuracy": ("epoch", [0.4, 0.7])},
                   coords={"epoch": [0, 1]})
    assert len(plot.accuracy(h).get_lines()) == 2
