"""A Franka arm (Panda / FR3) through ``franky`` (PyPI ``franky-control``), for ``vlatwin agent --driver franka``.

**Untested here: no robot and no franky in this project's environment.** Written against franky's
documented Python API (README and examples of timschneider42/franky):

* ``franky.Robot(host)``, ``robot.recover_from_errors()``, ``robot.relative_dynamics_factor = f``;
* ``robot.current_joint_state.position`` / ``.velocity`` (7 joints [rad], [rad/s]);
* ``robot.state.tau_J`` (measured joint torques [N*m]; libfranka's ``RobotState`` field);
* ``robot.move(franky.JointMotion(q), asynchronous=True)``: a new motion preempts the running one, and
  Ruckig plans a jerk-limited trajectory to ``q`` within ``relative_dynamics_factor`` of the limits
  (the hard 1 kHz loop stays in franky/libfranka, as the FCI requires);
* ``robot.stop()`` if present (libfranka's ``Robot::stop``), else a ``JointMotion`` to the current position;
* ``franky.Gripper(host)``: ``gripper.width`` [m] (both fingers), ``gripper.move_async(width, speed)``.

What *is* tested: the unit mapping and command flow of this class against a fake module with exactly
these names (``tests/integration/test_agent.py``). What is not: real timing, franky's preemption
behaviour under 10-100 Hz retargeting, error recovery (reflexes, ``communication_constraints_violation``),
the gripper's blocking behaviour, and ``robot.state`` field names on franky 1.x vs 2.x.

Joints: ``panda_joint1..7`` [rad] plus, with a gripper, ``panda_finger_joint1`` and ``panda_finger_joint2``
[m] (each half the gripper width, as in the twin's Panda). ``robot_time`` is the host clock at the read
(franky's state time base is not documented as a clock; a robot clock would need ``RobotState.time``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from vlatwin._deps import require
from vlatwin.errors import VlatwinError
from vlatwin.hardware.base import Robot, RobotAction, RobotObservation
from vlatwin.hardware.clock import Clock, WallClock

logger = logging.getLogger(__name__)

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")


def import_franky():
    """``franky`` or a one-line install hint."""
    try:
        return require("franky", extra="twin")
    except VlatwinError:
        raise VlatwinError(
            "the franka driver needs franky: pip install franky-control (wheels for your libfranka / robot "
            "firmware version: see github.com/timschneider42/franky)"
        ) from None


class FrankyDriver(Robot):
    """A Franka arm over franky (untested: see the module docstring).

    Args:
        host: the robot's FCI address (e.g. ``172.16.0.2``).
        gripper: drive the Franka Hand too (two finger joints).
        dynamics_factor: franky's ``relative_dynamics_factor`` (fraction of velocity/acceleration/jerk limits).
        gripper_speed: [m/s] for gripper moves.
        gripper_deadband: [m] width change below which no new gripper move is sent.
        clock: the host clock.
        franky_module: the franky module to use (tests pass a fake; default: ``import franky``).
    """

    name = "franka"

    def __init__(
        self,
        host: str,
        *,
        gripper: bool = True,
        dynamics_factor: float = 0.1,
        gripper_speed: float = 0.05,
        gripper_deadband: float = 0.002,
        clock: Clock | None = None,
        franky_module: Any = None,
    ) -> None:
        if not (0.0 < dynamics_factor <= 1.0):
            raise VlatwinError(f"franka dynamics factor must be in (0, 1], got {dynamics_factor}")
        self.host = host
        self.use_gripper = gripper
        self.dynamics_factor = float(dynamics_factor)
        self.gripper_speed = float(gripper_speed)
        self.gripper_deadband = float(gripper_deadband)
        self.clock = clock or WallClock()
        self.joint_names = ARM_JOINTS + (FINGER_JOINTS if gripper else ())
        self._franky = franky_module
        self._robot = None
        self._gripper = None
        self._seq = 0
        self._estop = False
        self._last_width: float | None = None
        self._target: np.ndarray | None = None

    @property
    def is_connected(self) -> bool:
        return self._robot is not None

    def connect(self) -> None:
        if self._robot is not None:
            return
        franky = self._franky or import_franky()
        self._franky = franky
        robot = franky.Robot(self.host)
        robot.recover_from_errors()
        robot.relative_dynamics_factor = self.dynamics_factor
        self._robot = robot
        if self.use_gripper:
            self._gripper = franky.Gripper(self.host)

    def disconnect(self) -> None:
        if self._robot is not None:
            self._stop_motion()
        self._robot = self._gripper = None

    def get_observation(self) -> RobotObservation:
        if self._robot is None:
            raise VlatwinError("franka driver: get_observation before connect()")
        t0 = self.clock.now()
        joint_state = self._robot.current_joint_state
        q = np.asarray(joint_state.position, dtype=np.float64).reshape(-1)[:7]
        qd = np.asarray(joint_state.velocity, dtype=np.float64).reshape(-1)[:7]
        tau = getattr(getattr(self._robot, "state", None), "tau_J", None)
        effort = None if tau is None else np.asarray(tau, dtype=np.float64).reshape(-1)[:7]
        if self._gripper is not None:
            half = float(self._gripper.width) / 2.0
            q = np.concatenate([q, [half, half]])
            qd = np.concatenate([qd, [0.0, 0.0]])
            effort = None if effort is None else np.concatenate([effort, [0.0, 0.0]])
        t1 = self.clock.now()
        self._seq += 1
        return RobotObservation(
            seq=self._seq, robot_time=0.5 * (t0 + t1), host_time=t1, joint_q=q, joint_qd=qd, joint_effort=effort,
            # tau_J is the link-side torque sensors' reading (inertia and gravity included), not the drive law's
            # output: sysid must not regress drive gains on it.
            status={"estop": self._estop, "mode": "stopped" if self._estop else "running", "effort": "link"},
        )

    def send_action(self, action: RobotAction) -> RobotAction:
        if self._robot is None:
            raise VlatwinError("franka driver: send_action before connect()")
        now = self.clock.now()
        target = np.asarray(action.target_q, dtype=np.float64).reshape(-1)
        if target.size != len(self.joint_names):
            raise VlatwinError(f"franka driver: action has {target.size} joints, expected {len(self.joint_names)}")
        if self._estop or (action.expires_at is not None and now > action.expires_at):
            held = self._target if self._target is not None else target
            return RobotAction(target_q=held.copy(), seq=action.seq, send_time=now, expires_at=action.expires_at)
        # asynchronous: the new JointMotion preempts the running one; Ruckig blends to the new target.
        self._robot.move(self._franky.JointMotion(target[:7].tolist()), asynchronous=True)
        if self._gripper is not None:
            width = float(np.clip(target[7] + target[8], 0.0, 0.08))
            if self._last_width is None or abs(width - self._last_width) >= self.gripper_deadband:
                self._gripper.move_async(width, self.gripper_speed)
                self._last_width = width
        self._target = target.copy()
        return RobotAction(target_q=target.copy(), seq=action.seq, send_time=now, expires_at=action.expires_at)

    def sync_sample(self) -> tuple[float, float, float, float]:
        t = self.clock.now()  # robot_time is the host clock at the read
        return (t, t, t, t)

    def _stop_motion(self) -> None:
        stop = getattr(self._robot, "stop", None)
        if callable(stop):
            stop()
            return
        q = np.asarray(self._robot.current_joint_state.position, dtype=np.float64)[:7]
        self._robot.move(self._franky.JointMotion(q.tolist()), asynchronous=True)

    def estop(self) -> None:
        """Stop the motion now and refuse commands until :meth:`reset_estop` (not the hardware e-stop button)."""
        self._estop = True
        if self._robot is not None:
            try:
                self._stop_motion()
            except Exception as exc:  # noqa: BLE001 - latched anyway
                logger.error("franka driver: stop failed: %s", exc)

    def reset_estop(self) -> None:
        if self._robot is not None:
            self._robot.recover_from_errors()
        self._estop = False


__all__ = ["ARM_JOINTS", "FINGER_JOINTS", "FrankyDriver", "import_franky"]
