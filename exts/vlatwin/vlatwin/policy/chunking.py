"""Chunk execution: how a policy's action chunks become one action per control step.

Three ways, as the VLA evaluation protocols run them:

* **Open loop with replanning** (openpi's LIBERO client executes 5 of 10 actions, DROID 8): execute
  ``replan`` actions of each chunk (default: all of it), then ask the policy again.
* **Temporal ensembling** (ACT, ``ACTTemporalEnsembler``): ask every step; the action at step k is the
  weighted mean of every prediction made for step k so far, with weights ``w_i = exp(-m * i)`` where
  ``i = 0`` is the **oldest** prediction (ACT uses m = 0.01).
* **Real time**: the policy's latency is measured (or fixed with ``delay_s``) and the simulated clock is
  kept honest about it. An answer to the observation taken at step k arrives ``d = ceil(latency / dt)``
  control steps later; until then the robot keeps executing what it had (the rest of the previous chunk,
  or holds its last command when that is used up), and the first ``d`` actions of the new chunk, meant
  for times already past, are dropped (never its last one: a one-action policy's action applies late).
  The action applies when it would have arrived.

NaN/Inf actions never reach the controller: the executor counts them and holds the last command.
Each step's outcome is a :class:`StepDecision`; the loop executes its ``action`` (None: hold).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.policy.base import ActionChunk, as_chunk


@dataclass(frozen=True)
class ExecutionCfg:
    """How chunks are executed (see the module docstring)."""

    replan: int | None = None
    """Execute this many actions of each chunk, then ask again (None: the whole chunk). With a delay, the
    count runs from the step the chunk was asked for, so the policy is still asked every ``replan`` steps."""
    ensemble: float | None = None
    """ACT temporal-ensembling coefficient m >= 0 (None: off). Asks the policy every control step."""
    realtime: bool = False
    """Measure each call's wall-clock latency and delay its actions by it."""
    delay_s: float | None = None
    """A fixed policy latency [s] instead of the measured one (deterministic real-time runs)."""

    def __post_init__(self) -> None:
        if self.replan is not None and self.replan < 1:
            raise VlatwinError(f"--replan must be >= 1 action, got {self.replan}")
        if self.ensemble is not None and not (math.isfinite(self.ensemble) and self.ensemble >= 0):
            raise VlatwinError(f"--ensemble must be a finite coefficient >= 0, got {self.ensemble}")
        if self.delay_s is not None and not (math.isfinite(self.delay_s) and 0 <= self.delay_s <= 60):
            raise VlatwinError(f"--delay must be in [0, 60] s, got {self.delay_s}")
        if self.ensemble is not None and self.replan is not None:
            raise VlatwinError("--ensemble asks the policy every step; it cannot be combined with --replan")

    @property
    def delayed(self) -> bool:
        return self.realtime or self.delay_s is not None

    def to_dict(self) -> dict:
        return {"replan": self.replan, "ensemble": self.ensemble, "realtime": self.realtime, "delay_s": self.delay_s}


@dataclass
class StepDecision:
    """What to execute at one control step."""

    action: np.ndarray | None
    """(D,) or None to hold the last command."""
    queried: bool = False
    """The policy was asked at this step."""
    latency_ms: float | None = None
    """Wall-clock time of that call [ms]."""
    events: list[str] = field(default_factory=list)
    """Why an action was rejected or held."""


class ChunkExecutor:
    """Turns a policy's chunks into one action per control step (see :class:`ExecutionCfg`).

    Args:
        policy: anything with ``act(observation)`` returning an :class:`ActionChunk` or an array.
        cfg: execution settings.
        control_dt: control period [s] (turns latency into steps).
        action_dim: expected D (None: the first chunk's); a chunk of another width is an error.
    """

    def __init__(self, policy, cfg: ExecutionCfg | None = None, *, control_dt: float, action_dim: int | None = None):
        if not control_dt > 0:
            raise VlatwinError(f"control period must be > 0 s, got {control_dt}")
        self.policy = policy
        self.cfg = cfg or ExecutionCfg()
        self.control_dt = float(control_dt)
        self.action_dim = action_dim
        self.reset()

    def reset(self) -> None:
        self._step = 0
        self._queue: deque[np.ndarray] = deque()
        self._taken_from_chunk = 0
        self._pending: list[tuple[int, ActionChunk, int]] = []  # (arrival step, chunk, query step)
        self._predictions: list[tuple[int, np.ndarray]] = []  # ensembling: (query step, chunk actions)
        self.latencies_ms: list[float] = []
        self.rejected = 0
        self.queries = 0

    # ------------------------------------------------------------------ helpers
    def _query(self, observation) -> tuple[ActionChunk, float]:
        t0 = time.perf_counter()
        chunk = as_chunk(self.policy.act(observation))
        latency_ms = (time.perf_counter() - t0) * 1e3
        self.latencies_ms.append(latency_ms)
        self.queries += 1
        if self.action_dim is None:
            self.action_dim = chunk.dim
        elif chunk.dim != self.action_dim:
            name = getattr(getattr(self.policy, "info", None), "name", type(self.policy).__name__)
            raise VlatwinError(
                f"policy {name!r} returned actions of {chunk.dim} dims, the action space takes {self.action_dim}"
            )
        return chunk, latency_ms

    def _delay_steps(self, latency_ms: float) -> int:
        if not self.cfg.delayed:
            return 0
        latency_s = self.cfg.delay_s if self.cfg.delay_s is not None else latency_ms / 1e3
        # A hair of tolerance: a delay of exactly k periods lands on step k, not k + 1.
        return max(0, math.ceil(latency_s / self.control_dt - 1e-9))

    def _finite(self, action: np.ndarray | None, events: list[str]) -> np.ndarray | None:
        if action is None:
            return None
        if not np.all(np.isfinite(action)):
            self.rejected += 1
            bad = [i for i in range(action.size) if not np.isfinite(action[i])]
            events.append(f"rejected: non-finite action in dims {bad} (holding the last command)")
            return None
        return action

    # -------------------------------------------------------------------- step
    def next(self, observation) -> StepDecision:
        """The action for the current control step (call once per step, in order)."""
        if self.cfg.ensemble is not None:
            decision = self._next_ensembled(observation)
        else:
            decision = self._next_chunked(observation)
        decision.action = self._finite(decision.action, decision.events)
        self._step += 1
        return decision

    def _next_chunked(self, observation) -> StepDecision:
        k = self._step
        # Chunks whose answer has arrived by now replace what is queued (minus their stale head).
        arrived = [p for p in self._pending if p[0] <= k]
        if arrived:
            arrival, chunk, queried_at = arrived[-1]
            self._pending = [p for p in self._pending if p[0] > k]
            # Actions meant for steps already past are dropped, but never the last one: a one-action policy
            # (OpenVLA) applies its action late rather than not at all.
            stale = min(k - queried_at, chunk.horizon - 1)
            self._queue = deque(chunk.actions[stale:])
            # Replanning keeps its cadence from the query: the stale actions count as taken.
            self._taken_from_chunk = stale
        decision = StepDecision(action=None)
        limit = self.cfg.replan
        need = not self._queue or (limit is not None and self._taken_from_chunk >= limit)
        if need and not self._pending:
            chunk, latency_ms = self._query(observation)
            decision.queried, decision.latency_ms = True, latency_ms
            delay = self._delay_steps(latency_ms)
            if delay == 0:
                self._queue = deque(chunk.actions)
                self._taken_from_chunk = 0
            else:
                # Meanwhile the old chunk's rest (if any) keeps running, as on a real robot.
                self._pending.append((k + delay, chunk, k))
        if self._queue:
            decision.action = np.array(self._queue.popleft(), dtype=np.float64)
            self._taken_from_chunk += 1
        else:
            decision.events.append("hold: waiting for the policy's answer")
        return decision

    def _next_ensembled(self, observation) -> StepDecision:
        k = self._step
        chunk, latency_ms = self._query(observation)
        delay = self._delay_steps(latency_ms)
        # The prediction made at step k covers steps k .. k+H-1; with a delay, it is usable from k + delay.
        self._pending.append((k + delay, chunk, k))
        arrived = [p for p in self._pending if p[0] <= k]
        self._pending = [p for p in self._pending if p[0] > k]
        for _, c, queried_at in arrived:
            self._predictions.append((queried_at, c.actions))
        # Predictions covering step k, oldest first.
        covering = [(q, a[k - q]) for q, a in sorted(self._predictions, key=lambda p: p[0]) if 0 <= k - q < len(a)]
        self._predictions = [(q, a) for q, a in self._predictions if k - q < len(a) - 1]
        decision = StepDecision(action=None, queried=True, latency_ms=latency_ms)
        if not covering:
            decision.events.append("hold: waiting for the policy's answer")
            return decision
        finite = [(q, a) for q, a in covering if np.all(np.isfinite(a))]
        if len(finite) < len(covering):
            self.rejected += len(covering) - len(finite)
            decision.events.append(f"rejected: {len(covering) - len(finite)} non-finite prediction(s) left out of the ensemble")
        if not finite:
            return decision
        weights = np.exp(-self.cfg.ensemble * np.arange(len(finite)))
        stacked = np.stack([a for _, a in finite])
        decision.action = (weights[:, None] * stacked).sum(axis=0) / weights.sum()
        return decision
