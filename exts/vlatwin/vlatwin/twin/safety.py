"""The safety gate between a policy and the robot: a fixed chain of checks, a shadow-mode veto and a latched e-stop.

Every joint target goes through :meth:`SafetyMonitor.check` before it reaches the twin or the robot.
The chain runs in this order (the order the reference stacks use: Polymetis, DROID, LeRobot)::

    NaN/Inf          -> reject (the caller holds the last accepted target)
    joint limits     -> clip into [lower + margin, upper - margin]
    relative clamp   -> clip to measured_q +- max_relative_target (LeRobot's ``max_relative_target``)
    velocity         -> clip to previous accepted target +- max_velocity * dt
    acceleration     -> clip the step's velocity to the previous one +- max_acceleration * dt
    workspace box    -> reject when the end effector of the clipped target leaves the box
    collision        -> reject when the twin says the clipped target collides

Each clip or reject adds one :class:`SafetyEvent` with the reason (joints and both values) and the
target before and after, so a run log shows exactly what was changed and why. A workspace exit cannot
be clipped in joint space (which joint would move?), so it is a reject, as in Polymetis.

:func:`shadow_veto` checks a twin roll-out of a whole chunk (joint positions at each control step) before
the robot sees it. All of it is numpy only; the limits are validated up front because a bad parameter
must not silently switch a clamp off (LeRobot: a NaN ``max_relative_target`` disabled its clamp and a
negative one inverted it).

Joint vectors are in the robot's joint order, [rad] for revolute and [m] for prismatic joints; times
are host seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vlatwin.errors import VlatwinError

if TYPE_CHECKING:
    from vlatwin.control.base import RobotJoints
    from vlatwin.control.kinematics import KinematicChain

__all__ = [
    "EVENT_KINDS",
    "POLYMETIS_WORKSPACE",
    "SafetyDecision",
    "SafetyEvent",
    "SafetyLimits",
    "SafetyMonitor",
    "ee_position_from_chain",
    "shadow_veto",
]

EVENT_KINDS = (
    "nan",
    "joint_limit",
    "relative",
    "velocity",
    "acceleration",
    "workspace",
    "collision",
    "shadow",
    "estop",
    "watchdog",
)
"""Every :attr:`SafetyEvent.kind`."""

POLYMETIS_WORKSPACE = (np.array([0.1, -0.4, -0.05]), np.array([1.0, 0.4, 1.0]))
"""Polymetis' default end-effector box (min, max) in the robot base frame [m]
(``conf/robot_client/franka_hardware.yaml``)."""

_MAX_LISTED = 4  # joints named in one reason; the rest are counted


def _json_list(values: np.ndarray | None) -> list | None:
    if values is None:
        return None
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).reshape(-1)]


@dataclass(frozen=True)
class SafetyEvent:
    """One clip, reject or stop, with its reason and the joint target before and after."""

    kind: str
    """One of :data:`EVENT_KINDS`."""
    reason: str
    """One line naming the joints and values, e.g. ``joint3 2.9500 -> 2.8473 (upper 2.8973 - margin 0.05)``."""
    before: np.ndarray | None
    """Target (or state) before this stage [rad | m], (n,); None when there was none."""
    after: np.ndarray | None
    """Target after this stage [rad | m], (n,); None when the target was rejected (the caller holds)."""
    time: float | None = None
    """Host time of the check [s], when the caller gave one."""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"safety event kind {self.kind!r} is not one of {', '.join(EVENT_KINDS)}")
        for name in ("before", "after"):
            value = getattr(self, name)
            if value is not None:
                arr = np.array(value, dtype=np.float64).reshape(-1)
                arr.flags.writeable = False
                object.__setattr__(self, name, arr)

    def to_dict(self) -> dict:
        """JSON-ready (plain lists; NaN/Inf become None, the reason text keeps the values)."""
        return {
            "kind": self.kind,
            "reason": self.reason,
            "before": _json_list(self.before),
            "after": _json_list(self.after),
            "time": None if self.time is None else float(self.time),
        }


@dataclass(frozen=True)
class SafetyDecision:
    """What :meth:`SafetyMonitor.check` made of one target."""

    target_q: np.ndarray | None
    """The target to send [rad | m], (n,); None when rejected (hold the last accepted target)."""
    events: list[SafetyEvent] = field(default_factory=list)
    """Every clip and reject, in chain order."""
    rejected: bool = False
    """True when :attr:`target_q` is None."""

    @property
    def clipped(self) -> bool:
        """The target was changed but accepted."""
        return not self.rejected and bool(self.events)


def _per_joint(name: str, value, n: int, *, allow_zero: bool, allow_inf: bool) -> np.ndarray:
    """A validated (n,) array from a scalar or per-joint array; raises a one-line VlatwinError."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise VlatwinError(
            f"safety limits: {name} must be a number or {n} numbers, got {type(value).__name__}"
        ) from None
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise VlatwinError(f"safety limits: {name} must be a number or shape ({n},), got shape {arr.shape}")
    if np.isnan(arr).any():
        raise VlatwinError(f"safety limits: {name} has NaN at joints {np.flatnonzero(np.isnan(arr)).tolist()}")
    if not allow_inf and np.isinf(arr).any():
        raise VlatwinError(f"safety limits: {name} must be finite, got {arr.tolist()}")
    bad = arr < 0 if allow_zero else arr <= 0
    if bad.any():
        need = ">= 0" if allow_zero else "> 0"
        raise VlatwinError(
            f"safety limits: {name} must be {need}, got {arr[bad].tolist()} at joints {np.flatnonzero(bad).tolist()}"
        )
    arr.flags.writeable = False
    return arr


def _box_vector(name: str, value) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64).reshape(-1) if value is not None else None
    except (TypeError, ValueError):
        raise VlatwinError(f"safety limits: {name} must be 3 numbers [m], got {value!r}") from None
    if arr is None or arr.shape != (3,) or not np.isfinite(arr).all():
        raise VlatwinError(f"safety limits: {name} must be 3 finite numbers [m], got {value!r}")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class SafetyLimits:
    """Every number the safety chain uses, validated once (one-line :class:`VlatwinError` on a bad one).

    Scalars broadcast to every joint. ``inf`` switches a per-joint rate or relative limit off for that
    joint (on purpose, unlike a NaN, which is an error).
    """

    lower: np.ndarray
    """Lower joint limits (n,) [rad | m] (-inf allowed for unlimited joints)."""
    upper: np.ndarray
    """Upper joint limits (n,) [rad | m] (+inf allowed)."""
    _: KW_ONLY
    margin: float | np.ndarray = 0.05
    """Targets are kept this far inside the limits [rad | m]; a scalar or (n,) (0 for gripper joints)."""
    max_relative_target: float | np.ndarray | None = None
    """Largest |target - measured| per step [rad | m], scalar or (n,); None: no clamp."""
    max_velocity: float | np.ndarray | None = None
    """Largest commanded target velocity [rad/s | m/s], scalar or (n,); None: no limit."""
    max_acceleration: float | np.ndarray | None = None
    """Largest commanded target acceleration [rad/s^2 | m/s^2], scalar or (n,); None: no limit."""
    workspace_min: np.ndarray | None = None
    """End-effector box minimum (3,) [m], robot base frame; None: no box (see :data:`POLYMETIS_WORKSPACE`)."""
    workspace_max: np.ndarray | None = None
    """End-effector box maximum (3,) [m], robot base frame."""
    ee_position: Callable[[np.ndarray], np.ndarray] | None = None
    """q (n,) -> end-effector position (3,) [m] in the base frame (a 4x4 pose is accepted too)."""
    collision: Callable[[np.ndarray], str | None] | None = None
    """q (n,) -> a reason when the twin says q collides, else None."""
    joint_names: tuple[str, ...] | None = None
    """Names used in event reasons; ``joint0, joint1, ...`` when None."""

    def __post_init__(self) -> None:
        try:
            lower = np.array(self.lower, dtype=np.float64)
            upper = np.array(self.upper, dtype=np.float64)
        except (TypeError, ValueError):
            raise VlatwinError("safety limits: lower and upper must be arrays of numbers [rad | m]") from None
        if lower.ndim != 1 or lower.shape != upper.shape or lower.size == 0:
            raise VlatwinError(
                f"safety limits: lower {lower.shape} and upper {upper.shape} must be the same (n,) shape"
            )
        n = lower.size
        for name, arr in (("lower", lower), ("upper", upper)):
            if np.isnan(arr).any():
                raise VlatwinError(f"safety limits: {name} has NaN at joints {np.flatnonzero(np.isnan(arr)).tolist()}")
        if (lower == np.inf).any() or (upper == -np.inf).any():
            raise VlatwinError("safety limits: lower cannot be +inf and upper cannot be -inf")
        if (lower > upper).any():
            j = np.flatnonzero(lower > upper)
            raise VlatwinError(
                f"safety limits: lower > upper at joints {j.tolist()}: {lower[j].tolist()} > {upper[j].tolist()}"
            )
        margin = _per_joint("margin", self.margin, n, allow_zero=True, allow_inf=False)
        tight = lower + margin > upper - margin
        if tight.any():
            j = np.flatnonzero(tight)
            raise VlatwinError(
                f"safety limits: margin {margin[j].tolist()} leaves no room in joints {j.tolist()} "
                f"[{lower[j].tolist()}, {upper[j].tolist()}]; use a per-joint margin (0 for gripper joints)"
            )
        lower.flags.writeable = False
        upper.flags.writeable = False
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "margin", margin)
        for name in ("max_relative_target", "max_velocity", "max_acceleration"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _per_joint(name, value, n, allow_zero=False, allow_inf=True))
        if (self.workspace_min is None) != (self.workspace_max is None):
            raise VlatwinError("safety limits: give both workspace_min and workspace_max, or neither")
        if self.workspace_min is not None:
            wmin, wmax = (
                _box_vector("workspace_min", self.workspace_min),
                _box_vector("workspace_max", self.workspace_max),
            )
            if (wmin >= wmax).any():
                raise VlatwinError(
                    f"safety limits: workspace_min {wmin.tolist()} must be < workspace_max {wmax.tolist()} on every axis"
                )
            if self.ee_position is None:
                raise VlatwinError("safety limits: the workspace box needs ee_position (q -> end-effector position)")
            object.__setattr__(self, "workspace_min", wmin)
            object.__setattr__(self, "workspace_max", wmax)
        for name in ("ee_position", "collision"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise VlatwinError(f"safety limits: {name} must be callable, got {type(value).__name__}")
        names = (
            tuple(f"joint{i}" for i in range(n))
            if self.joint_names is None
            else tuple(str(s) for s in self.joint_names)
        )
        if len(names) != n:
            raise VlatwinError(f"safety limits: {len(names)} joint names for {n} joints")
        object.__setattr__(self, "joint_names", names)

    @property
    def num_joints(self) -> int:
        return self.lower.size

    @property
    def safe_lower(self) -> np.ndarray:
        """Lowest accepted target: lower + margin [rad | m]."""
        return self.lower + self.margin

    @property
    def safe_upper(self) -> np.ndarray:
        """Highest accepted target: upper - margin [rad | m]."""
        return self.upper - self.margin

    @property
    def has_workspace(self) -> bool:
        return self.workspace_min is not None

    @classmethod
    def from_joint_limits(
        cls,
        lower,
        upper,
        *,
        margin: float | np.ndarray = 0.05,
        gripper=(),
        gripper_margin: float = 0.0,
        **kwargs,
    ) -> SafetyLimits:
        """Limits from joint ranges, with ``gripper`` joint indices given ``gripper_margin`` instead of ``margin``.

        Other keyword arguments are :class:`SafetyLimits` fields (``max_relative_target``, ``workspace_min``, ...).
        """
        lower_arr = np.asarray(lower, dtype=np.float64).reshape(-1)
        margins = np.array(np.broadcast_to(np.asarray(margin, dtype=np.float64), lower_arr.shape))
        grip = np.asarray(gripper, dtype=np.int64).reshape(-1)
        if grip.size and (grip.min() < 0 or grip.max() >= lower_arr.size):
            raise VlatwinError(f"safety limits: gripper index out of range 0..{lower_arr.size - 1}: {grip.tolist()}")
        margins[grip] = gripper_margin
        return cls(lower_arr, upper, margin=margins, **kwargs)

    @classmethod
    def from_robot_joints(
        cls,
        joints: RobotJoints,
        *,
        chain: KinematicChain | None = None,
        margin: float = 0.05,
        gripper_margin: float = 0.0,
        **kwargs,
    ) -> SafetyLimits:
        """Limits over all J commanded joints of :class:`~vlatwin.control.base.RobotJoints`; gripper joints get
        ``gripper_margin``, and ``chain`` (over the arm joints) gives ``ee_position`` for a workspace box."""
        if chain is not None and "ee_position" not in kwargs:
            kwargs["ee_position"] = ee_position_from_chain(chain, joints.arm)
        names = tuple(n.rsplit("/", 1)[-1] for n in joints.joint_names)
        kwargs.setdefault("joint_names", names)
        return cls.from_joint_limits(
            joints.lower, joints.upper, margin=margin, gripper=joints.gripper, gripper_margin=gripper_margin, **kwargs
        )


def ee_position_from_chain(chain: KinematicChain, arm=None) -> Callable[[np.ndarray], np.ndarray]:
    """q (all joints) -> end-effector position [m] in the chain's base frame, taking ``q[arm]`` as the chain's joints."""
    idx = None if arm is None else np.asarray(arm, dtype=np.int64).reshape(-1)
    if idx is not None and idx.size != chain.num_joints:
        raise VlatwinError(f"safety limits: {idx.size} arm joints for a {chain.num_joints}-joint chain")

    def ee_position(q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        return chain.fk(q if idx is None else q[idx])[:3, 3]

    return ee_position


# ----------------------------------------------------------------------------- helpers


def _fmt(v: float) -> str:
    return f"{v:.4f}" if np.isfinite(v) else str(v)


def _joint_changes(names, idx: np.ndarray, before: np.ndarray, after: np.ndarray, note=None) -> str:
    """``joint3 2.9500 -> 2.8473 (note), ...`` for at most _MAX_LISTED joints."""
    parts = []
    for i in idx[:_MAX_LISTED]:
        text = f"{names[i]} {_fmt(before[i])} -> {_fmt(after[i])}"
        if note is not None:
            text += f" ({note(i)})"
        parts.append(text)
    if idx.size > _MAX_LISTED:
        parts.append(f"... {idx.size - _MAX_LISTED} more")
    return ", ".join(parts)


def _nonfinite_reason(names, q: np.ndarray, what: str) -> str | None:
    bad = np.flatnonzero(~np.isfinite(q))
    if not bad.size:
        return None
    listed = ", ".join(f"{names[i]}={q[i]}" for i in bad[:_MAX_LISTED])
    more = f", ... {bad.size - _MAX_LISTED} more" if bad.size > _MAX_LISTED else ""
    return f"{what} not finite: {listed}{more}"


def _ee_position(limits: SafetyLimits, q: np.ndarray) -> np.ndarray:
    p = np.asarray(limits.ee_position(q), dtype=np.float64)
    if p.shape == (4, 4):
        p = p[:3, 3]
    p = p.reshape(-1)
    if p.shape != (3,):
        raise VlatwinError(f"safety limits: ee_position must return 3 numbers [m] (or a 4x4 pose), got shape {p.shape}")
    return p


def _workspace_reason(limits: SafetyLimits, q: np.ndarray) -> str | None:
    """Why the end effector at q is outside the box (None when inside or without a box)."""
    if not limits.has_workspace:
        return None
    p = _ee_position(limits, q)
    pos = "(" + ", ".join(_fmt(v) for v in p) + ") m"
    if not np.isfinite(p).all():
        return f"end effector at {pos} is not finite"
    out = []
    for axis, v, lo, hi in zip("xyz", p, limits.workspace_min, limits.workspace_max, strict=True):
        if v < lo:
            out.append(f"{axis} {_fmt(v)} < {_fmt(lo)}")
        elif v > hi:
            out.append(f"{axis} {_fmt(v)} > {_fmt(hi)}")
    if not out:
        return None
    return f"end effector at {pos} outside the workspace box: {', '.join(out)}"


def _collision_reason(limits: SafetyLimits, q: np.ndarray) -> str | None:
    if limits.collision is None:
        return None
    reason = limits.collision(q)
    return str(reason) if reason else None


def _check_vector(limits: SafetyLimits, value, what: str) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise VlatwinError(
            f"safety check: {what} must be {limits.num_joints} numbers, got {type(value).__name__}"
        ) from None
    if arr.shape != (limits.num_joints,):
        raise VlatwinError(f"safety check: {what} must have shape ({limits.num_joints},), got {arr.shape}")
    return arr


# ----------------------------------------------------------------------------- the monitor


class SafetyMonitor:
    """Runs the safety chain on each joint target and keeps the state it needs (previous accepted target, e-stop).

    The velocity and acceleration limits act on the sequence of *accepted* targets, one per ``dt``. Before
    the first accepted target (and after :meth:`reset` without ``q``) the reference is the measured
    position at rest, so the first commands ramp up from zero velocity. A rejected target means the
    caller holds the previous one, so the reference velocity drops to zero.
    """

    def __init__(self, limits: SafetyLimits, dt: float) -> None:
        if not isinstance(limits, SafetyLimits):
            raise VlatwinError(f"safety monitor: limits must be SafetyLimits, got {type(limits).__name__}")
        try:
            dt = float(dt)
        except (TypeError, ValueError):
            raise VlatwinError(f"safety monitor: dt must be a number of seconds, got {dt!r}") from None
        if not np.isfinite(dt) or dt <= 0:
            raise VlatwinError(f"safety monitor: dt must be > 0 and finite [s], got {dt}")
        self.limits = limits
        self.dt = dt
        self._prev_target: np.ndarray | None = None
        self._prev_velocity = np.zeros(limits.num_joints)
        self._estop_reason: str | None = None

    """Properties."""

    @property
    def estopped(self) -> bool:
        """A latched e-stop is active (every check rejects until :meth:`reset_estop`)."""
        return self._estop_reason is not None

    @property
    def estop_reason(self) -> str | None:
        return self._estop_reason

    @property
    def last_target(self) -> np.ndarray | None:
        """The last accepted target [rad | m] (what a hold re-sends); None before the first."""
        return None if self._prev_target is None else self._prev_target.copy()

    """Operations."""

    def reset(self, q=None) -> None:
        """Start a new target sequence from rest at ``q`` (None: from the next measured position)."""
        self._prev_target = None if q is None else _check_vector(self.limits, q, "reset q").copy()
        if self._prev_target is not None and not np.isfinite(self._prev_target).all():
            raise VlatwinError("safety monitor: reset q must be finite")
        self._prev_velocity = np.zeros(self.limits.num_joints)

    def estop(self, reason: str, time: float | None = None) -> SafetyEvent:
        """Latch an e-stop: every later :meth:`check` rejects until :meth:`reset_estop`. Returns its event."""
        if self._estop_reason is None:
            self._estop_reason = str(reason)
        return SafetyEvent(kind="estop", reason=f"e-stop: {reason}", before=self.last_target, after=None, time=time)

    def reset_estop(self, q=None) -> None:
        """Clear the e-stop; the robot has stopped somewhere, so targets restart from rest (see :meth:`reset`)."""
        self._estop_reason = None
        self.reset(q)

    def check(self, target_q, measured_q, *, time: float | None = None) -> SafetyDecision:
        """Run the chain on one target (n,) against the measured (or estimated) position (n,) [rad | m]."""
        lim, names = self.limits, self.limits.joint_names
        target = _check_vector(lim, target_q, "target_q")
        measured = _check_vector(lim, measured_q, "measured_q")
        events: list[SafetyEvent] = []

        def reject(kind: str, reason: str, before: np.ndarray | None) -> SafetyDecision:
            events.append(SafetyEvent(kind=kind, reason=reason, before=before, after=None, time=time))
            self._prev_velocity = np.zeros(lim.num_joints)  # the caller holds
            return SafetyDecision(target_q=None, events=events, rejected=True)

        if self._estop_reason is not None:
            return reject("estop", f"e-stop latched ({self._estop_reason}); call reset_estop()", target)
        reason = _nonfinite_reason(names, target, "target")
        if reason is not None:
            return reject("nan", reason, target)
        reason = _nonfinite_reason(names, measured, "measured position")
        if reason is not None:
            return reject("nan", f"{reason} (no reference for the relative clamp)", target)

        def clip(kind: str, new: np.ndarray, note) -> None:
            nonlocal target
            changed = np.flatnonzero(new != target)
            if changed.size:
                text = _joint_changes(names, changed, target, new, note)
                events.append(SafetyEvent(kind=kind, reason=text, before=target, after=new, time=time))
                target = new

        lo, hi = lim.safe_lower, lim.safe_upper
        clip(
            "joint_limit",
            np.clip(target, lo, hi),
            lambda i: f"limits [{_fmt(lim.lower[i])}, {_fmt(lim.upper[i])}] with margin {_fmt(lim.margin[i])}",
        )
        if lim.max_relative_target is not None:
            step = lim.max_relative_target
            clip(
                "relative",
                np.clip(target, measured - step, measured + step),
                lambda i: f"measured {_fmt(measured[i])}, max_relative_target {_fmt(step[i])}",
            )
        prev = measured if self._prev_target is None else self._prev_target
        if lim.max_velocity is not None:
            vstep = lim.max_velocity * self.dt
            clip(
                "velocity",
                np.clip(target, prev - vstep, prev + vstep),
                lambda i: f"previous {_fmt(prev[i])}, max_velocity {_fmt(lim.max_velocity[i])} rad/s",
            )
        if lim.max_acceleration is not None:
            v_prev, dv = self._prev_velocity, lim.max_acceleration * self.dt
            v = (target - prev) / self.dt
            v_ok = np.clip(v, v_prev - dv, v_prev + dv)
            new = np.where(v_ok != v, prev + v_ok * self.dt, target)  # untouched joints keep their exact value
            clip(
                "acceleration",
                new,
                lambda i: (
                    f"previous velocity {_fmt(v_prev[i])}, max_acceleration {_fmt(lim.max_acceleration[i])} rad/s^2"
                ),
            )
        reason = _workspace_reason(lim, target)
        if reason is not None:
            return reject("workspace", reason, target)
        reason = _collision_reason(lim, target)
        if reason is not None:
            return reject("collision", f"collision at the target: {reason}", target)
        self._prev_velocity = (target - prev) / self.dt
        self._prev_target = target.copy()
        return SafetyDecision(target_q=target.copy(), events=events, rejected=False)


# ----------------------------------------------------------------------------- shadow mode


def shadow_veto(
    states_q,
    limits: SafetyLimits,
    *,
    max_joint_step: float | np.ndarray | None = None,
    start_q=None,
    limit_tolerance: float = 1e-3,
    time: float | None = None,
) -> SafetyEvent | None:
    """Check a twin roll-out of a chunk; the first problem as a ``shadow`` event, or None when it is safe.

    Args:
        states_q: Twin joint positions at each control step of the roll-out (H, n) [rad | m].
        limits: The limits the robot runs under; the roll-out is checked against the hard joint limits
            (not the target margin), the workspace box and ``limits.collision``.
        max_joint_step: Largest |change| between consecutive rows [rad | m], scalar or (n,); None: not checked.
        start_q: The state the roll-out started from (n,); with ``max_joint_step`` the first row is checked
            against it too.
        limit_tolerance: Slack on the hard joint limits [rad | m] (simulated limits are soft).
        time: Host time stamped on the event [s].

    Rows are checked in order; within a row: non-finite, joint limits, workspace, collision, jump.
    """
    try:
        states = np.array(states_q, dtype=np.float64)
    except (TypeError, ValueError):
        raise VlatwinError(f"shadow veto: states_q must be an (H, n) array, got {type(states_q).__name__}") from None
    n, names = limits.num_joints, limits.joint_names
    if states.ndim != 2 or states.shape[1] != n:
        raise VlatwinError(f"shadow veto: states_q must have shape (H, {n}), got {states.shape}")
    tol = float(limit_tolerance)
    if not np.isfinite(tol) or tol < 0:
        raise VlatwinError(f"shadow veto: limit_tolerance must be >= 0 and finite, got {limit_tolerance}")
    step = (
        None
        if max_joint_step is None
        else _per_joint("max_joint_step", max_joint_step, n, allow_zero=False, allow_inf=True)
    )
    prev = None if start_q is None else _check_vector(limits, start_q, "start_q")

    def veto(row: int, reason: str, q: np.ndarray) -> SafetyEvent:
        return SafetyEvent(
            kind="shadow", reason=f"shadow roll-out row {row}: {reason}", before=q, after=None, time=time
        )

    for row, q in enumerate(states):
        reason = _nonfinite_reason(names, q, "twin state")
        if reason is not None:
            return veto(row, reason, q)
        out = np.flatnonzero((q < limits.lower - tol) | (q > limits.upper + tol))
        if out.size:
            parts = [
                f"{names[i]} {_fmt(q[i])} outside [{_fmt(limits.lower[i])}, {_fmt(limits.upper[i])}]"
                for i in out[:_MAX_LISTED]
            ]
            more = f", ... {out.size - _MAX_LISTED} more" if out.size > _MAX_LISTED else ""
            return veto(row, f"joint limit: {', '.join(parts)}{more}", q)
        reason = _workspace_reason(limits, q)
        if reason is not None:
            return veto(row, f"workspace: {reason}", q)
        reason = _collision_reason(limits, q)
        if reason is not None:
            return veto(row, f"collision: {reason}", q)
        if step is not None and prev is not None:
            jump = np.flatnonzero(np.abs(q - prev) > step)
            if jump.size:
                text = _joint_changes(names, jump, prev, q, lambda i: f"max_joint_step {_fmt(step[i])}")
                return veto(row, f"jump: {text}", q)
        prev = q
    return None
