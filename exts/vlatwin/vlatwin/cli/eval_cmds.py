"""``vlatwin eval`` (a policy on tasks) and ``vlatwin eval compare`` (sim-vs-real ranking metrics)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Evaluate a policy on tasks, episode by episode, from each task's fixed initial states (50 per task,
configs/tasks/init_states/): per task and overall success rate with a Wilson 95 % interval, episode
lengths, policy latency p50/p99, one MP4 per episode with the instruction, step and outcome drawn on it,
results.json and a self-contained report.html. A killed run continues with --resume (per episode).

  vlatwin eval CONFIG --policy SPEC --out DIR [options]
  vlatwin eval compare A B

CONFIG is a task config (configs/tasks/reach_ball.yaml) or a folder of them (configs/tasks) with
--tasks choosing some by name. SPEC is one of:
  expert                        the scripted expert (built-in Panda)
  noisy-expert?noise=0.02       the expert with Gaussian noise on its arm actions
  random                        uniform random actions (the baseline)
  hf://FOLDER?...               a Hugging Face image-text-to-text model in this process
  openpi://HOST:PORT?...        an openpi-compatible websocket server (e.g. `vlatwin serve`)
  openvla://HOST:PORT?...       an OpenVLA vla-scripts/deploy.py REST server
  lerobot://FOLDER?...          a LeRobot policy (needs lerobot importable)
  module:factory | file.py:factory   your own factory(context) -> Policy

`eval compare A B` ranks the same policies in two result tables (A = sim, B = real, or two twins):
MMRV (SimplerEnv's mean maximum rank violation, lower is better) and Pearson r. A and B are eval
output folders, folders of them, results.json files, or CSV/JSON {policy: success rate} tables.
"""

EPILOG = """\
examples:
  vlatwin eval configs/tasks --tasks reach_ball,pick_red_cube --policy expert --episodes 10 --out out/eval_expert
  python -m vlatwin.policy.tiny_vlm out/tiny-vla
  vlatwin eval configs/tasks --tasks reach_ball,pick_red_cube --policy hf://out/tiny-vla --episodes 4 --out out/eval_tiny
  vlatwin eval configs/tasks/reach_ball.yaml --policy openpi://127.0.0.1:8000 --replan 5 --out out/eval_remote
  vlatwin eval compare out/twin_a out/twin_b
"""


def register(groups) -> None:
    ev = groups.add_parser(
        "eval",
        help="evaluate a policy on tasks (success + Wilson CI, videos, report.html); `eval compare A B`",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("target", nargs="+", metavar="CONFIG | compare A B", help="task config or folder; or: compare A B")
    ev.add_argument("--policy", default=None, help="policy spec (see above)")
    ev.add_argument("--out", type=Path, default=None, help="output folder (new or empty unless --resume)")
    ev.add_argument("--tasks", default=None, help="comma-separated task names or config file stems (CONFIG a folder)")
    ev.add_argument("--episodes", type=int, default=None, help="episodes per task (default: one per stored initial state, 50)")
    ev.add_argument("--workers", type=int, default=1, help="processes running episodes in parallel (default: %(default)s)")
    ev.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="run the episodes on --workers Ray actors: a local Ray (no ADDRESS) or the cluster at ADDRESS (ray://HOST:10001, auto)",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the simulator resets (default: %(default)s)")
    ev.add_argument("--max-steps", type=int, default=None, help="control steps per episode at most (default: the task's)")
    ev.add_argument("--resume", action="store_true", help="continue an interrupted evaluation in --out (same settings)")
    ev.add_argument("--label", default=None, help="name of this policy in tables and `eval compare` (default: the spec)")
    ev.add_argument("--no-video", action="store_true", help="skip the per-episode MP4s and thumbnails")
    ev.add_argument("--video-camera", default=None, help="scene camera of the videos (default: the policy's first, else the scene's first)")
    ex = ev.add_argument_group("chunk execution")
    ex.add_argument("--replan", type=int, default=None, help="execute this many actions of each chunk, then ask again (default: whole chunk)")
    ex.add_argument("--ensemble", type=float, default=None, metavar="M", help="ACT temporal ensembling, weights exp(-M*i) oldest first; asks every step")
    ex.add_argument("--realtime", action="store_true", help="delay each chunk by the policy's measured latency (actions apply when they would arrive)")
    ex.add_argument("--delay", type=float, default=None, metavar="S", help="a fixed policy latency [s] instead of the measured one")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    ev.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from vlatwin.errors import VlatwinError

    if args.target[0] == "compare":
        if len(args.target) != 3:
            raise VlatwinError("usage: vlatwin eval compare A B (two result tables: eval folders, results.json, CSV or JSON)")
        from vlatwin.eval.compare import compare_paths, format_compare

        print(format_compare(compare_paths(Path(args.target[1]), Path(args.target[2]))))
        return 0
    if len(args.target) != 1:
        raise VlatwinError(f"give one CONFIG (a task config or a folder of them), got {len(args.target)}: {' '.join(args.target)}")
    if args.policy is None:
        raise VlatwinError("--policy is required (e.g. --policy expert, --policy hf://FOLDER, --policy openpi://127.0.0.1:8000)")
    if args.out is None:
        raise VlatwinError("--out is required (the evaluation's output folder)")
    from vlatwin.eval.runner import EvalSettings, evaluate
    from vlatwin.policy.chunking import ExecutionCfg

    settings = EvalSettings(
        policy=args.policy, episodes=args.episodes, seed=args.seed, max_steps=args.max_steps, workers=args.workers,
        video=not args.no_video, video_camera=args.video_camera, label=args.label,
        execution=ExecutionCfg(replan=args.replan, ensemble=args.ensemble, realtime=args.realtime, delay_s=args.delay),
    )
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    result = evaluate(
        args.target[0], args.out, settings, tasks=tasks, resume=args.resume, progress=not args.no_progress and sys.stderr.isatty(),
        ray=args.ray,
    )
    print(format_results(result.results))
    skipped = f" ({result.skipped} already done)" if result.skipped else ""
    print(f"ran {result.ran} episodes{skipped} in {result.wall_time:.1f} s; report: {result.report}")
    return 0


def format_results(results: dict) -> str:
    rows = [("task", "success", "95% CI", "steps", "p50 ms", "p99 ms", "rejected")]

    def row(name, s):
        ci = s["ci95"]
        lat = s.get("latency_ms") or {}
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        rate = "-" if s["success_rate"] is None else f"{s['successes']}/{s['episodes']} = {100 * s['success_rate']:.0f}%"
        return (name, rate, f"[{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]%", fmt((s.get("length") or {}).get("mean")),
                fmt(lat.get("p50")), fmt(lat.get("p99")), str(s.get("rejected_actions", 0)))

    for name, s in results["tasks"].items():
        rows.append(row(name, s))
    if len(results["tasks"]) > 1:
        rows.append(row("overall", results["overall"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"policy: {results['label']}"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)
