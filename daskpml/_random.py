"""``random_state`` resolution and per-block random streams: the one place for both.

Every algorithm takes ``random_state`` (``None``, an int or a NumPy Generator/RandomState, as
scikit-learn does) and turns it into one integer seed with :func:`resolve_seed`; work split over
blocks draws block ``i`` from its own stream ``block_rng(seed, kind, i)``, so the same seed gives
the same result on any scheduler and any number of workers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MAX_SEED", "PAIRS", "PARAMS", "ROWS", "block_rng", "resolve_seed"]

MAX_SEED = 2**63 - 1

#: Stream kinds of :func:`block_rng`: parameters drawn on the client, row block ``a``, block pair ``a, b``.
PARAMS, ROWS, PAIRS = 1, 2, 3


def resolve_seed(random_state: Any) -> int:
    """An integer seed from ``None`` (fresh entropy), an int, or a NumPy Generator/RandomState.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        ``None`` draws fresh entropy; an int (at least 0) is used as it is; a generator is
        advanced by one draw.

    Returns
    -------
    int
        A seed in ``[0, 2**63)``.

    Examples
    --------
    >>> resolve_seed(7)
    7
    >>> resolve_seed(np.random.default_rng(0)) == resolve_seed(np.random.default_rng(0))
    True
    """
    if random_state is None:
        return int(np.random.SeedSequence().entropy % MAX_SEED)
    if isinstance(random_state, (int, np.integer)):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}.")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(MAX_SEED))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    raise TypeError(f"random_state must be None, an int or a NumPy Generator, got {type(random_state).__name__}.")


def block_rng(seed: int, kind: int, a: int = 0, b: int = 0) -> np.random.Generator:
    """The random stream ``[seed, kind, a, b]``.

    ``kind`` is :data:`PARAMS` (drawn on the client), :data:`ROWS` (row block ``a``) or
    :data:`PAIRS` (block pair ``a, b``). A fixed key length keeps streams distinct (SeedSequence
    pads short keys with zeros).

    Examples
    --------
    >>> float(block_rng(1, ROWS, 3).random()) == float(block_rng(1, ROWS, 3).random())
    True
    """
    return np.random.default_rng([seed, kind, a, b])
