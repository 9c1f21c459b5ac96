"""Partitioned GCN / GraphSAGE: dropout masks, operators, gradients against finite differences
and a dense single-process reference, invariance to the partitioning, learning, bad input,
and the same model through Dask futures on a cluster."""

from __future__ import annotations

import os

import dask
import numpy as np
import pytest
import scipy.sparse as sp

from daskpml.datasets import make_sbm
from daskpml.gnn import GCN, GraphSAGE
from daskpml.graph import gcn_operator, mean_operator, train_gnn
from daskpml.graph._gnn import prepare
from daskpml.graph._gnn_tasks import dropout, dropout_mask, mask_key

CORA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "cora.npz")


def sbm_task(n=240, k=3, f=12, seed=0, noise=1.0):
    """A shuffled SBM graph, features = noisy one-hot of the block, labels = the block."""
    A, y = make_sbm(n, k, in_degree=6, out_degree=1.5, shuffle=True, random_state=seed)
    A, y = A.compute(), np.asarray(y.compute()).astype(np.int64)
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=noise, size=(n, f))
    X[np.arange(n), y] += 1.5
    idx = rng.permutation(n)
    return sp.csr_matrix(A), X, y, idx[: n // 5], idx[n // 5: 2 * n // 5], idx[2 * n // 5:]


# ----------------------------------------------------------------------------- reference


def dense_reference(A, X, y, train, params, model, rate, seed, epoch):
    """Loss and gradients of the whole graph in one process, dense matrices, backprop by hand.
    Dropout masks come from ``dropout_mask`` (their definition), applied to global rows."""
    n = A.shape[0]
    A = A.toarray()
    if model == "gcn":
        M = A + np.diag(np.where(np.diag(A) != 0, 0, 1))
        d = M.sum(1)
        P = M / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    else:
        S = (A != 0).astype(float)
        d = S.sum(1)
        P = S / np.where(d > 0, d, 1)[:, None]
    X = X.toarray() if sp.issparse(X) else X
    rows = np.arange(n)
    H, cache = X, []
    for l, layer in enumerate(params):
        W, b = layer[0], layer[1]
        if rate:
            keep = dropout_mask(rows, H.shape[1], mask_key(seed, epoch, l), rate)
            if l == 0 and sp.issparse(X):
                keep = keep | (H == 0)
            Hd = np.where(keep, H / (1 - rate), 0)
        else:
            Hd = H
        Z = P @ (Hd @ W) + b
        if model == "sage":
            Z = Z + Hd @ layer[2]
        cache.append((Hd, Z))
        H = np.maximum(Z, 0) if l < len(params) - 1 else Z
    Zs = Z - Z.max(1, keepdims=True)
    logp = Zs - np.log(np.exp(Zs).sum(1, keepdims=True))
    loss = -logp[train, y[train]].mean()
    G = np.zeros_like(Z)
    G[train] = np.exp(logp[train])
    G[train, y[train]] -= 1
    G /= len(train)
    grads = [None] * len(params)
    for l in reversed(range(len(params))):
        Hd, _ = cache[l]
        W = params[l][0]
        dT = P.T @ G
        g = [Hd.T @ dT, G.sum(0)]
        dHd = dT @ W.T
        if model == "sage":
            g.append(Hd.T @ G)
            dHd = dHd + G @ params[l][2].T
        grads[l] = g
        if l:
            _, Zprev = cache[l - 1]
            keep = (Hd != 0) if rate else np.ones_like(Hd, bool)
            G = dHd * keep / (1 - rate) * (Zprev > 0)
    return loss, grads


def trainer_for(A, X, y, train, model, rate, n_parts, seed=3, hidden=8, n_layers=2, method="bfs"):
    return prepare(A, X, y, train, model=model, hidden=hidden, n_layers=n_layers, dropout=rate, n_parts=n_parts,
                   partition=method, random_state=seed, dtype=np.float64)


# ----------------------------------------------------------------------------- tests


def test_dropout_kernel_matches_the_array_mask_and_rate():
    rng = np.random.default_rng(0)
    H = rng.normal(size=(300, 40))
    rows = rng.permutation(10_000)[:300]
    key = mask_key(7, 3, 1)
    out = dropout(H, rows, key, 0.3)
    keep = dropout_mask(rows, 40, key, 0.3)
    np.testing.assert_array_equal(out != 0, keep)
    np.testing.assert_allclose(out[keep], H[keep] / 0.7)
    assert abs(1 - keep.mean() - 0.3) < 0.02
    Xs = sp.random(300, 40, density=0.2, random_state=1, format="csr")
    Xd = dropout(Xs, rows, key, 0.3)
    np.testing.assert_array_equal(Xd.indices, Xs.indices)
    dense_keep = np.where(Xs.toarray() != 0, keep, True)
    np.testing.assert_allclose(Xd.toarray(), np.where(dense_keep, Xs.toarray() / 0.7, 0))
    # masks are per (global row, column): a row's mask does not depend on which rows come with it
    np.testing.assert_array_equal(dropout(H[::3], rows[::3], key, 0.3), out[::3])
    assert dropout(H, rows, key, 0.0) is H


def test_operators_match_their_formulas():
    A, *_ = sbm_task(60)
    A = A.tolil()
    A[0, 0] = 2.0                                          # an existing loop keeps its weight
    A = A.tocsr()
    P = gcn_operator(A, np.float64).toarray()
    M = A.toarray() + np.diag(np.where(A.diagonal() != 0, 0, 1))
    d = M.sum(1)
    np.testing.assert_allclose(P, M / np.sqrt(np.outer(d, d)))
    S = (A.toarray() != 0).astype(float)
    S[5] = 0                                               # a node without neighbours averages to 0
    Q = mean_operator(sp.csr_matrix(S), np.float64).toarray()
    np.testing.assert_allclose(Q.sum(1)[np.arange(60) != 5], 1)
    assert not Q[5].any()


@pytest.mark.parametrize("model", ["gcn", "sage"])
def test_gradients_match_finite_differences(model):
    A, X, y, train, *_ = sbm_task(90, f=6)
    trainer, params, _ = trainer_for(A, X, y, train, model, 0.4, 3, hidden=5, n_layers=3)
    loss, grads = trainer.gradients(params, epoch=2)
    rng = np.random.default_rng(1)
    eps = 1e-6
    for l, layer in enumerate(params):
        for k, w in enumerate(layer):
            for flat in rng.choice(w.size, size=min(6, w.size), replace=False):
                pos = np.unravel_index(flat, w.shape)
                plus = [tuple(a.copy() for a in lay) for lay in params]
                minus = [tuple(a.copy() for a in lay) for lay in params]
                plus[l][k][pos] += eps
                minus[l][k][pos] -= eps
                numeric = (trainer.gradients(plus, 2)[0] - trainer.gradients(minus, 2)[0]) / (2 * eps)
                assert grads[l][k][pos] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (l, k, pos)
    trainer.close()


@pytest.mark.parametrize("model", ["gcn", "sage"])
@pytest.mark.parametrize("n_parts,method", [(1, "bfs"), (2, "contiguous"), (4, "bfs"), (3, "spectral")])
def test_partitioned_pass_equals_the_dense_reference(model, n_parts, method):
    A, X, y, train, *_ = sbm_task(150)
    X = sp.csr_matrix(np.where(np.abs(X) > 1.0, X, 0))   # sparse features take the sparse path
    trainer, params, _ = trainer_for(A, X, y, train, model, 0.5, n_parts, method=method)
    loss, grads = trainer.gradients(params, epoch=5)
    ref_loss, ref_grads = dense_reference(A, X, y, train, params, model, 0.5, 3, 5)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for g, r in zip(grads, ref_grads):
        for a, b in zip(g, r):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    trainer.close()


@pytest.mark.parametrize("sparse", [False, True])
def test_gradients_on_the_features_backend(backend, sparse):
    from _helpers import host, on

    A, X, y, train, *_ = sbm_task(120)
    X = sp.csr_matrix(np.where(np.abs(X) > 1.0, X, 0)) if sparse else X
    for model in ("gcn", "sage"):
        trainer, params, _ = trainer_for(A, on(backend, X), y, train, model, 0.5, 2)
        loss, grads = trainer.gradients(params, epoch=1)
        host_params = [tuple(host(a) for a in layer) for layer in params]
        ref_loss, ref_grads = dense_reference(A, X, y, train, host_params, model, 0.5, 3, 1)
        assert loss == pytest.approx(ref_loss, rel=1e-10)
        for g, r in zip(grads, ref_grads):
            for a, b in zip(g, r):
                np.testing.assert_allclose(host(a), b, rtol=1e-8, atol=1e-11)
        trainer.close()


def test_same_seed_same_model_for_1_2_4_partitions():
    A, X, y, train, val, _ = sbm_task()
    runs = [train_gnn(A, X, y, train, val, epochs=25, n_parts=p, random_state=11, progress=False)
            for p in (1, 2, 4)]
    for other in runs[1:]:
        for la, lb in zip(runs[0].params, other.params):
            for a, b in zip(la, lb):
                np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(runs[0].history.loss, other.history.loss, rtol=1e-4)
    assert runs[2].partitioning.n_parts == 4
    # a different seed gives a different model
    other = train_gnn(A, X, y, train, val, epochs=3, n_parts=1, random_state=12, progress=False)
    assert not np.allclose(other.params[0][0], runs[0].params[0][0])


@pytest.mark.parametrize("cls", [GCN, GraphSAGE])
def test_estimators_learn_planted_communities(cls):
    A, X, y, train, val, test = sbm_task(300, noise=1.5)
    model = cls(epochs=120, n_parts=2, random_state=0, progress=False)
    assert model.fit(A, X, y, train, val) is model
    assert model.score(test) > 0.85
    proba = model.predict_proba()
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(test), proba[test].argmax(1))
    h = model.history_
    assert set(h.data_vars) >= {"loss", "train_accuracy", "val_accuracy", "val_loss", "epoch_time", "time",
                                "rounds", "bytes"}
    assert h.sizes["iteration"] == 120 and model.n_epochs_ == 120
    assert h["bytes"].attrs["source"] == "model" and (np.diff(h["time"].values) >= 0).all()
    assert float(h.loss[-1]) < float(h.loss[0])
    assert float(h.bytes[0]) > 0
    assert model.partitioning_.n_parts == 2
    assert len(model.coefs_) == 2 and model.coefs_[0].shape == (12, 16)
    if cls is GraphSAGE:
        assert model.root_coefs_[1].shape == (16, 3)


def test_callback_stops_training_and_sparse_dask_input():
    A, X, y, train, val, test = sbm_task()
    import dask.array as da

    seen = []
    model = GCN(epochs=50, n_parts=2, random_state=0, progress=False)
    model.fit(da.from_array(A.toarray(), chunks=60), sp.csr_matrix(X), y, train, val,
              callback=lambda r: seen.append(r["loss"]) or r["iteration"] == 10)
    assert model.n_epochs_ == 10 and len(seen) == 10
    assert model.predict().shape == (240,)


@pytest.mark.skipif(not os.path.exists(CORA), reason="shared Cora data set not present")
def test_cora_reaches_published_accuracy_range():
    d = np.load(CORA)
    A = sp.csr_matrix((d["adj_data"], d["adj_indices"], d["adj_indptr"]), shape=tuple(d["adj_shape"]))
    X = sp.csr_matrix((d["x_data"], d["x_indices"], d["x_indptr"]), shape=tuple(d["x_shape"]))
    X = sp.diags(1 / np.maximum(np.asarray(X.sum(1)).ravel(), 1)) @ X
    model = GCN(n_parts=2, random_state=0, progress=False).fit(A, X, d["labels"], d["idx_train"], d["idx_val"])
    assert model.score(d["idx_test"]) > 0.79


def test_bad_input_is_refused_with_clear_messages():
    A, X, y, train, val, test = sbm_task(60)
    fit = GCN(epochs=2, progress=False).fit
    y_bad = y.copy()
    y_bad[train[0]] = -3
    with pytest.raises(ValueError, match="negative"):
        fit(A, X, y_bad, train, val)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        fit(A, X_nan, y, train, val)
    with pytest.raises(ValueError, match="out of range"):
        fit(A, X, y, np.append(train, 60), val)
    with pytest.raises(ValueError, match="overlap"):
        fit(A, X, y, train, np.append(val, train[0]))
    with pytest.raises(ValueError, match="60 nodes but features has 59"):
        fit(A, X[:59], y, train, val)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        fit(A, X, y[:50], train, val)
    with pytest.raises(ValueError, match="square"):
        fit(A[:, :50], X, y, train, val)
    asym = A.tolil()
    asym[0, 59] = 5.0
    with pytest.raises(ValueError, match="symmetric"):
        fit(asym.tocsr(), X, y, train, val)
    with pytest.raises(ValueError, match="empty"):
        fit(A, X, y, np.array([], dtype=int), val)
    with pytest.raises(ValueError, match="dropout"):
        GCN(dropout=1.0).fit(A, X, y, train)
    with pytest.raises(ValueError, match="epochs"):
        GCN(epochs=0).fit(A, X, y, train)
    with pytest.raises(ValueError, match="model"):
        train_gnn(A, X, y, train, model="gat")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GCN().predict()
    model = GCN(epochs=2, progress=False).fit(A, X, y, train)
    unlabelled = y.copy()
    unlabelled[test[0]] = -1
    with pytest.raises(ValueError, match="no label"):
        model.score(test, unlabelled)


@pytest.fixture(autouse=True)
def _in_process(request):
    """The partitions' tasks run in this process (dask's sync scheduler), except in the tests
    that ask for a cluster."""
    if "client" in request.fixturenames:
        yield
        return
    with dask.config.set(scheduler="sync"):
        yield


def test_a_client_keyword_says_what_replaced_it():
    A, X, y, train, val, test = sbm_task()
    with pytest.raises(TypeError, match="no longer takes client=.*scheduler='sync'"):
        train_gnn(A, X, y, train, client=False)
    with pytest.raises(TypeError, match="no longer takes client="):
        GCN(epochs=1).fit(A, X, y, train, client=False)


@pytest.mark.distributed
@pytest.mark.parametrize("model", ["gcn", "sage"])
def test_futures_on_a_cluster_give_the_inline_model(client, model):
    A, X, y, train, val, test = sbm_task()
    kw = dict(model=model, epochs=15, random_state=5, progress=False)
    for n_parts in (2, 3):              # with 3 parts some partitions send to two others (pick tasks)
        with dask.config.set(scheduler="sync"):
            ref = train_gnn(A, X, y, train, val, n_parts=n_parts, **kw)
        got = train_gnn(A, X, y, train, val, n_parts=n_parts, **kw)
        for la, lb in zip(ref.params, got.params):
            for a, b in zip(la, lb):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ref.proba, got.proba, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(ref.history.val_accuracy, got.history.val_accuracy)
    # the workers keep no state of finished runs
    left = client.run(lambda: len(__import__("daskpml.graph._gnn_tasks", fromlist=["_STASH"])._STASH))
    assert set(left.values()) == {0}
