"""``vlatwin eval``: a policy on tasks, episode by episode, from each task's fixed initial states.

Protocol (LIBERO / openpi style): episode ``i`` of a task starts from the task's stored initial state
``i mod len(states)`` (``configs/tasks/init_states/<task>.json``, 50 per task) with the simulator reset
seed drawn from (``--seed``, ``i``); the policy gets the task's canonical instruction; the episode
succeeds as soon as the task's success predicate holds for its ``hold_steps`` and ends there, or fails
after ``max_steps`` control steps. NaN/Inf actions are rejected before the controller (the robot holds
its last command) and counted; a simulation blow-up fails the episode with the reason.

Output folder::

    run.json                     settings that must match for --resume, progress
    scenes/<task>.usda           the stage each task ran on
    episodes/<task>/episode_000.json   one record per finished episode (atomic; --resume skips these)
    videos/<task>/episode_000.mp4      instruction, step and outcome drawn on the frames
    thumbs/<task>/episode_000.jpg
    results.json                 per task and overall: success rate + Wilson 95 % interval, lengths, latency
    report.html                  self-contained report (tables, plots, thumbnails linking the videos)

Episodes are independent work items, so ``--workers K`` splits them over K processes (each with its own
simulator and policy instance) and a killed run resumes per episode.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.loop.worker import WorkResult, Worker
from vlatwin.policy.chunking import ExecutionCfg
from vlatwin.writers.storage import atomic_write_bytes

RUN_FILE = "run.json"
RESULTS_FILE = "results.json"


# ----------------------------------------------------------------------------------------- task list
def find_task_configs(config: str | Path, tasks: list[str] | None = None) -> list[Path]:
    """Task config files: ``config`` itself, or the ``*.yaml`` in a folder; ``tasks`` filters by name or file stem."""
    config = Path(config)
    if config.is_dir():
        files = sorted(p for p in config.glob("*.yaml") if p.is_file())
        if not files:
            raise VlatwinError(f"{config}: no *.yaml task configs in this folder")
    elif config.is_file():
        files = [config]
    else:
        raise VlatwinError(f"{config}: no such config file or folder")
    if not tasks:
        return files
    from vlatwin.config.loader import load_config

    by_name: dict[str, Path] = {}
    for path in files:
        by_name.setdefault(path.stem, path)
        try:
            cfg = load_config(path)
        except VlatwinError:
            continue
        if cfg.task is not None:
            for name in (getattr(cfg.task, "name", None), cfg.task.type):
                if name:
                    by_name.setdefault(str(name), path)
    out = []
    for name in tasks:
        if name not in by_name:
            raise VlatwinError(f"unknown task {name!r} in {config}; known: {', '.join(sorted(by_name))}")
        if by_name[name] not in out:
            out.append(by_name[name])
    return out


# ------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class EvalSettings:
    policy: str
    episodes: int | None = None
    """Episodes per task (None: one per stored initial state)."""
    seed: int = 0
    max_steps: int | None = None
    workers: int = 1
    video: bool = True
    video_camera: str | None = None
    """Scene camera the videos show (None: the policy's first camera, else the scene's first)."""
    execution: ExecutionCfg = field(default_factory=ExecutionCfg)
    label: str | None = None

    def signature(self) -> dict:
        """What must match for ``--resume`` (episodes and workers may change)."""
        return {
            "policy": self.policy,
            "seed": int(self.seed),
            "max_steps": self.max_steps,
            "video": bool(self.video),
            "video_camera": self.video_camera,
            "execution": self.execution.to_dict(),
        }


@dataclass
class EvalResult:
    out_dir: Path
    results: dict
    ran: int
    """Episodes run by this call."""
    skipped: int
    """Episodes already done (resume)."""
    env_steps: int
    """Control steps run by this call."""
    episode_time: float
    """[s] inside episodes (this process; with workers: wall time of the parallel part)."""
    wall_time: float
    post_time: float = 0.0
    """[s] aggregating results.json and writing report.html."""

    @property
    def report(self) -> Path:
        return self.out_dir / "report.html"


# ------------------------------------------------------------------------------------------ episodes
def episode_file(out_dir: Path, task: str, index: int) -> Path:
    return out_dir / "episodes" / task / f"episode_{index:03d}.json"


class EvalEpisodeWorker(Worker):
    """One evaluation episode per work item on a loaded task (built once per task and process)."""

    def __init__(self, setup, policy_spec: str, settings: EvalSettings, out_dir: Path):
        from vlatwin.policy.factory import make_policy_from_spec
        from vlatwin.record.recorder import build_rig
        from vlatwin.tasks.initial_states import task_initial_states

        self.setup, self.settings, self.out_dir = setup, settings, out_dir
        task = setup.task
        self.task = task
        self.states = task_initial_states(task)
        if not self.states:
            raise VlatwinError(f"task {task.name}: its init_states file holds no states")
        self.policy = make_policy_from_spec(policy_spec, setup.context)
        info = getattr(self.policy, "info", None)
        if info is None:
            raise VlatwinError(f"--policy {policy_spec!r}: the policy has no info (PolicyInfo) saying its action space")
        self.policy_info = info
        allowed = getattr(task, "action_spaces", None)
        if allowed is not None and info.action_space not in allowed:
            raise VlatwinError(f"task {task.name!r} cannot use action space {info.action_space!r}; it takes {', '.join(allowed)}")
        scene_cams = {c.name: c for c in setup.config.scene.cameras}
        for name in info.image_keys:
            if name not in scene_cams:
                raise VlatwinError(
                    f"policy {info.name!r} reads camera {name!r}, which {setup.config_path} does not have "
                    f"(cameras: {', '.join(scene_cams) or 'none'})"
                )
        self.video_camera = None
        if settings.video:
            self.video_camera = settings.video_camera or (info.image_keys[0] if info.image_keys else next(iter(scene_cams), None))
            if self.video_camera is not None and self.video_camera not in scene_cams:
                raise VlatwinError(f"--video-camera {self.video_camera!r}: no such camera in {setup.config_path} ({', '.join(scene_cams)})")
        names = list(info.image_keys) + ([self.video_camera] if self.video_camera and self.video_camera not in info.image_keys else [])
        camera_cfgs = [scene_cams[n] for n in names]
        options = dict(info.controller_options)
        options.setdefault("gripper", info.gripper_convention)
        self.rig = build_rig(
            setup.stage_path, setup.physics, camera_cfgs, info.action_space, task.control_hz, ["rgb"],
            sim=setup.sim, controller_options=options, policy=self.policy,
        )
        self.rig.loop.execution = settings.execution
        self.rig.loop.policy = self.policy  # rebuilds the executor with the execution settings
        self.steps_cap = int(settings.max_steps or task.max_steps)

    def run(self, index: int, seed: int) -> WorkResult:
        from vlatwin.eval.video import EpisodeVideo
        from vlatwin.record.recorder import episode_seeds
        from vlatwin.sim.newton import SimulationDivergedError

        t0 = time.perf_counter()
        rig, task, info = self.rig, self.task, self.setup.sim.info
        state_index = index % len(self.states)
        sim_seed, _ = episode_seeds(seed, index)
        rig.started.initial_state = self.states[state_index]
        instruction = task.instructions[0]
        obs = rig.loop.reset(seed=sim_seed, episode=index, instruction=instruction)
        tracker = task.tracker()
        name = task.name
        video = None
        if self.video_camera is not None:
            video = EpisodeVideo(self.out_dir / "videos" / name / f"episode_{index:03d}.mp4", fps=task.control_hz)
        success, failure, steps, events = False, None, 0, []
        for k in range(self.steps_cap):
            if video is not None:
                video.add(np.asarray(obs.sensors[self.video_camera]["rgb"])[..., :3], k)
            try:
                step, nxt = rig.loop.step(obs)
            except SimulationDivergedError as exc:
                failure = f"simulation diverged: {exc}"
                break
            steps = k + 1
            events.extend(e for e in step.events if e.startswith("rejected"))
            success = tracker.update(bool(task.success(step.next_state, info)), k)
            obs = nxt
            if success:
                break
        if video is not None and failure is None:
            video.add(np.asarray(obs.sensors[self.video_camera]["rgb"])[..., :3], steps)
        executor = rig.loop.executor
        latency = [float(v) for v in executor.latencies_ms]
        record = {
            "task": name,
            "index": int(index),
            "init_state": int(state_index),
            "sim_seed": int(sim_seed),
            "success": bool(success),
            "steps": int(steps),
            "first_success_step": tracker.first_success_step,
            "policy_calls": int(executor.queries),
            "latency_ms_all": latency,
            "rejected_actions": int(executor.rejected),
            "rejections": events[:5],
            "failure": failure,
            "video": None,
            "thumbnail": None,
        }
        if video is not None:
            outcome = "success" if success else "failure"
            path = video.close(instruction, outcome, steps)
            if path is not None:
                thumb = self.out_dir / "thumbs" / name / f"episode_{index:03d}.jpg"
                video.thumbnail(thumb)
                record["video"] = path.relative_to(self.out_dir).as_posix()
                record["thumbnail"] = thumb.relative_to(self.out_dir).as_posix()
        record["wall_s"] = time.perf_counter() - t0
        return WorkResult(index=index, outputs={}, record=record)

    def close(self) -> None:
        close = getattr(self.policy, "close", None)
        if close is not None:
            close()


def _run_shard(config_path: str, task_name: str | None, stage_path: str, settings: EvalSettings, out_dir: str, indices: list[int]) -> tuple[int, float]:
    """Run episodes ``indices`` of one task in this process; each lands in its own file. Returns (steps, seconds)."""
    from vlatwin.eval.setup import load_task_setup

    out = Path(out_dir)
    setup = load_task_setup(config_path, seed=settings.seed, task=task_name, stage_path=Path(stage_path))
    steps, seconds = 0, 0.0
    try:
        worker = EvalEpisodeWorker(setup, settings.policy, settings, out)
        try:
            for i in indices:
                t0 = time.perf_counter()
                result = worker.run(i, settings.seed)
                seconds += time.perf_counter() - t0
                steps += result.record["steps"]
                atomic_write_bytes(episode_file(out, result.record["task"], i), json.dumps(result.record).encode())
        finally:
            worker.close()
    finally:
        setup.close()
    return steps, seconds


# ------------------------------------------------------------------------------------------- results
def _summary(records: list[dict]) -> dict:
    from vlatwin.eval.stats import latency_summary, length_summary, wilson_interval

    n = len(records)
    successes = sum(1 for r in records if r["success"])
    latencies = [v for r in records for v in r.get("latency_ms_all", [])]
    lo, hi = wilson_interval(successes, n)
    return {
        "episodes": n,
        "successes": successes,
        "success_rate": successes / n if n else None,
        "ci95": [lo, hi],
        "length": length_summary([r["steps"] for r in records]),
        "latency_ms": latency_summary(latencies),
        "rejected_actions": int(sum(r.get("rejected_actions", 0) for r in records)),
        "failures": sum(1 for r in records if r.get("failure")),
    }


def aggregate(out_dir: Path, settings: EvalSettings, tasks: list[dict], policy_info: dict | None) -> dict:
    """results.json from the episode files of ``tasks`` (``[{"name", "instruction", "config", "episodes"}]``)."""
    from vlatwin import __version__
    from vlatwin.eval.stats import latency_summary

    per_task, episodes, all_records = {}, [], []
    for t in tasks:
        records = []
        for i in range(t["episodes"]):
            path = episode_file(out_dir, t["name"], i)
            if path.is_file():
                records.append(json.loads(path.read_text(encoding="utf-8")))
        per_task[t["name"]] = {"instruction": t["instruction"], "config": t["config"], **_summary(records)}
        for r in records:
            slim = {k: v for k, v in r.items() if k != "latency_ms_all"}
            slim["latency_ms"] = latency_summary(r.get("latency_ms_all", []))
            episodes.append(slim)
        all_records.extend(records)
    return {
        "vlatwin_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "label": settings.label or settings.policy,
        "policy": {"spec": settings.policy, "info": policy_info},
        "settings": {
            "episodes": settings.episodes,
            "seed": int(settings.seed),
            "max_steps": settings.max_steps,
            "workers": int(settings.workers),
            "execution": settings.execution.to_dict(),
            "video": bool(settings.video),
        },
        "tasks": per_task,
        "overall": _summary(all_records),
        "episodes": episodes,
    }


# --------------------------------------------------------------------------------------------- entry
def _check_out_dir(out_dir: Path, resume: bool) -> bool:
    if out_dir.exists() and not out_dir.is_dir():
        raise VlatwinError(f"{out_dir}: output path is a file; give a folder")
    if not (out_dir.exists() and any(out_dir.iterdir())):
        return False
    if (out_dir / RUN_FILE).is_file():
        if not resume:
            raise VlatwinError(f"{out_dir}: already holds an evaluation; pass --resume to continue it or choose another --out")
        return True
    raise VlatwinError(f"{out_dir}: output folder is not empty; choose another --out")


def evaluate(
    config: str | Path,
    out_dir: str | Path,
    settings: EvalSettings,
    *,
    tasks: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    ray: str | None = None,
) -> EvalResult:
    """Evaluate ``settings.policy`` on the task configs ``config`` names; write results.json and report.html.

    ``ray``: run the episodes on ``settings.workers`` Ray actors, on a local Ray (``"local"``) or the
    cluster at that address (:mod:`vlatwin.scale.eval`); None: in this process or spawned processes.
    """
    from vlatwin.eval.setup import load_task_setup
    from vlatwin.policy.factory import parse_policy_spec

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    parse_policy_spec(settings.policy)  # malformed specs fail before anything is built
    if settings.episodes is not None and settings.episodes <= 0:
        raise VlatwinError(f"--episodes must be positive, got {settings.episodes}")
    if settings.max_steps is not None and settings.max_steps <= 0:
        raise VlatwinError(f"--max-steps must be positive, got {settings.max_steps}")
    if not 1 <= settings.workers <= 64:
        raise VlatwinError(f"--workers must be in 1..64, got {settings.workers}")
    files = find_task_configs(config, tasks)
    continuing = _check_out_dir(out_dir, resume)
    configs_digest = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    signature = {**settings.signature(), "configs": configs_digest}
    if continuing:
        previous = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8"))
        old = previous.get("signature", {})
        if old != signature:
            diff = sorted(k for k in signature if old.get(k) != signature[k])
            raise VlatwinError(f"{out_dir}: was evaluated with a different {', '.join(diff)}; --resume needs the same settings")
    existed = out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    run_state = {"signature": signature, "complete": False, "label": settings.label or settings.policy}
    atomic_write_bytes(out_dir / RUN_FILE, json.dumps(run_state, indent=2).encode())

    task_meta, policy_info = [], None
    ran = skipped = env_steps = 0
    episode_time = 0.0
    try:
        for path in files:
            # One setup in this process per task: the scene, the task's states and (workers == 1) the episodes.
            stage_path = out_dir / "scenes" / f"{path.stem}.usda"
            setup = load_task_setup(path, seed=settings.seed, stage_path=stage_path)
            task = setup.task
            from vlatwin.tasks.initial_states import task_initial_states

            n = settings.episodes or len(task_initial_states(task))
            meta = {"name": task.name, "instruction": task.instructions[0], "config": str(path), "episodes": n}
            task_meta.append(meta)
            todo = [i for i in range(n) if not episode_file(out_dir, task.name, i).is_file()]
            skipped += n - len(todo)
            bar = _progress(len(todo), f"{task.name}", progress)
            try:
                if ray is not None and todo:
                    setup.close()
                    setup = None
                    from vlatwin.scale.eval import run_episodes_ray

                    steps, seconds, info = run_episodes_ray(path, stage_path, settings, out_dir, todo, bar, address=ray)
                    env_steps += steps
                    episode_time += seconds
                    ran += len(todo)
                    policy_info = policy_info or info
                elif settings.workers == 1 or len(todo) <= 1:
                    worker = EvalEpisodeWorker(setup, settings.policy, settings, out_dir)
                    policy_info = worker.policy_info.to_dict()
                    try:
                        for i in todo:
                            t0 = time.perf_counter()
                            result = worker.run(i, settings.seed)
                            episode_time += time.perf_counter() - t0
                            env_steps += result.record["steps"]
                            atomic_write_bytes(episode_file(out_dir, task.name, i), json.dumps(result.record).encode())
                            ran += 1
                            if bar is not None:
                                bar.update(1)
                                bar.set_postfix(success=f"{_done_rate(out_dir, task.name, n)}", refresh=False)
                    finally:
                        worker.close()
                else:
                    setup.close()
                    setup = None
                    steps, seconds = _run_parallel(path, stage_path, settings, out_dir, todo, task.name, bar)
                    env_steps += steps
                    episode_time += seconds
                    ran += len(todo)
                    if policy_info is None:
                        policy_info = _policy_info_of(settings.policy, path, stage_path, settings)
            finally:
                if bar is not None:
                    bar.close()
                if setup is not None:
                    setup.close()
    except BaseException:
        # A run that never finished an episode (a policy that cannot be built, a bad scene) leaves nothing
        # behind, so the same --out works once the input is fixed.
        if not continuing and not any(out_dir.glob("episodes/*/*.json")):
            if existed:  # the user's (empty) folder stays; what this call wrote goes
                for child in out_dir.iterdir():
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            else:
                shutil.rmtree(out_dir, ignore_errors=True)
        raise
    if policy_info is None and task_meta:
        policy_info = _policy_info_of(settings.policy, files[0], out_dir / "scenes" / f"{files[0].stem}.usda", settings)
    t_post = time.perf_counter()
    results = aggregate(out_dir, settings, task_meta, policy_info)
    atomic_write_bytes(out_dir / RESULTS_FILE, json.dumps(results, indent=2).encode())
    from vlatwin.report.eval_report import write_report

    write_report(results, out_dir)
    run_state["complete"] = True
    atomic_write_bytes(out_dir / RUN_FILE, json.dumps(run_state, indent=2).encode())
    return EvalResult(
        out_dir=out_dir, results=results, ran=ran, skipped=skipped, env_steps=env_steps, episode_time=episode_time,
        wall_time=time.perf_counter() - t_start, post_time=time.perf_counter() - t_post,
    )


def _policy_info_of(spec: str, config_path: Path, stage_path: Path, settings: EvalSettings) -> dict | None:
    """The policy's info for results.json when the episodes ran in other processes (built once more here)."""
    from vlatwin.eval.setup import load_task_setup
    from vlatwin.policy.factory import make_policy_from_spec

    setup = load_task_setup(config_path, seed=settings.seed, stage_path=stage_path)
    try:
        policy = make_policy_from_spec(spec, setup.context)
        try:
            return policy.info.to_dict()
        finally:
            close = getattr(policy, "close", None)
            if close is not None:
                close()
    finally:
        setup.close()


def _done_rate(out_dir: Path, task: str, n: int) -> str:
    ok = total = 0
    for i in range(n):
        path = episode_file(out_dir, task, i)
        if path.is_file():
            total += 1
            ok += bool(json.loads(path.read_text(encoding="utf-8"))["success"])
    return f"{ok}/{total}"


def _run_parallel(path: Path, stage_path: Path, settings: EvalSettings, out_dir: Path, todo: list[int], task_name: str, bar) -> tuple[int, float]:
    """Episodes split round-robin over ``settings.workers`` spawned processes (each its own simulator and policy)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    k = min(settings.workers, len(todo))
    shards = [todo[w::k] for w in range(k)]
    t0 = time.perf_counter()
    steps = 0
    with ProcessPoolExecutor(max_workers=k, mp_context=mp.get_context("spawn")) as pool:
        futures = [
            pool.submit(_run_shard, str(path), None, str(stage_path), settings, str(out_dir), shard) for shard in shards
        ]
        pending = set(futures)
        seen = 0
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for fut in done:
                exc = fut.exception()
                if exc is not None:
                    for other in pending:
                        other.cancel()
                    raise exc
            if bar is not None:
                now = sum(1 for i in todo if episode_file(out_dir, task_name, i).is_file())
                bar.update(now - seen)
                seen = now
        for fut in futures:
            steps += fut.result()[0]
    return steps, time.perf_counter() - t0


def _progress(total: int, desc: str, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="episode", desc=desc, mininterval=0.5, dynamic_ncols=True)
