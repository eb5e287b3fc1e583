"""Headless simulation runs shared by ``vlatwin sim run`` and ``standalone/run_sim.py``."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sim.types import JointCommand, SimModelInfo, SimState

MOTIONS = ("hold", "sine")
CONTROL_PERIOD_STEPS = 10
"""Targets are updated every this many physics steps (60 Hz control at 600 Hz physics)."""


@dataclass
class SimRunResult:
    """What a run measured."""

    info: SimModelInfo
    final_state: SimState
    steps: int
    sim_time: float
    """[s]"""
    wall_time: float
    """Stepping wall time [s] (excludes load and kernel compilation)."""
    load_time: float
    """[s]"""
    last_target: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.wall_time if self.wall_time > 0 else float("inf")

    @property
    def real_time_factor(self) -> float:
        return self.sim_time / self.wall_time if self.wall_time > 0 else float("inf")

    def summary_lines(self) -> list[str]:
        """What the CLI and the standalone script print."""
        error = np.abs(self.final_state.joint_q - self.last_target)
        return [
            f"load: {self.load_time:.2f} s (includes kernel compilation on a cold cache)",
            f"stepped {self.steps} steps ({self.sim_time:.3f} s simulated, dt {self.info.physics_dt * 1e3:.3f} ms) "
            f"in {self.wall_time:.3f} s: {self.steps_per_second:,.0f} steps/s, real-time factor {self.real_time_factor:.1f}x",
            f"joint tracking error: max {error.max():.4f} (rad | m) over {len(error)} joints",
        ]


def resolve_stage(source: str | Path, workdir: Path):
    """A config (.yaml) is built into ``workdir``; a USD file is used as is. Returns (stage path, config or None)."""
    source = Path(source)
    if source.suffix in (".yaml", ".yml"):
        from vlatwin.config.loader import load_config
        from vlatwin.usd.scene_builder import write_scene

        config = load_config(source)
        return write_scene(config.scene, workdir / f"{source.stem}.usda", source=source), config
    if source.suffix in (".usd", ".usda", ".usdc"):
        if not source.is_file():
            raise VlatwinError(f"{source}: USD file not found")
        return source, None
    raise VlatwinError(f"{source}: expected a config (.yaml) or a USD stage (.usd/.usda/.usdc)")


def motion_targets(motion: str, home: np.ndarray, arm: np.ndarray, t: float) -> np.ndarray:
    """Joint targets at time ``t`` [s]: ``hold`` keeps home; ``sine`` swings each arm joint +-0.25 rad."""
    if motion == "hold":
        return home
    phase = np.arange(len(home)) * 0.7
    wave = 0.25 * np.sin(2.0 * np.pi * 0.5 * t + phase)
    return home + np.where(arm, wave, 0.0)


def run_simulation(
    source: str | Path,
    *,
    steps: int,
    backend: str = "newton",
    device: str | None = None,
    seed: int | None = None,
    motion: str = "hold",
    reset_joint_noise: float = 0.0,
    solver: str | None = None,
    progress: bool = True,
) -> SimRunResult:
    """Build/load a stage, reset, and step it ``steps`` times with the chosen target motion."""
    from vlatwin.sim.factory import make_backend

    if steps <= 0:
        raise VlatwinError(f"--steps must be positive, got {steps}")
    if motion not in MOTIONS:
        raise VlatwinError(f"unknown motion {motion!r}; choose one of: {', '.join(MOTIONS)}")
    with tempfile.TemporaryDirectory(prefix="vlatwin-sim-") as tmp:
        stage_path, config = resolve_stage(source, Path(tmp))
        kwargs = {"device": device}
        if solver is not None and backend == "newton":
            kwargs["solver"] = solver
        if reset_joint_noise:
            kwargs["reset_joint_noise"] = reset_joint_noise
        if config is not None:
            kwargs["physics_dt"] = config.scene.physics.dt
            kwargs["solver_iterations"] = config.scene.physics.iterations
            if backend == "newton":
                kwargs["solver"] = solver or config.scene.physics.solver
        t0 = time.perf_counter()
        sim = make_backend(backend, **kwargs)
        info = sim.load(stage_path)
        state = sim.reset(seed=seed)
        load_time = time.perf_counter() - t0

    home = state.joint_q.copy()
    arm = np.array(["finger" not in name for name in info.joint_names])
    bar = _progress(steps, progress)
    target = home
    done = 0
    t0 = time.perf_counter()
    try:
        while done < steps:
            chunk = min(CONTROL_PERIOD_STEPS, steps - done)
            target = motion_targets(motion, home, arm, done * info.physics_dt)
            sim.step(JointCommand(target_q=target), num_steps=chunk)
            done += chunk
            if bar is not None:
                bar.update(chunk)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    final = sim.get_state()
    sim.close()
    return SimRunResult(
        info=info,
        final_state=final,
        steps=steps,
        sim_time=steps * info.physics_dt,
        wall_time=wall,
        load_time=load_time,
        last_target=np.asarray(target),
    )


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="simulating", mininterval=0.5, dynamic_ncols=True)
