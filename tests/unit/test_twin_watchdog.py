"""Watchdogs: state timeout on the host, command expiry (running -> holding -> decelerating -> stopped) on the robot."""

import itertools

import numpy as np
import pytest
from vlatwin.errors import VlatwinError
from vlatwin.twin.watchdog import EXPIRY_MODES, CommandExpiry, StateWatchdog, default_timeout

pytestmark = pytest.mark.unit


def test_default_timeout():
    """max(3 control periods, 100 ms)."""
    assert default_timeout(0.01) == pytest.approx(0.1)
    assert default_timeout(0.05) == pytest.approx(0.15)
    assert default_timeout(1 / 15) == pytest.approx(0.2)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(VlatwinError, match="control_dt"):
            default_timeout(bad)


def test_state_watchdog_expires_and_recovers():
    """The watchdog expires once the newest state is older than the timeout, and a fresh state clears it."""
    wd = StateWatchdog(0.1)
    assert wd.expired(0.0) and wd.age(0.0) == float("inf")  # never fed: no state is the worst case
    wd.feed(1.0)
    assert not wd.expired(1.099) and wd.age(1.05) == pytest.approx(0.05)
    assert wd.expired(1.1001)
    wd.feed(0.5)  # an out-of-order (older) state does not refresh it
    assert wd.last_time == 1.0 and wd.expired(1.2)
    wd.feed(1.2)
    assert not wd.expired(1.25)
    assert not StateWatchdog(0.1, start_time=5.0).expired(5.05)
    for bad in (0.0, -0.1, np.nan, np.inf, "x"):
        with pytest.raises(VlatwinError, match="timeout_s") as info:
            StateWatchdog(bad)
        assert "\n" not in str(info.value)


def simulate(expiry, *, q0, v0, last_target, receive, ttl, t_end, dt=0.01):
    """Servo an ideal robot (qd = commanded velocity) through the expiry logic; returns times, modes, q, targets."""
    q, qd = np.array(q0, float), np.array(v0, float)
    times, modes, qs, targets, vels = [], [], [], [], []
    t = 0.0
    while t <= t_end + 1e-12:
        target, mode = expiry.target(t, last_target, receive, ttl, q, qd)
        times.append(t)
        modes.append(mode)
        qs.append(q.copy())
        targets.append(target.copy())
        vels.append(None if expiry.velocity is None else expiry.velocity.copy())
        if mode == "decelerating":
            qd = (target - q) / dt
        elif mode == "stopped":
            qd = np.zeros_like(q)
        q = q + qd * dt  # running/holding: keep the velocity we had (the target is far away)
        t = round(t + dt, 10)
    return times, modes, qs, targets, vels


def test_command_expiry_sequence_and_monotone_velocity():
    """running -> holding -> decelerating -> stopped; after expiry the velocity never increases and decel <= max."""
    expiry = CommandExpiry(hold_s=0.05, max_decel=np.array([2.0, 4.0]))
    last = np.array([1.0, -1.0])
    times, modes, _qs, targets, vels = simulate(
        expiry, q0=[0.0, 0.0], v0=[0.4, -0.4], last_target=last, receive=0.0, ttl=0.1, t_end=1.0
    )
    # modes only move forward through the sequence, and each appears
    order = [EXPIRY_MODES.index(m) for m in modes]
    assert order == sorted(order) and set(modes) == set(EXPIRY_MODES)
    for t, mode, target in zip(times, modes, targets, strict=True):
        if t <= 0.1:
            assert mode == "running"
        elif t <= 0.15 + 1e-9:
            assert mode == "holding"
        if mode in ("running", "holding"):
            np.testing.assert_array_equal(target, last)
    # stop time is set by the slowest joint: 0.4 / 2.0 = 0.2 s after deceleration starts
    first_decel = times[modes.index("decelerating")]
    first_stop = times[modes.index("stopped")]
    assert first_stop - first_decel == pytest.approx(0.2, abs=0.011)
    speeds = [np.abs(v) for v, m in zip(vels, modes, strict=True) if m in ("decelerating", "stopped")]
    for a, b in itertools.pairwise(speeds):
        assert np.all(b <= a + 1e-12)
    decel = [np.abs(a - b) / 0.01 for a, b in itertools.pairwise(speeds)]
    assert np.all(np.max(decel, axis=0) <= np.array([2.0, 4.0]) + 1e-9)
    # the path is kept: both joints slow down in proportion
    v_mid = vels[modes.index("decelerating") + 5]
    assert v_mid[0] == pytest.approx(-v_mid[1])


def test_stopped_target_is_latched():
    """Once stopped the target is the position at the stop, even if the measured position sags afterwards."""
    expiry = CommandExpiry(max_decel=10.0)
    expiry.target(0.0, np.zeros(2), 0.0, 0.1, np.zeros(2), np.zeros(2))
    target, mode = expiry.target(0.2, np.zeros(2), 0.0, 0.1, np.array([0.3, 0.3]), np.zeros(2))
    assert mode == "stopped"
    np.testing.assert_array_equal(target, [0.3, 0.3])
    target, mode = expiry.target(0.3, np.zeros(2), 0.0, 0.1, np.array([0.25, 0.2]), np.array([-0.5, -1.0]))
    assert mode == "stopped"
    np.testing.assert_array_equal(target, [0.3, 0.3])


def test_fresh_command_resumes_and_stale_one_does_not():
    """A fresh command returns to running; an already-expired one leaves the robot stopped."""
    expiry = CommandExpiry(max_decel=10.0)
    q = np.zeros(1)
    assert expiry.target(0.0, np.ones(1), 0.0, 0.1, q, q)[1] == "running"
    assert expiry.target(0.5, np.ones(1), 0.0, 0.1, q, q)[1] == "stopped"
    assert expiry.target(0.6, np.full(1, 2.0), 0.3, 0.1, q, q)[1] == "stopped"  # stale on arrival
    target, mode = expiry.target(0.7, np.full(1, 3.0), 0.65, 0.1, q, q)
    assert mode == "running" and target[0] == 3.0
    assert expiry.velocity is None


def test_ttl_none_nan_negative_and_no_command():
    """No ttl never expires; a NaN or negative ttl expires at once; no command at all decelerates and stops."""
    q = np.zeros(2)
    assert CommandExpiry().target(1e6, np.ones(2), 0.0, None, q, q)[1] == "running"
    assert CommandExpiry().target(0.0, np.ones(2), 0.0, np.nan, q, q)[1] != "running"
    assert CommandExpiry().target(0.0, np.ones(2), 0.0, -1.0, q, q)[1] != "running"
    expiry = CommandExpiry(max_decel=1.0)
    target, mode = expiry.target(0.0, None, None, 0.1, q, np.array([0.5, 0.0]), dt=0.01)
    assert mode == "decelerating"
    np.testing.assert_allclose(target, [0.005, 0.0])
    _, mode = expiry.target(0.6, None, None, 0.1, q, np.array([0.5, 0.0]))
    assert mode == "stopped"
    target, mode = CommandExpiry().target(0.0, None, None, 0.1, q, np.array([np.nan, np.inf]))
    assert mode == "stopped" and np.isfinite(target).all()


def test_command_expiry_invalid_parameters():
    """hold_s and max_decel are validated in one line."""
    for kwargs in (
        {"hold_s": -1.0},
        {"hold_s": np.nan},
        {"max_decel": 0.0},
        {"max_decel": [1.0, np.nan]},
        {"max_decel": -2.0},
    ):
        with pytest.raises(VlatwinError) as info:
            CommandExpiry(**kwargs)
        assert "\n" not in str(info.value)
