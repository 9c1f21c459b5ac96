"""``daskpml --gpu``: every subcommand moves its input to the GPU and writes host results, run here on
the strict stand-in for CuPy (tests/_strict.py) against an in-process cluster (its workers share
the stand-in), the way benchmarks/gpu_check.py runs them on a LocalCUDACluster."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dask
import pytest
from _strict import owns, strict, strict_sparse
from click.testing import CliRunner
from distributed import Client, LocalCluster

from daskpml.backend import device_standin
from daskpml.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def _gpu_check():
    """benchmarks/gpu_check.py (not a package): its inputs and its family commands."""
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GPU_CHECK = _gpu_check()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpu-cli")
    GPU_CHECK.write_inputs(d)
    return d


@pytest.fixture(scope="module")
def address():
    with dask.config.set({"daskpml.progress": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False):
        yield cluster.scheduler_address


def _run(args, address):
    with device_standin(strict, strict_sparse, owns):
        return CliRunner().invoke(cli, ["--gpu", "--scheduler", address, *args], catch_exceptions=False)


@pytest.mark.parametrize("name", [n for n in GPU_CHECK.FAMILIES if n not in GPU_CHECK.HOST_ONLY])
def test_every_family_runs_with_gpu(name, inputs, address, tmp_path):
    """gpu_check's family step, on the stand-in."""
    fmt = dict(d=inputs, o=tmp_path)
    if name == "predict":                   # it reads the model that the linear family writes
        first = _run([a.format(**fmt) for a in GPU_CHECK.FAMILIES["linear (L-BFGS)"]], address)
        assert first.exit_code == 0, first.output
    args = [a.format(**fmt) for a in GPU_CHECK.FAMILIES[name]]
    result = _run(args, address)
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--out") + 1])
    assert out.stat().st_size > 0
    if name == "predict":                   # labels written from the host
        labels = out.read_text().split()
        assert len(labels) == 2000 and set(labels) <= {"0", "1"}


def test_svm_with_gpu_is_refused_naming_the_alternative(inputs, address, tmp_path):
    result = _run(["svm", str(inputs / "binary.npz"), "--out", str(tmp_path / "s.nc")], address)
    assert result.exit_code == 2 and "without --gpu" in result.output and "train --model svm" in result.output
