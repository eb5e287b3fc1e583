"""Scale-out on Ray: throughput with 1 and 2 Ray workers for ``generate`` and ``eval``, and a cost model.

1. ``generate`` of the README's main job (configs/tabletop.yaml: two 640x480 cameras, every annotator,
   BasicWriter + COCO) with ``--ray`` on 1 and on 2 actors of a local Ray, plus the plain single process
   for reference. Frames/s count the frames only (start-up apart, as the CLI prints). Goal: 2 workers
   >= 1.8x one worker on this 2-core machine.
2. ``eval`` of the scripted expert on configs/tasks/reach_ball.yaml (two 224x224 cameras, videos on):
   episodes/s and env-steps/s on 1 and 2 actors (actor start-up apart).
3. The cost model (what stays serial, what grows with workers and frames), with this machine's
   constants, and its prediction for a few cluster sizes.

    python benchmarks/scale.py [--frames 16] [--episodes 8] [--repeat 2] [--skip-eval] [--json out.json]

The machine is shared and noisy: 1 and 2 workers run interleaved --repeat times and the best run of each
counts; the load average is printed with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAIN_JOB = REPO / "configs" / "tabletop.yaml"
TASK = REPO / "configs" / "tasks" / "reach_ball.yaml"

COST_MODEL = """\
Cost model (one job, N items on W workers; constants measured above on this machine):

  T(W, N) = S + A + N * max(t_item / min(W, C), t_drv) + F(N)

  S      serial start: driver set-up (config, scene.usda) {setup:.1f} s + Ray start {ray:.1f} s ~ {S:.1f} s
         (a local Ray; joining a running cluster is a connect)
  A      actor start-up (imports, kernels from the cache, stage load, renderer):
         in parallel across nodes, so ~ one actor's time when each has its cores  ~ {A1:.1f} s (1 actor), {A2:.1f} s (2 on 2 cores)
  t_item per-item work in an actor (render + annotate + encode): the part that     ~ {t_item:.3f} s/frame
         divides by the workers; C = cores the actors really get: the node's cores on a
         cluster, but on a shared machine Linux gives each session (autogroup) a fair share, so
         C is what "this job gets" prints above, not os.cpu_count()
  t_drv  per-item serial work on the driver: atomic writes of the bytes + manifest  ~ {t_drv:.4f} s/frame
         line with fsync (~{mb:.1f} MB/frame; of it CPU, incl. Ray's transfer: {t_drv_cpu:.4f} s/frame)
  F(N)   finalize: COCO JSON rebuilt from every frame's fragment, O(N)              ~ {F:.3f} s for {N} frames

  On one machine the driver shares the C cores with the actors: frames take N * (t_item + t_drv_cpu) / C,
  so 2 workers on 2 cores reach at most 2 t_item / (t_item + t_drv_cpu) ~ {ceiling:.2f}x one worker
  (one worker leaves the driver a core of its own), less whatever else the machine runs.

  What stays serial: S, t_drv per item, F(N) (and reading the manifest on --resume, O(N)).
  What grows: A with W (CPU, not wall, when nodes are separate); memory on the driver stays bounded
  (at most 2 items in flight per worker, results written as they arrive; Ray's object store holds
  only those). Speed-up stops at W ~ t_item / t_drv ~ {wmax:.0f} workers per driver (its disk and
  network then bound it: ~{mbps:.0f} MB/s of output at that rate).

  eval: items are episodes (~{ep_s:.2f} s each here, {ep_mb:.2f} MB of video + record); t_drv is negligible,
  so T ~ S + A + ceil(N / W) * t_episode; N episodes never split below one per worker.
"""


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def _spin(seconds: float, queue) -> None:
    c0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sum(i * i for i in range(10_000))
    queue.put(time.process_time() - c0)


def cores_available(processes: int = 2, seconds: float = 2.0) -> float:
    """CPU cores this job gets right now: ``processes`` busy processes' CPU time over wall time.

    Linux shares the CPU per session (autogroup) before per process: on a machine other jobs keep busy,
    two workers of one session may get no more CPU than one, and no speed-up is measurable.
    """
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_spin, args=(seconds, queue)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    total = sum(queue.get() for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


def bench_generate(frames: int, repeat: int) -> dict:
    from vlatwin.scale.generate import generate_ray
    from vlatwin.sdg.pipeline import generate

    out: dict = {"frames": frames, "repeat": repeat, "ray1": None, "ray2": None, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        plain = generate(MAIN_JOB, tmp / "plain", frames=frames, progress=False)
        out["plain"] = {"fps": plain.frames_per_second, "wall_s": time.perf_counter() - t0, "load": load()}
        print(f"generate  plain 1 process : {plain.frames_per_second:5.2f} frames/s ({out['plain']['wall_s']:.1f} s end to end; {load()})", flush=True)
        same = True
        for r in range(repeat):  # 1 and 2 workers interleaved: load from other jobs hits both alike
            for workers in (1, 2):
                folder = tmp / f"ray{workers}_{r}"
                t0 = time.perf_counter()
                res = generate_ray(MAIN_JOB, folder, frames=frames, workers=workers, progress=False)
                wall = time.perf_counter() - t0
                cores = res.timings["actor_cpu_s"] / res.timings["frames_s"]
                run = {"workers": workers, "fps": res.frames_per_second, "wall_s": wall, "timings": res.timings, "load": load(),
                       "cores_used": cores}
                out["runs"].append(run)
                if out[f"ray{workers}"] is None or run["fps"] > out[f"ray{workers}"]["fps"]:
                    out[f"ray{workers}"] = run
                print(f"generate  ray {workers} worker(s): {res.frames_per_second:5.2f} frames/s ({wall:.1f} s end to end; actors "
                      f"busy on {cores:.2f} cores, {res.timings['actor_cpu_s'] / frames:.2f} CPU s/frame; {load()})", flush=True)
                same = same and _digests(folder) == _digests(tmp / "plain")
                shutil.rmtree(folder)
        out["identical"] = same
        out["mb_per_frame"] = sum(p.stat().st_size for p in (tmp / "plain").rglob("*") if p.is_file()) / frames / 1e6
    out["speedup_2v1"] = out["ray2"]["fps"] / out["ray1"]["fps"]
    print(f"generate  2 vs 1 worker (best of {repeat}): {out['speedup_2v1']:.2f}x (goal >= 1.8x); "
          f"every run's files identical to plain: {same}", flush=True)
    return out


def bench_eval(episodes: int, repeat: int) -> dict:
    from vlatwin.eval.runner import EvalSettings, evaluate

    out: dict = {"episodes": episodes, "repeat": repeat, "ray1": None, "ray2": None, "runs": []}
    keys = ("index", "success", "steps", "sim_seed")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        plain = evaluate(TASK, tmp / "plain", EvalSettings(policy="expert", episodes=episodes), progress=False)
        out["plain"] = {"eps": episodes / plain.episode_time, "steps_per_s": plain.env_steps / plain.episode_time,
                        "wall_s": time.perf_counter() - t0, "load": load()}
        print(f"eval      plain 1 process : {out['plain']['eps']:5.2f} episodes/s, {out['plain']['steps_per_s']:6.1f} env-steps/s "
              f"({out['plain']['wall_s']:.1f} s end to end; {load()})", flush=True)
        ref = [{k: e[k] for k in keys} for e in plain.results["episodes"]]
        same = True
        for r in range(repeat):
            for workers in (1, 2):
                folder = tmp / f"ray{workers}_{r}"
                t0 = time.perf_counter()
                res = evaluate(TASK, folder, EvalSettings(policy="expert", episodes=episodes, workers=workers), progress=False, ray="local")
                wall = time.perf_counter() - t0
                run = {"workers": workers, "eps": episodes / res.episode_time, "steps_per_s": res.env_steps / res.episode_time,
                       "wall_s": wall, "episode_s": res.episode_time, "load": load()}
                out["runs"].append(run)
                if out[f"ray{workers}"] is None or run["eps"] > out[f"ray{workers}"]["eps"]:
                    out[f"ray{workers}"] = run
                print(f"eval      ray {workers} worker(s): {run['eps']:5.2f} episodes/s, {run['steps_per_s']:6.1f} env-steps/s "
                      f"({wall:.1f} s end to end; {load()})", flush=True)
                same = same and ref == [{k: e[k] for k in keys} for e in res.results["episodes"]]
                shutil.rmtree(folder)
        out["same_outcomes"] = same
        out["episode_steps"] = [int(e["steps"]) for e in plain.results["episodes"]]
        out["mb_per_episode"] = sum(p.stat().st_size for p in (tmp / "plain" / "videos").rglob("*") if p.is_file()) / episodes / 1e6
        out["episode_s"] = plain.episode_time / episodes
    out["speedup_2v1"] = out["ray2"]["eps"] / out["ray1"]["eps"]
    print(f"eval      2 vs 1 worker (best of {repeat}): {out['speedup_2v1']:.2f}x (goal >= 1.8x); "
          f"outcomes equal to plain: {same}", flush=True)
    return out


def _digests(root: Path) -> dict:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def cost_model(gen: dict, ev: dict | None, ray_start_s: float) -> str:
    r1, r2 = gen["ray1"]["timings"], gen["ray2"]["timings"]
    n = gen["frames"]
    t_item = (r1["render_s"] + r1["encode_s"]) / n
    t_drv = r2["driver_write_s"] / n
    t_drv_cpu = r2["driver_cpu_s"] / n
    text = COST_MODEL.format(
        setup=r2["driver_setup_s"], ray=ray_start_s, S=r2["driver_setup_s"] + ray_start_s, A1=r1["actors_ready_s"], A2=r2["actors_ready_s"], t_item=t_item, t_drv=t_drv, t_drv_cpu=t_drv_cpu,
        mb=gen["mb_per_frame"], F=r2["finalize_s"], N=n, wmax=t_item / max(t_drv, 1e-9),
        mbps=gen["mb_per_frame"] / max(t_drv, 1e-9), ceiling=2 * t_item / (t_item + t_drv_cpu), ep_s=(ev or {}).get("episode_s", float("nan")),
        ep_mb=(ev or {}).get("mb_per_episode", float("nan")),
    )
    S, A = r2["driver_setup_s"] + ray_start_s, r1["actors_ready_s"]
    rows = ["", "  predicted generate wall time (this machine's per-frame costs, one core per worker):",
            "    frames \\ workers" + "".join(f"{w:>10d}" for w in (1, 2, 8, 32, 128))]
    for frames in (1_000, 10_000, 100_000):
        cells = []
        for w in (1, 2, 8, 32, 128):
            t = S + A + frames * max(t_item / w, t_drv) + r2["finalize_s"] / n * frames
            cells.append(f"{t / 60:9.1f}m")
        rows.append(f"    {frames:>15,d}" + "".join(cells))
    return text + "\n".join(rows)


def _makespan(steps: list[int], workers: int) -> int:
    """Env-steps of the busiest worker when episodes go, in order, to whichever worker is free first."""
    busy = [0] * workers
    for n in steps:
        busy[busy.index(min(busy))] += n
    return max(busy)


def _goal_line(name: str, speedup: float, why_not: str) -> str:
    head = f"{name:8s} 2 vs 1 worker {speedup:.2f}x (goal >= 1.8x): "
    return head + ("met" if speedup >= 1.8 else f"not met; {why_not}")


def verdict(gen: dict, ev: dict | None) -> list[str]:
    """One line per goal: met, or what this run measured to block it."""
    r1, r2 = gen["ray1"]["timings"], gen["ray2"]["timings"]
    n = gen["frames"]
    t_item, t_drv_cpu = (r1["render_s"] + r1["encode_s"]) / n, r2["driver_cpu_s"] / n
    ceiling = 2 * t_item / (t_item + t_drv_cpu)
    lines = [_goal_line("generate", gen["speedup_2v1"], (
        f"on one 2-core machine the driver's {1e3 * t_drv_cpu:.0f} ms of CPU per frame (Ray's transfer and the atomic writes "
        f"of {gen['mb_per_frame']:.1f} MB) shares the cores with the actors' {1e3 * t_item:.0f} ms, a ceiling of {ceiling:.2f}x; "
        f"the rest of the gap is Ray's own processes and other load (the 2 actors were busy on {gen['ray2']['cores_used']:.2f} "
        "cores). On separate nodes the driver has a core of its own"))]
    if ev is not None:
        steps = ev.get("episode_steps") or [0]
        ideal = sum(steps) / max(_makespan(steps, 2), 1)
        lines.append(_goal_line("eval", ev["speedup_2v1"], (
            f"{ev['episodes']} episodes of {min(steps)}-{max(steps)} steps split over 2 workers allow {ideal:.2f}x, the rest is "
            f"load and scheduling noise in {ev['repeat']} run(s) of ~{ev['episode_s'] * ev['episodes']:.0f} s (more --episodes "
            "and --repeat read steadier)")))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2, help="runs of 1 and 2 workers, interleaved; the best of each counts")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    os.environ.setdefault("WARP_CACHE_PATH", str(Path.home() / ".cache" / "vlatwin" / "warp"))
    from vlatwin.scale.ray_pool import init_ray

    t0 = time.perf_counter()
    init_ray("local", 2)  # one local Ray (2 CPUs) for every run below
    ray_start_s = time.perf_counter() - t0
    print(f"# benchmarks/scale.py on {os.cpu_count()} cores ({load()}); this job gets {cores_available(1):.2f} cores with "
          f"1 busy process, {cores_available(2):.2f} with 2", flush=True)
    gen = bench_generate(args.frames, args.repeat)
    ev = None if args.skip_eval else bench_eval(args.episodes, args.repeat)
    print(f"# after: this job gets {cores_available(1):.2f} cores with 1 busy process, {cores_available(2):.2f} with 2 ({load()})")
    print()
    print(cost_model(gen, ev, ray_start_s))
    print()
    for line in verdict(gen, ev):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps({"generate": gen, "eval": ev}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
