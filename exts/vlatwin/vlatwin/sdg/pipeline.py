"""``vlatwin generate``: the dataset job.

Per frame (a work item of :class:`vlatwin.loop.Worker`): reset -> randomize (seeded by run seed and
frame index) -> settle physics -> capture every camera and LIDAR through the loop's scheduler -> hand
the outputs to the writer thread. The writer thread encodes (PNG/NPY/JSON),
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
CAPTURE_SCHEDULE = 2
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
        # How a frame's sensors are scheduled and draw random numbers: 2 = one shared capture window run by
        # the loop (datasets without the key: vlatwin 0.1.0, sensors one after another). Resuming across would mix them.
        "capture_schedule": CAPTURE_SCHEDULE,
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
        settings: str | Path | None = None,
        kit_settings: dict | None = None,
        render: str | None = None,
        _defer_workers: bool = False,
    ):
        from vlatwin.sdg.randomize import with_distractors

        config_path = Path(config_path)
        config, config_text, from_stage = load_run_source(config_path, settings)
        if render is not None:
            config = with_render(config, render)
            config_text += f"\n# --render {render}"
        _check_render(config, backend, workers)
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
        if backend == "isaacsim":
            _check_isaac_lidars(config, config_path)  # before anything is written to --out
        self.out_dir = out_dir = Path(out_dir)
        _check_out_dir(out_dir, resume)

        self.signature = _run_signature(config, config_text, self.seed)
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
        self._done = done
        self._mark(complete=False)

        config = config.model_copy(update={"scene": with_distractors(config.scene, gen.randomize.distractors, self.seed)})
        stage_path = out_dir / SCENE_FILE
        if from_stage:
            copy_stage_with_objects(config_path, stage_path, config.scene.objects)
        else:
            from vlatwin.usd.scene_builder import write_scene

            write_scene(config.scene, stage_path, source=config_path)
        self._pending = (config, config_path, names, stage_path, cameras)
        if _defer_workers:
            return  # create_async attaches the Kit worker inside the event loop
        if backend == "isaacsim":
            from vlatwin.sim.isaacsim import require_kit

            require_kit()
            if workers != 1:
                raise VlatwinError("--workers must be 1 with --backend isaacsim (one Kit app per process)")
            from vlatwin.sdg.isaac_worker import WorkerIsaac

            self._attach([WorkerIsaac(config, stage_path, cameras, seed=self.seed, settings=kit_settings)])
        else:
            self._attach(self._make_workers(backend, config, stage_path, cameras, workers, self.seed, textures))

    @classmethod
    async def create_async(cls, config_path, out_dir, *, kit_settings: dict | None = None, **kw) -> "DatasetRun":
        """An isaacsim job set up inside Kit's event loop (the extension window): the worker is created
        with ``await WorkerIsaac.create_async`` (``World.initialize_simulation_context_async``, ``reset_async``)."""
        from vlatwin.sim.isaacsim import require_kit

        require_kit()
        job = cls(config_path, out_dir, backend="isaacsim", _defer_workers=True, **kw)
        from vlatwin.sdg.isaac_worker import WorkerIsaac

        config, _, _, stage_path, cameras = job._pending
        job._attach([await WorkerIsaac.create_async(config, stage_path, cameras, seed=job.seed, settings=kit_settings)])
        return job

    def _attach(self, workers) -> None:
        config, config_path, names, _, _ = self._pending
        out_dir = self.out_dir
        self.workers = workers
        self.writers = self._make_writers(config, config_path, names, self.workers[0].renderer.labels)
        for writer in self.writers:
            for rel, data in writer.start().items():
                atomic_write_bytes(out_dir / rel, data)
        self.todo = [f for f in range(self.frames) if f not in self._done]
        self.frames_written = 0

    @staticmethod
    def _make_workers(backend, config, stage_path, cameras, workers, seed=0, textures=None):
        if backend == "newton":
            from vlatwin.sdg.newton_worker import FrameWorkerNewton

            return [FrameWorkerNewton(config, stage_path, cameras, textures) for _ in range(workers)]
        raise VlatwinError(f"unknown backend {backend!r}; choose newton or isaacsim")

    def _make_writers(self, config, config_path, names, labels):
        from vlatwin.writers.basic import WriterBasic
        from vlatwin.writers.coco import WriterCoco

        gen = config.generate
        classes = sorted(set(labels.instance_classes) & set(gen.class_filter or labels.instance_classes))
        writers = []
        for name in gen.writers:
            if name == "basic":
                writers.append(WriterBasic(self.out_dir, names, set(gen.annotators), seed=self.seed))
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
        return {rel: atomic_write_bytes(self.out_dir / rel, data) for rel, data in encode_frame(self.writers, frame, outputs, record).items()}

    def step(self) -> int | None:
        """Render, write and record the next remaining frame on this thread; None when all are done."""
        if not self.todo:
            return None
        frame = self.todo.pop(0)
        try:
            result = self.workers[0].run(frame, self.seed)
            files = self.write_frame(frame, result.outputs, result.record)
        except OSError as exc:
            raise VlatwinError(f"{self.out_dir}: write failed: {exc.strerror or exc}; finished frames are kept, rerun with --resume") from None
        self.manifest.append(frame, files)
        self.frames_written += 1
        return frame

    async def step_async(self) -> int | None:
        """:meth:`step` inside Kit's event loop (the worker's renders are awaited)."""
        if not self.todo:
            return None
        frame = self.todo.pop(0)
        try:
            result = await self.workers[0].run_async(frame, self.seed)
            files = self.write_frame(frame, result.outputs, result.record)
        except OSError as exc:
            raise VlatwinError(f"{self.out_dir}: write failed: {exc.strerror or exc}; finished frames are kept, rerun with --resume") from None
        self.manifest.append(frame, files)
        self.frames_written += 1
        return frame

    async def finalize_async(self) -> None:
        """:meth:`finalize` inside Kit's event loop (``wait_until_complete_async`` before releasing Replicator)."""
        workers, self.workers = self.workers, []
        self._finalize_files()
        for worker in workers:
            await worker.close_async()

    def run(self, *, progress: bool = True, queue_size: int = 4) -> GenerateResult:
        """Render all remaining frames with the render threads + writer thread, then finalize."""
        try:
            written, wall = _run_frames(self, self.todo, queue_size, progress)
        except BaseException:
            self._close_workers()  # finished frames stay on disk for --resume; engines (e.g. Blender's scene) are freed
            raise
        self.frames_written += written
        self.todo = []
        self.finalize()
        return GenerateResult(out_dir=self.out_dir, frames_written=self.frames_written, frames_skipped=self.frames_skipped, wall_time=wall)

    def finalize(self) -> None:
        """Files built from all finished frames (COCO JSON), and the completion mark."""
        self._finalize_files()
        self._close_workers()

    def _close_workers(self) -> None:
        for worker in self.workers:
            close = getattr(worker, "close", None)
            if close is not None:
                close()
        self.workers = []

    def _finalize_files(self) -> None:
        finished = sorted(self.manifest.read())
        for writer in self.writers:
            if hasattr(writer, "finalize"):
                for rel, data in writer.finalize([f for f in finished if f < self.frames]).items():
                    atomic_write_bytes(self.out_dir / rel, data)
        self._mark(complete=set(range(self.frames)) <= set(finished))


def encode_frame(writers, frame: int, outputs: dict, record: dict) -> dict[str, bytes]:
    """Every file of one rendered frame, ``{relative path: bytes}`` (no I/O: Ray workers encode, the driver writes)."""
    files: dict[str, bytes] = {}
    for writer in writers:
        payload = outputs["lidars"] if getattr(writer, "lidar_names", None) is not None else outputs["cameras"]
        if payload:
            files.update(writer.encode_frame(frame, payload))
    files[f"frames/frame_{frame:04d}.json"] = json.dumps({"frame": frame, "randomization": record}, indent=2).encode()
    return files


USD_SUFFIXES = (".usd", ".usda", ".usdc")
RENDERERS = ("raster", "cycles")


def with_render(config, render: str):
    """``config`` with every camera's RGB renderer set to ``render`` (``--render``); other camera options kept."""
    from vlatwin.config.generate_cfg import CameraOverrideCfg

    if render not in RENDERERS:
        raise VlatwinError(f"--render: unknown renderer {render!r}; choose {' or '.join(RENDERERS)}")
    gen = config.generate
    options = dict(gen.camera_options)
    for cam in config.scene.cameras:
        options[cam.name] = options.get(cam.name, CameraOverrideCfg()).model_copy(update={"render": render})
    return config.model_copy(update={"generate": gen.model_copy(update={"camera_options": options})})


def _check_render(config, backend: str, workers: int) -> None:
    """``render: cycles`` runs on the embedded backend, one Blender scene per process: one line otherwise."""
    cycles = sorted(name for name, o in config.generate.camera_options.items() if o.render == "cycles")
    if not cycles:
        return
    if backend == "isaacsim":
        raise VlatwinError(
            f"cameras {cycles}: render: cycles is the embedded backend's path tracer; Isaac Sim renders RTX itself "
            "(remove render: cycles / --render, or use --backend newton)"
        )
    if workers > 1:
        raise VlatwinError(
            f"cameras {cycles}: render: cycles holds one Blender scene per process, so --workers must be 1; "
            "scale Cycles out over processes with --ray"
        )


def _check_isaac_lidars(config, config_path) -> None:
    """Every LIDAR needs a profile with an Isaac Sim RTX config on the isaacsim backend: one line naming them."""
    for lidar in config.scene.lidars:
        try:
            lidar.isaac_resolved_profile
        except ValueError as exc:
            raise VlatwinError(f"{config_path}: {exc}") from None


def load_run_source(source: Path, settings: str | Path | None = None):
    """(config, text that identifies it for --resume, whether it came from a stage) for a YAML config or a USD stage.

    A stage is read back into a config (:func:`vlatwin.usd.read_back.config_from_stage`); its dataset
    settings come from ``settings`` (a YAML file with a ``generate:`` section) or the defaults.
    """
    from vlatwin.config.loader import load_config

    if source.suffix in USD_SUFFIXES:
        import yaml

        from vlatwin.usd.read_back import config_from_stage

        if not source.is_file():
            raise VlatwinError(f"{source}: USD file not found")
        settings_data, settings_text = None, ""
        if settings is not None:
            settings = Path(settings)
            if not settings.is_file():
                raise VlatwinError(f"{settings}: settings file not found")
            settings_text = settings.read_text(encoding="utf-8")
            try:
                settings_data = yaml.safe_load(settings_text) or {}
            except yaml.YAMLError as exc:
                raise VlatwinError(f"{settings}: YAML syntax error: {exc}") from None
            if not isinstance(settings_data, dict):
                raise VlatwinError(f"{settings}: expected a mapping with a 'generate:' section")
            unknown = sorted(set(settings_data) - {"generate"})
            if unknown:
                raise VlatwinError(
                    f"{settings}: settings for a USD stage take a 'generate:' section only (the scene is the stage); "
                    f"remove {unknown}"
                )
            _check_generate_section(settings, settings_data.get("generate") or {})
        config = config_from_stage(source, settings_data)
        text = hashlib.sha256(source.read_bytes()).hexdigest() + settings_text
        return config, text, True
    if settings is not None:
        raise VlatwinError("--settings is for USD stages; a YAML config carries its own generate: section")
    return load_config(source), source.read_text(encoding="utf-8"), False


def _check_generate_section(settings: Path, data) -> None:
    """Validate a settings file's ``generate:`` on its own, so its errors name that file (not the stage)."""
    from pydantic import ValidationError

    from vlatwin.config.generate_cfg import GenerateCfg
    from vlatwin.config.loader import format_validation_error

    if not isinstance(data, dict):
        raise VlatwinError(f"{settings}: generate: expected a mapping")
    # Camera names refer to the stage: checked later against it.
    try:
        GenerateCfg.model_validate({k: v for k, v in data.items() if k not in ("cameras", "camera_options")}, context={"base_dir": settings.parent})
    except ValidationError as exc:
        raise VlatwinError(f"{settings}: generate.{format_validation_error(exc, GenerateCfg)}") from None


def copy_stage_with_objects(source: Path, out_path: Path, objects) -> None:
    """The user's stage, flattened into one file (references resolved), plus distractor objects it lacks."""
    from vlatwin.usd.check import open_stage
    from vlatwin.usd.scene_builder import OBJECTS_PATH, _author_object, export_stage

    from pxr import Usd, UsdGeom

    flat = Usd.Stage.Open(open_stage(source).Flatten())
    missing = [o for o in objects if not flat.GetPrimAtPath(f"{OBJECTS_PATH}/{o.name}")]
    if missing:
        if not flat.GetPrimAtPath(OBJECTS_PATH):
            UsdGeom.Scope.Define(flat, OBJECTS_PATH)
        for obj in missing:
            _author_object(flat, obj, {}, {})
    export_stage(flat, out_path)


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
    settings: str | Path | None = None,
    render: str | None = None,
) -> GenerateResult:
    """Write a dataset for the config (or USD stage) at ``config_path`` into ``out_dir`` (see :class:`DatasetRun`).

    ``render``: ``raster`` | ``cycles`` for every camera (default: each camera's ``camera_options.<name>.render``).
    """
    job = DatasetRun(
        config_path, out_dir, frames=frames, seed=seed, resume=resume, workers=workers, backend=backend, settings=settings,
        render=render,
    )
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
                result = worker.run(frame, seed)
                while not stop.is_set():
                    try:
                        results.put((frame, result.outputs, result.record), timeout=0.2)
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
    # Kit (the isaacsim worker) is driven from its main thread only: render on this thread, encode on the writer.
    on_caller = [w for w in workers_list if getattr(w, "main_thread", False)]
    threads = [
        threading.Thread(target=render_loop, args=(w,), name=f"vlatwin-render-{i}", daemon=True)
        for i, w in enumerate(workers_list)
        if w not in on_caller
    ]
    writer_thread = threading.Thread(target=write_loop, name="vlatwin-writer", daemon=True)
    writer_thread.start()
    for t in threads:
        t.start()
    try:
        for w in on_caller:
            render_loop(w)
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
