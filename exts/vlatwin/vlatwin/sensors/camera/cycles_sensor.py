"""A ``render: cycles`` camera: labels from the exact Newton ray cast, RGB path traced by Cycles.

Both renders use the same pose and intrinsics, so every label is pixel-aligned with the photoreal
image. Motion blur: Cycles renders each sub-frame the loop steps to and the frames are averaged in
linear light, exactly like the raster path (physics and the camera shake move across the shutter).
"""

from __future__ import annotations

import numpy as np

from vlatwin.sensors.base import CaptureContext
from vlatwin.sensors.camera.newton_sensor import CameraSensorNewton, average_srgb


class CameraSensorCycles(CameraSensorNewton):
    """:class:`CameraSensorNewton` whose colour comes from a :class:`CyclesRenderer`.

    Args (besides the parent's):
        photoreal: the process's :class:`CyclesRenderer` (this camera added to it).
        body_poses: callable returning the simulation's body poses (N, 7) [m, quaternion w x y z] now.
    """

    def __init__(self, *args, photoreal, body_poses, **kwargs):
        super().__init__(*args, **kwargs)
        self.photoreal = photoreal
        self._body_poses = body_poses

    def begin(self, context: CaptureContext) -> None:
        super().begin(context)
        self._seed = cycles_seed(context)
        self._photo_frames: list[np.ndarray] = []

    def _photoreal_rgba(self, T_w_cam: np.ndarray) -> np.ndarray:
        self.photoreal.sync_bodies(self._body_poses())
        return self.photoreal.render(self.name, T_w_cam, seed=self._seed)

    def sample(self, k: int) -> None:
        super().sample(k)
        if self._blur is None:
            self._raw.rgba = self._photoreal_rgba(self._pose)
            return
        T = self._T_w_cam.copy()
        T[:3, 3] += self._velocity * (k * self._subframe_steps(self._dt) * self._dt)
        self._photo_frames.append(self._photoreal_rgba(T))
        if k == self._blur.subframes - 1:
            self._raw.rgba = average_srgb(self._photo_frames)

    def finish(self) -> dict:
        self._photo_frames = []
        return super().finish()


def cycles_seed(context: CaptureContext) -> int:
    """Cycles' sampling seed for a capture: a function of the frame's seed sequence (run seed, frame index).

    Derived from the generator's seed, not drawn from it, so the frame's other random numbers (poses,
    noise) and therefore its labels are the same as with the raster camera.
    """
    seed_seq = getattr(getattr(context.rng, "bit_generator", None), "seed_seq", None)
    if seed_seq is None or not hasattr(seed_seq, "entropy"):
        return int(context.index) % (2**31)
    derived = np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, 0xC1C1E5))
    return int(derived.generate_state(1)[0]) % (2**31)


class RendererFanout:
    """Randomization calls (colours, scales, key light) go to the raster renderer and to Cycles; everything else to the raster one."""

    def __init__(self, raster, photoreal):
        self._raster = raster
        self._photoreal = photoreal

    def set_instance_color(self, prim_path, rgb) -> None:
        self._raster.set_instance_color(prim_path, rgb)
        self._photoreal.set_instance_color(prim_path, rgb)

    def set_body_scale(self, body_path, factor) -> None:
        self._raster.set_body_scale(body_path, factor)
        self._photoreal.set_body_scale(body_path, factor)

    def set_key_light(self, direction_w, color) -> None:
        self._raster.set_key_light(direction_w, color)
        self._photoreal.set_key_light(direction_w, color)

    def __getattr__(self, name):
        return getattr(self._raster, name)
