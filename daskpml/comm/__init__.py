"""Worker-to-worker collectives: SPMD groups on a Distributed cluster.

:func:`spmd` runs one long-lived task per worker that holds the data; each gets a
:class:`Communicator` (``rank``, ``size``, ``allreduce``, ``broadcast``, ``reduce``,
``allgather``, ``gather``, ``send``/``recv``, ``barrier``) whose messages go worker to worker over
persistent connections, never through the scheduler or the client. A lost rank ends the group
with :class:`CommError` on every rank and on the caller's side.

This is a core layer: it knows no algorithm. The solvers that run their iterations on the
ranks use it (``daskpml.optim``).
"""

from ._communicator import Communicator
from ._spmd import CommPlugin, SpmdGroup, calibrate, spmd, transport_for
from ._transport import CommError

__all__ = ["spmd", "Communicator", "CommError", "SpmdGroup", "CommPlugin", "calibrate", "transport_for"]
