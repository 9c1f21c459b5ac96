"""CuPy collectives over NCCL: on a dask-cuda cluster of at least two GPUs (skipped elsewhere);
the choice of the path (which dtypes and ops NCCL takes, who can take part) also without one."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from daskpml.comm._communicator import _nccl_device, _nccl_names


def test_nccl_names_cover_the_dtypes_and_named_ops_nccl_has():
    assert _nccl_names(np.float32, "sum") == ("NCCL_FLOAT32", "NCCL_SUM")
    assert _nccl_names("int64", "max") == ("NCCL_INT64", "NCCL_MAX")
    assert _nccl_names(np.complex128, "sum") is None          # no complex type in NCCL: host memory
    assert _nccl_names(np.float64, np.add) is None            # a callable op: host memory
    assert _nccl_names(np.bool_, "sum") is None


def test_no_nccl_device_without_cupy_or_when_switched_off():
    with dask.config.set({"daskpml.comm.nccl": False}):
        assert _nccl_device() is None
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert _nccl_device() is None


def _gpus() -> int:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


def _device_collectives(comm, blocks):
    import cupy

    x = cupy.arange(1000, dtype=cupy.float32) * (comm.rank + 1)
    comm.allreduce(x)
    b = comm.broadcast(cupy.full((3, 4), 7.0) if comm.rank == 1 else None, root=1)
    r = comm.reduce(cupy.ones(5, dtype=cupy.int64) * comm.rank, root=0)
    return (type(comm._nccl).__name__, float(x[10]), cupy.asnumpy(b).tolist(),
            None if r is None else cupy.asnumpy(r).tolist())


@pytest.mark.gpu
@pytest.mark.distributed
@pytest.mark.skipif(_gpus() < 2, reason="NCCL needs two GPUs (one per rank); this machine has fewer")
def test_cupy_collectives_run_over_nccl_on_two_gpus():
    dask_cuda = pytest.importorskip("dask_cuda")
    import cupy
    import dask.array as da
    from distributed import Client

    from daskpml.comm import spmd

    with dask_cuda.LocalCUDACluster(n_workers=2, CUDA_VISIBLE_DEVICES="0,1") as cluster, Client(cluster):
        X = da.from_array(np.ones((4, 2)), chunks=2).map_blocks(cupy.asarray).persist()
        res = spmd(_device_collectives, X)
    assert len(res) == 2
    for rank, (kind, x10, b, r) in enumerate(res):
        assert kind == "NcclCommunicator" and x10 == 30.0
        assert b == [[7.0] * 4] * 3
        assert r == ([1] * 5 if rank == 0 else None)
