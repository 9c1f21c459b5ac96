"""Loss families and penalties.

A *family* is a per-sample loss of the linear predictor ``z = x @ W + b``
(``W`` of shape ``(n_features, n_outputs)``). Each family gives, for a block of
rows, the summed loss and its derivative with respect to ``z`` in one pass
(:meth:`Family.loss_dz`), and, where the loss is smooth, the curvature applied
to a direction ``u = X v`` (:meth:`Family.hess_dz`), from which the
Hessian-vector product ``X.T @ hess_dz(z, y, X v)`` follows.

Targets are encoded before they reach a family: regression targets are floats;
classification targets are class indices ``0..K-1`` (binary: 0/1).

A *penalty* is ``l1 * ||W||_1 + l2 / 2 * ||W||_2^2`` on the coefficients only
(never on the intercept); L2, L1 and the elastic net are special cases. The
smooth part enters gradients and Hessian-vector products; the L1 part is
applied through its proximal operator (soft thresholding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..backend import get_namespace


def _xp(z: Any) -> Any:
    return get_namespace(z)[0]


class Family:
    """Base class: a per-sample loss of the linear predictor.

    Examples
    --------
    >>> get_family("logistic").name
    'logistic'
    """

    name: str = "family"
    smooth: bool = True          # twice differentiable (Hessian-vector products exist)
    classification: bool = False

    def n_outputs(self, n_classes: int) -> int:
        """Columns of ``W`` for ``n_classes`` classes (1 for regression)."""
        return 1

    def loss_dz(self, z: Any, y: Any) -> tuple[Any, Any]:
        """Summed loss over the rows and ``d loss / d z`` (same shape as ``z``)."""
        raise NotImplementedError

    def loss(self, z: Any, y: Any) -> Any:
        return self.loss_dz(z, y)[0]

    def curvature(self, z: Any, y: Any) -> Any:
        """Per-row second derivative ``d^2 loss / dz^2`` (single-output smooth families),
        so that the loss Hessian is ``X.T @ diag(curvature) @ X``."""
        raise TypeError(f"the {self.name} loss has no per-row curvature; use newton_cg or lbfgs.")

    def hess_dz(self, z: Any, y: Any, u: Any) -> Any:
        """The loss curvature at ``z`` applied to ``u`` (row by row)."""
        raise TypeError(
            f"the {self.name} loss is not twice differentiable, so Hessian-vector products "
            "(newton_cg) are not available; use lbfgs, gradient_descent or sgd."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __dask_tokenize__(self) -> str:
        return type(self).__qualname__


class SquaredLoss(Family):
    """``(z - y)^2 / 2``: least squares.

    Examples
    --------
    >>> SquaredLoss().name
    'squared'
    """

    name = "squared"

    def loss_dz(self, z, y):
        r = z - y[:, None]
        return 0.5 * _xp(z).sum(r * r), r

    def hess_dz(self, z, y, u):
        return u

    def curvature(self, z, y):
        return _xp(z).ones(z.shape[0], dtype=z.dtype)


class Logistic(Family):
    """Binary log-loss, ``log(1 + exp(z)) - y z`` for ``y`` in {0, 1}.

    Examples
    --------
    >>> Logistic().n_outputs(2)
    1
    """

    name = "logistic"
    classification = True

    def n_outputs(self, n_classes: int) -> int:
        if n_classes != 2:
            raise ValueError(f"the binary logistic loss needs exactly 2 classes, got {n_classes}; "
                             "use the multinomial family for more.")
        return 1

    def loss_dz(self, z, y):
        xp = _xp(z)
        zz = z[:, 0]
        e = xp.exp(-xp.abs(zz))                  # log(1 + exp(z)) and sigmoid(z) without overflow
        loss = xp.sum(xp.maximum(zz, 0.0)) + xp.sum(xp.log1p(e)) - xp.dot(y, zz)
        r = 1.0 / (1.0 + e)
        p = xp.where(zz >= 0, r, e * r)
        return loss, (p - y)[:, None]

    def hess_dz(self, z, y, u):
        xp = _xp(z)
        p = 0.5 * (1.0 + xp.tanh(0.5 * z))
        return p * (1.0 - p) * u

    def curvature(self, z, y):
        xp = _xp(z)
        p = 0.5 * (1.0 + xp.tanh(0.5 * z[:, 0]))
        return p * (1.0 - p)

    @staticmethod
    def proba(z):
        xp = _xp(z)
        p = 0.5 * (1.0 + xp.tanh(0.5 * z[:, 0]))
        return xp.stack([1.0 - p, p], axis=1)


def _softmax(z):
    xp = _xp(z)
    e = xp.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Multinomial(Family):
    """Multinomial (softmax) log-loss, ``logsumexp(z) - z[y]`` for ``y`` in 0..K-1.

    Examples
    --------
    >>> Multinomial().n_outputs(3)
    3
    """

    name = "multinomial"
    classification = True

    def n_outputs(self, n_classes: int) -> int:
        return n_classes

    def loss_dz(self, z, y):
        xp = _xp(z)
        m = z.max(axis=1, keepdims=True)
        e = xp.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        idx = y.astype(xp.int64)
        rows = xp.arange(z.shape[0])
        loss = xp.sum(xp.log(s[:, 0]) + m[:, 0] - z[rows, idx])
        dz = e / s
        dz[rows, idx] -= 1.0
        return loss, dz

    def hess_dz(self, z, y, u):
        p = _softmax(z)
        pu = p * u
        return pu - p * pu.sum(axis=1, keepdims=True)

    @staticmethod
    def proba(z):
        return _softmax(z)


def _signs(y):
    return 2.0 * y - 1.0


class Hinge(Family):
    """Hinge loss ``max(0, 1 - s z)`` with ``s = 2y - 1`` (linear SVM); not smooth.

    Examples
    --------
    >>> Hinge().name
    'hinge'
    """

    name = "hinge"
    smooth = False
    classification = True

    def n_outputs(self, n_classes: int) -> int:
        return Logistic().n_outputs(n_classes)

    def loss_dz(self, z, y):
        xp = _xp(z)
        s = _signs(y)
        margin = 1.0 - s * z[:, 0]
        active = margin > 0
        return xp.sum(margin[active]), (-(s * active))[:, None]


class SquaredHinge(Family):
    """Squared hinge ``max(0, 1 - s z)^2`` (LinearSVC's default); once differentiable,
    with the generalized Hessian ``2 [s z < 1]``.

    Examples
    --------
    >>> SquaredHinge().name
    'squared_hinge'
    """

    name = "squared_hinge"
    classification = True

    def n_outputs(self, n_classes: int) -> int:
        return Logistic().n_outputs(n_classes)

    def loss_dz(self, z, y):
        xp = _xp(z)
        s = _signs(y)
        margin = xp.maximum(1.0 - s * z[:, 0], 0.0)
        return xp.dot(margin, margin), (-2.0 * s * margin)[:, None]

    def hess_dz(self, z, y, u):
        active = (_signs(y) * z[:, 0] < 1.0)[:, None]
        return 2.0 * active * u

    def curvature(self, z, y):
        return 2.0 * (_signs(y) * z[:, 0] < 1.0)


FAMILIES: dict[str, Callable[[], Family]] = {
    "squared": SquaredLoss,
    "logistic": Logistic,
    "multinomial": Multinomial,
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
}


def get_family(family: str | Family) -> Family:
    """A family instance from its name (or the instance itself).

    Parameters
    ----------
    family : str or Family
        A loss family or its name.

    Returns
    -------
    family : Family
        The family instance.

    Examples
    --------
    >>> get_family("squared").name
    'squared'
    """
    if isinstance(family, Family):
        return family
    try:
        return FAMILIES[family]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown family {family!r}; choose one of {sorted(FAMILIES)} "
                         "or pass a daskpml.optim.Family instance.") from None


@dataclass(frozen=True)
class Penalty:
    """``l1 * ||W||_1 + l2 / 2 * ||W||^2`` on the coefficients (not the intercept).

    The objective multiplies it by the regularization strength ``lam``.

    Parameters
    ----------
    l1 : float, default 0.0
        Weight of ``||W||_1``.
    l2 : float, default 1.0
        Weight of ``||W||^2 / 2``.

    Examples
    --------
    >>> get_penalty("elasticnet", 0.25)
    Penalty(l1=0.25, l2=0.75)
    """

    l1: float = 0.0
    l2: float = 1.0

    @property
    def smooth(self) -> bool:
        return self.l1 == 0.0

    def value(self, w: Any) -> float:
        xp = _xp(w)
        return float(self.l1 * xp.abs(w).sum() + 0.5 * self.l2 * xp.dot(w, w))

    def smooth_value(self, w: Any) -> float:
        return float(0.5 * self.l2 * _xp(w).dot(w, w))

    def smooth_grad(self, w: Any) -> Any:
        return self.l2 * w

    def prox(self, w: Any, step: float) -> Any:
        """Proximal operator of ``step * l1 * ||.||_1`` (the smooth part is in the gradient)."""
        if self.l1 == 0.0:
            return w
        xp = _xp(w)
        t = step * self.l1
        return xp.sign(w) * xp.maximum(xp.abs(w) - t, 0.0)


PENALTIES: dict[str, Callable[..., Penalty]] = {
    "l2": lambda: Penalty(0.0, 1.0),
    "l1": lambda: Penalty(1.0, 0.0),
    "none": lambda: Penalty(0.0, 0.0),
    "elasticnet": lambda l1_ratio=0.5: Penalty(float(l1_ratio), 1.0 - float(l1_ratio)),
}


def get_penalty(penalty: str | Penalty | None, l1_ratio: float = 0.5) -> Penalty:
    """A :class:`Penalty` from ``"l2"``, ``"l1"``, ``"elasticnet"`` (with ``l1_ratio``),
    ``"none"``/``None``, or an instance.

    Parameters
    ----------
    penalty : {"l2", "l1", "elasticnet", "none"}, Penalty or None
        The penalty or its name.
    l1_ratio : float, default 0.5
        Mix of the elastic net.

    Returns
    -------
    penalty : Penalty
        The penalty (``l1`` and ``l2`` weights).

    Examples
    --------
    >>> get_penalty("l1")
    Penalty(l1=1.0, l2=0.0)
    """
    if isinstance(penalty, Penalty):
        return penalty
    key = "none" if penalty is None else penalty
    if key not in PENALTIES:
        raise ValueError(f"unknown penalty {penalty!r}; choose one of {sorted(PENALTIES)} or None.")
    if key == "elasticnet":
        if not 0.0 <= float(l1_ratio) <= 1.0:
            raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio}.")
        return PENALTIES[key](l1_ratio)
    return PENALTIES[key]()
