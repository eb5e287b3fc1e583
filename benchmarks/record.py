"""Recording cost: `vlatwin record` (sim + render + encode + write a LeRobotDataset v3.0) against the same
episodes run through the loop without recording, in one run. Goal: >= 0.8x.

Both sides run the same work items of the same task with the same policy through the same
:class:`EpisodeWorker` (a random policy by default, so every episode has the same length and the number
does not depend on the expert's success); the recorder adds frame conversion, video encoding, stats,
parquet and the crash-safe episode commit.

    python benchmarks/record.py [--config configs/tasks/pick_red_cube.yaml] [--episodes 3] [--steps 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def loop_only(config_path: Path, episodes: int, steps: int, policy: str) -> tuple[float, int]:
    """Frames/s of the episodes without any writing (scene, sensors, controller and policy as record builds them)."""
    from vlatwin.config.loader import load_config
    from vlatwin.record.recorder import EpisodeWorker, Float32Actions, annotators_for, build_rig, make_policy, resolve_task
    from vlatwin.usd.scene_builder import write_scene

    config = load_config(config_path)
    task = resolve_task(config, config_path, None)
    physics = {"dt": config.scene.physics.dt, "iterations": config.scene.physics.iterations, "solver": config.scene.physics.solver}
    holder = {}

    def factory(sim, chain, controller):
        holder["policy"] = make_policy(policy, task=task, info=sim.info, chain=chain, spec=controller.spec, seed=0)
        return Float32Actions(holder["policy"])

    with tempfile.TemporaryDirectory() as tmp:
        stage = write_scene(config.scene, Path(tmp) / "scene.usda", source=config_path)
        rig = build_rig(stage, physics, list(config.scene.cameras), "ee_delta_pose", task.control_hz, annotators_for(()), policy_factory=factory)
        worker = EpisodeWorker(rig, task, holder["policy"], steps_cap=steps, camera_cfgs=list(config.scene.cameras))
        worker.run(0, 0)  # warm-up: kernels, buffers
        frames = 0
        t0 = time.perf_counter()
        for i in range(episodes):
            frames += len(worker.run(i, 0).outputs["frames"])
        elapsed = time.perf_counter() - t0
        rig.sim.close()
    return frames / elapsed, frames


def recorded(config_path: Path, episodes: int, steps: int, policy: str) -> tuple[float, int]:
    from vlatwin.record.recorder import record

    with tempfile.TemporaryDirectory() as tmp:
        # Warm-up run (kernels, encoder) outside the timing, then the timed one.
        record(config_path, Path(tmp) / "warm", policy=policy, episodes=1, max_steps=steps, keep_failed=True, progress=False)
        result = record(config_path, Path(tmp) / "ds", policy=policy, episodes=episodes, max_steps=steps, keep_failed=True, progress=False)
        elapsed = result.episode_time  # the episodes themselves; the loop side excludes set-up too
        import pyarrow.parquet as pq

        frames = pq.read_table(Path(tmp) / "ds" / "data" / "chunk-000" / "file-000.parquet").num_rows
        assert result.kept == episodes
    return frames / elapsed, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "tasks" / "pick_red_cube.yaml")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60, help="control steps per episode (default: %(default)s)")
    parser.add_argument("--policy", default="random", help="policy name (default: %(default)s)")
    args = parser.parse_args()
    base, n_base = loop_only(args.config, args.episodes, args.steps, args.policy)
    rec, n_rec = recorded(args.config, args.episodes, args.steps, args.policy)
    print(f"record benchmark: {args.config.name}, {args.episodes} episodes x {args.steps} control steps, policy {args.policy}")
    print(f"  loop only : {base:6.1f} frames/s ({n_base} frames)")
    print(f"  recording : {rec:6.1f} frames/s ({n_rec} frames: sim + render + encode + stats + write + commit)")
    print(f"  ratio recording/loop: {rec / base:.3f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
