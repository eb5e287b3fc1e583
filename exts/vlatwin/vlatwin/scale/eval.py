"""``vlatwin eval --ray``: a task's episodes sharded over Ray actors.

Each actor loads the task once (:func:`vlatwin.eval.setup.load_task_setup`) and owns one
:class:`~vlatwin.eval.runner.EvalEpisodeWorker` (the single-process worker, policy included). Episode
``i`` depends on (seed, i) only. The actor renders the episode's video and thumbnail into its own
scratch folder and returns their bytes with the episode record; the driver writes them into ``--out``
atomically, then the episode file, exactly as the plain path does, so ``--resume`` works either way
and the output folder needs no shared storage (the task configs do: see the README).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path


class EpisodeRunner:
    """Item runner inside a Ray actor: one evaluation episode per item, files returned as bytes."""

    def __init__(self, config_path: str, stage_path: str, stage_bytes: bytes, settings):
        from vlatwin.eval.runner import EvalEpisodeWorker
        from vlatwin.eval.setup import load_task_setup

        self._tmp = Path(tempfile.mkdtemp(prefix="vlatwin-ray-eval-"))
        path = Path(stage_path)
        if not (path.is_file() and hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(stage_bytes).digest()):
            path = self._tmp / "scene" / path.name
            path.parent.mkdir(parents=True)
            path.write_bytes(stage_bytes)
        self.setup = load_task_setup(config_path, seed=settings.seed, stage_path=path)
        try:
            self.worker = EvalEpisodeWorker(self.setup, settings.policy, settings, self._tmp / "out")
        except BaseException:
            self.setup.close()
            raise

    def info(self) -> dict:
        return self.worker.policy_info.to_dict()

    def run(self, index: int, seed: int) -> dict:
        record = self.worker.run(index, seed).record
        files = {}
        for key in ("video", "thumbnail"):
            rel = record.get(key)
            if rel:
                path = self._tmp / "out" / rel
                files[rel] = path.read_bytes()
                path.unlink()
        return {"record": record, "files": files}

    def close(self) -> None:
        try:
            self.worker.close()
        finally:
            self.setup.close()
            shutil.rmtree(self._tmp, ignore_errors=True)


def run_episodes_ray(
    config_path: Path, stage_path: Path, settings, out_dir: Path, todo: list[int], bar, *, address: str | None,
    per_worker: int = 1, _fault: dict | None = None,
) -> tuple[int, float, dict | None]:
    """Episodes ``todo`` of one task on ``settings.workers`` Ray actors. Returns (control steps, seconds, policy info).

    Ray stays up for the next task of the run (it stops when the process exits).
    """
    from vlatwin.eval.runner import episode_file
    from vlatwin.scale.ray_pool import RayPool, init_ray
    from vlatwin.scale.scheduler import run_ordered
    from vlatwin.writers.storage import atomic_write_bytes

    init_ray(address, settings.workers)
    kwargs = {
        "config_path": str(Path(config_path).resolve()), "stage_path": str(Path(stage_path).resolve()),
        "stage_bytes": Path(stage_path).read_bytes(), "settings": settings,
    }
    pool = RayPool(EpisodeRunner, kwargs, settings.seed, fault=_fault)
    n = max(1, min(settings.workers, len(todo)))
    steps = [0]
    try:
        for slot in range(n):
            pool.start(slot)
        info = pool.ready_all()[0]
        t0 = time.perf_counter()  # episodes only: actor start-up (loading the task, the policy) is not in it

        def on_result(index: int, value: dict) -> None:
            record = value["record"]
            for rel, data in value["files"].items():
                atomic_write_bytes(out_dir / rel, data)
            # The episode file last: it marks the episode done for --resume.
            atomic_write_bytes(episode_file(out_dir, record["task"], index), json.dumps(record).encode())
            steps[0] += record["steps"]

        def on_commit(index: int, _) -> None:
            if bar is not None:
                bar.update(1)

        # Episodes are long and land in files of their own: one at a time per actor, no ordering window.
        run_ordered(todo, pool, n, on_result=on_result, on_commit=on_commit, per_worker=per_worker, max_ahead=len(todo), started=True)
    finally:
        pool.close()
    return steps[0], time.perf_counter() - t0, info
