"""A 7-DoF arm with the Franka Emika Panda's public kinematics and a two-finger parallel gripper.

Kinematics are the modified (Craig) Denavit-Hartenberg parameters and joint limits published in the
Franka Control Interface documentation ("Robot and interface specifications"). Link shapes are
primitives written by this project (capsules along the links, cylinders at the joints); masses are
rounded from the public ``franka_description`` inertials. No meshes are downloaded.
"""

from __future__ import annotations

import numpy as np

from vlatwin.robots.description import JointSpec, LinkSpec, RobotDescription, ShapeSpec
from vlatwin.utils.transforms import make_transform, rot_x, rot_z

#: Modified DH rows (a [m], d [m], alpha [rad]) for joints 1..7 and the flange.
PANDA_DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -np.pi / 2),
    (0.0, 0.316, np.pi / 2),
    (0.0825, 0.0, np.pi / 2),
    (-0.0825, 0.384, -np.pi / 2),
    (0.0, 0.0, np.pi / 2),
    (0.088, 0.0, np.pi / 2),
)
PANDA_FLANGE_D = 0.107
"""Flange offset along joint 7's axis [m]."""

#: Joint limits [rad], Franka spec (q_min, q_max).
PANDA_LIMITS = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)
#: Joint velocity limits [rad/s] and torque limits [N*m], Franka spec.
PANDA_MAX_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
PANDA_MAX_TORQUE = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
#: The usual "ready" pose [rad].
PANDA_HOME = (0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4)
#: Link masses [kg] (link1..7; link7 includes the hand), rounded from franka_description.
PANDA_LINK_MASS = (2.74, 2.74, 2.38, 2.43, 3.5, 1.47, 1.2)

FINGER_TRAVEL = 0.04
"""Per-finger opening range [m] (0 = closed)."""
HAND_TO_FINGER = 0.0584
"""Finger joint origin along the hand's +Z [m]."""
HAND_YAW = -np.pi / 4
"""Hand yaw about the flange axis [rad]."""

# Drive gains, 1000 / 2 per degree in USD units. Measured with Newton XPBD (4 iterations, 600 Hz):
# the arm settles within ~6 mrad of its targets under gravity. XPBD turns drive damping into lag
# (kd/ke enters its correction as a time constant), so damping stays small; 40/deg left 0.1 rad.
ARM_STIFFNESS = 1000.0 * 180.0 / np.pi
ARM_DAMPING = 2.0 * 180.0 / np.pi
FINGER_STIFFNESS = 2000.0
FINGER_DAMPING = 100.0
FINGER_MAX_FORCE = 140.0

_LINK_COLORS = ((0.92, 0.92, 0.92), (0.15, 0.15, 0.17))


def _capsule_between(p0, p1, radius: float) -> ShapeSpec | None:
    """A capsule whose segment runs from ``p0`` to ``p1`` (link frame), or None if they coincide."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    length = float(np.linalg.norm(axis))
    if length < 1e-6:
        return None
    z = axis / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    rot = np.stack([x, np.cross(z, x), z], axis=1)
    return ShapeSpec(kind="capsule", pos_b=tuple((p0 + p1) / 2), rot_b=rot, radius=radius, height=length)


def _joint_housing(radius: float, height: float) -> ShapeSpec:
    """A cylinder around the joint axis at the link origin."""
    return ShapeSpec(kind="cylinder", radius=radius, height=height)


def dh_joint_frame(a: float, d: float, alpha: float) -> np.ndarray:
    """Fixed part of a modified-DH step, RotX(alpha) TransX(a) TransZ(d), as a 4x4 transform."""
    return make_transform(rot_x(alpha), [a, 0.0, 0.0]) @ make_transform(pos=[0.0, 0.0, d])


def make_panda() -> RobotDescription:
    """Build the Panda-kinematics arm with its gripper, at the ready pose."""
    link_names = ["panda_link0", *[f"panda_link{i}" for i in range(1, 8)]]
    joint_tfs = [dh_joint_frame(*row) for row in PANDA_DH]
    radii = (0.06, 0.06, 0.055, 0.055, 0.05, 0.045, 0.045)

    links = [
        LinkSpec(
            name="panda_link0",
            mass=3.0,
            shapes=(
                # Starts 5 mm above the mount so the welded base never rests in contact with it.
                ShapeSpec(kind="cylinder", pos_b=(0.0, 0.0, 0.1025), radius=0.08, height=0.195),
                _capsule_between((0, 0, 0.2), (0, 0, 0.26), 0.06),
            ),
            color=_LINK_COLORS[0],
        )
    ]
    for i in range(7):
        shapes = [_joint_housing(radii[i] + 0.005, 0.13)]
        next_origin = joint_tfs[i + 1][:3, 3] if i < 6 else np.array([0.0, 0.0, PANDA_FLANGE_D])
        capsule = _capsule_between((0, 0, 0), next_origin, radii[i])
        if capsule is not None:
            shapes.append(capsule)
        if i == 0:  # shoulder column down to the base
            shapes.append(_capsule_between((0, 0, -0.12), (0, 0, -0.02), radii[0]))
        if i == 6:
            shapes.extend(_hand_shapes())
        links.append(
            LinkSpec(
                name=link_names[i + 1],
                mass=PANDA_LINK_MASS[i],
                shapes=tuple(shapes),
                # Alternate light and dark links like the real arm.
                color=_LINK_COLORS[1 if (i % 2 == 1 and i < 6) else 0],
            )
        )

    joints = [
        JointSpec(
            name=f"panda_joint{i + 1}",
            kind="revolute",
            parent=link_names[i],
            child=link_names[i + 1],
            parent_tf=joint_tfs[i],
            lower=PANDA_LIMITS[i][0],
            upper=PANDA_LIMITS[i][1],
            home=PANDA_HOME[i],
            stiffness=ARM_STIFFNESS,
            damping=ARM_DAMPING,
            max_effort=PANDA_MAX_TORQUE[i],
            max_velocity=PANDA_MAX_VELOCITY[i],
        )
        for i in range(7)
    ]

    hand_tf = make_transform(rot_z(HAND_YAW), [0.0, 0.0, PANDA_FLANGE_D])
    finger_base = hand_tf @ make_transform(pos=[0.0, 0.0, HAND_TO_FINGER])
    for side, flip in (("left", 0.0), ("right", np.pi)):
        # Each finger slides along its own +Y; the right finger's frame is turned 180 deg about Z,
        # so both share one geometry and one positive opening range.
        links.append(
            LinkSpec(
                name=f"panda_{side}finger",
                mass=0.05,
                shapes=(ShapeSpec(kind="box", pos_b=(0.0, 0.009, 0.026), size=(0.02, 0.018, 0.052)),),
                color=_LINK_COLORS[1],
            )
        )
        joints.append(
            JointSpec(
                name=f"panda_finger_joint_{side}",
                kind="prismatic",
                axis="Y",
                parent="panda_link7",
                child=f"panda_{side}finger",
                parent_tf=finger_base @ make_transform(rot_z(flip)),
                lower=0.0,
                upper=FINGER_TRAVEL,
                home=FINGER_TRAVEL,
                stiffness=FINGER_STIFFNESS,
                damping=FINGER_DAMPING,
                max_effort=FINGER_MAX_FORCE,
                max_velocity=0.2,
            )
        )

    return RobotDescription(
        name="panda",
        links=tuple(links),
        joints=tuple(joints),
        arm_joint_names=tuple(j.name for j in joints[:7]),
        gripper_joint_names=tuple(j.name for j in joints[7:]),
    )


def _hand_shapes() -> list[ShapeSpec]:
    """Gripper body on the flange, in the link7 frame."""
    hand_rot = rot_z(HAND_YAW)
    return [
        ShapeSpec(kind="box", pos_b=(0.0, 0.0, PANDA_FLANGE_D + 0.03), rot_b=hand_rot, size=(0.06, 0.2, 0.06)),
    ]


def panda_flange_pose(q: np.ndarray) -> np.ndarray:
    """Flange frame in the base frame (4x4) for arm joint positions ``q`` [rad] (7,), straight from DH."""
    tf = np.eye(4)
    for (a, d, alpha), qi in zip(PANDA_DH, q, strict=True):
        tf = tf @ make_transform(rot_x(alpha), [a, 0.0, 0.0]) @ make_transform(rot_z(qi)) @ make_transform(pos=[0, 0, d])
    return tf @ make_transform(pos=[0.0, 0.0, PANDA_FLANGE_D])
