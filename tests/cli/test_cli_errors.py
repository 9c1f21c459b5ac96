"""Every failure a user can cause on the command line is one line naming the problem and the
fix, in the command line's words; Ctrl-C says where the last snapshot is."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from daskpml.cli import cli
from daskpml.datasets import save_npz


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_line_error(result) -> str:
    """The error line of a failed command; fails the test on a traceback or a bare 'Aborted!'."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and "Aborted!" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}")
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 5))
    y = (X[:, 0] > 0).astype(float)
    np.savez(d / "d.npz", X=X, y=y)
    whole = (d / "d.npz").read_bytes()
    (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    (d / "empty.npz").write_bytes(b"")
    np.save(d / "a.npy", np.abs(X))
    whole = (d / "a.npy").read_bytes()
    (d / "truncated.npy").write_bytes(whole[: len(whole) // 2])
    (d / "empty.npy").write_bytes(b"")
    (d / "edges.tsv.gz").write_text("a\tb\nb\tc\n")                  # named .gz, but plain text
    with gzip.open(d / "real.tsv.gz", "wt") as f:
        f.write("a\tb\nb\tc\nc\ta\n")
    (d / "plain.svm.gz").write_text("1 1:0.5\n0 2:1.5\n")
    np.save(d / "huge.npy", np.abs(X) * 1e300)                      # finite, but its squares overflow
    save_npz(d / "g.npz", sp.random(60, 60, density=0.1, format="csr", random_state=0))
    whole = (d / "g.npz").read_bytes()
    (d / "gtruncated.npz").write_bytes(whole[: len(whole) // 2])
    return d


DAMAGED = [
    ("train", "truncated.npz", "damaged .npz archive"),
    ("train", "empty.npz", "empty file (0 bytes)"),
    ("svm", "truncated.npz", "damaged .npz archive"),
    ("spectral", "truncated.npz", "damaged .npz archive"),
    ("gnn", "truncated.npz", "damaged .npz archive"),
    ("gnn", "empty.npz", "empty file (0 bytes)"),
    ("eigsh", "gtruncated.npz", "damaged .npz archive"),
    ("mcl", "gtruncated.npz", "damaged .npz archive"),
    ("nmf", "truncated.npy", "damaged .npy array"),
    ("nmf", "empty.npy", "empty file (0 bytes)"),
    ("pca", "truncated.npz", "damaged .npz archive"),
    ("mcl", "edges.tsv.gz", "named like a gzip-compressed (.gz) file"),
    ("train", "plain.svm.gz", "named like a gzip-compressed (.gz) file"),
    ("pca", "huge.npy", "squares and products overflow float64"),
    ("nmf", "huge.npy", "squares and products overflow float64"),
]
EXTRA = {"spectral": ["-k", "2"], "nmf": ["-k", "2"], "pca": ["-k", "2"]}


@pytest.mark.parametrize("command,name,expected", DAMAGED, ids=[f"{c}-{n}" for c, n, _ in DAMAGED])
def test_damaged_inputs_fail_in_one_line(client, files, tmp_path, command, name, expected):
    result = run(command, str(files / name), *EXTRA.get(command, []), "--out", str(tmp_path / "out"))
    line = one_line_error(result)
    assert expected in line and (str(files / name) in line or "overflow" in expected)


def test_datasets_convert_names_a_damaged_input(files, tmp_path):
    line = one_line_error(run("datasets", "convert", str(files / "gtruncated.npz"), str(tmp_path / "g.mtx")))
    assert "damaged .npz archive" in line


def test_gzipped_edge_lists_are_read(client, files, tmp_path):
    result = run("mcl", str(files / "real.tsv.gz"), "--out", str(tmp_path / "c.txt"))
    assert result.exit_code == 0, result.output
    assert sorted((tmp_path / "c.txt").read_text().split()) == ["a", "b", "c"]


def test_eigsh_refuses_an_asymmetric_matrix_at_once(client, tmp_path):
    save_npz(tmp_path / "asym.npz", sp.random(400, 400, density=0.03, format="csr", random_state=1))
    start = time.perf_counter()
    line = one_line_error(run("eigsh", str(tmp_path / "asym.npz"), "--laplacian", "none", "--k", "3",
                              "--out", str(tmp_path / "e.nc")))
    assert time.perf_counter() - start < 20               # was NoConvergence after 25-36 s
    assert "not symmetric" in line and "--symmetrize" in line and "symmetrize=" not in line
    result = run("eigsh", str(tmp_path / "asym.npz"), "--laplacian", "none", "--k", "3", "--symmetrize",
                 "--out", str(tmp_path / "e.nc"))
    assert result.exit_code == 0, result.output
    line = one_line_error(run("eigsh", str(tmp_path / "asym.npz"), "--k", "3", "--out", str(tmp_path / "e.nc")))
    assert "--symmetrize" in line


def test_predict_on_a_file_that_is_not_a_model(client, files, tmp_path):
    line = one_line_error(run("predict", str(files / "d.npz"), str(files / "d.npz")))
    assert "is not a model file" in line and "zip archive" in line


@pytest.mark.parametrize("address,expected", [
    ("http://127.0.0.1:8786", "is a web address"), ("garbage-host", "does not resolve"),
    ("127.0.0.1:99999", "not in 1..65535"), ("", "is empty"), ("foo://x:1", "unknown scheme 'foo'")])
def test_malformed_scheduler_addresses_are_named_at_once(address, expected):
    start = time.perf_counter()
    line = one_line_error(run("--scheduler", address, "info"))
    assert expected in line and time.perf_counter() - start < 4


def test_resume_with_a_missing_checkpoint_folder_says_so(client, files, tmp_path):
    result = run("train", str(files / "d.npz"), "--checkpoint", str(tmp_path / "ck"), "--resume", "--quiet",
                 "--out", str(tmp_path / "m.nc"))
    assert result.exit_code == 0, result.output
    assert f"the checkpoint folder {tmp_path / 'ck'} does not exist; starting from the beginning" in result.output


def _interrupt_at(monkeypatch, iteration):
    from daskpml.optim._run import Run

    record = Run.record

    def interrupted(self, it, *args, **kwargs):
        if it == iteration:
            raise KeyboardInterrupt
        return record(self, it, *args, **kwargs)

    monkeypatch.setattr(Run, "record", interrupted)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_ctrl_c_says_where_the_last_snapshot_is(client, files, tmp_path, monkeypatch):
    _interrupt_at(monkeypatch, 5)
    args = ["train", str(files / "d.npz"), "--solver", "gradient_descent", "--tol", "0", "--quiet",
            "--checkpoint", str(tmp_path / "ck"), "--checkpoint-every", "2", "--out", str(tmp_path / "m.nc")]
    result = run(*args)
    assert result.exit_code == 130 and "Aborted!" not in result.output and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "interrupted" in line]
    assert len(lines) == 1
    assert f"the last snapshot is {tmp_path / 'ck' / 'iter-000004'} (iteration 4)" in lines[0]
    assert lines[0].endswith("--resume") and "go on from it with: daskpml train" in lines[0]
    assert not (tmp_path / "m.nc").exists()
    result = run(*args[:-6], "--out", str(tmp_path / "m.nc"))
    assert result.exit_code == 130 and "no --checkpoint was given" in result.output


def _terminal_sigint():
    """SIGINT as a terminal's foreground job has it: a test run started in the background (``nohup
    ... &``, some CI runners) ignores SIGINT, and an ignored signal is inherited across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT are POSIX")
def test_ctrl_c_in_a_terminal_stops_cleanly(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it: the workers of the embedded
    cluster leave it to the client, which prints one line and closes the cluster quietly."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60_000, 40))
    y = (X[:, 0] + rng.standard_normal(60_000) > 0).astype(float)
    X[:, 1] *= 300                      # ill-conditioned: gradient descent runs for minutes, not seconds
    np.savez(tmp_path / "d.npz", X=X, y=y)
    ck = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "-m", "daskpml.cli", "--workers", "2", "--threads", "1", "train",
                             str(tmp_path / "d.npz"), "--solver", "gradient_descent", "--tol", "0", "--max-iter",
                             "100000", "--checkpoint", str(ck), "--checkpoint-every", "1", "--out",
                             str(tmp_path / "m.nc")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True, preexec_fn=_terminal_sigint)
    try:
        deadline = time.monotonic() + 120
        while not (ck / "latest").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "ERROR" not in output and "KeyboardInterrupt" not in output, output
    assert [line for line in output.splitlines() if "interrupted" in line][0].endswith("--resume")


def test_lost_workers_and_killed_tasks_are_one_line(client, files, tmp_path, monkeypatch):
    from distributed import KilledWorker

    import daskpml.linear_model

    def killed(self, *args, **kwargs):
        raise KilledWorker("chunk_loss_grad-abc", SimpleNamespace(address="tcp://127.0.0.1:1"), allowed_failures=3)

    monkeypatch.setattr(daskpml.linear_model.LogisticRegression, "fit", killed)
    line = one_line_error(run("train", str(files / "d.npz"), "--out", str(tmp_path / "m.nc")))
    assert "killed every worker" in line and "--memory-limit" in line

