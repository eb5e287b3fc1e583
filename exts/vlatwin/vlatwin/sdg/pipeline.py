"""``vlatwin generate``: the dataset job.

Per frame: reset -> randomize (seeded by run seed and frame index) -> settle physics -> render each
camera -> annotate -> hand the outputs to the writer thread. The writer thread encodes (PNG/NPY/JSON),
writes files atomically and appends the frame to ``manifest.jsonl`` in frame order. A bounded queue
between them gives backpressure, so memory stays bounded when encoding is slower than rendering.
With ``workers > 1`` several render threads (each with its own simulator and renderer) share the
frames; Warp releases the GIL while its kernels run.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.utils.files import ensure_writable_folder
from vlatwin.writers.storage import Manifest, atomic_write_bytes, remove_unfinished

RUN_FILE = "dataset.json"
SCENE_FILE = "scene.usda"


@dataclass
class GenerateResult:
    out_dir: Path
    frames_written: int
    frames_skipped: int
    wall_time: float

    @property
    def frames_per_second(self) -> float:
        return self.frames_written / self.wall_time if self.wall_time > 0 else 0.0


def _check_out_dir(out_dir: Path, resume: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise VlatwinError(f"{out_dir}: output path is a file; give a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not resume:
        raise VlatwinError(f"{out_dir}: output folder is not empty; pass --resume to continue it or choose another --out")
    if resume and not (out_dir / RUN_FILE).is_file():
        if out_dir.exists() and any(out_dir.iterdir()):
            raise VlatwinError(f"{out_dir}: not a vlatwin dataset (no {RUN_FILE}); cannot --resume it")
    ensure_writable_folder(out_dir, name=str(out_dir))


def _run_signature(config, config_text: str, seed: int) -> dict:
    """What must match for --resume. The frame count may grow: frames are independent of each other."""
    return {
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        "seed": seed,
        "cameras": _camera_names(config),
        "annotators": list(config.generate.annotators),
        "writers": list(config.generate.writers),
    }


def _camera_names(config) -> list[str]:
    return list(config.generate.cameras or [c.name for c in config.scene.cameras])


def _frame_files(root: Path):
    """(path, frame) for every per-frame file in a dataset folder."""
    for path in root.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        stem = path.stem
        tail = stem.rsplit("_", 1)[-1]
        if tail.isdigit() and path.name not in (RUN_FILE,):
            yield path, int(tail)


class _Worker:
    """One simulator + renderer (one per render thread)."""

    def __init__(self, config, stage_path: Path, cameras, textures=None):
        from vlatwin.sensors.camera.model import CameraModel
        from vlatwin.sensors.camera.newton_camera import CameraRendererNewton
        from vlatwin.sdg.randomize import SceneRandomizer
        from vlatwin.sim.newton import SimBackendNewton
        from vlatwin.usd.check import open_stage

        gen = config.generate
        self.config = config
        physics = config.scene.physics
        self.sim = SimBackendNewton(physics_dt=physics.dt, solver_iterations=physics.iterations, solver=physics.solver)
        self.sim.load(stage_path)
        stage = open_stage(stage_path)
        spp = max([gen.camera_options[c.name].samples_per_pixel for c in cameras if c.name in gen.camera_options] or [1])
        self.renderer = CameraRendererNewton(self.sim, stage, shadows=gen.shadows, samples_per_pixel=spp)
        self.cameras = []
        for cam in cameras:
            options = gen.camera_options.get(cam.name)
            lens = options.lens if options else None
            model = CameraModel.from_cfg(
                cam, distortion=lens.distortion if lens else (), model=lens.model if lens else "pinhole"
            )
            self.renderer.add_camera(cam.name, model)
            self.cameras.append((cam, model, options))
        if gen.checker_textures:
            self.renderer.use_checker_texture(gen.checker_textures)
        self._texture_images = textures or {}
        self.randomizer = SceneRandomizer(config, self.sim, self.renderer)
        from vlatwin.sensors.lidar.newton_lidar import LidarNewton

        self.lidars = [
            (lidar, LidarNewton(self.sim, stage, lidar.resolved_profile, blocks=lidar.blocks, labels=self.renderer.labels))
            for lidar in config.scene.lidars
        ]

    def render_frame(self, frame: int, seed: int) -> tuple[dict, dict]:
        from vlatwin.sdg.randomize import camera_pose, frame_rng
        from vlatwin.sensors.camera.realism import apply_realism

        gen = self.config.generate
        rng = frame_rng(seed, frame)
        record = self.randomizer.apply(rng)
        if self._texture_images:
            chosen = {cls: int(rng.integers(len(images))) for cls, images in self._texture_images.items()}
            self.renderer.set_textures(
                {cls: self._texture_images[cls][i][1] for cls, i in chosen.items()}, repeat=gen.texture_repeat
            )
            record["textures"] = {cls: self._texture_images[cls][i][0] for cls, i in chosen.items()}
        if gen.settle_steps:
            self.sim.step(num_steps=gen.settle_steps)
        self.renderer.refit()
        # Silhouettes and 3D extents come from the shapes' poses: only when a box annotator needs them.
        box_annotators = {"bounding_box_2d_tight", "bounding_box_2d_loose", "bounding_box_3d", "occlusion"}
        geometry = self.renderer.instance_geometry() if box_annotators & set(gen.annotators) else None
        outputs = {}
        for cam, model, options in self.cameras:
            T_w_cam = camera_pose(cam, gen.randomize.cameras, rng)
            blur = options.motion_blur if options is not None else None
            blurred = None
            if blur is not None and blur.subframes > 1:
                blurred, T_w_cam = self._motion_blur(cam.name, T_w_cam, blur, rng)
            raw = self.renderer.render(cam.name, T_w_cam)
            if blurred is not None:
                raw.rgba = blurred
            out = self.renderer.annotate(cam.name, raw, T_w_cam, gen.annotators, geometry=geometry, keep_classes=gen.class_filter)
            if options is not None and "rgb" in out:
                out["rgb"] = apply_realism(out["rgb"], options.realism, rng, fx=model.fx)
            outputs[cam.name] = out
        scans = {}
        for lidar_cfg, lidar in self.lidars:
            record.setdefault("lidar_scan_start", {})[lidar_cfg.name] = round(self.sim.get_state().time, 9)
            scans[lidar_cfg.name] = lidar.scan(
                _lidar_pose_fn(self.sim, lidar_cfg),
                rng=rng if lidar_cfg.noise else None,
                scan_index=frame,
            )
        return {"cameras": outputs, "lidars": scans}, record

    def _motion_blur(self, name, T_w_cam, blur, rng):
        """Render ``blur.subframes`` colour images while physics and the camera move across the shutter.

        Returns the averaged colour and the camera pose at shutter close (labels are rendered there).
        """
        dt = self.sim.physics_dt
        steps = max(1, int(round(blur.shutter_s / blur.subframes / dt)))
        velocity = np.zeros(3)
        if blur.camera_shake_speed > 0:
            direction = rng.normal(size=3)
            velocity = direction / np.linalg.norm(direction) * blur.camera_shake_speed
        frames = []
        T = T_w_cam.copy()
        for k in range(blur.subframes):
            if k:
                self.sim.step(num_steps=steps)
                self.renderer.refit()
            T = T_w_cam.copy()
            T[:3, 3] += velocity * (k * steps * dt)
            frames.append(self.renderer.render_color(name, T))
        return _average_srgb(frames), T


def _load_textures(textures: dict) -> dict[str, list[tuple[str, np.ndarray]]]:
    """(name, RGBA image) per configured texture entry; 'checker' is the procedural checkerboard."""
    from PIL import Image

    from vlatwin.sensors.camera.newton_camera import checkerboard_image

    out = {}
    for cls, entries in textures.items():
        images = []
        for entry in entries:
            if entry == "checker":
                images.append(("checker", checkerboard_image()))
            else:
                try:
                    images.append((Path(entry).name, np.asarray(Image.open(entry).convert("RGBA"))))
                except OSError as exc:
                    raise VlatwinError(f"generate.textures.{cls}: cannot read image {entry} ({exc})") from None
        out[cls] = images
    return out


def _lidar_pose_fn(sim, lidar_cfg):
    """Sensor-to-world pose as a function of time: static, or riding on a rigid body (read live)."""
    from vlatwin.utils.transforms import make_transform, quat_wxyz_to_matrix, rpy_deg_to_matrix

    offset = make_transform(rpy_deg_to_matrix(lidar_cfg.rpy_deg), lidar_cfg.position)
    if lidar_cfg.parent is None:
        return lambda t: offset
    info = sim.info
    body = info.body_index(lidar_cfg.parent)

    def pose_at(t: float) -> np.ndarray:
        pose = sim.get_state().body_pose_w[body]
        return make_transform(quat_wxyz_to_matrix(pose[3:]), pose[:3]) @ offset

    return pose_at


def _average_srgb(frames: list[np.ndarray]) -> np.ndarray:
    """Average sRGB images in linear light (how a sensor integrates over the shutter)."""
    from vlatwin.sensors.camera.realism import linear_to_srgb, srgb_to_linear

    linear = np.mean([srgb_to_linear(f[..., :3]) for f in frames], axis=0)
    out = frames[-1].copy()
    out[..., :3] = linear_to_srgb(linear)
    return out


class DatasetRun:
    """One dataset job, set up once: output checks, resume state, scene, workers, writers.

    ``run()`` renders every remaining frame (render threads + writer thread); ``step()`` renders and
    writes the next frame on the calling thread, for hosts that must keep their own loop alive (the
    Kit window yields to the app between frames); ``finalize()`` writes the files built from all
    finished frames and marks the run complete. ``backend="isaacsim"`` needs a running Isaac Sim.
    """

    def __init__(
        self,
        config_path: str | Path,
        out_dir: str | Path,
        *,
        frames: int | None = None,
        seed: int | None = None,
        resume: bool = False,
        workers: int = 1,
        backend: str = "newton",
    ):
        from vlatwin.config.loader import load_config
        from vlatwin.sdg.randomize import with_distractors
        from vlatwin.usd.scene_builder import write_scene

        config_path = Path(config_path)
        config = load_config(config_path)
        gen = config.generate
        self.frames = gen.frames if frames is None else frames
        self.seed = gen.seed if seed is None else seed
        if self.frames <= 0:
            raise VlatwinError(f"--frames must be positive, got {self.frames}")
        if workers <= 0:
            raise VlatwinError(f"--workers must be positive, got {workers}")
        names = _camera_names(config)
        if not names and not config.scene.lidars:
            raise VlatwinError(f"{config_path}: no sensors: add scene.cameras or scene.lidars")
        cameras = [c for c in config.scene.cameras if c.name in names]
        # Read texture images once (shared by every worker), before anything is written to --out.
        try:
            textures = _load_textures(gen.textures)
        except VlatwinError as exc:
            raise VlatwinError(f"{config_path}: {exc}") from None
        self.out_dir = out_dir = Path(out_dir)
        _check_out_dir(out_dir, resume)

        self.signature = _run_signature(config, config_path.read_text(encoding="utf-8"), self.seed)
        self.run_file = out_dir / RUN_FILE
        self.manifest = Manifest(out_dir)
        done: dict[int, dict[str, str]] = {}
        if resume and self.run_file.is_file():
            previous = json.loads(self.run_file.read_text(encoding="utf-8"))
            if previous.get("signature") != self.signature:
                raise VlatwinError(
                    f"{out_dir}: was generated with a different config or seed; --resume needs the same ones "
                    f"(or start a new --out)"
                )
            done = {f: files for f, files in self.manifest.read().items() if f < self.frames}
            remove_unfinished(out_dir, done, _frame_files)
        self.frames_skipped = len(done)
        self._mark(complete=False)

        config = config.model_copy(update={"scene": with_distractors(config.scene, gen.randomize.distractors, self.seed)})
        stage_path = out_dir / SCENE_FILE
        write_scene(config.scene, stage_path, source=config_path)
        self.workers = self._make_workers(backend, config, stage_path, cameras, workers, self.seed, textures)
        self.writers = self._make_writers(config, config_path, names, self.workers[0].renderer.labels)
        for writer in self.writers:
            for rel, data in writer.start().items():
                atomic_write_bytes(out_dir / rel, data)
        self.todo = [f for f in range(self.frames) if f not in done]
        self.frames_written = 0

    @staticmethod
    def _make_workers(backend, config, stage_path, cameras, workers, seed=0, textures=None):
        if backend == "isaacsim":
            from vlatwin.sim.isaacsim import require_kit

            require_kit()
            if workers != 1:
                raise VlatwinError("--workers must be 1 with --backend isaacsim (one Kit app per process)")
            from vlatwin.sdg.isaac_worker import WorkerIsaac

            return [WorkerIsaac(config, stage_path, cameras, seed=seed)]
        if backend == "newton":
            return [_Worker(config, stage_path, cameras, textures) for _ in range(workers)]
        raise VlatwinError(f"unknown backend {backend!r}; choose newton or isaacsim")

    def _make_writers(self, config, config_path, names, labels):
        from vlatwin.writers.basic import WriterBasic
        from vlatwin.writers.coco import WriterCoco

        gen = config.generate
        classes = sorted(set(labels.instance_classes) & set(gen.class_filter or labels.instance_classes))
        writers = []
        for name in gen.writers:
            if name == "basic":
                writers.append(WriterBasic(self.out_dir, names, set(gen.annotators)))
            elif name == "coco":
                if "instance_segmentation" not in gen.annotators or "rgb" not in gen.annotators:
                    raise VlatwinError(f"{config_path}: generate.writers: 'coco' needs the rgb and instance_segmentation annotators")
                writers.append(WriterCoco(self.out_dir, names, set(gen.annotators), classes=classes))
        if config.scene.lidars:
            from vlatwin.writers.lidar import WriterLidar

            class_names = {labels.class_id(c): c for c in labels.classes}
            instance_paths = {i + 2: p for i, p in enumerate(labels.instance_paths)}
            writers.append(WriterLidar([lidar.name for lidar in config.scene.lidars], class_names, instance_paths))
        return writers

    def _mark(self, *, complete: bool) -> None:
        atomic_write_bytes(self.run_file, json.dumps({"signature": self.signature, "complete": complete}, indent=2).encode())

    def write_frame(self, frame: int, outputs: dict, record: dict) -> dict[str, str]:
        """Encode and write one rendered frame atomically; returns {relative path: sha256}."""
        files: dict[str, str] = {}
        for writer in self.writers:
            payload = outputs["lidars"] if getattr(writer, "lidar_names", None) is not None else outputs["cameras"]
            if not payload:
                continue
            for rel, data in writer.encode_frame(frame, payload).items():
                files[rel] = atomic_write_bytes(self.out_dir / rel, data)
        rel = f"frames/frame_{frame:04d}.json"
        files[rel] = atomic_write_bytes(self.out_dir / rel, json.dumps({"frame": frame, "randomization": record}, indent=2).encode())
        return files

    def step(self) -> int | None:
        """Render, write and record the next remaining frame on this thread; None when all are done."""
        if not self.todo:
            return None
        frame = self.todo.pop(0)
        try:
            outputs, record = self.workers[0].render_frame(frame, self.seed)
            files = self.write_frame(frame, outputs, record)
        except OSError as exc:
            raise VlatwinError(f"{self.out_dir}: write failed: {exc.strerror or exc}; finished frames are kept, rerun with --resume") from None
        self.manifest.append(frame, files)
        self.frames_written += 1
        return frame

    def run(self, *, progress: bool = True, queue_size: int = 4) -> GenerateResult:
        """Render all remaining frames with the render threads + writer thread, then finalize."""
        written, wall = _run_frames(self, self.todo, queue_size, progress)
        self.frames_written += written
        self.todo = []
        self.finalize()
        return GenerateResult(out_dir=self.out_dir, frames_written=self.frames_written, frames_skipped=self.frames_skipped, wall_time=wall)

    def finalize(self) -> None:
        """Files built from all finished frames (COCO JSON), and the completion mark."""
        finished = sorted(self.manifest.read())
        for writer in self.writers:
            if hasattr(writer, "finalize"):
                for rel, data in writer.finalize([f for f in finished if f < self.frames]).items():
                    atomic_write_bytes(self.out_dir / rel, data)
        self._mark(complete=set(range(self.frames)) <= set(finished))
        for worker in self.workers:
            close = getattr(worker, "close", None)
            if close is not None:
                close()
        self.workers = []


def generate(
    config_path: str | Path,
    out_dir: str | Path,
    *,
    frames: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    workers: int = 1,
    progress: bool = True,
    queue_size: int = 4,
    backend: str = "newton",
) -> GenerateResult:
    """Write a dataset for the config at ``config_path`` into ``out_dir`` (see :class:`DatasetRun`)."""
    job = DatasetRun(config_path, out_dir, frames=frames, seed=seed, resume=resume, workers=workers, backend=backend)
    return job.run(progress=progress, queue_size=queue_size)


def _run_frames(job: DatasetRun, todo, queue_size, progress):
    """Render ``todo`` frames on the worker threads; encode + write on one writer thread."""
    workers_list, seed, out_dir, manifest = job.workers, job.seed, job.out_dir, job.manifest
    work: queue.Queue = queue.Queue()
    for frame in todo:
        work.put(frame)
    results: queue.Queue = queue.Queue(maxsize=queue_size)
    errors: list[BaseException] = []
    stop = threading.Event()

    def render_loop(worker):
        try:
            while not stop.is_set():
                try:
                    frame = work.get_nowait()
                except queue.Empty:
                    return
                outputs, record = worker.render_frame(frame, seed)
                while not stop.is_set():
                    try:
                        results.put((frame, outputs, record), timeout=0.2)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
            stop.set()

    written = [0]
    bar = _progress(len(todo), progress)

    def write_loop():
        pending: dict[int, dict[str, str]] = {}
        order = sorted(todo)
        next_index = 0
        try:
            while next_index < len(order) and not (stop.is_set() and results.empty()):
                try:
                    frame, outputs, record = results.get(timeout=0.2)
                except queue.Empty:
                    continue
                pending[frame] = job.write_frame(frame, outputs, record)
                # The manifest advances in frame order so it is byte-identical for a given seed.
                while next_index < len(order) and order[next_index] in pending:
                    f = order[next_index]
                    manifest.append(f, pending.pop(f))
                    next_index += 1
                    written[0] += 1
                    if bar is not None:
                        bar.update(1)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=render_loop, args=(w,), name=f"vlatwin-render-{i}", daemon=True) for i, w in enumerate(workers_list)]
    writer_thread = threading.Thread(target=write_loop, name="vlatwin-writer", daemon=True)
    writer_thread.start()
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.5)
        if not errors:
            while writer_thread.is_alive():
                writer_thread.join(timeout=0.5)
        stop.set()
        writer_thread.join()
    except KeyboardInterrupt:
        stop.set()
        raise
    finally:
        if bar is not None:
            bar.close()
    if errors:
        exc = errors[0]
        if isinstance(exc, VlatwinError):
            raise exc
        if isinstance(exc, OSError):
            raise VlatwinError(f"{out_dir}: write failed: {exc.strerror or exc}; finished frames are kept, rerun with --resume") from None
        raise exc
    return written[0], time.perf_counter() - t0


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="generating", mininterval=0.5, dynamic_ncols=True)
