"""``vlatwin twin replay``: re-simulate a twin run from its MCAP log.

The log carries the stage (attachment ``scene.usda``), the initial state, the physics settings and every
command that passed the safety monitor. Replay loads a fresh twin, applies the initial state and feeds
the safe commands at their send times plus a downlink delay (default: the run's last clock-sync
estimate; a scheduled command at the ``apply_time`` it was stamped with), through the robot servo's ramp
when it reported one (:mod:`vlatwin.hardware.servo`), open loop, and compares it with the robot states in the log: J = integral of
||q_robot - q_replay||^2 dt on the offset-corrected measurement times. It is what system identification
does with different parameters (``perturb`` changes the replay twin first).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError


@dataclass
class TwinReplayResult:
    J: float
    J_per_joint: dict[str, float]
    max_abs_error: float
    duration_s: float
    commands: int
    robot_states: int
    downlink_delay_s: float
    scheduled: int = 0
    """Commands replayed at their stamped ``apply_time`` (the rest at send time + ``downlink_delay_s``)."""


def replay_twin(log_path: str | Path, *, delay_s: float | None = None, perturb: Callable | None = None) -> TwinReplayResult:
    from vlatwin.hardware.servo import TargetRamp
    from vlatwin.record.recorder import load_sim
    from vlatwin.sim.types import JointCommand
    from vlatwin.tasks.base import InitialState
    from vlatwin.tasks.initial_states import apply_initial_state
    from vlatwin.twin.divergence import DivergenceMonitor
    from vlatwin.twin.runlog import read_runlog

    log_path = Path(log_path)
    if not log_path.is_file():
        raise VlatwinError(f"{log_path}: no such run log (vlatwin twin run writes OUT/run.mcap)")
    data = read_runlog(log_path)
    meta = data.metadata
    for key in ("physics", "initial_state", "joint_names", "control_hz"):
        if key not in meta:
            raise VlatwinError(f"{log_path}: the run log has no {key!r} metadata (not written by vlatwin twin run?)")
    if "scene.usda" not in data.attachments:
        raise VlatwinError(f"{log_path}: the run log has no scene.usda attachment")
    commands = data.messages("/command/safe")
    states = data.messages("/robot/state")
    if not states:
        raise VlatwinError(f"{log_path}: no robot states in the log")
    if delay_s is None:
        clocks = data.messages("/clock")
        delay_s = 0.5 * float(clocks[-1][1]["delay_s"]) if clocks else 0.0
    with tempfile.TemporaryDirectory(prefix="vlatwin-twin-replay-") as tmp:
        stage = Path(tmp) / "scene.usda"
        stage.write_bytes(data.attachments["scene.usda"])
        sim = load_sim(stage, meta["physics"])
        try:
            if perturb is not None:
                perturb(sim)
            state = apply_initial_state(sim, InitialState.from_dict(meta["initial_state"]), seed=int(meta.get("seed", 0)))
            t_twin0 = data.messages("/twin/state")[0][0] if data.messages("/twin/state") else states[0][0]
            dt = sim.physics_dt
            names = [p.rsplit("/", 1)[-1] for p in meta["joint_names"]]
            monitor = DivergenceMonitor(alarm_rms=float("inf"), window_s=0.5, joint_names=names)
            t = t_twin0
            ci = 0
            servo = TargetRamp(np.asarray(state.joint_q, float), _servo_ramp(meta, states))
            hist_t, hist_q = [t], [np.asarray(state.joint_q, float)]
            t_end = max(states[-1][1].get("t_meas", states[-1][0]), commands[-1][0] if commands else t)
            due = sorted(
                ((float(msg["apply_time"]) if msg.get("apply_time") is not None else t_send + delay_s, k)
                 for k, (t_send, msg) in enumerate(commands)),
            )
            while t < t_end:
                changed = False
                while ci < len(due) and due[ci][0] <= t + 1e-12:
                    changed |= servo.set(t, np.asarray(commands[due[ci][1]][1]["target_q"], float))
                    ci += 1
                if changed or servo.moving(t):
                    sim.set_command(JointCommand(target_q=servo.step_target(t, dt)))
                sim.advance(1)
                t += dt
                hist_t.append(t)
                hist_q.append(np.asarray(sim.get_state().joint_q, float))
        finally:
            close = getattr(sim, "close", None)
            if close is not None:
                close()
    ts, qs = np.asarray(hist_t), np.stack(hist_q)
    for _, msg in states:
        tm = float(msg.get("t_meas", msg["host_time"]))
        if tm < ts[0] or tm > ts[-1]:
            continue
        q_rep = np.array([np.interp(tm, ts, qs[:, j]) for j in range(qs.shape[1])])
        monitor.add(tm, np.asarray(msg["joint_q"], float), q_rep)
    return TwinReplayResult(
        J=float(monitor.J), J_per_joint=dict(monitor.J_per_joint), max_abs_error=float(np.max(monitor.max_abs)) if len(states) else 0.0,
        duration_s=float(ts[-1] - ts[0]), commands=len(commands), robot_states=len(states), downlink_delay_s=float(delay_s),
        scheduled=sum(1 for _, msg in commands if msg.get("apply_time") is not None),
    )


def _servo_ramp(meta: dict, states: list) -> float:
    """The robot servo's ramp [s]: the run's setting, else what the robot reported (0: steps)."""
    ramp = (meta.get("settings") or {}).get("servo_ramp_s")
    if ramp is None:
        ramp = ((states[0][1].get("status") or {}).get("servo_ramp_s") if states else None)
    return float(ramp) if isinstance(ramp, (int, float)) and np.isfinite(ramp) and ramp > 0 else 0.0
