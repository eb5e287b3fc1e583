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


class CameraRendererIsaac:
    """All cameras of a generate run on Replicator."""

    def __init__(self, stage, cameras, annotators, *, warmup_updates: int = 20, rt_subframes: int = 8):
        import omni.replicator.core as rep

        self._rep = rep
        self.stage = stage
        self.labels = label_table_from_stage(stage)
        self.rt_subframes = rt_subframes
        rep.orchestrator.set_capture_on_play(False)
        self._products = {}
        self._annotators: dict[str, dict] = {}
        self._models = {}
        for cam_cfg, model in cameras:
            path = f"/World/Cameras/{cam_cfg.name}"
            product = rep.create.render_product(path, (model.width, model.height), name=cam_cfg.name)
            self._products[cam_cfg.name] = product
            self._models[cam_cfg.name] = model
            attached = {}
            for name in annotators:
                if name == "occlusion":
                    continue  # derived from the tight boxes' occlusionRatio
                rep_name, params = REPLICATOR_ANNOTATORS[name]
                annotator = rep.AnnotatorRegistry.get_annotator(rep_name, init_params=params or None)
                annotator.attach(product)
                attached[name] = annotator
            self._annotators[cam_cfg.name] = attached
        import omni.kit.app

        app = omni.kit.app.get_app()
        for _ in range(warmup_updates):
            app.update()

    def set_pose(self, name: str, T_w_cam: np.ndarray) -> None:
        """Move the USD camera (camera-to-world 4x4, USD camera axes)."""
        from vlatwin.usd.stage import set_local_pose

        set_local_pose(self.stage.GetPrimAtPath(f"/World/Cameras/{name}"), pos=T_w_cam[:3, 3], rot=T_w_cam[:3, :3])

    def capture(self) -> None:
        """Render one frame of every render product (after randomization, with subframes to settle)."""
        self._rep.orchestrator.step(rt_subframes=self.rt_subframes, delta_time=0.0, pause_timeline=False)

    def capture_once(self, key) -> None:
        """:meth:`capture` unless it already ran for ``key`` (the physics step): cameras share one render."""
        if getattr(self, "_captured_key", None) != key:
            self.capture()
            self._captured_key = key

    def sim_step(self):
        """A key for the current physics state (set by the worker before each capture)."""
        return getattr(self, "capture_key", None)

    def outputs(self, name: str, *, keep_classes=None) -> dict:
        raw = {key: annotator.get_data() for key, annotator in self._annotators[name].items()}
        model = self._models[name]
        extra = {"cameraIntrinsics": model.K.tolist(), "cameraDistortion": list(model.distortion)}
        return convert_replicator_outputs(raw, self.labels, keep_classes=keep_classes, extra_camera_params=extra)

    def close(self) -> None:
        self._rep.orchestrator.wait_until_complete()
        for name, attached in self._annotators.items():
            for annotator in attached.values():
                annotator.detach()
            self._products[name].destroy()


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
        self.renderer.capture_once(self.renderer.sim_step())

    def finish(self) -> dict:
        from vlatwin.sensors.camera.realism import apply_realism

        out = self.renderer.outputs(self.name, keep_classes=self.class_filter)
        if self.options is not None and "rgb" in out:
            out["rgb"] = apply_realism(out["rgb"], self.options.realism, self._rng, fx=self.model.fx)
        return out

    def close(self) -> None:
        pass
