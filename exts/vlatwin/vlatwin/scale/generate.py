"""``vlatwin generate --ray``: dataset frames sharded over Ray actors, written by the driver as the plain run writes them.

Each actor owns one :class:`~vlatwin.sdg.newton_worker.FrameWorkerNewton` (the single-process worker) and
the job's writers, renders frame ``i`` from (seed, i) and returns its encoded files (``{path: bytes}``,
from :func:`vlatwin.sdg.pipeline.encode_frame`). The driver is the :class:`~vlatwin.sdg.pipeline.DatasetRun`
of the plain path: it writes every file atomically, appends ``manifest.jsonl`` in frame order and
finalizes (COCO), so the folder is byte-identical to a single-process run with the same seed, and
``--resume`` continues a folder either path started.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from vlatwin.errors import VlatwinError


class FrameEncoder:
    """Item runner inside a Ray actor: render a frame, encode its files (the writer thread's work, off the driver)."""

    def __init__(self, config, stage_path: str, stage_bytes: bytes, cameras, textures, writers=None):
        from vlatwin.sdg.newton_worker import FrameWorkerNewton

        path = Path(stage_path)
        # The driver's stage when this node sees the same file (local run, shared storage: references to
        # robots and assets resolve), else a copy of its bytes (a self-contained stage on another node).
        if not (path.is_file() and hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(stage_bytes).digest()):
            self._tmp = Path(tempfile.mkdtemp(prefix="vlatwin-ray-"))
            path = self._tmp / path.name
            path.write_bytes(stage_bytes)
        self.worker = FrameWorkerNewton(config, path, cameras, textures)
        self.writers = writers

    def info(self):
        return self.worker.renderer.labels

    def set_writers(self, writers) -> None:
        self.writers = writers

    def run(self, index: int, seed: int) -> dict:
        """``{"files": {relative path: bytes}, "render_s", "encode_s", "cpu_s"}`` of frame ``index`` (seconds)."""
        from vlatwin.sdg.pipeline import encode_frame

        c0, t0 = time.process_time(), time.perf_counter()
        result = self.worker.run(index, seed)
        t1 = time.perf_counter()
        files = encode_frame(self.writers, index, result.outputs, result.record)
        t2 = time.perf_counter()
        return {"files": files, "render_s": t1 - t0, "encode_s": t2 - t1, "cpu_s": time.process_time() - c0}

    def close(self) -> None:
        self.worker.close()


class _Labels:
    """Stands in for the driver's worker list: the writers need the scene's label table only."""

    def __init__(self, labels):
        self.renderer = type("Renderer", (), {"labels": labels})()


def generate_ray(
    config_path: str | Path,
    out_dir: str | Path,
    *,
    frames: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    workers: int = 2,
    address: str | None = None,
    progress: bool = True,
    settings: str | Path | None = None,
    render: str | None = None,
    per_worker: int = 2,
    _fault: dict | None = None,
):
    """:func:`vlatwin.sdg.pipeline.generate` with frames rendered and encoded by ``workers`` Ray actors.

    ``address``: None or ``"local"`` starts a local Ray with ``workers`` CPUs; otherwise the cluster to
    join. At most ``workers * per_worker`` frames are in flight (backpressure); a dead actor is replaced
    and its frames run again; a killed driver continues with ``resume=True``. ``render`` as in ``generate``
    (each actor is its own process, so ``cycles`` scales out here although it takes one render thread).
    """
    from vlatwin.scale.ray_pool import RayPool, init_ray, shutdown
    from vlatwin.scale.scheduler import WorkerLost, run_ordered
    from vlatwin.sdg.pipeline import DatasetRun, GenerateResult, _load_textures, _progress
    from vlatwin.writers.storage import atomic_write_bytes

    if workers <= 0:
        raise VlatwinError(f"--workers must be positive, got {workers}")
    t_start = time.perf_counter()
    job = DatasetRun(
        config_path, out_dir, frames=frames, seed=seed, resume=resume, settings=settings, _defer_workers=True,
        **({"render": render} if render is not None else {}),
    )
    config, _, _, stage_path, cameras = job._pending
    textures = _load_textures(config.generate.textures)
    todo = [f for f in range(job.frames) if f not in job._done]
    timings = {"driver_setup_s": time.perf_counter() - t_start}
    t_mark = time.perf_counter()
    ray, owned = init_ray(address, workers)
    timings["ray_init_s"] = time.perf_counter() - t_mark
    t_mark = time.perf_counter()
    pool = None
    bar = None
    try:
        kwargs = {
            "config": config, "stage_path": str(stage_path), "stage_bytes": Path(stage_path).read_bytes(),
            "cameras": cameras, "textures": textures, "writers": None,
        }
        from vlatwin.scale.generate import FrameEncoder  # by module path, so actors import it

        pool = RayPool(FrameEncoder, kwargs, job.seed, fault=_fault)
        n = max(1, min(workers, len(todo)))
        for slot in range(n):
            pool.start(slot)
        # Every actor set up (start-up is not in the throughput); the writers need the scene's labels,
        # which the actors read from their renderers.
        labels = pool.ready_all()[0]
        timings["actors_ready_s"] = time.perf_counter() - t_mark
        job._attach([_Labels(labels)])
        pool.update_kwargs(writers=job.writers)
        for slot in range(n):
            pool.actors[slot].call.remote("set_writers", job.writers)
        out = job.out_dir
        bar = _progress(len(todo), progress)

        busy = {"render_s": 0.0, "encode_s": 0.0, "actor_cpu_s": 0.0, "driver_write_s": 0.0}

        def on_result(frame: int, value: dict) -> dict[str, str]:
            t = time.perf_counter()
            busy["render_s"] += value["render_s"]
            busy["encode_s"] += value["encode_s"]
            busy["actor_cpu_s"] += value["cpu_s"]
            digests = {rel: atomic_write_bytes(out / rel, data) for rel, data in value["files"].items()}
            busy["driver_write_s"] += time.perf_counter() - t
            return digests

        def on_commit(frame: int, digests: dict[str, str]) -> None:
            t = time.perf_counter()
            job.manifest.append(frame, digests)
            busy["driver_write_s"] += time.perf_counter() - t
            job.frames_written += 1
            if bar is not None:
                bar.update(1)

        t0, c0 = time.perf_counter(), time.process_time()
        try:
            restarts = run_ordered(todo, pool, n, on_result=on_result, on_commit=on_commit, per_worker=per_worker, started=True)
        except OSError as exc:
            raise VlatwinError(f"{out}: write failed: {exc.strerror or exc}; finished frames are kept, rerun with --resume") from None
        except WorkerLost as exc:
            raise WorkerLost(f"{exc}; finished frames are kept, rerun with --resume") from None
        wall = time.perf_counter() - t0
        busy["driver_cpu_s"] = time.process_time() - c0
        t_mark = time.perf_counter()
        job.todo = []
        job.finalize()
        timings.update(busy, frames_s=wall, finalize_s=time.perf_counter() - t_mark)
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.close()
        shutdown(ray, owned)
    result = GenerateResult(out_dir=job.out_dir, frames_written=job.frames_written, frames_skipped=job.frames_skipped, wall_time=wall)
    result.workers_restarted = restarts
    # Seconds: driver set-up, Ray start, actors ready, frames (wall), actor render/encode and driver write
    # (summed over frames), finalize; benchmarks/scale.py builds its cost model from these.
    result.timings = timings
    return result
