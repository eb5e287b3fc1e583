"""The emulated robot: a second Newton instance standing in for the physical robot, behind a realistic link.

:class:`EmulatedRobot` loads its own Newton backend from the twin's stage and hides from the twin:

- a parameter mismatch (passive joint damping and Coulomb friction, robot link masses and inertias, drive
  stiffness and damping, each scaled per joint/body by a factor drawn from ``[1 - mismatch, 1 + mismatch]``;
  explicit overrides in :class:`EmulationParams`),
- Gaussian sensor noise on the measured joint positions and velocities,
- a link in each direction (:class:`~vlatwin.hardware.link.LinkModel`: latency, jitter, loss, latency
  spikes, blackouts; packets may overtake, the newest sequence number wins),
- a robot clock ``robot_time = (host_time + clock_offset_s) * (1 + drift_ppm * 1e-6)``,
- the robot-side command expiry (:class:`vlatwin.twin.watchdog.CommandExpiry`: hold, decelerate, stop) and
  a latched e-stop,
- optionally an interpolating servo (:attr:`EmulationParams.ramp_s`, :class:`~vlatwin.hardware.servo.TargetRamp`):
  each new target is reached over a linear ramp instead of in one step, as real arm controllers do. Every
  state reports the servo's current event: ``status.target_time`` (robot time the ramp started),
  ``joint_q_goal`` (its goal), ``status.target_ramp_s`` (its duration; 0 for the expiry's hold and stop
  targets, which are steps) and ``status.servo_ramp_s`` (the servo's ramp for commands);
  ``joint_q_desired`` is the ramp's value the drive tracked in the step before the sample.

**Lazy catch-up.** The robot's physics runs on the host clock: physics step ``k`` starts at host time
``t0 + k * dt`` (``t0`` = :meth:`connect`). Nothing runs in the background (except in
:meth:`start_realtime`); every public call first advances the physics in whole steps until the next step
boundary at or after ``clock.now()``. At each boundary, in this order: a state is sampled if one is due
(samples are due on the grid ``t0 + i / state_rate_hz``, each taken at the first boundary at or after its
grid time, stamped with that boundary's robot-clock time, noised and sent up the uplink); commands whose
downlink delay has elapsed by that boundary are delivered (latest-value: a sequence number not above the
last applied one is ignored; a command that arrives already expired is dropped; a command with an
``apply_at`` still ahead on the robot clock waits for the first boundary at or after it, one whose
``apply_at`` has passed is applied at once and counted late; a scheduled command may repeat the one before
it, which the robot takes as if it had arrived with it when it has not seen that sequence number); the
servo computes the
drive target (:class:`CommandExpiry` with the newest command, its receive time and its TTL
``expires_at - send_time`` counted from the receive time, so host and robot clocks need not agree).
The physics state at the boundary at or after ``now`` depends only on commands delivered before it, so it
is final: a command sent later can only act from a later boundary. :meth:`get_observation` returns the
newest state (by sequence number) whose uplink delivery time is at or before ``now``, with ``host_time``
= that delivery time. With a :class:`~vlatwin.hardware.clock.VirtualClock` a run is a deterministic
function of the seed and of the calls' (host time, arguments).

**Clock-sync exchanges** (:meth:`sync_sample`) travel on their own link draws (same parameters, other
seeds), so adding or removing them does not change the state and command streams. The exchange resolves
at once: ``t1 = now``, ``t2 = robot_clock(t1 + d_down)``, ``t3 = t2`` plus a fixed 20 us turnaround on the
robot clock, ``t4 = t1 + d_down + 20 us + d_up`` on the host clock. With a virtual clock ``t4`` lies in the
future of ``clock.now()`` (nothing else depends on it: the exchange touches neither the physics nor the
other streams); with a wall clock the call sleeps until ``t4``, as a real exchange would block.

**E-stop** (:meth:`estop`) acts at the robot at once (a hard-wired stop, not a packet): the current command
is dropped, every command is rejected while it is latched, and the robot decelerates to rest
(:class:`CommandExpiry` without a target: no hold) and stays stopped. After :meth:`reset_estop` it stays
stopped until a new command (a sequence number above the last applied one) arrives.

:meth:`truth` exposes the hidden truth (noise-free state, the parameters actually simulated, the clock
offset and drift, every applied command). It exists for tests and benchmarks only: nothing on the twin
side may read it.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.hardware.base import Robot, RobotAction, RobotObservation
from vlatwin.hardware.clock import Clock
from vlatwin.hardware.link import LinkModel, _windows
from vlatwin.hardware.servo import TargetRamp
from vlatwin.sim.types import JointCommand, SimParams

logger = logging.getLogger(__name__)

__all__ = ["EmulatedRobot", "EmulatedTruth", "EmulationParams"]

SYNC_TURNAROUND_S = 20e-6
"""Time the robot takes to answer a clock-sync request [s, robot clock]."""
_EPS_STEPS = 1e-6
"""Tolerance [physics steps] when mapping a host time to a step boundary (float round-off)."""
_INBOX_SIZE = 20000
"""Delivered states kept for :meth:`EmulatedRobot.poll_observations` (the oldest are dropped beyond)."""


def _number(value, what: str, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise VlatwinError(f"EmulationParams.{what}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise VlatwinError(f"EmulationParams.{what}: must be finite, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise VlatwinError(f"EmulationParams.{what}: must be {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and v > hi:
        raise VlatwinError(f"EmulationParams.{what}: must be <= {hi}, got {v}")
    return v


@dataclass(frozen=True, kw_only=True)
class EmulationParams:
    """What the emulated robot hides from the twin, and how it behaves (all validated at construction)."""

    mismatch: float = 0.0
    """Relative parameter mismatch m in [0, 1): joint damping and friction, robot link masses (and their
    inertias) and drive stiffness/damping are each scaled by a factor drawn per joint/body from [1 - m, 1 + m]."""
    damping_scale: float | None = None
    """Override: scale of every joint's passive damping (instead of the drawn factors)."""
    damping_add: float = 0.0
    """Passive damping added to every joint [N*m*s/rad | N*s/m] (the stages author none: a scale alone does nothing)."""
    friction_add: float = 0.0
    """Coulomb friction added to every joint [N*m | N] (the stages author none: a scale alone does nothing)."""
    armature_add: float = 0.0
    """Armature (rotor inertia) added to every revolute joint [kg*m^2] (the stages author none; a gripper's
    prismatic fingers keep theirs)."""
    mass_scale: float | None = None
    """Override: scale of every robot link's mass and inertia."""
    gain_scale: float | None = None
    """Override: scale of every drive's stiffness and damping."""
    noise_q: float = 0.0
    """Standard deviation of the joint position sensor noise [rad | m]."""
    noise_qd: float = 0.0
    """Standard deviation of the joint velocity sensor noise [rad/s | m/s]."""
    noise_effort: float = 0.0
    """Standard deviation of the reported joint effort's noise [N*m | N] (a motor-current reading, added to what the
    drive applied: on ``newton`` the unclipped law, since XPBD does not enforce effort limits; under PhysX a
    saturated drive's limit)."""
    latency_s: float = 0.0
    """One-way delay, both directions [s] (the centre of a truncated normal, see :mod:`vlatwin.hardware.link`)."""
    jitter_s: float = 0.0
    """Standard deviation of the one-way delay [s]."""
    loss: float = 0.0
    """Packet loss probability, both directions."""
    down_latency_s: float | None = None
    """Command (host -> robot) delay [s]; None: :attr:`latency_s`."""
    down_jitter_s: float | None = None
    down_loss: float | None = None
    up_latency_s: float | None = None
    """State (robot -> host) delay [s]; None: :attr:`latency_s`."""
    up_jitter_s: float | None = None
    up_loss: float | None = None
    clock_offset_s: float = 0.0
    """Robot clock offset [s]: ``robot_time = (host_time + clock_offset_s) * (1 + drift_ppm * 1e-6)``."""
    drift_ppm: float = 0.0
    """Robot clock rate error [parts per million]."""
    state_rate_hz: float = 500.0
    """States the robot samples and sends per second [Hz] (at most one per physics step)."""
    spikes: tuple[tuple[float, float, float], ...] = ()
    """Latency spikes ``(t_start, t_end, extra_s)`` [s since connect], both directions."""
    blackouts: tuple[tuple[float, float], ...] = ()
    """Windows ``(t_start, t_end)`` [s since connect] in which every packet is lost, both directions."""
    hold_s: float = 0.1
    """How long the robot holds an expired command's target before decelerating [s]."""
    ramp_s: float = 0.0
    """Interpolating servo: each new command's target is reached over a linear ramp of this duration [s] from
    the desired position when it is applied (0: a step, the drive sees the target at once). A ramp of one
    control period keeps a 20 Hz command stream continuous (the Panda's stiff drives still saturate on large
    target changes)."""
    max_decel: float = 5.0
    """Deceleration limit of the expiry/e-stop stop [rad/s^2 | m/s^2]."""
    joint_limit_clip: bool = True
    """Clip targets to the robot's joint limits (and return the clipped action); False passes them on as sent
    (the engine still keeps the joints within their limits)."""
    seed: int | None = None
    """Seed of the mismatch draws, sensor noise and links; None: the robot's ``seed`` argument."""
    camera_hz: float = 0.0
    """Camera frames per second [Hz] rendered from the robot's own simulation and sent with the state sampled
    at that instant (``RobotObservation.images``; 0: none). The twin renders the same cameras at the same
    instant, and the fidelity report compares them."""
    cameras: tuple[str, ...] = ()
    """Which of the stage's cameras (empty: all of them)."""
    lidar_hz: float = 0.0
    """LIDAR clouds per second [Hz] (ideal scans with time frozen at the state's instant, sensor frame) sent with
    the state sampled then (``RobotObservation.point_clouds``; 0: none)."""
    lidars: tuple[str, ...] = ()
    """Which of the stage's LIDARs (empty: all of them)."""

    def __post_init__(self) -> None:
        def put(name, value):
            object.__setattr__(self, name, value)

        put("mismatch", _number(self.mismatch, "mismatch", lo=0.0))
        if self.mismatch >= 1.0:
            raise VlatwinError(
                f"EmulationParams.mismatch: must be < 1 (a factor of 1 - m must stay positive), got {self.mismatch}"
            )
        for name in ("damping_scale", "mass_scale", "gain_scale"):
            if getattr(self, name) is not None:
                put(name, _number(getattr(self, name), name, lo=0.0, lo_open=name != "damping_scale"))
        for name in ("damping_add", "friction_add", "armature_add", "noise_q", "noise_qd", "noise_effort", "latency_s", "jitter_s",
                     "hold_s", "ramp_s"):
            put(name, _number(getattr(self, name), name, lo=0.0))
        put("loss", _number(self.loss, "loss", lo=0.0, hi=1.0))
        for direction in ("down", "up"):
            for kind in ("latency_s", "jitter_s", "loss"):
                name = f"{direction}_{kind}"
                if getattr(self, name) is not None:
                    put(name, _number(getattr(self, name), name, lo=0.0, hi=1.0 if kind == "loss" else None))
        put("clock_offset_s", _number(self.clock_offset_s, "clock_offset_s"))
        put("drift_ppm", _number(self.drift_ppm, "drift_ppm", lo=-1e5, hi=1e5))
        put("state_rate_hz", _number(self.state_rate_hz, "state_rate_hz", lo=0.0, lo_open=True))
        put("camera_hz", _number(self.camera_hz, "camera_hz", lo=0.0))
        put("cameras", tuple(str(c) for c in self.cameras))
        put("lidar_hz", _number(self.lidar_hz, "lidar_hz", lo=0.0))
        put("lidars", tuple(str(c) for c in self.lidars))
        put("max_decel", _number(self.max_decel, "max_decel", lo=0.0, lo_open=True))
        put("spikes", _windows(self.spikes, 3, "EmulationParams.spikes"))
        put("blackouts", _windows(self.blackouts, 2, "EmulationParams.blackouts"))
        if not isinstance(self.joint_limit_clip, bool):
            raise VlatwinError(
                f"EmulationParams.joint_limit_clip: expected true or false, got {self.joint_limit_clip!r}"
            )
        if self.seed is not None:
            if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
                raise VlatwinError(f"EmulationParams.seed: expected a whole number >= 0, got {self.seed!r}")
            put("seed", int(self.seed))

    def link(self, direction: str) -> tuple[float, float, float]:
        """(latency_s, jitter_s, loss) of the ``down`` (commands) or ``up`` (states) direction."""
        picked = [getattr(self, f"{direction}_{kind}") for kind in ("latency_s", "jitter_s", "loss")]
        shared = (self.latency_s, self.jitter_s, self.loss)
        return tuple(s if p is None else p for p, s in zip(picked, shared))

    @classmethod
    def from_options(cls, options: dict[str, str]) -> EmulationParams:
        """Parse URL query options (``emulated?latency_ms=50&jitter_ms=10&loss=0.05&...``).

        Keys: ``latency_ms``, ``jitter_ms``, ``loss`` and their ``down_``/``up_`` forms, ``offset_s``
        (or ``offset_ms``), ``drift_ppm``, ``mismatch``, ``damping_scale``, ``damping_add``, ``friction_add``, ``armature_add``,
        ``mass_scale``, ``gain_scale``, ``noise_q``, ``noise_qd``, ``noise_effort``, ``seed``, ``rate_hz``, ``hold_ms`` (or
        ``hold_s``), ``ramp_ms`` (or ``ramp_s``: the interpolating servo's ramp), ``max_decel``, ``clip`` (true/false), ``spikes`` (``start:end:extra,...`` [s since
        connect]), ``blackouts`` (``start:end,...`` [s]), ``camera_hz`` and ``cameras`` (``front,top``), ``lidar_hz``
        and ``lidars``.
        """
        kwargs: dict[str, Any] = {}
        for key, raw in dict(options).items():
            text = str(raw).strip()
            if key not in _OPTIONS:
                raise VlatwinError(f"emulated robot: unknown option {key!r}; known: {', '.join(sorted(_OPTIONS))}")
            name, parse = _OPTIONS[key]
            try:
                kwargs[name] = parse(text)
            except (TypeError, ValueError):
                raise VlatwinError(
                    f"emulated robot: option {key}={text!r} is not valid ({_HINTS.get(key, 'a number')})"
                ) from None
        return cls(**kwargs)


def _scaled(factor: float):
    return lambda text: float(text) * factor


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _int(text: str) -> int:
    return int(text)


def _window_list(width: int):
    def parse(text: str):
        if not text:
            return ()
        items = [tuple(float(v) for v in part.split(":")) for part in text.split(",")]
        if any(len(item) != width for item in items):
            raise ValueError(text)
        return tuple(items)

    return parse


_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "latency_ms": ("latency_s", _scaled(1e-3)),
    "jitter_ms": ("jitter_s", _scaled(1e-3)),
    "loss": ("loss", float),
    "down_latency_ms": ("down_latency_s", _scaled(1e-3)),
    "down_jitter_ms": ("down_jitter_s", _scaled(1e-3)),
    "down_loss": ("down_loss", float),
    "up_latency_ms": ("up_latency_s", _scaled(1e-3)),
    "up_jitter_ms": ("up_jitter_s", _scaled(1e-3)),
    "up_loss": ("up_loss", float),
    "offset_s": ("clock_offset_s", float),
    "offset_ms": ("clock_offset_s", _scaled(1e-3)),
    "drift_ppm": ("drift_ppm", float),
    "mismatch": ("mismatch", float),
    "damping_scale": ("damping_scale", float),
    "damping_add": ("damping_add", float),
    "friction_add": ("friction_add", float),
    "armature_add": ("armature_add", float),
    "mass_scale": ("mass_scale", float),
    "gain_scale": ("gain_scale", float),
    "noise_q": ("noise_q", float),
    "noise_qd": ("noise_qd", float),
    "noise_effort": ("noise_effort", float),
    "seed": ("seed", _int),
    "rate_hz": ("state_rate_hz", float),
    "hold_ms": ("hold_s", _scaled(1e-3)),
    "hold_s": ("hold_s", float),
    "ramp_ms": ("ramp_s", _scaled(1e-3)),
    "ramp_s": ("ramp_s", float),
    "max_decel": ("max_decel", float),
    "clip": ("joint_limit_clip", _bool),
    "spikes": ("spikes", _window_list(3)),
    "blackouts": ("blackouts", _window_list(2)),
    "camera_hz": ("camera_hz", float),
    "cameras": ("cameras", lambda text: tuple(c.strip() for c in text.split(",") if c.strip())),
    "lidar_hz": ("lidar_hz", float),
    "lidars": ("lidars", lambda text: tuple(c.strip() for c in text.split(",") if c.strip())),
}
_HINTS = {
    "seed": "a whole number",
    "clip": "true or false",
    "spikes": "start_s:end_s:extra_s[,...]",
    "blackouts": "start_s:end_s[,...]",
    "cameras": "camera names, comma separated",
    "lidars": "lidar names, comma separated",
}


@dataclass(frozen=True)
class EmulatedTruth:
    """The emulated robot's hidden truth, for tests and benchmarks only (the twin must never read it)."""

    time: float
    """Host time [s] of the physics state: the first step boundary at or after ``clock.now()``."""
    q: np.ndarray
    """Noise-free joint positions [rad | m]."""
    qd: np.ndarray
    """Noise-free joint velocities [rad/s | m/s]."""
    params: Any
    """The :class:`~vlatwin.sim.types.SimParams` actually simulated (nominal plus the hidden mismatch)."""
    clock_offset_s: float
    drift_ppm: float
    mode: str = "stopped"
    """Servo mode at that boundary (``running`` | ``holding`` | ``decelerating`` | ``stopped``)."""
    step: int = 0
    """Physics steps since connect."""
    commands: tuple = field(default=(), repr=False)
    """Every command the robot applied: ``(host time [s], seq, target_q)`` in that order; the time is the
    arrival, or for a scheduled command the step boundary at or after its ``apply_at``."""


class EmulatedRobot(Robot):
    """A second Newton instance behind an emulated link (see the module docstring for the semantics).

    Args:
        stage_path: the twin's stage (this robot loads its own copy of it).
        physics: the task's physics settings (``dt``, ``iterations``, ``solver``), as for
            :func:`vlatwin.record.recorder.load_sim`.
        clock: the host clock (:class:`~vlatwin.hardware.clock.VirtualClock` for deterministic runs).
        params: what the robot hides and how it behaves.
        seed: seed of the mismatch, noise and link draws (``params.seed`` wins when set, so a ``seed=``
            URL option overrides the run's seed).
        initial_state: an :class:`~vlatwin.tasks.base.InitialState` applied at :meth:`connect` (the twin's start).

    The backend is loaded at construction (so :attr:`joint_names` and the features are known before
    connecting; joint order = the backend's ``info.joint_names``); :meth:`disconnect` releases it and a
    later :meth:`connect` loads it again.
    """

    name = "emulated"

    def __init__(
        self,
        stage_path: str | Path,
        physics: dict,
        *,
        clock: Clock,
        params: EmulationParams | None = None,
        seed: int = 0,
        initial_state=None,
    ) -> None:
        if not isinstance(clock, Clock):
            raise VlatwinError(
                f"EmulatedRobot: clock must be a vlatwin.hardware.clock.Clock, got {type(clock).__name__}"
            )
        self.stage_path = Path(stage_path)
        self.physics = dict(physics)
        self.clock = clock
        self.params = params if params is not None else EmulationParams()
        if not isinstance(self.params, EmulationParams):
            raise VlatwinError(f"EmulatedRobot: params must be EmulationParams, got {type(self.params).__name__}")
        self.seed = int(self.params.seed if self.params.seed is not None else seed)
        self.initial_state = initial_state
        self._lock = threading.RLock()
        self._connected = False
        self._thread: threading.Thread | None = None
        self._stop_thread = threading.Event()
        self._sim = None
        self._load()

    # ------------------------------------------------------------ lifecycle
    def _load(self) -> None:
        from vlatwin.record.recorder import load_sim

        self._sim = load_sim(self.stage_path, self.physics)
        info = self._sim.info
        self.joint_names = tuple(info.joint_names)
        self._lower = np.asarray(info.joint_lower, dtype=np.float64)
        self._upper = np.asarray(info.joint_upper, dtype=np.float64)
        self._dt = float(self._sim.physics_dt)
        self._nominal = self._sim.get_params()
        root = info.articulation_root.rstrip("/")
        self._robot_bodies = np.array([bool(root) and p.startswith(root + "/") for p in info.body_paths], dtype=bool)
        from pxr import Usd, UsdPhysics

        stage = Usd.Stage.Open(str(self.stage_path))
        self._revolute = np.array([bool(stage.GetPrimAtPath(j).IsA(UsdPhysics.RevoluteJoint)) for j in self.joint_names], dtype=float)

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        """Power on: apply the hidden parameters and the initial state, start the robot's clock at ``clock.now()``."""
        from vlatwin.twin.watchdog import CommandExpiry

        with self._lock:
            if self._connected:
                return
            if self._sim is None:
                self._load()
            seeds = np.random.SeedSequence(self.seed).generate_state(6)
            p = self.params
            self._hidden = self._hidden_params(np.random.default_rng(seeds[0]))
            if self._hidden is not None:
                self._sim.set_params(self._hidden)
            self._noise_rng = np.random.default_rng(seeds[1])
            # Its own stream: adding effort noise leaves the position noise of a recording as it was.
            self._effort_rng = np.random.default_rng([int(seeds[1]), 1])
            windows = {"spikes": p.spikes, "blackouts": p.blackouts}
            self._down = LinkModel(*p.link("down"), seed=int(seeds[2]), **windows)
            self._up = LinkModel(*p.link("up"), seed=int(seeds[3]), **windows)
            self._sync_down = LinkModel(*p.link("down"), seed=int(seeds[4]), **windows)
            self._sync_up = LinkModel(*p.link("up"), seed=int(seeds[5]), **windows)
            if self.initial_state is not None:
                from vlatwin.tasks.initial_states import apply_initial_state

                apply_initial_state(self._sim, self.initial_state)
            else:
                self._sim.reset()
            self._expiry = CommandExpiry(p.hold_s, p.max_decel)
            self._t0 = float(self.clock.now())
            self._k = 0
            self._period = 1.0 / p.state_rate_hz
            self._next_sample = self._t0
            self._state_seq = 0
            self._counter = itertools.count()
            self._down_q: list = []  # (deliver time, order, seq, send time, target_q, ttl, apply_at, previous)
            self._scheduled: list = []  # (due host time, order, seq, send time, target_q, receive time, ttl)
            self._up_q: list = []  # (deliver time, seq, fields)
            self._inbox: collections.deque[RobotObservation] = collections.deque(maxlen=_INBOX_SIZE)
            self._newest: RobotObservation | None = None
            self._cmd: tuple[np.ndarray, float, float | None, int] | None = None  # target, receive time, ttl, seq
            self._cmd_new = False
            self._last_seq: int | None = None
            self._last_send = -math.inf
            self._seq_lo: int | None = None
            self._seq_hi: int | None = None
            self._received = self._received_session = self._rejected = self._stale = self._expired = 0
            self._late = self._recovered = self._duplicates = 0
            self._seen: set[int] = set()
            self._estop = False
            self._mode = "stopped"
            self._target_qd = np.zeros(len(self.joint_names))
            self._q_desired = np.asarray(self._sim.get_state().joint_q, dtype=np.float64)
            self._ramp = TargetRamp(self._q_desired, p.ramp_s)
            self._target_time = self.robot_clock(self._t0)
            self._applied: list[tuple[float, int, np.ndarray]] = []
            self._next_frame = self._t0 if p.camera_hz > 0 else math.inf
            self._next_cloud = self._t0 if p.lidar_hz > 0 else math.inf
            if p.camera_hz > 0 and getattr(self, "_cameras", None) is None:
                from vlatwin.twin.cameras import StageCameras

                self._cameras = StageCameras(self._sim, self.stage_path, names=p.cameras or None)
            if p.lidar_hz > 0 and getattr(self, "_lidars", None) is None:
                from vlatwin.twin.lidars import StageLidars

                self._lidars = StageLidars(self._sim, self.stage_path, names=p.lidars or None)
                if not self._lidars.names:
                    raise VlatwinError(f"emulated robot: lidar_hz={p.lidar_hz:g} but the stage {self.stage_path} has no LIDAR")
            self._connected = True

    def disconnect(self) -> None:
        """Stop streaming and release the backend."""
        self.stop_realtime()
        with self._lock:
            self._connected = False
            self._cameras = self._lidars = None
            if self._sim is not None:
                self._sim.close()
                self._sim = None

    def _require_connected(self) -> None:
        if not self._connected:
            raise VlatwinError("emulated robot is not connected: call connect() first")

    def _hidden_params(self, rng: np.random.Generator):
        """The mismatched SimParams (only the fields that differ from the stage's), or None."""
        p, nom = self.params, self._nominal
        n, b = len(self.joint_names), len(nom.body_mass)

        def factors(size, override):
            drawn = rng.uniform(1.0 - p.mismatch, 1.0 + p.mismatch, size)  # always drawn: overrides keep the stream
            return np.full(size, float(override)) if override is not None else drawn

        f_damp, f_fric = factors(n, p.damping_scale), factors(n, None)
        f_ke, f_kd = factors(n, p.gain_scale), factors(n, p.gain_scale)
        f_mass = np.where(self._robot_bodies, factors(b, p.mass_scale), 1.0)
        hidden = SimParams(
            joint_damping=nom.joint_damping * f_damp + p.damping_add,
            joint_friction=nom.joint_friction * f_fric + p.friction_add,
            joint_armature=nom.joint_armature + p.armature_add * self._revolute,
            drive_stiffness=nom.drive_stiffness * f_ke,
            drive_damping=nom.drive_damping * f_kd,
            body_mass=nom.body_mass * f_mass,
            body_inertia=nom.body_inertia * f_mass[:, None, None],
        )
        changed = False
        for name in SimParams.FIELDS:
            value = getattr(hidden, name)
            if value is None or np.array_equal(value, getattr(nom, name)):
                setattr(hidden, name, None)  # untouched fields stay bit-identical to the twin's
            else:
                changed = True
        return hidden if changed else None

    # ------------------------------------------------------------- clocks
    def robot_clock(self, host_time: float) -> float:
        """The robot clock's reading [s] at ``host_time`` [s]."""
        return (float(host_time) + self.params.clock_offset_s) * (1.0 + self.params.drift_ppm * 1e-6)

    def host_of_robot(self, robot_time: float) -> float:
        """The host time [s] at which the robot clock reads ``robot_time`` [s] (inverse of :meth:`robot_clock`)."""
        return float(robot_time) / (1.0 + self.params.drift_ppm * 1e-6) - self.params.clock_offset_s

    def _time_of(self, k: int) -> float:
        return self._t0 + k * self._dt

    def _boundary(self, t: float) -> int:
        """Index of the first step boundary at or after host time ``t``."""
        return max(0, math.ceil((t - self._t0) / self._dt - _EPS_STEPS))

    # ----------------------------------------------------------- catch-up
    def _catch_up(self, now: float) -> None:
        target = self._boundary(now)
        sim = self._sim
        while True:
            t = self._time_of(self._k)
            state = None
            if self._next_sample <= t + _EPS_STEPS * self._dt:
                state = sim.get_state()
                self._sample(t, state)
            if self._k >= target:
                break
            self._deliver_commands(t)
            servo_every_step = self._servo(t, state)
            nxt = target
            if servo_every_step:
                nxt = self._k + 1
            else:
                nxt = min(nxt, self._boundary(self._next_sample))
                if self._down_q:
                    nxt = min(nxt, self._boundary(self._down_q[0][0]))
                if self._scheduled:
                    nxt = min(nxt, self._boundary(self._scheduled[0][0]))
                if self._cmd is not None and self._mode == "running":
                    deadline = self._expiry.deadline(self._cmd[1], self._cmd[2])
                    if math.isfinite(deadline):
                        # The first boundary strictly after the deadline is where the command goes stale.
                        nxt = min(nxt, max(self._k + 1, math.floor((deadline - self._t0) / self._dt + _EPS_STEPS) + 1))
            steps = max(1, nxt - self._k)
            sim.advance(steps)
            self._k += steps

    def _sample(self, t: float, state) -> None:
        p = self.params
        q = np.asarray(state.joint_q, dtype=np.float64)
        qd = np.asarray(state.joint_qd, dtype=np.float64)
        if p.noise_q > 0:
            q = q + self._noise_rng.normal(0.0, p.noise_q, q.shape)
        if p.noise_qd > 0:
            qd = qd + self._noise_rng.normal(0.0, p.noise_qd, qd.shape)
        effort = np.asarray(state.joint_effort, dtype=np.float64).copy()
        if p.noise_effort > 0:
            effort = effort + self._effort_rng.normal(0.0, p.noise_effort, effort.shape)
        seq = self._state_seq
        self._state_seq += 1
        fields_ = {
            "seq": seq,
            "robot_time": self.robot_clock(t),
            "joint_q": q,
            "joint_qd": qd,
            "joint_effort": effort,
            "joint_q_desired": None if self._q_desired is None else self._q_desired.copy(),
            "joint_q_goal": self._ramp.goal.copy() if p.ramp_s > 0 else None,
            "status": self._status(),
        }
        if t >= self._next_frame - _EPS_STEPS * self._dt:
            # The cameras see the simulation at this state's instant (rendering needs the current state: the
            # catch-up samples before it steps).
            fields_["images"] = self._cameras.render()
            period = 1.0 / p.camera_hz
            self._next_frame = self._t0 + (math.floor((t - self._t0) / period + 1e-9) + 1) * period
        if t >= self._next_cloud - _EPS_STEPS * self._dt:
            fields_["point_clouds"] = self._lidars.scan()
            period = 1.0 / p.lidar_hz
            self._next_cloud = self._t0 + (math.floor((t - self._t0) / period + 1e-9) + 1) * period
        delay = self._up.delay(t - self._t0)
        if delay is not None:
            heapq.heappush(self._up_q, (t + delay, seq, fields_))
        # Next grid time strictly after this boundary (grid points inside one step give one sample).
        self._next_sample = self._t0 + (math.floor((t - self._t0) / self._period + 1e-9) + 1) * self._period

    def _newer(self, seq: int, send_time: float) -> bool:
        """Sent later than the last applied command, or at the same time with a higher seq: an overtaken packet
        is older, while a restarted host (seq from 0 again, later send times) is accepted as a new session."""
        return (
            self._last_seq is None
            or send_time > self._last_send
            or (send_time == self._last_send and seq > self._last_seq)
        )

    def _deliver_commands(self, t: float) -> None:
        limit = t + _EPS_STEPS * self._dt
        while self._down_q and self._down_q[0][0] <= limit:
            arrive, order, seq, send_time, target_q, ttl, apply_at, previous = heapq.heappop(self._down_q)
            self._received += 1
            newer = self._newer(seq, send_time)
            if newer and self._last_seq is not None and seq <= self._last_seq:
                self._seq_lo = self._seq_hi = None  # new session: the loss estimate starts over
                self._received_session = 0
                self._seen.clear()
            self._received_session += 1
            self._seq_lo = seq if self._seq_lo is None else min(self._seq_lo, seq)
            self._seq_hi = seq if self._seq_hi is None else max(self._seq_hi, seq)
            if previous is not None and previous[0] not in self._seen and self._newer(previous[0], previous[1]):
                # The command before this one, repeated: the robot lost it (or it is still on the way).
                self._recovered += 1
                self._accept(t, limit, arrive, order, *previous)
            if seq in self._seen:
                self._duplicates += 1  # an overtaken packet whose repeat came first
                continue
            self._accept(t, limit, arrive, order, seq, send_time, target_q, ttl, apply_at)
        while self._scheduled and self._scheduled[0][0] <= limit:
            _, _, seq, send_time, target_q, arrive, ttl = heapq.heappop(self._scheduled)
            if self._estop:
                self._rejected += 1
            elif not self._newer(seq, send_time):
                self._stale += 1  # a newer command that arrived late has already been applied
            else:
                self._apply(t, target_q, arrive, ttl, seq, send_time)

    def _accept(self, t, limit, arrive, order, seq, send_time, target_q, ttl, apply_at) -> None:
        """A delivered command: refused, stale, expired, held for its ``apply_at``, or applied now."""
        self._seen.add(seq)
        if len(self._seen) > 256:
            self._seen = set(sorted(self._seen)[-128:])
        if self._estop:
            self._rejected += 1
        elif not self._newer(seq, send_time):
            self._stale += 1
        elif ttl is not None and not ttl >= 0:
            self._expired += 1  # already stale when it arrives: never applied
        else:
            due = None if apply_at is None else self.host_of_robot(apply_at)
            if due is not None and due > limit:
                heapq.heappush(self._scheduled, (due, order, seq, send_time, target_q, arrive, ttl))
                return
            if due is not None and due < t - self._dt:
                self._late += 1
            self._apply(arrive, target_q, arrive, ttl, seq, send_time)

    def _apply(self, t_applied: float, target_q: np.ndarray, arrive: float, ttl: float | None, seq: int, send_time: float) -> None:
        # The expiry runs from the receive time with the TTL counted from the send (as without a schedule), so a
        # scheduled command's TTL must cover its lead.
        self._cmd = (target_q, arrive, ttl, seq)
        self._cmd_new = True
        self._last_seq, self._last_send = seq, send_time
        self._applied.append((t_applied, seq, target_q.copy()))

    def _servo(self, t: float, state) -> bool:
        """Drive target at boundary ``t``; True while the robot must be servoed on every step."""
        cmd = self._cmd
        if self._estop or cmd is None:
            # E-stop, or no command (idle before the first one, or after an e-stop reset): finish any stop, then rest.
            if self._mode == "stopped" and not self._cmd_new:
                return False
            last_target = last_receive = ttl = None
        else:
            last_target, last_receive, ttl, _ = cmd
            fresh = t <= self._expiry.deadline(last_receive, ttl)
            ramping = self._ramp.moving(t)
            if fresh and self._mode == "running" and not self._cmd_new and not ramping:
                return False
            if self._mode == "stopped" and not fresh and not self._cmd_new:
                return False
        new = self._cmd_new
        self._cmd_new = False
        if state is None:
            state = self._sim.get_state()
        # CommandExpiry's target is q + v * dt from the q it is given: with the desired position (libfranka's
        # q_d) the stop keeps the drive's stiffness; with the measured q the target would chase the arm and
        # nothing would hold it up against gravity.
        target, mode = self._expiry.target(
            t, last_target, last_receive, ttl, self._q_desired, state.joint_qd, dt=self._dt
        )
        target = np.clip(np.asarray(target, dtype=np.float64), self._lower, self._upper)
        if mode in ("running", "holding"):
            # A command's target: the servo ramps to it (one step with ramp_s = 0). Its event starts when the ramp
            # does; a target equal to the goal starts nothing (target_time stays). A new command already past its
            # TTL at this boundary (a TTL under one step) is held, so it is still this command's target.
            if new and self._ramp.set(t, target):
                self._target_time = self.robot_clock(t)
            desired = np.clip(self._ramp.step_target(t, self._dt), self._lower, self._upper)
        else:
            # The expiry's stop targets are steps (the deceleration profile is already smooth).
            if not np.array_equal(target, self._ramp.goal) or self._ramp.moving(t):
                self._target_time = self.robot_clock(t)
            self._ramp.jump(target)
            desired = target
        self._q_desired = desired
        velocity = self._expiry.velocity if mode == "decelerating" and self._expiry.velocity is not None else None
        target_qd = np.zeros_like(self._target_qd) if velocity is None else np.asarray(velocity, dtype=np.float64)
        command = JointCommand(target_q=desired)
        if not np.array_equal(target_qd, self._target_qd):
            command.target_qd = target_qd
            self._target_qd = target_qd
        self._sim.set_command(command)
        self._mode = mode
        return mode in ("holding", "decelerating") or self._ramp.moving(t + self._dt)

    def _status(self) -> dict[str, Any]:
        span = 0 if self._seq_hi is None else self._seq_hi - self._seq_lo + 1
        lost = max(0, span - self._received_session)
        return {
            "mode": self._mode,
            "estop": self._estop,
            "target_time": self._target_time,
            # The servo's current event (see the module docstring): what the twin and system identification replay.
            "target_ramp_s": self._ramp.duration_s,
            "servo_ramp_s": self.params.ramp_s,
            # joint_effort is what the drive law commands (a motor-current reading), not a link-side torque.
            "effort": "drive",
            "last_command_seq": self._last_seq,
            "commands_received": self._received,
            "commands_lost": lost,
            "commands_rejected": self._rejected,
            "commands_stale": self._stale,
            "commands_expired": self._expired,
            "commands_late": self._late,
            "commands_recovered": self._recovered,
            "commands_scheduled": len(self._scheduled),
            "command_success_rate": 1.0 if span == 0 else self._received_session / (self._received_session + lost),
        }

    def _deliver_states(self, now: float) -> list[RobotObservation]:
        out = []
        while self._up_q and self._up_q[0][0] <= now:
            arrive, _, fields_ = heapq.heappop(self._up_q)
            obs = RobotObservation(host_time=arrive, **fields_)
            out.append(obs)
            self._inbox.append(obs)
            if self._newest is None or obs.seq > self._newest.seq:
                self._newest = obs
        return out

    def _update(self) -> float:
        self._require_connected()
        now = float(self.clock.now())
        self._catch_up(now)
        self._deliver_states(now)
        return now

    # --------------------------------------------------------- robot seam
    def get_observation(self) -> RobotObservation | None:
        """The newest state (highest seq) delivered by ``clock.now()``; None before the first."""
        with self._lock:
            self._update()
            return self._newest

    def poll_observations(self) -> list[RobotObservation]:
        """Every state delivered since the previous poll, in arrival order (a stream, for the network agent)."""
        with self._lock:
            self._update()
            out = list(self._inbox)
            self._inbox.clear()
            return out

    def send_action(self, action: RobotAction) -> RobotAction:
        """Send ``action`` down the link (it may be delayed, overtaken or lost); return what the robot applies.

        The target is clipped to the robot's joint limits (:attr:`EmulationParams.joint_limit_clip`). A
        wrong length or a non-finite target is refused here with a one-line error (libfranka refuses
        non-finite commands too).
        """
        with self._lock:
            now = self._update()
            n = len(self.joint_names)
            target = np.asarray(action.target_q, dtype=np.float64).reshape(-1)
            if target.shape != (n,):
                raise VlatwinError(
                    f"emulated robot: action seq {action.seq} has {target.size} targets, the robot has {n} joints"
                )
            if not np.all(np.isfinite(target)):
                raise VlatwinError(
                    f"emulated robot: action seq {action.seq} refused: non-finite target {target.tolist()}"
                )
            if self.params.joint_limit_clip:
                target = np.clip(target, self._lower, self._upper)
            apply_at = action.apply_at
            if apply_at is not None and not math.isfinite(float(apply_at)):
                raise VlatwinError(f"emulated robot: action seq {action.seq} refused: apply_at {apply_at} is not finite")
            apply_at = None if apply_at is None else float(apply_at)
            ttl = None if action.expires_at is None else float(action.expires_at) - float(action.send_time)
            previous = None
            if action.previous is not None:
                prev = action.previous
                prev_target = np.asarray(prev.target_q, dtype=np.float64).reshape(-1)
                ok = prev_target.shape == (n,) and np.all(np.isfinite(prev_target)) and prev.apply_at is not None \
                    and math.isfinite(float(prev.apply_at))
                if not ok:
                    raise VlatwinError(
                        f"emulated robot: action seq {action.seq} refused: its repeated previous command needs {n} finite "
                        "targets and a finite apply_at"
                    )
                if self.params.joint_limit_clip:
                    prev_target = np.clip(prev_target, self._lower, self._upper)
                prev_ttl = None if prev.expires_at is None else float(prev.expires_at) - float(prev.send_time)
                previous = (int(prev.seq), float(prev.send_time), prev_target, prev_ttl, float(prev.apply_at))
            delay = self._down.delay(now - self._t0)
            if delay is not None:
                heapq.heappush(
                    self._down_q,
                    (now + delay, next(self._counter), int(action.seq), float(action.send_time), target, ttl, apply_at, previous),
                )
            return RobotAction(
                target_q=target.copy(), seq=action.seq, send_time=action.send_time, expires_at=action.expires_at,
                apply_at=apply_at,
            )

    def sync_sample(self) -> tuple[float, float, float, float] | None:
        """One four-timestamp exchange (see the module docstring); None when either packet is lost."""
        with self._lock:
            t1 = self._update()
            d_down = self._sync_down.delay(t1 - self._t0)
            if d_down is None:
                return None
            t_robot = t1 + d_down
            d_up = self._sync_up.delay(t_robot + SYNC_TURNAROUND_S - self._t0)
            if d_up is None:
                return None
            t2 = self.robot_clock(t_robot)
            t3 = t2 + SYNC_TURNAROUND_S
            t4 = t_robot + SYNC_TURNAROUND_S / (1.0 + self.params.drift_ppm * 1e-6) + d_up
        self.clock.sleep_until(t4)
        return t1, t2, t3, t4

    def estop(self) -> None:
        """Latch a stop at the robot now: drop the command, decelerate to rest, reject commands until reset."""
        with self._lock:
            self._update()
            if not self._estop:
                logger.info("emulated robot: e-stop latched")
            self._estop = True
            self._cmd = None
            self._rejected += len(self._scheduled)
            self._scheduled.clear()
            self._cmd_new = True  # servo at the next boundary even if stopped

    def reset_estop(self) -> None:
        """Clear the latch; the robot stays stopped until a new command arrives."""
        with self._lock:
            self._update()
            self._estop = False

    def truth(self) -> EmulatedTruth:
        """The hidden truth now (tests and benchmarks only)."""
        with self._lock:
            self._update()
            state = self._sim.get_state()
            return EmulatedTruth(
                time=self._time_of(self._k),
                q=np.asarray(state.joint_q, dtype=np.float64),
                qd=np.asarray(state.joint_qd, dtype=np.float64),
                params=self._sim.get_params(),
                clock_offset_s=self.params.clock_offset_s,
                drift_ppm=self.params.drift_ppm,
                mode=self._mode,
                step=self._k,
                commands=tuple(self._applied),
            )

    # ----------------------------------------------------------- realtime
    def start_realtime(self, callback: Callable[[RobotObservation], None] | None = None) -> None:
        """Catch up in a background thread at the state rate, so states stream without being polled.

        ``callback`` (optional) gets every delivered state, in arrival order, outside the robot's lock; the
        states also stay available to :meth:`poll_observations` (the newest 20000). Needs a wall clock.
        """
        with self._lock:
            self._require_connected()
            if self.clock.is_virtual:
                raise VlatwinError(
                    "emulated robot: realtime mode needs a wall clock (a virtual clock only moves when advanced)"
                )
            if self._thread is not None:
                return
            self._stop_thread.clear()
            self._thread = threading.Thread(
                target=self._realtime_loop, args=(callback,), name="vlatwin-emulated-robot", daemon=True
            )
            self._thread.start()

    def stop_realtime(self) -> None:
        """Stop the background thread (no-op when none runs)."""
        thread = self._thread
        if thread is None:
            return
        self._stop_thread.set()
        thread.join(timeout=5.0)
        self._thread = None

    def _realtime_loop(self, callback) -> None:
        while not self._stop_thread.is_set():
            with self._lock:
                if not self._connected:
                    break
                now = float(self.clock.now())
                try:
                    self._catch_up(now)
                except Exception:
                    logger.exception("emulated robot: physics failed; realtime streaming stops")
                    break
                delivered = self._deliver_states(now)
                wake = self._next_sample
                if self._up_q:
                    wake = min(wake, self._up_q[0][0])
            if callback is not None:
                try:
                    for obs in delivered:
                        callback(obs)
                except Exception:
                    logger.exception("emulated robot: the state callback failed; realtime streaming stops")
                    break
            self._stop_thread.wait(min(max(wake - self.clock.now(), 0.0), self._period))

    def __repr__(self) -> str:
        return f"EmulatedRobot({str(self.stage_path)!r}, seed={self.seed}, params={self.params})"
