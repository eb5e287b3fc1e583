"""The completed simulator seam on Newton: state in and out, commands, parameters, snapshots, efforts."""

import numpy as np
import pytest

from vlatwin.errors import VlatwinError
from vlatwin.sim.types import JointCommand, SimParams, SimState

ARM = slice(0, 7)


def _offset_target(state):
    return state.joint_q + np.r_[0.3, 0.2, -0.2, 0.3, 0.2, -0.3, 0.2, 0.0, 0.0]


def test_step_returns_the_new_state(newton_sim):
    start = newton_sim.reset()
    state = newton_sim.step(JointCommand(target_q=_offset_target(start)), num_steps=30)
    assert isinstance(state, SimState) and state.step == 30 and newton_sim.current_step == 30
    np.testing.assert_array_equal(state.joint_q, newton_sim.get_state().joint_q)
    assert np.abs(state.joint_q - start.joint_q)[ARM].max() > 0.01  # it moved


def test_set_joint_state_reads_back(newton_sim):
    newton_sim.reset()
    q = newton_sim.get_state().joint_q + np.r_[0.1, -0.1, 0.1, 0.1, -0.1, 0.1, -0.1, -0.01, -0.01]
    qd = np.r_[0.2, -0.1, 0.3, 0.0, 0.1, -0.2, 0.4, 0.0, 0.0]
    newton_sim.set_joint_state(q, qd)
    state = newton_sim.get_state()
    np.testing.assert_allclose(state.joint_q, q, atol=1e-5)
    np.testing.assert_allclose(state.joint_qd, qd, atol=1e-4)
    with pytest.raises(VlatwinError, match="joint velocities"):
        newton_sim.set_joint_state(q, qd[:3])


def test_snapshot_restore_is_bit_identical(newton_sim):
    start = newton_sim.reset()
    newton_sim.step(JointCommand(target_q=_offset_target(start)), num_steps=120)
    snap = newton_sim.snapshot()
    first = newton_sim.step(num_steps=200)
    # a "what if" rollout with other commands, then back
    newton_sim.step(JointCommand(target_q=start.joint_q, effort=np.full(9, 1.0)), num_steps=150)
    newton_sim.restore(snap)
    assert newton_sim.current_step == snap.step
    again = newton_sim.step(num_steps=200)
    np.testing.assert_array_equal(first.body_pose_w, again.body_pose_w)
    np.testing.assert_array_equal(first.joint_q, again.joint_q)


def test_velocity_target_and_feed_forward_effort_move_the_joint(newton_sim):
    start = newton_sim.reset()
    # A feed-forward torque on joint 1 (vertical axis, no gravity load) turns it against its drive.
    pushed = newton_sim.step(JointCommand(effort=np.r_[30.0, [0.0] * 8]), num_steps=300)
    assert pushed.joint_q[0] - start.joint_q[0] > 1e-4
    newton_sim.reset()
    with pytest.raises(VlatwinError, match="target_qd"):
        newton_sim.set_command(JointCommand(target_qd=np.zeros(3)))
    with pytest.raises(VlatwinError, match="finite"):
        newton_sim.set_command(JointCommand(target_q=np.r_[np.inf, [0.0] * 8]))


@pytest.mark.parametrize(
    "field, value",
    [("drive_stiffness", 20000.0), ("drive_damping", 300.0), ("joint_damping", 5.0), ("joint_friction", 2.0), ("joint_armature", 0.5)],
)
def test_each_parameter_changes_the_running_model(tabletop_usda, field, value):
    """Set on the running model: the trajectory changes, get returns what was set, and the captured
    graph sees the change (same result as an uncaptured run)."""
    from vlatwin.sim.newton import SimBackendNewton

    results = {}
    for use_graph in (True, False):
        sim = SimBackendNewton(device="cpu", use_graph=use_graph)
        sim.load(tabletop_usda)
        start = sim.reset()
        target = JointCommand(target_q=_offset_target(start))
        nominal = sim.step(target, num_steps=240)
        sim.reset()
        params = sim.get_params()
        new = getattr(params, field).copy()
        new[ARM] = value
        sim.set_params(SimParams(**{field: new}))
        np.testing.assert_allclose(getattr(sim.get_params(), field), new)
        changed = sim.step(target, num_steps=240)
        assert np.abs(changed.joint_q - nominal.joint_q)[ARM].max() > 1e-4, field
        assert np.all(np.isfinite(changed.body_pose_w))
        results[use_graph] = changed.joint_q
        sim.close()
    np.testing.assert_allclose(results[True], results[False], atol=1e-6)


def test_same_parameters_same_trajectory_whatever_was_set_before(newton_sim):
    """Friction's smoothing band depends on the inertia about each joint: setting friction and armature in one
    call must give what setting them on a fresh model does, not what the previous call's armature implies (a
    sysid fit sets parameters in any order)."""
    start = newton_sim.reset()
    target = JointCommand(target_q=_offset_target(start))
    params = newton_sim.get_params()
    friction, armature = params.joint_friction.copy(), params.joint_armature.copy()
    friction[ARM], armature[ARM] = 0.3, 0.03
    both = SimParams(joint_friction=friction, joint_armature=armature)
    newton_sim.set_params(both)
    first = newton_sim.step(target, num_steps=240).joint_q
    heavy = armature.copy()
    heavy[ARM] = 0.3
    for before in (SimParams(joint_armature=heavy), SimParams(joint_armature=params.joint_armature)):
        newton_sim.reset()
        newton_sim.set_params(before)
        newton_sim.set_params(both)
        np.testing.assert_array_equal(newton_sim.step(target, num_steps=240).joint_q, first)
    # a mass change alone re-derives the band too: masses after friction == masses before it
    heavier = SimParams(body_mass=params.body_mass * 3.0, body_inertia=params.body_inertia * 3.0)
    newton_sim.reset()
    newton_sim.set_params(heavier)
    newton_sim.set_params(both)
    masses_first = newton_sim.step(target, num_steps=240).joint_q
    assert np.abs(masses_first - first)[ARM].max() > 1e-5  # the masses matter at all
    newton_sim.reset()
    newton_sim.set_params(both)
    newton_sim.set_params(heavier)
    np.testing.assert_array_equal(newton_sim.step(target, num_steps=240).joint_q, masses_first)


def test_mass_and_inertia_parameters(newton_sim):
    info = newton_sim.info
    start = newton_sim.reset()
    target = JointCommand(target_q=_offset_target(start))
    nominal = newton_sim.step(target, num_steps=300)
    params = newton_sim.get_params()
    mass = params.body_mass.copy()
    link7 = info.body_index("/World/Robot/panda_link7")
    mass[link7] *= 4.0
    newton_sim.reset()
    newton_sim.set_params(SimParams(body_mass=mass))
    heavy = newton_sim.step(target, num_steps=300)
    assert np.abs(heavy.joint_q - nominal.joint_q)[ARM].max() > 1e-4
    with pytest.raises(VlatwinError, match="body_mass"):
        newton_sim.set_params(SimParams(body_mass=mass[:3]))
    with pytest.raises(VlatwinError, match=">= 0"):
        newton_sim.set_params(SimParams(joint_friction=-np.ones(9)))


def test_measured_efforts_follow_gravity(tabletop_usda):
    """Holding the home pose: joints with a vertical axis carry no load; a payload on the hand loads the
    shoulder and elbow in the direction gravity predicts."""
    from vlatwin.sim.newton import SimBackendNewton
    from vlatwin.utils.transforms import quat_wxyz_to_matrix

    newton_sim = SimBackendNewton(device="cpu", measure_joint_efforts=True)
    info = newton_sim.load(tabletop_usda)
    newton_sim.reset()
    rest = newton_sim.step(num_steps=900)
    assert np.all(np.isfinite(rest.joint_effort)) and rest.joint_effort.shape == (9,)
    assert np.abs(rest.joint_effort[[0, 2, 4, 6]]).max() < 0.5
    assert np.abs(rest.joint_effort[[1, 3]]).max() > 1.0
    mass = newton_sim.get_params().body_mass
    link7 = info.body_index("/World/Robot/panda_link7")
    mass[link7] += 2.0
    newton_sim.set_params(SimParams(body_mass=mass))
    newton_sim.reset()
    loaded = newton_sim.step(num_steps=900)
    # Sign of the extra gravity torque about joint 4's axis from the extra 2 kg at link 7's origin.
    pose4 = loaded.body_pose_w[info.body_index("/World/Robot/panda_link4")]
    axis = quat_wxyz_to_matrix(pose4[3:]) @ np.array([0.0, 0.0, 1.0])
    lever = loaded.body_pose_w[link7, :3] - pose4[:3]
    gravity_torque = axis @ np.cross(lever, [0.0, 0.0, -9.81 * 2.0])
    assert np.sign(loaded.joint_effort[3] - rest.joint_effort[3]) == -np.sign(gravity_torque)
    assert abs(loaded.joint_effort[3] - rest.joint_effort[3]) > 0.3 * abs(gravity_torque)


def test_commanded_efforts_without_measurement(newton_sim):
    """Default: the drive's commanded effort (PD law + feed-forward) as XPBD applies it, beyond the authored effort
    limits it does not enforce."""
    start = newton_sim.reset()
    target = _offset_target(start)
    feed_forward = np.r_[1.5, [0.0] * 8]
    state = newton_sim.step(JointCommand(target_q=target, effort=feed_forward), num_steps=3)
    params = newton_sim.get_params()
    law = params.drive_stiffness * (target - state.joint_q) + params.drive_damping * (0.0 - state.joint_qd) + feed_forward
    np.testing.assert_allclose(state.joint_effort, law, rtol=1e-5, atol=1e-6)
    limits = np.r_[[87.0] * 4, [12.0] * 3, [140.0] * 2]
    assert np.any(np.abs(state.joint_effort[ARM]) > limits[ARM])  # a 0.3 rad step asks some drives for more


def test_bad_step_counts_and_poses_are_one_line_errors(newton_sim):
    newton_sim.reset()
    for bad in (0, -3, 2.5):
        with pytest.raises(VlatwinError, match="num_steps must be a whole number >= 1"):
            newton_sim.advance(bad)
    assert newton_sim.current_step == 0  # the clock did not move
    with pytest.raises(VlatwinError, match="quaternion .* is zero"):
        newton_sim.set_body_pose("/World/Objects/red_cube", [0.5, 0.0, 0.8, 0.0, 0.0, 0.0, 0.0])


def test_reset_noise_is_held_not_pulled_back(tabletop_usda):
    """A seeded noisy start is the robot's new home for the episode: the drives hold it."""
    from vlatwin.sim.newton import SimBackendNewton

    sim = SimBackendNewton(device="cpu", reset_joint_noise=0.2)
    sim.load(tabletop_usda)
    nominal = sim.reset()
    start = sim.reset(seed=4)
    assert np.abs(start.joint_q - nominal.joint_q)[ARM].max() > 0.02
    later = sim.step(num_steps=300)
    assert np.abs(later.joint_q - start.joint_q)[ARM].max() < 0.02  # stays near the noisy start
    sim.close()
