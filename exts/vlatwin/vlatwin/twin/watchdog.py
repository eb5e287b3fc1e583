"""Watchdogs in both directions: no robot state on the host, no fresh command on the robot.

- Host side, :class:`StateWatchdog`: fed with every fresh robot state; when it expires the runner
  latches an e-stop (LeKiwi: 500 ms, Polymetis: 1 s; the default here is :func:`default_timeout`).
- Robot side, :class:`CommandExpiry`: what the robot does when commands stop arriving (libfranka
  extrapolates and stops after 20 lost packets, Deoxys terminates after 20 policy periods). Here: keep
  the last target while it is fresh, hold it for ``hold_s`` after it expires, then decelerate from the
  current velocity to rest along the current direction, then stay stopped.

Times are seconds on one monotonic clock (the caller's); joint vectors in [rad | m].
"""

from __future__ import annotations

import numpy as np

from vlatwin.errors import VlatwinError

__all__ = ["EXPIRY_MODES", "CommandExpiry", "StateWatchdog", "default_timeout"]

EXPIRY_MODES = ("running", "holding", "decelerating", "stopped")
"""The modes :meth:`CommandExpiry.target` returns, in the order they follow each other."""


def _positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise VlatwinError(f"watchdog: {name} must be a number of seconds, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise VlatwinError(f"watchdog: {name} must be > 0 and finite [s], got {value}")
    return v


def default_timeout(control_dt: float) -> float:
    """The state watchdog threshold for a control period: max(3 periods, 100 ms) [s]."""
    return max(3.0 * _positive("control_dt", control_dt), 0.1)


class StateWatchdog:
    """Expires when no fresh robot state arrived for ``timeout_s``.

    A watchdog that was never fed (and got no ``start_time``) is expired: no state at all is the worst case.
    """

    def __init__(self, timeout_s: float, *, start_time: float | None = None) -> None:
        self.timeout_s = _positive("timeout_s", timeout_s)
        """Largest allowed state age [s]."""
        self._last: float | None = None
        if start_time is not None:
            self.feed(start_time)

    @property
    def last_time(self) -> float | None:
        """Time of the newest state fed [s] (None before the first)."""
        return self._last

    def feed(self, t: float) -> None:
        """A fresh robot state arrived at host time ``t`` [s] (an older time than the newest is ignored)."""
        t = float(t)
        if not np.isfinite(t):
            raise ValueError(f"watchdog: feed time must be finite, got {t}")
        if self._last is None or t > self._last:
            self._last = t

    def age(self, now: float) -> float:
        """Seconds since the newest state (inf before the first)."""
        return float("inf") if self._last is None else float(now) - self._last

    def expired(self, now: float) -> bool:
        """True when the newest state is older than ``timeout_s``."""
        return self.age(now) > self.timeout_s


class CommandExpiry:
    """Robot-side behaviour when commands stop arriving: running -> holding -> decelerating -> stopped.

    :meth:`target` is called on every robot servo step with the newest command. While the command is
    fresh (``now <= last_receive_time + ttl``) its target is returned (``running``). After it expires the
    target is held for ``hold_s`` (``holding``); then the robot decelerates from the velocity it has at
    that moment: all joints slow down together (the path is kept) at no more than ``max_decel`` each, the
    target being ``q + v * dt`` with ``v`` ramping to zero (``decelerating``). Once ``v`` is zero the
    target is the position at that moment, latched so gravity cannot walk it down (``stopped``). A fresh
    command returns to ``running``.

    The commanded velocity magnitude never increases after expiry. The only state is the deceleration
    start (its time, velocity, the servo step) and the stop position, so the same call sequence always
    gives the same targets; :meth:`reset` clears it.
    """

    def __init__(self, hold_s: float = 0.0, max_decel: float | np.ndarray = 2.0) -> None:
        try:
            hold = float(hold_s)
        except (TypeError, ValueError):
            raise VlatwinError(f"command expiry: hold_s must be a number of seconds, got {hold_s!r}") from None
        if not np.isfinite(hold) or hold < 0:
            raise VlatwinError(f"command expiry: hold_s must be >= 0 and finite [s], got {hold_s}")
        try:
            decel = np.array(max_decel, dtype=np.float64)
        except (TypeError, ValueError):
            raise VlatwinError(
                f"command expiry: max_decel must be a number or per-joint numbers, got {max_decel!r}"
            ) from None
        if decel.ndim > 1 or decel.size == 0 or not np.isfinite(decel).all() or (decel <= 0).any():
            raise VlatwinError(f"command expiry: max_decel must be > 0 and finite [rad/s^2], got {max_decel}")
        decel.flags.writeable = False
        self.hold_s = hold
        """How long an expired target is still held before decelerating [s]."""
        self.max_decel = decel
        """Largest deceleration per joint [rad/s^2 | m/s^2] (scalar or (n,))."""
        self.reset()

    def reset(self) -> None:
        """Forget the deceleration and stop state."""
        self._decel_start: float | None = None
        self._v0: np.ndarray | None = None
        self._stop_time = 0.0
        self._stop_q: np.ndarray | None = None
        self._prev_now: float | None = None
        self.velocity: np.ndarray | None = None
        """The velocity commanded by the last decelerating call [rad/s] (zero once stopped, None while running)."""

    def deadline(self, last_receive_time: float, ttl: float | None) -> float:
        """When the command expires [s] (inf without a ttl; a NaN or negative ttl expires at once)."""
        if ttl is None:
            return float("inf")
        ttl = float(ttl)
        if np.isnan(ttl) or ttl < 0:
            return -float("inf")
        return float(last_receive_time) + ttl

    def target(
        self,
        now: float,
        last_target,
        last_receive_time: float | None,
        ttl: float | None,
        q,
        qd,
        *,
        dt: float | None = None,
    ) -> tuple[np.ndarray, str]:
        """The target to servo to now, and the mode.

        Args:
            now: Robot-side time [s].
            last_target: Newest command target (n,) [rad | m]; None when none arrived yet (decelerate, then stop).
            last_receive_time: When that command arrived [s].
            ttl: How long it stays fresh [s]; None: it never expires.
            q: The robot's *desired* joint positions (n,) [rad | m] (libfranka's q_d: the last target the
                servo commanded), not the measured ones: a target that follows the measured arm holds nothing
                against gravity, the arm sags and the simulation can blow up.
            qd: Measured joint velocities (n,) [rad/s | m/s] (non-finite values count as 0).
            dt: Look-ahead of ``q + v * dt`` [s]; default: the time since the previous call.
        """
        now = float(now)
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if not np.isfinite(q).all():
            raise ValueError("command expiry: measured q is not finite")
        step = (
            (now - self._prev_now) if dt is None and self._prev_now is not None else (0.0 if dt is None else float(dt))
        )
        self._prev_now = now
        step = max(step, 0.0)
        fresh = (
            last_target is not None and last_receive_time is not None and now <= self.deadline(last_receive_time, ttl)
        )
        if fresh:
            self._decel_start, self._v0, self._stop_q, self.velocity = None, None, None, None
            return np.array(last_target, dtype=np.float64).reshape(-1), "running"
        if self._stop_q is not None:
            return self._stop_q.copy(), "stopped"
        if last_target is not None and last_receive_time is not None:
            held_until = self.deadline(last_receive_time, ttl) + self.hold_s
            if self._decel_start is None and now <= held_until:
                return np.array(last_target, dtype=np.float64).reshape(-1), "holding"
        if self._decel_start is None:
            v0 = np.nan_to_num(np.asarray(qd, dtype=np.float64).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
            if v0.shape != q.shape:
                raise ValueError(f"command expiry: qd has shape {v0.shape}, q has {q.shape}")
            # One stop time for all joints keeps the direction of motion (a path-preserving stop).
            stop_time = float(np.max(np.abs(v0) / np.broadcast_to(self.max_decel, v0.shape), initial=0.0))
            self._decel_start, self._v0, self._stop_time = now, v0, stop_time
        elapsed = now - self._decel_start
        if elapsed >= self._stop_time:
            self.velocity = np.zeros_like(q)
            self._stop_q = q.copy()
            return q.copy(), "stopped"
        v = self._v0 * (1.0 - elapsed / self._stop_time)
        self.velocity = v
        return q + v * step, "decelerating"
