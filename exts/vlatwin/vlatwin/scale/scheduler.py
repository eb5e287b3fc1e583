"""Engine-free scheduling of work items over a pool of remote workers (Ray actors in production, fakes in tests).

The driver keeps every worker busy with at most ``per_worker`` items queued on it, never runs more than
``max_ahead`` items past the oldest uncommitted one (so out-of-order results cannot pile up: that is the
writer side's backpressure), hands each result to ``on_result`` as it arrives and commits items in
index order through ``on_commit`` (the manifest stays in frame order, as in the single-process path).
A worker that dies (:class:`WorkerLost`) is restarted and the items it held are queued again: items are
independent functions of (index, seed), so a rerun gives the same bytes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from vlatwin.errors import VlatwinError


class WorkerLost(VlatwinError):
    """The worker process running an item is gone (killed, node lost); its items can run elsewhere."""


class Pool(Protocol):
    """What the scheduler needs from a pool of remote workers, one per slot."""

    def start(self, slot: int) -> None:
        """(Re)create the worker of ``slot`` (a dead one is replaced)."""

    def submit(self, slot: int, index: int) -> Any:
        """Queue item ``index`` on the worker of ``slot``; returns a handle."""

    def wait(self, handles: list, timeout: float) -> list:
        """The handles among ``handles`` that are ready (at least one unless ``timeout`` passed)."""

    def result(self, handle) -> Any:
        """The item's result; raises :class:`WorkerLost` when its worker died, or the item's own error."""


def run_ordered(
    todo: Sequence[int],
    pool: Pool,
    workers: int,
    *,
    on_result: Callable[[int, Any], Any],
    on_commit: Callable[[int, Any], None],
    **options,
) -> int:
    """Run every index in ``todo`` on ``workers`` pool slots; returns how many workers were restarted.

    ``on_result(index, result)`` runs on the calling thread as results arrive (any order) and returns a
    small value (e.g. file checksums); ``on_commit(index, value)`` then runs in ascending index order.
    ``options``: those of :func:`iter_ordered`.
    """
    stats: dict = {}
    for index, value in iter_ordered(todo, pool, workers, on_result=on_result, stats=stats, **options):
        on_commit(index, value)
    return stats.get("restarts", 0)


def iter_ordered(
    todo: Sequence[int],
    pool: Pool,
    workers: int,
    *,
    on_result: Callable[[int, Any], Any] | None = None,
    per_worker: int = 2,
    max_ahead: int | None = None,
    max_restarts: int = 3,
    poll_s: float = 0.5,
    started: bool = False,
    stats: dict | None = None,
) -> Iterator[tuple[int, Any]]:
    """``(index, value)`` for every index in ``todo``, in ascending order, run on ``workers`` pool slots.

    ``value`` is the item's result, or ``on_result(index, result)`` when given (called as results
    arrive, in any order). At most ``workers * per_worker`` items are in flight and none more than
    ``max_ahead`` positions (default: 4x that, at least 16) past the oldest one not yet yielded, so a
    straggler stalls the others only that far and the values waiting for it stay few; a slow consumer
    holds the workers back the same way (backpressure). More than ``max_restarts`` worker deaths raise
    :class:`WorkerLost`; ``stats["restarts"]`` counts them.
    """
    stats = {} if stats is None else stats
    stats["restarts"] = 0
    order = sorted(todo)
    if not order:
        return
    if workers <= 0 or per_worker <= 0:
        raise ValueError("workers and per_worker must be positive")
    workers = min(workers, len(order))
    ahead = max(1, max_ahead if max_ahead is not None else max(16, 4 * workers * per_worker))
    queue: list[int] = list(order)  # sorted: the lowest index runs first
    position = {index: i for i, index in enumerate(order)}
    pending: dict[Any, tuple[int, int]] = {}  # handle -> (slot, index)
    load = [0] * workers
    finished: dict[int, Any] = {}
    next_commit = 0
    if not started:
        for slot in range(workers):
            pool.start(slot)

    def fill() -> None:
        while queue and position[queue[0]] < next_commit + ahead:
            slot = min(range(workers), key=lambda s: (load[s], s))
            if load[slot] >= per_worker:
                return
            index = queue.pop(0)
            pending[pool.submit(slot, index)] = (slot, index)
            load[slot] += 1

    def lose(slot: int) -> None:
        stats["restarts"] += 1
        if stats["restarts"] > max_restarts:
            raise WorkerLost(f"workers died {stats['restarts']} times in this run (more than {max_restarts}); giving up")
        for handle, (s, index) in list(pending.items()):
            if s == slot:
                del pending[handle]
                bisect.insort(queue, index)
        load[slot] = 0
        pool.start(slot)

    while next_commit < len(order):
        fill()
        if not pending:  # cannot happen while items remain; a guard against a stuck loop
            raise RuntimeError("scheduler has nothing in flight but items remain")
        for handle in pool.wait(list(pending), poll_s):
            if handle not in pending:  # dropped with its dead worker earlier in this batch
                continue
            slot, index = pending[handle]
            try:
                value = pool.result(handle)
            except WorkerLost:
                lose(slot)
                continue
            del pending[handle]
            load[slot] -= 1
            finished[index] = value if on_result is None else on_result(index, value)
            while next_commit < len(order) and order[next_commit] in finished:
                index = order[next_commit]
                next_commit += 1
                yield index, finished.pop(index)
