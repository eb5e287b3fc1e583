"""The simulator backend interface every engine implements."""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sim.types import Capabilities, JointCommand, SimModelInfo, SimParams, SimSnapshot, SimState


class SimBackend(abc.ABC):
    """Load a USD stage, step it with joint commands, read state, move objects, change parameters.

    Lifecycle: ``load`` -> (``reset`` -> ``step``*)* -> ``close``. Works as a context manager.
    The static description (:class:`SimModelInfo`), the time-varying state (:class:`SimState`), the
    commands (:class:`JointCommand`) and the physical parameters (:class:`SimParams`) are separate types.
    """

    name: str = "base"

    @abc.abstractmethod
    def load(self, stage_path: str | Path) -> SimModelInfo:
        """Load the stage at ``stage_path`` and return its static description."""

    @abc.abstractmethod
    def reset(self, *, seed: int | None = None) -> SimState:
        """Restore the initial state. ``seed`` drives any reset noise; the same seed gives the same state."""

    def step(self, command: JointCommand | None = None, *, num_steps: int = 1) -> SimState:
        """Apply ``command`` (kept until the next one), advance ``num_steps`` physics steps, return the new state."""
        if command is not None:
            self.set_command(command)
        self.advance(num_steps)
        return self.get_state()

    @abc.abstractmethod
    def advance(self, num_steps: int = 1) -> None:
        """Advance ``num_steps`` physics steps with the current commands, without reading the state back.

        The cheap path for the control loop between samples; :meth:`step` is ``advance`` + :meth:`get_state`.
        """

    @abc.abstractmethod
    def set_command(self, command: JointCommand) -> None:
        """Apply a command to the drives (kept until the next one) without stepping."""

    @abc.abstractmethod
    def get_state(self) -> SimState:
        """A copy of the current state."""

    @abc.abstractmethod
    def set_joint_positions(self, q, *, hold: bool = True) -> None:
        """Teleport the commanded joints to ``q`` (J,) [rad | m] at rest; ``hold`` also sets the drive targets."""

    @abc.abstractmethod
    def set_joint_state(self, q, qd, *, hold: bool = True, keep_constraint_error: bool = False) -> None:
        """Teleport the commanded joints to positions ``q`` [rad | m] with velocities ``qd`` [rad/s | m/s].

        ``hold`` also sets the drive targets to ``q`` / ``qd`` (so the robot keeps the state it was given).
        ``keep_constraint_error``: for maximal-coordinate solvers (XPBD), keep each body's current offset from
        its FK pose (the joints' stretch under load) and move it only along the joint coordinates, so that
        re-synchronizing a running twin to a measured state does not set it ringing (the twin re-sync uses
        it; reduced-coordinate engines have no such offset and ignore it).
        """

    @abc.abstractmethod
    def get_params(self) -> SimParams:
        """The physical parameters of the running model (every field filled)."""

    @abc.abstractmethod
    def set_params(self, params: SimParams) -> None:
        """Apply parameters to the running model; fields left None stay unchanged. Takes effect on the next step."""

    @abc.abstractmethod
    def snapshot(self) -> SimSnapshot:
        """Save everything that evolves while stepping (state, commands, clock)."""

    @abc.abstractmethod
    def restore(self, snapshot: SimSnapshot) -> None:
        """Return to a :meth:`snapshot` of this loaded stage; stepping on reproduces the same states."""

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

    _steps: int = 0

    @property
    def current_step(self) -> int:
        """Physics steps since the last reset (the loop's clock counts in whole steps)."""
        return self._steps

    def refit_render_scene(self) -> None:  # noqa: B027 - engines whose renderers track poses themselves
        """Make ray-traced sensors see the current body poses (Newton refits its BVH; RTX needs nothing)."""

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


def check_joint_array(value, count: int, what: str, *, allow_nan: bool = True) -> np.ndarray:
    """A (count,) float64 copy of ``value``; one-line ``VlatwinError`` for a wrong shape or infinities.

    NaN entries are allowed where they mean "leave unchanged" (``allow_nan``).
    """
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (count,):
        raise VlatwinError(f"{what}: expected {count} values (one per joint), got shape {array.shape}")
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if np.any(bad):
        raise VlatwinError(f"{what}: values must be finite{' (NaN = unchanged)' if allow_nan else ''}, got {array.tolist()}")
    return array
