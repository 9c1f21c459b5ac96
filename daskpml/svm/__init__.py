"""Support vector machines trained in parallel: :class:`CascadeSVC`."""

from ._cascade import CascadeSVC

__all__ = ["CascadeSVC"]
