"""One checkpoint design: runs interrupted at random iterations and resumed equal the
uninterrupted runs; snapshots are atomic and a mismatched resume is refused."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.sparse as sp

from daskpml._checkpoint import Checkpoint
from daskpml.cluster import KMeans, MarkovClustering, kmeans
from daskpml.datasets import make_blobs, make_sbm
from daskpml.graph import mcl, train_gnn
from daskpml.linear_model import LogisticRegression
from daskpml.optim import fit_linear
from daskpml.sparse import from_array

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2400, 12))
Y = (X @ RNG.standard_normal(12) + 0.5 * RNG.standard_normal(2400) > 0).astype(float)
STOPS = np.random.default_rng(2026).integers(3, 10, size=4)      # random interruption points


class Interrupted(Exception):
    pass


def _stop_at(n):
    def callback(record):
        if record["iteration"] == n:
            raise Interrupted
    return callback


SOLVER_CASES = [
    ("gradient_descent", {}), ("lbfgs", {}), ("newton_cg", {}), ("newton", {}),
    ("proximal_gradient", {"penalty": "l1"}), ("sgd", {"random_state": 3, "eval_every": 2}),
    ("local_sgd", {"random_state": 3, "local_steps": 4})]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("case", range(len(SOLVER_CASES)), ids=[c[0] for c in SOLVER_CASES])
def test_linear_solvers_resume_exactly(tmp_path, case):
    solver, extra = SOLVER_CASES[case]
    kw = dict(family="logistic", penalty="l2", lam=1e-3, solver=solver, chunks=600, tol=1e-10, max_iter=12)
    kw.update(extra)
    full = fit_linear(X, Y, **kw)[2]
    stop = int(STOPS[case % len(STOPS)])
    with pytest.raises(Interrupted):
        fit_linear(X, Y, checkpoint=tmp_path, checkpoint_every=2, callback=_stop_at(stop), **kw)
    assert (tmp_path / "latest").read_text() == f"iter-{2 * ((stop - 1) // 2):06d}"
    resumed = fit_linear(X, Y, checkpoint=tmp_path, checkpoint_every=2, resume=True, **kw)[2]
    np.testing.assert_array_equal(resumed.theta, full.theta)
    assert resumed.n_iter == full.n_iter
    np.testing.assert_array_equal(resumed.history.objective, full.history.objective)


def test_estimator_resume_and_refusals(tmp_path):
    model = LogisticRegression(C=10.0, solver="lbfgs", tol=1e-10, max_iter=30, checkpoint=tmp_path,
                               checkpoint_every=3)
    full = LogisticRegression(C=10.0, solver="lbfgs", tol=1e-10, max_iter=30).fit(X, Y)
    with pytest.raises(Interrupted):
        model.set_params(solver_kwargs={"callback": _stop_at(7)}).fit(X, Y)
    model.set_params(solver_kwargs=None).fit(X, Y, resume=True)
    np.testing.assert_array_equal(model.coef_, full.coef_)
    assert model.history_.sizes["iteration"] == full.history_.sizes["iteration"]
    with pytest.raises(ValueError, match=r"written for n_samples=2400 \(data\), but this run has n_samples=2000"):
        model.fit(X[:2000], Y[:2000], resume=True)
    with pytest.raises(ValueError, match=r"written for lam=.* \(params\)"):
        LogisticRegression(C=1.0, solver="lbfgs", checkpoint=tmp_path).fit(X, Y, resume=True)
    with pytest.raises(ValueError, match="written by lbfgs, not gradient_descent"):
        LogisticRegression(C=10.0, solver="gradient_descent", checkpoint=tmp_path).fit(X, Y, resume=True)
    with pytest.raises(ValueError, match="does not write checkpoints"):
        fit_linear(X, Y, family="logistic", solver="one_shot_average", checkpoint=tmp_path)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        LogisticRegression().fit(X, Y, resume=True)


def test_snapshots_are_atomic(tmp_path):
    """A snapshot interrupted while being written leaves the previous one as ``latest``."""
    cp = Checkpoint(tmp_path, "demo", {"a": 1}, {"shape": [3]}, every=1)
    cp.save(1, arrays={"w": np.arange(3.0)}, history={"loss": [1.0]})
    (tmp_path / "iter-000002.tmp").mkdir()                 # a writer killed half way
    (tmp_path / "iter-000002.tmp" / "arrays.npz").write_bytes(b"garbage")
    snap = Checkpoint(tmp_path, "demo", {"a": 1}, {"shape": [3]}, resume=True).restore()
    assert snap.iteration == 1 and snap.arrays["w"].tolist() == [0.0, 1.0, 2.0]
    cp.save(2, arrays={"w": np.ones(3)}, history={"loss": [1.0, 0.5]})
    assert sorted(os.listdir(tmp_path)) == ["iter-000002", "latest"]
    manifest = json.loads((tmp_path / "iter-000002" / "manifest.json").read_text())
    assert manifest["algorithm"] == "demo" and manifest["data"] == {"shape": [3]} and manifest["format"] == 1
    with pytest.raises(ValueError, match=r"written for a=1 \(params\), but this run has a=2"):
        Checkpoint(tmp_path, "demo", {"a": 2}, {"shape": [3]}, resume=True).restore()
    with pytest.raises(ValueError, match="positive number of iterations"):
        Checkpoint(tmp_path, "demo", every=0)


@pytest.mark.parametrize("stop", STOPS[:2].tolist())
def test_kmeans_resume(tmp_path, stop):
    P, _ = make_blobs(8000, 4, centers=20, random_state=1, chunks=2000)
    kw = dict(random_state=0, n_init=2, tol=1e-12, init="k-means++")
    full = kmeans(P, 6, **kw)
    with pytest.raises(Interrupted):
        kmeans(P, 6, checkpoint=tmp_path, checkpoint_every=2, callback=_stop_at(stop), **kw)
    resumed = kmeans(P, 6, checkpoint=tmp_path, checkpoint_every=2, resume=True, **kw)
    np.testing.assert_array_equal(resumed["centers"], full["centers"])
    assert resumed["n_iter"] == full["n_iter"] and resumed["inertia"] == full["inertia"]
    est = KMeans(6, random_state=0, n_init=2, tol=1e-12, init="k-means++", checkpoint=tmp_path).fit(P, resume=True)
    np.testing.assert_array_equal(est.cluster_centers_, full["centers"])
    with pytest.raises(ValueError, match="written for shape"):
        kmeans(P[:4000], 6, checkpoint=tmp_path, resume=True, **kw)


def test_mcl_resume_sparse_blocks(tmp_path):
    A, _ = make_sbm(1500, 5, in_degree=10, out_degree=1, random_state=0)
    full = mcl(A, 2.0)
    stop = int(STOPS[2])
    with pytest.raises(Interrupted):
        mcl(A, 2.0, checkpoint=tmp_path, checkpoint_every=2, callback=_stop_at(stop))
    assert any(f.endswith(".csr.npz") for f in os.listdir(tmp_path / (tmp_path / "latest").read_text()))
    resumed = MarkovClustering(2.0, checkpoint=tmp_path, checkpoint_every=2)
    resumed.fit(A, resume=True)
    np.testing.assert_array_equal(resumed.labels_, full.labels.values)
    assert resumed.n_iter_ == full.n_iter
    with pytest.raises(ValueError, match="inflation=2.0"):
        mcl(A, 3.0, checkpoint=tmp_path, resume=True)


@pytest.mark.usefixtures("in_process")
def test_gnn_resume(tmp_path):
    A, y = make_sbm(500, 3, in_degree=8, out_degree=2, random_state=0)
    A, y = A.to_scipy(), np.asarray(y)
    feats = (np.random.default_rng(0).standard_normal((500, 8)) + y[:, None]).astype(np.float32)
    train = np.arange(0, 500, 5)
    kw = dict(epochs=16, n_parts=2, random_state=4)
    full = train_gnn(A, feats, y, train, **kw)
    with pytest.raises(Interrupted):
        train_gnn(A, feats, y, train, checkpoint=tmp_path, checkpoint_every=3, callback=_stop_at(int(STOPS[3])),
                  **kw)
    resumed = train_gnn(A, feats, y, train, checkpoint=tmp_path, checkpoint_every=3, resume=True,
                        **{**kw, "random_state": None})            # the snapshot's seed is reused
    for a, b in zip(full.params, resumed.params):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(full.history.loss, resumed.history.loss)
    with pytest.raises(ValueError, match="hidden=16"):
        train_gnn(A, feats, y, train, checkpoint=tmp_path, resume=True, **{**kw, "hidden": 8})
    assert sp.issparse(A)


def test_shotgun_resume(tmp_path):
    from daskpml.linear_model import Lasso
    from daskpml.optim import shotgun

    rng = np.random.default_rng(5)
    A = rng.standard_normal((1500, 60)) + 0.8 * rng.standard_normal((1500, 1))   # correlated columns
    b = A[:, :8] @ rng.standard_normal(8) + 0.1 * rng.standard_normal(1500)
    kw = dict(l1=20.0, l2=1.0, n_parallel=8, n_blocks=3, max_iter=40, tol=1e-12, random_state=2)
    full = shotgun(A, b, **kw)
    assert full.n_iter > 12
    stop = int(STOPS[1]) + 2
    with pytest.raises(Interrupted):
        shotgun(A, b, checkpoint=tmp_path, checkpoint_every=3, callback=_stop_at(stop), **kw)
    assert (tmp_path / "latest").read_text() == f"iter-{3 * ((stop - 1) // 3):06d}"
    resumed = shotgun(A, b, checkpoint=tmp_path, checkpoint_every=3, resume=True, **kw)
    np.testing.assert_array_equal(resumed.coef, full.coef)
    assert resumed.n_iter == full.n_iter and resumed.n_parallel == full.n_parallel
    np.testing.assert_array_equal(resumed.history.objective, full.history.objective)
    with pytest.raises(ValueError, match=r"written for l1=20.0 \(params\), but this run has l1=30.0"):
        shotgun(A, b, checkpoint=tmp_path, resume=True, **{**kw, "l1": 30.0})
    with pytest.raises(ValueError, match="written by shotgun, not lbfgs"):
        fit_linear(A, b, solver="lbfgs", checkpoint=tmp_path, resume=True)
    model = Lasso(alpha=0.05, solver="shotgun", tol=1e-10, max_iter=30, random_state=1, checkpoint=tmp_path / "est",
                  checkpoint_every=4)
    reference = Lasso(alpha=0.05, solver="shotgun", tol=1e-10, max_iter=30, random_state=1).fit(A, b)
    with pytest.raises(Interrupted):
        model.set_params(solver_kwargs={"callback": _stop_at(6)}).fit(A, b)
    model.set_params(solver_kwargs=None).fit(A, b, resume=True)
    np.testing.assert_array_equal(model.coef_, reference.coef_)


@pytest.mark.parametrize("sparse", [False, True])
def test_cascade_svm_resume(tmp_path, sparse):
    from sklearn.datasets import make_classification

    from daskpml.svm import CascadeSVC

    A, b = make_classification(1600, 10, n_informative=5, flip_y=0.1, random_state=3)
    if sparse:
        A = sp.csr_matrix(np.where(np.abs(A) > 0.5, A, 0.0))
    kw = dict(n_partitions=4, max_passes=4, random_state=7)
    full = CascadeSVC(**kw).fit(A, b)
    assert full.n_passes_ >= 3
    model = CascadeSVC(checkpoint=tmp_path, **kw)
    with pytest.raises(Interrupted):
        model.fit(A, b, callback=_stop_at(2))
    assert (tmp_path / "latest").read_text() == "iter-000001"
    model.fit(A, b, resume=True)
    np.testing.assert_array_equal(model.support_, full.support_)
    np.testing.assert_array_equal(model.dual_coef_, full.dual_coef_)
    assert model.intercept_ == full.intercept_ and model.n_passes_ == full.n_passes_
    np.testing.assert_array_equal(model.history_.n_support, full.history_.n_support)
    with pytest.raises(ValueError, match=r"written for C=1.0 \(params\), but this run has C=2.0"):
        CascadeSVC(C=2.0, checkpoint=tmp_path, **kw).fit(A, b, resume=True)
    with pytest.raises(ValueError, match=r"partition_crc32=.*\(data\)"):
        CascadeSVC(checkpoint=tmp_path, **{**kw, "random_state": 8}).fit(A, b, resume=True)
    unseeded = CascadeSVC(checkpoint=tmp_path, **{**kw, "random_state": None}).fit(A, b, resume=True)
    np.testing.assert_array_equal(unseeded.support_, full.support_)    # the snapshot's partitioning


@pytest.mark.parametrize("distributed_size", [False, True])
def test_eigsh_resume(tmp_path, distributed_size):
    """Lanczos interrupted after a few restarts and resumed gives the same eigenpairs, bit for bit,
    both in-process (a small problem) and with the basis kept in row blocks by the scheduler."""
    import dask

    from daskpml.linalg import lanczos

    def eigsh(A, **kw):
        res = lanczos(A, **kw)
        return res.eigenvalues, res.eigenvectors, res.history

    n = 3000 if distributed_size else 600
    R = sp.random(n, n, density=5 / n, random_state=1, format="csr")
    A = from_array((R + R.T + sp.diags(np.linspace(0, 1, n) ** 3 * n)).tocsr(), chunks=n // 4)
    kw = dict(k=4, which="LA", ncv=20, tol=1e-10, random_state=5)
    with dask.config.set({"daskpml.linalg.local-bytes": 0 if distributed_size else 2**30}):
        w, V, h = eigsh(A, **kw)
        assert int(h.attrs["restarts"]) > 6
        stop = int(STOPS[0]) + 1
        with pytest.raises(Interrupted):
            eigsh(A, checkpoint=tmp_path, checkpoint_every=2, callback=_stop_at(stop),
                  **kw)
        assert (tmp_path / "latest").read_text() == f"iter-{2 * (stop // 2):06d}"
        w2, V2, h2 = eigsh(A, checkpoint=tmp_path, checkpoint_every=2, resume=True, **{**kw, "random_state": None})
    np.testing.assert_array_equal(w2, w)
    np.testing.assert_array_equal(V2.compute(), V.compute())
    np.testing.assert_array_equal(h2.max_residual, h.max_residual)
    with pytest.raises(ValueError, match=r"written for k=4 \(params\), but this run has k=5"):
        eigsh(A, checkpoint=tmp_path, resume=True, **{**kw, "k": 5})


@pytest.mark.usefixtures("in_process")
def test_resuming_a_finished_run_returns_its_result(tmp_path):
    """The final snapshot of a finished run: a resume does no more work and returns the same."""
    from daskpml.optim import shotgun

    A, y = make_sbm(300, 3, in_degree=8, out_degree=2, random_state=0)
    A, y = A.to_scipy(), np.asarray(y)
    feats = (np.random.default_rng(0).standard_normal((300, 4)) + y[:, None]).astype(np.float32)
    kw = dict(epochs=7, n_parts=2, random_state=1, checkpoint=tmp_path / "gnn", checkpoint_every=3)
    first = train_gnn(A, feats, y, np.arange(0, 300, 5), **kw)
    again = train_gnn(A, feats, y, np.arange(0, 300, 5), resume=True, **kw)
    np.testing.assert_array_equal(again.proba, first.proba)
    assert again.history.sizes["iteration"] == 7
    kw = dict(l1=5.0, n_parallel=4, max_iter=50, tol=1e-8, random_state=0, checkpoint=tmp_path / "shotgun")
    first = shotgun(X, Y, **kw)
    again = shotgun(X, Y, resume=True, **kw)
    np.testing.assert_array_equal(again.coef, first.coef)
    assert again.n_iter == first.n_iter and again.history.sizes == first.history.sizes


# -- the data fingerprint: a resume on other data of the same shape is refused ----------------

def test_block_fingerprint_sees_what_changes_the_data():
    from daskpml._checkpoint import _same_fingerprint, block_fingerprint

    rng = np.random.default_rng(3)
    base = rng.standard_normal((5000, 7))
    fp = block_fingerprint(base)
    assert _same_fingerprint(fp, block_fingerprint(base.copy())) == ""
    assert _same_fingerprint(fp, block_fingerprint(np.asfortranarray(base))) == ""      # layout is not data
    swapped = base.copy()
    swapped[[11, 12]] = swapped[[12, 11]]             # two rows outside the sample trade places
    scaled = base * (1 + 1e-6)
    one = base.copy()
    one[2500, 3] += 0.5                               # one value, in rows the sample may miss
    for other in (swapped, scaled, one, base[:, ::-1].copy(), base.astype(np.float32)):
        assert _same_fingerprint(fp, block_fingerprint(other)) != ""
    labels = (rng.random(5000) < 0.5).astype(float)
    assert _same_fingerprint(block_fingerprint(labels), block_fingerprint(1 - labels)) != ""
    S = sp.random(400, 50, density=0.05, format="csr", random_state=0)
    T = S.copy()
    T.data[len(T.data) // 2] *= -1
    assert _same_fingerprint(block_fingerprint(S), block_fingerprint(S.copy())) == ""
    assert _same_fingerprint(block_fingerprint(S), block_fingerprint(T)) != ""


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_linear_refuses_a_resume_on_flipped_labels(tmp_path):
    """The reported defect: the same shape with the labels flipped was resumed into a wrong model."""
    kw = dict(family="logistic", penalty="l2", lam=1e-3, solver="gradient_descent", chunks=600, tol=1e-10,
              max_iter=12)
    with pytest.raises(Interrupted):
        fit_linear(X, Y, checkpoint=tmp_path, checkpoint_every=2, callback=_stop_at(5), **kw)
    manifest = json.loads((tmp_path / (tmp_path / "latest").read_text() / "manifest.json").read_text())
    assert [label for label, _ in manifest["fingerprint"]["X"]] == [[0, 0], [1, 0], [2, 0], [3, 0]]
    flipped = 1.0 - Y
    with pytest.raises(ValueError, match=r"written for other data: block 0 of y differs .*its (sampled rows|sums)"):
        fit_linear(X, flipped, checkpoint=tmp_path, resume=True, **kw)
    Xc = X.copy()
    Xc[1900] *= 2                                      # one row, in chunk 3
    with pytest.raises(ValueError, match=r"block \(3, 0\) of X differs"):
        fit_linear(Xc, Y, checkpoint=tmp_path, resume=True, **kw)
    resumed = fit_linear(X, Y, checkpoint=tmp_path, resume=True, **kw)[2]      # the same data go on
    assert resumed.n_iter == 12


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_nmf_and_kmeans_refuse_other_data(tmp_path):
    from daskpml.decomposition import nmf

    A = np.abs(np.random.default_rng(1).standard_normal((300, 40)))
    with pytest.raises(Interrupted):
        nmf(A, 4, max_iter=20, tol=0, random_state=0, checkpoint=tmp_path / "nmf", checkpoint_every=2,
            callback=_stop_at(4))
    B = A.copy()
    B[[3, 4]] = B[[4, 3]]
    with pytest.raises(ValueError, match="written for other data: block .* of A differs"):
        nmf(B, 4, max_iter=20, tol=0, random_state=0, checkpoint=tmp_path / "nmf", resume=True)
    P, _ = make_blobs(4000, 3, centers=5, random_state=1, chunks=1000)
    with pytest.raises(Interrupted):
        kmeans(P, 5, random_state=0, tol=1e-12, checkpoint=tmp_path / "km", checkpoint_every=1, callback=_stop_at(2))
    with pytest.raises(ValueError, match=r"block \(0, 0\) of X differs"):
        kmeans(P + 1.0, 5, random_state=0, tol=1e-12, checkpoint=tmp_path / "km", resume=True)


def test_damaged_checkpoints_are_named(tmp_path):
    cp = Checkpoint(tmp_path, "demo", {"a": 1}, {"shape": [3]}, every=1)
    cp.save(1, arrays={"w": np.arange(3.0)}, history={"loss": [1.0]})
    manifest = tmp_path / "iter-000001" / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=f"{manifest} is not valid JSON"):
        Checkpoint(tmp_path, "demo", {"a": 1}, {"shape": [3]}, resume=True).restore()
    manifest.write_text(text)
    arrays = tmp_path / "iter-000001" / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:40])
    with pytest.raises(ValueError, match="arrays.npz is damaged"):
        Checkpoint(tmp_path, "demo", {"a": 1}, {"shape": [3]}, resume=True).restore()
    (tmp_path / "latest").write_text("iter-000009")
    with pytest.raises(ValueError, match="names the snapshot 'iter-000009', but .* does not exist"):
        Checkpoint(tmp_path, "demo", {"a": 1}, {"shape": [3]}, resume=True).restore()
