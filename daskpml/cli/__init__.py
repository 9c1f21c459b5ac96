"""Command-line interface: ``daskpml ...``, also reachable as ``dask pml ...``."""

from ._main import cli, dask_cli

__all__ = ["cli", "dask_cli"]
