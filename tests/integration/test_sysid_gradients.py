"""Sysid gradients from the XPBD tape (vlatwin.sysid.gradients) vs finite differences, on the reach_ball stage.

One 150-step rollout at 600 Hz (the task's physics) with a target step on every arm joint and a finger close,
so all joints move; the "measurement" is the simulated trajectory plus 0.02 rad noise, so the loss and its
gradients are nonzero. About 30 s with a warm kernel cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vlatwin.errors import VlatwinError

REACH_BALL = Path(__file__).resolve().parents[2] / "configs" / "tasks" / "reach_ball.yaml"
STEPS_PER_TARGET, SAMPLE_EVERY = 50, 10
ARM_STEP = np.array([0.3, -0.2, 0.2, 0.3, -0.3, 0.3, 0.4])


@pytest.fixture(scope="module")
def reach_ball_usda(tmp_path_factory) -> Path:
    from vlatwin.config.loader import load_config
    from vlatwin.usd.scene_builder import write_scene

    return write_scene(load_config(REACH_BALL).scene, tmp_path_factory.mktemp("sysid_grad") / "reach_ball.usda")


@pytest.fixture(scope="module")
def backend(reach_ball_usda):
    from vlatwin.sim.newton import SimBackendNewton

    sim = SimBackendNewton(device="cpu")
    sim.load(reach_ball_usda)
    yield sim
    sim.close()


@pytest.fixture(scope="module")
def rollout(reach_ball_usda, backend):
    from vlatwin.sysid.gradients import TapeRollout

    return TapeRollout(reach_ball_usda, physics_dt=backend.info.physics_dt, iterations=4)


@pytest.fixture(scope="module")
def problem(rollout, backend):
    """(q0, qd0, targets, q_measured): hold the home pose, then step every joint."""
    q0 = backend.reset().joint_q.copy()
    target = q0.copy()
    target[:7] += ARM_STEP
    target[7:] = 0.02  # close the fingers
    targets = np.stack([q0, target, target])
    qd0 = np.zeros_like(q0)
    traj = rollout.joint_trajectory({}, q0, qd0, targets, STEPS_PER_TARGET, SAMPLE_EVERY)
    q_measured = traj + np.random.default_rng(0).normal(0.0, 0.02, traj.shape)
    return q0, qd0, targets, q_measured


def test_rollout_matches_backend(rollout, backend, problem):
    """Same joints, and the same trajectory as SimBackendNewton for the same parameters and targets."""
    from vlatwin.sim.types import JointCommand, SimParams

    assert rollout.joint_names == backend.info.joint_names and len(rollout.joint_names) == 9
    assert rollout.body_paths == backend.info.body_paths
    q0, _, targets, _ = problem
    qd0 = np.zeros_like(q0)
    qd0[:7] = 0.05
    p0 = backend.get_params()
    scale = np.where(np.arange(len(p0.body_mass)) < 8, 1.2, 1.0)
    params = {
        "drive_damping": p0.drive_damping * 0.7,
        "joint_armature": np.r_[np.full(7, 0.05), 0.0, 0.0],
        "body_mass": p0.body_mass * scale,
    }
    try:
        backend.set_params(SimParams(
            drive_damping=params["drive_damping"], joint_armature=params["joint_armature"],
            body_mass=params["body_mass"], body_inertia=p0.body_inertia * scale[:, None, None],
        ))
        backend.set_joint_state(q0, qd0, hold=False)
        expected = []
        for target in targets:
            backend.set_command(JointCommand(target_q=target, target_qd=np.zeros_like(target)))
            for _ in range(STEPS_PER_TARGET // SAMPLE_EVERY):
                backend.advance(SAMPLE_EVERY)
                expected.append(backend.get_state().joint_q)
    finally:
        backend.set_params(p0)
    got = rollout.joint_trajectory(params, q0, qd0, targets, STEPS_PER_TARGET, SAMPLE_EVERY)
    assert np.abs(got - q0).max() > 0.2  # the joints moved
    # Measured: identical to the last bit (same kernels, same order; the graph capture changes nothing).
    np.testing.assert_allclose(got, np.array(expected), atol=1e-5, rtol=0)


def test_tape_gradients_match_finite_differences(rollout, problem):
    from vlatwin.sysid.gradients import compare_with_finite_differences

    q0, qd0, targets, q_measured = problem
    params = {"joint_armature": np.r_[np.full(7, 0.1), 0.0, 0.0]}  # armature > 0: a central difference fits
    links = {"panda_link1": 1, "panda_link3": 3, "panda_link6": 6}
    assert all(rollout.body_paths[i].endswith(name) for name, i in links.items())
    result = compare_with_finite_differences(
        rollout, params, q0, qd0, targets, STEPS_PER_TARGET, SAMPLE_EVERY, q_measured,
        {"drive_damping": [1, 3, 4], "joint_armature": [0, 3, 5], "body_mass": list(links.values())},
        rel_step=1e-2,
    )
    for name, (tape, fd, seconds_tape, seconds_fd) in result.items():
        picked = ~np.isnan(fd)
        tape, fd = tape[picked], fd[picked]
        print(f"{name}: tape {tape} fd {fd} ({seconds_tape:.2f} s tape, {seconds_fd:.2f} s FD)")
        # The float32 rollout and the FD truncation error leave a few % (measured: <= 3 % of the group's
        # largest component); 10 % of the largest component with the same sign where the gradient is significant.
        scale = np.abs(fd).max()
        assert scale > 0, name
        assert np.all(np.abs(tape - fd) <= 0.1 * scale), (name, tape, fd)
        significant = np.abs(fd) > 0.2 * scale
        assert np.all(np.sign(tape[significant]) == np.sign(fd[significant])), (name, tape, fd)
        assert seconds_tape > 0 and seconds_fd > 0


def test_free_bodies_and_joint_damping(rollout, problem):
    """Bodies the arm never touches get 0; passive damping shares the drive damping's gradient."""
    q0, qd0, targets, q_measured = problem
    _, grads = rollout.loss_and_gradient(
        {}, q0, qd0, targets, STEPS_PER_TARGET, SAMPLE_EVERY, q_measured, ["body_mass", "joint_damping", "drive_damping"]
    )
    ball = rollout.body_paths.index("/World/Objects/yellow_ball")
    assert grads["body_mass"][ball] == 0.0
    np.testing.assert_array_equal(grads["joint_damping"], grads["drive_damping"])


@pytest.mark.parametrize("name", ["drive_stiffness", "joint_friction", "body_inertia"])
def test_unverified_gradients_raise(rollout, problem, name):
    q0, qd0, targets, q_measured = problem
    with pytest.raises(VlatwinError, match=f"no tape gradient for {name}: .*finite differences") as err:
        rollout.loss_and_gradient({}, q0, qd0, targets, STEPS_PER_TARGET, SAMPLE_EVERY, q_measured, [name])
    assert "\n" not in str(err.value)
