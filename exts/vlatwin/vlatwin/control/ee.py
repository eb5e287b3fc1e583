"""End-effector delta-pose action space through differential IK (OpenVLA/Bridge, LIBERO OSC_POSE, SimplerEnv).

Action: ``[dx, dy, dz, r1, r2, r3, gripper]``: a translation [m] and a rotation [rad] per control step,
the rotation as roll-pitch-yaw (extrinsic X, Y, Z: ``R = Rz(yaw) Ry(pitch) Rx(roll)``) or as an
axis-angle rotation vector; then one gripper dimension when the robot has gripper joints.

Frames (poses ``T = [R p]`` of the EE in the chain's base frame, ``_b``):

* ``frame="base"``: ``p' = p + d`` and ``R' = dR @ R``: the translation is along the base axes and the
  rotation turns the EE about its own origin around base-frame axes (ManiSkill's "root translation,
  root-aligned body rotation", what OpenVLA's Bridge/Fractal deltas mean).
* ``frame="tool"``: ``p' = p + R @ d`` and ``R' = R @ dR``: both along/about the EE's own axes.

The delta is applied to the **last commanded EE pose** by default (``reference="target"``): a held
pose does not creep when the drives sag under gravity, and a zero action commands exactly the same
joints. When IK cannot reach a target (limits, out of reach), the stored pose becomes the pose the
commanded joints actually reach, so unreachable requests do not wind up. ``reference="measured"``
applies the delta to the EE pose from the measured joint positions instead. Both restart from the
measured state on :meth:`~vlatwin.control.base.Controller.reset`.
"""

from __future__ import annotations

import numpy as np

from vlatwin.control._common import ArmGripperController, check_choice, logger
from vlatwin.control.base import RobotJoints, match_joint_names
from vlatwin.control.ik import IKResult, solve_ik
from vlatwin.control.rotations import rotvec_to_matrix, rpy_to_matrix
from vlatwin.errors import VlatwinError

ROTATION_FORMATS = ("rpy", "axis_angle")
DELTA_FRAMES = ("base", "tool")


def delta_rotation(rotation, rotation_format: str = "rpy") -> np.ndarray:
    """3x3 rotation of a delta given as roll-pitch-yaw or a rotation vector [rad]."""
    check_choice("rotation format", rotation_format, ROTATION_FORMATS)
    return rpy_to_matrix(rotation) if rotation_format == "rpy" else rotvec_to_matrix(rotation)


def apply_ee_delta(pose_b: np.ndarray, translation, rotation, *, rotation_format: str = "rpy", frame: str = "base"):
    """The EE pose (4x4, base frame) after a delta (see the module docstring for the frame rules).

    Args:
        pose_b: current EE pose in the base frame (4x4).
        translation: (3,) [m], along the base axes or the EE's axes.
        rotation: (3,) [rad], rpy or a rotation vector, about base-frame axes or the EE's axes.
        rotation_format: ``rpy`` or ``axis_angle``.
        frame: ``base`` or ``tool``.
    """
    check_choice("delta frame", frame, DELTA_FRAMES)
    d_rot = delta_rotation(rotation, rotation_format)
    rot, pos = pose_b[:3, :3], pose_b[:3, 3]
    out = np.eye(4)
    if frame == "base":
        out[:3, :3] = d_rot @ rot
        out[:3, 3] = pos + np.asarray(translation, dtype=float)
    else:
        out[:3, :3] = rot @ d_rot
        out[:3, 3] = pos + rot @ np.asarray(translation, dtype=float)
    return out


class EndEffectorDeltaController(ArmGripperController):
    """EE delta-pose actions turned into arm joint targets by damped-least-squares IK.

    Args:
        robot_joints: arm/gripper split and limits of the scene; the chain's joints must be arm joints
            (arm joints off the chain are not commanded: their targets stay NaN = unchanged).
        chain: kinematic chain of the arm (its joints are matched to the scene's by prim path, or by
            name for a chain built from a robot description).
        rotation: ``rpy`` or ``axis_angle``.
        frame: ``base`` or ``tool`` (see the module docstring).
        max_translation: bound per translation component per control step [m].
        max_rotation: bound per rotation component per control step [rad].
        reference: ``target`` (last commanded EE pose) or ``measured``.
        ik_iterations: DLS iterations per control step (it stops earlier once within 1e-5 m / 1e-4 rad).
        damping: DLS damping.
        gripper: a :class:`~vlatwin.control.gripper.GripperMapping` or convention name (default ``close_0_1``).
    """

    def __init__(
        self,
        robot_joints: RobotJoints,
        chain,
        *,
        rotation: str = "rpy",
        frame: str = "base",
        max_translation: float = 0.05,
        max_rotation: float = 0.25,
        reference: str = "target",
        ik_iterations: int = 20,
        damping: float = 0.05,
        gripper=None,
        control_dt: float | None = None,
        max_joint_speed: float = 2.0,
        joint_limit_margin: float = 0.1,
    ) -> None:
        super().__init__(robot_joints, gripper=gripper, reference=reference)
        if not max_joint_speed > 0:
            raise VlatwinError(f"ee_delta_pose: max_joint_speed must be > 0 [rad/s], got {max_joint_speed}")
        # IK near a singularity can ask for a large joint jump; a real arm cannot follow it (Panda: 2.2-2.6
        # rad/s) and a stiff drive asked to would slam the arm into the table. Each control step moves every
        # arm joint by at most max_joint_speed * control_dt.
        self.max_joint_step = None if control_dt is None else float(max_joint_speed) * float(control_dt)
        # IK keeps this far [rad | m] inside the joint limits: a joint pressed against a limit fights its
        # drive, and the Panda's joint 4 limit (-3.0718 rad) lies 0.07 rad from the -pi wrap, where a small
        # overshoot in the simulator flips the sign of the joint error (measured: an XPBD blow-up).
        if joint_limit_margin < 0:
            raise VlatwinError(f"ee_delta_pose: joint_limit_margin must be >= 0, got {joint_limit_margin}")
        self.joint_limit_margin = float(joint_limit_margin)
        self.rotation = check_choice("rotation format", rotation, ROTATION_FORMATS)
        self.frame = check_choice("delta frame", frame, DELTA_FRAMES)
        if not (max_translation > 0 and max_rotation > 0):
            raise VlatwinError(
                f"ee_delta_pose: max_translation and max_rotation must be > 0, got {max_translation}, {max_rotation}"
            )
        self.chain = chain
        self.chain_index = match_joint_names(chain.joint_names, robot_joints.joint_names)
        """Index in SimModelInfo.joint_names of each chain joint, base to tip."""
        not_arm = [
            chain.joint_names[k] for k, i in enumerate(self.chain_index) if i not in set(robot_joints.arm.tolist())
        ]
        if not_arm:
            raise VlatwinError(f"ee_delta_pose: chain joints {not_arm} are not arm joints of the robot description")
        self.ik_iterations = int(ik_iterations)
        self.damping = float(damping)
        self.last_ik: IKResult | None = None
        """The IK outcome of the last :meth:`compute` (residual, convergence), for logging."""
        self._pose_cmd: np.ndarray | None = None  # last commanded EE pose (4x4, base frame)

        rot_names = ("droll", "dpitch", "dyaw") if rotation == "rpy" else ("drx", "dry", "drz")
        rot_text = "roll-pitch-yaw (extrinsic XYZ)" if rotation == "rpy" else "axis-angle rotation vector"
        self.spec = self._spec(
            "ee_delta_pose",
            ("dx", "dy", "dz", *rot_names),
            ("m", "m", "m", "rad", "rad", "rad"),
            [-max_translation] * 3 + [-max_rotation] * 3,
            [max_translation] * 3 + [max_rotation] * 3,
            f"EE delta pose per control step in the {frame} frame (EE {chain.ee_link or '?'}, base "
            f"{chain.base_link or '?'}): translation [m], rotation as {rot_text} [rad], applied to the {reference} "
            "EE pose",
        )

    @property
    def lower(self) -> np.ndarray:
        """Chain joint lower limits (n,) [rad | m] IK targets respect: the scene's, ``joint_limit_margin`` inside."""
        lower, upper = self.joints.lower[self.chain_index], self.joints.upper[self.chain_index]
        return np.minimum(lower + self.joint_limit_margin, (lower + upper) / 2)

    @property
    def upper(self) -> np.ndarray:
        """Chain joint upper limits (n,) [rad | m] IK targets respect: the scene's, ``joint_limit_margin`` inside."""
        lower, upper = self.joints.lower[self.chain_index], self.joints.upper[self.chain_index]
        return np.maximum(upper - self.joint_limit_margin, (lower + upper) / 2)

    def ee_pose_b(self, state) -> np.ndarray:
        """EE pose (4x4) in the chain's base frame from the measured joint positions of ``state``."""
        return self.chain.fk(self._measured_q(state)[self.chain_index])

    def reset(self, state) -> None:
        super().reset(state)
        q = np.clip(self._target[self.chain_index], self.lower, self.upper)
        self._target[self.chain_index] = q
        self._pose_cmd = self.chain.fk(q)
        self.last_ik = None

    def compute(self, action, state):
        """Arm joint targets that move the EE by one delta action (see the module docstring)."""
        act = self._prepare(action, state)
        idx = self.chain_index
        if self.reference == "measured":
            q_start = self._reference(state, idx)
            pose = self.chain.fk(q_start)
        else:
            q_start, pose = self._target[idx], self._pose_cmd
        target = apply_ee_delta(pose, act[:3], act[3:6], rotation_format=self.rotation, frame=self.frame)
        result = solve_ik(
            self.chain, q_start, target, self.lower, self.upper, max_iters=self.ik_iterations, damping=self.damping
        )
        q_new = result.q
        limited = False
        if self.max_joint_step is not None:
            step = np.clip(q_new - q_start, -self.max_joint_step, self.max_joint_step)
            limited = bool(np.any(step != q_new - q_start))
            q_new = q_start + step
        self.last_ik = result
        if not result.converged:
            logger.debug(
                "ee_delta_pose: IK left %.3g m / %.3g rad of the target (limits or reach)",
                result.position_error,
                result.rotation_error,
            )
        self._target[idx] = q_new
        # Keep the exact target while IK reaches it (no round-off drift); otherwise what the joints reach.
        self._pose_cmd = target if result.converged and not limited else self.chain.fk(q_new)
        return self._command(idx, act)


__all__ = ["DELTA_FRAMES", "ROTATION_FORMATS", "EndEffectorDeltaController", "apply_ee_delta", "delta_rotation"]
