"""daskpml: parallel machine learning on Dask, on CPUs (NumPy/SciPy) and GPUs (CuPy/cupyx)."""

from . import _config  # noqa: F401  (registers the daskpml defaults in dask.config)
from ._numba import numba_cache_dir
from .backend import get_namespace, to_backend
from .runtime import connect

__version__ = "0.1.0"

__all__ = ["connect", "get_namespace", "numba_cache_dir", "to_backend", "__version__"]
