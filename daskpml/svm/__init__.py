"""Support vector machines trained in parallel: the cascade SVM (:func:`cascade_svm`, the algorithm;
:class:`CascadeSVC`, the estimator)."""

from ._cascade import CascadeSVC
from ._cascade_svm import CascadeResult, cascade_svm

__all__ = ["CascadeResult", "CascadeSVC", "cascade_svm"]
