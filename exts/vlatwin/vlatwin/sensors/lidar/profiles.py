"""LIDAR sensor profiles: scan pattern, range limits, noise and rate, as data.

Each built-in profile cites the public datasheet its numbers come from. ``isaac_config`` /
``isaac_variant`` name the Isaac Sim 5.1 RTX Lidar config that matches it (None where Isaac ships none),
so both backends can be driven by the same profile name.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from vlatwin.config.base import StrictModel


class DropoutCfg(StrictModel):
    """Probability that a return is lost: base + at_max_range * (r / r_max)^2 + grazing * (1 - |cos i|)^2."""

    base: float = Field(0.0, ge=0.0, le=1.0)
    at_max_range: float = Field(0.3, ge=0.0, le=1.0)
    grazing: float = Field(0.3, ge=0.0, le=1.0)


class LidarProfile(StrictModel):
    """A LIDAR model. Angles [deg], ranges [m], rate [Hz]."""

    name: str
    pattern: Literal["rotating", "rosette", "solid_state"]
    elevations_deg: list[float] = []
    """Channel elevation angles (rotating: one per ring, top to bottom order is free)."""
    columns: int = Field(1024, ge=1)
    """Azimuth samples per revolution (rotating) or per row (solid_state)."""
    rate_hz: float = Field(10.0, gt=0.0)
    """Scan (frame) rate."""
    azimuth_fov_deg: float = Field(360.0, gt=0.0, le=360.0)
    """Horizontal field of view, centred on the sensor's +X."""
    vertical_fov_deg: tuple[float, float] | None = None
    """[min, max] elevation for rosette and solid_state patterns."""
    rows: int = Field(64, ge=1)
    """solid_state: rows of the rectangular grid."""
    points_per_second: float | None = Field(None, gt=0.0)
    """rosette: emitted points per second."""
    min_range: float = Field(0.3, ge=0.0)
    max_range: float = Field(100.0, gt=0.0)
    range_sigma: float = Field(0.0, ge=0.0)
    """1-sigma range noise [m]."""
    angular_sigma_deg: float = Field(0.0, ge=0.0)
    """1-sigma beam pointing jitter [deg]."""
    dropout: DropoutCfg = DropoutCfg()
    isaac_config: str | None = None
    isaac_variant: str | None = None
    source: str = ""
    """Where the numbers come from."""

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_range >= self.max_range:
            raise ValueError("min_range must be smaller than max_range")
        if self.pattern == "rotating" and not self.elevations_deg:
            raise ValueError("elevations_deg: a rotating lidar needs at least one channel")
        if self.pattern in ("rosette", "solid_state") and self.vertical_fov_deg is None:
            raise ValueError(f"vertical_fov_deg is required for a {self.pattern} pattern")
        if self.vertical_fov_deg is not None and not self.vertical_fov_deg[0] < self.vertical_fov_deg[1]:
            raise ValueError("vertical_fov_deg: expected [min, max] with min < max")
        if self.pattern == "rosette" and self.points_per_second is None:
            raise ValueError("points_per_second is required for a rosette pattern")
        return self

    @property
    def channels(self) -> int:
        if self.pattern == "rotating":
            return len(self.elevations_deg)
        return self.rows if self.pattern == "solid_state" else 1

    @property
    def points_per_scan(self) -> int:
        """Beams fired per scan (returns before range limits and dropout)."""
        if self.pattern == "rosette":
            return int(round(self.points_per_second / self.rate_hz))
        return self.channels * self.columns

    @property
    def scan_time(self) -> float:
        """[s]"""
        return 1.0 / self.rate_hz


def _uniform(top: float, bottom: float, n: int) -> list[float]:
    return [float(x) for x in np.linspace(top, bottom, n)]


def _ouster(channels: int, columns: int, rate: int) -> LidarProfile:
    variant = None
    if channels == 128:
        variant = f"OS1_REV7_128ch{rate}hz{columns}res"
    elif channels == 32:
        variant = f"OS1_REV6_32ch{rate}hz{columns}res"
    return LidarProfile(
        name=f"OS1-{channels}-{columns}x{rate}",
        pattern="rotating",
        elevations_deg=_uniform(21.1, -21.1, channels),
        columns=columns,
        rate_hz=rate,
        min_range=0.5,
        max_range=120.0,
        range_sigma=0.01,
        isaac_config="OS1" if variant else None,
        isaac_variant=variant,
        source="Ouster OS1 Rev7 datasheet: 32/64/128 channels, 42.2 deg vertical FOV (uniform), 512/1024/2048 x 10/20 Hz "
        "(2048 at 10 Hz only), 0.5-120 m (90 m at 10 %), precision +-1 cm",
    )


# HDL-64E S3: upper block 32 lasers +2.0 .. -8.33 deg, lower block -8.83 .. -24.33 deg (manual, appendix).
_HDL64_ELEVATIONS = _uniform(2.0, -8.33, 32) + _uniform(-8.83, -24.33, 32)
# Pandar64: denser near the horizon; approximate table from the user manual's channel distribution.
_PANDAR64_ELEVATIONS = _uniform(15.0, 7.0, 5) + _uniform(6.0, 3.0, 4) + _uniform(2.834, -6.0, 48) + _uniform(-7.0, -25.0, 7)

BUILTIN_PROFILES: dict[str, LidarProfile] = {}
for _ch in (32, 64, 128):
    for _cols, _rate in ((512, 10), (1024, 10), (2048, 10), (512, 20), (1024, 20)):
        _p = _ouster(_ch, _cols, _rate)
        BUILTIN_PROFILES[_p.name] = _p
# Short names: the common 10 Hz modes.
BUILTIN_PROFILES["OS1-32"] = BUILTIN_PROFILES["OS1-32-1024x10"].model_copy(update={"name": "OS1-32"})
BUILTIN_PROFILES["OS1-64"] = BUILTIN_PROFILES["OS1-64-1024x10"].model_copy(update={"name": "OS1-64"})
BUILTIN_PROFILES["OS1-128"] = BUILTIN_PROFILES["OS1-128-2048x10"].model_copy(update={"name": "OS1-128"})
BUILTIN_PROFILES.update(
    {
        "VLP-16": LidarProfile(
            name="VLP-16",
            pattern="rotating",
            elevations_deg=_uniform(15.0, -15.0, 16),
            columns=1800,
            rate_hz=10.0,
            min_range=0.5,
            max_range=100.0,
            range_sigma=0.015,
            source="Velodyne VLP-16 datasheet: 16 channels, +-15 deg at 2 deg, 0.2 deg azimuth at 10 Hz, 100 m, +-3 cm",
        ),
        "HDL-64E": LidarProfile(
            name="HDL-64E",
            pattern="rotating",
            elevations_deg=_HDL64_ELEVATIONS,
            columns=2048,
            rate_hz=10.0,
            min_range=0.9,
            max_range=120.0,
            range_sigma=0.02,
            source="Velodyne HDL-64E S3 manual: 64 lasers in two blocks (+2 .. -24.33 deg), 0.17 deg azimuth at 10 Hz, "
            "120 m, < 2 cm accuracy",
        ),
        "PandarXT32": LidarProfile(
            name="PandarXT32",
            pattern="rotating",
            elevations_deg=_uniform(15.0, -16.0, 32),
            columns=2000,
            rate_hz=10.0,
            min_range=0.05,
            max_range=120.0,
            range_sigma=0.01,
            isaac_config="HESAI_XT32_SD10",
            source="Hesai PandarXT32 datasheet: 32 channels, -16 .. +15 deg at 1 deg, 0.18 deg azimuth at 10 Hz, "
            "0.05-120 m, +-1 cm",
        ),
        "Pandar64": LidarProfile(
            name="Pandar64",
            pattern="rotating",
            elevations_deg=_PANDAR64_ELEVATIONS,
            columns=1800,
            rate_hz=10.0,
            min_range=0.3,
            max_range=200.0,
            range_sigma=0.02,
            source="Hesai Pandar64 datasheet: 64 channels, -25 .. +15 deg (finer near the horizon; table approximated), "
            "0.2 deg azimuth at 10 Hz, 0.3-200 m, +-2 cm",
        ),
        "Mid-360": LidarProfile(
            name="Mid-360",
            pattern="rosette",
            vertical_fov_deg=(-7.0, 52.0),
            points_per_second=200_000,
            rate_hz=10.0,
            min_range=0.1,
            max_range=70.0,
            range_sigma=0.02,
            source="Livox Mid-360 datasheet: 360 x 59 deg (-7 .. +52) non-repetitive scan, 200,000 points/s, 10 Hz frames, "
            "0.1-70 m (40 m at 10 %), <= 2 cm",
        ),
        "SolidState-120x25": LidarProfile(
            name="SolidState-120x25",
            pattern="solid_state",
            azimuth_fov_deg=120.0,
            vertical_fov_deg=(-12.5, 12.5),
            columns=480,
            rows=100,
            rate_hz=10.0,
            min_range=0.2,
            max_range=150.0,
            range_sigma=0.03,
            isaac_config="Example_Solid_State",
            source="generic automotive solid-state class (120 x 25 deg, 0.25 deg grid, 10 Hz), as in Isaac's Example_Solid_State",
        ),
    }
)


def resolve_profile(spec) -> LidarProfile:
    """A profile from a built-in name or an inline mapping (validated)."""
    if isinstance(spec, LidarProfile):
        return spec
    if isinstance(spec, str):
        if spec not in BUILTIN_PROFILES:
            raise ValueError(f"unknown lidar profile {spec!r}; known: {', '.join(sorted(BUILTIN_PROFILES))}")
        return BUILTIN_PROFILES[spec]
    return LidarProfile.model_validate(spec)


def isaac_supported_profiles() -> list[str]:
    """Built-in profile names that have an Isaac Sim 5.1 RTX Lidar config (``isaac_config``)."""
    return sorted(name for name, p in BUILTIN_PROFILES.items() if p.isaac_config)


def require_isaac_profile(profile: LidarProfile, *, field: str = "isaac_profile") -> LidarProfile:
    """``profile`` if Isaac Sim ships an RTX config for it, else a one-line ValueError naming the supported ones.

    Isaac Sim 5.1's Ouster OS1 configs have 32 (REV6) and 128 (REV7/REV6) channels only, no 64
    ([IS] v5.1.0 source/extensions/isaacsim.sensors.rtx/python/impl/supported_lidar_configs.py L48-63).
    """
    if profile.isaac_config is None:
        raise ValueError(
            f"{field}: lidar profile {profile.name!r} has no Isaac Sim RTX config; on the isaacsim backend use one of: "
            f"{', '.join(isaac_supported_profiles())} (e.g. set isaac_profile: OS1-128-1024x10)"
        )
    return profile
