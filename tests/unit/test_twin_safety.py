"""Safety chain: each stage alone, their order, rate limiting, workspace box, collision, e-stop, shadow veto, validation."""

import json

import numpy as np
import pytest
from vlatwin.errors import VlatwinError
from vlatwin.twin.safety import (
    POLYMETIS_WORKSPACE,
    SafetyEvent,
    SafetyLimits,
    SafetyMonitor,
    ee_position_from_chain,
    shadow_veto,
)

pytestmark = pytest.mark.unit

LOWER = np.array([-2.0, -1.0, 0.0])
UPPER = np.array([2.0, 1.0, 0.04])
MARGIN = np.array([0.05, 0.05, 0.0])  # joint 2 is a gripper finger: no margin


def limits(**kw):
    return SafetyLimits(LOWER, UPPER, margin=MARGIN, **kw)


def planar_ee(q):
    """2-link planar arm (link lengths 0.5 m, 0.4 m) in the xy plane; extra joints are ignored."""
    q = np.asarray(q, float)
    return np.array(
        [0.5 * np.cos(q[0]) + 0.4 * np.cos(q[0] + q[1]), 0.5 * np.sin(q[0]) + 0.4 * np.sin(q[0] + q[1]), 0.3]
    )


def planar_chain():
    """The same 2-link planar arm as a KinematicChain (z axes, links along x)."""
    from vlatwin.control.kinematics import ChainJoint, KinematicChain

    t1, t2 = np.eye(4), np.eye(4)
    t1[0, 3], t2[0, 3] = 0.5, 0.4
    z = np.array([0.0, 0.0, 1.0])
    joints = [ChainJoint(name=n, kind="revolute", axis=z, lower=-np.pi, upper=np.pi) for n in ("a", "b")]
    return KinematicChain(joints, [np.eye(4), t1, t2])


# ----------------------------------------------------------------------------- each stage alone


def test_clean_target_passes_unchanged():
    """A target inside every limit comes out bit-identical with no events."""
    mon = SafetyMonitor(limits(max_relative_target=0.5, max_velocity=10.0, max_acceleration=1e3), dt=0.05)
    target = np.array([0.1, -0.2, 0.02])
    d = mon.check(target, np.array([0.1, -0.2, 0.02]))
    assert not d.rejected and not d.events and not d.clipped
    np.testing.assert_array_equal(d.target_q, target)


def test_nan_and_inf_are_rejected():
    """NaN or Inf in the target rejects it (hold) with one 'nan' event naming the joint."""
    mon = SafetyMonitor(limits(), dt=0.05)
    for bad in (np.nan, np.inf, -np.inf):
        d = mon.check(np.array([0.0, bad, 0.0]), np.zeros(3))
        assert d.rejected and d.target_q is None
        assert [e.kind for e in d.events] == ["nan"]
        assert "joint1" in d.events[0].reason and d.events[0].after is None


def test_nan_measured_position_is_rejected():
    """A non-finite measured position leaves no reference for the relative clamp: reject."""
    d = SafetyMonitor(limits(max_relative_target=0.1), dt=0.05).check(np.zeros(3), np.array([np.nan, 0, 0]))
    assert d.rejected and d.events[0].kind == "nan" and "measured" in d.events[0].reason


def test_joint_limits_with_per_joint_margin():
    """Targets are clipped into [lower + margin, upper - margin]; the gripper joint (margin 0) reaches its limit."""
    mon = SafetyMonitor(limits(), dt=0.05)
    d = mon.check(np.array([3.0, -1.0, 0.1]), np.zeros(3))
    assert not d.rejected and d.clipped
    np.testing.assert_allclose(d.target_q, [1.95, -0.95, 0.04])
    (event,) = d.events
    assert event.kind == "joint_limit"
    assert "joint0 3.0000 -> 1.9500" in event.reason and "joint2 0.1000 -> 0.0400" in event.reason
    np.testing.assert_array_equal(event.before, [3.0, -1.0, 0.1])
    np.testing.assert_allclose(event.after, d.target_q)


def test_relative_clamp_scalar_and_per_joint():
    """max_relative_target caps |target - measured| per joint (LeRobot semantics); inf switches a joint off."""
    measured = np.array([0.5, 0.0, 0.02])
    d = SafetyMonitor(limits(max_relative_target=0.1), dt=0.05).check(np.array([1.0, -0.5, 0.02]), measured)
    np.testing.assert_allclose(d.target_q, [0.6, -0.1, 0.02])
    assert [e.kind for e in d.events] == ["relative"]
    assert "measured 0.5000" in d.events[0].reason
    d = SafetyMonitor(limits(max_relative_target=[0.1, np.inf, 0.01]), dt=0.05).check(
        np.array([1.0, -0.5, 0.04]), measured
    )
    np.testing.assert_allclose(d.target_q, [0.6, -0.5, 0.03])


def test_workspace_box_rejects_with_planar_fk():
    """An end effector outside the box rejects the target (hold); the previous accepted target is kept."""
    lim = limits(workspace_min=[0.2, -0.5, 0.0], workspace_max=[1.0, 0.5, 1.0], ee_position=planar_ee)
    mon = SafetyMonitor(lim, dt=0.05)
    ok = mon.check(np.array([0.0, 0.3, 0.0]), np.zeros(3))  # ee at ~(0.88, 0.12)
    assert not ok.rejected
    bad = mon.check(np.array([1.2, 0.0, 0.0]), np.zeros(3))  # ee y = 0.9 sin(1.2) = 0.8388 > 0.5
    assert bad.rejected and bad.target_q is None
    (event,) = bad.events
    assert event.kind == "workspace" and "y 0.8388 > 0.5000" in event.reason
    np.testing.assert_array_equal(mon.last_target, ok.target_q)


def test_workspace_accepts_a_4x4_pose_and_chain_helper():
    """ee_position may return a 4x4 pose; ee_position_from_chain picks the arm joints out of q."""

    def fk_pose(q):
        pose = np.eye(4)
        pose[:3, 3] = planar_ee(q)
        return pose

    lim = limits(workspace_min=POLYMETIS_WORKSPACE[0], workspace_max=POLYMETIS_WORKSPACE[1], ee_position=fk_pose)
    assert not SafetyMonitor(lim, dt=0.1).check(np.array([0.0, 0.0, 0.0]), np.zeros(3)).rejected
    assert SafetyMonitor(lim, dt=0.1).check(np.array([1.5, 0.0, 0.0]), np.zeros(3)).rejected

    chain = planar_chain()
    ee = ee_position_from_chain(chain, arm=[0, 1])
    np.testing.assert_allclose(ee(np.array([0.3, -0.2, 0.01])), planar_ee([0.3, -0.2])[:2].tolist() + [0.0], atol=1e-12)


def test_collision_rejects_with_the_twins_reason():
    """A collision reason from the twin rejects the target and is quoted in the event."""
    lim = limits(collision=lambda q: "panda_hand touches table" if q[0] > 1.0 else None)
    mon = SafetyMonitor(lim, dt=0.05)
    assert not mon.check(np.array([0.5, 0, 0]), np.zeros(3)).rejected
    d = mon.check(np.array([1.5, 0, 0]), np.zeros(3))
    assert d.rejected and d.events[-1].kind == "collision" and "panda_hand touches table" in d.events[-1].reason


# ----------------------------------------------------------------------------- order


def test_nan_is_rejected_before_anything_else():
    """A target with NaN and out-of-limit values gives only the 'nan' event (no clipping first)."""
    lim = limits(
        max_relative_target=0.01,
        max_velocity=0.1,
        ee_position=planar_ee,
        workspace_min=[0, 0, 0],
        workspace_max=[1, 1, 1],
    )
    d = SafetyMonitor(lim, dt=0.05).check(np.array([5.0, np.nan, 9.0]), np.zeros(3))
    assert d.rejected and [e.kind for e in d.events] == ["nan"]


def test_relative_clamp_applies_after_limit_clipping():
    """Limit clipping runs first, so the relative clamp sees the clipped target (and may not fire at all)."""
    measured = np.array([1.9, 0.0, 0.0])
    d = SafetyMonitor(limits(max_relative_target=0.1), dt=0.05).check(np.array([3.0, 0.0, 0.0]), measured)
    assert [e.kind for e in d.events] == ["joint_limit"]  # 1.95 is within 0.1 of 1.9
    np.testing.assert_allclose(d.target_q, [1.95, 0.0, 0.0])
    d = SafetyMonitor(limits(max_relative_target=0.1), dt=0.05).check(np.array([3.0, 0.0, 0.0]), np.array([1.5, 0, 0]))
    assert [e.kind for e in d.events] == ["joint_limit", "relative"]
    np.testing.assert_allclose(d.events[1].before, [1.95, 0.0, 0.0])
    np.testing.assert_allclose(d.target_q, [1.6, 0.0, 0.0])


def test_full_chain_order_and_workspace_after_clamps():
    """Events come in chain order, and the workspace check sees the clamped (not the raw) target."""
    lim = limits(
        max_relative_target=0.5,
        max_velocity=4.0,
        max_acceleration=40.0,
        workspace_min=[0.2, -0.5, 0.0],
        workspace_max=[1.0, 0.5, 1.0],
        ee_position=planar_ee,
    )
    mon = SafetyMonitor(lim, dt=0.05)
    mon.reset(np.zeros(3))
    # raw target 3.0 would put the ee far outside; clipped it moves 0.1 rad (acceleration): inside.
    d = mon.check(np.array([3.0, 0.0, 0.0]), np.zeros(3))
    assert [e.kind for e in d.events] == ["joint_limit", "relative", "velocity", "acceleration"]
    assert not d.rejected
    np.testing.assert_allclose(d.target_q, [40.0 * 0.05 * 0.05, 0.0, 0.0])


# ----------------------------------------------------------------------------- rates


def test_velocity_and_acceleration_limit_a_step_input():
    """A step target becomes a ramp: the accepted sequence never exceeds max_velocity or max_acceleration."""
    dt, vmax, amax = 0.01, 1.0, 5.0
    mon = SafetyMonitor(SafetyLimits([-10.0], [10.0], max_velocity=vmax, max_acceleration=amax), dt=dt)
    mon.reset(np.zeros(1))
    accepted = [0.0]
    for _ in range(300):
        d = mon.check(np.array([1.0]), np.array([accepted[-1]]))  # ideal tracking
        accepted.append(float(d.target_q[0]))
    q = np.array(accepted)
    v = np.diff(q) / dt
    a = np.diff(v) / dt
    assert np.all(np.abs(v) <= vmax + 1e-9)
    assert np.all(np.abs(a) <= amax + 1e-6)
    assert abs(v[0]) <= amax * dt + 1e-12  # starts from rest
    assert v.max() == pytest.approx(vmax)  # reaches cruise speed
    assert q[-1] <= 1.0 + 1e-12 and q[-1] > 0.9  # approaches the target without passing it


def test_velocity_limit_alone():
    """Without an acceleration limit the target moves exactly max_velocity * dt per step."""
    mon = SafetyMonitor(SafetyLimits([-10.0, -10.0], [10.0, 10.0], max_velocity=[2.0, np.inf]), dt=0.1)
    d = mon.check(np.array([1.0, 1.0]), np.zeros(2))
    np.testing.assert_allclose(d.target_q, [0.2, 1.0])
    assert d.events[0].kind == "velocity" and "joint0" in d.events[0].reason and "joint1" not in d.events[0].reason
    d = mon.check(np.array([1.0, 1.0]), np.zeros(2))
    np.testing.assert_allclose(d.target_q, [0.4, 1.0])


def test_reject_resets_reference_velocity():
    """After a rejected target the caller holds, so the next one accelerates from zero again."""
    mon = SafetyMonitor(SafetyLimits([-10.0], [10.0], max_acceleration=10.0), dt=0.1)
    mon.reset(np.zeros(1))
    q1 = mon.check(np.array([5.0]), np.zeros(1)).target_q  # v 1.0
    q2 = mon.check(np.array([5.0]), q1).target_q  # v 2.0
    assert q2[0] - q1[0] == pytest.approx(0.2)
    assert mon.check(np.array([np.nan]), q2).rejected
    q3 = mon.check(np.array([5.0]), q2).target_q
    assert q3[0] - q2[0] == pytest.approx(0.1)


# ----------------------------------------------------------------------------- e-stop


def test_estop_latches_until_reset():
    """After estop() every check rejects with an 'estop' event until reset_estop()."""
    mon = SafetyMonitor(limits(), dt=0.05)
    assert not mon.estopped
    event = mon.estop("watchdog: no state for 150 ms", time=3.0)
    assert event.kind == "estop" and event.time == 3.0
    assert mon.estopped
    for _ in range(3):
        d = mon.check(np.zeros(3), np.zeros(3), time=4.0)
        assert d.rejected and [e.kind for e in d.events] == ["estop"] and "no state" in d.events[0].reason
    mon.reset_estop()
    assert not mon.estopped and not mon.check(np.zeros(3), np.zeros(3)).rejected


def test_event_to_dict_is_json():
    """Events serialize to strict JSON (NaN/Inf become null)."""
    d = SafetyMonitor(limits(), dt=0.05).check(np.array([np.nan, np.inf, 0.0]), np.zeros(3), time=1.5)
    data = d.events[0].to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == {
        "kind": "nan",
        "reason": data["reason"],
        "before": [None, None, 0.0],
        "after": None,
        "time": 1.5,
    }
    with pytest.raises(ValueError, match="kind"):
        SafetyEvent(kind="oops", reason="", before=None, after=None)


# ----------------------------------------------------------------------------- shadow veto


def test_shadow_veto_finds_limit_violation_in_row_3():
    """A roll-out that crosses a joint limit at row 3 is vetoed with a 'shadow' event naming row 3."""
    rows = np.zeros((6, 3))
    rows[:, 0] = [0.0, 0.5, 1.0, 2.1, 2.5, 2.5]
    event = shadow_veto(rows, limits())
    assert event is not None and event.kind == "shadow"
    assert "row 3" in event.reason and "joint0 2.1000" in event.reason
    np.testing.assert_array_equal(event.before, rows[3])
    assert shadow_veto(rows[:3], limits()) is None


def test_shadow_veto_workspace_collision_jump_nan():
    """The veto also catches workspace exits, collisions, jumps between rows and non-finite states."""
    lim = limits(
        workspace_min=[0.2, -0.5, 0.0],
        workspace_max=[1.0, 0.5, 1.0],
        ee_position=planar_ee,
        collision=lambda q: "self-collision" if q[1] < -0.9 else None,
    )
    safe = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.0]])
    assert shadow_veto(safe, lim, max_joint_step=0.2) is None
    out = safe.copy()
    out[2, 0] = 1.2
    assert "row 2" in shadow_veto(out, lim).reason and "workspace" in shadow_veto(out, lim).reason
    hit = safe.copy()
    hit[1, 1] = -0.95
    assert "row 1: collision: self-collision" in shadow_veto(hit, lim).reason
    jump = safe.copy()
    jump[2, 0] = 0.45
    assert "row 2: jump" in shadow_veto(jump, lim, max_joint_step=0.2).reason
    assert "row 0" in shadow_veto(safe, lim, max_joint_step=0.2, start_q=[0.5, 0, 0]).reason
    bad = safe.copy()
    bad[1, 2] = np.nan
    assert "row 1" in shadow_veto(bad, lim).reason and "not finite" in shadow_veto(bad, lim).reason


def test_shadow_veto_tolerance_on_soft_limits():
    """A simulated finger a hair past its limit is not vetoed; one clearly past it is."""
    rows = np.array([[0.0, 0.0, -0.0005]])
    assert shadow_veto(rows, limits()) is None
    assert shadow_veto(rows, limits(), limit_tolerance=0.0) is not None
    with pytest.raises(VlatwinError, match="shape"):
        shadow_veto(np.zeros((4, 2)), limits())


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_relative_target": np.nan}, "max_relative_target has NaN"),
        ({"max_relative_target": -0.1}, "max_relative_target must be > 0"),
        ({"max_relative_target": 0.0}, "max_relative_target must be > 0"),
        ({"max_relative_target": [0.1, 0.1]}, r"max_relative_target must be a number or shape \(3,\)"),
        ({"max_relative_target": "big"}, "max_relative_target"),
        ({"max_velocity": [1.0, np.nan, 1.0]}, "max_velocity has NaN at joints \\[1\\]"),
        ({"max_velocity": -1.0}, "max_velocity must be > 0"),
        ({"max_acceleration": np.zeros(3)}, "max_acceleration must be > 0"),
        ({"margin": -0.01}, "margin must be >= 0"),
        ({"margin": np.nan}, "margin has NaN"),
        ({"margin": np.inf}, "margin must be finite"),
        ({"margin": 0.05}, "leaves no room in joints \\[2\\]"),
        ({"workspace_min": [0, 0, 0]}, "both workspace_min and workspace_max"),
        ({"workspace_min": [0, 0, 0], "workspace_max": [1, 1, 1]}, "needs ee_position"),
        (
            {"workspace_min": [0, 0], "workspace_max": [1, 1, 1], "ee_position": planar_ee},
            "workspace_min must be 3 finite",
        ),
        (
            {"workspace_min": [0, np.nan, 0], "workspace_max": [1, 1, 1], "ee_position": planar_ee},
            "workspace_min must be 3 finite",
        ),
        ({"workspace_min": [1, 0, 0], "workspace_max": [1, 1, 1], "ee_position": planar_ee}, "must be < workspace_max"),
        ({"collision": "yes"}, "collision must be callable"),
        ({"joint_names": ("a", "b")}, "2 joint names for 3 joints"),
    ],
)
def test_invalid_parameters_give_one_line_errors(kwargs, match):
    """Every bad safety parameter raises a one-line VlatwinError naming it."""
    kw = {"margin": MARGIN, **kwargs}
    with pytest.raises(VlatwinError, match=match) as info:
        SafetyLimits(LOWER, UPPER, **kw)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("lower", "upper", "match"),
    [
        ([0.0, 1.0], [1.0, 0.5], "lower > upper at joints \\[1\\]"),
        ([0.0, np.nan], [1.0, 1.0], "lower has NaN"),
        ([0.0, 0.0], [1.0, 1.0, 1.0], "same \\(n,\\) shape"),
        ([[0.0]], [[1.0]], "same \\(n,\\) shape"),
        ([np.inf], [np.inf], "lower cannot be \\+inf"),
    ],
)
def test_invalid_joint_limits(lower, upper, match):
    """Wrong-shape, NaN or inverted joint limits are rejected in one line."""
    with pytest.raises(VlatwinError, match=match) as info:
        SafetyLimits(lower, upper, margin=0.0)
    assert "\n" not in str(info.value)


def test_monitor_rejects_bad_dt_and_shapes():
    """The monitor validates dt and the shape of every vector it is given."""
    for dt in (0.0, -0.1, np.nan, np.inf):
        with pytest.raises(VlatwinError, match="dt"):
            SafetyMonitor(limits(), dt)
    mon = SafetyMonitor(limits(), 0.05)
    with pytest.raises(VlatwinError, match=r"target_q must have shape \(3,\)"):
        mon.check(np.zeros(4), np.zeros(3))
    with pytest.raises(VlatwinError, match="measured_q"):
        mon.check(np.zeros(3), np.zeros(2))


def test_unlimited_joints_and_from_joint_limits():
    """Infinite limits are allowed (continuous joints); from_joint_limits gives gripper joints their own margin."""
    lim = SafetyLimits([-np.inf, -1.0], [np.inf, 1.0], margin=0.05)
    np.testing.assert_allclose(
        SafetyMonitor(lim, 0.1).check(np.array([100.0, 2.0]), np.zeros(2)).target_q, [100.0, 0.95]
    )
    lim = SafetyLimits.from_joint_limits(LOWER, UPPER, margin=0.05, gripper=[2], max_relative_target=0.2)
    np.testing.assert_allclose(lim.margin, [0.05, 0.05, 0.0])
    assert lim.max_relative_target.tolist() == [0.2, 0.2, 0.2]
    assert not lim.margin.flags.writeable
    with pytest.raises(VlatwinError, match="gripper index"):
        SafetyLimits.from_joint_limits(LOWER, UPPER, gripper=[5])


def test_from_robot_joints():
    """from_robot_joints uses the scene's joint names, zero margin on fingers, and the arm chain for the ee."""
    from vlatwin.control.base import RobotJoints

    joints = RobotJoints(
        joint_names=("/W/R/j1", "/W/R/j2", "/W/R/finger"), arm=[0, 1], gripper=[2], lower=LOWER, upper=UPPER
    )
    chain = planar_chain()
    lim = SafetyLimits.from_robot_joints(joints, chain=chain, workspace_min=[0.2, -0.5, -1], workspace_max=[1, 0.5, 1])
    assert lim.joint_names == ("j1", "j2", "finger")
    np.testing.assert_allclose(lim.margin, [0.05, 0.05, 0.0])
    d = SafetyMonitor(lim, 0.05).check(np.array([1.3, 0.0, 0.0]), np.zeros(3))
    assert d.rejected and d.events[0].kind == "workspace"
