"""Outputs are all or nothing, checked before any work, and never written over an input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from daskpml.cli import cli
from daskpml.datasets import save_npz

LOCAL = ["--workers", "1", "--threads", "2"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _xy(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = (X[:, 0] + 0.3 * rng.standard_normal(n) > 0).astype(float)
    np.savez(path, X=X, y=y)
    return path


def _graph(path):
    save_npz(path, sp.random(30, 30, density=0.2, format="csr", random_state=0) + sp.eye(30))
    return path


def test_out_naming_the_input_is_refused_before_any_work(tmp_path):
    data = _xy(tmp_path / "d.npz")
    before = data.read_bytes()
    result = run("train", str(data), "--out", str(data))
    assert result.exit_code != 0
    assert "is the same file as the input DATA" in result.output and "--out" in result.output
    assert "connected to" not in result.output           # refused before a cluster was started
    assert data.read_bytes() == before


@pytest.mark.parametrize("link", ["relative", "symlink", "hardlink"])
def test_convert_refuses_the_input_under_another_name(tmp_path, link):
    g = _graph(tmp_path / "g.npz")
    before = g.read_bytes()
    if link == "relative":
        target = os.path.join(os.path.relpath(tmp_path), ".", "g.npz")
    else:
        target = tmp_path / "alias.npz"
        (os.symlink if link == "symlink" else os.link)(g, target)
    result = run("datasets", "convert", str(g), str(target))
    assert result.exit_code != 0 and "is the same file as the input SOURCE" in result.output
    assert g.read_bytes() == before


def test_two_outputs_naming_one_file_are_refused(tmp_path):
    data = _xy(tmp_path / "d.npz")
    out = tmp_path / "o.txt"
    result = run("gnn", str(data), "--out", str(out), "--history", str(out))
    assert result.exit_code != 0 and "both name" in result.output


def test_missing_output_folder_is_named_before_the_fit(tmp_path):
    data = _xy(tmp_path / "d.npz")
    missing = tmp_path / "no" / "such"
    result = run("train", str(data), "--out", str(missing / "m.nc"))
    assert result.exit_code != 0
    assert f"the folder {missing} does not exist" in result.output
    assert ".tmp-" not in result.output and "connected to" not in result.output


def test_output_that_is_a_directory_is_refused(tmp_path):
    data = _xy(tmp_path / "d.npz")
    result = run("predict", str(tmp_path / "m.nc"), str(data), "--out", str(tmp_path))
    assert result.exit_code != 0 and "is a directory" in result.output


def test_unwritable_output_folder_is_refused(tmp_path, monkeypatch):
    data = _xy(tmp_path / "d.npz")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):            # root writes any folder: make os.access say what it is for others
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if os.fspath(p) == str(locked) and mode & os.W_OK
                            else real(p, mode))
    try:
        result = run("train", str(data), "--out", str(locked / "m.nc"))
    finally:
        locked.chmod(0o755)
    assert result.exit_code != 0 and f"the folder {locked} is not writable" in result.output


def test_unwritable_checkpoint_folder_is_refused_before_the_fit(tmp_path):
    data = _xy(tmp_path / "d.npz")
    result = run("train", str(data), "--out", str(tmp_path / "m.nc"), "--checkpoint", str(tmp_path / "a" / "ck"))
    assert result.exit_code != 0 and "--checkpoint" in result.output and "does not exist" in result.output
    result = run("train", str(data), "--out", str(tmp_path / "m.nc"), "--checkpoint", str(data))
    assert result.exit_code != 0 and "is a file" in result.output


def test_pca_writes_both_files_or_neither(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).standard_normal((200, 6)))
    out, z = tmp_path / "pca.nc", tmp_path / "z.npy"
    out.write_text("the previous result")

    def broken_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken_save)
    result = run(*LOCAL, "pca", str(tmp_path / "a.npy"), "-k", "2", "--out", str(out), "--transform", str(z))
    assert result.exit_code != 0
    assert out.read_text() == "the previous result" and not z.exists()
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
    monkeypatch.undo()
    result = run(*LOCAL, "pca", str(tmp_path / "a.npy"), "-k", "2", "--out", str(out), "--transform", str(z))
    assert result.exit_code == 0, result.output
    assert np.load(z).shape == (200, 2) and out.read_bytes()[:3] in (b"CDF", b"\x89HD")


def test_gnn_does_not_rewrite_its_output_in_place(tmp_path, monkeypatch):
    from daskpml.datasets import load_karate

    A, labels = load_karate()
    A = A.to_scipy()
    np.savez(tmp_path / "k.npz", adj_data=A.data, adj_indices=A.indices, adj_indptr=A.indptr,
             adj_shape=np.array(A.shape), x=np.eye(34), labels=labels, idx_train=np.array([0, 1, 2, 33, 32, 31]))
    out, hist = tmp_path / "pred.tsv", tmp_path / "h.nc"
    out.write_text("the previous predictions\n")
    import daskpml.results

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(daskpml.results, "write_netcdf", broken)
    result = run(*LOCAL, "gnn", str(tmp_path / "k.npz"), "--epochs", "3", "--parts", "1", "--out", str(out),
                 "--history", str(hist))
    assert result.exit_code != 0
    assert out.read_text() == "the previous predictions\n" and not hist.exists()
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
