"""``vlatwin record --ray``: demonstration episodes run on Ray actors, written by the driver in item order.

Each actor builds the rig and policy the plain path builds (:func:`vlatwin.record.recorder.build_rig`,
``make_policy``, :class:`~vlatwin.record.recorder.EpisodeWorker`) from the config and the dataset's stage,
and returns episode ``i``'s LeRobot frames and metadata. The driver feeds them, in item order, to the
same LeRobot writer loop as the plain run (episode indices are consecutive, so order matters), so the
dataset is the plain run's. At most one episode per actor is in flight and at most ``2 x workers``
finished ones wait for a straggler (episodes hold every frame's images: memory stays bounded).

Tasks and policies registered in the driver process (``register_task`` / ``register_policy``) do not
exist in the actors: give them as ``module:factory`` specs importable on every node.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vlatwin.loop.worker import WorkResult


class EpisodeRecorder:
    """Item runner inside a Ray actor: one recorded episode (frames + record) per item."""

    def __init__(self, config_path: str, stage_path: str, stage_bytes: bytes, task, policy: str, seed: int, action_space: str,
                 cameras: list[str], extras: tuple, steps_cap: int):
        from vlatwin.config.loader import load_config
        from vlatwin.record.recorder import (
            EpisodeWorker,
            Float32Actions,
            annotators_for,
            build_rig,
            make_policy,
            resolve_task,
        )

        self._tmp = None
        path = Path(stage_path)
        if not (path.is_file() and hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(stage_bytes).digest()):
            self._tmp = Path(tempfile.mkdtemp(prefix="vlatwin-ray-record-"))
            path = self._tmp / path.name
            path.write_bytes(stage_bytes)
        config_path = Path(config_path)
        config = load_config(config_path)
        the_task = resolve_task(config, config_path, task)
        camera_cfgs = [c for c in config.scene.cameras if c.name in cameras]
        lidar_cfgs = list(config.scene.lidars) if "lidar" in extras else []
        physics = {"dt": config.scene.physics.dt, "iterations": config.scene.physics.iterations, "solver": config.scene.physics.solver}
        holder = {}

        def policy_factory(sim, chain, controller):  # as in record(): its checks ran on the driver
            holder["policy"] = make_policy(
                policy, task=the_task, info=sim.info, chain=chain, spec=controller.spec, seed=int(seed),
                cameras=[c.name for c in camera_cfgs],
            )
            return Float32Actions(holder["policy"])

        self.rig = build_rig(
            path, physics, camera_cfgs, action_space, the_task.control_hz, annotators_for(extras),
            policy_factory=policy_factory, lidar_cfgs=lidar_cfgs,
        )
        self.worker = EpisodeWorker(
            self.rig, the_task, holder["policy"], steps_cap=steps_cap, camera_cfgs=camera_cfgs, extras=extras,
            policy_name=policy, action_space=action_space,
        )

    def run(self, index: int, seed: int) -> dict:
        result = self.worker.run(index, seed)
        return {"frames": result.outputs["frames"], "record": result.record}

    def close(self) -> None:
        close = getattr(self.rig.sim, "close", None)
        if close is not None:
            close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def iter_episodes_ray(
    config_path: Path, stage_path: Path, todo: list[int], seed: int, *, workers: int, address: str | None, **runner,
) -> Iterator[WorkResult]:
    """Episodes ``todo`` (ascending) run on ``workers`` Ray actors, as the plain worker's results, in item order.

    ``runner``: ``task``, ``policy``, ``action_space``, ``cameras``, ``extras``, ``steps_cap`` (see
    :class:`EpisodeRecorder`). Ray stays up after the last one (it stops when the process exits).
    """
    from vlatwin.scale.ray_pool import RayPool, init_ray
    from vlatwin.scale.scheduler import WorkerLost, iter_ordered

    if not todo:
        return
    fault = runner.pop("_fault", None)  # test hook, see ItemActor.run
    init_ray(address, workers)
    kwargs = {
        "config_path": str(Path(config_path).resolve()), "stage_path": str(Path(stage_path).resolve()),
        "stage_bytes": Path(stage_path).read_bytes(), "seed": int(seed), **runner,
    }
    pool = RayPool(EpisodeRecorder, kwargs, seed, fault=fault)
    n = max(1, min(workers, len(todo)))
    try:
        for slot in range(n):
            pool.start(slot)
        pool.ready_all()
        try:
            for index, value in iter_ordered(todo, pool, n, per_worker=1, max_ahead=2 * n, started=True):
                yield WorkResult(index=index, outputs={"frames": value["frames"]}, record=value["record"])
        except WorkerLost as exc:
            raise WorkerLost(f"{exc}; finished episodes are kept, rerun with --resume") from None
    finally:
        pool.close()
