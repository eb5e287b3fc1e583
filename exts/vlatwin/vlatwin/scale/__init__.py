"""Ray runners: ``generate``, ``record`` and ``eval`` work items sharded over Ray actors.

Same shards as the single-process path: every actor owns one :class:`vlatwin.loop.Worker` and runs items
from (index, seed) alone; the driver writes results with the plain path's writers and manifest, so a
Ray run writes the files a single-process run writes. ``ray`` is imported lazily
(``pip install 'vlatwin[ray]'``); :mod:`vlatwin.scale.scheduler` is engine-free.
"""

from vlatwin.scale.scheduler import WorkerLost, iter_ordered, run_ordered

__all__ = ["WorkerLost", "iter_ordered", "run_ordered"]
