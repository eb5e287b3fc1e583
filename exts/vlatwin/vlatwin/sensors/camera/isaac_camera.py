"""Isaac Sim cameras: Replicator render products + annotators, converted to vlatwin outputs.

Kit-only (``omni.replicator.core``); imports happen inside the methods so the module can be imported
for documentation and checks without Isaac Sim. Headless pitfalls handled here: capture-on-play off,
warm-up updates before the first capture, ``rt_subframes`` after randomization, and
``wait_until_complete`` before the render products are destroyed.
"""

from __future__ import annotations

import numpy as np

from vlatwin.sensors.base import Sensor
from vlatwin.sim.isaac_convert import convert_replicator_outputs

#: vlatwin annotator -> (Replicator annotator name, init params)
REPLICATOR_ANNOTATORS = {
    "rgb": ("rgb", {}),
    "distance_to_camera": ("distance_to_camera", {}),
    "distance_to_image_plane": ("distance_to_image_plane", {}),
    "normals": ("normals", {}),
    "semantic_segmentation": ("semantic_segmentation", {"colorize": False, "semanticTypes": ["class"]}),
    "instance_segmentation": ("instance_segmentation_fast", {"colorize": False, "semanticTypes": ["class"]}),
    "bounding_box_2d_tight": ("bounding_box_2d_tight_fast", {"semanticTypes": ["class"]}),
    "bounding_box_2d_loose": ("bounding_box_2d_loose_fast", {"semanticTypes": ["class"]}),
    "bounding_box_3d": ("bounding_box_3d_fast", {"semanticTypes": ["class"]}),
    "camera_params": ("camera_params", {}),
    "pointcloud": ("pointcloud", {"includeUnlabelled": False}),
}


def label_table_from_stage(stage):
    """vlatwin ids for an Isaac stage: every prim with a ``class`` label is an instance."""
    from vlatwin.sensors.camera.labels import LabelTable
    from vlatwin.usd.semantics import get_class_label

    from pxr import UsdSemantics

    labelled = {}
    for prim in stage.Traverse():
        if prim.HasAPI(UsdSemantics.LabelsAPI, "class"):
            label = get_class_label(prim)
            if label:
                labelled[str(prim.GetPath())] = label
    paths = tuple(sorted(labelled))
    return LabelTable(instance_paths=paths, instance_classes=tuple(labelled[p] for p in paths), shape_instance=np.zeros(0, np.int32))


#: Annotators attached only to remap another one's ids (the pointcloud's have no id tables of their own).
POINTCLOUD_ID_TABLES = ("semantic_segmentation", "instance_segmentation")


class CameraRendererIsaac:
    """All cameras of a generate run on Replicator, and the one place that renders a frame.

    Every render is ``rep.orchestrator.step`` (standalone) or ``await rep.orchestrator.step_async``
    (inside Kit's event loop), on Kit's main thread, with ``delta_time`` = simulated time since the
    previous render, so an RTX Lidar fires for exactly that time. Physics never advances inside a
    render: ``/app/player/playSimulations`` is off while the worker runs, as Isaac's
    ``SimulationContext.render`` does around its update ([IS] v5.1.0
    source/extensions/isaacsim.core.api/python/impl/simulation_context/simulation_context.py L744-746);
    physics is stepped by the loop only (``World.step(render=False)``).
    """

    def __init__(self, stage, cameras, annotators, *, warmup_updates: int = 20, rt_subframes: int = 8, sim=None):
        import omni.replicator.core as rep

        self._rep = rep
        self.stage = stage
        self.sim = sim
        self.frame_index = 0
        self.labels = label_table_from_stage(stage)
        self.rt_subframes = int(rt_subframes)
        self.warmup_updates = int(warmup_updates)
        self._last_render_time = None
        self._captured_key = None
        rep.orchestrator.set_capture_on_play(False)
        self._products = {}
        self._annotators: dict[str, dict] = {}
        self._hidden: set[str] = set()
        self._models = {}
        wanted = [a for a in annotators if a != "occlusion"]  # occlusion: from the tight boxes' occlusionRatio
        if "pointcloud" in wanted:
            self._hidden = {name for name in POINTCLOUD_ID_TABLES if name not in wanted}
            wanted += sorted(self._hidden)
        for cam_cfg, model in cameras:
            path = f"/World/Cameras/{cam_cfg.name}"
            product = rep.create.render_product(path, (model.width, model.height), name=cam_cfg.name)
            self._products[cam_cfg.name] = product
            self._models[cam_cfg.name] = model
            attached = {}
            for name in wanted:
                rep_name, params = REPLICATOR_ANNOTATORS[name]
                annotator = rep.AnnotatorRegistry.get_annotator(rep_name, init_params=params or None)
                annotator.attach(product)
                attached[name] = annotator
            self._annotators[cam_cfg.name] = attached

    # ------------------------------------------------------------------ warm-up
    def warmup(self) -> None:
        """Updates before the first capture (standalone: ``app.update()``)."""
        import omni.kit.app

        from vlatwin.sim.isaacsim import require_main_thread, require_no_event_loop

        require_main_thread("CameraRendererIsaac.warmup")
        require_no_event_loop("CameraRendererIsaac.warmup (app.update)")
        app = omni.kit.app.get_app()
        for _ in range(self.warmup_updates):
            app.update()

    async def warmup_async(self) -> None:
        """:meth:`warmup` inside Kit's event loop (``await app.next_update_async()``)."""
        import omni.kit.app

        app = omni.kit.app.get_app()
        for _ in range(self.warmup_updates):
            await app.next_update_async()

    # ------------------------------------------------------------------ renders
    def _sim_time(self) -> float:
        return 0.0 if self.sim is None else self.sim.current_step * self.sim.physics_dt

    def _delta(self) -> float:
        now = self._sim_time()
        delta = 0.0 if self._last_render_time is None else max(0.0, now - self._last_render_time)
        self._last_render_time = now
        return delta

    def key(self):
        """What identifies "the simulation state now": (frame index, physics step)."""
        return (self.frame_index, None if self.sim is None else self.sim.current_step)

    def capture(self) -> None:
        """Render one frame of every render product (standalone workflow)."""
        from vlatwin.sim.isaacsim import require_main_thread, require_no_event_loop

        require_main_thread("rep.orchestrator.step")
        require_no_event_loop("rep.orchestrator.step")
        self._rep.orchestrator.step(rt_subframes=self.rt_subframes, delta_time=self._delta(), pause_timeline=False)

    async def capture_async(self) -> None:
        """Render one frame inside Kit's event loop."""
        from vlatwin.sim.isaacsim import require_main_thread

        require_main_thread("rep.orchestrator.step_async")
        await self._rep.orchestrator.step_async(rt_subframes=self.rt_subframes, delta_time=self._delta(), pause_timeline=False)

    def capture_once(self, key=None) -> None:
        """:meth:`capture` unless this state was rendered already: cameras and LIDARs share one render."""
        key = self.key() if key is None else key
        if self._captured_key != key:
            self.capture()
            self._captured_key = key

    async def capture_once_async(self) -> None:
        key = self.key()
        if self._captured_key != key:
            await self.capture_async()
            self._captured_key = key

    def sim_step(self):
        """The key of the current simulation state (kept for callers of the old name)."""
        return self.key()

    def outputs(self, name: str, *, keep_classes=None) -> dict:
        raw = {key: annotator.get_data() for key, annotator in self._annotators[name].items()}
        model = self._models[name]
        extra = {"cameraIntrinsics": model.K.tolist(), "cameraDistortion": list(model.distortion)}
        out = convert_replicator_outputs(raw, self.labels, keep_classes=keep_classes, extra_camera_params=extra)
        for hidden in self._hidden:
            out.pop(hidden, None)
        return out

    def close(self) -> None:
        from vlatwin.sim.isaacsim import require_no_event_loop

        require_no_event_loop("rep.orchestrator.wait_until_complete")
        self._rep.orchestrator.wait_until_complete()
        self._release()

    async def close_async(self) -> None:
        await self._rep.orchestrator.wait_until_complete_async()
        self._release()

    def _release(self) -> None:
        for name, attached in self._annotators.items():
            for annotator in attached.values():
                annotator.detach()
            self._products[name].destroy()
        self._annotators, self._products = {}, {}


class CameraSensorIsaac(Sensor):
    """One Replicator camera as a :class:`~vlatwin.sensors.base.Sensor` (Kit-only).

    Replicator renders every render product in one orchestrator step, so the cameras of a capture
    share one ``capture()`` per physics step (the first camera sampling at a step triggers it).
    """

    kind = "camera"
    rate_hz = None

    def __init__(self, renderer: CameraRendererIsaac, camera_cfg, camera_model, options, randomize_cameras, class_filter):
        self.name = camera_cfg.name
        self.renderer = renderer
        self.cfg, self.model, self.options = camera_cfg, camera_model, options
        self.randomize, self.class_filter = randomize_cameras, class_filter

    def schedule(self, physics_dt: float, index: int = 0):
        return (0,)

    def duration_steps(self, physics_dt: float, index: int = 0) -> int:
        return 0

    def begin(self, context) -> None:
        from vlatwin.sdg.randomize import camera_pose

        self._rng = context.rng
        self.renderer.set_pose(self.name, camera_pose(self.cfg, self.randomize, context.rng))

    def sample(self, k: int) -> None:
        self.renderer.capture_once()

    def finish(self) -> dict:
        from vlatwin.sensors.camera.realism import apply_realism

        out = self.renderer.outputs(self.name, keep_classes=self.class_filter)
        if self.options is not None and "rgb" in out:
            out["rgb"] = apply_realism(out["rgb"], self.options.realism, self._rng, fx=self.model.fx)
        return out

    def close(self) -> None:
        pass
