"""The emulated robot (a second Newton instance behind an emulated link), in virtual time unless stated.

Every test drives the reach_ball stage; the twin is the task setup's own backend, stepped by hand.
"""

import time
from pathlib import Path

import numpy as np
import pytest

from vlatwin.errors import VlatwinError
from vlatwin.hardware.base import RobotAction
from vlatwin.hardware.clock import VirtualClock, WallClock
from vlatwin.hardware.emulated import EmulatedRobot, EmulationParams
from vlatwin.sim.types import JointCommand

REACH_BALL = Path(__file__).resolve().parents[2] / "configs" / "tasks" / "reach_ball.yaml"
CONTROL_DT = 0.05  # 20 Hz: 30 physics steps of 1/600 s


@pytest.fixture(scope="module")
def setup():
    from vlatwin.eval.setup import load_task_setup

    s = load_task_setup(REACH_BALL)
    yield s
    s.close()


def _robot(setup, clock=None, **params):
    robot = EmulatedRobot(
        setup.stage_path, setup.physics, clock=clock or VirtualClock(), params=EmulationParams(**params)
    )
    robot.connect()
    return robot


def _targets(q0, k):
    """A smooth joint-space motion around the home pose (fingers left alone)."""
    target = q0.copy()
    target[:7] += 0.15 * np.sin(2.0 * k * CONTROL_DT + np.arange(7))
    return target


def _drive(robot, clock, q0, steps, *, start=0, ttl=None):
    for k in range(start, start + steps):
        clock.set(k * CONTROL_DT)
        send = clock.now()
        robot.send_action(
            RobotAction(_targets(q0, k), seq=k, send_time=send, expires_at=None if ttl is None else send + ttl)
        )


def test_perfect_link_tracks_exactly_like_a_plain_backend(setup):
    """Zero latency, noise and mismatch: the robot's q is bit-identical to a second backend given the same commands."""
    twin = setup.sim
    twin.reset()
    clock = VirtualClock()
    robot = _robot(setup, clock)
    try:
        assert robot.joint_names == twin.info.joint_names
        q0 = twin.get_state().joint_q.copy()
        for k in range(30):
            clock.set(k * CONTROL_DT)
            assert np.array_equal(robot.truth().q, twin.get_state().joint_q)
            target = _targets(q0, k)
            applied = robot.send_action(RobotAction(target, seq=k, send_time=clock.now()))
            np.testing.assert_array_equal(
                applied.target_q, np.clip(target, twin.info.joint_lower, twin.info.joint_upper)
            )
            twin.set_command(JointCommand(target_q=target))
            twin.advance(30)
        clock.set(30 * CONTROL_DT)
        truth = robot.truth()
        assert truth.step == 900 and np.abs(truth.q - q0).max() > 0.05
        assert np.array_equal(truth.q, twin.get_state().joint_q)
        newest = robot.get_observation()
        assert newest.seq == 750 and newest.host_time == pytest.approx(1.5) and newest.robot_time == pytest.approx(1.5)
        np.testing.assert_array_equal(newest.joint_q, truth.q)
        assert newest.status["commands_received"] == 30 and newest.status["mode"] == "running"
    finally:
        robot.disconnect()


def test_latency_delays_states_and_robot_time_follows_offset_and_drift(setup):
    """50 ms each way: states arrive and commands act 50 ms late; robot_time = (t + offset)(1 + drift)."""
    offset, drift = 0.5, 50.0
    clock = VirtualClock()
    robot = _robot(setup, clock, latency_s=0.05, clock_offset_s=offset, drift_ppm=drift)
    try:
        q0 = robot.truth().q
        robot.send_action(RobotAction(_targets(q0, 10), seq=1, send_time=0.0))
        first = None
        while first is None:
            clock.advance(0.001)
            first = robot.get_observation()
        assert clock.now() >= 0.05 - 1e-9 and first.host_time == pytest.approx(0.05) and first.seq == 0
        clock.set(0.5)
        observations = robot.poll_observations()
        assert len(observations) > 200
        for obs in observations:
            measured = obs.host_time - 0.05
            assert obs.robot_time == pytest.approx((measured + offset) * (1 + drift * 1e-6), abs=1e-12)
        ((receive_time, seq, _),) = robot.truth().commands
        assert seq == 1 and receive_time == pytest.approx(0.05)
        t1, t2, t3, t4 = robot.sync_sample()
        assert t4 - t1 == pytest.approx(0.1 + 20e-6)
        theta = ((t2 - t1) + (t3 - t4)) / 2  # NTP offset: robot clock minus host clock
        assert theta == pytest.approx(robot.robot_clock(t1 + 0.05) - (t1 + 0.05), abs=1e-9)
    finally:
        robot.disconnect()


def test_ten_percent_loss_leaves_ten_percent_gaps(setup):
    """10 % loss both ways: about 10 % of state seqs missing, and the robot's lost-command estimate agrees."""
    clock = VirtualClock()
    robot = _robot(setup, clock, latency_s=0.02, jitter_s=0.005, loss=0.1, seed=3)
    try:
        q0 = robot.truth().q
        for k in range(200):
            clock.set(k * 0.01)
            robot.send_action(RobotAction(_targets(q0, k // 5), seq=k, send_time=clock.now()))
        clock.set(2.5)
        observations = robot.poll_observations()
        seqs = sorted(o.seq for o in observations)
        assert len(set(seqs)) == len(seqs)
        gap = 1.0 - len(seqs) / (seqs[-1] + 1)
        assert 0.07 < gap < 0.13
        status = robot.get_observation().status
        assert abs(status["commands_lost"] - (200 - status["commands_received"])) <= 2  # only trailing losses go unseen
        assert 0.04 < status["commands_lost"] / 200 < 0.17
    finally:
        robot.disconnect()


def test_latest_value_ignores_overtaken_commands_and_accepts_a_restarted_host(setup):
    """Jitter reorders commands: only newer ones apply; a host restarting at seq 0 with later send times is accepted."""
    clock = VirtualClock()
    robot = _robot(setup, clock, latency_s=0.03, jitter_s=0.02, seed=5)
    try:
        q0 = robot.truth().q
        for k in range(100):
            clock.set(k * 0.005)
            robot.send_action(RobotAction(_targets(q0, k // 10), seq=k, send_time=clock.now()))
        clock.set(1.0)
        applied = [seq for _, seq, _ in robot.truth().commands]
        status = robot.get_observation().status
        assert applied == sorted(applied) and status["commands_stale"] > 0
        assert status["commands_received"] == 100 and len(applied) + status["commands_stale"] == 100
        robot.send_action(RobotAction(q0, seq=0, send_time=clock.now()))
        clock.advance(0.2)
        assert robot.truth().commands[-1][1] == 0 and robot.get_observation().status["last_command_seq"] == 0
    finally:
        robot.disconnect()


def test_expired_commands_hold_then_decelerate_then_stop(setup):
    """After the last command's TTL: holding -> decelerating -> stopped in the streamed status, velocities to ~0."""
    clock = VirtualClock()
    robot = _robot(setup, clock, hold_s=0.02, max_decel=1.0)
    try:
        q0 = robot.truth().q
        for k in range(10):  # joint 1 ramps at 0.4 rad/s; each command lives 60 ms after it arrives
            clock.set(k * 0.02)
            target = q0.copy()
            target[0] += 0.4 * 0.02 * (k + 1)
            robot.send_action(RobotAction(target, seq=k, send_time=clock.now(), expires_at=clock.now() + 0.06))
        last_arrival = clock.now()
        modes, observations = [], []
        while clock.now() < 1.5:
            clock.advance(0.01)
            for obs in robot.poll_observations():
                observations.append(obs)
                if not modes or modes[-1][0] != obs.status["mode"]:
                    modes.append((obs.status["mode"], obs.robot_time))
        assert [m for m, _ in modes] == ["stopped", "running", "holding", "decelerating", "stopped"]
        holding_at = dict(modes)["holding"]
        assert last_arrival + 0.06 < holding_at <= last_arrival + 0.06 + 0.005
        assert dict(modes)["decelerating"] == pytest.approx(holding_at + 0.02, abs=0.005)
        assert robot.truth().mode == "stopped"
        # XPBD's stiff drives keep a small limit cycle at rest (the twin shows the same): ~0 against the motion.
        qd = np.array([o.joint_qd[:7] for o in observations])
        q = np.array([o.joint_q[:7] for o in observations])
        rest = np.array([o.robot_time for o in observations]) > 1.0
        assert np.abs(qd[~rest]).max() > 0.3
        # Measured: 0.034 rad/s RMS and 11 mrad peak to peak (the arm rings at about 1 Hz after the stop).
        assert np.sqrt(np.mean(qd[rest] ** 2)) < 0.05 and np.ptp(q[rest], axis=0).max() < 0.02
    finally:
        robot.disconnect()


def test_mismatch_changes_the_trajectory_deterministically(setup):
    """Mismatch 0.2: the robot parts from the twin under the same commands; the same seed repeats it exactly."""
    twin = setup.sim
    twin.reset()
    q0 = twin.get_state().joint_q.copy()
    for k in range(20):
        twin.set_command(JointCommand(target_q=_targets(q0, k)))
        twin.advance(30)
    runs = []
    for _ in range(2):
        clock = VirtualClock()
        robot = _robot(setup, clock, mismatch=0.2, seed=3)
        try:
            _drive(robot, clock, q0, 20)
            clock.set(20 * CONTROL_DT)
            runs.append(robot.truth())
        finally:
            robot.disconnect()
    a, b = runs
    assert np.array_equal(a.q, b.q)
    assert np.abs(a.q - twin.get_state().joint_q).max() > 1e-4
    nominal = twin.get_params()
    ratio = a.params.drive_stiffness / nominal.drive_stiffness
    assert np.all((ratio >= 0.8 - 1e-6) & (ratio <= 1.2 + 1e-6)) and np.ptp(ratio) > 0.01
    assert np.array_equal(a.params.body_mass[-2:], nominal.body_mass[-2:])  # objects keep their masses


def test_effort_noise_is_added_to_the_reported_effort_only(setup):
    """noise_effort: the reported drive effort scatters with that standard deviation about the noise-free one;
    positions (and their own noise stream) are as without it, so adding it keeps a recording's encoder noise."""
    observed = []
    for noise in (0.0, 0.2):
        clock = VirtualClock()
        robot = _robot(setup, clock, noise_q=1e-4, noise_effort=noise, seed=5)
        try:
            q0 = robot.truth().q
            efforts, qs = [], []
            for k in range(40):
                _drive(robot, clock, q0, 1, start=k)
                clock.set((k + 1) * CONTROL_DT)
                obs = robot.get_observation()
                efforts.append(obs.joint_effort.copy())
                qs.append(obs.joint_q.copy())
            observed.append((np.array(efforts), np.array(qs)))
        finally:
            robot.disconnect()
    (e0, q_a), (e1, q_b) = observed
    assert np.array_equal(q_a, q_b)
    diff = (e1 - e0).ravel()
    assert abs(diff.std() - 0.2) < 0.03 and abs(diff.mean()) < 0.03


def test_estop_latches_until_reset_and_a_new_command(setup):
    """E-stop: the robot stops and ignores commands; after reset it stays stopped until a new command."""
    clock = VirtualClock()
    robot = _robot(setup, clock, max_decel=2.0)
    try:
        q0 = robot.truth().q
        _drive(robot, clock, q0, 10)
        clock.advance(0.01)  # the last command has arrived
        robot.estop()
        # The stop takes max|qd| / max_decel: measured 0.53 s (joint 6 at 1.07 rad/s when the e-stop came).
        clock.advance(0.8)
        truth = robot.truth()
        status = robot.get_observation().status
        assert status["estop"] and status["mode"] == "stopped" and truth.mode == "stopped"
        held = truth.q.copy()
        robot.send_action(RobotAction(q0 + 0.1 * (np.arange(9) < 7), seq=20, send_time=clock.now()))
        clock.advance(0.3)
        status = robot.get_observation().status
        assert status["commands_rejected"] == 1 and status["last_command_seq"] == 9
        truth = robot.truth()
        assert [seq for _, seq, _ in truth.commands] == list(range(10))
        assert np.abs(truth.q - held).max() < 0.03  # settling only (XPBD rings); the refused command would move 0.1 rad
        robot.reset_estop()
        clock.advance(0.2)
        assert robot.truth().mode == "stopped" and not robot.get_observation().status["estop"]
        target = q0 + 0.1 * (np.arange(9) < 7)
        robot.send_action(RobotAction(target, seq=21, send_time=clock.now()))
        clock.advance(0.5)
        truth = robot.truth()
        assert truth.mode == "running" and truth.commands[-1][1] == 21
        assert np.abs(truth.q[:7] - target[:7]).max() < 0.06  # within XPBD's ringing after a 0.1 rad step
    finally:
        robot.disconnect()


def test_realtime_mode_streams_states_on_a_wall_clock(setup):
    """With a wall clock and the background thread, >= 100 states arrive in 0.5 s without polling."""
    robot = _robot(setup, WallClock(), latency_s=0.001)
    received = []
    try:
        robot.start_realtime(received.append)
        time.sleep(0.5)
        robot.stop_realtime()
        assert len(received) >= 100
        seqs = [o.seq for o in received]
        assert seqs == sorted(seqs) and received[-1].host_time > received[0].host_time
    finally:
        robot.disconnect()
    with pytest.raises(VlatwinError, match="wall clock"):
        virtual = _robot(setup, VirtualClock())
        try:
            virtual.start_realtime()
        finally:
            virtual.disconnect()


def test_initial_state_and_joint_limit_clip(setup):
    """The initial state is applied at connect; targets beyond the joint limits come back clipped."""
    from vlatwin.tasks.base import InitialState

    info = setup.sim.info
    robot_q = np.clip(np.asarray(setup.sim.reset().joint_q) + 0.1, info.joint_lower, info.joint_upper)
    robot = EmulatedRobot(
        setup.stage_path,
        setup.physics,
        clock=VirtualClock(),
        initial_state=InitialState(object_poses={}, robot_q=tuple(robot_q)),
    )
    robot.connect()
    try:
        np.testing.assert_allclose(robot.truth().q, robot_q, atol=1e-5)
        applied = robot.send_action(RobotAction(np.asarray(info.joint_upper) + 1.0, seq=1))
        np.testing.assert_array_equal(applied.target_q, info.joint_upper)
        with pytest.raises(VlatwinError, match="non-finite"):
            robot.send_action(RobotAction(np.full(len(robot_q), np.nan), seq=2))
    finally:
        robot.disconnect()


def test_options_parse_and_bad_values_are_one_line_errors():
    """URL options map to EmulationParams; unknown keys and bad values are refused with one line."""
    params = EmulationParams.from_options(
        {
            "latency_ms": "50",
            "jitter_ms": "10",
            "loss": "0.05",
            "offset_s": "0.5",
            "drift_ppm": "50",
            "mismatch": "0.2",
            "noise_q": "0.0005",
            "noise_effort": "0.1",
            "seed": "3",
            "rate_hz": "500",
            "up_loss": "0",
            "spikes": "1:2:0.2",
            "blackouts": "3:3.5",
            "clip": "false",
            "ramp_ms": "50",
        }
    )
    assert params.ramp_s == pytest.approx(0.05) and params.noise_effort == pytest.approx(0.1)
    assert params.latency_s == pytest.approx(0.05) and params.jitter_s == pytest.approx(0.01) and params.seed == 3
    assert params.link("up") == pytest.approx((0.05, 0.01, 0.0)) and params.link("down") == pytest.approx(
        (0.05, 0.01, 0.05)
    )
    assert (
        params.spikes == ((1.0, 2.0, 0.2),) and params.blackouts == ((3.0, 3.5),) and params.joint_limit_clip is False
    )
    for options in (
        {"latency": "5"},
        {"loss": "2"},
        {"seed": "x"},
        {"mismatch": "1"},
        {"rate_hz": "0"},
        {"spikes": "1:2"},
        {"ramp_ms": "-5"},
        {"ramp_ms": "nan"},
        {"noise_effort": "-1"},
    ):
        with pytest.raises(VlatwinError) as err:
            EmulationParams.from_options(options)
        assert "\n" not in str(err.value)


def test_scheduled_commands_take_effect_at_apply_at_whatever_the_jitter(setup):
    """``apply_at`` on the robot clock (offset + drift): a jittered link (50 +- 10 ms) delivers each command early
    and the robot holds it to its time, so the motion is bit-identical to a plain backend that applies every
    command exactly 100 ms after it was sent; the state stream reports each target from its ``apply_at``."""
    twin = setup.sim
    twin.reset()
    clock = VirtualClock()
    robot = _robot(setup, clock, latency_s=0.05, jitter_s=0.01, clock_offset_s=0.4, drift_ppm=80.0, seed=5)
    lead = 0.1
    try:
        q0 = twin.get_state().joint_q.copy()
        steps_per = int(round(CONTROL_DT / twin.physics_dt))
        pending: dict[int, np.ndarray] = {}
        for k in range(24):
            clock.set(k * CONTROL_DT)
            target = _targets(q0, k)
            robot.send_action(RobotAction(target, seq=k, send_time=clock.now(), apply_at=robot.robot_clock(clock.now() + lead)))
            pending[k + int(round(lead / CONTROL_DT))] = target
            if k in pending:
                twin.set_command(JointCommand(target_q=pending.pop(k)))
            twin.advance(steps_per)
        clock.set(24 * CONTROL_DT)
        truth = robot.truth()
        assert [seq for _, seq, _ in truth.commands] == list(range(22))
        for t_applied, seq, _ in truth.commands:
            assert t_applied == pytest.approx(seq * CONTROL_DT + lead, abs=1e-9)
        assert np.abs(truth.q - q0).max() > 0.05 and np.array_equal(truth.q, twin.get_state().joint_q)
        states = robot.poll_observations()
        status = states[-1].status
        assert status["commands_late"] == 0 and status["commands_scheduled"] >= 1
        # Each reported target took effect at its command's apply_at (robot clock), not at the packet's arrival.
        changes = {s.status["last_command_seq"]: s.status["target_time"] for s in states if s.status["last_command_seq"] is not None}
        for seq, target_time in changes.items():
            assert target_time == pytest.approx(robot.robot_clock(seq * CONTROL_DT + lead), abs=1e-9)
    finally:
        robot.disconnect()


def test_a_command_that_arrives_after_its_apply_at_is_applied_on_arrival_and_counted_late(setup):
    clock = VirtualClock()
    robot = _robot(setup, clock, latency_s=0.05, clock_offset_s=-0.2)
    try:
        q0 = robot.truth().q
        robot.send_action(RobotAction(_targets(q0, 3), seq=1, send_time=0.0, apply_at=robot.robot_clock(0.02)))
        clock.set(0.2)
        ((t_applied, seq, _),) = robot.truth().commands
        assert seq == 1 and t_applied == pytest.approx(0.05)
        assert robot.get_observation().status["commands_late"] == 1
        with pytest.raises(VlatwinError, match="apply_at"):
            robot.send_action(RobotAction(q0, seq=2, send_time=0.2, apply_at=float("nan")))
    finally:
        robot.disconnect()


def test_an_estop_drops_the_commands_waiting_for_their_time(setup):
    clock = VirtualClock()
    robot = _robot(setup, clock, latency_s=0.01)
    try:
        q0 = robot.truth().q
        robot.send_action(RobotAction(_targets(q0, 5), seq=1, send_time=0.0, apply_at=robot.robot_clock(0.5)))
        clock.set(0.1)
        assert robot.get_observation().status["commands_scheduled"] == 1
        robot.estop()
        clock.set(1.0)
        truth = robot.truth()
        assert truth.commands == () and truth.mode == "stopped"
        status = robot.get_observation().status
        assert status["commands_scheduled"] == 0 and status["commands_rejected"] == 1
    finally:
        robot.disconnect()


def test_a_lost_scheduled_command_is_recovered_from_the_repeat_in_the_next(setup):
    """20 % loss on a 50 ms link, 120 ms lead (> one period + the delay): with each command repeating the one before,
    every command takes effect at its own time although packets were lost; without the repeat they are gone."""
    lead = 0.12

    def run(repeat: bool):
        clock = VirtualClock()
        robot = _robot(setup, clock, latency_s=0.05, loss=0.2, clock_offset_s=0.3, seed=11)
        try:
            q0 = robot.truth().q
            previous = None
            for k in range(40):
                clock.set(k * CONTROL_DT)
                action = RobotAction(_targets(q0, k), seq=k, send_time=clock.now(), expires_at=clock.now() + lead + 0.15,
                                     apply_at=robot.robot_clock(clock.now() + lead), previous=previous if repeat else None)
                robot.send_action(action)
                previous = action
            clock.set(40 * CONTROL_DT + lead)
            return robot.truth().commands, robot.get_observation().status
        finally:
            robot.disconnect()

    lossy, lossy_status = run(repeat=False)
    lost = set(range(40)) - {seq for _, seq, _ in lossy}
    assert len(lost) >= 5 and lossy_status["commands_lost"] == len(lost)
    applied, status = run(repeat=True)
    # The same link draws: only a command whose successor was lost too stays lost.
    assert set(range(40)) - {seq for _, seq, _ in applied} == {k for k in lost if k + 1 in lost or k == 39}
    assert [seq for _, seq, _ in applied] == sorted(seq for _, seq, _ in applied)
    assert all(t == pytest.approx(seq * CONTROL_DT + lead, abs=1e-9) for t, seq, _ in applied)
    assert status["commands_recovered"] == len({k for k in lost if k + 1 not in lost and k < 39}) and status["commands_late"] == 0


def test_an_interpolating_servo_ramps_to_each_target_and_reports_its_events(setup):
    """``ramp_ms``: each command's target is reached over a linear ramp (TargetRamp, started at the step the command
    is applied). The motion is bit-identical to a plain backend whose drive target follows the same law step by
    step; each state reports the event (goal, start time, ramp) and the ramp's point the drive tracked."""
    from vlatwin.hardware.servo import TargetRamp

    twin = setup.sim
    twin.reset()
    clock = VirtualClock()
    robot = _robot(setup, clock, ramp_s=0.05)
    dt = twin.physics_dt
    try:
        q0 = twin.get_state().joint_q.copy()
        servo = TargetRamp(q0, 0.05)
        lo, hi = twin.info.joint_lower, twin.info.joint_upper
        for k in range(20):
            clock.set(k * CONTROL_DT)
            assert np.array_equal(robot.truth().q, twin.get_state().joint_q), f"period {k}"
            target = _targets(q0, k)
            robot.send_action(RobotAction(target, seq=k, send_time=clock.now()))
            # The robot applies the command at its step boundary k * 30 (no latency) and ramps from there.
            servo.set(30 * k * dt, np.clip(target, lo, hi))
            for j in range(30):
                twin.set_command(JointCommand(target_q=servo.step_target((30 * k + j) * dt, dt)))
                twin.advance(1)
        clock.set(20 * CONTROL_DT)
        assert np.array_equal(robot.truth().q, twin.get_state().joint_q)
        states = robot.poll_observations()
        last = states[-1]
        np.testing.assert_array_equal(last.joint_q_goal, np.clip(_targets(q0, 19), lo, hi))
        assert last.status["target_time"] == pytest.approx(19 * CONTROL_DT)
        assert last.status["target_ramp_s"] == 0.05 and last.status["servo_ramp_s"] == 0.05
        # Mid-ramp, the reported q_d lies strictly between the previous goal and the new one.
        mid = [s for s in states if s.robot_time == pytest.approx(19 * CONTROL_DT + 0.02)][0]
        before = np.clip(_targets(q0, 18), lo, hi)
        frac = (mid.joint_q_desired[:7] - before[:7]) / (mid.joint_q_goal[:7] - before[:7])  # the arm (fingers stay)
        np.testing.assert_allclose(frac, 0.4, atol=1e-9)  # q_d of the step before 20 ms = the ramp at 20 ms
    finally:
        robot.disconnect()


@pytest.mark.parametrize("ramp_s", [0.0, 0.05])
def test_a_command_whose_ttl_ends_within_one_step_is_still_held(setup, ramp_s):
    """A TTL shorter than a physics step: the command is past it at the boundary it is applied, so the robot goes
    straight to holding; what it holds is that command's target (ramped like any other), not the one before."""
    clock = VirtualClock()
    robot = _robot(setup, clock, ramp_s=ramp_s, hold_s=0.2)
    try:
        q0 = robot.truth().q.copy()
        target = q0.copy()
        target[0] += 0.2
        clock.set(0.0101)  # between step boundaries: the command is applied at the next one, 1.6 ms later
        robot.send_action(RobotAction(target, seq=1, send_time=clock.now(), expires_at=clock.now() + 0.0005))
        clock.set(0.1)
        obs = robot.get_observation()
        assert obs.status["mode"] == "holding"
        np.testing.assert_allclose(obs.joint_q_desired[0], target[0], atol=1e-12)
        assert robot.truth().q[0] > q0[0] + 0.1
    finally:
        robot.disconnect()
