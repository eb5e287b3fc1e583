"""Data passed across the backend seam: static model info, time-varying state, commands.

Quaternions here are **(w, x, y, z)** (USD/Isaac order). Poses are in the world frame (``_w``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a backend can do; callers check before asking."""

    name: str
    device: str
    """e.g. ``cpu``, ``cuda:0``."""
    differentiable: bool = False
    cameras: bool = False
    lidar: bool = False
    graph_capture: bool = False
    effort_limits: bool = False
    """Drives never apply more than the joints' authored effort limits (``maxForce``). Newton's XPBD and VBD do
    not enforce them (Newton 1.8): a step there may apply far more, and its reported efforts say so."""


@dataclass(frozen=True, kw_only=True)
class SimModelInfo:
    """Static description of a loaded scene (does not change while stepping)."""

    stage_path: str
    physics_dt: float
    """[s]"""
    joint_names: tuple[str, ...]
    """Commanded joints (1-DoF revolute/prismatic of the articulation), as USD prim paths."""
    joint_lower: np.ndarray
    """Lower limits (J,) [rad | m]."""
    joint_upper: np.ndarray
    """Upper limits (J,) [rad | m]."""
    body_paths: tuple[str, ...]
    """Rigid-body prim paths, in the order of :attr:`SimState.body_pose_w`."""
    shape_paths: tuple[str, ...] = ()
    """Shape (collider/visual gprim) prim paths, in the backend's shape order (labels use them)."""
    shape_body: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    """Body index of each shape (-1 = static/world)."""
    articulation_root: str = ""

    def joint_index(self, name: str) -> int:
        """Index of a joint by full prim path or by its last path component."""
        for i, path in enumerate(self.joint_names):
            if path == name or path.rsplit("/", 1)[-1] == name:
                return i
        raise KeyError(f"unknown joint {name!r}; known: {[p.rsplit('/', 1)[-1] for p in self.joint_names]}")

    def body_index(self, path: str) -> int:
        """Index of a rigid body by prim path."""
        try:
            return self.body_paths.index(path)
        except ValueError:
            raise KeyError(f"unknown rigid body {path!r}") from None


@dataclass(kw_only=True)
class SimState:
    """Time-varying state, copied out of the backend (safe to keep)."""

    time: float
    """Simulated time since reset [s]."""
    step: int
    """Physics steps since reset."""
    joint_q: np.ndarray
    """Commanded-joint positions (J,) [rad | m]."""
    joint_qd: np.ndarray
    """Commanded-joint velocities (J,) [rad/s | m/s]."""
    body_pose_w: np.ndarray
    """Body poses (B, 7): position [m] then quaternion (w, x, y, z)."""
    body_vel_w: np.ndarray
    """Body velocities (B, 6): linear [m/s] then angular [rad/s], world frame."""
    joint_effort: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Measured joint efforts (J,) [N*m | N]: what the drives apply (see the backend for how it is measured)."""

    def body_position_w(self, info: SimModelInfo, path: str) -> np.ndarray:
        """Position [m] of the body at prim ``path``."""
        return self.body_pose_w[info.body_index(path), :3]


@dataclass(kw_only=True)
class JointCommand:
    """What the joint drives are asked to do until the next command (PD drive + feed-forward).

    Each drive applies ``ke * (target_q - q) + kd * (target_qd - qd) + effort``, clipped to its effort
    limit. All arrays are (J,) in :attr:`SimModelInfo.joint_names` order; NaN in an entry (or None for a
    whole array) leaves that joint's current value unchanged.
    """

    target_q: np.ndarray | None = None
    """Position targets [rad | m]."""
    target_qd: np.ndarray | None = None
    """Velocity targets [rad/s | m/s] (the damping term drives towards them)."""
    effort: np.ndarray | None = None
    """Feed-forward efforts [N*m | N] added to the drive output."""


@dataclass(kw_only=True)
class SimParams:
    """Physical parameters system identification fits; any field left None is not changed by ``set_params``.

    Joint arrays are (J,) in :attr:`SimModelInfo.joint_names` order; body arrays are (B,) in
    :attr:`SimModelInfo.body_paths` order. Units are per joint type: revolute [N*m, rad], prismatic [N, m].
    """

    joint_damping: np.ndarray | None = None
    """Passive viscous damping [N*m*s/rad | N*s/m], always active (not part of the drive)."""
    joint_friction: np.ndarray | None = None
    """Coulomb friction [N*m | N] (smoothed over a small velocity band, see the backend)."""
    joint_armature: np.ndarray | None = None
    """Rotor/reflected inertia added to the joint [kg*m^2 | kg]."""
    drive_stiffness: np.ndarray | None = None
    """Position gain ke [N*m/rad | N/m] (USD authors it per degree; here per radian)."""
    drive_damping: np.ndarray | None = None
    """Velocity gain kd [N*m*s/rad | N*s/m]."""
    body_mass: np.ndarray | None = None
    """[kg]"""
    body_inertia: np.ndarray | None = None
    """(B, 3, 3) inertia about the centre of mass in the body frame [kg*m^2]."""

    FIELDS = (
        "joint_damping", "joint_friction", "joint_armature", "drive_stiffness", "drive_damping", "body_mass", "body_inertia",
    )

    def copy(self) -> SimParams:
        return SimParams(**{f: None if getattr(self, f) is None else np.array(getattr(self, f), dtype=np.float64) for f in self.FIELDS})


@dataclass(frozen=True)
class SimSnapshot:
    """An opaque copy of everything that evolves while stepping (state, commands, clock).

    Restoring it and stepping with the same commands reproduces the same states bit for bit, so a twin
    can roll out a "what if" and come back. Model parameters are not part of it (see :class:`SimParams`).
    """

    backend: str
    time: float
    """[s]"""
    step: int
    data: dict = field(default_factory=dict, repr=False)
