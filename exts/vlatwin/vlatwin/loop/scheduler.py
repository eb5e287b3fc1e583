"""One clock for physics and sensors: run sensor captures by stepping physics to each sample time.

Time is counted in whole physics steps, so schedules never drift with float rounding and a run with
the same seed steps exactly the same way every time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vlatwin.sensors.base import CaptureContext, Sensor


class CaptureRun:
    """The in-flight captures of some sensors, started at one physics step.

    The owner steps physics (``sim.advance``) up to :meth:`next_step` and calls :meth:`process` there;
    samples at the same step run in sensor order. A sensor begins right before its first sample and
    finishes right after its last one.
    """

    def __init__(self, sim, sensors: Sequence[Sensor], *, index: int, rng: np.random.Generator | None, refit: Callable[[], None] | None = None):
        self.sim = sim
        self.sensors = list(sensors)
        self._refit = refit
        state_step, dt = sim.current_step, sim.physics_dt
        self._context = CaptureContext(index=index, rng=rng, start_time=state_step * dt, start_step=state_step)
        self._events: list[tuple[int, int, int]] = []
        self._remaining: dict[int, int] = {}
        self._end_step = state_step
        for order, sensor in enumerate(self.sensors):
            offsets = [int(o) for o in sensor.schedule(dt, index)]
            if not offsets or any(b < a for a, b in zip(offsets, offsets[1:])) or offsets[0] < 0:
                raise ValueError(f"sensor {sensor.name}: schedule must be non-decreasing offsets >= 0, got {offsets}")
            for k, offset in enumerate(offsets):
                heapq.heappush(self._events, (state_step + offset, order, k))
            self._remaining[order] = len(offsets)
            self._end_step = max(self._end_step, state_step + max(offsets[-1], int(sensor.duration_steps(dt, index))))
        self._started: set[int] = set()
        self.results: dict[str, Any] = {}
        self.finished: set[str] = set()
        """Names of the sensors whose capture is complete."""
        self._refit_at = -1

    @property
    def done(self) -> bool:
        return not self._events

    @property
    def end_step(self) -> int:
        """Physics step at which the last capture's time span ends."""
        return self._end_step

    def next_step(self) -> int | None:
        """Absolute physics step of the next pending sample (None when all are done)."""
        return self._events[0][0] if self._events else None

    def process(self, step: int) -> None:
        """Run every sample due at ``step`` (the simulation must be exactly there)."""
        for _ in self.samples_at(step):
            pass

    def samples_at(self, step: int):
        """:meth:`process` as a generator: yields ``(sensor, k)`` after the sensor's ``begin`` and before its
        ``sample(k)``, so a host can prepare each sample in between (e.g. ``await`` a render inside Kit's
        event loop) with begin / sample / finish still in the same order as :meth:`process`."""
        while self._events and self._events[0][0] == step:
            _, order, k = heapq.heappop(self._events)
            if self._refit is not None and self._refit_at != step:
                self._refit()  # bodies moved since the last sample: update the ray-tracing structure once
                self._refit_at = step
            sensor = self.sensors[order]
            if order not in self._started:
                self._started.add(order)
                sensor.begin(self._context)
            yield sensor, k
            sensor.sample(k)
            self._remaining[order] -= 1
            if self._remaining[order] == 0:
                self.results[sensor.name] = sensor.finish()
                self.finished.add(sensor.name)


def capture(sim, sensors: Sequence[Sensor], *, index: int = 0, rng: np.random.Generator | None = None, refit=None, run_to_end: bool = True) -> dict[str, Any]:
    """Capture ``sensors`` starting now: step physics to each sample time, return {sensor name: data}.

    With ``run_to_end`` physics also advances to the end of the longest capture span (a full LIDAR
    scan), so the next capture starts after this one, as on a real sensor.
    """
    run = CaptureRun(sim, sensors, index=index, rng=rng, refit=refit)
    while not run.done:
        target = run.next_step()
        if target > sim.current_step:
            sim.advance(target - sim.current_step)
        run.process(target)
    if run_to_end and run.end_step > sim.current_step:
        sim.advance(run.end_step - sim.current_step)
    return run.results
