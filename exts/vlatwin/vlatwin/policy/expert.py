"""A scripted expert: a :class:`~vlatwin.policy.base.Policy` that solves the built-in tasks from the simulation state.

It reads the skill to run from an :class:`~vlatwin.tasks.base.ExpertGoal` (``task.expert_goal(state, info)``)
and the live body poses of the :class:`~vlatwin.sim.types.SimState`, and emits actions in the
``ee_delta_pose`` space (translation [m] + roll-pitch-yaw [rad] per control step in the robot base frame,
applied to the last commanded EE pose, then one gripper value in the ``close_0_1`` convention: 0 open,
1 closed), the same space datasets record. The EE is the tool centre point (TCP) between the fingertips.

Per skill a small state machine walks through waypoints (all top-down, the hand's Z pointing down):

* ``reach``: move the TCP to the target and hold.
* ``pick_lift``: above the object -> descend -> close -> wait for the fingers to stop -> lift -> hold
  (a missed or slipped grasp re-opens and tries again).
* ``pick_place``: the pick, then carry above the target -> lower -> open -> retreat.
* ``push``: gripper closed, the TCP behind the object on the far side from the goal, lowered to push
  height, pushed along the object->goal line; it re-aligns from above when the object drifts off the line.
* ``gripper``: move above the target, then open or close.

The expert keeps its own copy of the commanded EE pose (it integrates its own actions like the
controller does), limits every step to a translation and rotation speed, and uses no randomness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vlatwin.control.base import match_joint_names
from vlatwin.control.ee import apply_ee_delta
from vlatwin.control.factory import robot_joints_from_info
from vlatwin.control.rotations import matrix_to_rotvec, matrix_to_rpy, rotvec_to_matrix
from vlatwin.policy.base import Policy, PolicyInfo
from vlatwin.utils.transforms import make_transform, quat_wxyz_to_matrix, rot_z

#: Robot base and EE bodies of the built-in Panda scene.
PANDA_BASE = "/World/Robot/panda_link0"
PANDA_EE = "/World/Robot/panda_link7"
#: Franka's TCP: 0.1034 m past the flange (0.107 m along link 7's Z), turned -45 deg with the hand.
PANDA_TCP = make_transform(rot_z(-np.pi / 4), [0.0, 0.0, 0.107 + 0.1034])
#: Fingertips reach this far past the TCP along its Z [m] (built-in Panda).
FINGERTIP_BEYOND_TCP = 0.007
#: From a finger body's origin (its joint, 0.0584 m past the hand frame) to the TCP depth along the finger's Z [m].
FINGER_ORIGIN_TO_TCP = 0.1034 - 0.0584
#: Closed-finger paddle half thickness along the TCP X [m] (finger boxes are 0.02 m wide).
FINGER_HALF_THICKNESS = 0.01
#: Widest object the open gripper fits around [m] (2 x 0.04 m travel).
GRIPPER_MAX_WIDTH = 0.08
#: Body name suffixes of the two fingers (built-in Panda).
FINGER_BODIES = ("panda_leftfinger", "panda_rightfinger")

#: The hand pointing straight down: TCP x = world x, z = world -z (yaw 0).
R_DOWN = np.diag([1.0, -1.0, -1.0])

GoalFn = Callable[[object, object], object]
"""(SimState, SimModelInfo) -> ExpertGoal."""


@dataclass(frozen=True, kw_only=True)
class ExpertParams:
    """Speeds, heights and timing of the scripted expert (SI units)."""

    speed: float = 0.25
    """Free-space TCP speed [m/s]."""
    slow_speed: float = 0.08
    """TCP speed near the object (final descent, lift start, pushing) [m/s]."""
    rot_speed: float = 1.2
    """TCP rotation speed [rad/s]."""
    approach_height: float = 0.10
    """Pre-grasp / pre-place TCP height above the grasp / place pose [m]."""
    grasp_depth: float = 0.03
    """TCP depth below the object's top face at the grasp [m] (deeper grips hold better in XPBD)."""
    table_clearance: float = 0.006
    """Fingertips stay this far above the surface the object rests on [m]."""
    reach_tolerance: float = 0.006
    """Measured TCP within this of a waypoint counts as arrived [m]."""
    close_min_steps: int = 6
    """Control steps the gripper closes before the fingers may count as stopped."""
    close_max_steps: int = 16
    """Control steps after which the close phase ends anyway."""
    finger_still_speed: float = 0.004
    """Finger speed below which they count as stopped [m/s]."""
    open_steps: int = 6
    """Control steps to wait for the fingers to open on release."""
    lift_margin: float = 0.03
    """Extra lift above the goal's ``lift_height`` [m]."""
    max_retries: int = 3
    """Re-grasps / re-alignments before the expert just holds."""
    push_height: float = 0.012
    """Fingertips above the surface while pushing [m]."""
    push_closure: float = 0.9
    """Gripper command while pushing (close_0_1)."""
    push_gap: float = 0.03
    """Gap between the paddle and the object before the push starts [m]."""
    push_tolerance: float = 0.008
    """The push stops when the object centre is this close to the goal [m]."""
    push_lateral_limit: float = 0.025
    """Re-align when the fingers' contact point is this far off the object->goal line [m]."""
    push_steer_gain: float = 0.3
    """``push``: share of the fingers' sideways offset from the push line added to the commanded path's offset per
    control step, while lowering and pushing (integral action) [-]."""
    push_steer_limit: float = 0.04
    """``push``: largest offset of the commanded path from the push line [m]."""
    push_near_base: float = 0.45
    """``push``: a push start point closer than this to the robot base (horizontally) gets a leaning hand and a lower pre-push waypoint [m]."""
    push_near_approach_height: float = 0.06
    """``push``: pre-push waypoint height above the push height near the base [m]."""
    push_near_tilt: float = 0.45
    """``push``: near the base the hand leans this far from straight down, its wrist away from the base [rad]."""
    reach_above: float = 0.01
    """``reach``: the TCP stops this far above the target point [m]."""
    joint7_margin: float = 0.2
    """Keep joint 7 this far inside its limits when choosing a grasp yaw [rad]."""
    accel: float = 0.8
    """TCP acceleration limit of the smooth (ramped) moves: lift with an object, carry, place [m/s^2]."""
    carry_speed: float = 0.3
    """Top TCP speed while carrying an object [m/s]. Fast, because a held cube creeps down the fingers at a steady
    ~0.5 mm per control step even at 64 XPBD iterations: the sooner it is set down, the fewer drops (measured
    over place + stack, 100 episodes: 22 drops at 0.15 m/s and 0.4 m/s^2, 16 at 0.25 and 0.6, 4 at 0.3 and 0.8)."""
    carry_clearance: float = 0.04
    """``pick_place``: the carried object's bottom stays this far above the support's top [m]."""
    carry_min_lift: float = 0.04
    """``pick_place``: lift the object at least this far off the table before carrying [m]."""
    settle_steps: int = 4
    """Control steps to hold still (and average the object's pose) before carrying and before lowering."""
    place_tolerance: float = 0.004
    """``pick_place``: horizontal object-to-target error corrected before lowering [m]."""
    max_place_corrections: int = 3
    """``pick_place``: correction moves above the target before lowering anyway."""
    place_clearance: float = 0.004
    """``pick_place``: release when the object is this close to its resting height on the support [m]."""
    limit_slow_zone: float = 0.25
    """Move at ``slow_speed`` while an arm joint (but the last) is this close to a limit [rad]."""
    drop_tolerance: float = 0.025
    """The object counts as slipped/dropped when it sank this far in the fingers since the grasp [m]."""


def _pose_w(pose7) -> np.ndarray:
    pose7 = np.asarray(pose7, dtype=float)
    return make_transform(quat_wxyz_to_matrix(pose7[3:]), pose7[:3])


def _yaw_of(rot: np.ndarray) -> float:
    """Yaw of a frame's X axis about +Z (for top-down frames)."""
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


def wrap_angle(a: float) -> float:
    return float((a + np.pi) % (2.0 * np.pi) - np.pi)


def down_rotation(yaw: float) -> np.ndarray:
    """TCP rotation pointing straight down with its X axis at ``yaw`` about +Z."""
    return rot_z(yaw)[:3, :3] @ R_DOWN


def grasp_yaw_candidates(object_yaw: float, half_extents) -> list[float]:
    """TCP yaws (fingers close along the TCP Y) that put the fingers on opposite faces of a box.

    Both face pairs qualify when both fit the open gripper (a cube: four yaws 90 deg apart), else the
    narrower pair (two yaws 180 deg apart).
    """
    hx, hy = float(half_extents[0]), float(half_extents[1])
    fits_x, fits_y = 2 * hx < GRIPPER_MAX_WIDTH - 0.01, 2 * hy < GRIPPER_MAX_WIDTH - 0.01
    out = []
    # Fingers along object X (TCP Y || object X): TCP yaw = object yaw + 90 deg (+ 180).
    if fits_x and (hx <= hy + 1e-6 or not fits_y):
        out += [object_yaw + np.pi / 2, object_yaw - np.pi / 2]
    if fits_y and (hy <= hx + 1e-6 or not fits_x):
        out += [object_yaw, object_yaw + np.pi]
    if not out:  # too wide both ways: try the narrower pair anyway
        out = [object_yaw + np.pi / 2, object_yaw - np.pi / 2] if hx <= hy else [object_yaw, object_yaw + np.pi]
    return [wrap_angle(a) for a in out]


def choose_yaw(candidates, current_yaw: float, q7: float | None = None, q7_limits=None, margin: float = 0.2) -> float:
    """The candidate yaw nearest ``current_yaw`` whose joint 7 stays inside its limits.

    With the hand pointing down, turning the TCP by +d about world Z turns joint 7 by about -d.
    """
    cands = sorted(candidates, key=lambda a: (abs(wrap_angle(a - current_yaw)), a))
    if q7 is None or q7_limits is None:
        return cands[0]
    lo, hi = q7_limits
    for yaw in cands:
        q7_new = q7 - wrap_angle(yaw - current_yaw)
        if lo + margin <= q7_new <= hi - margin:
            return yaw
    return cands[0]


def step_towards(cmd: np.ndarray, target: np.ndarray, max_trans: float, max_rot: float) -> tuple[np.ndarray, np.ndarray]:
    """(translation, rpy) of one base-frame delta from pose ``cmd`` towards ``target`` (both 4x4), speed-limited."""
    dp = target[:3, 3] - cmd[:3, 3]
    dist = float(np.linalg.norm(dp))
    if dist > max_trans:
        dp = dp * (max_trans / dist)
    rv = matrix_to_rotvec(target[:3, :3] @ cmd[:3, :3].T)
    ang = float(np.linalg.norm(rv))
    if ang > max_rot:
        rv = rv * (max_rot / ang)
    return dp, matrix_to_rpy(rotvec_to_matrix(rv))


class ScriptedExpert(Policy):
    """State-machine expert for the ``reach``/``pick_lift``/``pick_place``/``push``/``gripper`` skills.

    Args:
        goal_fn: ``(state, info) -> ExpertGoal``, e.g. ``task.expert_goal``.
        info: the loaded scene's :class:`~vlatwin.sim.types.SimModelInfo`.
        chain: the arm's kinematic chain from the base body to the TCP (see :func:`panda_tcp_chain`).
        control_hz: control rate the actions are for.
        base_path: prim path of the chain's base body (its frame is the action frame).
        params: speeds, heights and timing.
    """

    def __init__(
        self,
        goal_fn: GoalFn,
        info,
        chain,
        *,
        control_hz: float = 20.0,
        base_path: str = PANDA_BASE,
        params: ExpertParams | None = None,
        name: str = "scripted_expert",
    ) -> None:
        self.goal_fn = goal_fn
        self.sim_info = info
        self.chain = chain
        self.dt = 1.0 / float(control_hz)
        self.base_path = base_path
        self.p = params or ExpertParams()
        self.info = PolicyInfo(name=name, action_space="ee_delta_pose", control_hz=float(control_hz))
        joints = robot_joints_from_info(info)
        self._chain_idx = match_joint_names(chain.joint_names, info.joint_names)
        self._grip_idx = np.asarray(joints.gripper, dtype=int)
        self._grip_open = np.asarray(joints.gripper_open_q, dtype=float)
        self._grip_closed = np.asarray(joints.gripper_closed_q, dtype=float)
        self._q7_limits = (float(chain.lower[-1]), float(chain.upper[-1]))
        # The finger bodies' midpoint is where a held object really is: the TCP from the measured joint
        # angles misses the joints' own compliance (XPBD joints stretch by up to ~3 cm under load).
        paths = tuple(getattr(info, "body_paths", ()))
        fingers = [next((i for i, b in enumerate(paths) if b.endswith(suffix)), None) for suffix in FINGER_BODIES]
        self._finger_bodies = None if None in fingers else fingers
        self.reset()

    @classmethod
    def for_task(cls, task, info, chain, **kwargs) -> ScriptedExpert:
        """An expert for a :class:`~vlatwin.tasks.base.Task` (its ``expert_goal`` and control rate)."""
        kwargs.setdefault("control_hz", task.control_hz)
        kwargs.setdefault("name", f"scripted_expert/{task.name}")
        return cls(task.expert_goal, info, chain, **kwargs)

    # ------------------------------------------------------------------ episode
    def reset(self) -> None:
        self.phase = "start"
        self.phase_steps = 0
        self.retries = 0
        self.grip = 0.0
        self.failure: str | None = None
        """Why the expert gave up (None while it has not)."""
        self._cmd: np.ndarray | None = None  # commanded TCP pose, base frame
        # The pose the expert planned to command (before noise a wrapper added): arrival checks use it, so a
        # noisy expert still walks through its phases (the noisy pose is never exactly at a waypoint).
        self._cmd_plan: np.ndarray | None = None
        self._T_wb: np.ndarray | None = None
        self._yaw: float | None = None
        self._grasp_z_offset = 0.0  # TCP z - object z at grasp (world)
        self._finger_prev: np.ndarray | None = None
        self._still = 0
        self._hold_pose: np.ndarray | None = None
        self._v = 0.0  # TCP speed of the last commanded step [m/s]
        self._grip_rel0: np.ndarray | None = None  # object - hand at the grasp (world)
        self._path_offset = np.zeros(2)  # push: commanded path - push line, xy world [m] (see _steer_paddle)
        self._samples: list[np.ndarray] = []
        self.history: list[str] = []

    # -------------------------------------------------------------- state access
    def _arm_q(self, state) -> np.ndarray:
        return np.asarray(state.joint_q, dtype=float)[self._chain_idx]

    def _finger_q(self, state) -> np.ndarray:
        return np.asarray(state.joint_q, dtype=float)[self._grip_idx]

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.phase_steps = 0
        self.history.append(phase)

    # ------------------------------------------------------------------- acting
    def act(self, observation) -> np.ndarray:
        state = observation.state
        info = self.sim_info
        if self._T_wb is None:
            # The base is welded: read its pose once (the measured pose wobbles by ~1 mrad under XPBD).
            self._T_wb = _pose_w(state.body_pose_w[info.body_index(self.base_path)])
            self._T_bw = np.linalg.inv(self._T_wb)
        q = self._arm_q(state)
        tcp_b = self.chain.fk(q)
        if self._cmd is None or np.linalg.norm(self._cmd[:3, 3] - tcp_b[:3, 3]) > 0.05:
            # First step (the controller's reference is the measured pose at reset) or a lost track.
            self._cmd = tcp_b.copy()
            self._cmd_plan = None
        self._tcp_w = self._T_wb @ tcp_b
        self._q7 = float(q[-1])
        goal = self.goal_fn(state, info)
        fingers = self._finger_q(state)
        self._finger_speed = 0.0 if self._finger_prev is None else float(np.max(np.abs(fingers - self._finger_prev))) / self.dt
        self._finger_prev = fingers
        self._fingers = fingers
        self._hand_w = self._tcp_w[:3, 3].copy()
        self._paddle_w = self._hand_w
        if self._finger_bodies is not None:
            poses = np.asarray(state.body_pose_w, dtype=float)
            self._hand_w = 0.5 * (poses[self._finger_bodies[0], :3] + poses[self._finger_bodies[1], :3])
            # Where the closed fingers touch a pushed object: their points at the TCP's depth. A leaning hand moves
            # them sideways from the finger origins (0.45 rad of lean: 2 cm).
            self._paddle_w = 0.5 * sum(
                poses[b, :3] + quat_wxyz_to_matrix(poses[b, 3:7])[:, 2] * FINGER_ORIGIN_TO_TCP for b in self._finger_bodies)
        if self._yaw is None:
            self._yaw = _yaw_of(self._tcp_w[:3, :3])

        handler = getattr(self, f"_skill_{goal.skill}", None)
        if handler is None:
            raise ValueError(f"scripted expert: unknown skill {goal.skill!r}")
        target_w, speed = handler(goal, state)
        self.phase_steps += 1
        target_b = self._T_bw @ target_w
        # Near a joint limit (the folded arm close to the base) XPBD blows up on fast motion: slow down.
        lo, hi = np.asarray(self.chain.lower, float)[:-1], np.asarray(self.chain.upper, float)[:-1]
        if float(np.min(np.minimum(q[:-1] - lo, hi - q[:-1]))) < self.p.limit_slow_zone:
            speed = min(speed, self.p.slow_speed)
        dp, rpy = step_towards(self._cmd, target_b, speed * self.dt, self.p.rot_speed * self.dt)
        self._cmd_before = self._cmd
        self._cmd = apply_ee_delta(self._cmd, dp, rpy)
        self._cmd_plan = self._cmd
        self._v = float(np.linalg.norm(dp)) / self.dt
        return np.r_[dp, rpy, self.grip]

    def executed(self, action) -> None:
        """Tell the expert the action that was actually executed instead of its own (e.g. with noise added),
        so its copy of the commanded EE pose stays the controller's."""
        if getattr(self, "_cmd_before", None) is not None:
            action = np.asarray(action, dtype=float)
            self._cmd = apply_ee_delta(self._cmd_before, action[:3], action[3:6])

    # ------------------------------------------------------------------ helpers
    def _object(self, goal, state):
        """(object pose 4x4 world, half extents (3,))."""
        pose = _pose_w(state.body_pose_w[self.sim_info.body_index(goal.object_path)])
        half = np.asarray(goal.object_half_extents if goal.object_half_extents is not None else (0.025,) * 3, float)
        return pose, half

    def _down(self, pos_w, yaw: float | None = None) -> np.ndarray:
        return make_transform(down_rotation(self._yaw if yaw is None else yaw), pos_w)

    def _arrived(self, target_w: np.ndarray, tol: float | None = None) -> bool:
        """Commanded pose at the target and the measured TCP within tolerance."""
        tol = self.p.reach_tolerance if tol is None else tol
        cmd_w = self._T_wb @ self._planned()
        cmd_ok = np.linalg.norm(cmd_w[:3, 3] - target_w[:3, 3]) < 1e-4 and np.linalg.norm(
            matrix_to_rotvec(target_w[:3, :3] @ cmd_w[:3, :3].T)
        ) < 2e-3
        return bool(cmd_ok and np.linalg.norm(self._tcp_w[:3, 3] - target_w[:3, 3]) < tol)

    def _object_extent_z(self, pose: np.ndarray, half: np.ndarray) -> float:
        """Half height of the (possibly tilted) box along world Z."""
        return float(np.abs(pose[2, :3]) @ half)

    def _grasp_yaw(self, pose: np.ndarray, half: np.ndarray) -> float:
        cands = grasp_yaw_candidates(_yaw_of(pose[:3, :3]), half)
        return choose_yaw(cands, _yaw_of(self._tcp_w[:3, :3]), self._q7, self._q7_limits, self.p.joint7_margin)

    def _grasp_z(self, pose: np.ndarray, half: np.ndarray) -> float:
        hz = self._object_extent_z(pose, half)
        top, bottom = pose[2, 3] + hz, pose[2, 3] - hz
        return max(top - self.p.grasp_depth, bottom + self.p.table_clearance + FINGERTIP_BEYOND_TCP)

    def _closure(self) -> float:
        """Measured closure in [0, 1] (0 open)."""
        span = self._grip_open - self._grip_closed
        return float(np.clip(np.mean((self._grip_open - self._fingers) / np.where(span == 0, 1, span)), 0, 1))

    def _smooth(self, target_w: np.ndarray, vmax: float) -> tuple[np.ndarray, float]:
        """(target, speed) for a ramped move: accelerate from the last step's speed by at most ``accel`` and
        brake to land on the target (a held object follows gentle accelerations)."""
        a = self.p.accel
        dist = float(np.linalg.norm((self._T_bw @ target_w)[:3, 3] - self._cmd[:3, 3]))
        v = min(vmax, self._v + a * self.dt, max(np.sqrt(2.0 * a * dist), 2.0 * a * self.dt))
        return target_w, v

    def _mark_grasp(self, obj_w: np.ndarray) -> None:
        self._grip_rel0 = obj_w - self._hand_w

    def _dropped(self, obj_w: np.ndarray) -> bool:
        """The object sank in (or left) the fingers since the grasp."""
        if self._grip_rel0 is None:
            return False
        rel = obj_w - self._hand_w
        tol = self.p.drop_tolerance if self._finger_bodies is not None else 0.03
        return bool(rel[2] < self._grip_rel0[2] - tol or np.linalg.norm(rel[:2] - self._grip_rel0[:2]) > 0.03)

    def _hold(self) -> tuple[np.ndarray, float]:
        if self._hold_pose is None:
            self._hold_pose = self._T_wb @ self._cmd
        return self._hold_pose, self.p.slow_speed

    # ----------------------------------------------------------------- skills
    def _skill_reach(self, goal, state):
        """Above the target, then down onto it (open fingers straddle a small object; the TCP stops
        ``reach_above`` over the target point so the hand does not knock the object away)."""
        p = self.p
        self.grip = 1.0 if goal.gripper == "close" else 0.0
        target = np.asarray(goal.target_w, float)
        yaw = None
        if goal.object_path is not None:
            pose, half = self._object(goal, state)
            if self.phase in ("start", "approach"):
                self._yaw = self._grasp_yaw(pose, half)
        dest = self._down(target + [0.0, 0.0, p.reach_above], yaw)
        above = self._down(dest[:3, 3] + [0.0, 0.0, p.approach_height], yaw)
        if self.phase == "start":
            self._set_phase("approach")
        if self.phase == "approach":
            if self._arrived(above, 0.015):
                self._set_phase("descend")
            else:
                return above, p.speed
        if self.phase == "descend" and self._arrived(dest, 0.005):
            self._set_phase("hold")
        return dest, p.slow_speed

    def _skill_gripper(self, goal, state):
        """Above the object at a grasp yaw, down to the grasp height, then open or close."""
        p = self.p
        start_grip = 0.0 if goal.gripper == "close" else self.grip
        if goal.object_path is not None:
            pose, half = self._object(goal, state)
            if self.phase in ("start", "approach"):
                self._yaw = self._grasp_yaw(pose, half)
            xy = pose[:2, 3]
            z = self._grasp_z(pose, half)
        else:
            xy, z = np.asarray(goal.target_w[:2], float), float(goal.target_w[2])
        dest = self._down([xy[0], xy[1], z])
        above = self._down([xy[0], xy[1], z + p.approach_height])
        if self.phase == "start":
            self._set_phase("approach")
        if self.phase == "approach":
            self.grip = start_grip
            if self._arrived(above, 0.015):
                self._set_phase("descend")
            else:
                return above, p.speed
        if self.phase == "descend":
            self.grip = start_grip
            if self._arrived(dest, p.reach_tolerance):
                self._dest = dest
                self._set_phase("actuate")
            else:
                return dest, p.speed if self._tcp_w[2, 3] > z + 0.04 else p.slow_speed
        self.grip = 1.0 if goal.gripper == "close" else 0.0
        return self._dest, p.slow_speed

    def _pick(self, goal, state, *, after_lift: str, lift_height: Callable[[float], float] | None = None, smooth: bool = False):
        """Shared pick phases; returns (target, speed) or None once lifted (phase == after_lift).

        ``lift_height(object start z)``: how far to lift [m] (default: the goal's ``lift_height`` + ``lift_margin``);
        ``smooth``: ramp the lift's speed (see :meth:`_smooth`).
        """
        p = self.p
        pose, half = self._object(goal, state)
        obj_w = pose[:3, 3]
        if self.phase == "start":
            self._set_phase("approach")
        if self.phase in ("approach", "descend") and self.phase_steps == 0:
            self._yaw = self._grasp_yaw(pose, half)
        grasp_z = self._grasp_z(pose, half)
        above = self._down([obj_w[0], obj_w[1], grasp_z + p.approach_height])
        grasp = self._down([obj_w[0], obj_w[1], grasp_z])

        if self.phase == "approach":
            self.grip = 0.0
            self._yaw = self._grasp_yaw(pose, half)  # follow the object while far away
            if self._arrived(above, 0.012) and self._closure() < 0.05:
                self._set_phase("descend")
            else:
                return above, p.speed
        if self.phase == "descend":
            self.grip = 0.0
            if self._arrived(grasp):
                self._set_phase("close")
            else:
                fast = self._tcp_w[2, 3] > grasp_z + 0.04
                return grasp, p.speed if fast else p.slow_speed
        if self.phase == "close":
            self.grip = 1.0
            still = self._finger_speed < p.finger_still_speed
            self._still = self._still + 1 if still else 0
            if (self.phase_steps >= p.close_min_steps and self._still >= 2) or self.phase_steps >= p.close_max_steps:
                width = float(np.sum(self._fingers))
                if width < 0.3 * 2 * min(half[0], half[1]):  # closed on nothing
                    return self._regrasp("missed grasp")
                self._grasp_z_offset = self._tcp_w[2, 3] - obj_w[2]
                self._lift_start = self._tcp_w[:3, 3].copy()
                self._obj_start_z = obj_w[2]
                self._mark_grasp(obj_w)
                height = goal.lift_height + p.lift_margin if lift_height is None else lift_height(obj_w[2])
                self._lift_z = self._obj_start_z + self._grasp_z_offset + height
                self._set_phase("lift")
            else:
                return self._T_wb @ self._cmd, p.slow_speed
        if self.phase == "regrasp":
            self.grip = 0.0
            up = self._down([self._tcp_w[0, 3], self._tcp_w[1, 3], grasp_z + p.approach_height])
            if self.phase_steps >= p.open_steps and self._tcp_w[2, 3] > grasp_z + 0.5 * p.approach_height:
                self._set_phase("approach")
                return above, p.speed
            return up, p.slow_speed
        if self.phase == "lift":
            self.grip = 1.0
            # The object must follow the hand; if it stayed behind, open and try again.
            if self._dropped(obj_w):
                return self._regrasp("object slipped")
            top = self._down([self._lift_start[0], self._lift_start[1], self._lift_z])
            if self._arrived(top, 0.01):
                self._set_phase(after_lift)
            elif smooth:
                return self._smooth(top, p.speed * 0.6)
            else:
                return top, p.slow_speed if self.phase_steps < 8 else p.speed * 0.6
        return None

    def _regrasp(self, why: str):
        self.retries += 1
        self.failure = why
        self._grip_rel0 = None
        if self.retries > self.p.max_retries:
            self._set_phase("give_up")
            self.grip = 0.0
            return self._hold()
        self._set_phase("regrasp")
        self.grip = 0.0
        return self._T_wb @ self._cmd, self.p.slow_speed

    def _skill_pick_lift(self, goal, state):
        if self.phase in ("give_up",):
            return self._hold()
        out = self._pick(goal, state, after_lift="hold")
        if out is not None:
            return out
        pose, _ = self._object(goal, state)
        if self.phase == "hold":
            self.grip = 1.0
            if self._dropped(pose[:3, 3]):
                self._hold_pose = None
                return self._regrasp("object dropped")
            return self._hold()
        return self._hold()

    def _planned(self) -> np.ndarray:
        return self._cmd if self._cmd_plan is None else self._cmd_plan

    def _cmd_at(self, target_w: np.ndarray) -> bool:
        """The commanded pose reached ``target_w`` (whatever the measured pose does)."""
        cmd_w = self._T_wb @ self._planned()
        return bool(np.linalg.norm(cmd_w[:3, 3] - target_w[:3, 3]) < 1e-4
                    and np.linalg.norm(matrix_to_rotvec(target_w[:3, :3] @ cmd_w[:3, :3].T)) < 2e-3)

    def _skill_pick_place(self, goal, state):
        """Pick, lift just clear of the support, settle, carry (ramped, open loop in the commanded frame),
        correct the object's measured offset above the target, lower, release, retreat.

        The carry moves the *commanded* TCP by the object's offset from the target measured while the arm
        stands still, instead of chasing the measured object every step: the measured TCP and object
        oscillate under XPBD while moving, and chasing them builds up a limit cycle.
        """
        p = self.p
        if self.phase in ("give_up", "done"):
            return self._hold()
        target = np.asarray(goal.target_w, float)
        pose, _ = self._object(goal, state)

        def lift_height(z0: float) -> float:
            # The object's bottom carry_clearance above the support's top (target z - hz).
            return max(p.carry_min_lift, target[2] + p.carry_clearance - z0)

        out = self._pick(goal, state, after_lift="settle", lift_height=lift_height, smooth=True)
        if out is not None:
            return out
        obj_w = pose[:3, 3]
        # (While lowering, the support pushes the object up in the fingers once it touches.)
        lowering_near = self.phase == "lower" and obj_w[2] - target[2] < 0.015
        if self.phase in ("settle", "carry", "adjust", "lower") and not lowering_near and self._dropped(obj_w):
            self._hold_pose = None
            return self._regrasp("object dropped")
        if self.phase == "settle":
            self.grip = 1.0
            if self.phase_steps == 0:
                self._samples = []
                self._corrections = 0
                self._still_pose = self._T_wb @ self._cmd
            self._samples.append(self._still_pose[:3, 3] - obj_w)
            if len(self._samples) < p.settle_steps:
                return self._still_pose, p.slow_speed
            self._carry_off = np.mean(self._samples, axis=0)  # commanded TCP - object
            self._carry_z = self._still_pose[2, 3]
            self._set_phase("carry")
        off = self._carry_off
        above = self._down([target[0] + off[0], target[1] + off[1], self._carry_z])
        if self.phase == "carry":
            self.grip = 1.0
            if self._cmd_at(above):
                self._set_phase("adjust")
            else:
                return self._smooth(above, p.carry_speed)
        if self.phase == "adjust":
            self.grip = 1.0
            if self.phase_steps == 0:
                self._samples = []
            self._samples.append(obj_w[:2] - target[:2])
            if len(self._samples) < p.settle_steps:
                return above, p.slow_speed
            err = np.mean(self._samples, axis=0)
            if np.linalg.norm(err) > p.place_tolerance and self._corrections < p.max_place_corrections:
                self._corrections += 1
                self._carry_off[:2] -= err
                self._set_phase("carry")
                off = self._carry_off
                return self._smooth(self._down([target[0] + off[0], target[1] + off[1], self._carry_z]), p.slow_speed)
            self._set_phase("lower")
        if self.phase == "lower":
            self.grip = 1.0
            place_z = target[2] + off[2] + p.place_clearance
            dest = self._down([target[0] + off[0], target[1] + off[1], place_z])
            if self.phase_steps == 0:
                self._wait = 0
            self._wait = self._wait + 1 if self._cmd_at(dest) else 0
            # Release once the object rests on the support (or the hand has stood at the place pose a while).
            if obj_w[2] - target[2] < p.place_clearance or self._wait > p.settle_steps:
                self._set_phase("release")
            else:
                return self._smooth(dest, p.slow_speed)
        if self.phase == "release":
            self.grip = 0.0
            if self.phase_steps == 0:
                self._still_pose = self._T_wb @ self._cmd
            if self.phase_steps >= p.open_steps and self._closure() < 0.3:
                self._retreat = self._still_pose[:3, 3] + np.array([0, 0, p.approach_height * 0.6])
                self._set_phase("retreat")
            else:
                return self._still_pose, p.slow_speed
        if self.phase == "retreat":
            self.grip = 0.0
            dest = self._down(self._retreat)
            if self._arrived(dest, 0.01):
                self._set_phase("done")
            return dest, p.slow_speed
        return self._hold()

    def _push_geometry(self, goal, state):
        pose, half = self._object(goal, state)
        obj = pose[:3, 3]
        to_goal = np.asarray(goal.target_w, float)[:2] - obj[:2]
        dist = float(np.linalg.norm(to_goal))
        d = to_goal / dist if dist > 1e-9 else np.array([1.0, 0.0])
        # Support of the box along d (its half size in the push direction).
        r = float(abs(pose[:2, 0] @ d) * half[0] + abs(pose[:2, 1] @ d) * half[1])
        bottom = obj[2] - self._object_extent_z(pose, half)
        z = bottom + self.p.push_height + FINGERTIP_BEYOND_TCP
        return obj, d, dist, r, z

    def _push_rotation(self, xy_w, d, yaw) -> tuple[np.ndarray, float]:
        """(TCP rotation, pre-push waypoint height) for a push starting at ``xy_w``.

        Near the robot base the pointing-down hand puts the wrist close to the shoulder and folds the elbow
        (joint 4) onto its limit, where XPBD diverges: there the hand leans so its wrist moves away from the
        base, and the pre-push waypoint is lower (a high one lifts the wrist up to the shoulder)."""
        p = self.p
        R = down_rotation(yaw)
        xy_b = (self._T_bw @ np.r_[xy_w[0], xy_w[1], 0.0, 1.0])[:2]
        rad = float(np.linalg.norm(xy_b))
        if rad >= p.push_near_base or p.push_near_tilt <= 0.0:
            return R, p.approach_height
        # Lean the fingertips towards the base (about the horizontal axis across the radial direction).
        w = (self._T_wb[:3, :3] @ np.r_[xy_b / max(rad, 1e-9), 0.0])[:2]
        w = w / max(float(np.linalg.norm(w)), 1e-9)
        axis = np.array([-w[1], w[0], 0.0])
        R = rotvec_to_matrix(p.push_near_tilt * axis) @ R
        return R, p.push_near_approach_height

    def _steer_paddle(self, on_line_w, d) -> None:
        """Integrate the fingers' measured sideways offset from the line through ``on_line_w`` along ``d`` into the
        commanded path's offset: a loaded arm holds its fingers a steady 1-3 cm off the command (XPBD's joints
        stretch), which a proportional fix leaves in place."""
        normal = np.array([-d[1], d[0]])
        lateral = float((self._paddle_w[:2] - on_line_w) @ normal)
        offset = self._path_offset - self.p.push_steer_gain * lateral * normal
        norm = float(np.linalg.norm(offset))
        self._path_offset = offset if norm <= self.p.push_steer_limit else offset * (self.p.push_steer_limit / norm)

    def _skill_push(self, goal, state):
        p = self.p
        # Nearly closed: fully closed fingers press on each other at their lower limit, which XPBD
        # (4 iterations) sometimes turns into NaN; a 4 mm gap still makes one paddle.
        self.grip = p.push_closure
        if self.phase in ("give_up", "done"):
            return self._hold()
        obj, d, dist, r, z = self._push_geometry(goal, state)
        if self.phase == "start":
            self._set_phase("approach")
        yaw = choose_yaw([float(np.arctan2(d[1], d[0])) + k * np.pi for k in (0, 1)], self._yaw, self._q7, self._q7_limits, p.joint7_margin)
        if self.phase == "approach":
            if self.phase_steps == 0:
                self._push_dir, self._push_yaw = d, yaw
                self._yaw = yaw
                xy = obj[:2] - d * (r + FINGER_HALF_THICKNESS + p.push_gap)
                self._push_R, self._push_h = self._push_rotation(xy, d, yaw)
                # Turn the hand first, where it is (folding the arm while turning diverges).
                cmd_w = self._T_wb @ self._cmd
                self._turn = make_transform(self._push_R, [*cmd_w[:2, 3], max(cmd_w[2, 3], z + p.approach_height)])
                self._turned = False
                self._path_offset = np.zeros(2)
            if not self._turned:
                if self._arrived(self._turn, 0.02):
                    self._turned = True
                else:
                    return self._turn, p.speed
            xy = obj[:2] - self._push_dir * (r + FINGER_HALF_THICKNESS + p.push_gap)
            start = make_transform(self._push_R, [*xy, z + self._push_h])
            if self._arrived(start, 0.012):
                self._set_phase("lower")
            else:
                return start, p.speed
        if self.phase == "lower":
            xy = obj[:2] - self._push_dir * (r + FINGER_HALF_THICKNESS + p.push_gap)
            if self._tcp_w[2, 3] < z + 0.04:  # near the push height (the arm's offset while it still travels differs)
                self._steer_paddle(xy, self._push_dir)
            start = make_transform(self._push_R, [*(xy + self._path_offset), z])
            if self.phase_steps == 0:
                self._wait = 0
            cmd_w = self._T_wb @ self._cmd
            self._wait = self._wait + 1 if np.linalg.norm(cmd_w[:3, 3] - start[:3, 3]) < 1e-3 else 0
            # Arrived, or the command stands there and the measured TCP stays a few mm off (joint sag).
            if self._arrived(start, 0.006) or self._wait > p.settle_steps:
                self._set_phase("push")
            else:
                return start, p.speed if self._tcp_w[2, 3] > z + 0.04 else p.slow_speed
        if self.phase == "push":
            if dist < p.push_tolerance:
                self._set_phase("retreat")
            else:
                rel = self._paddle_w[:2] - obj[:2]  # the fingers' real contact point (see __init__)
                lateral = float(rel @ np.array([-d[1], d[0]]))
                along = float(rel @ d)
                if abs(lateral) > p.push_lateral_limit or along > -r:
                    self.retries += 1
                    self.failure = "object drifted off the push line"
                    if self.retries > p.max_retries:
                        self._set_phase("give_up")
                        return self._hold()
                    self._set_phase("realign")
                else:
                    # Drive the paddle face to where the object centre should end up, minus the contact offset;
                    # steer back onto the line through the object.
                    stop = np.asarray(goal.target_w, float)[:2] - d * (r + FINGER_HALF_THICKNESS)
                    lat_fix = -lateral * np.array([-d[1], d[0]])
                    self._steer_paddle(obj[:2], d)
                    dest_xy = stop + lat_fix + self._path_offset
                    dest = make_transform(self._push_R, [dest_xy[0], dest_xy[1], z])
                    speed = p.slow_speed * (0.5 if dist < 0.03 else 1.0)
                    return dest, speed
        if self.phase in ("realign", "retreat"):
            if self.phase_steps == 0:  # straight up from the commanded pose (a target that follows the
                # measured TCP moves every step and is never reached)
                cmd_w = self._T_wb @ self._cmd
                self._up_xy = cmd_w[:2, 3].copy()
            up = self._down([self._up_xy[0], self._up_xy[1], z + p.approach_height * 0.6])
            if self._arrived(up, 0.015):
                self._set_phase("approach" if self.phase == "realign" else "done")
            return up, p.slow_speed
        return self._hold()


def panda_tcp_chain(stage, base_path: str = PANDA_BASE, ee_path: str = PANDA_EE):
    """The built-in Panda's chain from its base to the TCP, read from a USD stage (path or ``Usd.Stage``)."""
    from vlatwin.control.kinematics import KinematicChain

    if not hasattr(stage, "GetPrimAtPath"):
        from vlatwin.usd.check import open_stage

        stage = open_stage(stage)
    return KinematicChain.from_usd(stage, base_path, ee_path, PANDA_TCP)


class NoisyExpert(Policy):
    """Gaussian noise (seeded, per episode) on the arm dimensions of another policy's actions; the gripper is kept."""

    def __init__(self, expert: Policy, noise_std: float | np.ndarray, seed: int = 0) -> None:
        self.expert = expert
        self.noise_std = np.asarray(noise_std, dtype=float)
        self.seed = int(seed)
        self._episode = -1
        self.info = PolicyInfo(
            name=f"{expert.info.name}+noise", action_space=expert.info.action_space, chunk_size=expert.info.chunk_size,
            control_hz=expert.info.control_hz, gripper_convention=expert.info.gripper_convention,
        )
        self.reset()

    def reset(self, episode: int | None = None) -> None:
        # Seeded by the episode (work item) when the loop says which, so a resumed run draws what an
        # uninterrupted one did; counting resets is the fallback for callers that do not say.
        self._episode = self._episode + 1 if episode is None else int(episode)
        self._rng = np.random.default_rng([self.seed, self._episode])
        self.expert.reset()

    def act(self, observation) -> np.ndarray:
        action = np.array(self.expert.act(observation), dtype=float)
        noise = self._rng.normal(0.0, 1.0, size=action.shape) * self.noise_std
        noise[..., -1] = 0.0
        action = action + noise
        if hasattr(self.expert, "executed"):
            self.expert.executed(action)
        return action

    @property
    def phase(self) -> str | None:
        return getattr(self.expert, "phase", None)


class RandomPolicy(Policy):
    """Uniform random actions within an :class:`~vlatwin.control.base.ActionSpec`'s bounds (seeded baseline)."""

    def __init__(self, spec, seed: int = 0, *, control_hz: float | None = None) -> None:
        self.spec = spec
        self.seed = int(seed)
        low, high = np.asarray(spec.low, float), np.asarray(spec.high, float)
        self._low = np.where(np.isfinite(low), low, -1.0)
        self._high = np.where(np.isfinite(high), high, 1.0)
        self._episode = -1
        self.info = PolicyInfo(name="random", action_space=spec.name, control_hz=control_hz)
        self.reset()

    def reset(self, episode: int | None = None) -> None:
        # Seeded by the episode (work item) when the loop says which (see NoisyExpert.reset).
        self._episode = self._episode + 1 if episode is None else int(episode)
        self._rng = np.random.default_rng([self.seed, self._episode])

    def act(self, observation) -> np.ndarray:
        return self._rng.uniform(self._low, self._high)


__all__ = [
    "PANDA_BASE",
    "PANDA_EE",
    "PANDA_TCP",
    "ExpertParams",
    "NoisyExpert",
    "RandomPolicy",
    "ScriptedExpert",
    "choose_yaw",
    "down_rotation",
    "grasp_yaw_candidates",
    "panda_tcp_chain",
    "step_towards",
]
