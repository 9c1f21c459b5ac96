from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from daskpml.results import HistoryRecorder, embedding, history, labels, read_netcdf, write_netcdf


def test_history_dataset_with_workers_roundtrips(tmp_path):
    h = history({"objective": [3.0, 2.0, 1.5]}, per_worker={"bytes": np.arange(6).reshape(3, 2)},
                workers=["w0", "w1"], attrs={"solver": "gd", "tol": 1e-4, "fused": True, "note": None})
    assert h.sizes == {"iteration": 3, "worker": 2}
    assert list(h["worker"].values) == ["w0", "w1"]
    write_netcdf(h, tmp_path / "h.nc")
    back = read_netcdf(tmp_path / "h.nc")
    xr.testing.assert_allclose(back[["objective", "bytes"]], h[["objective", "bytes"]])
    assert back.attrs["solver"] == "gd" and back.attrs["fused"] == 1


def test_history_rejects_ragged_records():
    with pytest.raises(ValueError, match="different lengths"):
        history({"a": [1, 2], "b": [1]})


def test_recorder_adds_time():
    rec = HistoryRecorder({"solver": "x"})
    rec.record(1, objective=2.0)
    rec.record(2, objective=1.0, step=0.5)
    h = rec.to_xarray()
    assert h.sizes["iteration"] == 2 and np.isnan(h["step"][0]) and (h["time"].diff("iteration") >= 0).all()


def test_recorder_calls_back_with_the_row_and_the_model_and_stops_on_true():
    seen = []
    rec = HistoryRecorder(callback=lambda r: seen.append(dict(r)) or r["iteration"] == 2, bytes_source="model")
    assert rec.record(1, {"coef": np.zeros(2)}, objective=3.0, bytes=8) is False
    assert rec.record(2, {"coef": np.ones(2)}, objective=2.0, bytes=8) is True and rec.stopped
    assert [r["iteration"] for r in seen] == [1, 2] and seen[1]["objective"] == 2.0
    assert seen[1]["coef"].tolist() == [1.0, 1.0] and "time" in seen[0]
    h = rec.to_xarray()
    assert "coef" not in h and h["bytes"].attrs["source"] == "model"       # the model is not history
    rec.record(3, objective=1.0, notify=False)                              # a row that ends no iteration
    assert len(seen) == 2 and len(rec) == 3


def test_recorder_refuses_what_it_cannot_call_or_say():
    with pytest.raises(TypeError, match="callback must be callable"):
        HistoryRecorder(callback=3)
    with pytest.raises(ValueError, match="bytes_source must be one of"):
        HistoryRecorder(bytes_source="guessed")


def test_recorder_resume_continues_time_and_rows():
    rec = HistoryRecorder()
    rec.resume([{"objective": 3.0, "time": 100.0}])
    rec.record(2, objective=2.0)
    h = rec.to_xarray()
    assert h.sizes["iteration"] == 2 and float(h["time"][1]) >= 100.0


def test_labels_and_embedding_are_labelled():
    lab = labels(np.array([0, 1, 1]), nodes=["a", "b", "c"])
    assert lab.dims == ("node",) and lab.sel(node="b").item() == 1
    emb = embedding(np.ones((3, 2)))
    assert emb.dims == ("node", "component") and emb.shape == (3, 2)


def test_write_netcdf_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="xarray"):
        write_netcdf({"a": 1}, tmp_path / "x.nc")


def test_results_and_matrices_display_as_html():
    import scipy.sparse as sp

    from daskpml.datasets import make_regression
    from daskpml.optim import fit_linear
    from daskpml.sparse import from_array

    X, y = make_regression(200, 5, chunks=50, random_state=0)
    _, _, result = fit_linear(X, y, solver="lbfgs", progress=False)
    page = result._repr_html_()
    assert "<strong>OptimizeResult</strong>" in page and "n_iter" in page and "converged" in page
    assert "<details><summary>history</summary>" in page and "xr-wrap" in page  # xarray's own display
    text = repr(result)
    assert text.startswith("OptimizeResult(") and "theta=ndarray (6,) float64" in text and "history" not in text
    A = from_array(sp.random(100, 40, density=0.1, format="csr", random_state=0), chunks=30)
    page = A._repr_html_()
    assert "<strong>CSRMatrix</strong> 100 x 40 float64" in page and "4 row blocks of 10 to 30 rows" in page
