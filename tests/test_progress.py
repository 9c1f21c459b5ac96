"""Progress without a terminal, and where compiled kernels are cached."""

from __future__ import annotations

import glob
import os
import sys

import dask
import numpy as np
import pytest

from daskpml._progress import ProgressLine


class _Log:
    """A standard error that is not a terminal."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines += [line for line in text.splitlines() if line]

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_without_a_terminal_a_line_every_interval_and_the_last_state(monkeypatch):
    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    clock = iter(np.arange(0.0, 100.0, 0.5))          # 0.5 s per iteration
    monkeypatch.setattr("daskpml._progress.time.monotonic", lambda: float(next(clock)))
    with dask.config.set({"daskpml.progress-interval": "2s"}):
        line = ProgressLine()                          # shown by default, also in logs
        for i in range(1, 21):
            line.update(i, 20, f"iteration {i}")
        line.close()
    assert log.lines[0] == "iteration 1"               # at once
    assert log.lines[-1] == "iteration 20"             # and the last state
    assert 5 <= len(log.lines) <= 7                    # every 2 s of 10 s, not every iteration


def test_progress_false_prints_nothing(monkeypatch):
    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    line = ProgressLine(False)
    line.update(1, 2, "x")
    line.close()
    assert log.lines == []


def test_persist_progress_in_a_log_is_lines_not_a_bar(client, monkeypatch, capsys):
    import dask.array as da

    from daskpml.runtime import persist_with_progress

    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    (x,) = persist_with_progress(da.ones((100, 10), chunks=10), show=True)
    err = capsys.readouterr().err
    assert "computing: 10/10 blocks" in err and "\r" not in err
    assert float(x.sum().compute()) == 1000.0


def test_compiled_kernels_are_cached_outside_the_package(tmp_path):
    """numba's default puts its cache next to the source, i.e. in site-packages, where
    `pip uninstall` leaves it and turns daskpml into a namespace package that shadows a later
    editable install."""
    import daskpml
    from daskpml import numba_cache_dir
    from daskpml.graph import mcl
    from daskpml.datasets import make_sbm

    A, _ = make_sbm(300, 3, random_state=0)
    with dask.config.set(scheduler="sync"):
        mcl(A, 2.0, progress=False)
    package = os.path.dirname(daskpml.__file__)
    assert not glob.glob(os.path.join(package, "**", "*.nb[ic]"), recursive=True)
    cache = numba_cache_dir()
    assert not os.path.abspath(cache).startswith(os.path.abspath(package))
    assert glob.glob(os.path.join(cache, "**", "*.nbi"), recursive=True)


def test_the_cache_folder_follows_the_setting(tmp_path, monkeypatch):
    from daskpml import numba_cache_dir

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    with dask.config.set({"daskpml.numba-cache-dir": str(tmp_path / "kernels")}):
        assert numba_cache_dir() == str(tmp_path / "kernels") and (tmp_path / "kernels").is_dir()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "env"))
    assert numba_cache_dir() == str(tmp_path / "env")
    if os.name != "nt":
        monkeypatch.delenv("NUMBA_CACHE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        with dask.config.set({"daskpml.numba-cache-dir": None}):
            expected = str(tmp_path / "xdg" / "daskpml" / "numba")
            assert numba_cache_dir() == (expected if sys.platform != "darwin" else numba_cache_dir())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_an_unwritable_cache_folder_falls_back_to_a_temporary_one(tmp_path, monkeypatch):
    from daskpml import numba_cache_dir

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).startswith(str(tmp_path)) else real(p, mode))
    with dask.config.set({"daskpml.numba-cache-dir": str(tmp_path / "ro")}):
        assert not numba_cache_dir().startswith(str(tmp_path))
