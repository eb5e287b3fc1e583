"""Online divergence between the physical robot and its twin, with alarms.

With ``e(t) = q_phys(t) - q_twin(t)`` [rad] (joint space, both on offset-corrected host time),

    J = integral of ||e(t)||^2 dt           [rad^2 s]

accumulated by trapezoids between consecutive samples (exact for piecewise-constant ``||e||^2`` and for
``||e||^2`` linear between samples). The alarm looks at the recent past only: the windowed RMS

    rms = sqrt( integral over the last window_s of ||e||^2 dt / covered time )     [rad]

raises an alarm when it rises above ``alarm_rms`` and clears it when it falls below ``0.5 * alarm_rms``
(the hysteresis keeps a borderline error from toggling the alarm every sample).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from vlatwin.errors import VlatwinError

__all__ = ["DivergenceMonitor"]


class DivergenceMonitor:
    """Accumulates J and watches the windowed RMS joint error.

    Args:
        alarm_rms: Windowed RMS of ``||q_phys - q_twin||`` [rad] above which the alarm is raised (``math.inf``:
            never, e.g. when only J is wanted).
        window_s: Length of the RMS window [s].
        joint_names: Names for :attr:`J_per_joint` and the messages (default: joint indices).
    """

    def __init__(self, *, alarm_rms: float, window_s: float = 0.5, joint_names: Sequence[str] | None = None):
        if math.isnan(alarm_rms) or alarm_rms <= 0:
            raise VlatwinError(
                f"DivergenceMonitor: alarm_rms must be a positive angle [rad] (inf: no alarms), got {alarm_rms}"
            )
        if not math.isfinite(window_s) or window_s <= 0:
            raise VlatwinError(f"DivergenceMonitor: window_s must be a positive number of seconds, got {window_s}")
        self.alarm_rms = float(alarm_rms)
        self.window_s = float(window_s)
        self.joint_names = None if joint_names is None else tuple(str(name) for name in joint_names)
        self._n = None if self.joint_names is None else len(self.joint_names)
        self.reset()

    def reset(self) -> None:
        """Start over: J = 0, no window, alarm cleared."""
        self._J = None if self._n is None else np.zeros(self._n)
        self._max_abs = None if self._n is None else np.zeros(self._n)
        self._t_prev: float | None = None
        self._e2_prev: np.ndarray | None = None  # per-joint squared error at the previous sample
        # (t_start [s], t_end [s], integral of ||e||^2 over the segment [rad^2 s]) within the window
        self._segments: deque[tuple[float, float, float]] = deque()
        self._win_sum = 0.0
        self._alarm = False
        self.ignored = 0
        """Samples ignored because their time was not after the previous one."""
        self.t_start: float | None = None
        """Host time of the first sample [s]."""

    def add(self, t: float, q_phys, q_twin) -> list[str]:
        """Add the physical and twin joint positions [rad] (n,) at host time ``t`` [s].

        Returns:
            Messages for alarm transitions at this sample (usually empty).
        """
        t = float(t)
        if not math.isfinite(t):
            raise VlatwinError(f"DivergenceMonitor: t must be a finite host time [s], got {t}")
        q_phys, q_twin = np.asarray(q_phys, dtype=np.float64), np.asarray(q_twin, dtype=np.float64)
        if q_phys.ndim != 1 or q_phys.shape != q_twin.shape or (self._n is not None and q_phys.shape != (self._n,)):
            want = "(n,)" if self._n is None else f"({self._n},)"
            raise VlatwinError(
                f"DivergenceMonitor: q_phys and q_twin must both have shape {want}, got {q_phys.shape} and {q_twin.shape}"
            )
        e = q_phys - q_twin
        if not np.isfinite(e).all():
            raise VlatwinError(
                f"DivergenceMonitor: NaN/Inf joint position at t={t:.6f} s (joints {np.flatnonzero(~np.isfinite(e)).tolist()})"
            )
        if self._t_prev is not None and t <= self._t_prev:
            # A late packet: integrating it would need re-ordering history; its information is already
            # covered by the newer samples around it.
            self.ignored += 1
            return []
        if self._n is None:
            self._n = e.shape[0]
            self._J, self._max_abs = np.zeros(self._n), np.zeros(self._n)
        e2 = e * e
        np.maximum(self._max_abs, np.abs(e), out=self._max_abs)
        if self._t_prev is None:
            self.t_start = t
            self._inst_rms = float(math.sqrt(e2.sum()))
        else:
            dt = t - self._t_prev
            seg = 0.5 * (self._e2_prev + e2) * dt
            self._J += seg
            self._segments.append((self._t_prev, t, float(seg.sum())))
            self._win_sum += float(seg.sum())
            while self._segments and self._segments[0][1] <= t - self.window_s:
                self._win_sum -= self._segments.popleft()[2]
        self._t_prev, self._e2_prev = t, e2
        return self._check(t, e)

    def _check(self, t: float, e: np.ndarray) -> list[str]:
        rms = self.rms
        worst = int(np.argmax(np.abs(e)))
        name = self._name(worst)
        if not self._alarm and rms > self.alarm_rms:
            self._alarm = True
            msg = (
                f"divergence alarm at t={t:.3f} s: windowed RMS joint error {rms:.4g} rad > {self.alarm_rms:.4g} rad "
                f"(worst joint {name}: {e[worst]:+.4g} rad)"
            )
            return [msg]
        if self._alarm and rms < 0.5 * self.alarm_rms:
            self._alarm = False
            return [
                f"divergence recovered at t={t:.3f} s: windowed RMS joint error {rms:.4g} rad < {0.5 * self.alarm_rms:.4g} rad"
            ]
        return []

    def _name(self, i: int) -> str | int:
        return self.joint_names[i] if self.joint_names is not None else i

    """Properties."""

    @property
    def J(self) -> float:
        """Integral of ||q_phys - q_twin||^2 over host time [rad^2 s] since the first sample."""
        return 0.0 if self._J is None else float(self._J.sum())

    @property
    def J_per_joint(self) -> dict[str | int, float]:
        """J split by joint [rad^2 s], keyed by joint name (or index when no names were given)."""
        if self._J is None:
            return {}
        return {self._name(i): float(v) for i, v in enumerate(self._J)}

    @property
    def rms(self) -> float:
        """RMS of ||q_phys - q_twin|| [rad] over the last ``window_s`` (the first sample's value while only one
        sample has arrived; 0 before any)."""
        if self._t_prev is None:
            return 0.0
        if not self._segments:
            return self._inst_rms
        lo = self._t_prev - self.window_s
        t0, t1, integral = self._segments[0]
        total = self._win_sum
        covered = self._t_prev - max(t0, lo)
        if t0 < lo:
            # Only part of the oldest segment lies inside the window; count that part pro rata.
            total -= integral * (lo - t0) / (t1 - t0)
        return math.sqrt(max(total, 0.0) / covered) if covered > 0 else self._inst_rms

    @property
    def alarm(self) -> bool:
        """True while the alarm is raised."""
        return self._alarm

    @property
    def max_abs(self) -> np.ndarray:
        """Largest |q_phys - q_twin| per joint seen so far [rad], (n,)."""
        return np.zeros(0) if self._max_abs is None else self._max_abs.copy()

    @property
    def duration(self) -> float:
        """Host time covered by the samples so far [s]."""
        return 0.0 if self._t_prev is None else self._t_prev - self.t_start
