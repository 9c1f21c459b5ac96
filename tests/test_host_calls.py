"""Lint: NumPy / SciPy calls in the algorithm modules that would break on device (CuPy) arrays.

``np.asarray`` / ``np.array`` / ``np.ascontiguousarray`` / ``np.asfortranarray`` / ``np.asanyarray``
(unless the argument is ``to_numpy(...)``, the explicit copy), ``.tolist()`` and ``sp.<function>``
(``scipy.sparse``) fail or copy to the host when handed a CuPy array. Each function that still makes
such a call is listed below with the reason its values are host values. A new call outside this
list fails the test: make it namespace-generic (``get_namespace(x)``), make the copy explicit
(``to_numpy``), or add the function here with its reason. The compiled ``*_kernels.py`` modules
are CPU-only by design and not scanned.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "daskpml"
SCANNED = ("optim", "linalg", "decomposition", "graph", "cluster", "svm", "linear_model", "gnn", "sparse", "comm")
CONVERSIONS = {"asarray", "array", "ascontiguousarray", "asfortranarray", "asanyarray"}

MODEL = "the solver's replicated model / state vector, on the host by design (README: GPUs)"
SNAPSHOT = "restores a checkpoint's arrays, which are NumPy"
RESULT = "a result, history or label array handed to the user on the host"
CPU_PATH = "the CPU path: reached only with NumPy input (behind `xp is np` or a CPU-only kernel)"
CPU_ONLY = "a CPU-only family that refuses device input first"
CLIENT_GRAPH = "the graph is built or interpreted on the client with SciPy (a host copy)"

ALLOWED = {
    "cluster/_mcl.py::MarkovClustering.fit": RESULT,
    "comm/_communicator.py::Communicator._ring": "host staging buffer of a collective (after _host's explicit copy)",
    "comm/_communicator.py::Communicator.allreduce": "host staging buffer of a collective (after _host's explicit copy)",
    "comm/_communicator.py::Communicator.reduce": "host staging buffer of a collective (after _host's explicit copy)",
    "comm/_communicator.py::_host": "the last branch: objects that are neither NumPy nor device arrays (lists, scalars)",
    "comm/_spmd.py::calibrate": RESULT + " (timings)",
    "decomposition/_pca.py::_Decomposition._results": RESULT + " (feature names)",
    "graph/_gnn.py::_host_csr": CLIENT_GRAPH,
    "graph/_gnn.py::_unpack_opt": SNAPSHOT,
    "graph/_gnn.py::gcn_operator": CLIENT_GRAPH,
    "graph/_gnn.py::mean_operator": CLIENT_GRAPH,
    "graph/_gnn.py::train_gnn": SNAPSHOT + " (the Adam step count, a host scalar)",
    "graph/_gnn_tasks.py::dropout": CPU_PATH,
    "graph/_kmeans.py::_weighted_kmeanspp": "k-means++ on the client's small host sample of candidates",
    "graph/_mcl.py::_collect": "per-block statistics, host floats",
    "graph/_mcl.py::_dag": CLIENT_GRAPH + " (the final iterand's clusters)",
    "graph/_mcl.py::_expand_cpu": CPU_PATH,
    "graph/_mcl.py::_expand_xp": "per-phase statistics, host floats",
    "graph/_mcl.py::interpret": CLIENT_GRAPH + " (the final iterand's clusters)",
    "graph/_neighbors.py::_tree_pair": CPU_PATH + " (SciPy's k-d tree on host copies)",
    "linalg/_lanczos.py::lanczos": "input that is neither an array nor sparse (a list, a LinearOperator's output)",
    "linalg/_lanczos.py::solve": SNAPSHOT,
    "optim/_api.py::fit_linear": MODEL,
    "optim/_async.py::async_sgd": MODEL,
    "optim/_async.py::easgd": MODEL,
    "optim/_async.py::gossip_sgd": MODEL,
    "optim/_async_engine.py::Engine._restore": SNAPSHOT,
    "optim/_async_engine.py::Engine.finish": MODEL,
    "optim/_async_engine.py::Engine.sample": MODEL,
    "optim/_async_engine.py::sgd_steps": MODEL,
    "optim/_async_ranks.py::_EASGDServer.restore": SNAPSHOT,
    "optim/_async_ranks.py::_GossipServer.restore": SNAPSHOT,
    "optim/_async_ranks.py::_GossipServer.setup": "chunk sizes (host integers)",
    "optim/_async_ranks.py::_HogwildServer.restore": SNAPSHOT,
    "optim/_async_ranks.py::_HogwildServer.setup": "chunk sizes (host integers)",
    "optim/_async_ranks.py::_SGDServer.end_shards": MODEL,
    "optim/_async_ranks.py::_SGDShard.__init__": MODEL,
    "optim/_async_ranks.py::_Server.__init__": MODEL + "; " + SNAPSHOT,
    "optim/_async_ranks.py::_Server.finish": RESULT,
    "optim/_async_ranks.py::_Server.restore": SNAPSHOT,
    "optim/_async_ranks.py::_gossip_chunk": MODEL,
    "optim/_async_ranks.py::_run": MODEL,
    "optim/_batch.py::gradient_descent": MODEL,
    "optim/_batch.py::lbfgs": MODEL,
    "optim/_batch.py::newton_cg": MODEL,
    "optim/_batch.py::proximal_gradient": MODEL,
    "optim/_hogwild.py::hogwild": CPU_ONLY,
    "optim/_hogwild.py::hogwild_epochs": CPU_ONLY,
    "optim/_newton.py::newton": MODEL,
    "optim/_objective.py::chunk_losses": MODEL + " (the sampled models, moved to the block's device after)",
    "optim/_objective.py::pack": MODEL + " (coefficients and intercepts)",
    "optim/_ranks.py::run_on_ranks": "lost-update counts per chunk (host integers)",
    "optim/_run.py::Run.finish": RESULT,
    "optim/_shotgun.py::_prepare": CPU_PATH,
    "optim/_stochastic.py::_local_rounds_graph": "per-worker losses (host floats)",
    "optim/_stochastic.py::_restore_sgd": SNAPSHOT,
    "optim/_stochastic.py::critical_batch_size": "the d x d Gram matrix, already copied with to_numpy",
    "optim/_stochastic.py::local_sgd": MODEL,
    "optim/_stochastic.py::one_shot_average": MODEL,
    "optim/_stochastic.py::sgd": MODEL,
    "svm/_cascade.py::CascadeSVC._check_predict": CPU_ONLY,
    "svm/_cascade.py::CascadeSVC._partition": CPU_ONLY,
    "svm/_cascade.py::CascadeSVC.fit": CPU_ONLY,
    "svm/_cascade.py::_csr32": CPU_ONLY,
    "svm/_cascade.py::_host_rows": CPU_ONLY,
    "svm/_cascade_svm.py::_stack": CPU_ONLY,
    "svm/_cascade_svm.py::cascade_svm": CPU_ONLY,
    "svm/_cascade_svm.py::decision_values": CPU_ONLY,
    "svm/_cascade_svm.py::dual_objective": CPU_ONLY,
    "svm/_cascade_svm.py::kernel_matrix": CPU_ONLY,
}


def host_calls(source: str) -> dict[str, list[tuple[str, int]]]:
    """``{qualified function name: [(call, line), ...]}`` of the calls this lint looks for."""
    found: dict[str, list[tuple[str, int]]] = {}
    scope: list[str] = []

    class Visitor(ast.NodeVisitor):
        def visit_FunctionDef(self, node):
            scope.append(node.name)
            self.generic_visit(node)
            scope.pop()

        visit_AsyncFunctionDef = visit_FunctionDef
        visit_ClassDef = visit_FunctionDef

        def visit_Call(self, node):
            f, what = node.func, None
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                arg = node.args[0] if node.args else None
                explicit = isinstance(arg, ast.Call) and getattr(arg.func, "id", "") == "to_numpy"
                literal = isinstance(arg, (ast.Constant, ast.List, ast.Tuple, ast.ListComp))
                if f.value.id == "np" and f.attr in CONVERSIONS and not (explicit or literal):
                    what = f"np.{f.attr}"
                elif f.value.id in ("sp", "scipy") and not f.attr.startswith("is"):
                    what = f"sp.{f.attr}"
            if isinstance(f, ast.Attribute) and f.attr == "tolist" and not node.args:
                what = ".tolist()"
            if what:
                found.setdefault(".".join(scope) or "<module>", []).append((what, node.lineno))
            self.generic_visit(node)

    Visitor().visit(ast.parse(source))
    return found


def _scan() -> dict[str, list[tuple[str, int]]]:
    out = {}
    for package in SCANNED:
        for path in sorted((PACKAGE / package).glob("*.py")):
            if path.name.endswith("_kernels.py"):
                continue
            for name, calls in host_calls(path.read_text()).items():
                out[f"{package}/{path.name}::{name}"] = calls
    return out


def test_every_host_call_in_the_algorithm_modules_is_explained():
    found = _scan()
    new = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not new, (
        "NumPy/SciPy calls that break on CuPy arrays (make them namespace-generic with get_namespace, "
        "copy explicitly with to_numpy, or list the function in tests/test_host_calls.py with why its "
        "values are host values):\n" + "\n".join(f"  {k}: {', '.join(f'{c} (line {n})' for c, n in v)}"
                                                  for k, v in sorted(new.items())))
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"listed but no longer making such calls (remove them): {stale}"
    assert all(reason.strip() for reason in ALLOWED.values())


def test_the_lint_sees_what_it_should():
    src = """
import numpy as np, scipy.sparse as sp
def f(x):
    a = np.asarray(x)
    b = np.asarray(to_numpy(x))
    c = np.array([1, 2])
    return x.tolist(), sp.diags(a), sp.issparse(x)
class K:
    def g(self, y):
        return np.ascontiguousarray(y)
"""
    assert host_calls(src) == {"f": [("np.asarray", 4), (".tolist()", 7), ("sp.diags", 7)],
                               "K.g": [("np.ascontiguousarray", 10)]}
