"""Physics step throughput: the vlatwin step loop vs raw Newton XPBD on the same stage, in one run.

Both loops run the default scene (arm + 10 objects) at its 600 Hz step with 4 XPBD iterations and
CPU/GPU graph capture, and both get the same new joint targets every 10 steps (60 Hz control), so they
simulate the same motion (checked: same final state). The raw loop is Newton's own example pattern (a
graph of two steps with a state swap, launched in a loop; targets written into the captured control
buffer with ``assign``); the vlatwin loop is ``SimBackendNewton.set_command`` + ``advance``, as a policy
or the twin drives it. Rounds alternate (and swap which loop goes first) so machine noise hits both;
read the median of the per-round ratios.

    python benchmarks/physics.py [--config configs/tabletop.yaml] [--steps 1200] [--rounds 25]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

CONTROL_PERIOD_STEPS = 10  # = vlatwin.sim.runner.CONTROL_PERIOD_STEPS (checked in vlatwin_loop)


def raw_newton_loop(stage_path: Path, targets: list[np.ndarray], dt: float, iterations: int, contact_capacity: int):
    """Newton's reference loop, returned as a callable that runs 10 steps per entry of ``targets`` (full
    ``joint_target_q`` arrays) and returns seconds."""
    import newton
    import warp as wp

    builder = newton.ModelBuilder()
    builder.add_usd(
        str(stage_path),
        enable_self_collisions=False,
        schema_resolvers=[newton.usd.SchemaResolverNewton(), newton.usd.SchemaResolverPhysx()],
    )
    # The backend re-frames revolute joints about x so XPBD reads small angles exactly (see
    # vlatwin.sim.newton_assets); without it the same targets drive the Panda through a different motion.
    from vlatwin.sim.newton_assets import align_revolute_axes_with_twist

    align_revolute_axes_with_twist(builder, wp, newton)
    model = builder.finalize()
    solver = newton.solvers.SolverXPBD(model, iterations=iterations)
    state_0, state_1 = model.state(), model.state()
    control = model.control()
    # Same collision setup as vlatwin (explicit pairs, same contact capacity), so the ratio measures
    # vlatwin's own overhead. (Newton's default capacity for this scene, 1815 slots, is ~35 % slower.)
    pipeline = newton.CollisionPipeline(model, broad_phase="explicit", rigid_contact_max=contact_capacity)
    contacts = pipeline.contacts()
    newton.eval_fk(model, model.joint_q, model.joint_qd, state_0)
    initial = (state_0.body_q.numpy().copy(), state_0.body_qd.numpy().copy(), control.joint_target_q.numpy().copy())

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

    target_q = control.joint_target_q
    launches = CONTROL_PERIOD_STEPS // 2

    def run() -> float:
        state_0.body_q.assign(initial[0])  # same start as vlatwin's reset (outside the timing)
        state_0.body_qd.assign(initial[1])
        wp.synchronize()
        t0 = time.perf_counter()
        for target in targets:
            target_q.assign(target)
            for _ in range(launches):
                wp.capture_launch(graph)
        wp.synchronize()
        elapsed = time.perf_counter() - t0
        target_q.assign(initial[2])
        return elapsed

    def sane() -> bool:
        """The raw loop really simulated: finite state, free objects still above the floor."""
        body_q = state_0.body_q.numpy()
        return bool(np.all(np.isfinite(body_q)) and body_q[:, 2].min() > -0.01)

    run.sane = sane
    run.body_q = lambda: state_0.body_q.numpy().copy()
    # Warp CPU graphs replay raw pointers: the arrays they touch must outlive this function (freed
    # buffers get reused by the next model built in this process, which corrupts or crashes the replay).
    run.keep_alive = (model, solver, pipeline, contacts, control, simulate)
    return run


def vlatwin_loop(stage_path: Path, steps: int, dt: float, iterations: int):
    """The vlatwin backend with 60 Hz target updates: (run, contact capacity, the full target arrays it writes,
    final body poses)."""
    import warp as wp

    from vlatwin.sim.factory import make_backend
    from vlatwin.sim import runner
    from vlatwin.sim.runner import motion_targets
    from vlatwin.sim.types import JointCommand

    assert runner.CONTROL_PERIOD_STEPS == CONTROL_PERIOD_STEPS

    sim = make_backend("newton", physics_dt=dt, solver_iterations=iterations)
    info = sim.load(stage_path)
    home = sim.reset().joint_q
    arm = np.array(["finger" not in name for name in info.joint_names])
    commands = [
        JointCommand(target_q=motion_targets("sine", home, arm, k * CONTROL_PERIOD_STEPS * dt))
        for k in range(steps // CONTROL_PERIOD_STEPS)
    ]
    full_targets = []  # what set_command writes, for the raw loop
    for command in commands:
        sim.set_command(command)
        full_targets.append(sim.control.joint_target_q.numpy().copy())

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

    return run, sim._contact_capacity, full_targets, lambda: sim.state.body_q.numpy().copy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/tabletop.yaml"))
    parser.add_argument("--steps", type=int, default=1200, help="steps per timed round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=25, help="short alternating rounds resist machine noise (default: %(default)s)")
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
        vlatwin, capacity, targets, vlatwin_body_q = vlatwin_loop(stage_path, args.steps, dt, iterations)
        loops = {"raw newton": raw_newton_loop(stage_path, targets, dt, iterations, capacity), "vlatwin": vlatwin}
        for run in loops.values():  # warm-up round
            run()
        same_motion = np.array_equal(loops["raw newton"].body_q(), vlatwin_body_q())
        times = {name: [] for name in loops}
        for r in range(args.rounds):
            for name in list(loops)[:: 1 if r % 2 == 0 else -1]:
                times[name].append(loops[name]())

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
    if not same_motion:
        print("  WARNING: the two loops ended in different states; they did not simulate the same motion")
    ratios = [raw / mine for raw, mine in zip(times["raw newton"], times["vlatwin"])]
    ratio = statistics.median(ratios)
    q1, q3 = np.percentile(ratios, [25, 75])
    print(f"  per-round ratios: quartiles {q1:.3f} .. {q3:.3f} over {len(ratios)} rounds; same final state: {same_motion}")
    print(f"  vlatwin / raw throughput ratio (median of rounds): {ratio:.3f} (goal >= 0.9); "
          f"vlatwin real-time factor {args.steps * dt / medians['vlatwin']:.1f}x (goal >= 20x)")
    rtf, raw_rtf = args.steps * dt / medians["vlatwin"], args.steps * dt / medians["raw newton"]
    print(f"  ratio >= 0.9: {'met' if ratio >= 0.9 else 'not met'}"
          + ("" if same_motion else " (but the loops did not simulate the same motion: not comparable)")
          + f"; real-time factor >= 20x: {'met' if rtf >= 20 else 'not met'}"
          + ("" if rtf >= 20 else f" (raw Newton itself runs {raw_rtf:.1f}x real time on this CPU: the goal needs a faster core or a GPU)"))


if __name__ == "__main__":
    main()
