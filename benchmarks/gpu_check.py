"""The GPU check: one command that sets up a bare GPU machine, checks it, runs daskpml's GPU
paths and measures the GPU figures, start to finish.

    python benchmarks/gpu_check.py [--dry-run] [--out DIR] [--only setup env tests families figures]
    python benchmarks/gpu_check.py --fetch-wheels      # on a machine with a package registry

Steps, each recorded as ok / failed / skipped with its time and details:

1. ``setup``: a GPU host often has CuPy, numba and SciPy but not dask, distributed or dask-cuda,
   and no registry (``../shared/gpu/README.md``). When ``import distributed`` fails, the wheels
   in ``.whl/`` at the project root (made by ``--fetch-wheels``, which runs
   ``../shared/gpu/wheels.sh`` with the extra packages daskpml needs) are installed into a
   temporary folder and the script starts again with it on ``PYTHONPATH``.
2. ``env``: ``nvidia-smi``, CuPy and its device count, NCCL.
3. ``tests``: ``pytest -m gpu`` (every ``backend``-parametrized test on cupy); one line per
   failure with the test id.
4. ``families``: one fit per family through the command line (``daskpml --gpu --scheduler ...``)
   on one ``LocalCUDACluster`` (one worker per GPU).
5. ``figures``: SpMV and SpMM effective bandwidth against the device's copy bandwidth, NMF (HALS)
   GFLOP/s against the device's GEMM rate, ``laplacian_eigsh`` on a 10M-node graph, GCN epoch time
   on a 1M-node graph, and the ``daskpml.comm`` allreduce (over NCCL where there are two GPUs or
   more; one GPU cannot run NCCL between ranks, so it is skipped there, saying so).

``--dry-run`` runs the same steps on the CPU here (NumPy arrays, a ``LocalCluster`` of two worker
processes, small sizes) and skips what needs the device, so that CI keeps the script working.

Writes ``gpu_check.json`` and ``gpu_check.md`` (the table) to ``--out`` (default
``benchmarks/results/gpu_check``); exits 1 when a step failed. Aim: under 8 minutes on one H100
including set-up.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(tempfile.gettempdir()) / "daskpml-gpu-site"
BOOTSTRAPPED = "DASKPML_GPU_CHECK_BOOTSTRAPPED"
STEPS = ("setup", "env", "tests", "families", "figures")

#: import name -> wheel name, for what daskpml, its tests and dask-cuda need beyond a GPU host's usual
#: CUDA / CuPy / numba / SciPy / pandas / xarray / pytest
NEEDED = {
    "dask": "dask", "distributed": "distributed", "dask_cuda": "dask-cuda", "partd": "partd",
    "locket": "locket", "tblib": "tblib", "tornado": "tornado", "zict": "zict", "cloudpickle": "cloudpickle",
    "toolz": "toolz", "msgpack": "msgpack", "psutil": "psutil", "sortedcontainers": "sortedcontainers",
    "yaml": "pyyaml", "fsspec": "fsspec", "click": "click", "xxhash": "xxhash", "threadpoolctl": "threadpoolctl",
    "sklearn": "scikit-learn", "jinja2": "jinja2", "markupsafe": "markupsafe", "urllib3": "urllib3",
    "pynvml": "nvidia-ml-py", "pytest_timeout": "pytest-timeout", "hypothesis": "hypothesis", "networkx": "networkx",
    "importlib_metadata": "importlib-metadata", "zipp": "zipp", "joblib": "joblib", "narwhals": "narwhals",
    # dask-cuda imports cuda.core (cuda-python); bindings for CUDA 12, which newer drivers also run
    "cuda.core": "cuda-core", "cuda.bindings": "cuda-bindings>=12.9,<13", "cuda.pathfinder": "cuda-pathfinder",
}
#: the names wheels.sh downloads by itself
BASE_WHEELS = {"dask", "distributed", "dask-cuda", "partd", "locket", "tblib", "tornado", "zict"}


# ----------------------------------------------------------------------------- set-up
def missing_imports() -> list[str]:
    import importlib.util

    missing = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:              # a dotted name whose parent is missing
            found = False
        if not found:
            missing.append(name)
    return missing


def _installed(wheel: str) -> bool:
    """Whether the distribution of a wheel file is installed already (the host's own copy wins)."""
    from importlib import metadata

    try:
        metadata.version(Path(wheel).name.split("-")[0])
        return True
    except metadata.PackageNotFoundError:
        return False


def fetch_wheels() -> int:
    """Run ``../shared/gpu/wheels.sh`` with every wheel daskpml needs on a bare GPU host."""
    script = ROOT.parent / "shared" / "gpu" / "wheels.sh"
    if not script.exists():
        print(f"gpu_check: {script} is absent; it downloads the wheels (see ../shared/gpu/README.md)")
        return 1
    extra = sorted(set(NEEDED.values()) - BASE_WHEELS)
    return subprocess.call(["bash", str(script), *extra], cwd=ROOT)


def bootstrap(record: dict) -> None:
    """Install ``.whl/`` into a temporary site folder and start again, once, when distributed is
    missing; make ``daskpml`` importable from the checkout (here and in the subprocesses)."""
    t0 = time.perf_counter()
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    missing = missing_imports()
    wheels = sorted(glob.glob(str(ROOT / ".whl" / "*.whl")))
    if ("distributed" in missing or "dask" in missing) and not os.environ.get(BOOTSTRAPPED):
        if not wheels:
            raise SystemExit("gpu_check: dask/distributed are not installed and .whl/ is empty: run "
                             "`python benchmarks/gpu_check.py --fetch-wheels` on a machine with a package "
                             "registry, then copy .whl/ here")
        wanted = [w for w in wheels if not _installed(w)]
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", str(SITE), *wanted], check=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SITE), str(ROOT), *paths]), **{BOOTSTRAPPED: "1"})
        env[BOOTSTRAPPED + "_S"] = f"{time.perf_counter() - t0:.1f}"
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if str(ROOT) not in paths:                  # the subprocesses (pytest, the CLI) find the checkout
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT)])
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    record.update(wheels=len(wheels), installed_to=str(SITE) if os.environ.get(BOOTSTRAPPED) else None,
                  install_s=float(os.environ.get(BOOTSTRAPPED + "_S", 0.0)), missing=missing_imports())
    if record["missing"]:
        record["note"] = ("still missing: " + ", ".join(NEEDED[m] for m in record["missing"]) +
                          "; add them with bash ../shared/gpu/wheels.sh " +
                          " ".join(shlex.quote(NEEDED[m]) for m in record["missing"]))
    import importlib

    for package in ("daskpml.sparse", "daskpml.optim", "daskpml.linalg", "daskpml.decomposition", "daskpml.graph",
                    "daskpml.svm", "daskpml.comm", "daskpml.cli"):
        try:
            importlib.import_module(package)
        except ModuleNotFoundError as err:
            raise RuntimeError(f"{package} cannot be imported: {err}. Add the wheel with bash "
                               f"../shared/gpu/wheels.sh <its name>, and to NEEDED in this script") from err


# ----------------------------------------------------------------------------- helpers
def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def median_time(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Check:
    """The record of every step and figure, and the failures to print at the end."""

    def __init__(self, dry_run: bool) -> None:
        self.result = {"dry_run": dry_run, "machine": {"python": platform.python_version(),
                                                       "platform": platform.platform()}, "steps": {}}
        self.failures: list[str] = []

    def step(self, name: str, fn, *args) -> dict:
        t0 = time.perf_counter()
        rec: dict = {}
        try:
            fn(rec, *args)
            rec.setdefault("status", "ok")
        except Exception as err:                 # a step's failure must not stop the others
            rec["status"] = "failed"
            rec["error"] = f"{type(err).__name__}: {err}"
            rec["traceback"] = traceback.format_exc(limit=6)
            self.failures.append(f"FAIL {name}: {rec['error']}")
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        self.result["steps"][name] = rec
        print(f"gpu_check: {name:<9} {rec['status']:<8} {rec['seconds']:7.1f} s", flush=True)
        return rec


# ----------------------------------------------------------------------------- env
def check_env(rec: dict, dry_run: bool) -> None:
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=60)
        rec["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
    else:
        rec["nvidia_smi"] = None
    from daskpml.backend import gpu_count

    rec["gpus"] = gpu_count()
    try:
        import cupy

        rec["cupy"] = cupy.__version__
        try:
            from cupy.cuda import nccl

            rec["nccl"] = nccl.get_version()
        except Exception as err:
            rec["nccl"] = f"unavailable ({err})"
    except ImportError as err:
        rec["cupy"] = f"not importable ({err})"
    try:
        import dask_cuda

        rec["dask_cuda"] = dask_cuda.__version__
    except ImportError as err:
        rec["dask_cuda"] = f"not importable ({err})"
    import dask
    import distributed

    rec["dask"], rec["distributed"] = dask.__version__, distributed.__version__
    if rec["gpus"] == 0:
        if not dry_run:
            raise RuntimeError(f"no GPU visible to CuPy (nvidia-smi: {rec['nvidia_smi']!r}, cupy: {rec['cupy']!r})")
        rec["status"] = "skipped"
        rec["reason"] = "dry run: no GPU here"


# ----------------------------------------------------------------------------- tests
def junit_failures(path: Path) -> tuple[dict, list[str]]:
    """Counts and one ``FAIL <test id>: <message>`` line per failed or erroring test of a JUnit XML."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    lines = []
    for case in ET.parse(path).getroot().iter("testcase"):
        cls, name = case.get("classname", ""), case.get("name", "")
        test_id = cls.replace(".", "/") + ".py::" + name if cls else name
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            counts["failed"] += 1
            first = (bad.get("message") or "").strip().splitlines()
            lines.append(f"FAIL {test_id}: {first[0][:200] if first else bad.tag}")
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, lines


def run_tests(rec: dict, check: Check, out: Path, dry_run: bool) -> None:
    xml = out / "junit-gpu.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
           "--timeout", "300", f"--junitxml={xml}", "tests"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    rec["command"] = " ".join(cmd[1:])
    rec["exit_code"] = proc.returncode
    if not xml.exists():
        raise RuntimeError(f"pytest wrote no report (exit {proc.returncode}): {proc.stdout[-800:]}{proc.stderr[-800:]}")
    counts, lines = junit_failures(xml)
    rec.update(counts)
    check.failures.extend(lines)
    if counts["failed"]:
        raise RuntimeError(f"{counts['failed']} gpu test(s) failed")
    if proc.returncode not in (0, 5):
        raise RuntimeError(f"pytest exited {proc.returncode}: {proc.stdout[-800:]}")
    if dry_run and counts["passed"] == 0:
        rec["status"] = "skipped"
        rec["reason"] = f"dry run: the {counts['skipped']} gpu-marked tests collected and skipped (no GPU)"


# ----------------------------------------------------------------------------- families
def write_inputs(folder: Path) -> None:
    import numpy as np
    import scipy.io
    import scipy.sparse as sp

    from daskpml.datasets import make_sbm

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 10))
    np.savez(folder / "binary.npz", X=X, y=(X[:, 0] + 0.5 * X[:, 1] > 0).astype(int))
    np.savez(folder / "regression.npz", X=X, y=X @ np.arange(1.0, 11.0) + 0.1 * rng.standard_normal(2000))
    centers = rng.standard_normal((3, 5)) * 6
    np.savez(folder / "blobs.npz", X=np.concatenate([c + rng.standard_normal((300, 5)) for c in centers]))
    A, y = make_sbm(1000, 4, in_degree=10, out_degree=1, shuffle=True, random_state=0, chunks=500)
    A, y = sp.csr_matrix(A.compute()), np.asarray(y.compute()).astype(np.int64)
    scipy.io.mmwrite(str(folder / "sbm.mtx"), A)
    np.save(folder / "lr.npy", np.abs(rng.standard_normal((1000, 4))) @ np.abs(rng.standard_normal((4, 60))))
    F = sp.csr_matrix(np.where(rng.random((1000, 10)) < 0.3, 1.0, 0.0) + 3.0 * np.eye(10)[y % 10])
    order = rng.permutation(1000)
    np.savez(folder / "graph.npz", adj_data=A.data, adj_indices=A.indices, adj_indptr=A.indptr, adj_shape=A.shape,
             x_data=F.data, x_indices=F.indices, x_indptr=F.indptr, x_shape=F.shape, labels=y,
             idx_train=order[:200], idx_val=order[200:400], idx_test=order[400:])


FAMILIES = {
    "linear (L-BFGS)": ["train", "{d}/binary.npz", "--model", "logistic", "--out", "{o}/model.nc"],
    "predict": ["predict", "{o}/model.nc", "{d}/binary.npz", "--out", "{o}/pred.txt"],
    "spectral": ["spectral", "{d}/blobs.npz", "-k", "3", "--seed", "0", "--out", "{o}/labels.tsv"],
    "eigsh (Lanczos)": ["eigsh", "{d}/sbm.mtx", "--k", "4", "--seed", "0", "--out", "{o}/eig.nc"],
    "mcl": ["mcl", "{d}/sbm.mtx", "-I", "2.0", "--out", "{o}/clusters.txt"],
    "nmf": ["nmf", "{d}/lr.npy", "-k", "4", "--seed", "0", "--max-iter", "500", "--out", "{o}/nmf.nc"],
    "pca": ["pca", "{d}/lr.npy", "-k", "3", "--out", "{o}/pca.nc"],
    "gnn": ["gnn", "{d}/graph.npz", "--parts", "2", "--epochs", "20", "--seed", "0", "--out", "{o}/gnn.tsv"],
    "svm": ["svm", "{d}/binary.npz", "--partitions", "2", "--out", "{o}/svm.nc"],
    "lasso": ["lasso", "{d}/regression.npz", "--alpha", "0.1", "--out", "{o}/lasso.nc"],
}


HOST_ONLY = {"svm"}


def run_families(rec: dict, check: Check, address: str, out: Path, dry_run: bool) -> None:
    data = out / "inputs"
    data.mkdir(parents=True, exist_ok=True)
    write_inputs(data)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "DASKPML__PROGRESS": "0"}
    rec["families"] = {}
    for name, template in FAMILIES.items():
        # the Cascade SVM is CPU only (libsvm) and refuses --gpu: it runs on host arrays there
        head = ["--scheduler", address] + ([] if dry_run or name in HOST_ONLY else ["--gpu"])
        args = [a.format(d=data, o=out) for a in template]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "daskpml.cli", *head, *args], capture_output=True, text=True,
                              timeout=600, env=env, cwd=ROOT)
        row = {"seconds": round(time.perf_counter() - t0, 2), "command": "daskpml " + " ".join(head[2:] + args),
               "status": "ok" if proc.returncode == 0 else "failed"}
        if proc.returncode != 0:
            row["error"] = (proc.stderr.strip() or proc.stdout.strip())[-1500:]
            last = row["error"].splitlines()[-1] if row["error"] else f"exit {proc.returncode}"
            check.failures.append(f"FAIL family {name}: {last}")
        rec["families"][name] = row
        print(f"gpu_check:   {name:<16} {row['status']:<7} {row['seconds']:6.1f} s", flush=True)
    bad = [k for k, v in rec["families"].items() if v["status"] != "ok"]
    if bad:
        raise RuntimeError("failed: " + ", ".join(bad))


# ----------------------------------------------------------------------------- figures
def figures(rec: dict, client, dry_run: bool) -> None:
    import numpy as np

    from daskpml.backend import get_namespace, import_cupy, synchronize

    if dry_run:
        xp, xsp = np, __import__("scipy.sparse", fromlist=["sparse"])
        size = dict(copy=1 << 24, nodes=200_000, nmf=(20_000, 200, 16), lanczos=20_000, gcn=10_000)
    else:
        xp, xsp = import_cupy()
        size = dict(copy=1 << 28, nodes=4_000_000, nmf=(400_000, 1000, 32), lanczos=10_000_000, gcn=1_000_000)
    rec["backend"] = xp.__name__
    sync = (lambda: synchronize(xp.zeros(1)))
    figs: dict = {}
    rec["figures"] = figs

    def guarded(name, fn):
        t0 = time.perf_counter()
        try:
            figs[name] = fn()
        except Exception as err:
            figs[name] = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
            rec.setdefault("failed", []).append(name)
        figs[name]["seconds"] = round(time.perf_counter() - t0, 2)
        print(f"gpu_check:   {name:<16} {json.dumps({k: v for k, v in figs[name].items() if k != 'seconds'})[:150]}",
              flush=True)

    def yardsticks() -> tuple[float, float]:
        """The device's copy bandwidth (read + write, GB/s) and float32 GEMM rate (GFLOP/s)."""
        a = xp.ones(size["copy"] // 8)
        copy_s = median_time(lambda: a.copy(), 5, sync)
        n_gemm = 1024 if dry_run else 8192
        G = xp.ones((n_gemm, n_gemm), dtype=np.float32)
        gemm_s = median_time(lambda: G @ G, 3, sync)
        return 2 * a.nbytes / copy_s / 1e9, 2 * n_gemm ** 3 / gemm_s / 1e9

    copy_gbs, gemm_gflops = yardsticks()
    figs["device"] = {"copy_GB_s": round(copy_gbs, 1), "gemm_float32_GFLOP_s": round(gemm_gflops, 1)}

    def spmv():
        n = size["nodes"]
        per_row = 16                            # a random sparse matrix, made directly in CSR form
        cols = xp.random.RandomState(0).randint(0, n, size=n * per_row).astype(np.int32)
        A = xsp.csr_matrix((xp.ones(n * per_row), cols, xp.arange(0, n * per_row + 1, per_row, dtype=np.int32)),
                           shape=(n, n))
        x, X = xp.ones(n), xp.ones((n, 16))
        t1 = median_time(lambda: A @ x, 10, sync)
        t16 = median_time(lambda: A @ X, 5, sync)
        base = A.nnz * (8 + 4) + (n + 1) * 4                      # values, column indices, row pointers
        gbs1 = (base + 2 * n * 8) / t1 / 1e9                      # + x read once and y written once
        gbs16 = (base + 2 * n * 16 * 8) / t16 / 1e9
        return {"nodes": n, "nnz": int(A.nnz), "spmv_ms": round(t1 * 1e3, 3), "spmv_GB_s": round(gbs1, 1),
                "spmv_of_copy": round(gbs1 / copy_gbs, 2), "spmm16_ms": round(t16 * 1e3, 3),
                "spmm16_GB_s": round(gbs16, 1), "spmm16_of_copy": round(gbs16 / copy_gbs, 2),
                "bytes": "values + column indices + row pointers + x + y, each once"}

    def nmf_rate():
        from daskpml.datasets import make_low_rank
        from daskpml.decomposition import nmf

        m, n, k = size["nmf"]
        A = make_low_rank(m, n, k, chunks=m // 4, random_state=0, backend=None if dry_run else "cupy")
        A = abs(A).astype(np.float32).persist()
        nmf(A, k, max_iter=2, tol=0.0, random_state=0, progress=False)             # warm up
        iters = 20
        t0 = time.perf_counter()
        nmf(A, k, max_iter=iters, tol=0.0, random_state=0, progress=False)
        t = time.perf_counter() - t0
        flops = iters * (4 * m * n * k + 4 * (m + n) * k * k)
        rate = flops / t / 1e9
        return {"shape": [m, n], "rank": k, "dtype": "float32", "iterations": iters, "seconds_fit": round(t, 3),
                "GFLOP_s": round(rate, 1), "of_gemm": round(rate / gemm_gflops, 3)}

    def lanczos():
        from daskpml.datasets import make_sbm
        from daskpml.linalg import NoConvergence, laplacian_eigsh

        n = size["lanczos"]
        W, _ = make_sbm(n, 8, in_degree=10.0, out_degree=2.0, random_state=0,
                        backend=None if dry_run else "cupy")
        W = W.persist()
        t0 = time.perf_counter()
        try:
            laplacian_eigsh(W, k=8, kind="sym", tol=1e-6, maxiter=50, random_state=0, return_eigenvectors=False)
            converged = True
        except NoConvergence:
            converged = False
        return {"nodes": n, "k": 8, "tol": 1e-6, "seconds": round(time.perf_counter() - t0, 3),
                "converged": converged}

    def gcn():
        from daskpml.datasets import make_sbm
        from daskpml.graph import train_gnn

        n = size["gcn"]
        W, labels = make_sbm(n, 8, in_degree=10.0, out_degree=2.0, random_state=0)
        A = W.compute()
        y = np.asarray(labels.compute())
        rng = np.random.default_rng(0)
        feats = (np.eye(8)[y] + rng.standard_normal((n, 8))).astype(np.float32)
        feats = feats if dry_run else xp.asarray(feats)
        train = rng.choice(n, n // 10, replace=False)
        epochs = 10
        train_gnn(A, feats, y, train, epochs=1, n_parts=1, random_state=0, progress=False)      # warm up
        t0 = time.perf_counter()
        train_gnn(A, feats, y, train, epochs=epochs, n_parts=1, random_state=0, progress=False)
        t = time.perf_counter() - t0
        return {"nodes": n, "epochs": epochs, "epoch_ms": round(t / epochs * 1e3, 2)}

    def allreduce():
        from daskpml.comm import spmd

        ranks = len(client.scheduler_info()["workers"])
        if ranks < 2:
            return {"status": "skipped", "reason": f"{ranks} worker (one GPU): NCCL needs a GPU per rank"}
        import dask.array as da

        blocks = da.ones((ranks, 1), chunks=1)
        if not dry_run:
            blocks = blocks.map_blocks(xp.asarray)
        blocks = blocks.persist()

        def bench(comm, parts, sizes):
            mod = get_namespace(parts[0])[0]
            out = {}
            for nbytes in sizes:
                x = mod.ones(max(1, nbytes // 8))
                comm.allreduce(x)
                ts = []
                for _ in range(20):
                    comm.barrier()
                    t0 = time.perf_counter()
                    comm.allreduce(x)
                    synchronize(x)
                    ts.append(time.perf_counter() - t0)
                out[nbytes] = statistics.median(ts)
            return out, comm.uses_nccl

        sizes = [8, 1024, 1 << 20, 1 << 26 if not dry_run else 1 << 22]
        res = spmd(bench, blocks, args=(sizes,))
        times, nccl = res[0]
        return {"ranks": ranks, "over": "nccl" if nccl else "host", **{f"{s}_B_ms": round(t * 1e3, 3)
                                                                         for s, t in times.items()}}

    for name, fn in (("spmv", spmv), ("nmf", nmf_rate), ("lanczos", lanczos), ("gcn", gcn),
                     ("allreduce", allreduce)):
        guarded(name, fn)
    if rec.get("failed"):
        raise RuntimeError("figures failed: " + ", ".join(rec["failed"]))


# ----------------------------------------------------------------------------- the report
def markdown(result: dict) -> str:
    lines = [f"# GPU check{' (dry run on the CPU)' if result['dry_run'] else ''}", "",
             "| step | status | seconds | details |", "|---|---|---|---|"]
    for name, rec in result["steps"].items():
        details = {k: v for k, v in rec.items() if k not in ("status", "seconds", "traceback", "families", "figures")}
        lines.append(f"| {name} | {rec['status']} | {rec['seconds']} | {json.dumps(details)[:300]} |")
    fam = result["steps"].get("families", {}).get("families")
    if fam:
        lines += ["", "| family (CLI) | status | seconds |", "|---|---|---|"]
        lines += [f"| {k} | {v['status']} | {v['seconds']} |" for k, v in fam.items()]
    figs = result["steps"].get("figures", {}).get("figures")
    if figs:
        lines += ["", "| figure | values |", "|---|---|"]
        lines += [f"| {k} | {', '.join(f'{a} {b}' for a, b in v.items())} |" for k, v in figs.items()]
    if result["failures"]:
        lines += ["", "Failures:", ""] + [f"- {f}" for f in result["failures"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="On the CPU: NumPy, small sizes, no device steps.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check")
    parser.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--fetch-wheels", action="store_true", help="Download the wheels a bare GPU host lacks.")
    args = parser.parse_args(argv)
    if args.fetch_wheels:
        return fetch_wheels()
    t_start = time.perf_counter()
    check = Check(args.dry_run)
    args.out.mkdir(parents=True, exist_ok=True)
    check.step("setup", bootstrap)
    if "env" in args.only:
        check.step("env", check_env, args.dry_run)
    if "tests" in args.only:
        check.step("tests", run_tests, check, args.out, args.dry_run)
    if "families" in args.only or "figures" in args.only:
        cluster, client = start_cluster(args.dry_run)
        try:
            if "families" in args.only:
                check.step("families", run_families, check, client.scheduler.address, args.out, args.dry_run)
            if "figures" in args.only:
                check.step("figures", figures, client, args.dry_run)
        finally:
            client.close()
            cluster.close()
    check.result["failures"] = check.failures
    check.result["total_s"] = round(time.perf_counter() - t_start, 1)
    atomic_write(args.out / "gpu_check.json", json.dumps(check.result, indent=2, default=str))
    atomic_write(args.out / "gpu_check.md", markdown(check.result))
    for line in check.failures:
        print(line)
    print(f"gpu_check: {'FAILED' if check.failures else 'passed'} in {check.result['total_s']} s; "
          f"{args.out / 'gpu_check.md'}", flush=True)
    return 1 if check.failures else 0


def start_cluster(dry_run: bool):
    from distributed import Client, LocalCluster

    if dry_run:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=50)
    else:
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(dashboard_address=None, silence_logs=50)
    return cluster, Client(cluster, set_as_default=True)


if __name__ == "__main__":
    sys.exit(main())
