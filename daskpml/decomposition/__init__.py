"""Matrix factorizations over row-blocked data: blockwise non-negative matrix factorization,
PCA and truncated SVD.

>>> import numpy as np
>>> from daskpml.decomposition import NMF
>>> X = np.random.default_rng(0).random((500, 40))
>>> W = NMF(5, solver="hals", random_state=0, progress=False).fit_transform(X)
"""

from ._nmf import NMFResult, nmf
from ._nmf_estimator import NMF
from ._nmf_kernels import nnls
from ._pca import PCA, TruncatedSVD

__all__ = ["NMF", "NMFResult", "PCA", "TruncatedSVD", "nmf", "nnls"]
