"""CommandTimeline: the replay schedule from the robot's reports of when it applied each command."""

import numpy as np

from vlatwin.twin.commands import CommandTimeline

OFFSET = 0.3  # robot clock = host clock + OFFSET [s]


def to_host(robot_time: float) -> float:
    return robot_time - OFFSET


def q(value: float) -> np.ndarray:
    return np.full(3, value)


def _sent_and_guessed(timeline: CommandTimeline, guessed_delay: float = 0.04) -> None:
    """Commands 1..4 sent every 50 ms from t=0, applied in the twin after ``guessed_delay``."""
    for seq in range(1, 5):
        send = 0.05 * (seq - 1)
        timeline.sent(seq, send, q(seq))
        timeline.applied_in_twin(send + guessed_delay, q(seq), seq)


def test_without_robot_reports_the_schedule_is_the_twins_own_history():
    timeline = CommandTimeline()
    _sent_and_guessed(timeline)
    schedule = timeline.schedule(0.05, 0.2, to_host)
    assert [round(t, 6) for t, _ in schedule] == [0.09, 0.14, 0.19]
    assert [float(target[0]) for _, target in schedule] == [2.0, 3.0, 4.0]
    assert timeline.downlink_delay() is None and not timeline.has_robot_reports


def test_reported_targets_replace_guesses_and_a_lost_command_leaves_the_past():
    timeline = CommandTimeline(min_delay_samples=2)
    _sent_and_guessed(timeline)
    # The robot applied 1 at 0.061 and 3 at 0.162 (robot clock + offset); 2 never arrived.
    timeline.robot_report(0.061 + OFFSET, q(1), 1, to_host)
    timeline.robot_report(0.162 + OFFSET, q(3), 3, to_host)
    assert timeline.acked_seq == 3
    # Re-simulate from 0.0; the newest robot state is at host 0.18.
    schedule = timeline.schedule(0.0, 0.18, to_host)
    times = [round(t, 6) for t, _ in schedule]
    values = [float(target[0]) for _, target in schedule]
    # 1 and 3 at the robot's times; 2 (lost) is gone; 4 (not reported yet) at the twin's guess 0.19.
    assert values == [1.0, 3.0, 4.0]
    assert times == [0.061, 0.162, 0.19]
    # Delays: 0.061 - 0.0 and 0.162 - 0.1; the median of the two.
    assert abs(timeline.downlink_delay() - 0.0615) < 1e-9


def test_an_unreported_command_the_twin_applied_early_moves_to_the_newest_robot_state():
    timeline = CommandTimeline()
    _sent_and_guessed(timeline, guessed_delay=0.01)
    timeline.robot_report(0.07 + OFFSET, q(2), 2, to_host)
    # The twin applied 3 at 0.11 and 4 at 0.16; the robot had not applied them by 0.13.
    schedule = timeline.schedule(0.05, 0.13, to_host)
    assert [(round(t, 6), float(target[0])) for t, target in schedule] == [(0.07, 2.0), (0.13, 3.0), (0.16, 4.0)]


def test_the_target_in_effect_at_the_start_is_set_first():
    timeline = CommandTimeline()
    _sent_and_guessed(timeline)
    timeline.robot_report(0.045 + OFFSET, q(1), 1, to_host)
    timeline.robot_report(0.105 + OFFSET, q(2), 2, to_host)
    schedule = timeline.schedule(0.08, 0.12, to_host)
    # Command 1 was in effect at 0.08 (the snapshot may hold the twin's guess); then 2 at the robot's 0.105.
    assert [(round(t, 6), float(target[0])) for t, target in schedule][:2] == [(0.08, 1.0), (0.105, 2.0)]


def test_a_repeated_target_does_not_date_a_commands_arrival():
    """A command equal to the target already held leaves target_time at the older change: no delay sample."""
    timeline = CommandTimeline(min_delay_samples=1)
    timeline.sent(1, 0.0, q(1))
    timeline.robot_report(0.05 + OFFSET, q(1), 1, to_host)
    timeline.sent(2, 0.1, q(1))
    timeline.robot_report(0.05 + OFFSET, q(1), 2, to_host)  # same target: target_time unchanged
    assert timeline.delay_samples == 1
    assert abs(timeline.downlink_delay() - 0.05) < 1e-12
    assert timeline.acked_seq == 2


def test_reports_without_a_clock_or_fields_are_kept_safely():
    timeline = CommandTimeline(min_delay_samples=1)
    timeline.sent(1, 0.0, q(1))
    timeline.robot_report(None, q(1), 1, to_host)  # a robot without target_time
    timeline.robot_report(0.05, None, 1, to_host)  # nor q_desired
    assert not timeline.has_robot_reports
    timeline.robot_report(float("nan"), q(1), 1, to_host)
    assert not timeline.has_robot_reports
    timeline.robot_report(0.05 + OFFSET, q(1), 1, None)  # clock not synced yet: no delay sample
    assert timeline.has_robot_reports and timeline.delay_samples == 0
    # Without a clock the schedule falls back to the twin's history.
    timeline.applied_in_twin(0.04, q(1), 1)
    assert len(timeline.schedule(0.0, 0.1, None)) == 1


def test_reset_robot_forgets_the_old_session():
    timeline = CommandTimeline()
    timeline.sent(5, 0.0, q(5))
    timeline.robot_report(0.05 + OFFSET, q(5), 5, to_host)
    timeline.reset_robot()
    assert timeline.acked_seq == -1 and not timeline.has_robot_reports


def test_old_reports_fall_out_of_the_horizon():
    timeline = CommandTimeline(horizon_s=1.0)
    for k in range(30):
        timeline.robot_report(0.1 * k, q(k), k, to_host)
    assert len(timeline._robot) <= 11


def test_an_unreported_command_that_expired_is_not_replayed():
    """Commands the robot never reported and that expired before its newest state (lost before a blackout, refused
    after an e-stop) are dropped from the schedule; unexpired ones still move to the newest state."""
    timeline = CommandTimeline()
    for seq in (1, 2):
        send = 0.05 * (seq - 1)
        timeline.sent(seq, send, q(seq), expires_at=send + 0.15)
        timeline.applied_in_twin(send + 0.02, q(seq), seq)
    timeline.robot_report(0.021 + OFFSET, q(0), 0, to_host)  # the robot still tracks an older target
    fresh = timeline.schedule(0.0, 0.1, to_host)  # t_ack 0.1: both still valid
    assert [float(target[0]) for _, target in fresh] == [0.0, 1.0, 2.0]
    late = timeline.schedule(0.0, 0.18, to_host)  # command 1 expired at 0.15, command 2 lives until 0.2
    assert [float(target[0]) for _, target in late] == [0.0, 2.0] and late[-1][0] == 0.18
    assert [float(target[0]) for _, target in timeline.schedule(0.0, 0.25, to_host)] == [0.0]
