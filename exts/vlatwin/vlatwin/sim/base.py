"""The simulator backend interface every engine implements."""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sim.types import Capabilities, JointCommand, SimModelInfo, SimState


class SimBackend(abc.ABC):
    """Load a USD stage, step it with joint position targets, read state, move objects.

    Lifecycle: ``load`` -> (``reset`` -> ``step``*)* -> ``close``. Works as a context manager.
    """

    name: str = "base"

    @abc.abstractmethod
    def load(self, stage_path: str | Path) -> SimModelInfo:
        """Load the stage at ``stage_path`` and return its static description."""

    @abc.abstractmethod
    def reset(self, *, seed: int | None = None) -> SimState:
        """Restore the initial state. ``seed`` drives any reset noise; the same seed gives the same state."""

    @abc.abstractmethod
    def step(self, command: JointCommand | None = None, *, num_steps: int = 1) -> None:
        """Apply ``command`` (kept until the next one) and advance ``num_steps`` physics steps."""

    @abc.abstractmethod
    def get_state(self) -> SimState:
        """A copy of the current state."""

    @abc.abstractmethod
    def set_joint_positions(self, q, *, hold: bool = True) -> None:
        """Teleport the commanded joints to ``q`` (J,) [rad | m] at rest; ``hold`` also sets the drive targets."""

    @abc.abstractmethod
    def set_body_pose(self, path: str, pose_w: np.ndarray, *, zero_velocity: bool = True) -> None:
        """Teleport a free rigid body to ``pose_w`` = (x, y, z, qw, qx, qy, qz) [m]."""

    _info: SimModelInfo | None = None
    _dt: float = 0.0

    @property
    def info(self) -> SimModelInfo:
        """Static description of the loaded stage."""
        self._require_loaded()
        return self._info

    @property
    def physics_dt(self) -> float:
        """Step size [s] of the loaded stage."""
        self._require_loaded()
        return self._dt

    def _require_loaded(self) -> None:
        if self._info is None:
            raise VlatwinError("no stage loaded: call load(stage_path) first")

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this backend supports."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
