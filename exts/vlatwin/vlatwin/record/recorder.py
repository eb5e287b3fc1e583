"""``vlatwin record``: run a policy (the scripted expert by default) on a task and write a LeRobotDataset v3.0.

Episodes are work items: item ``i`` draws its initial state from ``(seed, i)`` and resets the simulator
with a seed drawn from the same pair, so items are independent and a resumed run writes what an
uninterrupted one writes. Items run in order; kept episodes get consecutive ``episode_index`` values
(LeRobot needs 0..N-1), failed ones are kept or dropped (``keep_failed``) and counted.

Per frame (one control step, LeRobot's convention: the observation *before* the action):

- ``observation.state`` (float32, J): joint positions of every simulated joint in
  :attr:`SimModelInfo.joint_names` order (Panda: ``panda_joint1..7`` [rad], ``panda_finger_joint1..2`` [m]);
- ``observation.environment_state`` (float32, 7 per object): pose of each free rigid body under
  ``/World/Objects`` (x, y, z [m], qw, qx, qy, qz), when the scene has any;
- ``observation.images.<cam>`` (video, H x W x 3): the camera's RGB render at that step;
- optional ``observation.depth.<cam>`` (float32 H x W, distance to the image plane [m]) and
  ``observation.segmentation.<cam>`` (int32 H x W, semantic ids), with ``extras=("depth", "segmentation")``;
- ``action`` (float32, D): the action the controller executed (after the safety gate), in the policy's
  action space (``controller.spec.to_dict()`` names and units);
- LeRobot's ``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``.

vlatwin's own files (a LeRobot loader ignores them) live under ``meta/vlatwin/``: ``run.json`` (what must
match for ``--resume``, simulator and camera settings, counts, completion), ``scene.usda`` (the stage,
for replay), ``episodes.jsonl`` (per episode: work item, seeds, initial state, success), ``dropped/``
(failed items that were not kept) and the writer's staging area.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.loop.control_loop import reset_policy
from vlatwin.loop.worker import WorkResult, Worker
from vlatwin.policy.factory import PolicyContext, make_policy_from_spec, parse_policy_spec
from vlatwin.writers.storage import atomic_write_bytes

VLATWIN_META = "meta/vlatwin"
RUN_FILE = f"{VLATWIN_META}/run.json"
SCENE_FILE = f"{VLATWIN_META}/scene.usda"
DROPPED_DIR = f"{VLATWIN_META}/dropped"
SIDE_EPISODES_FILE = f"{VLATWIN_META}/episodes.jsonl"
OBJECTS_PREFIX = "/World/Objects/"
EXTRAS = ("depth", "segmentation", "lidar")

#: task name -> factory(config) -> Task. Built-in tasks come from the config's ``task:`` section.
TASKS: dict[str, Callable] = {}
#: Extra policy names -> factory(task=, info=, chain=, spec=, seed=) -> Policy. Built-in kinds and spec
#: strings (``expert``, ``random``, ``hf://...``) come from :mod:`vlatwin.policy.factory`.
POLICIES: dict[str, Callable] = {}


def register_task(name: str, factory: Callable) -> None:
    TASKS[name] = factory


def register_policy(name: str, factory: Callable) -> None:
    POLICIES[name] = factory


#: Action space of the built-in policy kinds that have one (checked before anything is built).
POLICY_ACTION_SPACES = {"expert": "ee_delta_pose", "noisy-expert": "ee_delta_pose", "excite": "joint_pos"}


def _load_object(spec: str, what: str):
    module, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise VlatwinError(f"unknown {what} {spec!r} ({exc})") from None
    return obj


def resolve_task(config, config_path: Path, name: str | None):
    """The task named ``name`` (None: the config's ``task:``), a registered one, or ``module:factory``."""
    if name is not None and ":" in name:
        return _load_object(name, "task")(config)
    if name is not None and name in TASKS:
        return TASKS[name](config)
    if config.task is not None:
        from vlatwin.tasks.factory import make_task

        try:
            task = make_task(config.task, config.scene)
        except ValueError as exc:
            raise VlatwinError(f"{config_path}: task: {exc}") from None
        if name is None or name in (task.name, config.task.type):
            return task
        raise VlatwinError(
            f"unknown task {name!r}: {config_path} defines task {task.name!r} (type {config.task.type}); "
            f"registered: {', '.join(sorted(TASKS)) or 'none'}"
        )
    if name is None:
        raise VlatwinError(f"{config_path}: no task: add a 'task:' section or pass --task")
    raise VlatwinError(f"unknown task {name!r}; {config_path} has no 'task:' section and no task of that name is registered")


def make_policy(name: str, *, task=None, info=None, chain=None, spec=None, seed: int = 0, cameras=()):
    """Policy by registered name, else by spec string (``expert``, ``random``, ``hf://...``, ``module:factory``)."""
    if name in POLICIES:
        return POLICIES[name](task=task, info=info, chain=chain, spec=spec, seed=seed)

    def make_spec(space, **options):
        if spec is None or space != spec.name or options:
            raise VlatwinError(f"policy {name!r} asks for action space {space!r}; this run has {getattr(spec, 'name', None)!r}")
        return spec

    context = PolicyContext(
        task=task, info=info, chain=chain, seed=int(seed), control_hz=getattr(task, "control_hz", None),
        cameras=tuple(cameras), make_spec=make_spec, action_space=getattr(spec, "name", None),
    )
    return make_policy_from_spec(name, context)


def has_panda(stage) -> bool:
    from vlatwin.policy.expert import PANDA_BASE, PANDA_EE

    return bool(stage.GetPrimAtPath(PANDA_BASE)) and bool(stage.GetPrimAtPath(PANDA_EE))


def panda_chain(stage):
    if not has_panda(stage):
        return None
    from vlatwin.policy.expert import panda_tcp_chain

    return panda_tcp_chain(stage)


class Float32Actions:
    """A policy whose actions are rounded to float32 before the loop executes them, so the dataset's
    float32 ``action`` column is exactly what the controller got (a replay then reproduces the run)."""

    def __init__(self, policy):
        self._policy = policy

    def reset(self, episode: int | None = None) -> None:
        reset_policy(self._policy, episode)

    def act(self, observation):
        return np.asarray(self._policy.act(observation), dtype=np.float32).astype(np.float64)

    def __getattr__(self, name):
        return getattr(self._policy, name)


class StartedSim:
    """The simulator with an episode's initial state applied at every ``reset`` (what ControlLoop calls)."""

    def __init__(self, sim):
        self._sim = sim
        self.initial_state = None

    def reset(self, *, seed=None):
        if self.initial_state is None:
            return self._sim.reset(seed=seed)
        from vlatwin.tasks.initial_states import apply_initial_state

        return apply_initial_state(self._sim, self.initial_state, seed=seed)

    def __getattr__(self, name):
        return getattr(self._sim, name)


def object_bodies(info) -> list[str]:
    return [p for p in info.body_paths if p.startswith(OBJECTS_PREFIX) and p.count("/") == 3]


def episode_seeds(seed: int, index: int) -> tuple[int, np.random.Generator]:
    """(simulator reset seed, initial-state generator) of work item ``index``."""
    rng = np.random.default_rng([int(seed), int(index)])
    return int(rng.integers(0, 2**31 - 1)), np.random.default_rng([int(seed), int(index), 1])


@dataclass
class Rig:
    """Simulator, sensors, controller and loop built from a stage (shared by record and replay)."""

    sim: object
    started: StartedSim
    stage: object
    cameras: list
    controller: object
    loop: object
    chain: object
    lidar_cfgs: list = field(default_factory=list)


def build_rig(
    stage_path: Path, physics: dict, camera_cfgs: list, action_space: str, control_hz: float, annotators, *,
    policy_factory=None, recorders=(), lidar_cfgs=(), sim=None, controller_options=None, policy=None,
):
    """Simulator (loaded from ``stage_path`` unless ``sim`` is given), camera and LIDAR sensors, controller
    (``action_space`` with ``controller_options``) and the control loop around them.

    The loop's policy is ``policy``, or ``policy_factory(sim, chain, controller)`` when given.
    """
    from vlatwin.config.generate_cfg import CameraRandomizationCfg
    from vlatwin.control import make_controller
    from vlatwin.loop.control_loop import ControlLoop
    from vlatwin.sensors.camera.model import CameraModel
    from vlatwin.sensors.camera.newton_camera import CameraRendererNewton
    from vlatwin.sensors.camera.newton_sensor import CameraSensorNewton
    from vlatwin.usd.check import open_stage

    if sim is None:
        sim = load_sim(stage_path, physics)
    stage = open_stage(stage_path)
    cameras = []
    if camera_cfgs:
        renderer = CameraRendererNewton(sim, stage, shadows=False)
        cache: dict = {}

        def geometry():
            key = sim.current_step
            if key not in cache:
                cache.clear()
                cache[key] = renderer.instance_geometry()
            return cache[key]

        for cam in camera_cfgs:
            model = CameraModel.from_cfg(cam)
            renderer.add_camera(cam.name, model)
            cameras.append(CameraSensorNewton(renderer, cam, model, None, list(annotators), CameraRandomizationCfg(), None, geometry))
    lidars = []
    for lidar_cfg in lidar_cfgs:
        from vlatwin.sdg.newton_worker import lidar_pose_fn
        from vlatwin.sensors.lidar.newton_lidar import LidarNewton

        sensor = LidarNewton(
            sim, stage, lidar_cfg.resolved_profile, blocks=lidar_cfg.blocks, name=lidar_cfg.name, noise=lidar_cfg.noise,
            labels=cameras[0].renderer.labels if cameras else None,
        )
        sensor.set_pose_fn(lidar_pose_fn(sim, lidar_cfg))
        sensor.rate_hz = lidar_cfg.resolved_profile.rate_hz  # one scan per rotation, not one per control step
        lidars.append(sensor)
    chain = panda_chain(stage)
    if action_space == "ee_delta_pose" and chain is None:
        raise VlatwinError("action space 'ee_delta_pose' needs the built-in Panda's TCP chain; the stage has none")
    controller = make_controller(action_space, info=sim.info, chain=chain, control_dt=1.0 / control_hz, **(controller_options or {}))
    started = StartedSim(sim)
    if policy_factory is not None:
        policy = policy_factory(sim, chain, controller)
    loop = ControlLoop(
        started, control_hz=control_hz, sensors=[*cameras, *lidars], controller=controller, policy=policy,
        recorders=list(recorders), refit=sim.refit_render_scene,
    )
    return Rig(
        sim=sim, started=started, stage=stage, cameras=cameras, controller=controller, loop=loop, chain=chain,
        lidar_cfgs=list(lidar_cfgs),
    )


def load_sim(stage_path: Path, physics: dict):
    """A Newton backend with ``stage_path`` loaded (``physics``: dt, iterations, solver of the config)."""
    from vlatwin.sim.factory import make_backend

    sim = make_backend("newton", physics_dt=physics["dt"], solver_iterations=physics["iterations"], solver=physics["solver"])
    sim.load(stage_path)
    return sim


def dataset_features(info, controller, camera_cfgs, extras, lidar_cfgs=()) -> dict:
    joints = [p.rsplit("/", 1)[-1] for p in info.joint_names]
    feats = {"observation.state": {"dtype": "float32", "shape": (len(joints),), "names": joints}}
    objects = object_bodies(info)
    if objects:
        names = [f"{p.rsplit('/', 1)[-1]}.{c}" for p in objects for c in ("x", "y", "z", "qw", "qx", "qy", "qz")]
        feats["observation.environment_state"] = {"dtype": "float32", "shape": (len(names),), "names": names}
    spec = controller.spec.to_dict()
    feats["action"] = {"dtype": "float32", "shape": tuple(spec["shape"]), "names": list(spec["names"])}
    for cam in camera_cfgs:
        w, h = cam.resolution
        feats[f"observation.images.{cam.name}"] = {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
        if "depth" in extras:
            feats[f"observation.depth.{cam.name}"] = {"dtype": "float32", "shape": (h, w), "names": ["height", "width"]}
        if "segmentation" in extras:
            feats[f"observation.segmentation.{cam.name}"] = {"dtype": "int32", "shape": (h, w), "names": ["height", "width"]}
    if "lidar" in extras:
        from vlatwin.sensors.lidar.range_image import range_image_shape

        for lidar in lidar_cfgs:
            rings, columns = range_image_shape(lidar.resolved_profile)
            # The newest finished scan at each frame, as a range image [m] (0 = no return).
            feats[f"observation.lidar.{lidar.name}"] = {"dtype": "float32", "shape": (rings, columns), "names": ["ring", "column"]}
    return feats


def frame_from_observation(obs, action, info, camera_cfgs, extras, lidar_cfgs=()) -> dict:
    frame = {"observation.state": np.asarray(obs.state.joint_q, dtype=np.float32)}
    objects = object_bodies(info)
    if objects:
        idx = [info.body_paths.index(p) for p in objects]
        frame["observation.environment_state"] = np.asarray(obs.state.body_pose_w, dtype=np.float32)[idx].reshape(-1)
    frame["action"] = np.asarray(action, dtype=np.float32)
    for cam in camera_cfgs:
        data = obs.sensors[cam.name]
        frame[f"observation.images.{cam.name}"] = np.asarray(data["rgb"])[..., :3]
        if "depth" in extras:
            frame[f"observation.depth.{cam.name}"] = np.asarray(data["distance_to_image_plane"], dtype=np.float32).reshape(frame[f"observation.images.{cam.name}"].shape[:2])
        if "segmentation" in extras:
            seg = data["semantic_segmentation"]
            seg = seg["data"] if isinstance(seg, dict) else seg
            frame[f"observation.segmentation.{cam.name}"] = np.asarray(seg).astype(np.int32).reshape(frame[f"observation.images.{cam.name}"].shape[:2])
    if "lidar" in extras:
        from vlatwin.sensors.lidar.range_image import range_image, range_image_shape

        for lidar in lidar_cfgs:
            profile = lidar.resolved_profile
            points = obs.sensors.get(lidar.name)
            # Before the first scan has finished (it spans 1 / rate_hz), the frame holds an empty image.
            frame[f"observation.lidar.{lidar.name}"] = (
                range_image(points, profile) if points is not None else np.zeros(range_image_shape(profile), np.float32)
            )
    return frame


def annotators_for(extras) -> list[str]:
    out = ["rgb"]
    if "depth" in extras:
        out.append("distance_to_image_plane")
    if "segmentation" in extras:
        out.append("semantic_segmentation")
    return out


class EpisodeWorker(Worker):
    """One episode per work item (the loop's :class:`~vlatwin.loop.worker.Worker` contract, shared with ``generate``).

    Item ``index`` draws its simulator seed and initial state from (``seed``, ``index``) alone, so items
    can run in any order, on any worker, and resume after a crash with the same result.
    """

    def __init__(self, rig, task, policy, *, steps_cap, camera_cfgs, extras=(), policy_name="", action_space="", on_step=None):
        self.rig, self.task, self.policy = rig, task, policy
        self.steps_cap, self.camera_cfgs, self.extras = int(steps_cap), list(camera_cfgs), tuple(extras)
        self.policy_name, self.action_space, self.on_step = policy_name, action_space, on_step

    def run(self, index: int, seed: int) -> WorkResult:
        """Frames (LeRobot rows: state, action, images, extras) and the episode's metadata."""
        from vlatwin.sim.newton import SimulationDivergedError

        rig, task = self.rig, self.task
        info = rig.sim.info
        sim_seed, init_rng = episode_seeds(seed, index)
        init = task.sample_initial_state(init_rng, info)
        rig.started.initial_state = init
        obs = rig.loop.reset(seed=sim_seed, episode=index, instruction=task.instructions[0])
        tracker = task.tracker()
        success = False
        frames = []
        diverged = None
        for k in range(self.steps_cap):
            try:
                step, nxt = rig.loop.step(obs)
            except SimulationDivergedError as exc:
                # One blown-up episode must not end a long recording: it fails with the reason, the next
                # item starts from a fresh reset.
                diverged = str(exc)
                break
            frames.append(frame_from_observation(obs, step.action, info, self.camera_cfgs, self.extras, rig.lidar_cfgs))
            if self.on_step is not None:
                self.on_step(index, step)
            success = tracker.update(bool(task.success(step.next_state, info)), k)
            obs = nxt
            if success or getattr(self.policy, "failure", None):
                break
        record = {
            "work_index": index,
            "seed": int(seed),
            "sim_seed": sim_seed,
            "success": bool(success),
            "first_success_step": tracker.first_success_step,
            "initial_state": init.to_dict(),
            "policy": self.policy_name,
            "action_space": self.action_space,
            "control_hz": task.control_hz,
            "failure": diverged or getattr(self.policy, "failure", None),
        }
        return WorkResult(index=index, outputs={"frames": frames}, record=record)


@dataclass
class RecordResult:
    out_dir: Path
    attempted: int
    """Work items run by this call."""
    skipped: int
    """Work items already done (resume)."""
    kept: int
    """Episodes in the dataset."""
    succeeded: int
    """Successful episodes in the dataset."""
    failed_kept: int
    failed_dropped: int
    wall_time: float
    """[s], everything: scene build, loading, episodes, finalize."""
    episode_time: float = 0.0
    """[s] spent in the episodes: simulate + render + encode + write + commit (no set-up)."""


def _check_out_dir(out_dir: Path, resume: bool) -> bool:
    """Whether ``out_dir`` holds a run to continue."""
    if out_dir.exists() and not out_dir.is_dir():
        raise VlatwinError(f"{out_dir}: output path is a file; give a folder")
    nonempty = out_dir.exists() and any(out_dir.iterdir())
    if not nonempty:
        return False
    if (out_dir / RUN_FILE).is_file():
        if not resume:
            raise VlatwinError(f"{out_dir}: already holds a recorded dataset; pass --resume to continue it or choose another --out")
        return True
    if (out_dir / "meta" / "info.json").is_file():
        raise VlatwinError(f"{out_dir}: holds another dataset (not recorded by vlatwin record); choose another --out")
    raise VlatwinError(f"{out_dir}: output folder is not empty; choose another --out")


def record(
    config_path: str | Path,
    out_dir: str | Path,
    *,
    task: str | None = None,
    policy: str = "expert",
    episodes: int = 10,
    seed: int = 0,
    resume: bool = False,
    keep_failed: bool = False,
    max_steps: int | None = None,
    action_space: str | None = None,
    cameras: list[str] | None = None,
    extras: tuple[str, ...] = (),
    codec: str = "auto",
    crf: int = 23,
    progress: bool = True,
    on_step: Callable | None = None,
    ray: str | None = None,
    workers: int = 1,
) -> RecordResult:
    """Record ``episodes`` work items of ``policy`` on ``task`` into a LeRobotDataset v3.0 at ``out_dir``.

    ``on_step(work_index, loop_step)`` sees every :class:`LoopStep` as the loop produced it (tests use it).
    ``ray``: run the episodes on ``workers`` Ray actors, a local Ray (``"local"``) or the cluster at that
    address; this process writes them in item order as it writes its own (:mod:`vlatwin.scale.record`).
    """
    from vlatwin.config.loader import load_config
    from vlatwin.writers.lerobot import LeRobotDatasetWriter

    t0 = time.perf_counter()
    config_path, out_dir = Path(config_path), Path(out_dir)
    if episodes <= 0:
        raise VlatwinError(f"--episodes must be positive, got {episodes}")
    if ray is not None and (workers <= 0 or on_step is not None):
        raise VlatwinError("with --ray, --workers must be positive and on_step cannot be used (episodes run in other processes)")
    if max_steps is not None and max_steps <= 0:
        raise VlatwinError(f"--max-steps must be positive, got {max_steps}")
    bad = [e for e in extras if e not in EXTRAS]
    if bad:
        raise VlatwinError(f"unknown extra feature {bad[0]!r}; known: {', '.join(EXTRAS)}")
    if config_path.suffix in (".usd", ".usda", ".usdc"):
        raise VlatwinError(f"{config_path}: record needs a YAML config with a task (a stage has no task section)")
    config = load_config(config_path)
    the_task = resolve_task(config, config_path, task)
    registered = policy in POLICIES
    spec = None if registered else parse_policy_spec(policy)
    policy_space = None if spec is None else POLICY_ACTION_SPACES.get(spec.kind)
    space = action_space or policy_space or getattr(the_task, "action_space", None) or "ee_delta_pose"
    if policy_space is not None and space != policy_space:
        raise VlatwinError(f"policy {policy!r} acts in {policy_space!r}, not {space!r}")
    allowed = getattr(the_task, "action_spaces", None)
    if allowed is not None and space not in allowed:
        raise VlatwinError(f"task {the_task.name!r} cannot use action space {space!r}; it takes {', '.join(allowed)}")
    from vlatwin.control.factory import CONTROLLER_KINDS

    if space not in CONTROLLER_KINDS:
        raise VlatwinError(f"unknown action space {space!r}; known: {', '.join(CONTROLLER_KINDS)}")
    camera_cfgs = list(config.scene.cameras)
    if cameras is not None:
        known = [c.name for c in camera_cfgs]
        for name in cameras:
            if name not in known:
                raise VlatwinError(f"unknown camera {name!r}; scene cameras: {', '.join(known) or 'none'}")
        camera_cfgs = [c for c in camera_cfgs if c.name in cameras]
    lidar_cfgs = list(config.scene.lidars) if "lidar" in extras else []
    if "lidar" in extras:
        if not lidar_cfgs:
            raise VlatwinError(f"{config_path}: --extras lidar needs scene.lidars in the config")
        from vlatwin.sensors.lidar.range_image import range_image_shape

        for lidar in lidar_cfgs:
            range_image_shape(lidar.resolved_profile)  # rotating profiles only, refused before anything is written
    if abs(the_task.control_hz - round(the_task.control_hz)) > 1e-9:
        raise VlatwinError(f"task control rate {the_task.control_hz} Hz: LeRobot datasets need a whole-number fps")
    steps_cap = int(max_steps or the_task.max_steps)
    instruction = the_task.instructions[0]
    text = config_path.read_text(encoding="utf-8")
    signature = {
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "task": the_task.name,
        "policy": policy,
        "action_space": space,
        "seed": int(seed),
        "keep_failed": bool(keep_failed),
        "max_steps": steps_cap,
        "cameras": [c.name for c in camera_cfgs],
        "extras": sorted(extras),
        "codec": codec,
        "crf": int(crf),
    }
    continuing = _check_out_dir(out_dir, resume)
    if continuing:
        previous = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8"))
        if previous.get("signature") != signature:
            diff = sorted(k for k in signature if previous.get("signature", {}).get(k) != signature[k])
            raise VlatwinError(
                f"{out_dir}: was recorded with a different {', '.join(diff)}; --resume needs the same settings (or start a new --out)"
            )

    physics = {"dt": config.scene.physics.dt, "iterations": config.scene.physics.iterations, "solver": config.scene.physics.solver}
    if continuing:
        writer = LeRobotDatasetWriter.open(out_dir)
        stage_path = out_dir / SCENE_FILE
    else:
        # Scene first (in a temp name), so a bad scene leaves no dataset behind.
        from vlatwin.usd.scene_builder import write_scene

        out_dir.mkdir(parents=True, exist_ok=True)
        stage_tmp = out_dir.parent / f".{out_dir.name}.scene.usda"
        write_scene(config.scene, stage_tmp, source=config_path)
        stage_path = None

    done_items: set[int] = set()
    counts = {"succeeded": 0, "failed_kept": 0, "failed_dropped": 0}
    if continuing:
        for ep in writer.episodes:
            done_items.add(int(ep["extra"]["work_index"]))
            counts["succeeded" if ep["extra"]["success"] else "failed_kept"] += 1
        dropped_dir = out_dir / DROPPED_DIR
        if dropped_dir.is_dir():
            for path in dropped_dir.glob("work-*.json"):
                done_items.add(int(json.loads(path.read_text(encoding="utf-8"))["work_index"]))
                counts["failed_dropped"] += 1

    policy_holder = {}

    def policy_factory(sim, chain, controller):
        p = make_policy(
            policy, task=the_task, info=sim.info, chain=chain, spec=controller.spec, seed=int(seed),
            cameras=[c.name for c in camera_cfgs],
        )
        pspace = getattr(getattr(p, "info", None), "action_space", space)
        if pspace != space:
            raise VlatwinError(f"policy {policy!r} acts in {pspace!r}, not {space!r}")
        policy_holder["policy"] = p
        return Float32Actions(p)

    try:
        rig = build_rig(
            stage_path or stage_tmp, physics, camera_cfgs, space, the_task.control_hz, annotators_for(extras),
            policy_factory=policy_factory, lidar_cfgs=lidar_cfgs,
        )
    except BaseException:
        # Nothing half-made stays behind: the temporary stage and a folder this call created.
        if not continuing:
            stage_tmp.unlink(missing_ok=True)
            if out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()
        raise
    info = rig.sim.info
    try:
        if not continuing:
            features = dataset_features(info, rig.controller, camera_cfgs, extras, lidar_cfgs)
            robot_type = "panda" if rig.chain is not None else None
            writer = LeRobotDatasetWriter.create(out_dir, round(the_task.control_hz), features, robot_type, codec=codec, crf=crf)
            stage_path = out_dir / SCENE_FILE
            stage_path.parent.mkdir(parents=True, exist_ok=True)
            stage_tmp.replace(stage_path)
        run_state = {
            "signature": signature,
            "complete": False,
            "episodes_requested": int(episodes),
            "instruction": instruction,
            "physics": physics,
            "control_hz": the_task.control_hz,
            "cameras": [c.model_dump(mode="json") for c in camera_cfgs],
            "joint_names": list(info.joint_names),
            "object_bodies": object_bodies(info),
        }

        def write_run(complete: bool) -> None:
            run_state.update(complete=complete, counts={**counts, "kept": writer.num_episodes})
            atomic_write_bytes(out_dir / RUN_FILE, json.dumps(run_state, indent=2).encode())

        if continuing:
            prev = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8"))
            run_state["episodes_requested"] = max(int(episodes), int(prev.get("episodes_requested", 0)))
        write_run(False)
        todo = [i for i in range(episodes) if i not in done_items]
        bar = _progress(len(todo), progress)
        attempted = 0
        episode_time = 0.0
        worker = EpisodeWorker(
            rig, the_task, policy_holder["policy"], steps_cap=steps_cap, camera_cfgs=camera_cfgs, extras=extras,
            policy_name=policy, action_space=space, on_step=on_step,
        )
        remote = None
        if ray is not None:
            from vlatwin.scale.record import iter_episodes_ray

            remote = iter_episodes_ray(
                config_path, stage_path, todo, seed, workers=workers, address=ray, task=task, policy=policy,
                action_space=space, cameras=[c.name for c in camera_cfgs], extras=tuple(extras), steps_cap=steps_cap,
            )
        try:
            for i in todo:
                t_item = time.perf_counter()
                result = worker.run(i, seed) if remote is None else next(remote)
                frames, extra = result.outputs["frames"], result.record
                success = extra["success"]
                for frame in frames:
                    writer.add_frame(frame)
                if (success or keep_failed) and frames:
                    writer.save_episode(instruction, extra)
                    counts["succeeded" if success else "failed_kept"] += 1
                else:
                    writer.discard_episode()
                    atomic_write_bytes(out_dir / DROPPED_DIR / f"work-{i:06d}.json", json.dumps(extra).encode())
                    counts["failed_dropped"] += 1
                attempted += 1
                write_run(False)
                episode_time += time.perf_counter() - t_item
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(kept=writer.num_episodes, dropped=counts["failed_dropped"], refresh=False)
        finally:
            if bar is not None:
                bar.close()
            if remote is not None:
                remote.close()
        writer.finalize()
        write_run(complete=True)
    except OSError as exc:
        raise VlatwinError(f"{out_dir}: write failed: {exc.strerror or exc}; finished episodes are kept, rerun with --resume") from None
    finally:
        close = getattr(rig.sim, "close", None)
        if close is not None:
            close()
        if not continuing and stage_tmp.exists():
            stage_tmp.unlink()
    return RecordResult(
        out_dir=out_dir, attempted=attempted, skipped=len(done_items), kept=writer.num_episodes, succeeded=counts["succeeded"],
        failed_kept=counts["failed_kept"], failed_dropped=counts["failed_dropped"], wall_time=time.perf_counter() - t0,
        episode_time=episode_time,
    )


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="episode", desc="recording", mininterval=0.5, dynamic_ncols=True)
