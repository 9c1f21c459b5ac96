"""The import graph follows ARCHITECTURE.md: core below everything, data structures below the
algorithms, the algorithms below the estimators, estimators never importing each other, and no
package reaching into another package's private modules or names."""

import ast
import pathlib

import pytest

import daskpml

PACKAGE = pathlib.Path(daskpml.__file__).parent
DATA = {"sparse", "partition", "comm"}
DATASETS = {"datasets"}
ALGORITHMS = {"optim", "linalg", "graph"}
ESTIMATORS = {"linear_model", "cluster", "decomposition", "gnn", "svm"}
CLI = {"cli"}
LEVEL = {**{p: 1 for p in DATA}, **{p: 2 for p in DATASETS | ALGORITHMS}, **{p: 3 for p in ESTIMATORS},
         **{p: 4 for p in CLI}}


def _unit(parts: tuple) -> str:
    """The layer unit of a module: its subpackage, ``partition`` or ``core`` (top-level modules)."""
    if (PACKAGE / parts[0]).is_dir():
        return parts[0]
    return "partition" if parts[0] == "partition" else "core"


def _imports():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        here = parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = list(here)[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
                    target = tuple(base + (node.module.split(".") if node.module else []))
                elif node.module and node.module.split(".")[0] == "daskpml":
                    target = tuple(node.module.split(".")[1:])
                else:
                    continue
                for alias in node.names:
                    # ``from .. import sparse`` names a package: the target is the package
                    full = target or ((alias.name,) if (PACKAGE / alias.name).is_dir() else ("__init__",))
                    yield path.relative_to(PACKAGE.parent), node.lineno, parts, full, alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "daskpml":
                        yield path.relative_to(PACKAGE.parent), node.lineno, parts, tuple(alias.name.split(".")[1:]), ""


IMPORTS = list(_imports())


def test_the_scan_sees_the_imports():
    assert len(IMPORTS) > 200


def _violations(rule):
    return [f"{where}:{line}: {'.'.join(target)} {name}" for where, line, parts, target, name in IMPORTS
            if target and rule(_unit(parts), _unit(target) if target[0] != "partition" else "partition",
                               parts, target, name)]


def test_no_package_imports_a_private_module_or_name_of_another():
    def rule(src, dst, parts, target, name):
        if src == dst or dst == "core":
            # core modules are private (``_checkpoint``) but their names are the package's shared API
            return dst == "core" and src != "core" and name.startswith("_") and not name.startswith("__") \
                and name not in {"_config", "_checkpoint"}
        return any(p.startswith("_") for p in target[1:]) or (name.startswith("_") and not name.startswith("__"))

    assert _violations(rule) == []


def test_core_knows_no_layer_above_it():
    assert _violations(lambda src, dst, *_: src == "core" and dst != "core") == []


@pytest.mark.parametrize("level", [1, 2, 3])
def test_imports_point_down(level):
    def rule(src, dst, *_):
        return LEVEL.get(src) == level and LEVEL.get(dst, 0) > level

    assert _violations(rule) == []


def test_algorithms_never_import_the_datasets_package():
    assert _violations(lambda src, dst, *_: src in ALGORITHMS | ESTIMATORS | DATA and dst == "datasets") == []


def test_estimators_never_import_each_other():
    assert _violations(lambda src, dst, *_: src in ESTIMATORS and dst in ESTIMATORS and src != dst) == []


def test_graph_names_are_deterministic():
    """The same call twice names its graph the same (dask's tokenize), so work is reused and the
    dashboard shows stable names; no module draws key names from uuid4, except the ones that hold
    per-run state on the workers (the asynchronous engine's futures, the GNN partitions' stash, an
    SPMD group's tasks, which hold one run's connections) and the benchmark probes of perf.py,
    which must not be cached."""
    import numpy as np
    import scipy.sparse as sp

    from daskpml.runtime import distribute_rows
    from daskpml.sparse import from_array

    x = np.arange(12.0).reshape(6, 2)
    assert distribute_rows(x, 2).name == distribute_rows(x.copy(), 2).name
    assert distribute_rows(x, 2).name != distribute_rows(x + 1, 2).name
    m = sp.random(20, 20, density=0.2, random_state=0, format="csr")
    assert from_array(m, chunks=5).name == from_array(m.copy(), chunks=5).name
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "uuid.uuid4()" in p.read_text())
    assert users == ["comm/_spmd.py", "graph/_gnn.py", "optim/_async_engine.py", "perf.py"]
