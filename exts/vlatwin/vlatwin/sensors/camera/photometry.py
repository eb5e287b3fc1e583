"""Light units: UsdLux photometry to camera pixel values and Cycles light strengths (pure numpy).

UsdLux (OpenUSD's light schema) defines ``inputs:intensity * 2**inputs:exposure`` as the luminance
[nit = cd/m^2] of the light's emitting surface, unless ``inputs:normalize`` is on:

- distant light, not normalized: a disc of angular diameter ``angle`` with that luminance, so the
  illuminance on a surface facing it is ``L * 2*pi*(1 - cos(angle/2))`` [lux]; normalized: the value
  *is* that illuminance [lux] (vlatwin authors its distant lights normalized, so ``intensity: 3000``
  in a config is 3000 lux, a bright overcast day);
- sphere / rect / disk / cylinder light: luminance of the surface; normalized: divided by the area;
- dome light: the luminance of the sky seen in every direction.

A camera turns luminance into a pixel value through its exposure. We use the saturation-based ISO
12232 relation: the luminance that just saturates the sensor is ``L_sat = 1.2 * 2**EV100`` [nit]
(78 / (ISO * q) * N^2 / t with q = 0.65 and ISO 100), so a linear pixel value is ``L / L_sat``.
EV100 = log2(N^2 / t) at ISO 100: f/5.6 at 1/60 s is EV100 11.

Cycles renders radiance in its own scene units, in which a sun of strength S [W/m^2] on a white
Lambertian card facing it gives pixel value S/pi, a world colour B gives B on the same card, a point
light of power P [W] and radius r looks like a sphere of radiance P / (4 pi^2 r^2), and a one-sided
area light of power P and area A has radiance P / (pi A). Scaling every light by ``1 / L_sat`` makes
a Cycles pixel equal ``L / L_sat`` for a surface of luminance L [nit]: one exposure, no tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LUMINANCE_SATURATION_K = 1.2
"""L_sat / 2**EV100 [nit]: ISO 12232 saturation constant 78 / (100 * 0.65)."""


def saturation_luminance(ev100: float) -> float:
    """Luminance [nit] that maps to linear pixel value 1.0 at exposure ``ev100``."""
    return LUMINANCE_SATURATION_K * 2.0 ** float(ev100)


def ev100_from_camera(f_stop: float, shutter_s: float, iso: float = 100.0) -> float:
    """EV100 of a camera setting: log2(N^2 / t) - log2(ISO / 100)."""
    return float(np.log2(f_stop**2 / shutter_s) - np.log2(iso / 100.0))


def kelvin_to_rgb(kelvin: float) -> np.ndarray:
    """Linear RGB of a black body at ``kelvin`` normalised to max 1 (Tanner Helland's fit)."""
    from vlatwin.sdg.randomize import kelvin_to_rgb as fit

    return np.array(fit(kelvin))


@dataclass(frozen=True)
class LightPhotometry:
    """One UsdLux light reduced to what a renderer needs, in SI photometric units.

    ``kind``: distant | dome | sphere | rect | disk | cylinder. Frames: ``T_w_light`` is the light's
    4x4 light-to-world transform (UsdLux lights shine along their local -Z).
    """

    kind: str
    path: str
    T_w_light: np.ndarray
    rgb: np.ndarray
    """Linear RGB tint (colour x colour temperature), max usually 1."""
    luminance: float
    """Emitting-surface luminance [nit] (dome: sky luminance; distant: the sun disc's)."""
    illuminance: float = 0.0
    """Distant lights only: illuminance on a surface facing the light [lux]."""
    angle_deg: float = 0.0
    radius: float = 0.0
    """Sphere / disk / cylinder radius [m]."""
    width: float = 0.0
    """Rect width / cylinder length [m]."""
    height: float = 0.0
    """Rect height [m]."""
    texture: str | None = None
    """Dome light: an HDRI (lat-long) image file, resolved to an absolute path."""


def distant_illuminance(luminance: float, angle_deg: float, normalize: bool) -> float:
    """Illuminance [lux] a distant light gives a surface facing it (see the module docstring)."""
    if normalize or angle_deg <= 0.0:
        return float(luminance)
    half = np.deg2rad(angle_deg) / 2.0
    return float(luminance * 2.0 * np.pi * (1.0 - np.cos(half)))


def emitter_area(kind: str, radius: float = 0.0, width: float = 0.0, height: float = 0.0) -> float:
    """Emitting area [m^2] used by ``inputs:normalize`` (UsdLux: world-space surface area)."""
    if kind == "sphere":
        return 4.0 * np.pi * radius**2
    if kind == "rect":
        return width * height
    if kind == "disk":
        return np.pi * radius**2
    if kind == "cylinder":
        return 2.0 * np.pi * radius * width
    return 1.0


# --------------------------------------------------------------- Cycles units (see module docstring)
def cycles_sun_strength(illuminance_lux: float, l_sat: float) -> float:
    """Cycles sun strength for an illuminance [lux] at exposure ``L_sat`` [nit]."""
    return illuminance_lux / l_sat


def cycles_background_strength(luminance: float, l_sat: float) -> float:
    """Cycles world background strength for a sky luminance [nit]."""
    return luminance / l_sat


def cycles_point_power(luminance: float, radius: float, l_sat: float) -> float:
    """Cycles point light power [W] for a sphere of ``radius`` [m] and surface luminance [nit]."""
    return 4.0 * np.pi**2 * radius**2 * luminance / l_sat


def cycles_area_power(luminance: float, area: float, l_sat: float) -> float:
    """Cycles one-sided area light power [W] for an emitter of ``area`` [m^2] and luminance [nit]."""
    return np.pi * area * luminance / l_sat


# --------------------------------------------------------- closed forms (what the tests check against)
def lambert_pixel(albedo: float, illuminance_lux: float, l_sat: float) -> float:
    """Linear pixel value of a Lambertian surface of ``albedo`` under ``illuminance_lux``: rho E / (pi L_sat)."""
    return albedo * illuminance_lux / (np.pi * l_sat)


def sphere_illuminance(luminance: float, radius: float, distance: float) -> float:
    """Illuminance [lux] on a surface facing a spherical emitter at centre distance ``distance`` [m]."""
    return float(luminance * np.pi * (radius / distance) ** 2)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] to sRGB [0, 1] (IEC 61966-2-1)."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
