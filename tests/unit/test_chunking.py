"""Chunk execution: replanning, ACT temporal ensembling, real-time delays, non-finite rejection (no engine)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vlatwin.errors import VlatwinError
from vlatwin.policy.base import ActionChunk
from vlatwin.policy.chunking import ChunkExecutor, ExecutionCfg

pytestmark = pytest.mark.unit


class Obs:
    def __init__(self, step):
        self.step = step


class Counting:
    """Chunk of H actions; action j of the chunk asked at step k is [k, j] (so tests can read provenance)."""

    def __init__(self, horizon=4, sleep=0.0, bad_at=()):
        self.horizon, self.sleep, self.bad_at = horizon, sleep, set(bad_at)
        self.calls = []

    def act(self, obs):
        self.calls.append(obs.step)
        if self.sleep:
            time.sleep(self.sleep)
        actions = np.array([[obs.step, j] for j in range(self.horizon)], dtype=float)
        if obs.step in self.bad_at:
            actions[:, 1] = np.nan
        return ActionChunk(actions)


def run(executor, steps):
    out = []
    for k in range(steps):
        d = executor.next(Obs(k))
        out.append(None if d.action is None else tuple(d.action))
    return out


def test_whole_chunk_then_replan():
    policy = Counting(horizon=3)
    ex = ChunkExecutor(policy, ExecutionCfg(), control_dt=0.05)
    assert run(ex, 7) == [(0, 0), (0, 1), (0, 2), (3, 0), (3, 1), (3, 2), (6, 0)]
    assert policy.calls == [0, 3, 6]


def test_replan_interval_executes_first_actions_only():
    policy = Counting(horizon=10)
    ex = ChunkExecutor(policy, ExecutionCfg(replan=2), control_dt=0.05)
    assert run(ex, 5) == [(0, 0), (0, 1), (2, 0), (2, 1), (4, 0)]


def test_temporal_ensembling_weights_oldest_first():
    m = 0.5
    policy = Counting(horizon=3)
    ex = ChunkExecutor(policy, ExecutionCfg(ensemble=m), control_dt=0.05)
    got = run(ex, 4)
    # Step 2 is covered by the chunks asked at steps 0 (its action 2), 1 (action 1) and 2 (action 0).
    preds = np.array([[0, 2], [1, 1], [2, 0]], dtype=float)
    w = np.exp(-m * np.arange(3))
    np.testing.assert_allclose(got[2], (w[:, None] * preds).sum(0) / w.sum())
    # Step 3: the chunk from step 0 no longer covers it (horizon 3); oldest is now step 1's.
    preds = np.array([[1, 2], [2, 1], [3, 0]], dtype=float)
    np.testing.assert_allclose(got[3], (w[:, None] * preds).sum(0) / w.sum())
    assert policy.calls == [0, 1, 2, 3]


def test_fixed_delay_holds_then_drops_stale_actions():
    policy = Counting(horizon=6)
    ex = ChunkExecutor(policy, ExecutionCfg(delay_s=0.1), control_dt=0.05)  # 2 control steps late
    got = run(ex, 6)
    # Nothing to run while the first answer travels; it arrives at step 2 with its first 2 actions stale.
    assert got[:2] == [None, None]
    assert got[2:6] == [(0, 2), (0, 3), (0, 4), (0, 5)]


def test_delay_keeps_running_the_old_chunk_while_the_next_travels():
    policy = Counting(horizon=4)
    ex = ChunkExecutor(policy, ExecutionCfg(delay_s=0.05, replan=2), control_dt=0.05)  # 1 step late
    got = run(ex, 6)
    assert got[0] is None
    assert got[1] == (0, 1)  # chunk 0 arrives, its action 0 is stale
    assert got[2] == (0, 2)  # replan asked at step 2 (2 taken); chunk 0 continues meanwhile
    assert got[3] == (2, 1)  # chunk 2 arrives one step late, action 1 is the one for step 3


def test_delay_applies_a_single_action_late_instead_of_dropping_it():
    policy = Counting(horizon=1)
    ex = ChunkExecutor(policy, ExecutionCfg(delay_s=0.1), control_dt=0.05)  # 2 steps late
    got = run(ex, 7)
    # A blocking one-action policy: ask, wait 2 steps, apply, ask again (one action per 3 steps).
    assert got == [None, None, (0, 0), None, None, (3, 0), None]
    assert policy.calls == [0, 3, 6]


def test_realtime_measures_latency():
    policy = Counting(horizon=8, sleep=0.12)
    ex = ChunkExecutor(policy, ExecutionCfg(realtime=True), control_dt=0.05)
    got = run(ex, 5)
    # >= 0.12 s of latency is 3+ periods of 0.05 s: the first three steps hold.
    assert got[:3] == [None, None, None]
    assert got[3] is not None and got[3][0] == 0 and got[3][1] >= 3
    assert ex.latencies_ms[0] >= 120


def test_non_finite_actions_are_rejected_and_counted():
    policy = Counting(horizon=2, bad_at={2})
    ex = ChunkExecutor(policy, ExecutionCfg(), control_dt=0.05)
    decisions = [ex.next(Obs(k)) for k in range(6)]
    assert [d.action is None for d in decisions] == [False, False, True, True, False, False]
    assert ex.rejected == 2
    assert "non-finite" in decisions[2].events[0]


def test_wrong_width_is_one_clear_error():
    policy = Counting(horizon=2)
    ex = ChunkExecutor(policy, ExecutionCfg(), control_dt=0.05, action_dim=7)
    with pytest.raises(VlatwinError, match="2 dims, the action space takes 7"):
        ex.next(Obs(0))


@pytest.mark.parametrize("kwargs", [{"replan": 0}, {"ensemble": -1.0}, {"delay_s": float("nan")}, {"ensemble": 0.1, "replan": 2}])
def test_bad_settings(kwargs):
    with pytest.raises(VlatwinError):
        ExecutionCfg(**kwargs)
