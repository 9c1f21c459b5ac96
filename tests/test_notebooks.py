"""The example notebooks (``examples/*.ipynb``) run top to bottom in a fresh Jupyter kernel, and
show what they promise: the dashboard link, a progress bar and at least one plot, no errors."""

from __future__ import annotations

import glob
import os

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat, nbclient, ipykernel")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel")
pytest.importorskip("matplotlib", reason="the notebooks plot with matplotlib")

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")
NOTEBOOKS = sorted(glob.glob(os.path.join(EXAMPLES, "*.ipynb")))


def _outputs(nb):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            yield out


def _texts(out) -> str:
    if out.get("output_type") == "stream":
        return out.get("text", "")
    data = out.get("data", {})
    return data.get("text/html", "") + data.get("text/plain", "")


def test_there_is_one_notebook_per_family():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert len(names) == 6, names
    for word in ("linear", "spectral", "nmf", "markov", "gnn", "svm"):
        assert any(word in n for n in names), (word, names)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs_and_shows_dashboard_progress_and_plots(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    runner = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    runner.execute()
    outputs = list(_outputs(nb))
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    texts = "\n".join(_texts(o) for o in outputs)
    assert "dashboard" in texts.lower() and "/status" in texts, "no dashboard link shown"
    assert "<progress" in texts, "no progress bar shown"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot shown"
