"""Physics step throughput: the vlatwin step loop vs raw Newton XPBD on the same stage, in one run.

Both loops run the default scene (arm + 10 objects) at its 600 Hz step with 4 XPBD iterations and
CPU/GPU graph capture. The raw loop is Newton's own example pattern (a graph of two steps with a
state swap, launched in a loop); the vlatwin loop is ``SimBackendNewton.step`` with new joint targets
every 10 steps (60 Hz control), as a policy or the twin drives it. Rounds alternate so machine noise
hits both; the ratio of medians is what to read.

    python benchmarks/physics.py [--config configs/tabletop.yaml] [--steps 6000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def raw_newton_loop(stage_path: Path, steps: int, dt: float, iterations: int, contact_capacity: int):
    """Newton's reference loop, returned as a callable that runs ``steps`` steps and returns seconds."""
    import newton
    import warp as wp

    builder = newton.ModelBuilder()
    builder.add_usd(
        str(stage_path),
        enable_self_collisions=False,
        schema_resolvers=[newton.usd.SchemaResolverNewton(), newton.usd.SchemaResolverPhysx()],
    )
    model = builder.finalize()
    solver = newton.solvers.SolverXPBD(model, iterations=iterations)
    state_0, state_1 = model.state(), model.state()
    control = model.control()
    # Same collision setup as vlatwin (explicit pairs, same contact capacity), so the ratio measures
    # vlatwin's own overhead. (Newton's default capacity for this scene, 1815 slots, is ~35 % slower.)
    pipeline = newton.CollisionPipeline(model, broad_phase="explicit", rigid_contact_max=contact_capacity)
    contacts = pipeline.contacts()
    newton.eval_fk(model, model.joint_q, model.joint_qd, state_0)

    def simulate():
        nonlocal state_0, state_1
        for _ in range(2):
            state_0.clear_forces()
            pipeline.collide(state_0, contacts)
            solver.step(state_0, state_1, control, contacts, dt)
            state_0, state_1 = state_1, state_0

    simulate()  # compile outside the capture
    with wp.ScopedCapture() as capture:
        simulate()
    graph = capture.graph

    def run() -> float:
        wp.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps // 2):
            wp.capture_launch(graph)
        wp.synchronize()
        return time.perf_counter() - t0

    def sane() -> bool:
        """The raw loop really simulated: finite state, free objects still above the floor."""
        body_q = state_0.body_q.numpy()
        return bool(np.all(np.isfinite(body_q)) and body_q[:, 2].min() > -0.01)

    run.sane = sane
    return run


def vlatwin_loop(stage_path: Path, steps: int, dt: float, iterations: int):
    """The vlatwin backend with 60 Hz target updates."""
    import warp as wp

    from vlatwin.sim.factory import make_backend
    from vlatwin.sim.runner import CONTROL_PERIOD_STEPS, motion_targets
    from vlatwin.sim.types import JointCommand

    sim = make_backend("newton", physics_dt=dt, solver_iterations=iterations)
    info = sim.load(stage_path)
    home = sim.reset().joint_q
    arm = np.array(["finger" not in name for name in info.joint_names])
    commands = [
        JointCommand(target_q=motion_targets("sine", home, arm, k * CONTROL_PERIOD_STEPS * dt))
        for k in range(steps // CONTROL_PERIOD_STEPS)
    ]

    def run() -> float:
        sim.reset()
        wp.synchronize()
        t0 = time.perf_counter()
        for command in commands:
            # The same work as the raw loop: new targets, then physics (no state read-back).
            sim.set_command(command)
            sim.advance(CONTROL_PERIOD_STEPS)
        wp.synchronize()
        return time.perf_counter() - t0

    return run, sim._contact_capacity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/tabletop.yaml"))
    parser.add_argument("--steps", type=int, default=6000, help="steps per timed round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from vlatwin.config.loader import load_config
    from vlatwin.usd.scene_builder import write_scene

    import logging

    import warp

    warp.config.log_level = logging.WARNING  # no per-module compile lines in the report
    config = load_config(args.config)
    dt, iterations = config.scene.physics.dt, config.scene.physics.iterations
    with tempfile.TemporaryDirectory() as tmp:
        stage_path = write_scene(config.scene, Path(tmp) / "scene.usda")
        # vlatwin first: Warp CPU graphs hold raw kernel pointers, so every module must be loaded before
        # the last graph is captured (a module loaded later can replace code a captured graph calls).
        vlatwin, capacity = vlatwin_loop(stage_path, args.steps, dt, iterations)
        loops = {"raw newton": raw_newton_loop(stage_path, args.steps, dt, iterations, capacity), "vlatwin": vlatwin}
        for run in loops.values():  # warm-up round
            run()
        times = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, run in loops.items():
                times[name].append(run())

    import warp as wp

    n_bodies = len(config.scene.objects)
    print(f"scene {args.config} (arm + {n_bodies} objects), dt {dt * 1e3:.3f} ms ({1 / dt:.0f} Hz), "
          f"XPBD {iterations} iterations, device {wp.get_preferred_device()}, {args.steps} steps x {args.rounds} rounds")
    medians = {}
    for name, samples in times.items():
        med = statistics.median(samples)
        medians[name] = med
        print(f"  {name:11s} {args.steps / med:9,.0f} steps/s   real-time factor {args.steps * dt / med:6.1f}x   "
              f"(min {args.steps / max(samples):,.0f}, max {args.steps / min(samples):,.0f})")
    if not loops["raw newton"].sane():
        print("  WARNING: the raw Newton loop ended in an invalid state; its rate is not comparable")
    ratio = medians["raw newton"] / medians["vlatwin"]
    print(f"  vlatwin / raw throughput ratio: {ratio:.3f} (goal >= 0.9); "
          f"vlatwin real-time factor {args.steps * dt / medians['vlatwin']:.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
