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

    def body_position_w(self, info: SimModelInfo, path: str) -> np.ndarray:
        """Position [m] of the body at prim ``path``."""
        return self.body_pose_w[info.body_index(path), :3]


@dataclass(kw_only=True)
class JointCommand:
    """Joint position targets for the drives."""

    target_q: np.ndarray
    """Targets (J,) [rad | m] in :attr:`SimModelInfo.joint_names` order; NaN leaves a joint's target unchanged."""
