"""Delay compensation with the twin's trajectory, and the online divergence J with its alarms."""

import math

import numpy as np
import pytest
from vlatwin.errors import VlatwinError
from vlatwin.twin.delay import DelayCompensator
from vlatwin.twin.divergence import DivergenceMonitor

# ----------------------------------------------------------------------------------------- delay

OMEGA = 2 * math.pi * 0.5  # 0.5 Hz joint motion [rad/s]
AMP = np.array([0.5, 0.8, 0.3])  # [rad]
PHASE = np.array([0.0, 1.0, 2.0])


def truth(t):
    return AMP * np.sin(OMEGA * t + PHASE), AMP * OMEGA * np.cos(OMEGA * t + PHASE)


def imperfect_twin(t):
    """The twin moves like the robot but with 5 % less amplitude, a 20 ms phase lag and a 0.1 rad offset."""
    a, tl = 0.95 * AMP, t - 0.02
    return a * np.sin(OMEGA * tl + PHASE) + 0.1, a * OMEGA * np.cos(OMEGA * tl + PHASE)


def test_sine_with_80ms_delay():
    """80 ms late measurements carried forward by the twin's delta: error well under 0.2x the uncompensated one."""
    rng = np.random.default_rng(0)
    comp = DelayCompensator()
    delay, err_comp, err_raw = 0.08, [], []
    for k in range(1000):  # 10 s at 100 Hz
        t_now = 0.5 + k * 0.01
        comp.record(t_now, *imperfect_twin(t_now))
        t_meas = t_now - delay + rng.uniform(-0.005, 0.005)  # jittered latency, between twin samples
        q_meas, qd_meas = truth(t_meas)
        q, _ = comp.forward(t_meas, q_meas, qd_meas, t_now)
        if t_meas >= 0.5:
            assert comp.last_mode == "twin"
            err_comp.append(q - truth(t_now)[0])
            err_raw.append(q_meas - truth(t_now)[0])
    rms_comp, rms_raw = np.sqrt(np.mean(np.square(err_comp))), np.sqrt(np.mean(np.square(err_raw)))
    assert rms_comp < 0.2 * rms_raw
    assert rms_raw > 0.05  # the uncompensated error is real: ~ A * omega * 80 ms


def test_linear_twin_is_exact_and_velocity_delta():
    """For a twin linear in time the forward prediction is exact, for positions and velocities."""
    comp = DelayCompensator()
    for t in np.arange(0.0, 1.0, 0.013):
        comp.record(t, np.array([2.0 * t, -t]), np.array([2.0 + t, 0.5]))
    q, qd = comp.forward(0.3, np.array([1.0, 1.0]), np.array([0.0, 0.0]), 0.75)
    np.testing.assert_allclose(q, [1.0 + 2.0 * 0.45, 1.0 - 0.45])
    np.testing.assert_allclose(qd, [0.45, 0.0], atol=1e-12)


def test_extrapolates_past_the_newest_twin_state():
    """t_now after the newest recorded state: the twin is extrapolated at its last velocity."""
    comp = DelayCompensator()
    comp.record(0.0, [0.0], [1.0])
    comp.record(0.1, [0.1], [1.0])
    q, qd = comp.forward(0.05, [5.0], [0.0], 0.3)
    assert comp.last_mode == "twin"
    np.testing.assert_allclose(q, [5.25])
    np.testing.assert_allclose(qd, [0.0])
    # twin_at: interpolation inside, extrapolation after, None before the history.
    np.testing.assert_allclose(comp.twin_at(0.025)[0], [0.025])
    np.testing.assert_allclose(comp.twin_at(0.5)[0], [0.5])
    assert comp.twin_at(-0.01) is None


def test_constant_velocity_fallback():
    """No history, or t_meas before it: q_meas + qd_meas * latency, qd unchanged."""
    comp = DelayCompensator()
    q, qd = comp.forward(1.0, [0.2, 0.0], [1.0, -2.0], 1.1)
    assert comp.last_mode == "constant_velocity"
    np.testing.assert_allclose(q, [0.3, -0.2])
    np.testing.assert_allclose(qd, [1.0, -2.0])
    comp.record(1.05, [9.0, 9.0], [0.0, 0.0])
    q, _ = comp.forward(1.0, [0.2, 0.0], [1.0, -2.0], 1.1)
    assert comp.last_mode == "constant_velocity"
    np.testing.assert_allclose(q, [0.3, -0.2])


def test_measurement_from_the_future_is_returned_unchanged():
    """A measurement stamped after t_now (clock error) gets latency 0 and passes through."""
    comp = DelayCompensator()
    comp.record(0.0, [0.0], [1.0])
    q, _ = comp.forward(2.0, [0.5], [0.1], 1.0)
    assert comp.last_mode == "none"
    np.testing.assert_array_equal(q, [0.5])
    assert DelayCompensator.latency(2.0, 1.0) == 0.0
    assert comp.latency(1.0, 1.08) == pytest.approx(0.08)


def test_history_is_bounded_and_out_of_order_ignored():
    """At 1 kHz for 20 s with a 2 s horizon the history stays bounded but covers the horizon; late records are ignored."""
    comp = DelayCompensator(horizon_s=2.0)
    for k in range(20000):
        comp.record(k * 1e-3, [k * 1e-3], [1.0])
    t0, t1 = comp.span
    assert t1 == pytest.approx(19.999) and t1 - t0 >= 2.0
    assert len(comp) < 8192
    comp.record(5.0, [123.0], [0.0])  # older than the newest: ignored
    comp.record(19.999, [19.999], [1.0])  # same time: replaces
    q, _ = comp.forward(18.5, [0.0], [0.0], 19.5)
    np.testing.assert_allclose(q, [1.0])


def test_delay_bad_inputs():
    """NaN states, wrong shapes and bad horizons raise VlatwinError."""
    with pytest.raises(VlatwinError, match="horizon_s"):
        DelayCompensator(horizon_s=0.0)
    comp = DelayCompensator()
    comp.record(0.0, [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(VlatwinError, match="q has NaN"):
        comp.record(0.1, [0.0, math.nan], [0.0, 0.0])
    with pytest.raises(VlatwinError, match="shape"):
        comp.record(0.1, [0.0], [0.0])
    with pytest.raises(VlatwinError, match="q_meas"):
        comp.forward(0.0, [0.0, math.inf], [0.0, 0.0], 0.1)
    with pytest.raises(VlatwinError, match="t_now"):
        comp.forward(0.0, [0.0, 0.0], [0.0, 0.0], math.nan)


# ------------------------------------------------------------------------------------ divergence


def test_constant_error_integral():
    """A constant error e over T on irregular timestamps gives J = |e|^2 T per joint and in total; rms = |e|."""
    rng = np.random.default_rng(1)
    mon = DivergenceMonitor(alarm_rms=10.0, joint_names=["shoulder", "elbow"])
    e = np.array([0.1, -0.2])
    times = np.concatenate([[0.0], np.sort(rng.uniform(0.0, 3.0, 500)), [3.0]])
    for t in times:
        q_twin = rng.normal(size=2)
        assert mon.add(t, q_twin + e, q_twin) == []
    assert mon.J == pytest.approx(0.05 * 3.0, rel=1e-12)
    assert mon.J_per_joint == pytest.approx({"shoulder": 0.01 * 3.0, "elbow": 0.04 * 3.0}, rel=1e-12)
    assert mon.rms == pytest.approx(math.sqrt(0.05), rel=1e-12)
    np.testing.assert_allclose(mon.max_abs, [0.1, 0.2])
    assert mon.duration == pytest.approx(3.0)


def test_linear_ramp_integral():
    """Error a*t over [0, T]: J -> a^2 T^3 / 3 (trapezoid error a^2 T h^2 / 6); J_per_joint keyed by index."""
    a, T, steps = 0.4, 2.0, 2000
    mon = DivergenceMonitor(alarm_rms=10.0, window_s=0.5)
    for t in np.linspace(0.0, T, steps + 1):
        mon.add(t, [a * t, 0.0, 0.0], [0.0, 0.0, 0.0])
    h = T / steps
    assert mon.J == pytest.approx(a * a * T**3 / 3 + a * a * T * h * h / 6, rel=1e-9)
    assert set(mon.J_per_joint) == {0, 1, 2} and mon.J_per_joint[1] == 0.0
    # Windowed RMS over [T - w, T] of a*t: sqrt(a^2 (T^3 - (T-w)^3) / (3 w)).
    w = 0.5
    assert mon.rms == pytest.approx(math.sqrt(a * a * (T**3 - (T - w) ** 3) / (3 * w)), rel=1e-5)


def test_alarm_and_recovery_with_hysteresis():
    """A 0.2 rad error step trips a 0.1 rad alarm once the 0.5 s window RMS crosses it (after 0.125 s), and
    clears only below 0.05 rad (0.469 s after the error vanishes)."""
    mon = DivergenceMonitor(alarm_rms=0.1, window_s=0.5, joint_names=["a", "b"])
    messages = []
    dt = 1e-3
    for k in range(3001):
        t = k * dt
        err = 0.2 if 1.0 <= t < 2.0 else 0.0
        for msg in mon.add(t, [0.0, err], [0.0, 0.0]):
            messages.append((t, msg))
    assert len(messages) == 2
    (t_alarm, alarm), (t_clear, clear) = messages
    assert "divergence alarm" in alarm and "worst joint b" in alarm
    assert "recovered" in clear
    assert t_alarm == pytest.approx(1.125, abs=2 * dt)
    assert t_clear == pytest.approx(2.0 + 0.46875, abs=2 * dt)
    assert not mon.alarm


def test_alarm_latches_between_thresholds():
    """Between 0.5 x and 1 x alarm_rms the alarm state does not change."""
    mon = DivergenceMonitor(alarm_rms=0.1, window_s=0.1)
    assert mon.add(0.0, [0.2], [0.0]) != [] and mon.alarm
    for k in range(1, 400):
        assert mon.add(k * 1e-3, [0.07], [0.0]) == []
    assert mon.alarm and mon.rms == pytest.approx(0.07)


def test_infinite_alarm_threshold_disables_alarms():
    """alarm_rms=inf (replay: J only) never alarms but still integrates."""
    mon = DivergenceMonitor(alarm_rms=math.inf)
    assert mon.add(0.0, [1e6], [0.0]) == [] and mon.add(1.0, [1e6], [0.0]) == []
    assert not mon.alarm and mon.J == pytest.approx(1e12)


def test_out_of_order_samples_are_ignored():
    """Late or duplicate timestamps are counted and skipped; J is unchanged and nothing crashes."""
    mon = DivergenceMonitor(alarm_rms=1.0)
    mon.add(0.0, [0.1], [0.0])
    mon.add(1.0, [0.1], [0.0])
    j = mon.J
    assert mon.add(0.5, [5.0], [0.0]) == []
    assert mon.add(1.0, [5.0], [0.0]) == []
    assert mon.ignored == 2 and mon.J == j
    np.testing.assert_allclose(mon.max_abs, [0.1])


def test_divergence_bad_inputs():
    """Bad parameters, NaN states and shape changes raise VlatwinError; empty monitor reads zeros."""
    for kwargs in ({"alarm_rms": 0.0}, {"alarm_rms": math.nan}, {"alarm_rms": 0.1, "window_s": -1.0}):
        with pytest.raises(VlatwinError, match="DivergenceMonitor"):
            DivergenceMonitor(**kwargs)
    mon = DivergenceMonitor(alarm_rms=0.1, joint_names=["a", "b"])
    assert mon.J == 0.0 and mon.rms == 0.0 and mon.J_per_joint == {"a": 0.0, "b": 0.0} and not mon.alarm
    assert DivergenceMonitor(alarm_rms=0.1).J_per_joint == {}  # no names, no sample: joint count unknown
    with pytest.raises(VlatwinError, match="shape"):
        mon.add(0.0, [0.0], [0.0])
    with pytest.raises(VlatwinError, match="NaN"):
        mon.add(0.0, [0.0, math.nan], [0.0, 0.0])
    with pytest.raises(VlatwinError, match="finite host time"):
        mon.add(math.inf, [0.0, 0.0], [0.0, 0.0])
    unnamed = DivergenceMonitor(alarm_rms=0.1)
    unnamed.add(0.0, [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(VlatwinError, match=r"shape \(2,\)"):
        unnamed.add(0.1, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
