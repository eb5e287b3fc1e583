"""Shared bookkeeping of the arm + gripper controllers (private)."""

from __future__ import annotations

import logging

import numpy as np

from vlatwin.control.base import ActionSpec, Controller, RobotJoints
from vlatwin.control.gripper import GripperMapping, closure_to_joint_targets
from vlatwin.errors import VlatwinError
from vlatwin.sim.types import JointCommand

logger = logging.getLogger("vlatwin.control")

REFERENCES = ("target", "measured")


def check_choice(what: str, value: str, known) -> str:
    """``value`` if it is one of ``known``, else a one-line error listing them."""
    if value not in known:
        raise VlatwinError(f"unknown {what} {value!r}; known: {', '.join(known)}")
    return value


class ArmGripperController(Controller):
    """Arm dims first, then one gripper dim when the robot has gripper joints.

    Keeps the last commanded joint targets (J,) so delta/velocity actions can build on them.
    """

    def __init__(self, robot_joints: RobotJoints, *, gripper=None, reference: str = "target") -> None:
        self.joints = robot_joints
        self.reference = check_choice("reference", reference, REFERENCES)
        self.gripper = GripperMapping.parse(gripper) if robot_joints.gripper.size else None
        self.last_clipped: tuple[str, ...] = ()
        """Action dimensions clipped to the spec bounds in the last :meth:`compute` (empty when none)."""
        self._target: np.ndarray | None = None  # last commanded targets (J,) [rad | m]

    # ------------------------------------------------------------ spec helpers
    def _spec(self, name: str, names, units, low, high, description: str) -> ActionSpec:
        names, units, low, high = list(names), list(units), list(low), list(high)
        if self.gripper is not None:
            names.append("gripper")
            units.append("1")
            low.append(self.gripper.low)
            high.append(self.gripper.high)
            description = f"{description}; {self.gripper.description}"
        return ActionSpec(
            name=name, names=tuple(names), units=tuple(units), low=low, high=high, description=description
        )

    # ------------------------------------------------------------ per step
    def reset(self, state) -> None:
        self._target = self._measured_q(state).copy()

    def _measured_q(self, state) -> np.ndarray:
        q = np.asarray(state.joint_q, dtype=np.float64)
        if q.shape != (self.joints.num_joints,):
            raise VlatwinError(
                f"controller {self.spec.name!r}: state has {q.size} joint positions, "
                f"the robot description {self.joints.num_joints}"
            )
        return q

    def _prepare(self, action, state) -> np.ndarray:
        """Validated, clipped action; resets from ``state`` first if :meth:`reset` was never called."""
        arr = self.spec.validate(action)
        if self._target is None:
            self.reset(state)
        clipped, self.last_clipped = self.spec.clip(arr)
        if self.last_clipped:
            logger.debug("%s: clipped %s to the action bounds", self.spec.name, ", ".join(self.last_clipped))
        return clipped

    def _reference(self, state, indices: np.ndarray) -> np.ndarray:
        """Where relative actions start: the last commanded targets or the measured positions."""
        source = self._measured_q(state) if self.reference == "measured" else self._target
        return np.clip(source[indices], self.joints.lower[indices], self.joints.upper[indices])

    def _command(self, commanded: np.ndarray, action: np.ndarray, target_qd: np.ndarray | None = None):
        """JointCommand with the stored targets at ``commanded`` (+ gripper from ``action[-1]``), NaN elsewhere.

        ``target_qd`` is 0 for commanded joints unless given: a position target with zero desired velocity
        is a plain PD hold, whatever an earlier velocity command left in the drives.
        """
        grip = self.joints.gripper
        if self.gripper is not None:
            closure = self.gripper.to_closure(action[-1])
            self._target[grip] = closure_to_joint_targets(
                closure, self.joints.gripper_open_q, self.joints.gripper_closed_q
            )
        indices = np.concatenate([commanded, grip]) if self.gripper is not None else commanded
        target_q = np.full(self.joints.num_joints, np.nan)
        target_q[indices] = self._target[indices]
        if target_qd is None:
            target_qd = np.full(self.joints.num_joints, np.nan)
            target_qd[indices] = 0.0
        return JointCommand(target_q=target_q, target_qd=target_qd)
