"""Distributed linear algebra: Laplacians, a restarted Lanczos eigensolver, randomized SVD.

>>> from daskpml.datasets import make_sbm
>>> from daskpml.linalg import laplacian, laplacian_eigsh
>>> W, _ = make_sbm(2000, 4, in_degree=10, out_degree=1, random_state=0)
>>> w, V = laplacian_eigsh(W, k=4, kind="sym", tol=1e-8)   # the 4 smallest of L_sym
>>> L = laplacian(W, "sym")                                 # a CSRMatrix
"""

from ._laplacian import KINDS, degrees, laplacian, laplacian_eigsh, laplacian_lanczos, probably_symmetric
from ._lanczos import LanczosResult, NoConvergence, default_ncv, eigsh, lanczos
from ._svd import centred_gram, gram_block, gram_svd, project_rows, randomized_svd, truncated_svd

__all__ = ["KINDS", "LanczosResult", "NoConvergence", "centred_gram", "default_ncv", "degrees", "eigsh", "gram_block", "gram_svd",
           "lanczos", "laplacian", "laplacian_eigsh", "laplacian_lanczos", "probably_symmetric", "project_rows", "randomized_svd", "truncated_svd"]
