"""The generate worker on Isaac Sim: PhysX physics, Replicator cameras, RTX Lidar; same files as Newton.

Kit-only. Randomization reuses :class:`SceneRandomizer` (seeded per frame); colours and the key light
are changed through USD (materials, light prims) instead of Newton's renderer.
"""

from __future__ import annotations

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.loop.scheduler import capture
from vlatwin.loop.worker import WorkResult, Worker


class _UsdLook:
    """The renderer-facing randomization hooks, done by editing the USD stage Isaac renders."""

    def __init__(self, stage, labels):
        self.stage = stage
        self.labels = labels

    def set_instance_color(self, prim_path: str, rgb) -> None:
        from pxr import Gf, Usd, UsdGeom, UsdShade

        for prim in Usd.PrimRange(self.stage.GetPrimAtPath(prim_path)):
            gprim = UsdGeom.Gprim(prim)
            if not gprim:
                continue
            gprim.GetDisplayColorAttr().Set([Gf.Vec3f(*map(float, rgb))])
            material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
            if material:
                shader = UsdShade.Shader(material.GetPrim().GetChild("PreviewSurface"))
                if shader and shader.GetInput("diffuseColor"):
                    shader.GetInput("diffuseColor").Set(Gf.Vec3f(*map(float, rgb)))

    def set_key_light(self, direction_w, color) -> None:
        from pxr import Gf, UsdLux

        from vlatwin.usd.stage import set_local_pose

        lights = [p for p in self.stage.Traverse() if p.IsA(UsdLux.DistantLight)]
        if not lights:
            return
        key = max(lights, key=lambda p: UsdLux.DistantLight(p).GetIntensityAttr().Get() or 0.0)
        z = -np.asarray(direction_w, dtype=float)  # a distant light shines along its local -Z
        z /= np.linalg.norm(z)
        x = np.cross([0.0, 0.0, 1.0], z) if abs(z[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
        x /= np.linalg.norm(x)
        set_local_pose(key, rot=np.stack([x, np.cross(z, x), z], axis=1))
        UsdLux.DistantLight(key).GetColorAttr().Set(Gf.Vec3f(*map(float, color)))

    def set_body_scale(self, body_path: str, factor: float) -> None:
        raise VlatwinError("generate.randomize.objects.scale_range is not supported on the isaacsim backend yet; remove it")


class WorkerIsaac(Worker):
    """One Isaac Sim scene for the generate pipeline (one per process: Kit is single-app)."""

    def __init__(self, config, stage_path, cameras, *, seed: int = 0):
        import omni.replicator.core as rep

        from vlatwin.sdg.randomize import SceneRandomizer
        from vlatwin.sensors.camera.isaac_camera import CameraRendererIsaac
        from vlatwin.sensors.camera.model import CameraModel
        from vlatwin.sensors.lidar.isaac_lidar import LidarIsaac
        from vlatwin.sim.factory import make_backend

        gen = config.generate
        self.config = config
        # Both RNGs: vlatwin draws every randomization from numpy (seeded per frame); Replicator's own
        # generator is seeded too so any Replicator-side sampling repeats.
        rep.set_global_seed(seed)
        self.sim = make_backend("isaacsim", physics_dt=config.scene.physics.dt)
        self.sim.load(stage_path)
        from isaacsim.core.utils.stage import get_current_stage

        stage = get_current_stage()
        self.cameras = []
        models = []
        for cam in cameras:
            options = gen.camera_options.get(cam.name)
            if options is not None and (options.lens.model != "pinhole" or any(options.lens.distortion)):
                raise VlatwinError(f"generate.camera_options.{cam.name}.lens: lens distortion is Newton-only for now")
            model = CameraModel.from_cfg(cam)
            models.append((cam, model))
            self.cameras.append((cam, model, options))
        self.renderer = CameraRendererIsaac(stage, models, gen.annotators)
        from vlatwin.sensors.camera.isaac_camera import CameraSensorIsaac

        self.camera_sensors = [
            CameraSensorIsaac(self.renderer, cam, model, options, gen.randomize.cameras, gen.class_filter)
            for cam, model, options in self.cameras
        ]
        self.look = _UsdLook(stage, self.renderer.labels)
        self.randomizer = SceneRandomizer(config, self.sim, self.look)
        self.lidars = [(lidar, LidarIsaac(lidar, self.renderer.labels)) for lidar in config.scene.lidars]

    def run(self, index: int, seed: int) -> WorkResult:
        from vlatwin.sdg.randomize import frame_rng

        gen = self.config.generate
        rng = frame_rng(seed, index)
        record = self.randomizer.apply(rng)
        if gen.settle_steps:
            self.sim.advance(gen.settle_steps)
        self.renderer.capture_key = (index, self.sim.current_step)
        lidars = [lidar for _, lidar in self.lidars]
        data = capture(self.sim, [*self.camera_sensors, *lidars], index=index, rng=rng)
        for lidar in lidars:
            record.setdefault("lidar_scan_start", {})[lidar.name] = round(lidar.last_start_time, 9)
        outputs = {
            "cameras": {c.name: data[c.name] for c in self.camera_sensors},
            "lidars": {lidar.name: data[lidar.name] for lidar in lidars},
        }
        return WorkResult(index=index, outputs=outputs, record=record)

    def close(self) -> None:
        """Wait for Replicator to finish writing, detach annotators, destroy render products."""
        for _, lidar in self.lidars:
            lidar.close()
        self.renderer.close()
        self.sim.close()
