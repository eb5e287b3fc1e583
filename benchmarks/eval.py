"""``vlatwin eval`` against the bare control loop, and a policy round trip over ``vlatwin serve``, in one run.

1. Env-steps/s of ``evaluate`` with the scripted expert (no video: episode files, success checks, latency
   bookkeeping, results.json, report.html) vs the same episodes run by hand on a bare ``ControlLoop`` with
   the same expert and initial states. Goal >= 0.9x. Both count only the time inside episodes plus, for
   eval, the results and report it writes.
2. Policy round trip over ``PolicyServer`` (openpi protocol) for a 224x224x3 image + state vs a raw websocket
   echo of the same bytes (``benchmarks/eval_wire.py``). Goal >= 0.8x the echo rate; p50 / p99 printed.

Speed is never asserted in tests; this prints what it measured on this machine (shared and noisy: compare
numbers of one run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def bare_loop(config: Path, episodes: int) -> tuple[int, float]:
    """(control steps, seconds) of the expert's episodes on a bare ControlLoop (what eval does, minus eval)."""
    from vlatwin.eval.setup import load_task_setup
    from vlatwin.policy.factory import make_policy_from_spec
    from vlatwin.record.recorder import build_rig, episode_seeds
    from vlatwin.tasks.initial_states import task_initial_states

    setup = load_task_setup(config)
    try:
        task = setup.task
        states = task_initial_states(task)
        policy = make_policy_from_spec("expert", setup.context)
        rig = build_rig(setup.stage_path, setup.physics, [], "ee_delta_pose", task.control_hz, ["rgb"], sim=setup.sim, policy=policy)
        info = setup.sim.info
        steps, t0 = 0, time.perf_counter()
        for i in range(episodes):
            rig.started.initial_state = states[i % len(states)]
            sim_seed, _ = episode_seeds(0, i)
            obs = rig.loop.reset(seed=sim_seed, episode=i)
            tracker = task.tracker()
            for k in range(task.max_steps):
                step, obs = rig.loop.step(obs)
                steps += 1
                if tracker.update(bool(task.success(step.next_state, info)), k):
                    break
        return steps, time.perf_counter() - t0
    finally:
        setup.close()


def eval_run(config: Path, episodes: int, out: Path) -> tuple[int, float]:
    """(control steps, seconds) of ``evaluate``: its episodes plus writing results.json and report.html."""
    from vlatwin.eval.runner import EvalSettings, evaluate

    result = evaluate(config, out, EvalSettings(policy="expert", episodes=episodes, video=False), progress=False)
    return result.env_steps, result.episode_time + result.post_time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "tasks" / "reach_ball.yaml")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--skip-wire", action="store_true")
    args = parser.parse_args(argv)

    bare_loop(args.config, 1)  # warm-up: kernels, caches
    b_steps, b_time = bare_loop(args.config, args.episodes)
    with tempfile.TemporaryDirectory() as tmp:
        e_steps, e_time = eval_run(args.config, args.episodes, Path(tmp) / "eval")
    bare_rate, eval_rate = b_steps / b_time, e_steps / e_time
    print(f"bare loop : {b_steps} steps in {b_time:.2f} s = {bare_rate:.1f} env-steps/s")
    print(f"vlatwin eval: {e_steps} steps in {e_time:.2f} s = {eval_rate:.1f} env-steps/s (episodes + results + report)")
    print(f"eval / bare = {eval_rate / bare_rate:.2f}x (goal >= 0.9x)")
    if not args.skip_wire:
        from eval_wire import run_round_trip

        wire = run_round_trip(n=args.round_trips)
        for key, value in wire.items():
            print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
