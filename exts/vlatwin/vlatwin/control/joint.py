"""Joint-space action spaces: absolute and delta joint positions, joint velocities.

Action layout: one dimension per arm joint (in :attr:`RobotJoints.arm` order), then one ``gripper``
dimension in the controller's gripper convention when the robot has gripper joints.

Relative actions (delta, velocity) build on the **last commanded target** by default
(``reference="target"``): a drive that sags under gravity then does not make a held pose creep, and a
zero action holds exactly. ``reference="measured"`` builds on the measured joint positions instead
(ManiSkill's ``pd_joint_delta_pos`` versus ``pd_joint_target_delta_pos``). Both restart from the
measured state on :meth:`~vlatwin.control.base.Controller.reset`.
"""

from __future__ import annotations

import numpy as np

from vlatwin.control._common import ArmGripperController, check_choice
from vlatwin.control.base import RobotJoints
from vlatwin.errors import VlatwinError

JOINT_POSITION_MODES = ("absolute", "delta")


class JointPositionController(ArmGripperController):
    """Arm joint position targets, absolute [rad | m] or as a change per control step.

    Args:
        robot_joints: arm/gripper split and limits of the scene.
        mode: ``absolute`` (spec ``joint_pos``, bounds = joint limits) or ``delta`` (spec
            ``joint_pos_delta``, bounds = +-``max_delta``).
        max_delta: largest change per control step [rad | m] (delta mode); larger actions are clipped.
        reference: what deltas add to, ``target`` (last commanded) or ``measured``.
        gripper: a :class:`~vlatwin.control.gripper.GripperMapping` or convention name (default ``close_0_1``).
    """

    def __init__(
        self,
        robot_joints: RobotJoints,
        *,
        mode: str = "absolute",
        max_delta: float = 0.1,
        reference: str = "target",
        gripper=None,
    ) -> None:
        super().__init__(robot_joints, gripper=gripper, reference=reference)
        self.mode = check_choice("joint position mode", mode, JOINT_POSITION_MODES)
        arm = robot_joints.arm
        if mode == "absolute":
            self.spec = self._spec(
                "joint_pos",
                robot_joints.arm_names,
                robot_joints.arm_units,
                robot_joints.lower[arm],
                robot_joints.upper[arm],
                "absolute arm joint position targets",
            )
        else:
            if not max_delta > 0:
                raise VlatwinError(f"joint_pos_delta: max_delta must be > 0, got {max_delta}")
            self.spec = self._spec(
                "joint_pos_delta",
                robot_joints.arm_names,
                robot_joints.arm_units,
                np.full(arm.size, -float(max_delta)),
                np.full(arm.size, float(max_delta)),
                f"arm joint position change per control step, added to the {reference} joint positions",
            )

    def compute(self, action, state):
        """Joint targets for one action (see the class docstring)."""
        act = self._prepare(action, state)
        arm = self.joints.arm
        q = act[: arm.size] if self.mode == "absolute" else self._reference(state, arm) + act[: arm.size]
        self._target[arm] = np.clip(q, self.joints.lower[arm], self.joints.upper[arm])
        return self._command(arm, act)


class JointVelocityController(ArmGripperController):
    """Arm joint velocities [rad/s | m/s], integrated over the control period into position targets.

    Each step sets ``target_q = reference + v * control_dt`` (clipped to the limits) and
    ``target_qd = v`` (0 for a joint held at a limit), so a PD drive tracks the moving target with the
    right feed-forward velocity; the gripper dimension is a position (DROID's layout).

    Args:
        robot_joints: arm/gripper split and limits of the scene.
        control_dt: control period [s].
        max_velocity: speed bound per arm joint [rad/s | m/s], a scalar or one per joint.
        reference: what the integration starts from, ``target`` (last commanded) or ``measured``.
        gripper: a :class:`~vlatwin.control.gripper.GripperMapping` or convention name (default ``close_0_1``).
    """

    def __init__(
        self,
        robot_joints: RobotJoints,
        *,
        control_dt: float,
        max_velocity=1.0,
        reference: str = "target",
        gripper=None,
    ) -> None:
        super().__init__(robot_joints, gripper=gripper, reference=reference)
        if not control_dt > 0:
            raise VlatwinError(f"joint_vel: control_dt must be > 0 [s], got {control_dt}")
        self.control_dt = float(control_dt)
        arm = robot_joints.arm
        vmax = np.broadcast_to(np.asarray(max_velocity, dtype=float), (arm.size,))
        if np.any(vmax <= 0):
            raise VlatwinError(f"joint_vel: max_velocity must be > 0, got {max_velocity}")
        self.spec = self._spec(
            "joint_vel",
            robot_joints.arm_names,
            tuple(f"{u}/s" for u in robot_joints.arm_units),
            -vmax,
            vmax,
            f"arm joint velocities, integrated over control_dt={self.control_dt:g} s from the {reference} joint "
            "positions; gripper is a position",
        )

    def compute(self, action, state):
        """Position and velocity targets for one velocity action (see the class docstring)."""
        act = self._prepare(action, state)
        arm = self.joints.arm
        velocity = act[: arm.size]
        q = self._reference(state, arm) + velocity * self.control_dt
        lower, upper = self.joints.lower[arm], self.joints.upper[arm]
        clipped = np.clip(q, lower, upper)
        self._target[arm] = clipped
        target_qd = np.full(self.joints.num_joints, np.nan)
        # A joint pinned at a limit gets no velocity target, or the damping term would push into the stop.
        target_qd[arm] = np.where(clipped != q, 0.0, velocity)
        target_qd[self.joints.gripper] = 0.0
        return self._command(arm, act, target_qd=target_qd)


__all__ = ["JOINT_POSITION_MODES", "JointPositionController", "JointVelocityController"]
