"""Linear classifiers: LogisticRegression (binary and multinomial) and LinearSVC."""

from __future__ import annotations

from numbers import Real
from typing import Any

import dask
import dask.array as da
import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from ..backend import get_namespace, to_numpy, zeros_like
from ..optim import Logistic, Multinomial, newton_pays
from ..validation import Interval, Options
from ._base import LinearModelBase, _is_lazy
from ._regression import _COMMON_DOC


def _block_classes(block: Any) -> np.ndarray:
    xp, _ = get_namespace(block)
    return to_numpy(xp.unique(block))


def _classes(y: Any) -> np.ndarray:
    if _is_lazy(y):
        # per block on the block's device, merged here (da.unique builds NumPy record arrays, which
        # CuPy blocks cannot fill)
        parts = dask.compute(*[dask.delayed(_block_classes)(b) for b in y.to_delayed().ravel()])
        classes = np.unique(np.concatenate(parts)) if parts else np.empty(0)
    else:
        check_classification_targets(to_numpy(y))      # scikit-learn's check reads host labels
        classes = _block_classes(y)
    if classes.dtype.kind == "f" and not np.all(np.isfinite(classes)):
        raise ValueError("y contains NaN or infinity; class labels must be finite.")
    return classes


def _labels(scores: Any, classes: np.ndarray) -> Any:
    """Predicted labels of a block of scores: on the scores' device for numeric classes (other
    labels, strings for example, exist on the host only)."""
    xp, _ = get_namespace(scores)
    index = (scores > 0).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)
    if classes.dtype.kind in "biuf":
        return xp.asarray(classes)[index]
    return classes[to_numpy(index)]


def _encode_block(block: Any, classes: np.ndarray) -> Any:
    """Class indices of a block, on the block's device (the classes travel there)."""
    xp, _ = get_namespace(block)
    return xp.searchsorted(xp.asarray(classes), block).astype(np.float64)


def _encode(y: Any, classes: np.ndarray) -> Any:
    if _is_lazy(y):
        return y.map_blocks(_encode_block, classes, dtype=np.float64)
    return _encode_block(y, classes)


class _Classifier(ClassifierMixin, LinearModelBase):
    _binary_only = False

    def _is_classifier(self) -> bool:
        return True

    def fit(self, X: Any, y: Any, resume: bool = False) -> "_Classifier":
        """Fit on ``X`` (NumPy, SciPy sparse, dask, CSRMatrix, CuPy) and labels ``y``;
        ``resume=True`` continues from the newest snapshot in ``checkpoint``."""
        X, y = self._validate_fit(X, y)
        classes = _classes(y)
        if len(classes) < 2:
            raise ValueError(f"y has only one class ({classes[0]!r}) but a classifier needs samples of at "
                             "least 2 classes.")
        if self._binary_only and len(classes) != 2:
            raise ValueError(f"Only binary classification is supported. {type(self).__name__} is a binary "
                             f"classifier but y has {len(classes)} classes "
                             f"({list(classes[:10])}); use LogisticRegression (multinomial) or "
                             "sklearn.multiclass.OneVsRestClassifier.")
        self.classes_ = classes
        self._fit(X, _encode(y, classes), n_classes=len(classes), resume=resume)
        return self

    def _store(self, coef, intercept, X) -> None:
        self.coef_ = np.atleast_2d(coef.T) if coef.ndim == 2 else coef[None, :]
        k = self.coef_.shape[0]
        self.intercept_ = intercept.copy() if intercept is not None else np.zeros(k)

    def decision_function(self, X: Any) -> Any:
        """Scores ``X @ coef_.T + intercept_``: shape (n,) for two classes, (n, K) otherwise."""
        Z = self._linear(X)
        return Z[:, 0] if Z.shape[1] == 1 else Z

    def predict(self, X: Any) -> Any:
        """Predicted class labels (lazy for dask input)."""
        scores = self.decision_function(X)
        classes = self.classes_
        if _is_lazy(scores):
            meta = zeros_like(scores._meta, (0,), classes.dtype) if classes.dtype.kind in "biuf" else \
                np.empty(0, dtype=classes.dtype)
            return scores.map_blocks(_labels, classes, drop_axis=1 if scores.ndim == 2 else (), dtype=classes.dtype,
                                     meta=meta)
        return _labels(scores, classes)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy (dask input is computed)."""
        if not (_is_lazy(X) or _is_lazy(y)):
            if get_namespace(X, y)[0] is np:
                return super().score(X, y, sample_weight=sample_weight)
            hit = (self.predict(X) == y).astype(np.float64)           # device arrays: scored there
            if sample_weight is None:
                return float(hit.mean())
            w = get_namespace(hit)[0].asarray(sample_weight, dtype=np.float64)
            return float((hit * w).sum() / w.sum())
        pred = self.predict(X)
        return float((pred == y).mean().compute())


class LogisticRegression(_Classifier):
    __doc__ = """Logistic regression, binary or multinomial (softmax) for more than two classes.

    Minimizes scikit-learn's objective ``C sum_i loss_i + R(w)``, computed as
    ``(1/n) sum_i loss_i + R(w) / (C n)``, intercept unpenalized.

    Parameters
    ----------
    penalty : {"l2", "l1", "elasticnet", None}, default "l2"
    C : float, default 1.0
        Inverse regularization strength.
    l1_ratio : float, default 0.5
        Mix of the elastic net.""" + _COMMON_DOC.format(
        solvers="lbfgs, newton_cg, gradient_descent, proximal_gradient, sgd, local_sgd, one_shot_average",
        auto="newton for a binary problem whose Hessian costs no more than a pass over the data (newton_pays: many rows, up to a few hundred features), lbfgs otherwise for L2 or no penalty, proximal_gradient for L1 and elastic net") + """
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=500).fit(X, y)
    >>> clf.coef_.shape, round(clf.score(X, y), 2)
    ((3, 4), 0.97)
    """

    _parameter_constraints = {"penalty": [Options("l2", "l1", "elasticnet", "none"), None],
                              "C": [Interval(Real, 0, None, closed="neither")],
                              "l1_ratio": [Interval(Real, 0, 1)]}

    def __init__(self, penalty: str | None = "l2", *, C: float = 1.0, l1_ratio: float = 0.5,
                 fit_intercept: bool = True, solver: Any = "auto", max_iter: int = 200, tol: float = 1e-5,
                 random_state: Any = None, solver_kwargs: dict | None = None,
                 checkpoint: Any = None, checkpoint_every: int = 10) -> None:
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.solver_kwargs = solver_kwargs
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    @property
    def _default_solver(self) -> str:
        return "lbfgs" if self.penalty in ("l2", None, "none") else "proximal_gradient"

    def _auto_solver(self, shape: tuple | None) -> str:
        """Newton for a binary problem whose Hessian costs no more than a pass over the data
        (:func:`~daskpml.optim.newton_pays`: many rows, up to a few hundred features); L-BFGS
        otherwise, FISTA for L1 and elastic-net penalties."""
        solver = self._default_solver
        if solver == "lbfgs" and shape is not None and self._family() == "logistic" and \
                newton_pays(shape[0], shape[1] + int(self.fit_intercept)):
            return "newton"
        return solver

    def _family(self) -> str:
        return "logistic" if len(getattr(self, "classes_", [0, 1])) == 2 else "multinomial"

    def _penalty(self):
        if not self.C > 0:
            raise ValueError(f"C must be positive, got {self.C}.")
        return self.penalty, 1.0 / float(self.C)

    def _l1_ratio(self):
        return self.l1_ratio

    def _lam(self, strength, n):
        return 0.0 if self.penalty in (None, "none") else strength / n

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, shape (n, n_classes) (lazy for dask input)."""
        Z = self._linear(X)
        proba = Logistic.proba if Z.shape[1] == 1 else Multinomial.proba
        if _is_lazy(Z):
            return Z.map_blocks(proba, chunks=(Z.chunks[0], (len(self.classes_),)), dtype=Z.dtype, meta=Z._meta)
        return proba(Z)

    def predict_log_proba(self, X: Any) -> Any:
        """Logarithm of :meth:`predict_proba`."""
        P = self.predict_proba(X)
        xp, _ = get_namespace(P)
        return da.log(P) if _is_lazy(P) else xp.log(P)


class LinearSVC(_Classifier):
    __doc__ = """Linear support vector classifier (binary), ``0.5 ||w||^2 + C sum_i loss_i`` with the
    squared hinge (default) or hinge loss. Unlike liblinear's, the intercept is not
    penalized.

    Parameters
    ----------
    C : float, default 1.0
    loss : {"squared_hinge", "hinge"}""" + _COMMON_DOC.format(
        solvers="lbfgs, newton_cg (squared hinge), sgd, local_sgd, one_shot_average, gradient_descent",
        auto="lbfgs for the squared hinge and sgd for the hinge") + """
    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((200, 2)); y = (X[:, 0] > 0).astype(int)
    >>> LinearSVC().fit(X, y).score(X, y) > 0.95
    True
    """

    _binary_only = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    _parameter_constraints = {"C": [Interval(Real, 0, None, closed="neither")],
                              "loss": [Options("squared_hinge", "hinge")]}

    def __init__(self, *, C: float = 1.0, loss: str = "squared_hinge", fit_intercept: bool = True,
                 solver: Any = "auto", max_iter: int = 500, tol: float = 1e-5, random_state: Any = None,
                 solver_kwargs: dict | None = None,
                 checkpoint: Any = None, checkpoint_every: int = 10) -> None:
        self.C = C
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.solver_kwargs = solver_kwargs
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    @property
    def _default_solver(self) -> str:
        return "lbfgs" if self.loss == "squared_hinge" else "sgd"

    def _family(self) -> str:
        if self.loss not in ("squared_hinge", "hinge"):
            raise ValueError(f"loss must be 'squared_hinge' or 'hinge', got {self.loss!r}.")
        return self.loss

    def _penalty(self):
        if not self.C > 0:
            raise ValueError(f"C must be positive, got {self.C}.")
        return "l2", 1.0 / float(self.C)

    def _lam(self, strength, n):
        return strength / n
