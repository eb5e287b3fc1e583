"""Delay compensation: carry a late measurement forward to now with the twin's own motion.

A robot state measured at host time ``t_meas`` (robot time mapped by :class:`~vlatwin.twin.clock.ClockSync`)
reaches the host at ``t_now > t_meas``. Between the two the robot kept moving, roughly as the twin did, so

    q(t_now)  ~ q_meas  + (q_twin(t_now)  - q_twin(t_meas))
    qd(t_now) ~ qd_meas + (qd_twin(t_now) - qd_twin(t_meas))

Only the twin's *change* over the latency is used, so a twin that is offset from the robot still
compensates well; the error is the twin's error in that change, small for latencies of a few control
periods. :class:`DelayCompensator` keeps the last ``horizon_s`` of the twin trajectory and interpolates it
linearly. Two fallbacks, reported in :attr:`DelayCompensator.last_mode`:

- ``t_now`` after the newest recorded twin state: the twin is extrapolated from it at its last velocity.
- ``t_meas`` not covered by the history (before its start, or no history): constant velocity,
  ``q = q_meas + qd_meas * (t_now - t_meas)``, ``qd = qd_meas``.

A measurement stamped later than ``t_now`` (clock-sync error) is returned unchanged (latency clipped at 0).
"""

from __future__ import annotations

import math

import numpy as np

from vlatwin.errors import VlatwinError

__all__ = ["DelayCompensator"]


def _vec(name: str, value, n: int | None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or (n is not None and arr.shape != (n,)):
        want = f"({n},)" if n is not None else "(n,)"
        raise VlatwinError(f"DelayCompensator: {name} must have shape {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise VlatwinError(
            f"DelayCompensator: {name} has NaN/Inf at joints {np.flatnonzero(~np.isfinite(arr)).tolist()}"
        )
    return arr


def _time(name: str, t) -> float:
    t = float(t)
    if not math.isfinite(t):
        raise VlatwinError(f"DelayCompensator: {name} must be a finite host time [s], got {t}")
    return t


class DelayCompensator:
    """Predicts delayed measurements forward to now using the twin's recorded trajectory.

    Args:
        horizon_s: How much twin history to keep [s]; must exceed the largest latency to compensate.
    """

    def __init__(self, horizon_s: float = 2.0):
        if not math.isfinite(horizon_s) or horizon_s <= 0:
            raise VlatwinError(f"DelayCompensator: horizon_s must be a positive number of seconds, got {horizon_s}")
        self.horizon_s = float(horizon_s)
        self.last_mode: str | None = None
        """How the last :meth:`forward` predicted: ``"twin"``, ``"constant_velocity"`` or ``"none"`` (zero latency)."""
        self.clear()

    def clear(self) -> None:
        """Drop the history (after a re-synchronization that made the twin jump)."""
        self._n: int | None = None
        self._t = np.empty(0)
        self._q = np.empty((0, 0))
        self._qd = np.empty((0, 0))
        self._start = 0
        self._end = 0

    def record(self, t_host: float, q, qd) -> None:
        """Append the twin state ``q`` [rad], ``qd`` [rad/s] (n,) at host time ``t_host`` [s].

        A time equal to the newest one replaces that entry; an older time is ignored (the history must
        stay sorted for interpolation).
        """
        t = _time("t_host", t_host)
        q = _vec("q", q, self._n)
        qd = _vec("qd", qd, q.shape[0])
        if self._n is None:
            self._n = q.shape[0]
            cap = 256
            self._t, self._q, self._qd = np.empty(cap), np.empty((cap, self._n)), np.empty((cap, self._n))
        if self._end > self._start:
            last = self._t[self._end - 1]
            if t < last:
                return
            if t == last:
                self._q[self._end - 1], self._qd[self._end - 1] = q, qd
                return
        if self._end == len(self._t):
            self._compact(t)
        self._t[self._end], self._q[self._end], self._qd[self._end] = t, q, qd
        self._end += 1

    def _compact(self, t_new: float) -> None:
        # Drop entries that t_new pushes out of the horizon, but keep one just before the cutoff so the
        # whole horizon stays interpolable; grow the buffer if it is still full.
        times = self._t[self._start : self._end]
        first = max(int(np.searchsorted(times, t_new - self.horizon_s, side="right")) - 1, 0)
        lo, hi = self._start + first, self._end
        count = hi - lo
        cap = len(self._t)
        if count >= cap // 2:
            cap *= 2
        t, q, qd = np.empty(cap), np.empty((cap, self._n)), np.empty((cap, self._n))
        t[:count], q[:count], qd[:count] = self._t[lo:hi], self._q[lo:hi], self._qd[lo:hi]
        self._t, self._q, self._qd = t, q, qd
        self._start, self._end = 0, count

    def twin_at(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Recorded twin state ``(q, qd)`` [rad], [rad/s] at host time ``t`` [s]: linearly interpolated inside
        the history, extrapolated at the last velocity after it, None before it (or with no history)."""
        t = _time("t", t)
        times = self._t[self._start : self._end]
        if len(times) == 0 or t < times[0]:
            return None
        last = self._end - 1
        if t >= times[-1]:
            return self._q[last] + self._qd[last] * (t - times[-1]), self._qd[last]
        i = int(np.searchsorted(times, t, side="right"))  # times[i-1] <= t < times[i]
        a, b = self._start + i - 1, self._start + i
        w = (t - self._t[a]) / (self._t[b] - self._t[a])
        return (1 - w) * self._q[a] + w * self._q[b], (1 - w) * self._qd[a] + w * self._qd[b]

    @staticmethod
    def latency(t_meas: float, t_now: float) -> float:
        """Age of a measurement [s]: ``t_now - t_meas`` on host time, clipped at 0."""
        return max(0.0, float(t_now) - float(t_meas))

    def forward(self, t_meas: float, q_meas, qd_meas, t_now: float) -> tuple[np.ndarray, np.ndarray]:
        """Predict the state measured at host time ``t_meas`` [s] forward to host time ``t_now`` [s].

        Args:
            q_meas: Measured positions [rad], (n,).
            qd_meas: Measured velocities [rad/s], (n,).

        Returns:
            ``(q, qd)`` at ``t_now`` [rad], [rad/s], (n,) each (new arrays).
        """
        t_meas, t_now = _time("t_meas", t_meas), _time("t_now", t_now)
        q_meas = _vec("q_meas", q_meas, self._n)
        qd_meas = _vec("qd_meas", qd_meas, q_meas.shape[0])
        lag = self.latency(t_meas, t_now)
        if lag == 0.0:
            self.last_mode = "none"
            return q_meas.copy(), qd_meas.copy()
        then = self.twin_at(t_meas)
        if then is None:
            self.last_mode = "constant_velocity"
            return q_meas + qd_meas * lag, qd_meas.copy()
        now = self.twin_at(t_now)
        self.last_mode = "twin"
        return q_meas + (now[0] - then[0]), qd_meas + (now[1] - then[1])

    """Properties."""

    @property
    def span(self) -> tuple[float, float] | None:
        """Host-time range [s] of the recorded history (None when empty)."""
        if self._end == self._start:
            return None
        return float(self._t[self._start]), float(self._t[self._end - 1])

    def __len__(self) -> int:
        return self._end - self._start
