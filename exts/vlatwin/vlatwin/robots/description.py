"""Engine-neutral robot description: links with primitive shapes and a joint tree.

A description is static data (like Newton's ``Model``): USD authoring turns it into UsdPhysics
prims and tests check its kinematics with numpy alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


def axis_rotation(axis: int, angle: float) -> np.ndarray:
    """3x3 rotation by ``angle`` [rad] about coordinate axis ``axis`` (0=X, 1=Y, 2=Z)."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


@dataclass(frozen=True, kw_only=True)
class ShapeSpec:
    """A primitive shape fixed to a link, expressed in the link frame."""

    kind: Literal["box", "sphere", "capsule", "cylinder"]
    """Primitive type."""
    pos_b: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Centre in the link frame [m]."""
    rot_b: np.ndarray = field(default_factory=lambda: np.eye(3))
    """Orientation in the link frame (3x3; the capsule/cylinder axis is the local Z)."""
    radius: float = 0.0
    """Radius [m] (sphere, capsule, cylinder)."""
    height: float = 0.0
    """Cylindrical length along local Z [m] (capsule: without the caps)."""
    size: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Full extents [m] (box)."""
    collide: bool = True
    """Whether the shape is a collider (else visual only)."""


@dataclass(frozen=True, kw_only=True)
class LinkSpec:
    """A rigid link."""

    name: str
    mass: float
    """[kg]"""
    shapes: tuple[ShapeSpec, ...]
    color: tuple[float, float, float] = (0.9, 0.9, 0.9)
    """Linear RGB in [0, 1]."""


@dataclass(frozen=True, kw_only=True)
class JointSpec:
    """A joint between ``parent`` and ``child``; the joint frame rides on the parent at ``parent_tf``.

    The child link's frame coincides with the joint frame moved by the joint coordinate (rotation
    about / translation along ``axis``), so the child needs no extra joint offset.
    """

    name: str
    kind: Literal["revolute", "prismatic"]
    axis: Literal["X", "Y", "Z"] = "Z"
    """Joint axis in the joint frame (rotation about / translation along it)."""
    parent: str
    child: str
    parent_tf: np.ndarray
    """4x4 joint frame in the parent link frame."""
    lower: float
    """Lower limit [rad] (revolute) or [m] (prismatic)."""
    upper: float
    """Upper limit [rad] or [m]."""
    home: float
    """Home position [rad] or [m]; the USD stage is authored in this pose."""
    stiffness: float
    """Drive stiffness [N*m/rad] (revolute) or [N/m] (prismatic)."""
    damping: float
    """Drive damping [N*m*s/rad] or [N*s/m]."""
    max_effort: float
    """Drive force limit [N*m] or [N]."""
    max_velocity: float = float("inf")
    """[rad/s] or [m/s]"""


@dataclass(frozen=True, kw_only=True)
class RobotDescription:
    """A fixed-base robot: ``links[0]`` is the base, joints are listed parent-before-child."""

    name: str
    links: tuple[LinkSpec, ...]
    joints: tuple[JointSpec, ...]
    arm_joint_names: tuple[str, ...]
    """Joints commanded as the arm (the rest belong to the gripper)."""
    gripper_joint_names: tuple[str, ...] = ()

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def home_positions(self) -> np.ndarray:
        """Home joint positions in joint order [rad | m]."""
        return np.array([j.home for j in self.joints])

    def with_home(self, home: dict[str, float]) -> RobotDescription:
        """A copy whose home pose takes the given joint positions [rad | m]."""
        from dataclasses import replace

        unknown = set(home) - set(self.joint_names)
        if unknown:
            raise KeyError(f"unknown joints {sorted(unknown)}; known: {list(self.joint_names)}")
        joints = tuple(replace(j, home=float(home.get(j.name, j.home))) for j in self.joints)
        return replace(self, joints=joints)

    def forward_kinematics(self, q: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Link frames in the robot base frame, as 4x4 transforms, at joint positions ``q`` (joint order)."""
        q = self.home_positions if q is None else np.asarray(q, dtype=float)
        frames = {self.links[0].name: np.eye(4)}
        for joint, qi in zip(self.joints, q, strict=True):
            axis = "XYZ".index(joint.axis)
            motion = np.eye(4)
            if joint.kind == "revolute":
                motion[:3, :3] = axis_rotation(axis, qi)
            else:
                motion[axis, 3] = qi
            frames[joint.child] = frames[joint.parent] @ joint.parent_tf @ motion
        return frames
