"""Distributed linear algebra: Laplacians, a restarted Lanczos eigensolver, randomized SVD.

>>> from daskpml.datasets import make_sbm
>>> from daskpml.linalg import laplacian, laplacian_eigsh
>>> W, _ = make_sbm(2000, 4, in_degree=10, out_degree=1, random_state=0)
>>> w, V = laplacian_eigsh(W, k=4, kind="sym", tol=1e-8)   # the 4 smallest of L_sym
>>> L = laplacian(W, "sym")                                 # a CSRMatrix
"""

from ._laplacian import KINDS, degrees, laplacian, laplacian_eigsh, probably_symmetric
from ._lanczos import NoConvergence, default_ncv, eigsh
from ._svd import randomized_svd, truncated_svd

__all__ = ["KINDS", "NoConvergence", "default_ncv", "degrees", "eigsh", "laplacian", "laplacian_eigsh",
           "probably_symmetric", "randomized_svd", "truncated_svd"]
