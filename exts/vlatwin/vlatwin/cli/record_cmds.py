"""``vlatwin record`` and ``vlatwin replay``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(groups) -> None:
    rec = groups.add_parser(
        "record",
        help="record demonstrations as a LeRobotDataset v3.0",
        description="Run a policy (the scripted expert by default) on the config's task, episode after episode, and "
        "write a LeRobotDataset v3.0 (meta/info.json, stats.json, tasks.parquet, meta/episodes, data/*.parquet, "
        "videos/*.mp4) that LeRobot loaders open: observation.state (joint positions), observation.images.<camera>, "
        "action (as executed), plus object poses when the scene has objects. Episode i starts from an initial state "
        "drawn from (--seed, i). Every finished episode is durable; after a crash or kill -9, --resume continues and "
        "gives the dataset an uninterrupted run gives.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  vlatwin record configs/tasks/pick_red_cube.yaml --episodes 50 --out out/pick\n"
        "  vlatwin record configs/tasks/reach_ball.yaml --episodes 10 --out out/reach --keep-failed --extras depth\n"
        "  vlatwin replay out/pick --episode 3",
    )
    rec.add_argument("config", type=Path, help="YAML config with scene: and task: sections (e.g. configs/tasks/*.yaml)")
    rec.add_argument("--task", default=None, help="task name or type (default: the config's task:), or module:factory")
    rec.add_argument("--policy", default="expert", help="expert (scripted, default), noisy-expert?noise=STD, random, a VLA (hf://, openpi://, openvla://, lerobot://; see `vlatwin eval --help`), or module:factory")
    rec.add_argument("--episodes", type=int, default=10, help="episodes to run (work items 0..N-1; default: %(default)s)")
    rec.add_argument("--out", type=Path, required=True, help="dataset folder (must be new or empty unless --resume)")
    rec.add_argument("--seed", type=int, default=0, help="seed of the initial states and resets (default: %(default)s)")
    rec.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same settings)")
    rec.add_argument("--keep-failed", action="store_true", help="keep episodes the policy failed (default: drop and count them)")
    rec.add_argument("--max-steps", type=int, default=None, help="control steps per episode at most (default: the task's)")
    rec.add_argument("--action-space", default=None, help="action space to record (must be the policy's; default: the policy's)")
    rec.add_argument("--cameras", default=None, help="comma-separated camera names (default: every scene camera)")
    rec.add_argument("--extras", default="", help="extra per-frame features: depth,segmentation,lidar (lidar: each scene LIDAR's newest finished scan as a ring x azimuth range image [m], 0 = no return; rotating profiles; default: none)")
    rec.add_argument("--codec", default="auto", help="video encoder (default: auto = libsvtav1 if available, else h264, mpeg4)")
    rec.add_argument("--crf", type=int, default=23, help="video quality, lower is better (default: %(default)s)")
    rec.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="run the episodes on --workers Ray actors: a local Ray (no ADDRESS) or the cluster at ADDRESS (ray://HOST:10001, "
        "auto); written in item order, so the dataset is the one without --ray",
    )
    rec.add_argument("--workers", type=int, default=1, help="Ray actors with --ray (default: %(default)s)")
    rec.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    rec.set_defaults(func=cmd_record)

    rep = groups.add_parser(
        "replay",
        help="re-simulate a recorded episode and report its divergence",
        description="Rebuild the simulation from the dataset's stored stage (meta/vlatwin/scene.usda), apply the "
        "episode's initial state, feed the recorded actions through the same controller and report the divergence "
        "J = integral of ||q_rec - q_sim||^2 dt over the joint state (per joint too) and over object positions. "
        "Writes replay_episode_K.mp4: original | replay side by side.",
    )
    rep.add_argument("dataset", type=Path, help="dataset folder written by vlatwin record")
    rep.add_argument("--episode", type=int, required=True, help="episode_index to replay")
    rep.add_argument("-o", "--out", type=Path, default=None, help="video path or folder (default: ./replay_episode_K.mp4)")
    rep.add_argument("--no-video", action="store_true", help="skip the side-by-side video")
    rep.add_argument(
        "--add-damping", type=float, default=None,
        help="what-if replay: add this viscous joint damping to every joint [N*m*s/rad | N*s/m] (SimParams.joint_damping)",
    )
    rep.set_defaults(func=cmd_replay)


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_record(args: argparse.Namespace) -> int:
    from vlatwin.record import record

    result = record(
        args.config,
        args.out,
        task=args.task,
        policy=args.policy,
        episodes=args.episodes,
        seed=args.seed,
        resume=args.resume,
        keep_failed=args.keep_failed,
        max_steps=args.max_steps,
        action_space=args.action_space,
        cameras=_split(args.cameras),
        extras=tuple(_split(args.extras) or ()),
        codec=args.codec,
        crf=args.crf,
        progress=not args.no_progress and sys.stderr.isatty(),
        ray=args.ray,
        workers=args.workers,
    )
    skipped = f", {result.skipped} already done" if result.skipped else ""
    print(
        f"recorded {result.attempted} episodes{skipped} to {result.out_dir}: {result.kept} in the dataset "
        f"({result.succeeded} successful, {result.failed_kept} failed kept), {result.failed_dropped} failed dropped, "
        f"{result.wall_time:.1f} s"
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from vlatwin.errors import VlatwinError
    from vlatwin.record import replay

    perturb = None
    if args.add_damping is not None:
        if not 0 <= args.add_damping < 1e6:
            raise VlatwinError(f"--add-damping must be in [0, 1e6), got {args.add_damping}")

        def perturb(sim):
            params = sim.get_params().copy()
            params.joint_damping = params.joint_damping + args.add_damping
            sim.set_params(params)

    result = replay(args.dataset, args.episode, out=args.out, video=not args.no_video, perturb=perturb)
    print(f"episode {result.episode}: {result.frames} frames at {1 / result.dt:g} Hz")
    print(f"J (joint state) = {result.J:.6g}   max |q_rec - q_sim| = {result.max_abs_error:.3g}")
    for name, value in result.J_per_joint.items():
        print(f"  {name:24s} {value:.6g}")
    if result.J_objects is not None:
        print(f"J (object positions) = {result.J_objects:.6g}")
    if result.video is not None:
        print(f"wrote {result.video} (original | replay)")
    return 0
