"""The Newton backend on real Newton (CPU): drives, contacts, determinism, bad stages."""

import numpy as np
import pytest

from vlatwin.errors import StageError
from vlatwin.sim.newton import SimBackendNewton, SimulationDivergedError
from vlatwin.sim.types import JointCommand

ARM_OFFSETS = np.array([0.3, 0.2, -0.2, 0.3, 0.2, -0.3, 0.2])


def test_model_info_maps_usd_paths(newton_sim):
    """Joints, bodies and shapes are reported by USD prim path, and shapes map to their bodies."""
    info = newton_sim.info
    assert [p.rsplit("/", 1)[-1] for p in info.joint_names] == [f"panda_joint{i}" for i in range(1, 8)] + [
        "panda_finger_joint_left",
        "panda_finger_joint_right",
    ]
    assert "/World/Objects/red_cube" in info.body_paths
    assert info.physics_dt == pytest.approx(1 / 600)
    shape = info.shape_paths.index("/World/Objects/red_cube/geom")
    assert info.body_paths[info.shape_body[shape]] == "/World/Objects/red_cube"
    assert info.shape_body[info.shape_paths.index("/World/Table/top")] == -1
    assert info.articulation_root == "/World/Robot"
    np.testing.assert_allclose(info.joint_lower[3], -3.0718, atol=1e-4)


def test_initial_state_is_authored_home_pose(newton_sim):
    """After load the joints read the authored home pose, and the bodies sit where USD put them."""
    from vlatwin.robots import get_builtin_robot

    state = newton_sim.get_state()
    np.testing.assert_allclose(state.joint_q, get_builtin_robot("panda").home_positions, atol=1e-5)
    red = state.body_position_w(newton_sim.info, "/World/Objects/red_cube")
    np.testing.assert_allclose(red, [0.45, 0.15, 0.78], atol=1e-6)


def test_drive_targets_reach_within_1e2_rad(newton_sim):
    """Position targets bring every arm joint within 1e-2 rad after 2 s (gravity on, USD gains)."""
    state = newton_sim.get_state()
    target = state.joint_q.copy()
    target[:7] += ARM_OFFSETS
    target[7:] = 0.01
    newton_sim.step(JointCommand(target_q=target), num_steps=1200)
    final = newton_sim.get_state()
    assert final.time == pytest.approx(2.0)
    error = np.abs(final.joint_q - target)
    assert error[:7].max() < 1e-2, error
    assert error[7:].max() < 1e-3, error


@pytest.mark.parametrize("joint", [0, 2])
def test_small_targets_are_tracked_at_their_size(newton_sim, joint):
    """A revolute joint driven a few mrad from its zero settles there, not at twice the target. XPBD reads a joint
    about its frame's y or z axis through the swing, which it rescales to an angle only past 20 mrad, so before
    the backend re-framed every revolute joint about x a 5 mrad target settled at 10.3 mrad (joint 1, no load)
    and 15 mrad chattered about 22 mrad. Joints 1 and 3 sit at 0 in the home pose."""

    def settled_position(target) -> float:
        # The arm rings at about 1 Hz for a few seconds after a step (+-1 mrad on joint 3): average its last second.
        newton_sim.step(JointCommand(target_q=target), num_steps=1200)
        samples = []
        for _ in range(20):
            newton_sim.step(JointCommand(target_q=target), num_steps=30)
            samples.append(newton_sim.get_state().joint_q[joint])
        return float(np.mean(samples))

    home = newton_sim.get_state().joint_q.copy()
    rest = settled_position(home)
    for step in (0.005, -0.012, 0.015):
        target = home.copy()
        target[joint] = home[joint] + step
        moved = settled_position(target) - rest
        assert moved == pytest.approx(step, rel=0.1, abs=2e-4), (step, moved)


def test_revolute_joints_keep_the_usd_kinematics(newton_sim):
    """Re-framing the joints changes nothing the user sees: at a random pose the hand link sits where the USD
    chain's own forward kinematics (read with pxr) puts it."""
    from vlatwin.control.kinematics import KinematicChain
    from vlatwin.usd.check import open_stage

    info = newton_sim.info
    chain = KinematicChain.from_usd(open_stage(info.stage_path), "/World/Robot/panda_link0", "/World/Robot/panda_link7", np.eye(4))
    rng = np.random.default_rng(7)
    q = newton_sim.get_state().joint_q.copy()
    q[:7] = np.clip(q[:7] + rng.uniform(-0.6, 0.6, 7), info.joint_lower[:7] + 0.05, info.joint_upper[:7] - 0.05)
    q[2] = 0.004  # inside the +-20 mrad band the swing path handled differently
    newton_sim.set_joint_positions(q)
    state = newton_sim.get_state()
    np.testing.assert_allclose(state.joint_q[:7], q[:7], atol=1e-5)
    base = state.body_pose_w[info.body_index("/World/Robot/panda_link0")]
    hand = state.body_pose_w[info.body_index("/World/Robot/panda_link7")]
    expected = chain.fk(q[:7])
    base_m = _pose_matrix(base)
    got = np.linalg.inv(base_m) @ _pose_matrix(hand)
    np.testing.assert_allclose(got[:3, 3], expected[:3, 3], atol=1e-5)
    np.testing.assert_allclose(got[:3, :3], expected[:3, :3], atol=1e-5)


def _pose_matrix(pose) -> np.ndarray:
    """4x4 of a body pose (x, y, z, qw, qx, qy, qz)."""
    from scipy.spatial.transform import Rotation

    w, x, y, z = np.asarray(pose[3:7], float)
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    m[:3, 3] = pose[:3]
    return m


def test_xpbd_does_not_enforce_effort_limits_and_says_so(newton_sim):
    """Capabilities.effort_limits is False because it is true: a 0.3 rad step on joint 4 moves it further in one
    step than the authored effort limit could (|tau| <= 87 N*m on the joint's inertia), and the reported effort
    says what the drive applied, far beyond that limit (a report clipped at 87 claimed a saturation that did not
    happen)."""
    assert newton_sim.capabilities.effort_limits is False
    newton_sim.step(JointCommand(target_q=newton_sim.get_state().joint_q), num_steps=300)  # settle under gravity
    before = newton_sim.get_state()
    target = before.joint_q.copy()
    target[3] += 0.3
    newton_sim.step(JointCommand(target_q=target), num_steps=1)
    after = newton_sim.get_state()
    dt = newton_sim.physics_dt
    # From rest, |tau| <= 87 N*m and the forearm + hand's inertia about joint 4 (>= 0.05 kg*m^2 for ~2.5 kg at
    # >= 0.15 m) bound the first step's travel by 0.5 * (87 / 0.05) * dt^2 < 3 mrad; XPBD's drive goes much further.
    moved = after.joint_q[3] - before.joint_q[3]
    assert moved > 10 * 0.5 * (87.0 / 0.05) * dt**2, moved
    assert after.joint_effort[3] > 10 * 87.0, after.joint_effort


def test_nan_target_keeps_joint_target(newton_sim):
    """A NaN in the command leaves that joint's drive target unchanged; targets are clipped to the limits."""
    state = newton_sim.get_state()
    q_index = newton_sim._cmd_q_idx
    before = newton_sim.control.joint_target_q.numpy()[q_index].copy()
    target = np.full(len(state.joint_q), np.nan)
    target[0] = 0.3
    target[3] = 1.0  # above joint 4's upper limit (-0.0698 rad): clipped
    newton_sim.step(JointCommand(target_q=target), num_steps=1200)
    after = newton_sim.control.joint_target_q.numpy()[q_index]
    assert after[0] == pytest.approx(0.3)
    assert after[3] == pytest.approx(newton_sim.info.joint_upper[3])
    keep = [1, 2, 4, 5, 6, 7, 8]
    np.testing.assert_array_equal(after[keep], before[keep])
    final = newton_sim.get_state()
    assert final.joint_q[0] == pytest.approx(0.3, abs=3e-2)
    assert final.joint_q[3] > state.joint_q[3] + 1.0  # moving up towards the clipped target


def test_objects_rest_on_table(newton_sim, tabletop_config):
    """Every object settles on the table top (0.75 m), not through it, and stops moving."""
    newton_sim.step(num_steps=1200)
    state = newton_sim.get_state()
    info = newton_sim.info
    top = tabletop_config.scene.table.size[2]
    for obj in tabletop_config.scene.objects:
        index = info.body_index(f"/World/Objects/{obj.name}")
        z = state.body_pose_w[index, 2]
        assert top - 0.005 < z < top + 0.1, (obj.name, z)
        assert np.linalg.norm(state.body_vel_w[index, :3]) < 0.05, obj.name
    cube = state.body_position_w(info, "/World/Objects/red_cube")
    assert cube[2] == pytest.approx(top + 0.025, abs=3e-3)  # half of its 5 cm size above the top
    ball = state.body_position_w(info, "/World/Objects/yellow_ball")
    assert ball[2] == pytest.approx(top + 0.03, abs=3e-3)


def test_same_seed_bit_identical(tabletop_usda):
    """Two backends with the same seed produce bit-identical states; another seed differs."""

    def rollout(seed):
        sim = SimBackendNewton(device="cpu", reset_joint_noise=0.05)
        sim.load(tabletop_usda)
        sim.reset(seed=seed)
        sim.step(num_steps=300)
        state = sim.get_state()
        sim.close()
        return state

    a, b, c = rollout(7), rollout(7), rollout(8)
    assert np.array_equal(a.joint_q, b.joint_q)
    assert np.array_equal(a.body_pose_w, b.body_pose_w)
    assert np.array_equal(a.body_vel_w, b.body_vel_w)
    assert not np.array_equal(a.joint_q, c.joint_q)


def test_reset_restores_initial_state(newton_sim):
    """reset() after stepping gives back the exact initial state."""
    first = newton_sim.reset()
    newton_sim.step(JointCommand(target_q=first.joint_q + 0.1), num_steps=200)
    again = newton_sim.reset()
    assert again.step == 0 and again.time == 0.0
    assert np.array_equal(first.body_pose_w, again.body_pose_w)


def test_set_body_pose_then_falls(newton_sim):
    """A teleported object falls from where it was put and lands on the table."""
    pose = np.array([0.6, 0.0, 1.2, 1.0, 0.0, 0.0, 0.0])
    newton_sim.set_body_pose("/World/Objects/red_cube", pose)
    state = newton_sim.get_state()
    np.testing.assert_allclose(state.body_position_w(newton_sim.info, "/World/Objects/red_cube"), pose[:3], atol=1e-6)
    newton_sim.step(num_steps=900)
    z = newton_sim.get_state().body_position_w(newton_sim.info, "/World/Objects/red_cube")[2]
    assert z == pytest.approx(0.775, abs=3e-3)
    with pytest.raises(Exception, match="not a free rigid body"):
        newton_sim.set_body_pose("/World/Robot/panda_link3", pose)


def test_divergence_is_reported(newton_sim):
    """NaN in the state raises SimulationDivergedError naming the body, instead of going on silently."""
    body_qd = newton_sim.state.body_qd.numpy().copy()
    body_qd[newton_sim.info.body_index("/World/Objects/mug")] = np.nan
    newton_sim.state.body_qd.assign(body_qd)
    with pytest.raises(SimulationDivergedError, match="diverged"):
        newton_sim.step(num_steps=2)


def _write(stage, path):
    stage.GetRootLayer().Export(str(path))
    return path


def test_stage_without_articulation_root_is_rejected(tmp_path, tabletop_usda):
    """Removing ArticulationRootAPI gives a one-line error that says where to apply it."""
    import shutil

    from pxr import Usd, UsdPhysics

    shutil.copy(tabletop_usda, tmp_path / "copy.usda")  # never edit the shared file's cached layer
    stage = Usd.Stage.Open(str(tmp_path / "copy.usda"))
    stage.GetPrimAtPath("/World/Robot").RemoveAPI(UsdPhysics.ArticulationRootAPI)
    path = _write(stage, tmp_path / "noroot.usda")
    with pytest.raises(StageError, match="ArticulationRootAPI") as info:
        SimBackendNewton(device="cpu").load(path)
    assert "\n" not in str(info.value)


def _mesh_scene(tmp_path, approximation):
    """The default scene plus a non-convex (L-shaped) triangle-mesh body above the table."""
    from pxr import Gf, UsdGeom, UsdPhysics

    from vlatwin.usd.check import open_stage

    stage = open_stage(tmp_path / "base.usda")
    body = UsdGeom.Xform.Define(stage, "/World/Objects/ell")
    body.AddTranslateOp().Set(Gf.Vec3d(0.45, -0.05, 0.9))
    UsdPhysics.RigidBodyAPI.Apply(body.GetPrim())
    UsdPhysics.MassAPI.Apply(body.GetPrim()).CreateMassAttr(0.2)
    mesh = UsdGeom.Mesh.Define(stage, "/World/Objects/ell/geom")
    # An L-shaped prism made of two boxes' worth of points (non-convex outline).
    outline = [(0, 0), (0.08, 0), (0.08, 0.03), (0.03, 0.03), (0.03, 0.08), (0, 0.08)]
    points = [(x, y, 0.0) for x, y in outline] + [(x, y, 0.03) for x, y in outline]
    mesh.CreatePointsAttr([Gf.Vec3f(*p) for p in points])
    faces = [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5], [6, 8, 7], [6, 9, 8], [6, 10, 9], [6, 11, 10]]
    for i in range(6):
        j = (i + 1) % 6
        faces += [[i, j, j + 6], [i, j + 6, i + 6]]
    mesh.CreateFaceVertexCountsAttr([3] * len(faces))
    mesh.CreateFaceVertexIndicesAttr([int(v) for f in faces for v in f])
    UsdPhysics.CollisionAPI.Apply(mesh.GetPrim())
    if approximation:
        UsdPhysics.MeshCollisionAPI.Apply(mesh.GetPrim()).CreateApproximationAttr(approximation)
    return _write(stage, tmp_path / f"mesh_{approximation or 'unset'}.usda")


def test_non_convex_mesh_error_or_hull_fallback(tmp_path, tabletop_usda):
    """A raw triangle-mesh collider: clear error in strict mode; convex-hull fallback rests on the table."""
    import shutil

    shutil.copy(tabletop_usda, tmp_path / "base.usda")
    path = _mesh_scene(tmp_path, None)
    with pytest.raises(StageError, match="triangle-mesh collider without a convex approximation"):
        SimBackendNewton(device="cpu", mesh_collision="error").load(path)

    sim = SimBackendNewton(device="cpu")
    info = sim.load(path)
    sim.step(num_steps=1200)
    z = sim.get_state().body_position_w(info, "/World/Objects/ell")[2]
    assert z == pytest.approx(0.75, abs=5e-3)  # mesh origin is its bottom face


def test_broken_usd_file_is_rejected(tmp_path):
    """A file that is not USD gives a one-line StageError."""
    path = tmp_path / "broken.usda"
    path.write_text("#usda 1.0\ndef Xform \"World\" {\n  this is not usd\n")
    with pytest.raises(StageError, match="cannot open USD stage") as info:
        SimBackendNewton(device="cpu").load(path)
    assert "\n" not in str(info.value)


def test_contact_buffer_grows_when_full(tabletop_usda, tabletop_config):
    """A too-small contact buffer grows and the full chunk is rerun: the result is bit-identical to a big buffer."""
    sim = SimBackendNewton(device="cpu", contact_capacity=16)
    info = sim.load(tabletop_usda)
    sim.step(num_steps=1200)
    assert sim._contact_capacity >= 64  # the resting scene needs ~53 contacts
    state = sim.get_state()
    big = SimBackendNewton(device="cpu", contact_capacity=4096)
    big.load(tabletop_usda)
    big.step(num_steps=1200)
    assert np.array_equal(state.body_pose_w, big.get_state().body_pose_w)
    top = tabletop_config.scene.table.size[2]
    assert state.body_position_w(info, "/World/Objects/red_cube")[2] == pytest.approx(top + 0.025, abs=3e-3)
    for obj in tabletop_config.scene.objects:
        assert state.body_position_w(info, f"/World/Objects/{obj.name}")[2] > top - 0.005


def test_vbd_solver_tracks_hard_targets(tabletop_usda, tabletop_config):
    """With solver='vbd' a target that XPBD converges to slowly is reached within 1e-2 rad in 2 s."""
    sim = SimBackendNewton(device="cpu", solver="vbd")
    info = sim.load(tabletop_usda)
    assert not sim.capabilities.differentiable
    state = sim.get_state()
    target = state.joint_q.copy()
    target[:7] += 0.2  # excites the joint 1/3 mode that XPBD's drives settle slowly
    sim.step(JointCommand(target_q=target), num_steps=1200)
    final = sim.get_state()
    assert np.abs(final.joint_q - target)[:7].max() < 1e-2
    top = tabletop_config.scene.table.size[2]
    assert final.body_position_w(info, "/World/Objects/red_cube")[2] == pytest.approx(top + 0.025, abs=3e-3)


def test_unknown_device_is_one_line_error():
    """A Warp device that does not exist names the available ones instead of a Warp traceback."""
    from vlatwin.errors import VlatwinError

    with pytest.raises(VlatwinError, match="Warp device 'cuda:7' is not available here; available: "):
        SimBackendNewton(device="cuda:7")
