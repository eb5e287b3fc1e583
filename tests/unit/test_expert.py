"""Scripted expert (numpy only): grasp yaw choice, speed-limited steps, waypoints and gripper timing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from vlatwin.control.ee import apply_ee_delta
from vlatwin.control.kinematics import ChainJoint, KinematicChain
from vlatwin.control.rotations import matrix_to_rotvec
from vlatwin.policy.expert import (
    ExpertParams,
    NoisyExpert,
    RandomPolicy,
    ScriptedExpert,
    choose_yaw,
    down_rotation,
    grasp_yaw_candidates,
    step_towards,
    wrap_angle,
)
from vlatwin.tasks.base import ExpertGoal
from vlatwin.utils.transforms import make_transform, matrix_to_quat_wxyz, rot_z


def test_grasp_yaw_candidates_cube_has_four_face_aligned_yaws():
    cands = sorted(grasp_yaw_candidates(0.3, (0.0225, 0.0225, 0.0225)))
    expected = sorted(wrap_angle(0.3 + k * np.pi / 2) for k in range(4))
    np.testing.assert_allclose(cands, expected, atol=1e-12)


def test_grasp_yaw_candidates_block_closes_across_the_narrow_side():
    # 0.12 x 0.04 block: the fingers (along the TCP Y) must close along the object's Y -> TCP yaw = object yaw (+pi).
    cands = grasp_yaw_candidates(0.2, (0.06, 0.02, 0.02))
    assert sorted(cands) == pytest.approx(sorted([wrap_angle(0.2), wrap_angle(0.2 + np.pi)]))


def test_choose_yaw_nearest_and_within_joint7_limits():
    cands = [0.0, np.pi / 2, np.pi, -np.pi / 2]
    assert choose_yaw(cands, 0.2) == 0.0
    assert choose_yaw(cands, 1.3) == pytest.approx(np.pi / 2)
    # Joint 7 at 2.8 (limit 2.8973): turning the TCP by -pi/2 would need q7 = 2.8 + pi/2 -> take the next nearest.
    yaw = choose_yaw(cands, -1.3, q7=2.8, q7_limits=(-2.8973, 2.8973), margin=0.2)
    assert yaw == pytest.approx(0.0)


def test_step_towards_is_speed_limited_and_lands_exactly():
    cmd = make_transform(down_rotation(0.0), [0.5, 0.0, 1.0])
    target = make_transform(down_rotation(0.5), [0.6, 0.0, 1.0])
    dp, rpy = step_towards(cmd, target, 0.01, 0.05)
    assert np.linalg.norm(dp) == pytest.approx(0.01)
    moved = apply_ee_delta(cmd, dp, rpy)
    assert np.linalg.norm(matrix_to_rotvec(moved[:3, :3] @ cmd[:3, :3].T)) == pytest.approx(0.05, abs=1e-9)
    for _ in range(20):
        dp, rpy = step_towards(moved, target, 0.01, 0.05)
        moved = apply_ee_delta(moved, dp, rpy)
    np.testing.assert_allclose(moved, target, atol=1e-9)


# ------------------------------------------------------------------ a kinematic stand-in for the sim
def _cartesian_chain() -> KinematicChain:
    """x, y, z prismatic + yaw revolute + a fixed flip so the EE points down at q = 0 (a 'gantry')."""
    joints = [
        ChainJoint(name="jx", kind="prismatic", axis=np.array([1.0, 0, 0]), lower=-2, upper=2),
        ChainJoint(name="jy", kind="prismatic", axis=np.array([0, 1.0, 0]), lower=-2, upper=2),
        ChainJoint(name="jz", kind="prismatic", axis=np.array([0, 0, 1.0]), lower=-2, upper=2),
        ChainJoint(name="jyaw", kind="revolute", axis=np.array([0, 0, 1.0]), lower=-2.9, upper=2.9),
    ]
    flip = make_transform(np.diag([1.0, -1.0, -1.0]))
    return KinematicChain(joints, [np.eye(4)] * 4 + [flip], base_link="base", ee_link="ee")


class _GantryTwin:
    """Joint state + body poses driven exactly by the expert's EE deltas (no physics): what the expert sees."""

    def __init__(self, obj_pose):
        self.chain = _cartesian_chain()
        self.info = SimpleNamespace(
            joint_names=("/R/jx", "/R/jy", "/R/jz", "/R/jyaw", "/R/finger_l", "/R/finger_r"),
            joint_lower=np.array([-2, -2, -2, -2.9, 0.0, 0.0]),
            joint_upper=np.array([2, 2, 2, 2.9, 0.04, 0.04]),
            body_paths=("/R/base", "/World/Objects/cube"),
        )
        self.info.body_index = lambda p: self.info.body_paths.index(p)
        self.q = np.array([0.5, 0.0, 0.3, 0.0, 0.04, 0.04])
        self.obj = np.asarray(obj_pose, float)

    def state(self):
        poses = np.array([[0, 0, 0, 1, 0, 0, 0], self.obj], dtype=float)
        return SimpleNamespace(joint_q=self.q.copy(), body_pose_w=poses)

    def apply(self, action):
        from vlatwin.control.ik import solve_ik

        pose = self.chain.fk(self.q[:4])
        target = apply_ee_delta(pose, action[:3], action[3:6])
        self.q[:4] = solve_ik(self.chain, self.q[:4], target, self.chain.lower, self.chain.upper, max_iters=50).q
        self.q[4:] = 0.04 * (1.0 - action[6])  # fingers follow the command at once (0 = open)


def _run(expert, twin, steps, *, on_step=None):
    log = []
    for k in range(steps):
        obs = SimpleNamespace(state=twin.state(), step=k)
        action = expert.act(obs)
        twin.apply(action)
        log.append((expert.phase, action.copy(), twin.chain.fk(twin.q[:4]).copy()))
        if on_step:
            on_step(k, twin, expert)
    return log


def _cube_pose(x, y, z, yaw):
    return [x, y, z, *matrix_to_quat_wxyz(rot_z(yaw)[:3, :3])]


def test_pick_lift_waypoints_and_gripper_timing():
    half = (0.0225,) * 3
    twin = _GantryTwin(_cube_pose(0.55, 0.1, 0.0225, 0.4))
    goal = ExpertGoal(skill="pick_lift", object_path="/World/Objects/cube", object_half_extents=half, lift_height=0.1)
    params = ExpertParams()
    expert = ScriptedExpert(lambda s, i: goal, twin.info, twin.chain, control_hz=20, base_path="/R/base", params=params)
    assert expert.info.action_space == "ee_delta_pose" and expert.info.gripper_convention == "close_0_1"

    grasped = {}

    def squeeze(k, twin, expert):  # the fingers stop on the cube faces once closed; a held cube follows the TCP
        tcp = twin.chain.fk(twin.q[:4])[:3, 3]
        if expert.phase in ("close", "lift", "hold"):
            twin.q[4:] = max(twin.q[4], 0.0225)
            grasped.setdefault("offset", twin.obj[:3] - tcp)
            twin.obj[:3] = tcp + grasped["offset"]

    log = _run(expert, twin, 150, on_step=squeeze)
    phases = [p for p, _, _ in log]
    assert phases[0] == "approach" and "descend" in phases and "close" in phases and phases[-1] == "hold"
    steps = np.array([a[:3] for _, a, _ in log])
    assert np.max(np.linalg.norm(steps, axis=1)) <= params.speed / 20 + 1e-9  # speed limit per control step

    # At the grasp: TCP over the cube centre, top face - grasp_depth high, yaw face-aligned, gripper open until then.
    i_close = phases.index("close")
    tcp = log[i_close - 1][2]
    np.testing.assert_allclose(tcp[:2, 3], [0.55, 0.1], atol=1e-4)
    assert tcp[2, 3] == pytest.approx(0.045 - params.grasp_depth, abs=1e-4)
    assert tcp[:3, 2] @ np.array([0, 0, -1.0]) > 0.9999  # pointing down
    yaw = np.arctan2(tcp[1, 0], tcp[0, 0])
    assert min(abs(wrap_angle(yaw - 0.4 - k * np.pi / 2)) for k in range(4)) < 1e-3
    assert all(a[6] == 0.0 for _, a, _ in log[:i_close])
    # Gripper closes and the arm holds still for at least close_min_steps before lifting.
    i_lift = phases.index("lift")
    assert i_lift - i_close >= params.close_min_steps
    assert all(np.allclose(a[:6], 0.0) and a[6] == 1.0 for _, a, _ in log[i_close:i_lift])
    # Lifted straight up by lift_height + lift_margin with the gripper closed.
    end = log[-1][2]
    assert end[2, 3] - tcp[2, 3] == pytest.approx(goal.lift_height + params.lift_margin, abs=1e-3)
    np.testing.assert_allclose(end[:2, 3], tcp[:2, 3], atol=1e-3)
    assert log[-1][1][6] == 1.0


def test_missed_grasp_reopens_and_retries():
    twin = _GantryTwin(_cube_pose(0.5, 0.0, 0.0225, 0.0))
    goal = ExpertGoal(skill="pick_lift", object_path="/World/Objects/cube", object_half_extents=(0.0225,) * 3)
    expert = ScriptedExpert(lambda s, i: goal, twin.info, twin.chain, control_hz=20, base_path="/R/base")
    log = _run(expert, twin, 80)  # fingers close fully: nothing between them
    phases = [p for p, _, _ in log]
    assert "regrasp" in phases and expert.failure == "missed grasp"
    assert log[phases.index("regrasp")][1][6] == 0.0


def test_push_starts_behind_the_object_on_the_far_side_from_the_goal():
    twin = _GantryTwin(_cube_pose(0.5, -0.1, 0.025, 0.0))
    goal = ExpertGoal(skill="push", object_path="/World/Objects/cube", object_half_extents=(0.025,) * 3,
                      target_w=(0.5, 0.12, 0.025))
    expert = ScriptedExpert(lambda s, i: goal, twin.info, twin.chain, control_hz=20, base_path="/R/base")
    log = _run(expert, twin, 80)
    phases = [p for p, _, _ in log]
    assert "push" in phases
    tcp = log[phases.index("push") - 1][2]
    p = expert.p
    assert tcp[0, 3] == pytest.approx(0.5, abs=1e-3)
    assert tcp[1, 3] == pytest.approx(-0.1 - (0.025 + 0.01 + p.push_gap), abs=1e-3)  # behind, away from the goal
    assert tcp[2, 3] == pytest.approx(p.push_height + 0.007, abs=1e-3)  # fingertips push_height above the table
    assert all(a[6] == p.push_closure for _, a, _ in log)  # (nearly) closed fingers form the paddle
    # While pushing the TCP moves towards the goal (+y).
    i = phases.index("push")
    assert log[i + 5][2][1, 3] > log[i][2][1, 3]


class _SaggingGantry(_GantryTwin):
    """The gantry with finger bodies that sit ``offset_w`` [m] off the commanded TCP (a loaded arm's joints stretch),
    their origins 0.045 m up the TCP's Z as on the Panda."""

    def __init__(self, obj_pose, offset_w):
        super().__init__(obj_pose)
        self.offset_w = np.asarray(offset_w, float)
        self.info.body_paths = ("/R/base", "/World/Objects/cube", "/R/panda_leftfinger", "/R/panda_rightfinger")

    def paddle_w(self):
        return self.chain.fk(self.q[:4])[:3, 3] + self.offset_w

    def state(self):
        tcp = self.chain.fk(self.q[:4])
        finger = [*(self.paddle_w() - tcp[:3, 2] * 0.045), *matrix_to_quat_wxyz(tcp[:3, :3])]
        poses = np.array([[0, 0, 0, 1, 0, 0, 0], self.obj, finger, finger], dtype=float)
        return SimpleNamespace(joint_q=self.q.copy(), body_pose_w=poses)


def test_push_steers_the_fingers_onto_the_line_when_the_arm_holds_them_off():
    """The fingers sit 15 mm sideways of the command (push along +y): the expert lowers and pushes with the fingers
    themselves on the object's line, the commanded path 15 mm the other way."""
    twin = _SaggingGantry(_cube_pose(0.5, -0.1, 0.025, 0.0), offset_w=[0.015, 0.0, 0.0])
    goal = ExpertGoal(skill="push", object_path="/World/Objects/cube", object_half_extents=(0.025,) * 3,
                      target_w=(0.5, 0.12, 0.025))
    expert = ScriptedExpert(lambda s, i: goal, twin.info, twin.chain, control_hz=20, base_path="/R/base")
    paddle = []
    log = _run(expert, twin, 80, on_step=lambda k, tw, ex: paddle.append(tw.paddle_w()))
    phases = [p for p, _, _ in log]
    assert "push" in phases and "realign" not in phases
    i = phases.index("push")
    assert abs(paddle[i - 1][0] - 0.5) < 0.003, paddle[i - 1]  # lowered onto the line, not 15 mm beside it
    assert all(abs(p[0] - 0.5) < 0.003 for p in paddle[i:i + 10])
    assert log[i][2][0, 3] == pytest.approx(0.5 - 0.015, abs=0.003)  # the command carries the offset
    assert paddle[i + 9][1] > paddle[i][1] + 0.005  # and it pushes towards the goal


def test_gripper_skill_descends_then_closes():
    twin = _GantryTwin(_cube_pose(0.45, 0.05, 0.0225, 0.0))
    goal = ExpertGoal(skill="gripper", object_path="/World/Objects/cube", object_half_extents=(0.0225,) * 3,
                      target_w=(0.45, 0.05, 0.0225), gripper="close")
    expert = ScriptedExpert(lambda s, i: goal, twin.info, twin.chain, control_hz=20, base_path="/R/base")
    log = _run(expert, twin, 80)
    phases = [p for p, _, _ in log]
    i = phases.index("actuate")
    assert all(a[6] == 0.0 for _, a, _ in log[:i]) and log[-1][1][6] == 1.0
    np.testing.assert_allclose(log[i][2][:2, 3], [0.45, 0.05], atol=1e-3)


def test_expert_is_deterministic_and_noisy_expert_is_seeded():
    def run(policy):
        twin = _GantryTwin(_cube_pose(0.55, 0.1, 0.0225, 0.4))
        policy.reset()
        return np.array([a for _, a, _ in _run(policy, twin, 30)])

    goal = ExpertGoal(skill="pick_lift", object_path="/World/Objects/cube", object_half_extents=(0.0225,) * 3)
    twin = _GantryTwin(_cube_pose(0.55, 0.1, 0.0225, 0.4))
    make = lambda: ScriptedExpert(lambda s, i: goal, twin.info, twin.chain, control_hz=20, base_path="/R/base")
    np.testing.assert_array_equal(run(make()), run(make()))
    a, b = run(NoisyExpert(make(), 0.001, seed=3)), run(NoisyExpert(make(), 0.001, seed=3))
    np.testing.assert_array_equal(a, b)
    clean = run(make())
    assert not np.allclose(a[:, :6], clean[:, :6])
    np.testing.assert_array_equal(a[:, 6], clean[:, 6])  # gripper untouched


def test_random_policy_in_bounds_and_seeded():
    from vlatwin.control.base import ActionSpec

    spec = ActionSpec(name="ee_delta_pose", names=tuple("abcdefg"), units=("m",) * 3 + ("rad",) * 3 + ("1",),
                      low=[-0.05] * 3 + [-0.25] * 3 + [0.0], high=[0.05] * 3 + [0.25] * 3 + [1.0])
    p1, p2 = RandomPolicy(spec, seed=1), RandomPolicy(spec, seed=1)
    a1 = np.array([p1.act(None) for _ in range(50)])
    a2 = np.array([p2.act(None) for _ in range(50)])
    np.testing.assert_array_equal(a1, a2)
    assert np.all(a1 >= spec.low) and np.all(a1 <= spec.high)
    assert p1.info.action_space == "ee_delta_pose"
