from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from daskpml.cli import cli
from daskpml.datasets import load_graph, load_matrix, save_npz

LOCAL = ["--workers", "1", "--threads", "2"]


def run(*args: str) -> object:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_info_without_cluster():
    result = run("info", "--no-cluster")
    assert result.exit_code == 0
    assert "daskpml" in result.output and "backend numpy" in result.output and "backend cupy" in result.output


def test_info_with_embedded_cluster():
    result = run(*LOCAL, "info")
    assert result.exit_code == 0, result.output
    assert re.search(r"^scheduler\s+tcp://", result.output, re.M)
    assert re.search(r"^workers\s+1 \(2 threads\)$", result.output, re.M)


def test_make_sbm_writes_graph_and_labels(tmp_path):
    out, labels = tmp_path / "g.npz", tmp_path / "labels.tsv"
    result = run(*LOCAL, "datasets", "make-sbm", "--nodes", "2000", "--clusters", "4", "--shuffle",
                 "--out", str(out), "--labels", str(labels))
    assert result.exit_code == 0, result.output
    A = load_graph(out).adjacency.to_scipy()
    assert A.shape == (2000, 2000) and abs(A - A.T).max() == 0
    lines = labels.read_text().splitlines()
    assert lines[0] == "node\tlabel" and len(lines) == 2001


def test_make_blobs_and_low_rank(tmp_path):
    assert run(*LOCAL, "datasets", "make-blobs", "--samples", "500", "--out", str(tmp_path / "b.npz")).exit_code == 0
    with np.load(tmp_path / "b.npz") as f:
        assert f["X"].shape == (500, 2) and f["y"].shape == (500,)
    assert run(*LOCAL, "datasets", "make-low-rank", "--rows", "50", "--cols", "20", "--rank", "3",
               "--out", str(tmp_path / "a.npy")).exit_code == 0
    assert np.linalg.matrix_rank(np.load(tmp_path / "a.npy")) == 3
    result = run(*LOCAL, "datasets", "make-low-rank", "--density", "0.1", "--out", str(tmp_path / "s.npz"))
    assert result.exit_code == 0 and load_matrix(tmp_path / "s.npz").shape == (1000, 500)


def test_convert_between_formats(tmp_path):
    M = sp.random(20, 20, density=0.2, format="csr", random_state=0)
    M = (M + M.T).tocsr()
    save_npz(tmp_path / "g.npz", M)
    assert run("datasets", "convert", str(tmp_path / "g.npz"), str(tmp_path / "g.mtx")).exit_code == 0
    back = load_graph(tmp_path / "g.mtx").adjacency.to_scipy()
    np.testing.assert_allclose(back.toarray(), M.toarray())


def test_errors_are_one_clear_line(tmp_path):
    result = CliRunner().invoke(cli, ["datasets", "convert", str(tmp_path / "missing.npz"), str(tmp_path / "o.mtx")])
    assert result.exit_code == 1
    assert "Error: " in result.output and "no such file" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["--scheduler", "tcp://127.0.0.1:9", "info"], env={"DASKPML__CONNECT_TIMEOUT": "2s"})
    assert result.exit_code == 1 and "No dask scheduler answered at 'tcp://127.0.0.1:9'" in result.output


def test_demo_quick_with_report(tmp_path):
    report = tmp_path / "demo.html"
    result = run(*LOCAL, "demo", "--quick", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert "dashboard" in result.output and "SpGEMM A @ A" in result.output and "NOT symmetric" not in result.output
    for line in result.output.splitlines():
        if "max |err|" in line:
            assert float(line.split("max |err|")[1].split()[0]) < 1e-9
    assert re.search(r"the tour took \d+\.\d s", result.output)
    page = report.read_text()
    sections = ("sparse", "linear", "spectral", "nmf", "mcl", "gnn", "pca", "svm", "lasso")
    for name in sections:
        assert f"<td>{name}</td>" in page, name
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 9 and all(len(b) > 2000 for b in images)
    assert "SpGEMM A @ A" in page and "the tour took" in page


def test_demo_report_needs_an_existing_folder(tmp_path):
    result = CliRunner().invoke(cli, [*LOCAL, "demo", "--quick", "--report", str(tmp_path / "no" / "r.html")])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output


def test_reachable_as_dask_pml():
    out = subprocess.run([sys.executable, "-m", "dask", "pml", "info", "--no-cluster"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if "No such command 'pml'" in out.stderr:
        pytest.fail("the dask_cli entry point 'pml' is not registered: reinstall daskpml (pip install -e .)")
    assert out.returncode == 0, out.stderr
    assert "backend numpy" in out.stdout


def test_demo_mcl_row_has_its_own_reference_time():
    """The mcl program's time sits beside daskpml's in one row (it used to repeat daskpml's time
    in a row of its own)."""
    import shutil

    result = CliRunner().invoke(cli, [*LOCAL, "demo", "--quick", "--only", "mcl"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if re.match(r"mcl\s+mcl -I", line)]
    assert len(rows) == 1, rows
    fields = rows[0].split()
    if shutil.which("mcl"):
        assert "vs the mcl program" in rows[0]
        operation_end = fields.index("clusters)")
        times = fields[operation_end + 1:operation_end + 3]
        assert all(re.fullmatch(r"\d+\.\d{3}", f) for f in times) and times[0] != times[1]
    else:
        assert "not installed" in rows[0]
