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


def _declared(key: str) -> bool:
    node: Any = defaults["daskpml"]
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def get(key: str) -> Any:
    """Value of ``daskpml.<key>`` in the current dask configuration.

    Every key has its default in ``daskpml.yaml`` and only there: a key the file does not
    declare is a programming error (``KeyError``), never silently ``None``.
    """
    if not _declared(key):
        raise KeyError(f"daskpml.{key} is not a daskpml setting: declare it, with its default, in {_fn}.")
    return dask.config.get(f"daskpml.{key}")
