"""The ``generate`` worker on Newton: one simulator, its cameras and LIDARs as sensors, one frame per item.

Per frame: reset -> randomize (seeded by run seed and frame index) -> settle physics -> capture every
sensor through the loop's scheduler (which steps physics to motion-blur sub-frames and LIDAR blocks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlatwin.loop.scheduler import capture
from vlatwin.loop.worker import WorkResult, Worker


class FrameWorkerNewton(Worker):
    """One simulator + renderer (one per render thread)."""

    def __init__(self, config, stage_path: Path, cameras, textures=None):
        from vlatwin.sdg.randomize import SceneRandomizer
        from vlatwin.sensors.camera.model import CameraModel
        from vlatwin.sensors.camera.newton_camera import CameraRendererNewton
        from vlatwin.sensors.camera.newton_sensor import CameraSensorNewton
        from vlatwin.sensors.lidar.newton_lidar import LidarNewton
        from vlatwin.sim.factory import make_backend
        from vlatwin.usd.check import open_stage

        gen = config.generate
        self.config = config
        physics = config.scene.physics
        self.sim = make_backend("newton", physics_dt=physics.dt, solver_iterations=physics.iterations, solver=physics.solver)
        self.sim.load(stage_path)
        stage = open_stage(stage_path)
        spp = max([gen.camera_options[c.name].samples_per_pixel for c in cameras if c.name in gen.camera_options] or [1])
        self.renderer = CameraRendererNewton(self.sim, stage, shadows=gen.shadows, samples_per_pixel=spp)
        self._geometry_cache: dict = {}
        self.cameras = []
        self.photoreal = make_photoreal(config, stage_path, stage, self.sim, cameras)
        for cam in cameras:
            options = gen.camera_options.get(cam.name)
            lens = options.lens if options else None
            model = CameraModel.from_cfg(
                cam, distortion=lens.distortion if lens else (), model=lens.model if lens else "pinhole"
            )
            self.renderer.add_camera(cam.name, model)
            args = (self.renderer, cam, model, options, gen.annotators, gen.randomize.cameras, gen.class_filter, self._geometry)
            if options is not None and options.render == "cycles":
                from vlatwin.sensors.camera.cycles_sensor import CameraSensorCycles

                try:
                    self.photoreal.add_camera(cam.name, model, options.cycles, usd_camera=find_camera_prim(stage, cam.name))
                except BaseException:
                    self.close()
                    raise
                self.cameras.append(
                    CameraSensorCycles(*args, photoreal=self.photoreal, body_poses=lambda: self.sim.get_state().body_pose_w)
                )
            else:
                self.cameras.append(CameraSensorNewton(*args))
        if gen.checker_textures:
            self.renderer.use_checker_texture(gen.checker_textures)
        self._texture_images = textures or {}
        if self.photoreal is not None:
            from vlatwin.sensors.camera.cycles_sensor import RendererFanout

            self.randomizer = SceneRandomizer(config, self.sim, RendererFanout(self.renderer, self.photoreal))
        else:
            self.randomizer = SceneRandomizer(config, self.sim, self.renderer)
        self.lidars = []
        for lidar_cfg in config.scene.lidars:
            sensor = LidarNewton(
                self.sim, stage, lidar_cfg.resolved_profile, blocks=lidar_cfg.blocks, labels=self.renderer.labels,
                name=lidar_cfg.name, noise=lidar_cfg.noise,
            )
            sensor.set_pose_fn(lidar_pose_fn(self.sim, lidar_cfg))
            self.lidars.append(sensor)

    def _geometry(self):
        """Instance geometry at the current physics step (shared by the cameras sampling at that step)."""
        key = self.sim.current_step
        if key not in self._geometry_cache:
            self._geometry_cache = {key: self.renderer.instance_geometry()}
        return self._geometry_cache[key]

    def run(self, index: int, seed: int) -> WorkResult:
        from vlatwin.sdg.randomize import frame_rng

        gen = self.config.generate
        rng = frame_rng(seed, index)
        self._geometry_cache = {}
        record = self.randomizer.apply(rng)
        if self._texture_images:
            chosen = {cls: int(rng.integers(len(images))) for cls, images in self._texture_images.items()}
            self.renderer.set_textures(
                {cls: self._texture_images[cls][i][1] for cls, i in chosen.items()}, repeat=gen.texture_repeat
            )
            record["textures"] = {cls: self._texture_images[cls][i][0] for cls, i in chosen.items()}
            if self.photoreal is not None:
                self.photoreal.set_textures(
                    {cls: self._texture_images[cls][i][1] for cls, i in chosen.items()}, self.renderer.labels, repeat=gen.texture_repeat
                )
        if gen.settle_steps:
            self.sim.advance(gen.settle_steps)
        data = capture(self.sim, [*self.cameras, *self.lidars], index=index, rng=rng, refit=self.sim.refit_render_scene)
        for lidar in self.lidars:
            record.setdefault("lidar_scan_start", {})[lidar.name] = round(lidar.last_start_time, 9)
        outputs = {
            "cameras": {c.name: data[c.name] for c in self.cameras},
            "lidars": {lidar.name: data[lidar.name] for lidar in self.lidars},
        }
        return WorkResult(index=index, outputs=outputs, record=record)

    def render_frame(self, frame: int, seed: int) -> tuple[dict, dict]:
        """(outputs, record) of one frame (the pre-``Worker`` name, kept for callers of 0.1)."""
        result = self.run(frame, seed)
        return result.outputs, result.record

    def close(self) -> None:
        if getattr(self, "photoreal", None) is not None:
            self.photoreal.close()
            self.photoreal = None
        self.sim.close()


def make_photoreal(config, stage_path, stage, sim, cameras):
    """The process's Cycles renderer when a camera asks for ``render: cycles`` (else None).

    One renderer serves every Cycles camera at the first one's exposure; the others are rescaled.
    """
    gen = config.generate
    photoreal = [c for c in cameras if c.name in gen.camera_options and gen.camera_options[c.name].render == "cycles"]
    if not photoreal:
        return None
    from vlatwin.sensors.camera.cycles_renderer import CyclesRenderer

    ev100 = gen.camera_options[photoreal[0].name].cycles.ev100
    return CyclesRenderer(stage_path, stage, list(sim.info.body_paths), ev100=ev100)


def find_camera_prim(stage, name: str):
    """The USD camera prim named ``name`` (``/World/Cameras/<name>`` first), or None."""
    from pxr import UsdGeom

    prim = stage.GetPrimAtPath(f"/World/Cameras/{name}")
    if prim and prim.IsA(UsdGeom.Camera):
        return prim
    return next((p for p in stage.Traverse() if p.IsA(UsdGeom.Camera) and p.GetName() == name), None)


def lidar_pose_fn(sim, lidar_cfg):
    """Sensor-to-world pose as a function of time: static, or riding on a rigid body (read live)."""
    from vlatwin.utils.transforms import make_transform, quat_wxyz_to_matrix, rpy_deg_to_matrix

    offset = make_transform(rpy_deg_to_matrix(lidar_cfg.rpy_deg), lidar_cfg.position)
    if lidar_cfg.parent is None:
        return lambda t: offset
    body = sim.info.body_index(lidar_cfg.parent)

    def pose_at(t: float) -> np.ndarray:
        pose = sim.get_state().body_pose_w[body]
        return make_transform(quat_wxyz_to_matrix(pose[3:]), pose[:3]) @ offset

    return pose_at
