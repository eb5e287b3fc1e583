"""Pure-numpy geometry the success predicates share: object extents, the gripper's TCP frame and opening.

Everything reads a :class:`~vlatwin.sim.types.SimState` (body poses, finger joint positions) and the
static :class:`~vlatwin.sim.types.SimModelInfo`; nothing touches an engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlatwin.utils.transforms import quat_wxyz_to_matrix, rpy_deg_to_matrix

OBJECTS_PATH = "/World/Objects"
TARGETS_PATH = "/World/Targets"


@dataclass(frozen=True)
class GripperSpec:
    """Where the built-in Panda's fingers are (bodies and joints found by name suffix)."""

    left_finger: str = "panda_leftfinger"
    right_finger: str = "panda_rightfinger"
    left_joint: str = "panda_finger_joint_left"
    right_joint: str = "panda_finger_joint_right"
    tcp_offset: float = 0.045
    """TCP beyond the finger joints' origin along the hand's Z [m] (Franka TCP: 0.1034 m past the flange)."""
    travel: float = 0.04
    """Per-finger opening range [m]; the gap between the pads is the sum of both finger joints."""


PANDA_GRIPPER = GripperSpec()


@dataclass(frozen=True)
class ObjectGeom:
    """Static geometry of one task object (a centred primitive)."""

    name: str
    path: str
    shape: str
    half_extents: tuple[float, float, float]
    """Half sizes in the object frame [m]."""
    base_rot: np.ndarray
    """Configured orientation (3x3); initial states add a yaw on top."""
    rest_z: float
    """Centre height when resting on the table in its configured roll/pitch [m]."""
    dynamic: bool = True

    @property
    def footprint_radius(self) -> float:
        """Radius of a circle holding the object's XY footprint at any yaw [m]."""
        ext = np.abs(self.base_rot) @ np.asarray(self.half_extents)
        if self.shape in ("sphere",):
            return float(self.half_extents[0])
        if self.shape in ("cylinder", "capsule") and np.allclose(self.base_rot[:, 2], (0, 0, 1)):
            return float(self.half_extents[0])
        return float(np.hypot(ext[0], ext[1]))

    @property
    def max_width(self) -> float:
        """Largest full width across X or Y of the object frame [m] (what the fingers can close on)."""
        return float(2.0 * max(self.half_extents[0], self.half_extents[1]))


def object_half_extents(obj) -> tuple[float, float, float]:
    """Half sizes [m] of an :class:`ObjectCfg` (box, sphere, cylinder, capsule) in its own frame."""
    s = obj.scale
    if obj.shape == "box":
        return tuple(float(v * s / 2.0) for v in obj.size)
    if obj.shape == "sphere":
        return (obj.radius * s,) * 3
    if obj.shape == "cylinder":
        return (obj.radius * s, obj.radius * s, obj.height * s / 2.0)
    if obj.shape == "capsule":
        return (obj.radius * s, obj.radius * s, obj.height * s / 2.0 + obj.radius * s)
    raise ValueError(f"object {obj.name!r}: tasks use box, sphere, cylinder or capsule objects, not {obj.shape}")


def object_geom(obj, table_top: float) -> ObjectGeom:
    """:class:`ObjectGeom` of an :class:`ObjectCfg` resting on a table whose top is at ``table_top`` [m]."""
    half = object_half_extents(obj)
    rot = rpy_deg_to_matrix(obj.rpy_deg)
    z_half = float(half[0]) if obj.shape == "sphere" else float((np.abs(rot) @ np.asarray(half))[2])
    return ObjectGeom(
        name=obj.name,
        path=f"{OBJECTS_PATH}/{obj.name}",
        shape=obj.shape,
        half_extents=tuple(float(v) for v in half),
        base_rot=rot,
        rest_z=float(table_top + z_half),
        dynamic=obj.dynamic,
    )


def body_pose(state, info, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), rotation (3, 3)) of the body at ``path``."""
    pose = state.body_pose_w[info.body_index(path)]
    return np.asarray(pose[:3], dtype=float), quat_wxyz_to_matrix(np.asarray(pose[3:], dtype=float))


def world_half_extents(geom: ObjectGeom, rot: np.ndarray) -> np.ndarray:
    """Axis-aligned world half sizes of the object in orientation ``rot`` [m] (a sphere's are its radius)."""
    if geom.shape == "sphere":
        return np.full(3, geom.half_extents[0])
    return np.abs(rot) @ np.asarray(geom.half_extents)


def _find_body(info, suffix: str) -> str:
    for path in info.body_paths:
        if path.rsplit("/", 1)[-1] == suffix:
            return path
    raise KeyError(f"no body named {suffix!r} in the scene (tasks need the built-in Panda gripper)")


@dataclass(frozen=True)
class GripperState:
    tcp: np.ndarray
    """TCP position [m], world frame: between the fingertips, 7 mm short of their ends."""
    rot: np.ndarray
    """Hand frame (3x3): columns x (across the finger pads' width), y (opening axis), z (towards the tips)."""
    gap: float
    """Opening between the finger pads [m] (0 closed, 2 x travel open)."""


def gripper_state(state, info, spec: GripperSpec = PANDA_GRIPPER) -> GripperState:
    """The TCP frame (from the finger bodies) and the pad gap (from the finger joints)."""
    left, rot = body_pose(state, info, _find_body(info, spec.left_finger))
    right, _ = body_pose(state, info, _find_body(info, spec.right_finger))
    base = 0.5 * (left + right)  # each finger slides +-q along the opening axis from the joint origin
    tcp = base + rot[:, 2] * spec.tcp_offset
    q = np.asarray(state.joint_q, dtype=float)
    gap = float(q[info.joint_index(spec.left_joint)] + q[info.joint_index(spec.right_joint)])
    return GripperState(tcp=tcp, rot=rot, gap=gap)


IN_GRASP_X = 0.03
"""Object centre at most this far across the pads' width from the TCP [m] (pads are 0.02 m wide)."""
IN_GRASP_Y_MARGIN = 0.005
"""Object centre within half the pad gap plus this along the opening axis [m]."""
IN_GRASP_Z = (-0.05, 0.02)
"""Object centre along the hand's Z relative to the TCP [m]: from near the palm to just past the tips."""
HELD_GAP_MARGIN = 0.006
"""Fingers count as closed on an object when the gap is at most its widest X/Y width plus this [m]."""


def between_fingers(obj_pos: np.ndarray, grip: GripperState) -> bool:
    """Whether the point ``obj_pos`` [m] lies between the finger pads (see the IN_GRASP_* thresholds)."""
    d = grip.rot.T @ (np.asarray(obj_pos, dtype=float) - grip.tcp)
    return bool(
        abs(d[0]) <= IN_GRASP_X
        and abs(d[1]) <= grip.gap / 2.0 + IN_GRASP_Y_MARGIN
        and IN_GRASP_Z[0] <= d[2] <= IN_GRASP_Z[1]
    )


def is_held(obj_pos: np.ndarray, geom: ObjectGeom, grip: GripperState) -> bool:
    """Between the fingers with the fingers closed on it (gap <= widest width + HELD_GAP_MARGIN)."""
    return between_fingers(obj_pos, grip) and grip.gap <= geom.max_width + HELD_GAP_MARGIN
