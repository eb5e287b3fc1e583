"""Windowed rollouts of the twin over a recording (multiple shooting), on one or more Newton processes.

The recording is cut into windows of a few hundred milliseconds to a few seconds. Each window starts the
twin from the measured joint state at its first sample and replays the targets the robot applied, so a
parameter error shows up as it does in the data instead of as drift accumulated from the first second,
and windows are independent: they spread over worker processes (one Newton backend each; Warp runs a
process's kernels on one core) and over ensemble members.

Time: step ``i`` of a window covers ``[t0 + i dt, t0 + (i + 1) dt)``. A target that takes effect inside a
step contributes to it in proportion to the part of the step it covers, which makes the rollout a
continuous function of the sensor delay (a shift of every target time) rather than a staircase a
finite-difference Jacobian could not see. A sample between step boundaries is read from the nearest
boundary's state extrapolated with its velocity.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sim.types import SimParams

__all__ = ["Window", "TwinDescription", "RolloutEngine", "RolloutPool", "make_windows"]

#: A rollout that leaves the simulator's range (XPBD blows up for absurd parameters) predicts this far from
#: everything [rad | m]: the optimizer sees a large, finite cost and steps back.
DIVERGED_PENALTY = 1.0
#: Time a window's start settles at its first pose with the candidate parameters [s] (XPBD joint stretch).
SETTLE_S = 0.0


@dataclass(frozen=True)
class Window:
    """One multiple-shooting window: the start state and the samples to predict."""

    t0: float
    """Start time [s] (a sample time)."""
    q0: np.ndarray
    """(J,) measured joint positions at ``t0`` (twin joint order)."""
    qd0: np.ndarray
    sample_t: np.ndarray
    """(S,) times [s] of the samples to predict (after ``t0``, inside the window)."""
    rows: np.ndarray
    """(S,) row indices of those samples in the recording."""


@dataclass(frozen=True)
class TwinDescription:
    """What the fitter needs to know about the twin (read once from a loaded backend)."""

    joint_names: tuple[str, ...]
    body_paths: tuple[str, ...]
    prismatic: np.ndarray
    """(J,) bool"""
    robot_bodies: np.ndarray
    """(B,) bool: bodies of the robot articulation (see :func:`_robot_bodies`)."""
    nominal: SimParams
    physics_dt: float


def make_windows(t: np.ndarray, q: np.ndarray, qd: np.ndarray, mask: np.ndarray, *, window_s: float,
                 sample_period_s: float = 0.0) -> list[Window]:
    """Cut the samples selected by ``mask`` ((N,) bool) into windows of at most ``window_s`` [s].

    A window starts at a selected sample (its measured state is the initial condition) and predicts the
    later selected samples, at least ``sample_period_s`` apart, until the next window starts. A run of
    unselected samples (held-out data) ends a window.
    """
    mask = np.asarray(mask, dtype=bool)
    runs = []
    idx = np.flatnonzero(mask)
    if idx.size:
        breaks = np.flatnonzero(np.diff(idx) > 1) + 1
        runs = np.split(idx, breaks)
    windows: list[Window] = []
    for run in runs:
        start = 0
        while start < run.size - 1:
            r0 = run[start]
            t_start = t[r0]
            chosen = []
            last = t_start
            i = start + 1
            while i < run.size and t[run[i]] - t_start < window_s:
                if t[run[i]] - last >= sample_period_s - 1e-9:
                    chosen.append(run[i])
                    last = t[run[i]]
                i += 1
            if chosen:
                rows = np.asarray(chosen, dtype=np.int64)
                windows.append(Window(float(t_start), q[r0].copy(), qd[r0].copy(), t[rows].astype(np.float64), rows))
            start = i if i > start + 1 else start + 1
    return windows


class RolloutEngine:
    """One Newton backend that simulates windows for given parameters."""

    def __init__(self, stage_path: str | Path, physics: dict, joint_names: tuple[str, ...]):
        from vlatwin.record.recorder import load_sim

        phys = {"dt": physics.get("dt"), "iterations": physics.get("iterations", 4), "solver": physics.get("solver", "xpbd")}
        self.sim = load_sim(Path(stage_path), phys)
        self.sim.reset(seed=0)
        self._base = self.sim.snapshot()
        info = self.sim.info
        self.dt = float(self.sim.physics_dt)
        self.sim_joints = tuple(info.joint_names)
        self.order = _match(joint_names, self.sim_joints)
        """Recording joint k -> simulator joint ``order[k]``."""
        self.description = TwinDescription(
            joint_names=self.sim_joints,
            body_paths=tuple(info.body_paths),
            prismatic=_prismatic(stage_path, self.sim_joints),
            robot_bodies=_robot_bodies(info),
            nominal=self.sim.get_params(),
            physics_dt=self.dt,
        )
        self._params_key = None
        self.settle_steps = int(round(SETTLE_S / self.dt))

    def set_params(self, params: SimParams) -> None:
        key = tuple(None if getattr(params, f) is None else getattr(params, f).tobytes() for f in SimParams.FIELDS)
        if key != self._params_key:
            self.sim.set_params(params)
            self._params_key = key

    def simulate(self, params: SimParams, delay: float, windows: list[Window], target_t: np.ndarray, target_q: np.ndarray) -> np.ndarray:
        """Predicted joint positions (sum of window samples, J) in recording joint order; rows of diverged
        windows are :data:`DIVERGED_PENALTY` away from their start state."""
        from vlatwin.sim.newton import SimulationDivergedError

        self.set_params(params)
        out = []
        for w in windows:
            try:
                out.append(self._window(w, delay, target_t, target_q))
            except SimulationDivergedError:
                out.append(np.tile(w.q0 + DIVERGED_PENALTY, (len(w.sample_t), 1)))
        return np.concatenate(out, axis=0) if out else np.zeros((0, len(self.order)))

    def _window(self, w: Window, delay: float, target_t: np.ndarray, target_q: np.ndarray) -> np.ndarray:
        from vlatwin.sim.types import JointCommand

        sim, dt, order = self.sim, self.dt, self.order
        n_sim = len(self.sim_joints)
        sim.restore(self._base)
        q_full = np.asarray(sim.get_state().joint_q, dtype=np.float64)
        qd_full = np.zeros(n_sim)
        q_full[order] = w.q0
        qd_full[order] = w.qd0
        # XPBD bodies sit a little off their FK poses under load (joints stretch), by an amount that depends on the
        # parameters (gains, masses); writing exact FK poses makes the arm ring for seconds. So: settle at the
        # start pose with these parameters (what the robot did before the recording started), then put the
        # measured state there keeping that stretch.
        k0 = max(0, int(np.searchsorted(np.asarray(target_t, dtype=np.float64) + delay, w.t0, side="right")) - 1)
        hold_target = q_full.copy()
        hold_target[order] = target_q[k0]
        sim.set_joint_state(q_full, np.zeros(n_sim), hold=False)
        sim.set_command(JointCommand(target_q=hold_target))
        if self.settle_steps > 0:
            sim.advance(self.settle_steps)
        sim.set_joint_state(q_full, qd_full, hold=False, keep_constraint_error=True)
        times = np.asarray(target_t, dtype=np.float64) + delay
        full_targets = np.repeat(q_full[None], len(times), axis=0)
        full_targets[:, order] = target_q

        # The target in effect at t0, then each change inside the window as a blend over the step it falls in.
        k = max(0, int(np.searchsorted(times, w.t0, side="right")) - 1)
        commands: dict[int, np.ndarray] = {0: full_targets[k]}
        t_end = float(w.sample_t[-1])
        active = full_targets[k]
        j = k + 1
        while j < len(times) and times[j] < t_end:
            x = (times[j] - w.t0) / dt
            step = int(math.floor(x))
            # Every change inside this step: time-weighted mix of the targets the step saw.
            mix = np.zeros_like(active)
            covered = 0.0
            while j < len(times) and times[j] < t_end and int(math.floor((times[j] - w.t0) / dt)) == step:
                f = (times[j] - w.t0) / dt - step
                mix += (f - covered) * active
                covered = f
                active = full_targets[j]
                j += 1
            mix += (1.0 - covered) * active
            commands[step] = mix
            commands.setdefault(step + 1, active)
        n_read = np.maximum(np.rint((w.sample_t - w.t0) / dt).astype(np.int64), 0)
        stops = sorted(set(commands) | set(n_read.tolist()))
        reads: dict[int, list[int]] = {}
        for i, n in enumerate(n_read.tolist()):
            reads.setdefault(n, []).append(i)
        out = np.empty((len(w.sample_t), len(order)))
        done = 0
        for stop in stops:
            if stop > done:
                sim.advance(stop - done)
                done = stop
            if stop in reads:
                state = sim.get_state()
                q, qd = np.asarray(state.joint_q)[order], np.asarray(state.joint_qd)[order]
                for i in reads[stop]:
                    frac = (w.sample_t[i] - w.t0) / dt - stop
                    out[i] = q + frac * dt * qd
            if stop in commands:
                sim.set_command(JointCommand(target_q=commands[stop]))
        return out


def _match(names: tuple[str, ...], sim_names: tuple[str, ...]) -> np.ndarray:
    from vlatwin.control.base import match_joint_names

    try:
        return np.asarray(match_joint_names(list(names), list(sim_names)), dtype=np.int64)
    except (KeyError, ValueError, VlatwinError) as exc:
        raise VlatwinError(f"the recording's joints do not match the twin's: {exc}") from None


def _prismatic(stage_path, joint_paths) -> np.ndarray:
    from pxr import Usd, UsdPhysics

    stage = Usd.Stage.Open(str(stage_path))
    out = []
    for path in joint_paths:
        prim = stage.GetPrimAtPath(path)
        out.append(bool(prim and prim.IsA(UsdPhysics.PrismaticJoint)))
    return np.array(out, dtype=bool)


def _robot_bodies(info) -> np.ndarray:
    """Bodies under the articulation root, the welded base included: XPBD holds the base with a joint
    constraint, not an infinite mass, so the base's mass changes how the arm moves on it."""
    root = (info.articulation_root or "").rstrip("/")
    return np.array([bool(root) and p.startswith(root + "/") for p in info.body_paths], dtype=bool)


# ------------------------------------------------------------------------------------------- pool
_ENGINE: RolloutEngine | None = None


def _worker_init(stage_path: str, physics: dict, joint_names: tuple[str, ...], warp_cache: str | None) -> None:
    global _ENGINE
    if warp_cache:
        os.environ.setdefault("WARP_CACHE_PATH", warp_cache)
    _ENGINE = RolloutEngine(stage_path, physics, joint_names)


def _worker_run(jobs, windows, target_t, target_q):
    return [_ENGINE.simulate(p, d, windows, target_t, target_q) for p, d in jobs]


class RolloutPool:
    """Windows spread over ``workers`` processes (1: in this process), each with its own twin.

    :meth:`simulate_many` evaluates several parameter sets in one call (a finite-difference Jacobian or an
    ensemble): every worker runs all of them on its share of the windows.
    """

    def __init__(self, stage_path: str | Path, physics: dict, joint_names: tuple[str, ...], windows: list[Window],
                 target_t: np.ndarray, target_q: np.ndarray, *, workers: int = 1):
        self.windows = windows
        self.target_t, self.target_q = np.asarray(target_t, float), np.asarray(target_q, float)
        self.workers = max(1, int(workers))
        self.rollouts = 0
        self.seconds_simulated = 0.0
        self.local = RolloutEngine(stage_path, physics, joint_names)
        self.description = self.local.description
        self._executor = None
        if self.workers > 1:
            ctx = mp.get_context("spawn")
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers - 1, mp_context=ctx, initializer=_worker_init,
                initargs=(str(stage_path), dict(physics), tuple(joint_names), os.environ.get("WARP_CACHE_PATH")),
            )

    def simulate_many(self, jobs: list[tuple[SimParams, float]], windows: list[Window] | None = None) -> list[np.ndarray]:
        """One prediction array per (params, delay) job, rows in window order; jobs spread over the workers."""
        windows = self.windows if windows is None else windows
        self.rollouts += len(jobs)
        self.seconds_simulated += float(sum(w.sample_t[-1] - w.t0 for w in windows)) * len(jobs)
        if self._executor is None or len(jobs) < 2:
            return _worker_run_local(self.local, jobs, windows, self.target_t, self.target_q)
        chunks = [list(c) for c in np.array_split(np.arange(len(jobs)), min(self.workers, len(jobs)))]
        futures = [
            self._executor.submit(_worker_run, [jobs[i] for i in chunk], windows, self.target_t, self.target_q)
            for chunk in chunks[1:]
        ]
        out = _worker_run_local(self.local, [jobs[i] for i in chunks[0]], windows, self.target_t, self.target_q)
        for f in futures:
            out.extend(f.result())
        return out

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
        self.local.sim.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _worker_run_local(engine, jobs, windows, target_t, target_q):
    return [engine.simulate(p, d, windows, target_t, target_q) for p, d in jobs]
