"""Linear models with scikit-learn's API over row-chunked (dask) data, any solver of
:mod:`daskpml.optim`."""

from ._classification import LinearSVC, LogisticRegression
from ._regression import ElasticNet, Lasso, LinearRegression, Ridge

__all__ = ["ElasticNet", "Lasso", "LinearRegression", "LinearSVC", "LogisticRegression", "Ridge"]
