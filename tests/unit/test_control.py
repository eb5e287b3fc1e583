"""Controllers and action spaces: kinematics, DLS IK, EE deltas, joint controllers, gripper conventions, specs."""

import json

import numpy as np
import pytest

from vlatwin.control import (
    ActionSpec,
    ChainJoint,
    EndEffectorDeltaController,
    GripperConvention,
    GripperMapping,
    JointPositionController,
    JointVelocityController,
    KinematicChain,
    apply_ee_delta,
    closure_to_gripper,
    dls_step,
    gripper_to_closure,
    joints_to_closure,
    make_controller,
    robot_joints_from_info,
    solve_ik,
)
from vlatwin.control.rotations import matrix_to_rotvec, matrix_to_rpy, pose_error, rotvec_to_matrix, rpy_to_matrix
from vlatwin.errors import StageError, VlatwinError
from vlatwin.robots import get_builtin_robot
from vlatwin.robots.panda import FINGER_TRAVEL, PANDA_FLANGE_D, PANDA_HOME, PANDA_LIMITS, panda_flange_pose
from vlatwin.sim.types import SimModelInfo, SimState
from vlatwin.utils.transforms import make_transform, matrix_to_quat_wxyz, rot_x, rot_z

FLANGE = make_transform(pos=[0.0, 0.0, PANDA_FLANGE_D])
HOME = np.array(PANDA_HOME)
LOWER = np.array([lo for lo, _ in PANDA_LIMITS])
UPPER = np.array([hi for _, hi in PANDA_LIMITS])
JOINT_PATHS = tuple(
    f"/World/Robot/joints/{n}"
    for n in [*(f"panda_joint{i}" for i in range(1, 8)), "panda_finger_joint_left", "panda_finger_joint_right"]
)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def panda():
    return get_builtin_robot("panda")


@pytest.fixture(scope="module")
def chain(panda):
    """The Panda arm from base to flange."""
    return KinematicChain.from_description(panda, "panda_link7", FLANGE)


@pytest.fixture(scope="module")
def info():
    """Model info of a scene with the Panda, as the Newton backend reports it (prim paths, limits)."""
    return SimModelInfo(
        stage_path="memory",
        physics_dt=1 / 600,
        joint_names=JOINT_PATHS,
        joint_lower=np.r_[LOWER, 0.0, 0.0],
        joint_upper=np.r_[UPPER, FINGER_TRAVEL, FINGER_TRAVEL],
        body_paths=(),
    )


@pytest.fixture(scope="module")
def robot_joints(info):
    return robot_joints_from_info(info)


def make_state(q_arm=HOME, fingers=(FINGER_TRAVEL, FINGER_TRAVEL)) -> SimState:
    q = np.r_[np.asarray(q_arm, dtype=float), fingers]
    return SimState(
        time=0.0, step=0, joint_q=q, joint_qd=np.zeros(9), body_pose_w=np.zeros((0, 7)), body_vel_w=np.zeros((0, 6))
    )


def mixed_chain() -> KinematicChain:
    """A 5-joint chain mixing revolute and prismatic joints with skewed axes and offsets."""
    rng = np.random.default_rng(7)
    kinds = ["revolute", "prismatic", "revolute", "revolute", "prismatic"]
    joints = []
    for i, kind in enumerate(kinds):
        axis = rng.normal(size=3)
        joints.append(ChainJoint(name=f"j{i}", kind=kind, axis=axis / np.linalg.norm(axis), lower=-2.0, upper=2.0))
    fixed = [make_transform(rotvec_to_matrix(rng.normal(size=3)), rng.uniform(-0.3, 0.3, 3)) for _ in range(6)]
    return KinematicChain(joints, fixed)


def planar_2r(lower1: float = -1.0, upper1: float = 1.0) -> KinematicChain:
    """Two revolute joints about Z, links of 0.5 m and 0.4 m along X (a planar arm)."""
    joints = [
        ChainJoint(name="j1", kind="revolute", axis=np.array([0.0, 0.0, 1.0]), lower=lower1, upper=upper1),
        ChainJoint(name="j2", kind="revolute", axis=np.array([0.0, 0.0, 1.0]), lower=-2.5, upper=2.5),
    ]
    fixed = [np.eye(4), make_transform(pos=[0.5, 0, 0]), make_transform(pos=[0.4, 0, 0])]
    return KinematicChain(joints, fixed)


def fd_jacobian(chain: KinematicChain, q: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of fk: linear velocity and base-frame angular velocity per joint."""
    jac = np.zeros((6, q.size))
    for i in range(q.size):
        dq = np.zeros_like(q)
        dq[i] = h
        plus, minus = chain.fk(q + dq), chain.fk(q - dq)
        jac[:3, i] = (plus[:3, 3] - minus[:3, 3]) / (2 * h)
        jac[3:, i] = matrix_to_rotvec(plus[:3, :3] @ minus[:3, :3].T) / (2 * h)
    return jac


def random_panda_q(rng, margin: float = 0.1) -> np.ndarray:
    return rng.uniform(LOWER + margin, UPPER - margin)


# ---------------------------------------------------------------- rotations and kinematics
def test_rotation_helpers_round_trip():
    """rpy and rotation vectors convert to matrices and back, including angles near pi."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        rpy = rng.uniform([-3, -1.5, -3], [3, 1.5, 3])
        np.testing.assert_allclose(matrix_to_rpy(rpy_to_matrix(rpy)), rpy, atol=1e-9)
        rotvec = rng.normal(size=3)
        rotvec *= rng.uniform(0, np.pi - 1e-6) / np.linalg.norm(rotvec)
        np.testing.assert_allclose(matrix_to_rotvec(rotvec_to_matrix(rotvec)), rotvec, atol=1e-7)
    np.testing.assert_allclose(rpy_to_matrix([0.3, 0, 0]), rot_x(0.3), atol=1e-12)
    np.testing.assert_allclose(rotvec_to_matrix([0, 0, 0.7]), rot_z(0.7), atol=1e-12)


def test_jacobian_matches_finite_differences_mixed_chain():
    """The geometric Jacobian of a revolute+prismatic chain equals central differences of fk."""
    chain = mixed_chain()
    rng = np.random.default_rng(1)
    for _ in range(10):
        q = rng.uniform(-1.5, 1.5, chain.num_joints)
        np.testing.assert_allclose(chain.jacobian(q), fd_jacobian(chain, q), atol=1e-7)


def test_jacobian_matches_finite_differences_panda(chain):
    """The Panda's Jacobian (base frame, linear rows first) equals central differences of fk."""
    rng = np.random.default_rng(2)
    for _ in range(10):
        q = random_panda_q(rng)
        jac = chain.jacobian(q)
        assert jac.shape == (6, 7)
        np.testing.assert_allclose(jac, fd_jacobian(chain, q), atol=1e-7)


def test_fk_from_description_matches_dh(chain):
    """FK of the description chain equals the direct DH product at zero, ready and random poses."""
    np.testing.assert_allclose(chain.fk(np.zeros(7))[:3, 3], [0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107], atol=1e-9)
    np.testing.assert_allclose(chain.fk(HOME)[:3, 3], [0.3069, 0.0, 0.5903], atol=5e-4)
    rng = np.random.default_rng(3)
    for q in [np.zeros(7), HOME, *(random_panda_q(rng) for _ in range(10))]:
        np.testing.assert_allclose(chain.fk(q), panda_flange_pose(q), atol=1e-12)
    assert chain.joint_names == tuple(f"panda_joint{i}" for i in range(1, 8))
    to_link7 = KinematicChain.from_description(get_builtin_robot("panda"), "panda_link7")
    np.testing.assert_allclose(to_link7.with_tool(FLANGE).fk(HOME), chain.fk(HOME), atol=1e-12)
    np.testing.assert_allclose(chain.lower, LOWER)
    np.testing.assert_allclose(chain.upper, UPPER)


@pytest.fixture(scope="module")
def tabletop_stage(tabletop_config):
    from vlatwin.usd.scene_builder import build_scene

    return build_scene(tabletop_config.scene)


def test_fk_from_usd_matches_description(tabletop_stage, panda):
    """The chain read from the authored stage (prim paths, degrees, quaternions) has the description's FK and limits."""
    usd = KinematicChain.from_usd(tabletop_stage, "/World/Robot/panda_link0", "/World/Robot/panda_link7", FLANGE)
    desc = KinematicChain.from_description(panda, "panda_link7", FLANGE)
    assert usd.joint_names == JOINT_PATHS[:7]
    assert usd.kinds == ("revolute",) * 7
    np.testing.assert_allclose(usd.lower, LOWER, atol=1e-6)  # float limits in degrees
    np.testing.assert_allclose(usd.upper, UPPER, atol=1e-6)
    rng = np.random.default_rng(4)
    for q in [np.zeros(7), HOME, *(random_panda_q(rng) for _ in range(10))]:
        np.testing.assert_allclose(usd.fk(q), desc.fk(q), atol=1e-6)  # USD stores joint frames as float32


def test_from_usd_walks_joints_in_reverse(tabletop_stage, chain):
    """A chain from the hand back to the base runs every joint backwards: its FK is the inverse."""
    rev = KinematicChain.from_usd(tabletop_stage, "/World/Robot/panda_link7", "/World/Robot/panda_link0")
    arm = KinematicChain.from_usd(tabletop_stage, "/World/Robot/panda_link0", "/World/Robot/panda_link7")
    q = random_panda_q(np.random.default_rng(5))
    assert rev.joint_names == arm.joint_names[::-1]
    np.testing.assert_allclose(rev.fk(q[::-1]), np.linalg.inv(arm.fk(q)), atol=1e-6)


def test_from_usd_rejects_unconnected_bodies(tabletop_stage):
    """Bodies with no joint path between them give a one-line StageError naming both."""
    with pytest.raises(StageError, match="no joint path from /World/Robot/panda_link0 to /World/Objects/red_cube"):
        KinematicChain.from_usd(tabletop_stage, "/World/Robot/panda_link0", "/World/Objects/red_cube")
    with pytest.raises(StageError, match="no body at /World/Robot/nothing"):
        KinematicChain.from_usd(tabletop_stage, "/World/Robot/panda_link0", "/World/Robot/nothing")


def _hand_made_stage():
    """Bodies A-B-C-D at random poses: revolute A->B, prismatic authored C->B (walked in reverse), fixed C->D.

    Joint frames are authored on both sides (localPos/Rot 0 and 1), consistent with the body poses at q = 0.
    Returns the stage, the body poses and the joint frames in the world.
    """
    from pxr import Gf, Usd, UsdGeom, UsdPhysics

    rng = np.random.default_rng(11)
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)  # unauthored, USD's fallback is centimeters
    poses, joint_frames_w = {}, {}
    for name in "ABCD":
        pose = make_transform(rotvec_to_matrix(rng.normal(size=3)), rng.uniform(-1, 1, 3))
        xform = UsdGeom.Xform.Define(stage, f"/W/{name}")
        xform.AddTranslateOp().Set(Gf.Vec3d(*pose[:3, 3]))
        xform.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Quatd(*matrix_to_quat_wxyz(pose[:3, :3])))
        UsdPhysics.RigidBodyAPI.Apply(xform.GetPrim())
        poses[name] = pose

    def author(schema, name, body0, body1):
        joint = schema.Define(stage, f"/W/{name}")
        joint.CreateBody0Rel().SetTargets([f"/W/{body0}"])
        joint.CreateBody1Rel().SetTargets([f"/W/{body1}"])
        frame0 = make_transform(rotvec_to_matrix(rng.normal(size=3)), rng.uniform(-0.2, 0.2, 3))
        frame1 = np.linalg.inv(poses[body1]) @ poses[body0] @ frame0  # the same joint frame seen from body1
        joint.CreateLocalPos0Attr(Gf.Vec3f(*frame0[:3, 3]))
        joint.CreateLocalRot0Attr(Gf.Quatf(*matrix_to_quat_wxyz(frame0[:3, :3])))
        joint.CreateLocalPos1Attr(Gf.Vec3f(*frame1[:3, 3]))
        joint.CreateLocalRot1Attr(Gf.Quatf(*matrix_to_quat_wxyz(frame1[:3, :3])))
        joint_frames_w[name] = poses[body0] @ frame0
        return joint

    revolute = author(UsdPhysics.RevoluteJoint, "j_rev", "A", "B")
    revolute.CreateAxisAttr("Y")
    revolute.CreateLowerLimitAttr(-90.0)  # degrees; no upper limit authored
    prismatic = author(UsdPhysics.PrismaticJoint, "j_pri", "C", "B")
    prismatic.CreateAxisAttr("X")
    prismatic.CreateLowerLimitAttr(-0.1)
    prismatic.CreateUpperLimitAttr(0.3)
    author(UsdPhysics.FixedJoint, "j_fix", "C", "D")
    return stage, poses, joint_frames_w


def test_from_usd_reads_both_joint_frames_and_reversed_joints():
    """On a hand-made stage, FK at q = 0 equals the authored body poses; a reversed prismatic moves backwards."""
    stage, poses, joint_frames_w = _hand_made_stage()
    arm = KinematicChain.from_usd(stage, "/W/A", "/W/D")
    assert arm.joint_names == ("/W/j_rev", "/W/j_pri") and arm.kinds == ("revolute", "prismatic")
    np.testing.assert_allclose(arm.lower, [-np.pi / 2, -0.1], atol=1e-7)
    np.testing.assert_allclose(arm.upper, [np.inf, 0.3])
    base_inv = np.linalg.inv(poses["A"])
    np.testing.assert_allclose(arm.fk(np.zeros(2)), base_inv @ poses["D"], atol=1e-6)
    # The prismatic joint is authored C -> B, so opening it by d moves C (and D) by -d along its X axis.
    axis_a = (base_inv @ joint_frames_w["j_pri"])[:3, 0]
    moved = arm.fk(np.array([0.0, 0.05]))[:3, 3] - arm.fk(np.zeros(2))[:3, 3]
    np.testing.assert_allclose(moved, -0.05 * axis_a, atol=1e-6)
    # The revolute joint turns D about its Y axis through its origin.
    pivot = base_inv @ joint_frames_w["j_rev"]
    turn = make_transform(rotvec_to_matrix(0.3 * pivot[:3, 1]))
    turn[:3, 3] = pivot[:3, 3] - turn[:3, :3] @ pivot[:3, 3]
    np.testing.assert_allclose(arm.fk(np.array([0.3, 0.0])), turn @ arm.fk(np.zeros(2)), atol=1e-6)
    q = np.array([0.4, 0.07])
    np.testing.assert_allclose(arm.jacobian(q), fd_jacobian(arm, q), atol=1e-7)


def test_from_usd_scales_lengths_to_meters():
    """In a centimeter stage, joint offsets and prismatic limits come out in meters; angles are unchanged."""
    from pxr import UsdGeom

    stage, poses, _ = _hand_made_stage()
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)
    arm = KinematicChain.from_usd(stage, "/W/A", "/W/D")
    expected = np.linalg.inv(poses["A"]) @ poses["D"]
    np.testing.assert_allclose(arm.fk(np.zeros(2))[:3, 3], 0.01 * expected[:3, 3], atol=1e-8)
    np.testing.assert_allclose(arm.fk(np.zeros(2))[:3, :3], expected[:3, :3], atol=1e-6)
    np.testing.assert_allclose(arm.lower, [-np.pi / 2, -0.001], atol=1e-9)


# ---------------------------------------------------------------- IK
def test_dls_step_limits():
    """Zero damping solves a square system exactly; damping shortens the step; weight 0 freezes a joint."""
    jac = np.array([[1.0, 0.5], [0.2, 2.0]])
    err = np.array([0.3, -0.4])
    np.testing.assert_allclose(dls_step(jac, err, 0.0), np.linalg.solve(jac, err), atol=1e-12)
    assert np.linalg.norm(dls_step(jac, err, 1.0)) < np.linalg.norm(dls_step(jac, err, 0.0))
    frozen = dls_step(jac, err, 0.01, joint_weights=np.array([1.0, 0.0]))
    assert frozen[1] == 0.0 and frozen[0] != 0.0
    assert np.max(np.abs(dls_step(jac, 100 * err, 0.0, max_step=0.1))) == pytest.approx(0.1)


def test_ik_reaches_reachable_targets(chain):
    """From starts 0.2 rad away, IK reaches FK-generated targets within 1e-4 m / 1e-3 rad."""
    rng = np.random.default_rng(6)
    for _ in range(25):
        q_goal = random_panda_q(rng, margin=0.3)
        q0 = np.clip(q_goal + rng.uniform(-0.2, 0.2, 7), LOWER, UPPER)
        target = chain.fk(q_goal)
        result = solve_ik(chain, q0, target, LOWER, UPPER)
        err = pose_error(chain.fk(result.q), target)
        assert result.converged, (result.position_error, result.rotation_error)
        assert np.linalg.norm(err[:3]) < 1e-4 and np.linalg.norm(err[3:]) < 1e-3
        assert result.position_error == pytest.approx(np.linalg.norm(err[:3]))


def test_ik_target_beyond_limit_ends_on_the_limit():
    """A planar arm asked for a pose that needs joint 1 past its limit stops exactly on the limit."""
    arm = planar_2r(lower1=-1.0, upper1=1.0)
    target = arm.fk(np.array([1.4, 0.5]))
    result = solve_ik(arm, np.array([0.8, 0.5]), target)
    assert not result.converged
    assert result.q[0] == 1.0
    assert -2.5 <= result.q[1] <= 2.5
    assert result.position_error > 1e-3


def test_ik_never_violates_panda_limits(chain):
    """Targets generated past a joint limit give joints inside [lower, upper] and at least halve the error."""
    rng = np.random.default_rng(8)
    for k in range(20):
        q_goal = random_panda_q(rng)
        j = k % 7
        q_goal[j] = UPPER[j] + 0.4 if k % 2 else LOWER[j] - 0.4
        q0 = np.clip(q_goal, LOWER, UPPER)
        target = chain.fk(q_goal)
        result = solve_ik(chain, q0, target, LOWER, UPPER)
        assert np.all(result.q >= LOWER) and np.all(result.q <= UPPER)
        # Within the limits it still gets as close as it can: the other joints take up most of the error.
        start_error = np.linalg.norm(pose_error(chain.fk(q0), target))
        assert np.linalg.norm(pose_error(chain.fk(result.q), target)) < 0.5 * start_error


def test_ik_reports_unreachable_target(chain):
    """A target 2 m beyond the arm's reach is reported as not converged with its residual."""
    target = chain.fk(HOME)
    target[:3, 3] += [2.0, 0.0, 0.0]
    result = solve_ik(chain, HOME, target, LOWER, UPPER)
    assert not result.converged
    assert result.position_error > 1.0
    assert np.all(result.q >= LOWER) and np.all(result.q <= UPPER)


def test_ik_position_only_ignores_orientation(chain):
    """With position_only the orientation is free: a pure position target converges regardless of rotation."""
    target = chain.fk(HOME) @ make_transform(rot_x(1.0))  # same position, rotated 1 rad
    target[:3, 3] += [0.05, -0.05, 0.05]
    result = solve_ik(chain, HOME, target, LOWER, UPPER, position_only=True)
    assert result.converged and result.rotation_error == 0.0
    np.testing.assert_allclose(chain.fk(result.q)[:3, 3], target[:3, 3], atol=1e-5)


# ---------------------------------------------------------------- EE delta controller
def ee_controller(robot_joints, chain, **kw) -> EndEffectorDeltaController:
    ctrl = EndEffectorDeltaController(robot_joints, chain, **kw)
    ctrl.reset(make_state())
    return ctrl


def commanded_pose(ctrl, command) -> np.ndarray:
    return ctrl.chain.fk(command.target_q[ctrl.chain_index])


def test_ee_translation_base_vs_tool_frame(robot_joints, chain):
    """+dz in the base frame raises the flange; in the tool frame (flange Z points down at home) it lowers it."""
    start = chain.fk(HOME)
    assert start[2, 2] == pytest.approx(-1.0)  # flange Z points down at the ready pose
    action = np.array([0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0])
    ctrl_b = ee_controller(robot_joints, chain, frame="base")
    ctrl_t = ee_controller(robot_joints, chain, frame="tool")
    base = commanded_pose(ctrl_b, ctrl_b.compute(action, make_state()))
    tool = commanded_pose(ctrl_t, ctrl_t.compute(action, make_state()))
    np.testing.assert_allclose(base[:3, 3] - start[:3, 3], [0, 0, 0.01], atol=1e-5)
    np.testing.assert_allclose(tool[:3, 3] - start[:3, 3], [0, 0, -0.01], atol=1e-5)
    np.testing.assert_allclose(base[:3, :3], start[:3, :3], atol=1e-4)
    # A tool-frame x step moves along the flange's own x axis.
    ctrl_t = ee_controller(robot_joints, chain, frame="tool")
    tool_x = commanded_pose(ctrl_t, ctrl_t.compute(np.r_[0.01, 0, 0, 0, 0, 0, 0], make_state()))
    np.testing.assert_allclose(tool_x[:3, 3] - start[:3, 3], 0.01 * start[:3, 0], atol=1e-5)


def test_ee_rotation_base_vs_tool_frame(robot_joints, chain):
    """A roll turns the flange about the base X axis (base frame) or its own X axis (tool), in place."""
    start = chain.fk(HOME)
    action = np.array([0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0])
    ctrl_b = ee_controller(robot_joints, chain, frame="base")
    ctrl_t = ee_controller(robot_joints, chain, frame="tool")
    base = commanded_pose(ctrl_b, ctrl_b.compute(action, make_state()))
    tool = commanded_pose(ctrl_t, ctrl_t.compute(action, make_state()))
    np.testing.assert_allclose(base[:3, :3], rot_x(0.1) @ start[:3, :3], atol=1e-4)
    np.testing.assert_allclose(tool[:3, :3], start[:3, :3] @ rot_x(0.1), atol=1e-4)
    assert not np.allclose(base[:3, :3], tool[:3, :3], atol=1e-3)
    np.testing.assert_allclose(base[:3, 3], start[:3, 3], atol=1e-5)
    np.testing.assert_allclose(tool[:3, 3], start[:3, 3], atol=1e-5)


def test_ee_rpy_and_axis_angle_agree(robot_joints, chain):
    """The same rotation given as rpy or as a rotation vector commands the same joints."""
    rotvec = np.array([0.05, -0.1, 0.08])
    rpy = matrix_to_rpy(rotvec_to_matrix(rotvec))
    assert not np.allclose(rpy, rotvec, atol=1e-3)  # the two encodings really differ
    for frame in ("base", "tool"):
        by_rpy = ee_controller(robot_joints, chain, rotation="rpy", frame=frame)
        by_axis = ee_controller(robot_joints, chain, rotation="axis_angle", frame=frame)
        cmd_rpy = by_rpy.compute(np.r_[0.01, 0.0, -0.01, rpy, 0.0], make_state())
        cmd_axis = by_axis.compute(np.r_[0.01, 0.0, -0.01, rotvec, 0.0], make_state())
        np.testing.assert_allclose(cmd_rpy.target_q, cmd_axis.target_q, atol=1e-9)
        expected = apply_ee_delta(chain.fk(HOME), [0.01, 0, -0.01], rotvec, rotation_format="axis_angle", frame=frame)
        np.testing.assert_allclose(commanded_pose(by_rpy, cmd_rpy), expected, atol=1e-4)


def test_ee_deltas_accumulate_and_zero_action_holds(robot_joints, chain):
    """Ten 5 mm x steps move the commanded flange 5 cm; zero actions then keep the same joint targets."""
    ctrl = ee_controller(robot_joints, chain)
    start = chain.fk(HOME)
    state = make_state()  # the measured state never moves: the target reference must not depend on it
    for _ in range(10):
        cmd = ctrl.compute(np.r_[0.005, 0, 0, 0, 0, 0, 0.0], state)
    np.testing.assert_allclose(commanded_pose(ctrl, cmd)[:3, 3] - start[:3, 3], [0.05, 0, 0], atol=1e-4)
    held = [ctrl.compute(np.zeros(7), state).target_q for _ in range(5)]
    np.testing.assert_allclose(held[-1], cmd.target_q, atol=1e-12)
    ctrl.reset(state)
    np.testing.assert_allclose(ctrl.compute(np.zeros(7), state).target_q[:7], HOME, atol=1e-12)


def test_ee_measured_reference_uses_state(robot_joints, chain):
    """With reference='measured' each delta starts from the measured joints, so repeats do not accumulate."""
    ctrl = ee_controller(robot_joints, chain, reference="measured")
    state = make_state()
    for _ in range(3):
        cmd = ctrl.compute(np.r_[0.005, 0, 0, 0, 0, 0, 0.0], state)
    np.testing.assert_allclose(commanded_pose(ctrl, cmd)[:3, 3] - chain.fk(HOME)[:3, 3], [0.005, 0, 0], atol=1e-5)


def test_ee_action_clipped_to_spec_and_reported(robot_joints, chain):
    """An oversized translation is clipped to max_translation and named in last_clipped."""
    ctrl = ee_controller(robot_joints, chain, max_translation=0.02)
    cmd = ctrl.compute(np.r_[1.0, 0, 0, 0, 0, 0, 0.0], make_state())
    assert ctrl.last_clipped == ("dx",)
    np.testing.assert_allclose(commanded_pose(ctrl, cmd)[:3, 3] - chain.fk(HOME)[:3, 3], [0.02, 0, 0], atol=1e-5)
    assert ctrl.last_ik.converged


def test_ee_spec_and_command_layout(robot_joints, chain):
    """The EE spec names its 7 dims with units; the command sets arm + finger targets and zero velocity targets."""
    ctrl = ee_controller(robot_joints, chain, rotation="axis_angle")
    spec = ctrl.spec
    assert spec.name == "ee_delta_pose" and spec.shape == (7,)
    assert spec.names == ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")
    assert spec.units == ("m", "m", "m", "rad", "rad", "rad", "1")
    assert "tool" not in spec.description and "base frame" in spec.description
    cmd = ctrl.compute(np.r_[0, 0, 0, 0, 0, 0, 1.0], make_state())  # close_0_1: 1 = closed
    np.testing.assert_allclose(cmd.target_q[7:], [0.0, 0.0])
    assert cmd.target_q.shape == (9,) and np.all(np.isfinite(cmd.target_q))
    np.testing.assert_array_equal(cmd.target_qd, np.zeros(9))


# ---------------------------------------------------------------- joint controllers
def test_joint_position_absolute(robot_joints):
    """Absolute actions become the arm targets, clipped to the joint limits; spec bounds are the limits."""
    ctrl = JointPositionController(robot_joints)
    assert ctrl.spec.name == "joint_pos"
    assert ctrl.spec.names == (*(f"panda_joint{i}" for i in range(1, 8)), "gripper")
    assert ctrl.spec.units == ("rad",) * 7 + ("1",)
    np.testing.assert_allclose(ctrl.spec.low[:7], LOWER)
    q = HOME + 0.1
    cmd = ctrl.compute(np.r_[q, 0.0], make_state())
    np.testing.assert_allclose(cmd.target_q, np.r_[q, FINGER_TRAVEL, FINGER_TRAVEL])
    cmd = ctrl.compute(np.r_[UPPER + 1.0, 0.0], make_state())
    np.testing.assert_allclose(cmd.target_q[:7], UPPER)
    assert len(ctrl.last_clipped) == 7


def test_joint_position_delta_builds_on_last_target(robot_joints):
    """Deltas add to the last commanded target (default) or to the measured positions."""
    ctrl = JointPositionController(robot_joints, mode="delta", max_delta=0.1)
    assert ctrl.spec.name == "joint_pos_delta"
    np.testing.assert_allclose(ctrl.spec.high[:7], 0.1)
    state = make_state()
    ctrl.reset(state)
    step = np.r_[np.full(7, 0.02), 0.0]
    for _ in range(3):
        cmd = ctrl.compute(step, state)
    np.testing.assert_allclose(cmd.target_q[:7], np.clip(HOME + 0.06, LOWER, UPPER), atol=1e-12)
    measured = JointPositionController(robot_joints, mode="delta", reference="measured")
    for _ in range(3):
        cmd = measured.compute(step, state)
    np.testing.assert_allclose(cmd.target_q[:7], np.clip(HOME + 0.02, LOWER, UPPER), atol=1e-12)


def test_joint_velocity_integrates_over_control_dt(robot_joints):
    """Velocities integrate into position targets over control_dt and become velocity targets; limits stop both."""
    ctrl = JointVelocityController(robot_joints, control_dt=0.05, max_velocity=1.0)
    assert ctrl.spec.name == "joint_vel" and ctrl.spec.units[:7] == ("rad/s",) * 7
    q0 = HOME.copy()
    q0[0] = UPPER[0] - 0.01  # joint 1 sits 10 mrad below its limit
    state = make_state(q0)
    ctrl.reset(state)
    v = np.array([0.5, 0.2, -0.4, 0.0, 0.1, 0.0, -0.3])
    for _ in range(2):
        cmd = ctrl.compute(np.r_[v, 1.0], state)
    np.testing.assert_allclose(cmd.target_q[1:7], q0[1:7] + 2 * 0.05 * v[1:], atol=1e-12)
    assert cmd.target_q[0] == UPPER[0]
    np.testing.assert_allclose(cmd.target_qd[:7], np.r_[0.0, v[1:]])
    np.testing.assert_allclose(cmd.target_q[7:], [0.0, 0.0])  # gripper 1 = closed in close_0_1
    with pytest.raises(VlatwinError, match="control_dt"):
        JointVelocityController(robot_joints, control_dt=0.0)


# ---------------------------------------------------------------- gripper conventions
@pytest.mark.parametrize(
    ("convention", "open_value", "closed_value"),
    [
        ("close_0_1", 0.0, 1.0),
        ("open_0_1", 1.0, 0.0),
        ("pm1_close_positive", -1.0, 1.0),
        ("pm1_open_positive", 1.0, -1.0),
    ],
)
def test_gripper_convention_endpoints(robot_joints, convention, open_value, closed_value):
    """Each convention's documented open value opens the fingers (0.04 m) and its closed value closes them (0)."""
    assert gripper_to_closure(open_value, convention) == 0.0
    assert gripper_to_closure(closed_value, convention) == 1.0
    assert gripper_to_closure(0.5 * (open_value + closed_value), convention) == pytest.approx(0.5)
    assert closure_to_gripper(1.0, convention) == closed_value
    ctrl = JointPositionController(robot_joints, gripper=convention)
    assert (ctrl.spec.low[-1], ctrl.spec.high[-1]) == (min(open_value, closed_value), max(open_value, closed_value))
    opened = ctrl.compute(np.r_[HOME, open_value], make_state())
    closed = ctrl.compute(np.r_[HOME, closed_value], make_state())
    np.testing.assert_allclose(opened.target_q[7:], [FINGER_TRAVEL, FINGER_TRAVEL])
    np.testing.assert_allclose(closed.target_q[7:], [0.0, 0.0])
    assert convention in ctrl.spec.description


@pytest.mark.parametrize(
    ("convention", "value", "expected"),
    [
        ("close_0_1", 0.51, 1.0),
        ("close_0_1", 0.5, 0.0),  # a tie selects the low value's state: open
        ("open_0_1", 0.51, 0.0),  # SimplerEnv: g > 0.5 opens
        ("open_0_1", 0.5, 1.0),
        ("pm1_close_positive", 0.01, 1.0),
        ("pm1_close_positive", 0.0, 0.0),  # LIBERO sign with 0 treated as open
        ("pm1_open_positive", 0.01, 0.0),
        ("pm1_open_positive", -0.2, 1.0),
    ],
)
def test_gripper_binarize_threshold(convention, value, expected):
    """Binarized values snap to open (0) or closed (1) at the documented threshold."""
    assert gripper_to_closure(value, convention, binarize=True) == expected
    assert GripperMapping(convention=convention, binarize=True).to_closure(value) == expected


def test_gripper_misc():
    """Values interpolate and clip, custom thresholds apply, closure reads back from joints, bad names fail."""
    assert gripper_to_closure(0.25, "close_0_1") == 0.25
    assert gripper_to_closure(1.7, "close_0_1") == 1.0
    assert gripper_to_closure(0.5, "pm1_close_positive") == 0.75
    assert gripper_to_closure(0.3, GripperConvention.CLOSE_0_1, binarize=True, threshold=0.2) == 1.0
    assert joints_to_closure([0.01, 0.03], [0.04, 0.04], [0.0, 0.0]) == pytest.approx(0.5)
    assert GripperMapping.parse("open_0_1").from_closure(0.0) == 1.0
    with pytest.raises(VlatwinError, match="unknown gripper convention 'open'; known: close_0_1"):
        GripperMapping(convention="open")


# ---------------------------------------------------------------- specs and factory
def test_action_spec_validate_rejects_bad_actions(robot_joints):
    """Wrong shape, NaN and Inf raise a one-line VlatwinError; good actions pass as float64."""
    spec = JointPositionController(robot_joints).spec
    for bad, pattern in [
        (np.zeros(7), r"expected shape \(8,\)"),
        (np.zeros((1, 8)), r"got \(1, 8\)"),
        (np.r_[np.zeros(7), np.nan], "non-finite values in gripper=nan"),
        (np.r_[np.inf, np.zeros(7)], "non-finite values in panda_joint1=inf"),
        ("abc", "expected 8 numbers"),
    ]:
        with pytest.raises(VlatwinError, match=pattern) as exc:
            spec.validate(bad)
        assert "\n" not in str(exc.value)
    out = spec.validate([0] * 8)
    assert out.dtype == np.float64 and out.shape == (8,)


def test_action_spec_to_dict_is_json(robot_joints, chain):
    """to_dict is strict JSON (inf becomes null), carries LeRobot's dtype/shape/names, and round-trips."""
    spec = ActionSpec(name="demo", names=("a", "b"), units=("m", "1"), low=[-np.inf, 0.0], high=[1.0, 1.0])
    data = json.loads(json.dumps(spec.to_dict(), allow_nan=False))
    assert data["dtype"] == "float32" and data["shape"] == [2] and data["names"] == ["a", "b"]
    assert data["low"] == [None, 0.0]
    assert ActionSpec.from_dict(data) == spec
    for ctrl in (JointPositionController(robot_joints), EndEffectorDeltaController(robot_joints, chain)):
        assert json.loads(json.dumps(ctrl.spec.to_dict(), allow_nan=False))["shape"] == [ctrl.spec.dim]
    with pytest.raises(ValueError, match="2 names, 1 units"):
        ActionSpec(name="bad", names=("a", "b"), units=("m",), low=[0, 0], high=[1, 1])


def test_robot_joints_from_info_splits_fingers(info):
    """Finger joints go to the gripper by default; explicit names (paths or leaves) override."""
    joints = robot_joints_from_info(info)
    assert joints.arm.tolist() == list(range(7)) and joints.gripper.tolist() == [7, 8]
    np.testing.assert_allclose(joints.gripper_open_q, [FINGER_TRAVEL] * 2)
    np.testing.assert_allclose(joints.gripper_closed_q, [0.0, 0.0])
    custom = robot_joints_from_info(info, arm_joint_names=["panda_joint2", JOINT_PATHS[0]], gripper_joint_names=[])
    assert custom.arm.tolist() == [1, 0] and custom.gripper.size == 0
    with pytest.raises(VlatwinError, match="'elbow' is not a joint of the scene"):
        robot_joints_from_info(info, arm_joint_names=["elbow"])


def test_make_controller_kinds_and_errors(info, chain):
    """Every kind builds with its spec name; unknown kinds, options and a missing chain give one-line errors."""
    for kind, dim in [("joint_pos", 8), ("joint_pos_delta", 8), ("joint_vel", 8), ("ee_delta_pose", 7)]:
        ctrl = make_controller(kind, info=info, chain=chain, control_dt=0.05)
        assert ctrl.spec.name == kind and ctrl.spec.shape == (dim,)
    ctrl = make_controller("ee_delta_pose", info=info, chain=chain, control_dt=0.05, gripper="open_0_1", frame="tool")
    assert ctrl.frame == "tool" and ctrl.gripper.convention == GripperConvention.OPEN_0_1
    with pytest.raises(VlatwinError, match="unknown controller 'osc'; known: joint_pos, joint_pos_delta, joint_vel"):
        make_controller("osc", info=info, control_dt=0.05)
    with pytest.raises(VlatwinError, match=r"unknown option.*speed"):
        make_controller("joint_vel", info=info, control_dt=0.05, speed=1.0)
    with pytest.raises(VlatwinError, match="needs a kinematic chain"):
        make_controller("ee_delta_pose", info=info, control_dt=0.05)
    with pytest.raises(VlatwinError, match="unknown delta frame 'world'"):
        make_controller("ee_delta_pose", info=info, chain=chain, control_dt=0.05, frame="world")


def test_controller_rejects_mismatched_state(robot_joints):
    """A state with the wrong number of joints is a one-line error, not an index crash."""
    ctrl = JointPositionController(robot_joints)
    state = make_state()
    state.joint_q = state.joint_q[:7]
    with pytest.raises(VlatwinError, match="7 joint positions, the robot description 9"):
        ctrl.compute(np.r_[HOME, 0.0], state)


def test_ee_controller_limits_joint_speed(info, chain):
    """A delta that IK can only reach with a big joint jump moves each arm joint at most speed x dt per step,
    and the commanded pose follows what the joints can reach (no runaway build-up)."""
    ctrl = make_controller("ee_delta_pose", info=info, chain=chain, control_dt=0.05, max_joint_speed=1.0)
    state = make_state()
    ctrl.reset(state)
    start = np.array(HOME, dtype=float)
    big = np.r_[0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 0.0]  # the largest delta the spec allows
    q = start.copy()
    for _ in range(5):
        cmd = ctrl.compute(big, state)
        arm = cmd.target_q[:7]
        assert np.abs(arm - q).max() <= 0.05 + 1e-12  # 1 rad/s x 0.05 s
        q = arm
    assert np.abs(q - start).max() > 0.1  # it still moves, just not faster than allowed
    unlimited = make_controller("ee_delta_pose", info=info, chain=chain, control_dt=0.05, max_joint_speed=100.0)
    unlimited.reset(state)
    assert np.abs(unlimited.compute(big, state).target_q[:7] - start).max() > 0.05
