"""``daskpml demo``: the tour of daskpml on the embedded (or a named) cluster.

Each algorithm family adds a section with :func:`section`; a section gets the
demo settings and returns rows for the summary table.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import html
import io
import sys
import threading
import time
from typing import Any, Callable, Iterator

import click
import numpy as np

from ..runtime import dashboard_link, persist_with_progress
from ._main import Session, cli, outputs

Row = tuple[str, str, float | None, float | None, str]
SECTIONS: dict[str, Callable[..., list[Row]]] = {}


def section(name: str) -> Callable:
    """Register a demo section (a function ``(settings) -> list of summary rows``)."""

    def register(func: Callable[..., list[Row]]) -> Callable[..., list[Row]]:
        SECTIONS[name] = func
        return func

    return register


@contextlib.contextmanager
def _heartbeat(name: str) -> Iterator[None]:
    """Without a terminal (a log, CI, nohup), a line every ``daskpml.progress-interval`` while a
    section runs, so that a log shows the tour is alive; nothing on a terminal."""
    if sys.stdout.isatty():
        yield
        return
    from .._progress import interval

    stop = threading.Event()
    start = time.perf_counter()

    def beat() -> None:
        while not stop.wait(interval()):
            click.echo(f"   {name}: still running ({time.perf_counter() - start:.0f} s)")

    thread = threading.Thread(target=beat, daemon=True, name="daskpml-demo-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _timed(func: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = func()
    return out, time.perf_counter() - start


def _figure(settings: dict, title: str, draw: Callable[[Any], Any], size: tuple[float, float] = (5.5, 3.6)) -> None:
    """Add a plot to the HTML report, when one is written: ``draw(fig)`` fills a new matplotlib
    figure (built without pyplot, so no display backend is needed)."""
    figures = settings.get("figures")
    if figures is None:
        return
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    draw(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    figures.append((settings["section"], title, base64.b64encode(buffer.getvalue()).decode("ascii")))


@section("sparse")
def sparse_section(settings: dict) -> list[Row]:
    """Distributed sparse products on a stochastic block model graph, checked against SciPy."""
    from ..datasets import make_sbm

    n, seed = settings["nodes"], settings["seed"]
    A, labels = make_sbm(n, settings["clusters"], in_degree=8, out_degree=2, shuffle=True, random_state=seed,
                         chunks=max(1, n // 8), backend=settings["backend"])
    click.echo(f"generating a stochastic block model graph with {n} nodes ...")
    (A,), t_gen = _timed(lambda: persist_with_progress(A))
    reference = A.to_scipy()
    rng = np.random.default_rng(seed)
    x, X = rng.random(n), rng.random((n, 16))
    rows: list[Row] = [("sparse", f"make_sbm ({A.nnz} entries)", t_gen, None, "symmetric" if A.is_symmetric() else "NOT symmetric")]

    def err(a: Any, b: Any) -> str:
        diff = abs(a - b)
        return f"max |err| {float(diff.max()):.1e}"

    from ..backend import to_numpy

    y, t = _timed(lambda: to_numpy((A @ x).compute()))
    _, t_ref = _timed(lambda: reference @ x)
    rows.append(("sparse", "SpMV A @ x", t, t_ref, err(y, reference @ x)))
    Y, t = _timed(lambda: to_numpy((A @ X).compute()))
    _, t_ref = _timed(lambda: reference @ X)
    rows.append(("sparse", "SpMM A @ X (16 columns)", t, t_ref, err(Y, reference @ X)))
    (T,), t = _timed(lambda: persist_with_progress(A.T, show=False))
    rows.append(("sparse", "transpose A.T", t, None, err(T.to_scipy(), reference.T)))
    click.echo("sparse matrix product A @ A (SpGEMM) ...")
    (A2,), t = _timed(lambda: persist_with_progress(A @ A))
    ref2, t_ref = _timed(lambda: reference @ reference)
    rows.append(("sparse", f"SpGEMM A @ A ({A2.nnz} entries)", t, t_ref, err(A2.to_scipy(), ref2)))
    (K,), t = _timed(lambda: persist_with_progress(A2.topk_per_column(10), show=False))
    most = int(np.asarray(K.to_scipy().getnnz(axis=0)).max())
    rows.append(("sparse", "top-10 per column of A @ A", t, None, f"max entries per column {most}"))
    degrees = np.asarray(reference.sum(axis=1)).ravel()

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.hist(degrees, bins=40)
        ax.set_xlabel("degree"), ax.set_ylabel("nodes")

    _figure(settings, "degrees of the generated graph", draw)
    return rows


@section("linear")
def linear_section(settings: dict) -> list[Row]:
    """Logistic regression on generated data: daskpml solvers beside scikit-learn."""
    import warnings

    from sklearn.linear_model import LogisticRegression as Reference

    from ..datasets import make_classification
    from ..linear_model import LogisticRegression

    n = max(20 * settings["nodes"], 10_000)
    X, y = make_classification(n, 20, chunks=max(1, n // 8), random_state=settings["seed"],
                               backend=settings["backend"])
    click.echo(f"generating {n} x 20 classification data and training ...")
    (X, y), _ = _timed(lambda: persist_with_progress(X, y, show=False))
    from ..backend import to_numpy

    Xh, yh = to_numpy(X.compute()), to_numpy(y.compute())
    ref, t_ref = _timed(lambda: Reference(C=1.0, tol=1e-8, max_iter=1000).fit(Xh, yh))
    rows: list[Row] = []
    histories = {}
    # mini-batches large enough that a step's compute outweighs its overhead: with 4096 rows per
    # step (735 rounds) sgd took 29 s for 3 epochs on task graphs, with 32768 (93 rounds) 3.8 s.
    # local_sgd's steps run in numpy on the workers: 64-row steps took 4.8-6.8 s for 3 epochs,
    # 512-row steps (eta0 0.5) 1.9 s, to a lower objective (0.1866 against 0.1884)
    for solver, kw in [("newton", {}), ("lbfgs", {}), ("sgd", {"batch_size": 32768, "eta0": 2.0}),
                       ("local_sgd", {"local_steps": 20, "batch_size": 512, "eta0": 0.5}), ("one_shot_average", {})]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, t = _timed(lambda: LogisticRegression(C=1.0, solver=solver, tol=1e-8 if "sgd" not in solver
                                                         else 1e-4, max_iter=100 if "sgd" not in solver else 3,
                                                         random_state=0, solver_kwargs=kw).fit(X, y))
        h = histories[solver] = model.history_
        acc = float((model.predict(X) == y).mean().compute())
        rows.append(("linear", f"logistic {solver}", t, t_ref,
                     f"objective {float(h['objective'].values[-1]):.5f}, accuracy {acc:.3f}, "
                     f"{int(h['rounds'].values[-1])} rounds"))
    rows.append(("linear", "scikit-learn lbfgs (reference)", t_ref, None,
                 f"accuracy {ref.score(Xh, yh):.3f}"))

    def draw(fig: Any) -> None:
        from ..plot import convergence

        ax = fig.add_subplot()
        for solver, h in histories.items():
            if h.sizes.get("iteration", 0) > 1:
                convergence(h, x="time", ax=ax, label=solver)
        ax.set_xlabel("seconds")

    _figure(settings, "logistic regression: objective against time, per solver", draw)
    return rows


@section("spectral")
def spectral_section(settings: dict) -> list[Row]:
    """Spectral methods: Laplacian eigenpairs (Lanczos) beside ARPACK, and spectral clustering."""
    from scipy.sparse import csgraph
    from scipy.sparse.linalg import eigsh as arpack
    from sklearn.metrics import adjusted_rand_score

    from ..backend import to_numpy
    from ..cluster import SpectralClustering
    from ..datasets import make_blobs, make_sbm
    from ..linalg import laplacian_eigsh

    n, k, seed = settings["nodes"], settings["clusters"], settings["seed"]
    A, truth = make_sbm(n, k, in_degree=12, out_degree=2, random_state=seed, chunks=max(1, n // 4),
                        backend=settings["backend"])
    (A,), _ = _timed(lambda: persist_with_progress(A, show=False))
    click.echo(f"{k} smallest eigenpairs of the normalized Laplacian of a {n}-node graph ...")
    (w, V), t = _timed(lambda: laplacian_eigsh(A, k, kind="sym", tol=1e-8, random_state=seed))
    L = csgraph.laplacian(A.to_scipy(), normed=True)
    ref, t_ref = _timed(lambda: arpack(L, k=k, which="SA", tol=1e-8, return_eigenvectors=False))
    Vh = to_numpy(V.compute())
    residual = float(np.linalg.norm(L @ Vh - Vh * w, axis=0).max())
    rows: list[Row] = [("spectral", f"laplacian_eigsh k={k} (vs ARPACK)", t, t_ref,
                        f"max |lambda err| {float(np.abs(np.sort(ref) - w).max()):.1e}, residual {residual:.1e}")]
    labels, t = _timed(lambda: SpectralClustering(k, affinity="precomputed", random_state=seed).fit(A).labels_)
    rows.append(("spectral", "SpectralClustering of the graph", t, None,
                 f"ARI vs planted {adjusted_rand_score(to_numpy(truth.compute()), labels):.3f}"))
    X, y = make_blobs(n, 10, centers=k, cluster_std=2.0, random_state=seed)
    click.echo(f"spectral clustering of {n} points (10-NN graph) ...")
    model, t = _timed(lambda: SpectralClustering(k, random_state=seed).fit(X))
    labels = to_numpy(model.labels_.compute())
    rows.append(("spectral", f"SpectralClustering of {n} blobs", t, None,
                 f"ARI {adjusted_rand_score(to_numpy(y.compute()), labels):.3f}"))

    def eigenvalues(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.plot(np.sort(ref), "o", label="ARPACK", markersize=9, mfc="none")
        ax.plot(np.sort(w), "x", label="daskpml Lanczos")
        ax.set_xlabel("index"), ax.set_ylabel("eigenvalue"), ax.legend()

    def embedding(fig: Any) -> None:
        from ..plot import embedding as scatter

        E = to_numpy(model.embedding_.compute() if hasattr(model.embedding_, "compute") else model.embedding_)
        scatter(E[:, 1:3] if E.shape[1] > 2 else E, labels, ax=fig.add_subplot(), size=3,
                title="spectral embedding of the blobs, coloured by cluster")

    _figure(settings, "Laplacian eigenvalues: daskpml against ARPACK", eigenvalues)
    _figure(settings, "spectral clustering of the blobs", embedding)
    return rows


@section("nmf")
def nmf_section(settings: dict) -> list[Row]:
    """Blockwise NMF (HALS) of a generated low-rank matrix beside scikit-learn's coordinate descent."""
    import warnings

    from sklearn.decomposition import NMF as SKNMF

    from ..backend import to_numpy
    from ..datasets import make_low_rank
    from ..decomposition import nmf

    m, n, k, seed = settings["nodes"], 200, 10, settings["seed"]
    A = make_low_rank(m, n, k, noise=0.05, random_state=seed, chunks=max(1, m // 4), backend=settings["backend"])
    (A,), _ = _timed(lambda: persist_with_progress(A, show=False))
    click.echo(f"rank-{k} NMF of a {m} x {n} matrix, 100 iterations ...")
    result, t = _timed(lambda: nmf(A, k, solver="hals", max_iter=100, tol=0, random_state=seed, progress=False))
    host = to_numpy(A.compute())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, t_ref = _timed(lambda: SKNMF(k, solver="cd", max_iter=100, tol=0, random_state=seed).fit(host))
    theirs = ref.reconstruction_err_ / float(np.linalg.norm(host))

    def draw(fig: Any) -> None:
        from ..plot import convergence

        ax = convergence(result.history, "relative_error", ax=fig.add_subplot())
        ax.axhline(theirs, color="gray", linestyle="--", label="scikit-learn cd, 100 iterations")
        ax.legend()

    _figure(settings, "NMF: relative error per iteration", draw)
    return [("nmf", f"nmf hals k={k}, 100 iterations (vs scikit-learn cd)", t, t_ref,
             f"relative error {float(result.history.relative_error[-1]):.5f} vs {theirs:.5f}")]


@section("mcl")
def mcl_section(settings: dict) -> list[Row]:
    """Markov clustering of a stochastic block model graph with planted communities of 100 nodes."""
    import shutil
    import subprocess
    import tempfile

    from sklearn.metrics import adjusted_rand_score

    from ..datasets import make_sbm, save_graph
    from ..graph import mcl

    n, seed = max(1000, settings["nodes"] // 10), settings["seed"]
    A, planted = make_sbm(n, max(2, n // 100), in_degree=12, out_degree=0.5, random_state=seed)
    click.echo(f"Markov clustering of a {n}-node graph with {n // 100} planted communities ...")
    result, t = _timed(lambda: mcl(A, 1.6))
    labels = result.labels.values
    _figure(settings, "MCL: chaos and stored entries per iteration", lambda fig: _mcl_plot(fig, result.history))
    quality = f"ARI vs planted {adjusted_rand_score(np.asarray(planted), labels):.3f}"
    operation = f"mcl -I 1.6 ({result.n_iter} iterations, {len(result.clusters)} clusters)"
    program = shutil.which("mcl")
    t_ref = None
    if program:
        with tempfile.TemporaryDirectory() as tmp:
            save_graph(f"{tmp}/g.abc", A)
            start = time.perf_counter()
            subprocess.run([program, f"{tmp}/g.abc", "--abc", "-I", "1.6", "-o", f"{tmp}/out"], check=True,
                           capture_output=True)
            t_ref = time.perf_counter() - start
            theirs = np.full(n, -1)
            with open(f"{tmp}/out") as f:
                for c, line in enumerate(f):
                    theirs[[int(float(x)) for x in line.split()]] = c
        quality += f", vs the mcl program {adjusted_rand_score(theirs, labels):.3f}"
    else:
        operation += " (the mcl program is not installed: no reference time)"
    return [("mcl", operation, t, t_ref, quality)]


def _mcl_plot(fig: Any, history: Any) -> None:
    from ..plot import convergence

    left, right = fig.subplots(1, 2)
    convergence(history, "chaos", ax=left)
    convergence(history, "nnz", ax=right)


@section("gnn")
def gnn_section(settings: dict) -> list[Row]:
    """A GCN and a GraphSAGE trained on a generated graph split into partitions (halo exchange)."""
    from ..datasets import make_sbm
    from ..gnn import GCN, GraphSAGE

    n, k, seed = max(1000, settings["nodes"] // 5), settings["clusters"], settings["seed"]
    A, planted = make_sbm(n, k, in_degree=8, out_degree=4, shuffle=True, random_state=seed)
    y = np.asarray(planted).astype(np.int64)
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=2.0, size=(n, 4 * k))                 # features: a weak, noisy hint of the class
    X[np.arange(n), y] += 1.0
    order = rng.permutation(n)
    train, val, test = order[: n // 10], order[n // 10: n // 5], order[n // 5:]
    click.echo(f"GCN and GraphSAGE on a {n}-node graph with {k} classes, 10% of the labels known ...")
    rows: list[Row] = []
    histories = {}
    for cls in (GCN, GraphSAGE):
        model = cls(epochs=100, n_parts=2, random_state=seed, progress=False)
        _, t = _timed(lambda: model.fit(A, X, y, train, val))
        h = histories[cls.__name__] = model.history_
        rows.append(("gnn", f"{cls.__name__}, 2 partitions (edge cut {h.attrs['edge_cut_fraction']:.2f})", t, None,
                     f"test acc {model.score(test):.3f}, "
                     f"{float(np.median(h.epoch_time)) * 1e3:.0f} ms/epoch"))
    from sklearn.linear_model import LogisticRegression

    features_only = LogisticRegression(max_iter=1000).fit(X[train], y[train]).score(X[test], y[test])
    rows.append(("gnn", "logistic regression on the features alone", None, None, f"test acc {features_only:.3f}"))

    def draw(fig: Any) -> None:
        from ..plot import accuracy

        for ax, (name, h) in zip(fig.subplots(1, len(histories), sharey=True), histories.items()):
            accuracy(h, ax=ax).set_title(name)

    _figure(settings, "GNN training: accuracy per epoch", draw, size=(8, 3.4))
    return rows


@section("pca")
def pca_section(settings: dict) -> list[Row]:
    """PCA of tall data (dense and sparse) against scikit-learn."""
    import scipy.sparse as sp
    from sklearn.decomposition import PCA as SkPCA

    from ..decomposition import PCA

    m, seed = max(10_000, settings["nodes"] * 4), settings["seed"]
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((m, 10)) * np.geomspace(5, 1, 10)) @ rng.standard_normal((10, 50))
    X += 0.3 * rng.standard_normal((m, 50))
    click.echo(f"PCA of a {m} x 50 matrix with a rank-10 signal ...")
    rows: list[Row] = []
    ref, t_ref = _timed(lambda: SkPCA(5).fit(X))
    ratios = {}
    for solver in ("covariance_eigh", "tsqr", "randomized"):
        model, t = _timed(lambda: PCA(5, svd_solver=solver, random_state=seed).fit(X))
        ratios[solver] = np.asarray(model.explained_variance_ratio_)
        signs = np.sign((model.components_ * ref.components_).sum(axis=1))[:, None]
        rows.append(("pca", f"PCA(5, svd_solver={solver!r})", t, t_ref,
                     f"components vs sklearn {np.abs(model.components_ * signs - ref.components_).max():.1e}"))
    S = sp.csr_matrix(np.where(np.abs(X) > 2, X, 0))
    ref_s, t_ref = _timed(lambda: SkPCA(5, svd_solver="arpack").fit(S))
    model, t = _timed(lambda: PCA(5, svd_solver="randomized", random_state=seed).fit(S))
    rows.append(("pca", f"PCA of the same matrix sparsified ({S.nnz / S.shape[0] / S.shape[1]:.0%} stored)", t,
                 t_ref, f"explained var ratio vs sklearn "
                        f"{np.abs(model.explained_variance_ratio_ - ref_s.explained_variance_ratio_).max():.1e}"))

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        width = 0.8 / (len(ratios) + 1)
        for j, (name, r) in enumerate([("scikit-learn", ref.explained_variance_ratio_), *ratios.items()]):
            ax.bar(np.arange(len(r)) + j * width, r, width, label=name)
        ax.set_xlabel("component"), ax.set_ylabel("explained variance ratio"), ax.legend(fontsize=7)

    _figure(settings, "PCA: explained variance ratio per solver", draw)
    return rows


@section("svm")
def svm_section(settings: dict) -> list[Row]:
    """Cascade SVM (random and k-means partitions) against one scikit-learn SVC."""
    from sklearn.datasets import make_classification
    from sklearn.svm import SVC

    from ..svm import CascadeSVC

    m, seed = max(4_000, min(settings["nodes"] // 2, 20_000)), settings["seed"]
    X, y = make_classification(m + 2_000, 20, n_informative=8, flip_y=0.05, random_state=seed)
    Xtr, ytr, Xte, yte = X[:m], y[:m], X[m:], y[m:]
    click.echo(f"RBF SVM on {m} training rows x 20 features (make_classification), 2,000 test rows ...")
    ref, t_ref = _timed(lambda: SVC().fit(Xtr, ytr))
    acc_ref = ref.score(Xte, yte)
    rows: list[Row] = []
    for partition, passes in (("random", 1), ("random", 3), ("kmeans", 3)):
        model, t = _timed(lambda: CascadeSVC(partition=partition, max_passes=passes, random_state=seed).fit(Xtr, ytr))
        rows.append(("svm", f"CascadeSVC(partition={partition!r}, max_passes={passes})", t, t_ref,
                     f"test accuracy {model.score(Xte, yte):.4f} vs SVC {acc_ref:.4f}; {model.n_passes_} pass(es)"))
    return rows


@section("lasso")
def lasso_section(settings: dict) -> list[Row]:
    """Shotgun Lasso (parallel coordinate descent) against scikit-learn's Lasso."""
    from sklearn.datasets import make_regression
    from sklearn.linear_model import Lasso as SkLasso

    from ..linear_model import ElasticNet, Lasso

    m, seed = max(5_000, min(settings["nodes"], 50_000)), settings["seed"]
    X, y = make_regression(m, 500, n_informative=50, noise=5.0, random_state=seed)
    click.echo(f"Lasso on make_regression({m} x 500) ...")
    ref, t_ref = _timed(lambda: SkLasso(alpha=1.0, tol=1e-6).fit(X, y))
    model, t = _timed(lambda: Lasso(alpha=1.0, solver="shotgun", tol=1e-6, random_state=seed).fit(X, y))
    rows: list[Row] = [("lasso", f"Lasso(solver='shotgun'), P = {model.n_parallel_} of 500", t, t_ref,
                        f"coef vs sklearn {np.abs(model.coef_ - ref.coef_).max():.1e}")]
    ours, theirs = np.asarray(model.coef_), np.asarray(ref.coef_)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.scatter(theirs, ours, s=8)
        ax.set_xlabel("scikit-learn Lasso coefficient"), ax.set_ylabel("daskpml Shotgun coefficient")

    _figure(settings, "Lasso coefficients: Shotgun against scikit-learn", draw)
    from sklearn.linear_model import ElasticNet as SkElasticNet

    ref, t_ref = _timed(lambda: SkElasticNet(alpha=1.0, l1_ratio=0.5, tol=1e-6).fit(X, y))
    model, t = _timed(lambda: ElasticNet(alpha=1.0, l1_ratio=0.5, solver="shotgun", tol=1e-6,
                                         random_state=seed).fit(X, y))
    rows.append(("lasso", "ElasticNet(l1_ratio=0.5, solver='shotgun')", t, t_ref,
                 f"coef vs sklearn {np.abs(model.coef_ - ref.coef_).max():.1e}"))
    return rows


def _print_table(rows: list[Row]) -> None:
    header = ("section", "operation", "daskpml s", "reference s", "check")
    cells = [header] + [(s, op, f"{t:.3f}" if t is not None else "-", f"{r:.3f}" if r is not None else "-", c)
                        for s, op, t, r, c in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for k, row in enumerate(cells):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if k == 0:
            click.echo("  ".join("-" * w for w in widths))


def _write_report(path: str, rows: list[Row], figures: list, header: str, elapsed: float) -> None:
    """The summary table and the plots as one self-contained HTML file (PNG images inlined)."""
    from .._files import atomic_path

    def cell(value: float | None) -> str:
        return f"{value:.3f}" if value is not None else "-"

    table = "".join(f"<tr><td>{html.escape(s)}</td><td>{html.escape(op)}</td><td>{cell(t)}</td><td>{cell(r)}</td>"
                    f"<td>{html.escape(c)}</td></tr>" for s, op, t, r, c in rows)
    plots = "".join(f"<figure><img src='data:image/png;base64,{png}' alt='{html.escape(title)}'>"
                    f"<figcaption>{html.escape(section)}: {html.escape(title)}</figcaption></figure>"
                    for section, title, png in figures)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>daskpml demo</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} figure{{display:inline-block;margin:1em}}
figcaption{{font-size:90%;color:#444}}</style></head><body>
<h1>daskpml demo</h1>
<p>{html.escape(header)}<br>written {datetime.datetime.now().isoformat(timespec="seconds")},
the tour took {elapsed:.1f} s</p>
<h2>Summary</h2>
<table><tr><th>section</th><th>operation</th><th>daskpml s</th><th>reference s</th><th>check</th></tr>{table}</table>
<h2>Plots</h2>
{plots or "<p>(no plots)</p>"}
</body></html>
"""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(page)


@cli.command()
@click.option("--nodes", type=click.IntRange(min=100), default=50_000, show_default=True,
              help="Size of the generated graphs.")
@click.option("--clusters", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--quick", is_flag=True, help="Small data (a few seconds).")
@click.option("--only", type=click.Choice(sorted(SECTIONS) or ["sparse"]), multiple=True,
              help="Run only these sections.")
@click.option("--report", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write an HTML report (the summary table and plots; needs matplotlib) to this file.")
@click.pass_obj
def demo(session: Session, nodes: int, clusters: int, seed: int, quick: bool, only: tuple[str, ...],
         report: str | None) -> None:
    """Start (or join) a cluster, generate data, run each algorithm and print a summary table."""
    if report:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.UsageError("--report needs matplotlib: pip install 'daskpml[plot]'.") from None
    files = outputs({}, report=report)
    start = time.perf_counter()
    client = session.client()
    n_workers = len(client.nthreads())
    header = (f"cluster: {client.scheduler.address} with {n_workers} worker(s), "
              f"{sum(client.nthreads().values())} thread(s); dashboard: {dashboard_link(client) or 'none'}")
    click.echo(header)
    settings = {"nodes": 2_000 if quick else nodes, "clusters": clusters, "seed": seed, "backend": session.backend,
                "figures": [] if report else None}
    rows: list[Row] = []
    for name, func in SECTIONS.items():
        if only and name not in only:
            continue
        click.echo(f"== {name}: {(func.__doc__ or '').strip().splitlines()[0]}")
        settings["section"] = name
        with _heartbeat(name):
            rows += func(settings)
    elapsed = time.perf_counter() - start
    click.echo("")
    _print_table(rows)
    click.echo(f"\nthe tour took {elapsed:.1f} s")
    if report:
        with files:
            _write_report(files["--report"], rows, settings["figures"],
                          f"{header}; nodes={settings['nodes']}, seed={seed}", elapsed)
        click.echo(f"report: {report} ({len(settings['figures'])} plots)")
