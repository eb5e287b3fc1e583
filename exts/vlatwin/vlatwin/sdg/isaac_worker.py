"""The generate worker on Isaac Sim: PhysX physics, Replicator cameras, RTX Lidar; same files as Newton.

Kit-only. Randomization reuses :class:`SceneRandomizer` (seeded per frame); colours and the key light
are changed through USD (materials, light prims) instead of Newton's renderer.
"""

from __future__ import annotations

from contextlib import contextmanager

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


PLAY_SIMULATIONS = "/app/player/playSimulations"


class WorkerIsaac(Worker):
    """One Isaac Sim scene for the generate pipeline (one per process: Kit is single-app).

    Kit is driven from its main thread only (``main_thread = True`` tells the pipeline to render on the
    calling thread; encoding still runs on the writer thread). Standalone: construct it and call
    :meth:`run`. Inside Kit's event loop (the extension window): ``await WorkerIsaac.create_async(...)``
    and ``await run_async(...)``, which use ``World.reset_async``, ``app.next_update_async`` and
    ``rep.orchestrator.step_async`` instead of the synchronous calls.
    """

    main_thread = True

    def __init__(self, config, stage_path, cameras, *, seed: int = 0, settings: dict | None = None, _load: bool = True):
        self._setup(config, seed, settings or {})
        if _load:
            from vlatwin.sim.isaacsim import require_no_event_loop

            require_no_event_loop("WorkerIsaac (standalone); use WorkerIsaac.create_async inside Kit's event loop")
            self.sim.load(stage_path)
            self._make_sensors(cameras)
            self.renderer.warmup()

    @classmethod
    async def create_async(cls, config, stage_path, cameras, *, seed: int = 0, settings: dict | None = None):
        self = cls(config, stage_path, cameras, seed=seed, settings=settings, _load=False)
        await self.sim.load_async(stage_path)
        await self.sim.reset_async(seed=None)
        with self._reset_already_awaited():  # SceneRandomizer's constructor resets the sim
            self._make_sensors(cameras)
        await self.renderer.warmup_async()
        return self

    @contextmanager
    def _reset_already_awaited(self):
        """Inside the event loop ``World.reset`` must not run: after an awaited ``reset_async`` the
        randomizer's synchronous ``sim.reset`` only re-applies vlatwin's part of the reset."""
        sim = self.sim
        sim.reset = lambda *, seed=None: sim._after_reset(seed)
        try:
            yield
        finally:
            del sim.reset  # back to the class method

    def _setup(self, config, seed, settings) -> None:
        import carb.settings
        import omni.replicator.core as rep

        from vlatwin.sim.factory import make_backend
        from vlatwin.sim.isaacsim import require_main_thread

        require_main_thread("WorkerIsaac")
        self.config = config
        self._settings = settings
        # Both RNGs: vlatwin draws every randomization from numpy (seeded per frame); Replicator's own
        # generator is seeded too so any Replicator-side sampling repeats.
        rep.set_global_seed(seed)
        # Kit's own updates (renders, the window's next_update_async) must not step physics: the loop does.
        self._carb = carb.settings.get_settings()
        self._play_simulations = self._carb.get(PLAY_SIMULATIONS)
        self._carb.set(PLAY_SIMULATIONS, False)
        self.sim = make_backend("isaacsim", physics_dt=config.scene.physics.dt)

    def _make_sensors(self, cameras) -> None:
        from vlatwin.sdg.randomize import SceneRandomizer
        from vlatwin.sensors.camera.isaac_camera import CameraRendererIsaac, CameraSensorIsaac
        from vlatwin.sensors.camera.model import CameraModel
        from vlatwin.sensors.lidar.isaac_lidar import LidarIsaac
        from vlatwin.sim.isaacsim import stage_utils

        gen = self.config.generate
        stage = stage_utils().get_current_stage()
        self.cameras = []
        models = []
        for cam in cameras:
            options = gen.camera_options.get(cam.name)
            if options is not None and (options.lens.model != "pinhole" or any(options.lens.distortion)):
                raise VlatwinError(f"generate.camera_options.{cam.name}.lens: lens distortion is Newton-only for now")
            model = CameraModel.from_cfg(cam)
            models.append((cam, model))
            self.cameras.append((cam, model, options))
        self.renderer = CameraRendererIsaac(
            stage,
            models,
            gen.annotators,
            warmup_updates=int(self._settings.get("warmup_updates", 20)),
            rt_subframes=int(self._settings.get("rt_subframes", 8)),
            sim=self.sim,
        )
        self.camera_sensors = [
            CameraSensorIsaac(self.renderer, cam, model, options, gen.randomize.cameras, gen.class_filter)
            for cam, model, options in self.cameras
        ]
        self.look = _UsdLook(stage, self.renderer.labels)
        self.randomizer = SceneRandomizer(self.config, self.sim, self.look)
        self.lidars = [(lidar, LidarIsaac(lidar, self.renderer.labels, self.renderer)) for lidar in self.config.scene.lidars]

    def _begin_frame(self, index: int, seed: int):
        from vlatwin.sdg.randomize import frame_rng

        rng = frame_rng(seed, index)
        self.renderer.frame_index = index
        return rng

    def _result(self, index, data, record) -> WorkResult:
        lidars = [lidar for _, lidar in self.lidars]
        for lidar in lidars:
            record.setdefault("lidar_scan_start", {})[lidar.name] = round(lidar.last_start_time, 9)
        outputs = {
            "cameras": {c.name: data[c.name] for c in self.camera_sensors},
            "lidars": {lidar.name: data[lidar.name] for lidar in lidars},
        }
        return WorkResult(index=index, outputs=outputs, record=record)

    def run(self, index: int, seed: int) -> WorkResult:
        from vlatwin.sim.isaacsim import require_main_thread, require_no_event_loop

        require_main_thread("WorkerIsaac.run")
        require_no_event_loop("WorkerIsaac.run; use run_async inside Kit's event loop")
        gen = self.config.generate
        rng = self._begin_frame(index, seed)
        record = self.randomizer.apply(rng)
        if gen.settle_steps:
            self.sim.advance(gen.settle_steps)
        data = capture(self.sim, [*self.camera_sensors, *(lidar for _, lidar in self.lidars)], index=index, rng=rng)
        return self._result(index, data, record)

    async def run_async(self, index: int, seed: int) -> WorkResult:
        """:meth:`run` inside Kit's event loop: every render is awaited (``rep.orchestrator.step_async``).

        The randomizer's ``reset`` is synchronous (``World.reset``); the event-loop path resets with
        ``await sim.reset_async`` first and lets the randomizer skip its own reset.
        """
        from vlatwin.loop.scheduler import CaptureRun
        from vlatwin.sim.isaacsim import require_main_thread

        require_main_thread("WorkerIsaac.run_async")
        gen = self.config.generate
        rng = self._begin_frame(index, seed)
        record = await self._randomize_async(rng)
        if gen.settle_steps:
            self.sim.advance(gen.settle_steps)
        sensors = [*self.camera_sensors, *(lidar for _, lidar in self.lidars)]
        run = CaptureRun(self.sim, sensors, index=index, rng=rng)
        while not run.done:
            target = run.next_step()
            if target > self.sim.current_step:
                self.sim.advance(target - self.sim.current_step)
            for _sensor, _k in run.samples_at(target):
                await self.renderer.capture_once_async()  # the sensor's sample then reads this render
        if run.end_step > self.sim.current_step:
            self.sim.advance(run.end_step - self.sim.current_step)
        return self._result(index, run.results, record)

    async def _randomize_async(self, rng):
        await self.sim.reset_async(seed=None)
        with self._reset_already_awaited():  # SceneRandomizer.apply starts with sim.reset()
            return self.randomizer.apply(rng)

    def close(self) -> None:
        """Wait for Replicator to finish writing, detach annotators, destroy render products."""
        for _, lidar in self.lidars:
            lidar.close()
        self.renderer.close()
        self.sim.close()
        self._carb.set(PLAY_SIMULATIONS, self._play_simulations if self._play_simulations is not None else True)

    async def close_async(self) -> None:
        for _, lidar in self.lidars:
            lidar.close()
        await self.renderer.close_async()
        self.sim.close()
        self._carb.set(PLAY_SIMULATIONS, self._play_simulations if self._play_simulations is not None else True)
