"""Clocks: the host's monotonic clock, or a virtual one the twin runner advances (deterministic runs).

Everything on the host side of the link (send times, receive times, watchdog deadlines) reads one
:class:`Clock`; the emulated robot reads the same host clock and keeps its own robot clock with offset and
drift on top. With a :class:`VirtualClock` a whole twin run (robot physics, link delays, losses) is a
deterministic function of the seed and runs as fast as the CPU allows.
"""

from __future__ import annotations

import abc
import time


class Clock(abc.ABC):
    @abc.abstractmethod
    def now(self) -> float:
        """Host time [s] (monotonic; the origin is arbitrary)."""

    def sleep_until(self, t: float) -> None:  # noqa: B027 - virtual clocks do not sleep
        """Block until ``now() >= t`` (wall clocks) or do nothing (virtual clocks: the runner advances them)."""

    @property
    def is_virtual(self) -> bool:
        return False


class WallClock(Clock):
    """``time.monotonic()``."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class VirtualClock(Clock):
    """A clock that only moves when :meth:`advance` / :meth:`set` is called."""

    def __init__(self, start: float = 0.0):
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def advance(self, dt: float) -> float:
        if dt < 0:
            raise ValueError(f"virtual clock cannot go back ({dt} s)")
        self._t += float(dt)
        return self._t

    def set(self, t: float) -> None:
        if t < self._t:
            raise ValueError(f"virtual clock cannot go back from {self._t} to {t}")
        self._t = float(t)

    @property
    def is_virtual(self) -> bool:
        return True
