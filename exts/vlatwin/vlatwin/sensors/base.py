"""The sensor seam: a sensor samples the simulation's current state and never advances physics.

A capture may need samples at several simulated times (a spinning LIDAR's column blocks, the
sub-frames of a motion-blurred exposure). The sensor says when, as physics-step offsets from the
capture start (:meth:`Sensor.schedule`); the loop (:mod:`vlatwin.loop`) steps physics to each of those
times and calls :meth:`Sensor.sample`. One clock owns time; sensors only look.

Lifecycle of one capture: ``begin(context)`` -> ``sample(k)`` for each scheduled offset, in order ->
``finish()`` returns the data. ``begin`` runs right before the first sample and ``finish`` right after
the last one, so sensors that draw random numbers consume them in a fixed order.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, kw_only=True)
class CaptureContext:
    """What a sensor knows about the capture it is asked for."""

    index: int
    """Capture index (dataset frame or control step), e.g. for per-scan patterns."""
    rng: np.random.Generator | None
    """Noise source shared by the sensors of this capture (None: ideal sensors)."""
    start_time: float
    """Simulated time at the start of the capture [s]."""
    start_step: int
    """Physics step count at the start of the capture."""


class Sensor(abc.ABC):
    """A camera, LIDAR or any other sensor on a loaded :class:`~vlatwin.sim.base.SimBackend`."""

    name: str
    """Unique within a scene (the config / prim name)."""
    kind: str = "sensor"
    """``camera`` | ``lidar`` | ..."""
    rate_hz: float | None = None
    """Capture rate in the control loop (None: every control step)."""

    def schedule(self, physics_dt: float, index: int = 0) -> Sequence[int]:
        """Physics-step offsets (non-decreasing, from the capture start) at which :meth:`sample` runs.

        Depends on configuration and the capture ``index`` only (it is asked before :meth:`begin`).
        """
        return (0,)

    def duration_steps(self, physics_dt: float, index: int = 0) -> int:
        """Physics steps a capture spans (a LIDAR scan: its scan time); at least the last sample offset."""
        return int(self.schedule(physics_dt, index)[-1])

    @abc.abstractmethod
    def begin(self, context: CaptureContext) -> None:
        """Start a capture (choose poses, draw per-capture noise)."""

    @abc.abstractmethod
    def sample(self, k: int) -> None:
        """Take the ``k``-th scheduled sample from the current simulation state (never steps physics)."""

    @abc.abstractmethod
    def finish(self) -> Any:
        """End the capture and return its data (a camera's annotator outputs, a LIDAR's points)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine resources."""
