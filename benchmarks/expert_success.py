"""Success of the scripted expert over each task's 50 fixed evaluation initial states, on Newton (CPU).

Per task: build the task's scene, then for every stored initial state apply it, run the expert through the
ControlLoop (``ee_delta_pose`` controller at the task's control rate) for up to ``task.max_steps`` control
steps, and judge with the task's SuccessTracker (the predicate must hold ``hold_steps`` consecutive steps;
an episode ends at its first success). Prints a Markdown table: task, successes/N, rate, mean episode
length (control steps, successes only), failure reasons (the expert's last phase / give-up reason).

    WARP_CACHE_PATH=~/.cache/vlatwin/warp python benchmarks/expert_success.py            # all tasks, 50 states
    python benchmarks/expert_success.py --tasks pick_red_cube --episodes 10 --iterations 16
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TASKS = ["reach_ball", "pick_red_cube", "place_cube_on_block", "push_cube_to_region", "stack_cubes", "close_gripper_on_cube"]


def run_task(name: str, *, episodes: int | None, iterations: int | None, verbose: bool) -> dict:
    from vlatwin.config.loader import load_config
    from vlatwin.control import make_controller
    from vlatwin.loop.control_loop import ControlLoop
    from vlatwin.policy.expert import ScriptedExpert, panda_tcp_chain
    from vlatwin.sim.newton import SimBackendNewton, SimulationDivergedError
    from vlatwin.tasks.factory import task_from_config
    from vlatwin.tasks.initial_states import apply_initial_state, load_initial_states
    from vlatwin.usd.scene_builder import write_scene

    config = load_config(REPO / "configs" / "tasks" / f"{name}.yaml")
    task = task_from_config(config)
    states = load_initial_states(config.task.init_states)[: episodes or None]
    physics = config.scene.physics
    iters = iterations or physics.iterations
    with tempfile.TemporaryDirectory() as tmp:
        usda = write_scene(config.scene, Path(tmp) / f"{name}.usda")
        sim = SimBackendNewton(device="cpu", physics_dt=physics.dt, solver_iterations=iters, solver=physics.solver)
        info = sim.load(usda)
        chain = panda_tcp_chain(str(usda))
    control_dt = 1.0 / task.control_hz
    controller = make_controller("ee_delta_pose", info=info, chain=chain, control_dt=control_dt)
    expert = ScriptedExpert.for_task(task, info, chain)
    loop = ControlLoop(sim, control_hz=task.control_hz, controller=controller, policy=expert)

    results = []
    t0 = time.time()
    for k, init in enumerate(states):
        obs = loop.reset(seed=0, episode=k, setup=lambda sim, init=init: apply_initial_state(sim, init))
        tracker = task.tracker()
        ok, steps, reason = False, task.max_steps, None
        try:
            for step in range(task.max_steps):
                _, obs = loop.step(obs)
                if tracker.update(task.success(obs.state, info), step + 1):
                    ok, steps = True, step + 1
                    break
        except SimulationDivergedError:
            reason = "simulation diverged"
        if not ok and reason is None:
            reason = f"{expert.failure or 'timeout'} (phase {expert.phase})"
        results.append((ok, steps, reason))
        if verbose:
            print(f"  {name} #{k} seed={init.seed}: {'OK' if ok else 'FAIL'} steps={steps} {reason or ''} "
                  f"phases={'>'.join(expert.history)}", flush=True)
    sim.close()
    n = len(results)
    succ = [r for r in results if r[0]]
    reasons = collections.Counter(r[2] for r in results if not r[0])
    return {
        "task": name,
        "iterations": iters,
        "n": n,
        "successes": len(succ),
        "rate": len(succ) / max(n, 1),
        "mean_len": float(np.mean([r[1] for r in succ])) if succ else float("nan"),
        "max_steps": task.max_steps,
        "reasons": "; ".join(f"{c}x {r}" for r, c in reasons.most_common()) or "-",
        "seconds": time.time() - t0,
    }


def markdown(rows: list[dict]) -> str:
    out = ["| task | XPBD iterations | successes | rate | mean episode length (steps, successes) | failure reasons |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['task']} | {r['iterations']} | {r['successes']}/{r['n']} | {100 * r['rate']:.0f} % | "
                   f"{r['mean_len']:.1f} / {r['max_steps']} | {r['reasons']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=TASKS)
    parser.add_argument("--episodes", type=int, default=None, help="first N initial states (default: all 50)")
    parser.add_argument("--iterations", type=int, default=None, help="override the scene's XPBD iterations")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for name in args.tasks:
        row = run_task(name, episodes=args.episodes, iterations=args.iterations, verbose=args.verbose)
        rows.append(row)
        print(f"{name}: {row['successes']}/{row['n']} in {row['seconds']:.0f} s", file=sys.stderr, flush=True)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
