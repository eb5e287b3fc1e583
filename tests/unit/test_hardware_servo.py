"""The interpolating servo's law (TargetRamp) and its expansion into per-step targets (expand_ramps)."""

import math

import numpy as np
import pytest

from vlatwin.hardware.servo import TargetRamp, expand_ramps

DT = 1.0 / 600.0


def test_a_ramp_reaches_its_goal_linearly_over_its_duration():
    ramp = TargetRamp(np.zeros(2), ramp_s=0.05)
    assert ramp.set(1.0, [0.3, -0.6])
    np.testing.assert_allclose(ramp.at(1.0), [0.0, 0.0])
    np.testing.assert_allclose(ramp.at(1.025), [0.15, -0.3])
    np.testing.assert_allclose(ramp.at(1.05), [0.3, -0.6])
    np.testing.assert_allclose(ramp.at(7.0), [0.3, -0.6])
    assert ramp.moving(1.049) and not ramp.moving(1.05)
    # A step drives towards the ramp's value at the step's end: the first step already moves, and the step that
    # ends at t_start + ramp_s has the goal.
    np.testing.assert_allclose(ramp.step_target(1.0, 0.01), [0.06, -0.12])
    np.testing.assert_allclose(ramp.step_target(1.04, 0.01), [0.3, -0.6])


def test_zero_ramp_is_a_step_and_a_ramp_within_one_step_is_too():
    step = TargetRamp([0.0], ramp_s=0.0)
    step.set(0.0, [1.0])
    assert step.step_target(0.0, DT)[0] == 1.0 and not step.moving(0.0)
    short = TargetRamp([0.0], ramp_s=0.5 * DT)
    short.set(0.0, [1.0])
    assert short.step_target(0.0, DT)[0] == 1.0


def test_a_new_target_mid_ramp_starts_from_where_the_ramp_is_and_the_same_goal_restarts_nothing():
    ramp = TargetRamp([0.0], ramp_s=0.1)
    ramp.set(0.0, [1.0])
    assert not ramp.set(0.05, [1.0])  # a repeated command keeps the ramp's pace
    assert ramp.at(0.1)[0] == pytest.approx(1.0)
    assert ramp.set(0.05, [0.0])  # back from the middle
    assert ramp.at(0.05)[0] == pytest.approx(0.5)
    assert ramp.at(0.1)[0] == pytest.approx(0.25)
    assert ramp.at(0.15)[0] == pytest.approx(0.0)
    # The course is continuous in the start time: a twin off by a fraction of a step is off by that fraction.
    a, b = TargetRamp([0.0], 0.05), TargetRamp([0.0], 0.05)
    a.set(0.0, [1.0])
    b.set(0.1 * DT, [1.0])
    assert abs(a.at(0.01)[0] - b.at(0.01)[0]) == pytest.approx(0.1 * DT / 0.05)


def test_jump_and_copy():
    ramp = TargetRamp([0.0], ramp_s=0.1)
    ramp.set(0.0, [1.0])
    copy = ramp.copy()
    ramp.jump([0.2])
    assert ramp.at(0.01)[0] == 0.2 and not ramp.moving(0.0)
    assert copy.at(0.05)[0] == pytest.approx(0.5)  # the copy keeps its own course
    with pytest.raises(ValueError, match="ramp_s"):
        TargetRamp([0.0], ramp_s=-1.0)
    with pytest.raises(ValueError, match="ramp_s"):
        TargetRamp([0.0], ramp_s=math.nan)


def test_expand_ramps_gives_the_step_targets_a_servo_on_the_same_grid_applies():
    rng = np.random.default_rng(0)
    steps_per_command = 30
    times = np.arange(8) * steps_per_command * DT
    times[5] = times[4] + 7 * DT  # one command cuts the ramp before it short
    goals = rng.normal(size=(8, 3))
    ramps = np.full(8, 0.04)
    ramps[2] = 0.0  # a step (an expiry hold)
    out_t, out_q = expand_ramps(times, goals, ramps, DT, q0=np.zeros(3))
    assert np.all(np.diff(out_t) > 0)
    # The servo stepped on the grid, with each event applied at its step.
    servo = TargetRamp(np.zeros(3))
    events = {int(round(t / DT)): (g, r) for t, g, r in zip(times, goals, ramps)}
    expected = {}
    for k in range(int(round(times[-1] / DT)) + 30):
        if k in events:
            servo.set(k * DT, events[k][0], events[k][1])
        expected[k] = np.array(servo.step_target(k * DT, DT))
    # Replaying the expanded events as steps (each holds until the next) gives every step's target.
    for k in range(int(round(times[-1] / DT)) + 30):
        idx = int(np.searchsorted(out_t, k * DT + 1e-9, side="right")) - 1
        np.testing.assert_allclose(out_q[idx], expected[k], atol=1e-12, err_msg=f"step {k}")
    # Without any ramp the events come back as they are.
    same_t, same_q = expand_ramps(times, goals, 0.0, DT)
    np.testing.assert_array_equal(same_t, times)
    np.testing.assert_array_equal(same_q, goals)
