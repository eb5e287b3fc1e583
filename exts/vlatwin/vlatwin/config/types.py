"""Reusable validated field types with messages a user can act on, and the magnitude bounds of config numbers.

Every number in a config is finite (``StrictModel``) and bounded: a value far outside anything physical
(``1e308`` for a camera position) would otherwise overflow in float math or become ``inf`` in a float32
engine buffer, far from the config line that caused it. The bounds are generous (a robot cell is metres
across) and each one is named below, so an error can say what is allowed.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator

MAX_COORDINATE = 1e4
"""Largest |component| of a position or point [m] (a 20 km cube around the origin; float32 keeps ~1 mm
there), and of the other 3-vectors (gravity [m/s^2], up vectors, roll-pitch-yaw [deg])."""
MAX_SIZE = 1e3
"""Largest extent, radius or length of a shape or light [m], and of random jitters and ranges [m]."""
MAX_SCALE = 1e3
"""Largest uniform scale factor."""
MAX_MASS = 1e6
"""Largest mass [kg] (a thousand tonnes)."""
MAX_DENSITY = 1e5
"""Largest density [kg/m^3] (osmium: 22 590)."""
MAX_INTENSITY = 1e9
"""Largest light intensity (USD nits-like units; the default key light is 3000)."""
MAX_EXPOSURE = 30.0
"""Largest |exposure| [EV] of a light (a factor of 2^30)."""
MAX_RESOLUTION = 16384
"""Largest image width or height [px]."""
MAX_CLIP_DISTANCE = 1e7
"""Largest camera clipping distance [m]; generous because cameras made in Isaac Sim / usdview keep their
tool's large default far plane (up to 1e7)."""
MAX_GAIN = 1e9
"""Largest drive stiffness [N*m/rad | N/m] or damping [N*m*s/rad | N*s/m]."""
MAX_FRICTION = 100.0
"""Largest friction coefficient."""
MAX_COUNT = 10_000_000
"""Largest frame count / step count in a config."""
MAX_ANGLE_DEG = 360.0
"""Largest |angle| of an orientation [deg] (roll, pitch, yaw)."""
MAX_LIDAR_BEAMS = 10_000_000
"""Most beams a LIDAR may fire per scan."""


def _numbers(value: Any, count: int, what: str, *, positive: bool = False, nonneg: bool = False, limit: float | None = None) -> tuple:
    if positive:
        what = f"positive {what}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"expected {count} {what}, got a single number")
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise ValueError(f"expected {count} {what}")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ValueError(f"expected {count} {what}, got {item!r}")
        if not math.isfinite(item):
            raise ValueError(f"expected {count} finite {what}, got {item!r}")
        if positive and item <= 0:
            raise ValueError(f"expected {count} {what}")
        if nonneg and item < 0:
            raise ValueError(f"expected {count} non-negative {what}")
        if limit is not None and abs(item) > limit:
            bound = f"at most {limit:g}" if positive or nonneg else f"in [{-limit:g}, {limit:g}]"
            raise ValueError(f"expected {count} {what} {bound}, got {item!r}")
        out.append(float(item))
    return tuple(out)


def _color(value: Any) -> tuple:
    rgb = _numbers(value, 3, "numbers [r, g, b] in 0..1")
    if any(c < 0.0 or c > 1.0 for c in rgb):
        raise ValueError("expected 3 numbers [r, g, b] in 0..1 (linear RGB)")
    return rgb


Vec3 = Annotated[tuple[float, float, float], BeforeValidator(lambda v: _numbers(v, 3, "numbers [x, y, z]", limit=MAX_COORDINATE))]
"""3 numbers, each within +-MAX_COORDINATE."""
PositiveVec3 = Annotated[tuple[float, float, float], BeforeValidator(lambda v: _numbers(v, 3, "numbers", positive=True, limit=MAX_SIZE))]
"""3 sizes in (0, MAX_SIZE]."""
Vec2 = Annotated[tuple[float, float], BeforeValidator(lambda v: _numbers(v, 2, "numbers [x, y]", limit=MAX_COORDINATE))]
"""2 numbers, each within +-MAX_COORDINATE."""
PositiveVec2 = Annotated[tuple[float, float], BeforeValidator(lambda v: _numbers(v, 2, "numbers", positive=True, limit=MAX_SIZE))]
"""2 sizes in (0, MAX_SIZE]."""
ColorRGB = Annotated[tuple[float, float, float], BeforeValidator(_color)]
AnglesDeg3 = Annotated[
    tuple[float, float, float], BeforeValidator(lambda v: _numbers(v, 3, "angles [roll, pitch, yaw] (deg)", limit=MAX_ANGLE_DEG))
]
"""Roll, pitch, yaw [deg], each within +-MAX_ANGLE_DEG."""


def check_lidar_profile_bounds(profile) -> None:
    """Raise ``ValueError("field: ...")`` when a :class:`LidarProfile` holds an absurd magnitude.

    The profile model checks signs and consistency; these bounds keep scan sizes and float math sane:
    elevations and vertical FOV within +-90 deg, 0.01..1000 Hz, ranges up to MAX_COORDINATE, noise up to
    10 m / 10 deg, at most 16384 columns, 4096 rows / channels, 1e8 points/s and MAX_LIDAR_BEAMS per scan.
    """
    for i, elevation in enumerate(profile.elevations_deg):
        if abs(elevation) > 90.0:
            raise ValueError(f"elevations_deg[{i}]: expected an angle in [-90, 90] deg, got {elevation!r}")
    if profile.vertical_fov_deg is not None and max(abs(v) for v in profile.vertical_fov_deg) > 90.0:
        raise ValueError("vertical_fov_deg: expected [min, max] within [-90, 90] deg")
    limits = (
        ("columns", 1, 16384),
        ("rows", 1, 4096),
        ("rate_hz", 0.01, 1000.0),
        ("points_per_second", 1.0, 1e8),
        ("max_range", 0.0, MAX_COORDINATE),
        ("range_sigma", 0.0, 10.0),
        ("angular_sigma_deg", 0.0, 10.0),
    )
    for field, low, high in limits:
        value = getattr(profile, field)
        if value is not None and not low <= value <= high:
            raise ValueError(f"{field}: expected a number in [{low:g}, {high:g}], got {value!r}")
    if profile.channels > 4096:
        raise ValueError(f"elevations_deg: at most 4096 channels, got {profile.channels}")
    if profile.points_per_scan > MAX_LIDAR_BEAMS:
        raise ValueError(f"expected at most {MAX_LIDAR_BEAMS:,} beams per scan, got {profile.points_per_scan:,}")
