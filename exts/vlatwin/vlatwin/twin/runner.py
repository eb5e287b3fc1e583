"""``vlatwin twin run``: one action stream to the twin and the robot, with the twin kept synchronized.

Per control period (the picture in words)::

    robot states (robot clock, with the target the servo tracked and since when) --clock sync--> host times
        --rollback--> re-simulate the twin from its last fused state with the commands as the robot reports
        applying them, fuse the newest measurement (Kalman, twin = process model), re-simulate to now with the
        commands not yet reported, spread over the measured delay distribution
        --> J += |q_robot(t_meas) - q_twin(t_meas)|^2 dt  (offset-corrected timestamps), alarms
        --> robot camera frames, if any: the twin renders the same cameras at the same instant
    twin observation --> policy --> controller --> joint targets
        --> safety monitor (NaN, limits, relative clamp, rates, workspace, collision, shadow roll-out)
        --> twin (applied after the measured downlink delay) and robot (with a TTL)
    watchdog: no robot state for max(3 periods, 100 ms) --> latched e-stop (robot told to stop)

Everything is logged to an MCAP run log (robot and twin states, estimate, commands before/after safety,
events, J, clock sync) and summarized in a short HTML page.

With the emulated robot the run uses a virtual host clock (deterministic, as fast as the CPU allows);
with a networked robot (``tcp://``) it runs on the wall clock at the control rate.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.hardware.servo import TargetRamp
from vlatwin.sim.types import JointCommand


@dataclass(frozen=True)
class TwinSettings:
    policy: str
    robot: str = "emulated"
    duration_s: float | None = None
    """Run length [s] (None: the task's step limit)."""
    seed: int = 0
    init_state: int = 0
    """Index of the task's stored initial state both start from."""
    sync: bool = True
    """Estimate and re-synchronize the twin (False: open loop, the baseline)."""
    resync: str = "rollback"
    """How a late measurement corrects the twin. ``rollback``: go back to the twin's snapshot just before the
    measurement time, put the (Kalman-fused) measured state there and re-simulate to now with the commands as
    they were applied (stiff drives make errors decay, which only re-simulation predicts). ``delta``: add the
    twin's own motion since the measurement to it and set the twin's state now (cheaper; right for slow
    dynamics)."""
    arrival_spread: int = 8
    """Synchronized: a command's step is spread over this many quantiles of the measured delay distribution
    (1: one step at the median)."""
    rollback_threshold: float | None = None
    """``rollback`` mode: write the fused state of a fresh measurement (at most ``fresh_s`` old) into the twin only
    when it differs from the re-simulated one by more than this [rad | m] in some joint (None: 2 x
    ``meas_q_std``). Every write perturbs XPBD a little (its maximal coordinates round-trip through the joint
    angles; the perturbation can grow to millimetres within 50 ms), so a twin that already agrees with the
    measurement is left alone."""
    fresh_s: float = 0.02
    """Measurements older than this [s] are written into the twin only past ``stale_threshold``: stiff drives
    forget a state within about 15 ms, so an older correction is gone again by now while the write's
    perturbation stays (measured over 30 s with 20 % mismatch and 50 ms latency: writing every correction above
    1 mrad made the twin 1.65x worse than open loop; the command timeline, not state writes, is what beats
    jitter and loss)."""
    stale_threshold: float = 0.01
    """Past this [rad | m] in some joint a stale measurement is written anyway: the twin has really parted from
    the robot (a stop it did not see, a link blackout, a collision)."""
    resync_threshold: float = 0.002
    """``delta`` mode: re-sync when the estimate and the twin differ by more than this [rad | m] in any joint."""
    shadow: bool = True
    """Roll each new command out in the twin first and veto it if the roll-out is unsafe."""
    shadow_steps: int = 3
    """Control periods of the shadow roll-out."""
    command_ttl_s: float | None = None
    """How long a command stays valid on the robot (None: max(3 periods, 100 ms)); with ``command_lead_s``
    counted from the time it takes effect."""
    command_lead_s: float | None = None
    """Scheduled commands: each command is stamped to take effect this long [s] after it is sent (``apply_at`` on
    the robot clock, through the clock-sync estimate), and the robot or its agent holds it until then. The twin
    applies it at the same instant, so the link's jitter no longer decides when a target lands; the cost is
    this much added reaction time. Pick it above the link's largest one-way delay (the p99 of ``/clock``'s
    ``delay_s`` / 2 plus the jitter): a command that arrives later is applied on arrival (the robot counts it
    in ``commands_late``) and the re-simulation follows what the robot reports. Each scheduled command also
    repeats the one before it, so with a lead of at least one control period plus the largest one-way delay a
    single lost packet changes nothing (the robot applies the repeat at its time). None: on arrival. Commands
    sent before the clock estimate is ready go unscheduled."""
    servo_ramp_s: float | None = None
    """The robot servo's ramp to each new target [s] (:mod:`vlatwin.hardware.servo`), which the twin runs too so it
    predicts the drive targets the robot tracks. None: the ramp the robot reports (``status.servo_ramp_s``; the
    emulated robot's ``ramp_ms`` option); robots that report none are taken to step (0). Set it for a robot whose
    controller interpolates without saying so."""
    state_timeout_s: float | None = None
    """No robot state for this long -> e-stop (None: max(3 periods, 100 ms))."""
    sync_every: int = 5
    """Clock-sync exchanges every this many control periods."""
    stop_on_success: bool = False
    wall_clock: bool | None = None
    """None: virtual clock for the emulated robot, wall clock otherwise."""
    max_relative_target: float = 0.2
    """Safety: largest target step from the estimated position [rad]."""
    max_velocity: float = 2.5
    """Safety: command rate limit [rad/s]."""
    meas_q_std: float = 5e-4
    """Kalman: joint encoder noise [rad] (the robot's; Franka's is ~1e-4)."""
    process_q_std: float = 1e-2
    """Kalman: how fast the twin's prediction drifts from the robot [rad/sqrt(s)] (parameter mismatch)."""
    log_truth: bool = False
    """Log the emulated robot's hidden true state beside the twin's every ``truth_period_s`` (``/truth``) and
    its hidden parameters (``/truth/params``, once); for tests and benchmarks."""
    truth_period_s: float = 0.005
    """Spacing [s] of the ``/truth`` samples: uniform in time, so their RMS is the run's time RMS (samples at the
    control steps alone would all fall where a command sent one period earlier lands, when the link's latency
    is a whole number of periods)."""
    history_period_s: float = 0.005
    """Spacing [s] of the twin states kept for the divergence J and delay compensation (``/twin/state`` is logged
    at the control steps only). A measurement is compared with the twin interpolated to its instant: at the
    control period (50 ms) the interpolation alone read as several mrad of divergence on fast motions."""


@dataclass
class TwinResult:
    log: Path
    html: Path | None
    steps: int
    summary: dict = field(default_factory=dict)


class _TwinCommandPath:
    """The twin simulator as the control loop sees it: ``set_command`` goes through the safety monitor and
    out to the robot (one action stream); the twin applies commands after the estimated downlink delay."""

    def __init__(self, runner):
        self._r = runner
        self._sim = runner.started

    def __getattr__(self, name):
        return getattr(self._sim, name)

    def reset(self, *, seed=None):
        return self._sim.reset(seed=seed)

    def set_command(self, command: JointCommand) -> None:
        self._r._send(command)

    def advance(self, num_steps: int = 1) -> None:
        self._r._advance_twin(num_steps)


class TwinRunner:
    """Builds the twin (task config + policy), connects the robot, runs the synchronized loop."""

    def __init__(self, config: str | Path, settings: TwinSettings, *, log_path: str | Path, progress=None, robot_factory=None):
        """``robot_factory(stage_path=, physics=, clock=, seed=, initial_state=) -> Robot`` replaces ``settings.robot``
        (tests build emulated robots with scripted faults this way)."""
        from vlatwin.eval.setup import load_task_setup
        from vlatwin.hardware.clock import VirtualClock, WallClock
        from vlatwin.policy.factory import make_policy_from_spec
        from vlatwin.record.recorder import build_rig
        from vlatwin.tasks.initial_states import task_initial_states

        self.settings = settings
        self.config_path = Path(config)
        self.setup = load_task_setup(config, seed=settings.seed)
        setup = self.setup
        try:
            task = setup.task
            states = task_initial_states(task)
            self.init = states[settings.init_state % len(states)]
            self.policy = make_policy_from_spec(settings.policy, setup.context)
            info = self.policy.info
            scene_cams = {c.name: c for c in setup.config.scene.cameras}
            missing = [n for n in info.image_keys if n not in scene_cams]
            if missing:
                raise VlatwinError(f"policy {info.name!r} reads camera {missing[0]!r}, not in {config}")
            options = dict(info.controller_options)
            options.setdefault("gripper", info.gripper_convention)
            self.rig = build_rig(
                setup.stage_path, setup.physics, [scene_cams[n] for n in info.image_keys], info.action_space, task.control_hz,
                ["rgb"], sim=setup.sim, controller_options=options, policy=self.policy,
            )
            self.started = self.rig.started
            self.started.initial_state = self.init
            self.control_dt = 1.0 / task.control_hz
            self.physics_dt = setup.sim.physics_dt
            robot_is_emulated = settings.robot.split("?", 1)[0] == "emulated"
            use_wall = settings.wall_clock if settings.wall_clock is not None else not robot_is_emulated
            self.clock = WallClock() if use_wall else VirtualClock()
            self.task = task
            self.info = setup.sim.info
            self.joint_names = list(self.info.joint_names)
            self.log_path = Path(log_path)
            self.progress = progress
            self._build_sync()
            self._build_safety()
            # The control loop drives the twin through the command path (safety, robot, delayed twin).
            self.rig.loop.sim = _TwinCommandPath(self)
            self.robot = None
            self.robot_factory = robot_factory
            self._robot_index = None
        except BaseException:
            setup.close()
            raise

    # ------------------------------------------------------------------ parts
    def _build_sync(self) -> None:
        from vlatwin.twin.clock import ClockSync
        from vlatwin.twin.commands import CommandTimeline
        from vlatwin.twin.delay import DelayCompensator
        from vlatwin.twin.divergence import DivergenceMonitor
        from vlatwin.twin.estimator import JointKalman

        n = len(self.joint_names)
        # Skew only from a long enough span: over a few seconds with 10 ms jitter a fitted skew is noise. Half of
        # the window is kept, not the default 8 best: with random (Gaussian) jitter on both legs an exchange's
        # round trip says nothing about its offset error ((d_down - d_up) / 2 is independent of d_down + d_up),
        # so only averaging helps, and dropping the slower half still sheds queueing outliers. Over 60 synthetic
        # 50 +- 10 ms links (14 s of exchanges at 4 Hz) the clock error RMS went 4.3 -> 2.35 ms (1.23 with the
        # skew prior; tests/unit/test_twin_clock.py).
        self.clock_sync = ClockSync(keep=32, min_skew_span_s=10.0)
        # Two twin histories: the twin as it was (what J compares against) and its motion alone, with the
        # re-sync jumps taken out (what delay compensation adds to a late measurement; a jump is not motion).
        self.delay = DelayCompensator(horizon_s=2.0)
        self.twin_history = DelayCompensator(horizon_s=2.0)
        self._motion_offset = np.zeros(len(self.joint_names))
        self._motion_offset_qd = np.zeros(len(self.joint_names))
        # Rollback: one twin snapshot per control step (host time, snapshot, fused with a measurement?), and the
        # commands as the twin applied them and as the robot reports applying them.
        self._snapshots: deque = deque(maxlen=64)
        self.commands = CommandTimeline()
        self._kalman_t: float | None = None
        st = self.settings
        self.kalman = JointKalman(
            n, process_q_std=st.process_q_std, process_qd_std=50 * st.process_q_std, meas_q_std=st.meas_q_std,
            meas_qd_std=100 * st.meas_q_std,
        )
        self.divergence = DivergenceMonitor(alarm_rms=0.05, window_s=0.5, joint_names=[p.rsplit("/", 1)[-1] for p in self.joint_names])

    def _build_safety(self) -> None:
        from vlatwin.twin.safety import SafetyLimits, SafetyMonitor
        from vlatwin.twin.watchdog import StateWatchdog, default_timeout

        lower, upper = np.asarray(self.info.joint_lower, float), np.asarray(self.info.joint_upper, float)
        is_grip = np.array(["finger" in p.lower() or "gripper" in p.lower() for p in self.joint_names])
        margin = np.where(is_grip, 0.0, 0.05)
        n = len(self.joint_names)
        ee = None
        chain = self.setup.chain
        if chain is not None:
            from vlatwin.control.base import match_joint_names

            idx = match_joint_names(chain.joint_names, self.joint_names)

            def ee(q, _idx=idx):
                return chain.fk(np.asarray(q, float)[_idx])[:3, 3]

        s = self.settings
        self.safety_limits = SafetyLimits(
            lower=lower, upper=upper, margin=margin,
            max_relative_target=np.where(is_grip, 0.1, s.max_relative_target),
            max_velocity=np.full(n, s.max_velocity), max_acceleration=None,
            workspace_min=np.array([-0.2, -0.8, -0.05]) if ee is not None else None,
            workspace_max=np.array([1.0, 0.8, 1.2]) if ee is not None else None,
            ee_position=ee, collision=None,
        )
        self.safety = SafetyMonitor(self.safety_limits, self.control_dt)
        timeout = s.state_timeout_s or default_timeout(self.control_dt)
        self.state_watchdog = StateWatchdog(timeout)
        self.command_ttl = s.command_ttl_s or default_timeout(self.control_dt)
        lead = s.command_lead_s
        if lead is not None and not (isinstance(lead, (int, float)) and math.isfinite(lead) and 0 < lead <= 2.0):
            raise VlatwinError(
                f"twin: the command lead (--command-lead-ms) must be in (0, 2000] ms, above the link's one-way delay; got "
                f"{lead * 1e3 if isinstance(lead, (int, float)) else lead!r} ms"
            )
        ramp = s.servo_ramp_s
        if ramp is not None and not (isinstance(ramp, (int, float)) and math.isfinite(ramp) and 0 <= ramp <= 1.0):
            raise VlatwinError(
                f"twin: the servo ramp (--servo-ramp-ms) must be in [0, 1000] ms (0: the robot steps to each target); got "
                f"{ramp * 1e3 if isinstance(ramp, (int, float)) else ramp!r} ms"
            )

    # ---------------------------------------------------------------- the loop
    def run(self, *, html: str | Path | None = None) -> TwinResult:
        """The whole run: :meth:`start`, :meth:`step` until done (paced by a wall clock), :meth:`stop`."""
        self.start()
        try:
            while not self.done:
                self.step()
                if not self.clock.is_virtual:
                    self.clock.sleep_until(self.next_step_time())
        finally:
            result = self.stop(html=html)
        return result

    def start(self) -> None:
        """Connect the robot, open the run log, reset the twin to the initial state, first clock estimate."""
        from vlatwin.hardware.factory import make_robot
        from vlatwin.twin.runlog import RunLog

        s = self.settings
        self.steps_cap = int(round(s.duration_s * self.task.control_hz)) if s.duration_s else int(self.task.max_steps)
        metadata = {
            "config": str(self.config_path), "policy": s.policy, "robot": s.robot, "seed": s.seed,
            "init_state": s.init_state, "control_hz": self.task.control_hz, "physics_dt": self.physics_dt,
            "joint_names": self.joint_names, "settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
            "clock": "virtual" if self.clock.is_virtual else "wall", "instruction": self.task.instructions[0],
            "initial_state": self.init.to_dict(), "physics": self.setup.physics,
        }
        try:
            self.robot = (self.robot_factory or (lambda **kw: make_robot(s.robot, **kw)))(
                stage_path=self.setup.stage_path, physics=self.setup.physics, clock=self.clock, seed=s.seed,
                initial_state=self.init,
            )
            # Connect before the log exists: a robot that cannot be reached leaves no run behind.
            self.robot.connect()
            self._map_robot_joints()
        except BaseException:
            if self.robot is not None and self.robot.is_connected:
                self.robot.disconnect()
            self.setup.close()
            raise
        attachments = {"scene.usda": Path(self.setup.stage_path).read_bytes(), "config.yaml": self.config_path.read_bytes()}
        self.log = RunLog(self.log_path, metadata=metadata, attachments=attachments)
        self._seq = 0
        self._last_robot_seq = -1
        self._last_robot_host = float("-inf")
        self._pending: deque[tuple[float, np.ndarray, int]] = deque()  # (apply at host time, target_q, seq) for the twin
        self._resyncs = 0
        self._last_sent_target: np.ndarray | None = None
        self._last_scheduled = None  # the last scheduled RobotAction (the next one repeats it)
        self._late_seen = self._late_reported = 0  # the robot's commands_late count: seen, and told in an event
        self._late_warned_at = float("-inf")
        # Robot camera frames / LIDAR clouds waiting for the twin's of the same instant: (host time, camera names,
        # lidar names).
        self._frame_requests: list[tuple[float, tuple[str, ...], tuple[str, ...]]] = []
        self._twin_cameras = self._twin_lidars = None
        self.frames_logged = 0
        self._lag_catchups = 0
        self._k = 0
        self.done = False
        self._stopped = False
        try:
            obs = self.rig.loop.reset(seed=s.seed, episode=s.init_state, instruction=self.task.instructions[0])
            state = obs.state
            self.kalman.reset(np.asarray(state.joint_q, float), np.asarray(state.joint_qd, float), q_std=1e-3, qd_std=1e-2)
            self.safety.reset(np.asarray(state.joint_q, float))
            self._t0 = self.clock.now()
            self._twin_t = self._t0  # host time the twin's state stands for (see _advance_twin)
            # The robot servo's desired position as the twin models it (steps until the robot reports a ramp).
            self._servo = TargetRamp(np.asarray(state.joint_q, float), s.servo_ramp_s or 0.0)
            # The first anchor is the reset state at the start (what the robot starts from too); whatever the
            # reset simulated before it (settling) is not the robot's history to roll back into.
            self._snapshots.clear()
            if s.sync and s.resync == "rollback":
                self._snapshots.append((self._t0, self.started._sim.snapshot(), True, self._servo.copy()))
            self.state_watchdog.feed(self._t0)
            self._record_twin(self._t0, state)
            for _ in range(4):  # a first clock estimate before moving
                self._clock_sync()
            truth = getattr(self.robot, "truth", None) if s.log_truth else None
            if truth is not None:
                # The emulated robot's hidden parameters, for tests and benchmarks that check an identification.
                params = truth().params
                self.log.log("/truth/params", self._t0, {
                    f: getattr(params, f) for f in params.FIELDS if getattr(params, f) is not None
                } | {"joint_names": list(self.robot.joint_names), "body_paths": list(self.info.body_paths)})
            self._obs = obs
            self._tracker = self.task.tracker()
        except BaseException:
            self.stop()
            raise

    def _map_robot_joints(self) -> None:
        """Twin joint j is robot joint ``self._robot_index[j]`` (matched by name: a real robot's driver lists its
        joints in its own order); None when the orders are the same."""
        from vlatwin.control.base import match_joint_names

        robot_names = list(getattr(self.robot, "joint_names", ()) or ())
        twin_leaves = [p.rsplit("/", 1)[-1] for p in self.joint_names]
        if not robot_names or [p.rsplit("/", 1)[-1] for p in robot_names] == twin_leaves:
            self._robot_index = None
            return
        if len(robot_names) != len(twin_leaves):
            raise VlatwinError(
                f"robot {self.settings.robot!r} has {len(robot_names)} joints ({', '.join(robot_names)}), "
                f"the twin {len(twin_leaves)} ({', '.join(twin_leaves)}); they must be the same joints"
            )
        try:
            self._robot_index = match_joint_names(twin_leaves, robot_names)
        except VlatwinError as exc:
            raise VlatwinError(f"robot {self.settings.robot!r} and the twin name their joints differently: {exc}") from None

    def _from_robot(self, values) -> np.ndarray:
        arr = np.asarray(values, float)
        return arr if self._robot_index is None else arr[self._robot_index]

    def _to_robot(self, values: np.ndarray) -> np.ndarray:
        if self._robot_index is None:
            return values
        out = np.empty_like(values)
        out[self._robot_index] = values
        return out

    def step(self) -> dict:
        """One control period (no pacing: :meth:`run` or the caller waits for :meth:`next_step_time`)."""
        s, k = self.settings, self._k
        now = self.clock.now()
        self._catch_up(now)
        self._sync_from_robot(now)
        # The watchdog before anything that talks to the robot and may wait on a dead link.
        if self.state_watchdog.expired(now) and not self.safety.estopped:
            self._estop(now, f"watchdog: no robot state for {self.state_watchdog.age(now) * 1e3:.0f} ms")
        if k % max(1, s.sync_every) == 0 and self.state_watchdog.age(now) < 2 * self.control_dt:
            self._clock_sync()
        # The policy sees the twin as re-synchronized just now, with the latest sensor data.
        obs = replace(self._obs, state=self.started.get_state())
        step, self._obs = self.rig.loop.step(obs)
        for text in step.events:
            if text.startswith("rejected"):  # non-finite actions stop at the loop, before the controller
                self.log.log("/safety/event", now, {"kind": "nan", "reason": text, "before": [], "after": []})
        self.log.log("/policy", now, {
            "action": step.raw_action if step.raw_action is not None else [],
            "latency_ms": step.policy_latency_ms, "queried": step.policy_queried,
        })
        self._k = k + 1
        if self.progress is not None:
            self.progress(k, self.steps_cap, self.divergence, self.safety)
        success = s.stop_on_success and self._tracker.update(bool(self.task.success(step.next_state, self.info)), k)
        # On a wall clock the twin also covers the time it caught up (see _catch_up): the run's length is time.
        over = bool(s.duration_s) and not self.clock.is_virtual and self._twin_t - self._t0 >= s.duration_s - 1e-9
        self.done = bool(success) or self._k >= self.steps_cap or over
        return self.status()

    def next_step_time(self) -> float:
        """Host time [s] at which the next control step is due (wall-clock pacing): when the twin's state stands
        for the present."""
        return self._t0 + self._k * self.control_dt if self.clock.is_virtual else self._twin_t

    def _catch_up(self, now: float) -> None:
        """Wall clock: a twin behind the present (a step that started late; a slow one: the first camera render, a
        loaded machine) simulates the missed time now, with the commands it has. A twin behind the robot's
        measurements cannot place them in its past: the rollback would fuse a state from its future at the
        twin's present. Lags over a control period are logged as events."""
        lag = now - self._twin_t
        steps = int(lag / self.physics_dt) if not self.clock.is_virtual else 0
        if steps < 1:
            return
        # Even a few milliseconds matter: a measurement newer than the twin would be fused at the wrong instant.
        self._advance_twin(steps)
        if lag > self.control_dt:
            self._lag_catchups += 1
            if self._lag_catchups <= 3 or lag > 0.5:
                self._event(now, f"twin fell {lag * 1e3:.0f} ms behind the wall clock; simulated the gap", "warning")

    def status(self) -> dict:
        sync = self.clock_sync
        return {
            "step": self._k, "total": self.steps_cap, "J": self.divergence.J, "rms": self.divergence.rms,
            "alarm": self.divergence.alarm, "clock_offset_s": sync.offset if sync.ready else None,
            "estopped": self.safety.estopped, "estop_reason": self.safety.estop_reason, "resyncs": self._resyncs,
            "done": self.done,
        }

    def estop(self, reason: str) -> None:
        """Latch the e-stop (operator): safety monitor and robot, logged."""
        if not self.safety.estopped:
            self._estop(self.clock.now(), reason)

    def reset_estop(self) -> None:
        """Clear a latched e-stop on both sides; targets restart from the estimated position."""
        now = self.clock.now()
        q = np.asarray(self.kalman.q if self.settings.sync else self.started.get_state().joint_q, float)
        self.safety.reset_estop(q)
        self.state_watchdog.feed(now)
        self.robot.reset_estop()
        self._event(now, "e-stop reset by the operator", "info")

    def stop(self, *, html: str | Path | None = None) -> TwinResult:
        """Disconnect the robot, close the log, the policy and the twin; write the summary page."""
        if getattr(self, "_stopped", False):
            return self._result
        self._stopped = True
        try:
            if self.robot is not None:
                self.robot.disconnect()
        finally:
            self.log.close()
            close = getattr(self.policy, "close", None)
            if close is not None:
                close()
            self.setup.close()
        summary = {
            "steps": self._k, "J": self.divergence.J, "alarm": self.divergence.alarm, "resyncs": self._resyncs,
            "estopped": self.safety.estopped, "clock_offset_s": self.clock_sync.offset if self.clock_sync.ready else None,
        }
        html_path = None
        if html is not None:
            from vlatwin.report.twin_report import write_twin_summary

            html_path = write_twin_summary(self.log_path, Path(html))
        self._result = TwinResult(log=self.log_path, html=html_path, steps=self._k, summary=summary)
        return self._result

    def _log_truth(self, now: float) -> None:
        truth = getattr(self.robot, "truth", None)
        if truth is None:
            return
        t = truth()
        twin = self.started.get_state()
        q_true = self._from_robot(t.q)
        self.log.log("/truth", now, {
            "joint_q": q_true, "joint_qd": self._from_robot(t.qd), "twin_q": np.asarray(twin.joint_q, float),
            "error_q": np.asarray(twin.joint_q, float) - q_true,
        })

    # ------------------------------------------------------------- sync side
    def _clock_sync(self) -> None:
        sample = self.robot.sync_sample()
        if sample is None:
            return
        self.clock_sync.add(*sample)
        if self.clock_sync.ready:
            self.log.log("/clock", self.clock.now(), {
                "offset_s": self.clock_sync.offset, "skew_ppm": self.clock_sync.skew_ppm, "delay_s": self.clock_sync.delay,
                "samples": self.clock_sync.samples, "ref_s": self.clock.now(),
            })

    def _downlink_delay(self) -> float:
        """Estimated one-way command delay [s]: synchronized, the median measured from the robot's reports of
        when it applied each command; open loop (or before enough reports), half the smallest round trip."""
        if self.settings.sync:
            measured = self.commands.downlink_delay()
            if measured is not None:
                return measured
        return 0.5 * self.clock_sync.delay if self.clock_sync.ready else 0.0

    def _to_host(self):
        """Robot time -> host time with the current clock estimate (None before the first estimate)."""
        return self.clock_sync.to_host if self.clock_sync.ready else None

    def _remember_twin(self, t: float, state) -> tuple[np.ndarray, np.ndarray]:
        """Keep the twin's state at host time ``t`` for the divergence and the delay compensation."""
        q = np.asarray(state.joint_q, float)
        qd = np.asarray(state.joint_qd, float)
        self.twin_history.record(t, q, qd)
        self.delay.record(t, q - self._motion_offset, qd - self._motion_offset_qd)
        return q, qd

    def _record_twin(self, t: float, state) -> None:
        q, qd = self._remember_twin(t, state)
        self.log.log("/twin/state", t, {"step": int(state.step), "time": float(state.time), "joint_q": q, "joint_qd": qd})

    def _sync_from_robot(self, now: float) -> None:
        obs = self.robot.get_observation()
        # The whole state stream goes into the run log (system identification wants every sample); the sync
        # below uses the newest state only.
        poll = getattr(self.robot, "poll_observations", None)
        for item in poll() if poll is not None else ():
            self._log_robot_state(item)
        sim = self.started
        twin = sim.get_state()
        q_twin, qd_twin = np.asarray(twin.joint_q, float), np.asarray(twin.joint_qd, float)
        if self.settings.sync and self.settings.resync == "delta":
            self.kalman.predict(q_twin, qd_twin, self.control_dt)
        if obs is None:
            return
        restarted = obs.seq < self._last_robot_seq and obs.host_time > self._last_robot_host
        if obs.seq <= self._last_robot_seq and not restarted:
            return
        if restarted:
            # A restarted robot (agent) counts from 0 again on a new clock: forget the old clock estimate.
            self.clock_sync.reset()
            self.commands.reset_robot()
            self._event(now, f"robot restarted (state seq {self._last_robot_seq} -> {obs.seq}); clock sync reset", "warning")
            for _ in range(4):
                self._clock_sync()
        self._last_robot_seq = obs.seq
        self._last_robot_host = obs.host_time
        self._check_late(obs, now)
        # Fed with the state's arrival, not this step's time: the deadline runs from when the robot was last
        # heard (a feed at the step after the arrival gave up to a control period of extra grace).
        self.state_watchdog.feed(min(float(obs.host_time), now))
        t_meas = self.clock_sync.to_host(obs.robot_time) if self.clock_sync.ready else obs.host_time
        # A measurement is never from the future: a clock estimate a rounding error (or its error) ahead says
        # "now" (the rollback would otherwise fall back to the cruder delta re-sync).
        t_meas = min(t_meas, now)
        q_meas, qd_meas = self._from_robot(obs.joint_q), self._from_robot(obs.joint_qd)
        if poll is None:
            self._log_robot_state(obs)
        then = self.twin_history.twin_at(t_meas)
        q_twin_then = None if then is None else then[0]
        if q_twin_then is not None:
            for alarm in self.divergence.add(t_meas, q_meas, q_twin_then):
                self._event(now, alarm, "warning")
            self.log.log("/divergence", now, {
                "J": self.divergence.J, "rms": self.divergence.rms, "alarm": self.divergence.alarm,
                "max_abs": self.divergence.max_abs,
            })
        if not self.settings.sync:
            return
        if self.settings.resync == "rollback" and self._rollback(now, t_meas, q_meas, qd_meas):
            self._mirror_robot_mode(obs, now)
            return
        q_now, qd_now = self.delay.forward(t_meas, q_meas, qd_meas, max(now, self._twin_t))
        self.kalman.update(q_now, qd_now)
        self.log.log("/estimate", now, {
            "joint_q": self.kalman.q, "joint_qd": self.kalman.qd, "std_q": self.kalman.std_q, "latency_s": now - t_meas,
        })
        gap = np.abs(self.kalman.q - q_twin)
        if float(gap.max()) > self.settings.resync_threshold:
            # hold=False: the drive keeps the commanded target; only the state jumps to the estimate.
            sim.set_joint_state(self.kalman.q, self.kalman.qd, hold=False, keep_constraint_error=True)
            self._motion_offset = self._motion_offset + (self.kalman.q - q_twin)
            self._motion_offset_qd = self._motion_offset_qd + (self.kalman.qd - qd_twin)
            self._resyncs += 1

    def _check_late(self, obs, now: float) -> None:
        """Warn (at most once a second) when the robot reports scheduled commands that came after their time."""
        late = (obs.status or {}).get("commands_late")
        lead = self.settings.command_lead_s
        if lead is None or not isinstance(late, (int, np.integer)) or late <= self._late_seen:
            return
        if now - self._late_warned_at >= 1.0:
            age = (obs.host_time - self.clock_sync.to_host(obs.robot_time)) if self.clock_sync.ready else float("nan")
            self._event(now, (
                f"robot: {late - self._late_reported} scheduled command(s) arrived after their time ({late} in all) and "
                f"were applied on arrival: the {lead * 1e3:.0f} ms lead is shorter than the link's delay (this state "
                f"took {age * 1e3:.0f} ms); raise --command-lead-ms above the largest one-way delay plus a control period"
            ), "warning")
            self._late_warned_at, self._late_reported = now, int(late)
        self._late_seen = int(late)

    def _log_robot_state(self, obs) -> None:
        status = obs.status or {}
        # An interpolating servo reports its event's goal beside the point on the ramp it tracks now.
        goal = obs.joint_q_desired if getattr(obs, "joint_q_goal", None) is None else obs.joint_q_goal
        ramp = status.get("target_ramp_s")
        self.commands.robot_report(
            status.get("target_time"), None if goal is None else self._from_robot(goal),
            status.get("last_command_seq"), self._to_host(), ramp_s=ramp if isinstance(ramp, (int, float)) else 0.0,
        )
        servo_ramp = status.get("servo_ramp_s")
        if self.settings.servo_ramp_s is None and isinstance(servo_ramp, (int, float)) and math.isfinite(servo_ramp) \
                and servo_ramp >= 0 and servo_ramp != self._servo.ramp_s:
            self._servo.ramp_s = float(servo_ramp)
            for snap in self._snapshots:
                snap[3].ramp_s = float(servo_ramp)
            if servo_ramp > 0:
                self._event(obs.host_time, f"robot servo ramps to each target over {servo_ramp * 1e3:.0f} ms; the twin does too")
        t_meas = self.clock_sync.to_host(obs.robot_time) if self.clock_sync.ready else obs.host_time
        if obs.images or getattr(obs, "point_clouds", None):
            self._log_robot_frames(obs.images or {}, getattr(obs, "point_clouds", None) or {}, t_meas)
        self.log.log("/robot/state", obs.host_time, {
            "seq": obs.seq, "robot_time": obs.robot_time, "host_time": obs.host_time, "t_meas": t_meas,
            "joint_q": self._from_robot(obs.joint_q), "joint_qd": self._from_robot(obs.joint_qd), "status": obs.status,
            **({} if obs.joint_q_desired is None else {"joint_q_desired": self._from_robot(obs.joint_q_desired)}),
            **({} if getattr(obs, "joint_q_goal", None) is None else {"joint_q_goal": self._from_robot(obs.joint_q_goal)}),
            **({} if obs.joint_effort is None else {"joint_effort": self._from_robot(obs.joint_effort)}),
        })

    def _log_robot_frames(self, images: dict, clouds: dict, t_meas: float) -> None:
        """Log the robot's camera frames and LIDAR clouds; the twin makes its own of the same instant in the next
        rollback."""
        from vlatwin.twin.cameras import image_message
        from vlatwin.twin.lidars import cloud_message

        for name, image in images.items():
            self.log.log(f"/robot/camera/{name}", t_meas, image_message(image, t_meas, name))
        for name, points in clouds.items():
            self.log.log(f"/robot/lidar/{name}", t_meas, cloud_message(points, t_meas, name))
        # The twin's come from Newton's renderer in the re-simulation (Isaac Sim twins: not yet).
        if self.settings.sync and self.settings.resync == "rollback" and getattr(self.started._sim, "name", "") == "newton":
            self._frame_requests.append((t_meas, tuple(images), tuple(clouds)))

    def _render_twin_frames(self, sim, t_frame: float, cameras: tuple[str, ...], lidars: tuple[str, ...]) -> None:
        """The twin's frames of ``cameras`` and clouds of ``lidars`` from its current state, logged at ``t_frame``."""
        from vlatwin.twin.cameras import StageCameras, image_message
        from vlatwin.twin.lidars import StageLidars, cloud_message

        if cameras:
            if self._twin_cameras is None or not set(cameras) <= set(self._twin_cameras.names):
                self._twin_cameras = StageCameras(sim, self.setup.stage_path, names=sorted(set(cameras)))
            for name, image in self._twin_cameras.render().items():
                if name in cameras:
                    self.log.log(f"/twin/camera/{name}", t_frame, image_message(image, t_frame, name))
        if lidars:
            if self._twin_lidars is None or not set(lidars) <= set(self._twin_lidars.names):
                self._twin_lidars = StageLidars(sim, self.setup.stage_path, names=sorted(set(lidars)))
            for name, points in self._twin_lidars.scan().items():
                if name in lidars:
                    self.log.log(f"/twin/lidar/{name}", t_frame, cloud_message(points, t_frame, name))
        self.frames_logged += 1

    def _mirror_robot_mode(self, obs, now: float) -> None:
        """A stopped robot (e-stop, latched on either side) holds where it is: the twin's drives then hold the
        estimate too, instead of pulling towards the last command the robot dropped."""
        # Only a latched stop is mirrored: "holding" / "stopped" also happen in normal running (before the
        # first command arrives, between lost ones) and then the twin's queued commands are the better guess.
        if not (obs.status.get("estop", False) or self.safety.estopped):
            return
        target = np.asarray(self.kalman.q, float)
        self._servo.jump(target)
        self.started._sim.set_command(JointCommand(target_q=target))
        self.commands.applied_in_twin(now, target, None)

    def _rollback(self, now: float, t_meas: float, q_meas: np.ndarray, qd_meas: np.ndarray) -> bool:
        """Re-simulate the twin from the measurement: restore the last snapshot that was fused with a measurement
        (the newest state the twin knew to be right) before ``t_meas``, advance to ``t_meas`` with the commands
        as the robot reports applying them, fuse the measurement (Kalman), advance to ``now`` with the commands
        the robot has not reported yet as the twin guesses them. False when no snapshot is old enough (the
        caller falls back to ``delta``)."""
        older = [snap for snap in self._snapshots if snap[0] <= t_meas + 1e-12]
        if not older or t_meas > now:
            return False
        fused = [snap for snap in older if snap[2]]
        t_snap, snap, _, servo = (fused or older)[-1]
        servo = servo.copy()
        sim = self.started._sim
        # Step counts from the simulator, not the clock: after the re-simulation the twin is at the same step.
        steps_total = sim.current_step - snap.step
        steps_to_meas = min(steps_total, max(0, int(round((t_meas - t_snap) / self.physics_dt))))
        schedule = self.commands.schedule(t_snap, t_meas, self._to_host(), ramps=True)
        sim.restore(snap)
        # Robot camera frames between the anchor and the measurement: the twin renders its own at the same step
        # of the re-simulation (what it predicted for that instant from the state before). Older ones can no
        # longer be re-simulated and are dropped.
        frames = sorted(
            (min(steps_to_meas, max(0, int(round((t - t_snap) / self.physics_dt)))), t, cameras, lidars)
            for t, cameras, lidars in self._frame_requests if t_snap - 1e-9 <= t <= t_meas + 1e-9
        )
        self._frame_requests = [r for r in self._frame_requests if r[0] > t_meas + 1e-9]
        done = 0
        for k_frame, t_frame, cameras, lidars in frames:
            self._replay_commands(sim, servo, t_snap, done, k_frame, schedule)
            done = k_frame
            self._render_twin_frames(sim, t_frame, cameras, lidars)
        self._replay_commands(sim, servo, t_snap, done, steps_to_meas, schedule)
        state = sim.get_state()
        q_pred, qd_pred = np.asarray(state.joint_q, float), np.asarray(state.joint_qd, float)
        dt = t_meas - self._kalman_t if self._kalman_t is not None and t_meas > self._kalman_t else self.control_dt
        self.kalman.predict(q_pred, qd_pred, dt)
        self.kalman.update(q_meas, qd_meas)
        self._kalman_t = t_meas
        st = self.settings
        threshold = (2.0 * st.meas_q_std if st.rollback_threshold is None else st.rollback_threshold) \
            if now - t_meas <= st.fresh_s else st.stale_threshold
        if float(np.max(np.abs(self.kalman.q - q_pred))) > threshold:
            sim.set_joint_state(self.kalman.q, self.kalman.qd, hold=False, keep_constraint_error=True)
        # Snapshots after the measurement belong to the old trajectory; the fused state is the new anchor.
        while self._snapshots and self._snapshots[-1][0] > t_meas + 1e-12:
            self._snapshots.pop()
        self._snapshots.append((t_snap + steps_to_meas * self.physics_dt, sim.snapshot(), True, servo.copy()))
        self._replay_commands(sim, servo, t_snap, steps_to_meas, steps_total, schedule)
        self._servo = servo
        self._resyncs += 1
        self.log.log("/estimate", now, {
            "joint_q": self.kalman.q, "joint_qd": self.kalman.qd, "std_q": self.kalman.std_q, "latency_s": now - t_meas,
        })
        return True

    def _replay_commands(self, sim, servo: TargetRamp, t0: float, start: int, stop: int, schedule) -> None:
        """Advance ``sim`` physics steps ``start..stop`` after ``t0``, starting each ``(host time, target, ramp_s)``
        of ``schedule`` at its step on ``servo`` (the servo's state at step ``start``; it is advanced too)."""
        dt = self.physics_dt
        half = 0.5 * dt
        # Each command lands on the step whose half-step window holds its applied time (the clock that
        # stamped it was summed step by step, so exact equality would miss some).
        due: dict[int, list[tuple]] = {}
        for t_apply, target, ramp in schedule:
            k = max(0, int(np.floor((t_apply - t0 + half) / dt)))
            if start <= k < stop:
                # A ramp under way at t0 keeps its real start; the others start at their step.
                due.setdefault(k, []).append((min(t_apply, t0) if k == 0 else t0 + k * dt, target, ramp))
        k = start
        while k < stop:
            t = t0 + k * dt
            changed = False
            for t_event, target, ramp in due.get(k, ()):
                changed |= servo.set(t_event, target, ramp)
            if changed or servo.moving(t):
                sim.set_command(JointCommand(target_q=servo.step_target(t, dt)))
            # Steps without a command or a ramp under way go in one advance call.
            nxt = k + 1 if servo.moving(t + dt) else min([j for j in due if j > k] + [stop])
            sim.advance(nxt - k)
            k = nxt

    # ------------------------------------------------------------ command side
    def _estop(self, now: float, reason: str) -> None:
        event = self.safety.estop(reason, time=now)
        self.log.log("/safety/event", now, event.to_dict())
        try:
            self.robot.estop()
        finally:
            self._event(now, f"e-stop: {reason}", "error")

    def _event(self, t: float, text: str, level: str = "info") -> None:
        self.log.log("/events", t, {"text": text, "level": level})

    def _send(self, command: JointCommand) -> None:
        now = self.clock.now()
        target = np.asarray(command.target_q, float)
        self._seq += 1
        self.log.log("/command/raw", now, {"seq": self._seq, "target_q": target})
        measured = self.kalman.q if self.settings.sync else np.asarray(self.started.get_state().joint_q, float)
        decision = self.safety.check(target, measured, time=now)
        for event in decision.events:
            self.log.log("/safety/event", now, event.to_dict())
        safe = decision.target_q
        if safe is not None and self.settings.shadow:
            veto = self._shadow(safe)
            if veto is not None:
                self.log.log("/safety/event", now, veto.to_dict())
                safe = None
        if safe is None:
            return  # hold: neither the twin nor the robot gets a new target
        from vlatwin.hardware.base import RobotAction

        lead = self.settings.command_lead_s
        apply_time = now + lead if lead is not None and self.clock_sync.ready else None
        apply_at = None if apply_time is None else self.clock_sync.to_robot(apply_time)
        expires = (now if apply_time is None else apply_time) + self.command_ttl
        action = RobotAction(target_q=self._to_robot(safe), seq=self._seq, send_time=now, expires_at=expires, apply_at=apply_at)
        previous = self._last_scheduled
        self._last_scheduled = action if apply_at is not None else None
        if apply_at is not None and previous is not None:
            action = replace(action, previous=previous)  # one lost packet costs nothing when the lead covers it
        self.robot.send_action(action)
        message = {"seq": self._seq, "target_q": safe, "expires_at": expires}
        if apply_time is not None:
            message.update(apply_time=apply_time, apply_at=apply_at)
        self.log.log("/command/safe", now, message)
        self.commands.sent(self._seq, now, safe, expires)
        applications = [(apply_time, safe)] if apply_time is not None else self._twin_applications(now, self._seq, safe)
        for t_apply, target in applications:
            bisect.insort(self._pending, (t_apply, target, self._seq), key=lambda e: e[0])
        self._last_sent_target = safe

    def _twin_applications(self, send_time: float, seq: int, target: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """When and how the twin applies an unscheduled command ``seq``: (host time, target) pairs (none: never).

        Synchronized, with enough measured delays, the step to the new target is spread over the measured delay
        distribution (a staircase at its quantiles): the expected target over the unknown arrival time, and the
        expected motion with it (drives are near linear), which is the least-squares prediction of the robot.
        Otherwise one step at the estimated delay. (Benchmarks override this with the emulated link's truth to
        measure what a causal twin cannot know.)"""
        delays = self.commands.delay_quantiles(self.settings.arrival_spread) if self.settings.sync else None
        prev = self._last_sent_target
        if delays is None or prev is None or prev.shape != target.shape:
            return [(send_time + self._downlink_delay(), target)]
        k = len(delays)
        steps = [(send_time + d, prev + (j + 1) / k * (target - prev)) for j, d in enumerate(delays[:-1])]
        steps.append((send_time + delays[-1], target))  # the last step is the target itself, not a rounding of it
        # Equal delays (a link without jitter) give one step.
        return [step for j, step in enumerate(steps) if j == k - 1 or step[0] < steps[j + 1][0]]

    def _shadow(self, target: np.ndarray):
        """Roll the command out in the twin for a few control periods; veto it if the roll-out is unsafe."""
        from vlatwin.twin.safety import shadow_veto

        sim = self.started._sim
        snap = sim.snapshot()
        try:
            servo = self._servo.copy()
            rows = []
            per = int(round(self.control_dt / self.physics_dt))
            for row in range(self.settings.shadow_steps):
                first = [(self._twin_t, target, None)] if row == 0 else ()
                self._replay_commands(sim, servo, self._twin_t + row * per * self.physics_dt, 0, per, first)
                rows.append(np.asarray(sim.get_state().joint_q, float))
                hit = self._collision_in_twin(sim)
                if hit is not None:
                    from vlatwin.twin.safety import SafetyEvent

                    sim.restore(snap)
                    return SafetyEvent(kind="shadow", reason=f"shadow roll-out row {len(rows) - 1}: collision: {hit}", before=target, after=None)
        except Exception as exc:  # a roll-out that blows up the twin is itself the veto
            from vlatwin.twin.safety import SafetyEvent

            sim.restore(snap)
            return SafetyEvent(kind="shadow", reason=f"shadow roll-out failed: {exc}", before=target, after=None)
        sim.restore(snap)
        return shadow_veto(np.stack(rows), self.safety_limits)

    #: Robot bodies allowed to touch static geometry (the base stands on the table).
    COLLISION_ALLOWED = ("panda_link0",)
    COLLISION_DEPTH = 0.003
    """Overlap [m] that counts as a collision (resting contacts overlap by micrometres)."""

    def _collision_in_twin(self, sim) -> str | None:
        """A robot link in the table/environment or in another robot link (not finger on finger), if any.
        Robot on object contacts are manipulation, not collisions."""
        penetrations = getattr(sim, "penetrations", None)
        if penetrations is None:
            return None
        robot = "/World/Robot/"
        for a, b, depth in penetrations(self.COLLISION_DEPTH):
            names = [p.rsplit("/", 1)[-1] for p in (a, b)]
            in_robot = [p.startswith(robot) for p in (a, b)]
            if not any(in_robot):
                continue
            if "world" in (a, b):
                link = names[0] if in_robot[0] else names[1]
                if link not in self.COLLISION_ALLOWED:
                    return f"{link} {depth * 1e3:.0f} mm into the table/environment"
            elif all(in_robot) and not all("finger" in n for n in names):
                return f"{names[0]} and {names[1]} overlap {depth * 1e3:.0f} mm (self-collision)"
        return None

    def _advance_twin(self, num_steps: int) -> None:
        """Simulate ``num_steps`` physics steps of the twin, applying queued commands at their host times.

        The twin's own timeline is ``_twin_t``: the host time its state stands for. On the virtual clock that is
        the clock; on a wall clock a control period is simulated in a few milliseconds at its start, so the
        state after it stands for the period's end, not for the moment it was computed (logging it at ``now``
        put the twin a period ahead of the robot, a constant ~25 ms lead that read as 8 mrad of divergence
        per joint over a 5 ms link)."""
        sim = self.started._sim
        if self.settings.sync and self.settings.resync == "rollback":
            self._snapshots.append((self._twin_t, sim.snapshot(), False, self._servo.copy()))
        remaining = num_steps
        truth_every = max(1, int(round(self.settings.truth_period_s / self.physics_dt))) if self.settings.log_truth else 0
        history_every = max(1, int(round(self.settings.history_period_s / self.physics_dt)))
        done = 0
        while remaining > 0:
            t = self._twin_t
            if truth_every and done % truth_every == 0:
                self._log_truth(self.clock.now())
            changed = False
            while self._pending and self._pending[0][0] <= t + 1e-12:
                _, target, seq = self._pending.popleft()
                changed |= self._servo.set(t, target)
                self.commands.applied_in_twin(t, target, seq)
            if changed or self._servo.moving(t):
                sim.set_command(JointCommand(target_q=self._servo.step_target(t, self.physics_dt)))
            # Steps until the next queued command is due go in one advance call (one at a time on a ramp).
            n = 1 if self._servo.moving(t + self.physics_dt) else remaining
            if self._pending:
                n = min(n, max(1, int(np.ceil((self._pending[0][0] - t) / self.physics_dt - 1e-9))))
            if truth_every:
                n = min(n, truth_every - done % truth_every)
            n = min(n, history_every - done % history_every)
            sim.advance(n)
            done += n
            self._twin_t = t + n * self.physics_dt
            if self.clock.is_virtual:
                self.clock.advance(n * self.physics_dt)
            remaining -= n
            if remaining > 0 and done % history_every == 0:
                self._remember_twin(self._twin_t, sim.get_state())
        self._record_twin(self._twin_t, sim.get_state())
