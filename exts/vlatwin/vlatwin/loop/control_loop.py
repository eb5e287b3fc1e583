"""The control loop: one clock that steps physics at the physics rate, runs the controller at the control
rate (decimation), captures sensors at their rates, and calls the policy, safety gate and recorders.

Per control step (the "picture in words"): sensors due now start their captures (samples at later
times run as physics reaches them) -> the observation holds the state and the latest finished sensor
data -> the policy picks an action (or the next action of its chunk) -> the safety gate may clip or
reject it -> the controller turns it into a joint command -> physics advances one control period ->
recorders get the step. Everything random is drawn from (seed, episode), so a run repeats exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.loop.scheduler import CaptureRun
from vlatwin.sensors.base import Sensor
from vlatwin.sim.types import JointCommand, SimState


@dataclass
class Observation:
    """What the policy sees at a control step."""

    time: float
    """Simulated time [s]."""
    step: int
    """Control steps since reset."""
    state: SimState
    sensors: dict[str, Any] = field(default_factory=dict)
    """Latest finished capture per sensor name."""
    sensor_times: dict[str, float] = field(default_factory=dict)
    """Start time [s] of each sensor's latest finished capture (how old the data is)."""
    instruction: str | None = None


@dataclass
class LoopStep:
    """One control step, as recorders receive it."""

    observation: Observation
    action: np.ndarray | None
    """The action the controller executed (after the safety gate)."""
    raw_action: np.ndarray | None
    """What the policy asked for (before the safety gate)."""
    command: JointCommand | None
    next_state: SimState
    events: list[str] = field(default_factory=list)
    """Safety-gate and executor messages (clipped/rejected/held actions with reasons)."""
    policy_queried: bool = False
    """The policy was asked at this step (a new chunk)."""
    policy_latency_ms: float | None = None
    """Wall-clock time of that call [ms]."""


def reset_policy(policy, episode: int | None) -> None:
    """``policy.reset(episode=...)`` where the policy takes the episode (seeded policies), else ``reset()``."""
    import inspect

    try:
        takes_episode = "episode" in inspect.signature(policy.reset).parameters
    except (TypeError, ValueError):
        takes_episode = False
    if takes_episode:
        policy.reset(episode=episode)
    else:
        policy.reset()


class Policy(Protocol):
    def reset(self, episode: int | None = None) -> None: ...

    def act(self, observation: Observation) -> np.ndarray:
        """One action (D,) or a chunk (H, D) executed open-loop before the policy is asked again."""


SafetyGate = Callable[[np.ndarray, Observation], tuple[np.ndarray | None, list[str]]]
"""(action, observation) -> (action to execute or None to hold, event messages)."""


class ControlLoop:
    """Run a :class:`SimBackend` under one clock with sensors, policy, safety gate, controller, recorders.

    Args:
        sim: a loaded backend.
        control_hz: control rate; ``1 / (control_hz * physics_dt)`` must be a whole number of physics steps.
        sensors: sensors captured at the control rate, or every ``round(control_hz / sensor.rate_hz)``
            control steps when a sensor sets ``rate_hz``.
        controller: maps actions to :class:`JointCommand` (see :mod:`vlatwin.control`); None: actions are
            joint position targets.
        policy: asked for an action when :meth:`step` gets none.
        safety: a gate between policy and controller.
        recorders: callables receiving each :class:`LoopStep`.
        refit: called once per physics step at which sensors sample (Newton: refit the ray-tracing BVH);
            default: ``sim.refit_render_scene``.
        execution: how the policy's chunks are executed (replan interval, temporal ensembling, real-time
            latency; :class:`~vlatwin.policy.chunking.ExecutionCfg`). Default: each chunk whole, then ask again.
    """

    def __init__(
        self,
        sim,
        *,
        control_hz: float,
        sensors: Sequence[Sensor] = (),
        controller=None,
        policy: Policy | None = None,
        safety: SafetyGate | None = None,
        recorders: Sequence[Callable[[LoopStep], None]] = (),
        refit: Callable[[], None] | None = None,
        execution=None,
    ):
        if not control_hz > 0:
            raise VlatwinError(f"control rate must be positive, got {control_hz} Hz")
        physics_hz = 1.0 / sim.physics_dt
        decimation = physics_hz / control_hz
        if abs(decimation - round(decimation)) > 1e-6 or round(decimation) < 1:
            raise VlatwinError(
                f"control rate {control_hz} Hz does not divide the physics rate {physics_hz:.6g} Hz into whole steps; "
                f"choose e.g. {physics_hz / max(1, round(decimation)):.6g} Hz"
            )
        self.sim = sim
        self.control_hz = float(control_hz)
        self.decimation = int(round(decimation))
        self.sensors = list(sensors)
        self._sensor_period = []
        for sensor in self.sensors:
            rate = getattr(sensor, "rate_hz", None)
            period = 1 if rate is None else round(control_hz / rate)
            if rate is not None and (period < 1 or abs(control_hz / rate - period) > 1e-6):
                raise VlatwinError(f"sensor {sensor.name}: rate {rate} Hz must divide the control rate {control_hz} Hz")
            self._sensor_period.append(period)
        self.controller = controller
        self.execution = execution
        self.policy = policy
        self.safety = safety
        self.recorders = list(recorders)
        self._refit = refit if refit is not None else sim.refit_render_scene
        self.instruction: str | None = None
        self._runs: list[CaptureRun] = []
        self._latest: dict[str, Any] = {}
        self._latest_time: dict[str, float] = {}

    # ----------------------------------------------------------------- episode
    def reset(
        self,
        *,
        seed: int = 0,
        episode: int = 0,
        instruction: str | None = None,
        setup: Callable[[Any], SimState | None] | None = None,
    ) -> Observation:
        """Reset the simulation (``sim.reset(seed)``), the controller and policy; capture the first observation.

        ``setup(sim)`` runs right after the simulator's reset, to put the episode's initial state in place
        (e.g. :func:`vlatwin.tasks.initial_states.apply_initial_state`); it may return the new state.
        """
        state = self.sim.reset(seed=seed)
        if setup is not None:
            state = setup(self.sim) or self.sim.get_state()
        self._rng = np.random.default_rng([seed, episode])
        self._episode = episode
        self._control_step = 0
        self._runs, self._latest, self._latest_time = [], {}, {}
        self.instruction = instruction
        if self.controller is not None:
            self.controller.reset(state)
        if self.policy is not None:
            reset_policy(self.policy, episode)
        self.executor.reset()
        return self._observe(state)

    @property
    def policy(self):
        return self._policy

    @policy.setter
    def policy(self, policy) -> None:
        from vlatwin.policy.chunking import ChunkExecutor

        self._policy = policy
        spec = getattr(self.controller, "spec", None)
        self.executor = ChunkExecutor(
            policy, self.execution, control_dt=1.0 / self.control_hz, action_dim=None if spec is None else spec.dim,
        )

    def _observe(self, state: SimState | None = None) -> Observation:
        # A sensor still busy with its last capture (a scan longer than the control period) starts its next
        # one at the first due step after it finished, as a real spinning LIDAR fires scans back to back.
        busy = {id(sensor) for run in self._runs for sensor in run.sensors if sensor.name not in run.finished}
        due = [
            s for s, period in zip(self.sensors, self._sensor_period)
            if self._control_step % period == 0 and id(s) not in busy
        ]
        if due:
            self._runs.append(CaptureRun(self.sim, due, index=self._control_step, rng=self._rng, refit=self._refit))
            self._pump(self.sim.current_step)
        state = state if state is not None and state.step == self.sim.current_step else self.sim.get_state()
        return Observation(
            time=state.time,
            step=self._control_step,
            state=state,
            sensors=dict(self._latest),
            sensor_times=dict(self._latest_time),
            instruction=self.instruction,
        )

    def _pump(self, step: int) -> None:
        for run in self._runs:
            if run.next_step() == step:
                run.process(step)
            for name, data in run.results.items():
                self._latest[name] = data
                self._latest_time[name] = run._context.start_time
            run.results.clear()
        self._runs = [run for run in self._runs if not run.done]

    def _advance_to(self, target: int) -> None:
        """Step physics to ``target``, stopping at every pending sensor sample on the way."""
        while self.sim.current_step < target:
            pending = [s for s in (run.next_step() for run in self._runs) if s is not None and s <= target]
            stop = min([target, *pending])
            if stop > self.sim.current_step:
                self.sim.advance(stop - self.sim.current_step)
            self._pump(stop)

    def step(self, observation: Observation, action: np.ndarray | None = None) -> tuple[LoopStep, Observation]:
        """One control period from ``observation``: act, advance, observe. Returns (the step, next observation)."""
        raw = action
        events: list[str] = []
        queried, latency_ms = False, None
        if raw is None and self.policy is not None:
            decision = self.executor.next(observation)
            raw, queried, latency_ms = decision.action, decision.queried, decision.latency_ms
            events.extend(decision.events)
        executed = None if raw is None else np.asarray(raw, dtype=np.float64)
        if executed is not None and self.safety is not None:
            executed, gate_events = self.safety(executed, observation)
            events.extend(gate_events)
        command = None
        if executed is not None:
            if self.controller is not None:
                command = self.controller.compute(executed, observation.state)
            else:
                command = JointCommand(target_q=executed)
            self.sim.set_command(command)
        self._advance_to(self.sim.current_step + self.decimation)
        self._control_step += 1
        next_obs = self._observe()
        record = LoopStep(
            observation=observation, action=executed, raw_action=None if raw is None else np.asarray(raw),
            command=command, next_state=next_obs.state, events=events, policy_queried=queried,
            policy_latency_ms=latency_ms,
        )
        for recorder in self.recorders:
            recorder(record)
        return record, next_obs

    def run(self, control_steps: int, *, seed: int = 0, episode: int = 0, instruction: str | None = None, setup=None) -> list[LoopStep]:
        """Reset and run ``control_steps`` steps with the policy; returns every step."""
        obs = self.reset(seed=seed, episode=episode, instruction=instruction, setup=setup)
        steps = []
        for _ in range(control_steps):
            record, obs = self.step(obs)
            steps.append(record)
        return steps
