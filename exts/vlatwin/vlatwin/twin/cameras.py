"""Colour frames of a stage's fixed cameras from a Newton simulation, and their run-log encoding.

Both sides of a twin run use it: the emulated robot renders its "real" cameras from its own (hidden-parameter)
simulation, the twin renders the same cameras from its state at the same instant, and the fidelity report
compares the pairs (PSNR / SSIM). Frames go into the MCAP run log as Foxglove ``CompressedImage`` messages
(PNG, base64 in JSON), so Foxglove shows them next to the joint plots.
"""

from __future__ import annotations

import base64
import math

import numpy as np

from vlatwin.errors import VlatwinError

__all__ = ["StageCameras", "decode_image_message", "image_message"]

class StageCameras:
    """RGB renders of the stage's perspective cameras (world-fixed, as authored) from ``sim``'s current state.

    Args:
        sim: a loaded :class:`~vlatwin.sim.newton.SimBackendNewton`.
        stage_path: the stage it was loaded from (cameras, lights, labels).
        names: cameras to render (None: all on the stage).
    """

    def __init__(self, sim, stage_path, names=None):
        from vlatwin.config.scene_cfg import CameraCfg
        from vlatwin.sensors.camera.model import CameraModel
        from vlatwin.sensors.camera.newton_camera import CameraRendererNewton
        from vlatwin.usd.check import open_stage
        from vlatwin.usd.read_back import read_cameras
        from vlatwin.utils.transforms import look_at_matrix

        stage = open_stage(stage_path)
        cfgs = select_by_name([CameraCfg(**c) for c in read_cameras(stage)], names, "camera", stage_path)
        self.renderer = CameraRendererNewton(sim, stage, shadows=False)
        self._poses: dict[str, np.ndarray] = {}
        for cfg in cfgs:
            self.renderer.add_camera(cfg.name, CameraModel.from_cfg(cfg))
            T = np.eye(4)
            T[:3, :3] = look_at_matrix(np.asarray(cfg.position, float), np.asarray(cfg.look_at, float), cfg.up)
            T[:3, 3] = cfg.position
            self._poses[cfg.name] = T

    @property
    def names(self) -> list[str]:
        return list(self._poses)

    def render(self) -> dict[str, np.ndarray]:
        """One uint8 (H, W, 3) frame per camera from the simulation's current state."""
        self.renderer.refit()
        return {name: self.renderer.render_color(name, T)[..., :3].copy() for name, T in self._poses.items()}


def select_by_name(cfgs: list, names, kind: str, stage_path) -> list:
    """The sensor configs named in ``names`` (None: all); an unknown name is one error naming the stage's."""
    if names is None:
        return cfgs
    known = {c.name for c in cfgs}
    missing = [n for n in names if n not in known]
    if missing:
        raise VlatwinError(f"{kind} {missing[0]!r} is not on the stage {stage_path} (it has: {', '.join(sorted(known)) or 'none'})")
    return [c for c in cfgs if c.name in set(names)]


def foxglove_time(t_host: float) -> dict:
    """A Foxglove ``time`` (sec, nsec) of host time ``t_host`` [s]."""
    sec = math.floor(t_host)
    return {"sec": int(sec), "nsec": int(round((t_host - sec) * 1e9)) % 1_000_000_000}


def image_message(image: np.ndarray, t_host: float, frame_id: str) -> dict:
    """A ``foxglove.CompressedImage`` (PNG) message for the run log."""
    from vlatwin.writers.encoding import png_bytes

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise VlatwinError(f"camera {frame_id}: expected a uint8 (H, W, 3) frame, got {image.dtype} {image.shape}")
    return {
        "timestamp": foxglove_time(t_host),
        "frame_id": frame_id,
        "data": base64.b64encode(png_bytes(image)).decode("ascii"),
        "format": "png",
    }


def decode_image_message(message: dict) -> np.ndarray:
    """The uint8 (H, W, 3) RGB frame of a message written by :func:`image_message`."""
    import io

    from PIL import Image, UnidentifiedImageError

    name = message.get("frame_id", "?") if isinstance(message, dict) else "?"
    try:
        raw = base64.b64decode(message["data"], validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            return np.asarray(img.convert("RGB"))
    except (KeyError, TypeError, ValueError, UnidentifiedImageError, OSError) as exc:
        raise VlatwinError(f"camera message {name!r}: not a decodable image ({exc.__class__.__name__})") from None
