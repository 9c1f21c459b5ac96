"""Defaults of daskpml under the ``daskpml:`` key of :mod:`dask.config`.

Values are read at call time (``get("connect-timeout")``), so
``dask.config.set({"daskpml.connect-timeout": "2s"})`` takes effect at once.
"""

from __future__ import annotations

import os
from typing import Any

import dask.config
import yaml

_fn = os.path.join(os.path.dirname(__file__), "daskpml.yaml")
with open(_fn) as _f:
    defaults = yaml.safe_load(_f)

dask.config.update_defaults(defaults)


def get(key: str, default: Any = None) -> Any:
    """Value of ``daskpml.<key>`` in the current dask configuration."""
    return dask.config.get(f"daskpml.{key}", default=default)
