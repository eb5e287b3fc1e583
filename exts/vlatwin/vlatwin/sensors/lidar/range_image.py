"""A rotating LIDAR scan as a fixed-size range image (rings x azimuth columns), numpy only.

Datasets whose frames need a fixed shape (LeRobotDataset features) store a scan this way: row = ring,
column = azimuth bin of the beam in the sensor frame (0 at +X, increasing counter-clockwise about +Z),
value = measured range [m], 0 where the beam gave no return. Where several returns fall into one cell
(motion distortion, jitter), the nearest is kept.
"""

from __future__ import annotations

import numpy as np

from vlatwin.errors import VlatwinError


def range_image_shape(profile) -> tuple[int, int]:
    """(rings, columns) of ``profile``'s range image; only rotating profiles have a fixed grid."""
    if profile.pattern != "rotating":
        raise VlatwinError(
            f"lidar profile {profile.name}: a {profile.pattern} scan has no fixed ring x column grid; record it "
            "with a rotating profile (e.g. OS1-32, VLP-16)"
        )
    return len(profile.elevations_deg), int(profile.columns)


def range_image(points: np.ndarray, profile) -> np.ndarray:
    """float32 (rings, columns) ranges [m] from :data:`POINT_DTYPE` points (sensor frame)."""
    rings, columns = range_image_shape(profile)
    image = np.zeros((rings, columns), dtype=np.float32)
    if len(points) == 0:
        return image
    x, y, z = (points[k].astype(np.float64) for k in ("x", "y", "z"))
    rng = np.sqrt(x * x + y * y + z * z)
    azimuth = np.mod(np.arctan2(y, x), 2.0 * np.pi)
    col = np.minimum((azimuth / (2.0 * np.pi) * columns).astype(np.int64), columns - 1)
    ring = points["ring"].astype(np.int64)
    valid = (ring >= 0) & (ring < rings)
    # Nearest return per cell: write far to near, so the nearest lands last.
    order = np.argsort(-rng[valid], kind="stable")
    r, c, v = ring[valid][order], col[valid][order], rng[valid][order]
    image[r, c] = v.astype(np.float32)
    return image
