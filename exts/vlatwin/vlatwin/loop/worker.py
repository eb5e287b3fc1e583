"""The public contract of a worker: one simulator and its sensors turning work items into results.

A dataset frame, a recorded demonstration or an evaluation episode is a *work item* identified by an
index; a worker set up once runs any item from (index, seed) alone, so items are independent: they can
be split over threads, processes or Ray actors and resumed in any order with the same bytes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorkResult:
    """What one work item produced."""

    index: int
    outputs: dict[str, Any]
    """Sensor data by kind, e.g. ``{"cameras": {name: annotators}, "lidars": {name: points}}``."""
    record: dict[str, Any] = field(default_factory=dict)
    """JSON-safe description of what was drawn/done (randomization, episode metadata)."""


class Worker(abc.ABC):
    """Set up once (load the stage, create sensors), then :meth:`run` items; :meth:`close` at the end."""

    @abc.abstractmethod
    def run(self, index: int, seed: int) -> WorkResult:
        """Produce item ``index``; everything random is drawn from (``seed``, ``index``)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the simulator and sensors."""
