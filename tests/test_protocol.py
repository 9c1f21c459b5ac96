"""One protocol for every iterative algorithm: ``callback(record)``, ``checkpoint=path`` with
``checkpoint_every`` and ``resume``, ``random_state`` (never ``seed``), no ``client=``, and one
history recorder (dimension ``iteration``; ``time`` and ``rounds`` columns)."""

import inspect

import numpy as np
import pytest
import scipy.sparse as sp

import daskpml.decomposition as decomposition
import daskpml.graph as graph
import daskpml.linalg as linalg
import daskpml.optim as optim
import daskpml.svm as svm
from daskpml.datasets import make_blobs, make_sbm

ITERATIVE = [optim.gradient_descent, optim.lbfgs, optim.newton_cg, optim.proximal_gradient, optim.newton, optim.sgd,
             optim.local_sgd, optim.async_sgd, optim.easgd, optim.gossip_sgd, optim.hogwild, optim.shotgun,
             linalg.eigsh, linalg.lanczos, linalg.laplacian_eigsh, linalg.laplacian_lanczos, graph.kmeans, graph.mcl,
             graph.train_gnn, decomposition.nmf, svm.cascade_svm]


@pytest.mark.parametrize("function", ITERATIVE, ids=lambda f: f.__name__)
def test_every_iterative_function_takes_the_same_protocol_keywords(function):
    params = inspect.signature(function).parameters
    assert {"callback", "checkpoint", "checkpoint_every", "resume"} <= set(params)
    assert "seed" not in params and "client" not in params
    assert params["checkpoint"].default is None and params["resume"].default is False
    assert all(p.kind == p.KEYWORD_ONLY for name, p in params.items()
               if name in ("callback", "checkpoint", "checkpoint_every", "resume"))


def _stop_first(seen, *state_keys):
    def callback(record):
        seen.append(dict(record))
        assert {"iteration", "time", *state_keys} <= set(record), set(record)
        return True                         # stop after the first iteration
    return callback


def _graph():
    A, y = make_sbm(200, 2, in_degree=8, out_degree=1, random_state=0)
    return A.to_scipy(), np.asarray(y)


def _run_kmeans(cb):
    X, _ = make_blobs(300, 3, centers=3, random_state=0)
    return graph.kmeans(X, 3, random_state=0, init="random", tol=0, callback=cb)["history"]


def _run_mcl(cb):
    return graph.mcl(_graph()[0], 2.0, callback=cb).history


def _run_gnn(cb):
    import dask

    A, y = _graph()
    X = np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32) + y[:, None]
    with dask.config.set(scheduler="sync"):
        return graph.train_gnn(A, X, y, np.arange(0, 200, 4), epochs=5, n_parts=2, random_state=0,
                               callback=cb, progress=False).history


def _run_nmf(cb):
    A = np.random.default_rng(0).random((60, 20))
    return decomposition.nmf(A, 3, max_iter=20, tol=0, random_state=0, callback=cb, progress=False).history


def _run_lanczos(cb):
    A, _ = _graph()
    return linalg.laplacian_lanczos(A, 3, tol=1e-12, ncv=8, random_state=0, callback=cb).history


def _run_shotgun(cb):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 30))
    return optim.shotgun(X, X[:, 0] + 0.1 * rng.standard_normal(200), l1=0.1, max_iter=20, tol=0, random_state=0,
                         callback=cb).history


def _run_lbfgs(cb):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    return optim.fit_linear(X, X @ [1.0, 2, 3, 4], family="squared", solver="lbfgs", tol=0, max_iter=20,
                            callback=cb)[2].history


def _run_cascade(cb):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 2))
    y = (X[:, 0] > 0).astype(int)
    return svm.CascadeSVC(n_partitions=2, max_passes=3, random_state=0).fit(X, y, callback=cb).history_


FAMILIES = {"kmeans": (_run_kmeans, ("centers",)), "mcl": (_run_mcl, ("matrix", "chaos")),
            "train_gnn": (_run_gnn, ("loss",)), "nmf": (_run_nmf, ("relative_error",)),
            "lanczos": (_run_lanczos, ("ritz_values", "residuals")), "shotgun": (_run_shotgun, ("coef",)),
            "lbfgs": (_run_lbfgs, ("theta", "objective")), "cascade_svm": (_run_cascade, ("top",))}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_true_callback_stops_every_family_after_one_iteration(family):
    run, keys = FAMILIES[family]
    seen: list = []
    history = run(_stop_first(seen, *keys))
    assert len(seen) == 1
    assert "iteration" in history.dims and {"time", "rounds"} <= set(history.data_vars)
    assert not set(keys) & set(history.data_vars) - {"chaos", "loss", "relative_error", "objective"}


def test_a_checkpoint_object_is_not_the_protocol(tmp_path):
    from daskpml._checkpoint import Checkpoint

    A = sp.diags([1.0, 2.0, 3.0, 4.0, 5.0]).tocsr()
    with pytest.raises((TypeError, ValueError), match="checkpoint must be None or a checkpoint folder"):
        linalg.eigsh(A, 2, checkpoint=Checkpoint(tmp_path))
