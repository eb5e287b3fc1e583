"""The Ray runner's scheduling without Ray: ordered commits, bounded in-flight work, lost workers' items rerun."""

from __future__ import annotations

import random

import pytest
from vlatwin.scale.scheduler import WorkerLost, run_ordered


class FakePool:
    """Slots that finish queued items in a random order; ``die`` = {index: times} kills the slot running it."""

    def __init__(self, seed=0, die=None, fail=None):
        self.rng = random.Random(seed)
        self.die = dict(die or {})
        self.fail = fail
        self.generation: dict[int, int] = {}
        self.handles: dict[int, tuple[int, int, int]] = {}  # handle -> (slot, generation, index)
        self.next = 0
        self.starts = 0
        self.max_in_flight = 0
        self.runs: list[int] = []

    def start(self, slot):
        self.generation[slot] = self.generation.get(slot, -1) + 1
        self.starts += 1

    def submit(self, slot, index):
        self.next += 1
        self.handles[self.next] = (slot, self.generation[slot], index)
        self.max_in_flight = max(self.max_in_flight, len(self.handles))
        return self.next

    def wait(self, handles, timeout):
        live = [h for h in handles if h in self.handles]
        return self.rng.sample(live, k=self.rng.randint(1, len(live)))

    def result(self, handle):
        slot, gen, index = self.handles.pop(handle)
        if gen != self.generation[slot]:
            raise WorkerLost("stale")
        if self.die.get(index):
            self.die[index] -= 1
            self.generation[slot] += 1  # the process is gone: every item queued on it is lost
            raise WorkerLost(f"slot {slot} died on {index}")
        if index == self.fail:
            raise ValueError(f"item {index} failed")
        self.runs.append(index)
        return index * 10


def _run(pool, todo, workers=2, **kw):
    seen, committed = [], []

    def on_result(index, value):
        assert value == index * 10
        seen.append(index)
        # never more than max_ahead positions past the oldest uncommitted item
        assert sorted(todo).index(index) - len(committed) < kw.get("max_ahead", 10**9)
        return f"digest-{index}"

    def on_commit(index, digest):
        assert digest == f"digest-{index}"
        committed.append(index)

    restarts = run_ordered(todo, pool, workers, on_result=on_result, on_commit=on_commit, poll_s=0, **kw)
    return seen, committed, restarts


@pytest.mark.parametrize("seed", range(5))
def test_commits_in_order_and_in_flight_is_bounded(seed):
    pool = FakePool(seed)
    todo = [0, 2, 3, 5, 7, 8, 9, 11, 12, 13]  # gaps: a resumed run
    seen, committed, restarts = _run(pool, todo, workers=3, per_worker=2, max_ahead=4)
    assert committed == todo and sorted(seen) == todo and restarts == 0
    assert pool.max_in_flight <= 3 * 2


def test_lost_worker_items_run_again_elsewhere():
    pool = FakePool(1, die={4: 1, 9: 1})
    todo = list(range(12))
    seen, committed, restarts = _run(pool, todo, workers=2, per_worker=2)
    assert committed == todo and sorted(seen) == todo  # every item exactly once in the output
    assert restarts == 2 and pool.starts == 2 + 2


def test_too_many_deaths_give_up():
    pool = FakePool(2, die={3: 10})
    with pytest.raises(WorkerLost, match="more than 2"):
        _run(pool, list(range(6)), max_restarts=2)


def test_item_error_propagates():
    pool = FakePool(3, fail=4)
    with pytest.raises(ValueError, match="item 4 failed"):
        _run(pool, list(range(8)))


def test_nothing_to_do_starts_nothing():
    pool = FakePool()
    assert _run(pool, []) == ([], [], 0) and pool.starts == 0


def test_fewer_items_than_workers():
    pool = FakePool(4)
    _, committed, _ = _run(pool, [5], workers=4)
    assert committed == [5] and pool.starts == 1


def test_iter_ordered_yields_in_order_and_holds_back_while_the_consumer_works():
    from vlatwin.scale.scheduler import iter_ordered

    pool = FakePool(5, die={6: 1})
    stats = {}
    seen = []
    for index, value in iter_ordered(range(15), pool, 2, per_worker=2, max_ahead=6, poll_s=0, stats=stats):
        # while the consumer holds an item, at most 2 x 2 items are queued on the workers
        live = [h for h, (slot, gen, _) in pool.handles.items() if gen == pool.generation[slot]]
        assert len(live) <= 4 and value == index * 10
        seen.append(index)
    assert seen == list(range(15)) and stats["restarts"] == 1
