"""Build controllers by action-space name, and split a scene's joints into arm and gripper."""

from __future__ import annotations

import inspect

from vlatwin.control.base import Controller, RobotJoints, match_joint_names
from vlatwin.errors import VlatwinError

#: Action-space kinds :func:`make_controller` knows.
CONTROLLER_KINDS = ("joint_pos", "joint_pos_delta", "joint_vel", "ee_delta_pose")

#: Substrings (of a joint's last path component, lower case) that mark a gripper joint by default.
GRIPPER_JOINT_MARKERS = ("finger", "gripper")


def robot_joints_from_info(
    info,
    arm_joint_names=None,
    gripper_joint_names=None,
    *,
    arm_units=None,
    gripper_closed_at_lower: bool = True,
) -> RobotJoints:
    """Split :attr:`SimModelInfo.joint_names` into arm and gripper joints.

    By default a joint whose last path component contains ``finger`` or ``gripper`` belongs to the
    gripper and every other joint to the arm, in scene order.

    Args:
        info: the loaded scene's :class:`~vlatwin.sim.types.SimModelInfo`.
        arm_joint_names: arm joints in action order, as prim paths or last path components.
        gripper_joint_names: gripper joints; by default the finger/gripper joints not in the arm.
        arm_units: ``rad``/``m`` per arm joint (all ``rad`` by default).
        gripper_closed_at_lower: see :attr:`RobotJoints.gripper_closed_at_lower`.
    """
    names = tuple(info.joint_names)
    is_gripper = [any(m in p.rsplit("/", 1)[-1].lower() for m in GRIPPER_JOINT_MARKERS) for p in names]
    if gripper_joint_names is not None:
        gripper = match_joint_names(gripper_joint_names, names)
    else:
        taken = set() if arm_joint_names is None else set(match_joint_names(arm_joint_names, names).tolist())
        gripper = [i for i, g in enumerate(is_gripper) if g and i not in taken]
    if arm_joint_names is not None:
        arm = match_joint_names(arm_joint_names, names)
    else:
        grip_set = {int(i) for i in gripper}
        arm = [i for i in range(len(names)) if i not in grip_set]
    return RobotJoints(
        joint_names=names,
        arm=arm,
        gripper=gripper,
        lower=info.joint_lower,
        upper=info.joint_upper,
        arm_units=arm_units,
        gripper_closed_at_lower=gripper_closed_at_lower,
    )


def make_controller(
    kind: str,
    *,
    info,
    robot_joints: RobotJoints | None = None,
    chain=None,
    control_dt: float,
    **options,
) -> Controller:
    """A controller for action space ``kind``.

    Args:
        kind: one of :data:`CONTROLLER_KINDS`.
        info: the loaded scene's :class:`~vlatwin.sim.types.SimModelInfo`.
        robot_joints: arm/gripper split; :func:`robot_joints_from_info` defaults when None.
        chain: the arm's :class:`~vlatwin.control.kinematics.KinematicChain` (``ee_delta_pose`` only).
        control_dt: control period [s].
        **options: keyword options of the controller class (e.g. ``gripper="open_0_1"``,
            ``rotation="axis_angle"``, ``max_velocity=1.5``).

    Raises:
        VlatwinError: unknown kind or option, or a missing chain for ``ee_delta_pose``.
    """
    from vlatwin.control.ee import EndEffectorDeltaController
    from vlatwin.control.joint import JointPositionController, JointVelocityController

    if kind not in CONTROLLER_KINDS:
        raise VlatwinError(f"unknown controller {kind!r}; known: {', '.join(CONTROLLER_KINDS)}")
    if not control_dt > 0:
        raise VlatwinError(f"controller {kind!r}: control_dt must be > 0 [s], got {control_dt}")
    robot_joints = robot_joints_from_info(info) if robot_joints is None else robot_joints
    if robot_joints.num_joints != len(info.joint_names):
        raise VlatwinError(
            f"controller {kind!r}: robot joints describe {robot_joints.num_joints} joints, "
            f"the scene has {len(info.joint_names)}"
        )

    if kind in ("joint_pos", "joint_pos_delta"):
        cls, fixed = JointPositionController, {"mode": "absolute" if kind == "joint_pos" else "delta"}
    elif kind == "joint_vel":
        cls, fixed = JointVelocityController, {"control_dt": control_dt}
    else:
        if chain is None:
            raise VlatwinError(
                "controller 'ee_delta_pose' needs a kinematic chain (chain=KinematicChain.from_usd(...))"
            )
        cls, fixed = EndEffectorDeltaController, {"control_dt": control_dt}
    _check_options(kind, cls, options, fixed)
    if kind == "ee_delta_pose":
        return cls(robot_joints, chain, **fixed, **options)
    return cls(robot_joints, **fixed, **options)


def _check_options(kind: str, cls, options: dict, fixed: dict) -> None:
    params = inspect.signature(cls.__init__).parameters
    allowed = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in fixed]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise VlatwinError(f"controller {kind!r}: unknown option(s) {', '.join(unknown)}; known: {', '.join(allowed)}")


__all__ = ["CONTROLLER_KINDS", "GRIPPER_JOINT_MARKERS", "make_controller", "robot_joints_from_info"]
