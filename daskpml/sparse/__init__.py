"""Row-blocked distributed sparse matrices (SciPy or cupyx CSR blocks).

>>> import scipy.sparse as sp, numpy as np
>>> from daskpml.sparse import from_array
>>> A = from_array(sp.random(1000, 1000, density=0.01, format="csr", random_state=0), chunks=250)
>>> y = (A @ np.ones(1000)).compute()          # SpMV, a dask array until computed
>>> C = (A @ A).prune(1e-3).persist()          # SpGEMM with threshold pruning, stays distributed
"""

from ._csr import CSRMatrix, auto_row_chunks, from_array, from_block_graph, row_indices, stack_blocks
from ._rows import as_rows
from ._products import matmul, rmatmul, rmatmul_transposed, spgemm, topk_per_column, transpose

__all__ = [
    "CSRMatrix",
    "as_rows",
    "auto_row_chunks",
    "from_array",
    "from_block_graph",
    "matmul",
    "rmatmul",
    "rmatmul_transposed",
    "row_indices",
    "spgemm",
    "stack_blocks",
    "topk_per_column",
    "transpose",
]
