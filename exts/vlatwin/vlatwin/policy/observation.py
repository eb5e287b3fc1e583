"""Observation adapters: the loop's :class:`~vlatwin.loop.control_loop.Observation` as each model family's inputs.

Image helpers follow openpi's client (``resize_with_pad``: keep the aspect ratio, pad with black) and
LIBERO's evaluation (a 180 degree flip). Images are HxWx3 uint8 throughout.
"""

from __future__ import annotations

import numpy as np

from vlatwin.errors import VlatwinError


def camera_rgb(observation, name: str) -> np.ndarray:
    """The latest RGB frame (H, W, 3) uint8 of scene camera ``name`` in ``observation``."""
    data = observation.sensors.get(name)
    if data is None:
        have = ", ".join(sorted(observation.sensors)) or "none"
        raise VlatwinError(f"camera {name!r} has no image in the observation (sensors: {have})")
    rgb = data["rgb"] if isinstance(data, dict) else data
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise VlatwinError(f"camera {name!r}: expected an HxWx3/4 image, got shape {rgb.shape}")
    rgb = rgb[..., :3]
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.asarray(rgb, dtype=np.float64) * (255.0 if rgb.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return rgb


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize HxWx3 uint8 to (height, width) keeping the aspect ratio, centred, padded with zeros (openpi's
    ``image_tools.resize_with_pad``: bilinear, the padding split evenly with the odd pixel at the end)."""
    from PIL import Image

    image = np.asarray(image)
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image.copy()
    ratio = max(w / width, h / height)
    new_h, new_w = int(h / ratio), int(w / ratio)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample=Image.BILINEAR))
    out = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def flip180(image: np.ndarray) -> np.ndarray:
    """Rotate an HxWxC image by 180 degrees (LIBERO's agent-view camera convention)."""
    return np.ascontiguousarray(np.asarray(image)[::-1, ::-1])
