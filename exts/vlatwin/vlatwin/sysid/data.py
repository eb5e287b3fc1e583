"""Recordings for system identification: measured joint states and the targets the robot applied.

A :class:`Recording` is what a fit needs from a run, whatever wrote it:

* measured joint positions/velocities at their measurement times,
* the input: the joint position targets the robot's servo tracked and when each took effect,
* where the twin comes from (the stage the run used, its physics settings),
* and, for the fidelity report, what else the run logged (clock sync, latency, safety events).

Times are on one clock per recording. A twin run log (MCAP, :mod:`vlatwin.twin.runlog`) holds every
robot state with the robot's own timestamp; when the robot reports the target it was tracking (libfranka's
``q_d``, :attr:`~vlatwin.hardware.base.RobotObservation.joint_q_desired`, with ``status.target_time``), the
input is exact and the whole fit runs on the robot clock (``input_source = "robot"``). An interpolating
servo's events (goal ``joint_q_goal``, ramp ``status.target_ramp_s``, :mod:`vlatwin.hardware.servo`) are
expanded into the drive targets of every physics step they span, so the rollouts replay the ramps exactly. Otherwise the
commands as sent are mapped onto the robot clock with the run's clock estimate and their delivery delay
is unknown (``input_source = "host"``): fit ``sensor_delay`` then. A LeRobotDataset v3 episode has frame
timestamps, ``observation.state`` and ``action``: ``action`` is taken as the joint targets of the joints it
names (``host`` input too).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vlatwin.errors import VlatwinError

__all__ = ["Recording", "load_recording", "recording_from_runlog", "recording_from_lerobot"]


@dataclass
class Recording:
    """Measured joint states and the applied joint targets of one run (see the module docstring)."""

    source: str
    """Where it came from (a path, for messages)."""
    joint_names: tuple[str, ...]
    """Joint prim paths (or names), the column order of every joint array."""
    t: np.ndarray
    """(N,) measurement times [s], increasing."""
    q: np.ndarray
    """(N, J) measured joint positions [rad | m]."""
    qd: np.ndarray
    """(N, J) measured joint velocities [rad/s | m/s]."""
    target_t: np.ndarray
    """(M,) times [s] at which each target took effect (same clock as :attr:`t`), increasing."""
    target_q: np.ndarray
    """(M, J) joint position targets [rad | m]; target k holds from ``target_t[k]`` until ``target_t[k+1]``."""
    input_source: str = "robot"
    """``robot``: the targets as the robot applied them (exact); ``host``: commands as sent (delay unknown)."""
    stage_path: Path | None = None
    """The twin's stage (from the run log's attachment, or given)."""
    physics: dict = field(default_factory=dict)
    """The run's physics settings (``dt``, ``iterations``, ``solver``)."""
    clock: dict | None = None
    """The run's last clock-sync estimate (``offset_s``, ``skew_ppm``, ``delay_s``, ``samples``)."""
    latency_s: np.ndarray | None = None
    """Measured one-way state latencies [s] (host receive time minus robot time mapped to the host clock)."""
    safety_events: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    images: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)
    """Camera frames of the same instant from both sides: (label "camera @ t s", robot RGB, twin RGB)."""
    point_clouds: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)
    """LIDAR clouds of the same instant from both sides: (label "lidar @ t s", robot (N, 3), twin (M, 3)) [m]."""
    effort: np.ndarray | None = None
    """(N, J) measured joint efforts [N*m | N] at the measurement times, or None."""
    effort_kind: str | None = None
    """What :attr:`effort` measures: ``drive`` (the output of the servo's PD law, e.g. motor current: a fit can
    read the drive gains from it), ``link`` (a link-side torque sensor: inertia and gravity included) or None."""
    q_desired: np.ndarray | None = None
    """(N, J) the target the servo tracked at each measurement [rad | m] (the robot's report), or None."""

    def __post_init__(self) -> None:
        n, j = len(self.t), len(self.joint_names)
        checks = {"t": (self.t, (n,)), "q": (self.q, (n, j)), "qd": (self.qd, (n, j)),
                  "target_q": (self.target_q, (len(self.target_t), j))}
        for name in ("effort", "q_desired"):
            if getattr(self, name) is not None:
                checks[name] = (getattr(self, name), (n, j))
        for name, (value, shape) in checks.items():
            if np.shape(value) != shape:
                raise VlatwinError(f"{self.source}: recording field {name} has shape {np.shape(value)}, expected {shape}")
        for name in ("t", "q", "target_t", "target_q"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if not np.isfinite(value).all():
                raise VlatwinError(f"{self.source}: recording field {name} has NaN/Inf values")
            setattr(self, name, value)
        self.qd = np.nan_to_num(np.asarray(self.qd, dtype=np.float64))
        if n < 2:
            raise VlatwinError(f"{self.source}: the recording holds {n} robot states; a fit needs a trajectory")
        if len(self.target_t) == 0:
            raise VlatwinError(f"{self.source}: the recording holds no joint targets (commands); nothing drove the robot")
        if np.any(np.diff(self.t) <= 0) or np.any(np.diff(self.target_t) < 0):
            raise VlatwinError(f"{self.source}: recording times are not increasing")

    @property
    def duration(self) -> float:
        """[s]"""
        return float(self.t[-1] - self.t[0])

    def target_at(self, t: float) -> np.ndarray:
        """The target in effect at time ``t`` [s] (the first one before the first change)."""
        k = max(0, int(np.searchsorted(self.target_t, t, side="right")) - 1)
        return self.target_q[k]

    def slice(self, t0: float, t1: float) -> Recording:
        """The samples with ``t0 <= t < t1`` (targets kept whole: a window needs the one in effect at its start)."""
        keep = (self.t >= t0) & (self.t < t1)
        rows = {name: getattr(self, name)[keep] for name in ("effort", "q_desired") if getattr(self, name) is not None}
        return replace(self, t=self.t[keep], q=self.q[keep], qd=self.qd[keep], **rows)

    def moving_joints(self, min_range: float = 0.02) -> np.ndarray:
        """(J,) bool: joints whose measured position spans more than ``min_range`` [rad | m]."""
        return np.ptp(self.q, axis=0) > min_range


def load_recording(path: str | Path, *, stage: str | Path | None = None, episode: int = 0) -> Recording:
    """A run log (``.mcap``) or a LeRobotDataset v3 folder (``episode``); ``stage`` overrides the twin's stage."""
    path = Path(path)
    if not path.exists():
        raise VlatwinError(f"{path}: no such recording (a twin run log .mcap or a LeRobotDataset v3 folder)")
    if path.is_dir():
        rec = recording_from_lerobot(path, episode=episode)
    elif path.suffix.lower() == ".mcap":
        rec = recording_from_runlog(path)
    else:
        raise VlatwinError(f"{path}: unknown recording type; give a twin run log (.mcap) or a LeRobotDataset v3 folder")
    if stage is not None:
        stage = Path(stage)
        if not stage.is_file():
            raise VlatwinError(f"--stage {stage}: no such USD file")
        rec.stage_path = stage
    if rec.stage_path is None:
        raise VlatwinError(f"{path}: the recording names no twin stage; pass --stage STAGE.usda")
    return rec


# ---------------------------------------------------------------------------------------- MCAP
def recording_from_runlog(path: str | Path) -> Recording:
    """The robot's state stream and applied targets from a ``vlatwin twin run`` log."""
    from vlatwin.twin.runlog import read_runlog

    path = Path(path)
    try:
        data = read_runlog(path)
    except VlatwinError:
        raise
    except Exception as exc:  # a file that is not MCAP at all
        raise VlatwinError(f"{path}: not a readable MCAP run log ({exc})") from None
    meta = data.metadata
    joint_names = tuple(meta.get("joint_names") or ())
    states = data.messages("/robot/state")
    if not joint_names:
        raise VlatwinError(f"{path}: the run log's metadata names no joints (not written by vlatwin twin run?)")
    if len(states) < 2:
        raise VlatwinError(f"{path}: the run log holds {len(states)} /robot/state messages; a fit needs the robot's state stream")
    # States arrive out of order over a jittery link: sort by the robot's own clock, drop duplicates.
    by_time: dict[float, dict] = {}
    for _, msg in states:
        rt = msg.get("robot_time")
        if rt is not None and msg.get("joint_q") is not None:
            by_time.setdefault(float(rt), msg)
    times = np.array(sorted(by_time))
    msgs = [by_time[t] for t in times]
    q = np.array([_vector(m["joint_q"], "joint_q", path) for m in msgs])
    qd = np.array([_vector(m.get("joint_qd") or [math.nan] * q.shape[1], "joint_qd", path) for m in msgs])
    clock = _last(data, "/clock")

    has_desired = all(m.get("joint_q_desired") is not None and (m.get("status") or {}).get("target_time") is not None for m in msgs)
    if has_desired:
        # Each distinct target_time is one applied target (an interpolating servo's goal and ramp); a target seen in
        # several states is one entry, the latest state's: the state sampled at the instant a first command lands
        # reports the same target_time with the pose it held before (its gripper open where the command closes it).
        seen: dict[float, tuple[np.ndarray, float]] = {}
        for m in msgs:
            goal = m.get("joint_q_goal")
            ramp = (m["status"] or {}).get("target_ramp_s")
            seen[float(m["status"]["target_time"])] = (
                _vector(m["joint_q_desired"] if goal is None else goal, "joint_q_goal", path),
                float(ramp) if isinstance(ramp, (int, float)) and math.isfinite(ramp) and ramp > 0 else 0.0,
            )
        target_t = np.array(sorted(seen))
        target_q = np.array([seen[t][0] for t in target_t])
        ramps = np.array([seen[t][1] for t in target_t])
        dt = float(meta.get("physics_dt") or (meta.get("physics") or {}).get("dt") or 0.0)
        if np.any(ramps > 0) and dt > 0:
            from vlatwin.hardware.servo import expand_ramps

            target_t, target_q = expand_ramps(target_t, target_q, ramps, dt)
        q_desired = np.array([_vector(m["joint_q_desired"], "joint_q_desired", path) for m in msgs])
        source = "robot"
    else:
        q_desired = None
        commands = data.messages("/command/safe")
        if not commands:
            raise VlatwinError(
                f"{path}: the run log holds neither the robot's applied targets (joint_q_desired) nor /command/safe "
                "commands; a fit needs the input that drove the robot"
            )
        # Commands as sent, on the host clock, mapped onto the robot clock with the run's clock estimate.
        target_t = np.array([_to_robot(t, clock) for t, _ in commands])
        target_q = np.array([_vector(m["target_q"], "target_q", path) for _, m in commands])
        order = np.argsort(target_t, kind="stable")
        target_t, target_q = target_t[order], target_q[order]
        source = "host"

    effort, effort_kind = None, None
    if all(m.get("joint_effort") is not None for m in msgs):
        effort = np.array([_vector(m["joint_effort"], "joint_effort", path) for m in msgs])
        kinds = {str((m.get("status") or {}).get("effort")) for m in msgs}
        effort_kind = kinds.pop() if len(kinds) == 1 and None not in kinds and "None" not in kinds else None
        if not np.isfinite(effort).all():
            effort, effort_kind = None, None
    stage_path = None
    if "scene.usda" in data.attachments:
        folder = Path(tempfile.mkdtemp(prefix="vlatwin-sysid-"))
        stage_path = folder / "scene.usda"
        stage_path.write_bytes(data.attachments["scene.usda"])
    latency = None
    if clock is not None:
        host = np.array([float(m["host_time"]) for m in msgs if m.get("host_time") is not None])
        robot = np.array([float(m["robot_time"]) for m in msgs if m.get("host_time") is not None])
        if host.size:
            latency = host - np.array([_to_host(r, clock) for r in robot])
    return Recording(
        source=str(path), joint_names=joint_names, t=times, q=q, qd=qd, target_t=target_t, target_q=target_q,
        input_source=source, stage_path=stage_path, physics=dict(meta.get("physics") or {}), clock=clock,
        latency_s=latency,
        safety_events=[{"t": t, **m} for t, m in data.messages("/safety/event")],
        events=[{"t": t, **m} for t, m in data.messages("/events")],
        metadata=dict(meta),
        images=_pairs(data, "camera"),
        point_clouds=_pairs(data, "lidar"),
        effort=effort, effort_kind=effort_kind, q_desired=q_desired,
    )


def _pairs(data, kind: str, limit: int = 12) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Robot and twin camera frames (``kind`` "camera") or LIDAR clouds ("lidar") logged at the same host time,
    spread evenly over the run (at most ``limit``: the report embeds each pair)."""
    if kind == "camera":
        from vlatwin.twin.cameras import decode_image_message as decode
    else:
        from vlatwin.twin.lidars import decode_cloud_message as decode

    prefix = f"/robot/{kind}/"
    t0 = data.start_time or 0.0
    pairs = []
    for topic in sorted(data.topics):
        if not topic.startswith(prefix):
            continue
        name = topic[len(prefix):]
        twin = {round(t, 6): m for t, m in data.messages(f"/twin/{kind}/{name}")}
        pairs += [(t, name, m, twin[round(t, 6)]) for t, m in data.messages(topic) if round(t, 6) in twin]
    if len(pairs) > limit:
        pairs = [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, limit).round()]
    return [(f"{name} @ {t - t0:.2f} s", decode(robot), decode(twin)) for t, name, robot, twin in pairs]


def _vector(value: Any, name: str, path: Path) -> np.ndarray:
    arr = np.array([math.nan if v is None else float(v) for v in value], dtype=np.float64)
    return arr


def _last(data, topic: str) -> dict | None:
    msgs = data.messages(topic)
    return dict(msgs[-1][1]) if msgs else None


def _to_robot(t_host: float, clock: dict | None) -> float:
    """Host time [s] on the robot clock (the run log's convention, see :mod:`vlatwin.report.twin_report`)."""
    if not clock:
        return float(t_host)
    offset = float(clock.get("offset_s") or 0.0)
    skew = float(clock.get("skew_ppm") or 0.0) * 1e-6
    ref = float(clock.get("ref_s") or 0.0)
    return float(t_host) + offset + skew * (float(t_host) - ref)


def _to_host(t_robot: float, clock: dict | None) -> float:
    if not clock:
        return float(t_robot)
    offset = float(clock.get("offset_s") or 0.0)
    skew = float(clock.get("skew_ppm") or 0.0) * 1e-6
    ref = float(clock.get("ref_s") or 0.0)
    return (float(t_robot) - offset + skew * ref) / (1.0 + skew)


# ------------------------------------------------------------------------------------- LeRobot
def recording_from_lerobot(root: str | Path, *, episode: int = 0) -> Recording:
    """One LeRobotDataset v3 episode: ``observation.state`` as measured joints, ``action`` as joint targets.

    ``action`` entries whose names match joints (``panda_joint1`` ...) are targets for those joints from the
    frame's timestamp on; the other joints keep their first measured position as target (a gripper command
    in its own units is not a joint target). The frame rate bounds what can be identified: 20 Hz frames
    see little of a stiff drive's transient.
    """
    from vlatwin.record.replay import read_episode

    root = Path(root)
    info, row, cols = read_episode(root, episode)
    feats = info.get("features", {})
    for key in ("observation.state", "action", "timestamp"):
        if key not in cols:
            raise VlatwinError(f"{root}: episode {episode} has no {key!r} column; a fit needs states, actions and times")
    state_names = list(feats.get("observation.state", {}).get("names") or [])
    action_names = list(feats.get("action", {}).get("names") or [])
    q = np.asarray(np.stack(cols["observation.state"]), dtype=np.float64)
    if len(state_names) != q.shape[1]:
        raise VlatwinError(f"{root}: observation.state has {q.shape[1]} values but {len(state_names)} names in meta/info.json")
    action = np.asarray(np.stack(cols["action"]), dtype=np.float64)
    t = np.asarray(cols["timestamp"], dtype=np.float64)
    index = {name: i for i, name in enumerate(state_names)}
    mapped = [(a, index[name]) for a, name in enumerate(action_names) if name in index]
    if not mapped:
        raise VlatwinError(
            f"{root}: no action name matches a joint of observation.state ({', '.join(state_names)}); "
            "sysid needs joint position actions (action_space joint_pos)"
        )
    targets = np.repeat(q[:1], len(t), axis=0)
    for a, j in mapped:
        targets[:, j] = action[:, a]
    # A velocity from finite differences (the dataset stores positions only).
    qd = np.gradient(q, t, axis=0) if len(t) > 2 else np.zeros_like(q)
    # vlatwin record keeps the stage and its physics settings next to the dataset (meta/vlatwin/).
    stage = root / "meta" / "vlatwin" / "scene.usda"
    run_file = root / "meta" / "vlatwin" / "run.json"
    physics = {}
    if run_file.is_file():
        import json

        physics = dict(json.loads(run_file.read_text(encoding="utf-8")).get("physics") or {})
    return Recording(
        source=f"{root} (episode {episode})", joint_names=tuple(state_names), t=t, q=q, qd=qd,
        target_t=t.copy(), target_q=targets, input_source="host",
        stage_path=stage if stage.is_file() else None, physics=physics,
        metadata={"fps": info.get("fps"), "episode": episode},
    )
