"""A camera of a ``generate`` run as a :class:`~vlatwin.sensors.base.Sensor` on the Newton renderer.

One capture: the camera pose is drawn (jitter / orbit), colour is rendered at each motion-blur
sub-frame time the loop steps to, and the labelled render happens at shutter close; realism (noise,
tonemapping) is applied to RGB only when the capture finishes.
"""

from __future__ import annotations

import numpy as np

from vlatwin.sensors.base import CaptureContext, Sensor

BOX_ANNOTATORS = frozenset({"bounding_box_2d_tight", "bounding_box_2d_loose", "bounding_box_3d", "occlusion"})


class CameraSensorNewton(Sensor):
    """Render + annotate one configured camera.

    Args:
        renderer: a :class:`CameraRendererNewton` the camera was added to (shared by the scene's cameras).
        camera_cfg: the :class:`CameraCfg` (name, nominal pose).
        camera_model: intrinsics and lens (:class:`CameraModel`).
        options: per-camera ``generate.camera_options`` entry or None.
        annotators: Replicator annotator names to produce.
        randomize_cameras: ``generate.randomize.cameras`` settings (pose jitter / orbit).
        class_filter: classes that get boxes and point-cloud points (None: all).
        geometry: callable returning the instances' current geometry (shared per physics step).
    """

    kind = "camera"

    def __init__(self, renderer, camera_cfg, camera_model, options, annotators, randomize_cameras, class_filter, geometry):
        self.name = camera_cfg.name
        self.renderer = renderer
        self.cfg = camera_cfg
        self.model = camera_model
        self.options = options
        self.annotators = list(annotators)
        self.randomize = randomize_cameras
        self.class_filter = class_filter
        self._geometry = geometry
        blur = options.motion_blur if options is not None else None
        self._blur = blur if blur is not None and blur.subframes > 1 else None

    def _subframe_steps(self, physics_dt: float) -> int:
        return max(1, int(round(self._blur.shutter_s / self._blur.subframes / physics_dt)))

    def schedule(self, physics_dt: float, index: int = 0):
        if self._blur is None:
            return (0,)
        steps = self._subframe_steps(physics_dt)
        return tuple(k * steps for k in range(self._blur.subframes))

    def begin(self, context: CaptureContext) -> None:
        from vlatwin.sdg.randomize import camera_pose

        self._rng = context.rng
        self._dt = self.renderer.physics_dt
        self._T_w_cam = camera_pose(self.cfg, self.randomize, context.rng)
        self._velocity = np.zeros(3)
        if self._blur is not None and self._blur.camera_shake_speed > 0:
            direction = context.rng.normal(size=3)
            self._velocity = direction / np.linalg.norm(direction) * self._blur.camera_shake_speed
        self._frames = []
        self._raw = None

    def sample(self, k: int) -> None:
        name = self.name
        if self._blur is None:
            self._pose = self._T_w_cam
            self._raw = self.renderer.render(name, self._pose)
            self._geometry_now = self._geometry() if BOX_ANNOTATORS & set(self.annotators) else None
            return
        # Motion blur: the camera moves (shake) and physics advances across the shutter; colour at every
        # sub-frame, labels at shutter close.
        T = self._T_w_cam.copy()
        T[:3, 3] += self._velocity * (k * self._subframe_steps(self._dt) * self._dt)
        self._frames.append(self.renderer.render_color(name, T))
        if k == self._blur.subframes - 1:
            self._pose = T
            self._raw = self.renderer.render(name, T)
            self._raw.rgba = average_srgb(self._frames)
            self._geometry_now = self._geometry() if BOX_ANNOTATORS & set(self.annotators) else None

    def finish(self) -> dict:
        from vlatwin.sensors.camera.realism import apply_realism

        out = self.renderer.annotate(
            self.name, self._raw, self._pose, self.annotators, geometry=self._geometry_now, keep_classes=self.class_filter
        )
        if self.options is not None and "rgb" in out:
            out["rgb"] = apply_realism(out["rgb"], self.options.realism, self._rng, fx=self.model.fx)
        self._raw = self._frames = None
        return out


def average_srgb(frames: list[np.ndarray]) -> np.ndarray:
    """Average sRGB images in linear light (how a sensor integrates over the shutter)."""
    from vlatwin.sensors.camera.realism import linear_to_srgb, srgb_to_linear

    linear = np.mean([srgb_to_linear(f[..., :3]) for f in frames], axis=0)
    out = frames[-1].copy()
    out[..., :3] = linear_to_srgb(linear)
    return out
