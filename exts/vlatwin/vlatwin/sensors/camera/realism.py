"""Camera realism on RGB, in numpy: exposure, gain, vignetting, tonemapping, shot/read noise, gamma.

Works in linear light: sRGB in -> linear -> sensor effects -> sRGB out. Label images never pass here.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def _srgb_to_linear(values: np.ndarray) -> np.ndarray:
    c = values.astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


_SRGB_TO_LINEAR = _srgb_to_linear(np.arange(256, dtype=np.uint8))
"""float32 linear value of each uint8 code: the formula run once on all 256 codes."""


def srgb_to_linear(u8: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float linear [0, 1] (IEC 61966-2-1); other dtypes go through the formula."""
    u8 = np.asarray(u8)
    if u8.dtype == np.uint8:
        return _SRGB_TO_LINEAR[u8]  # a table lookup: the same float32 values, ~10x faster than the power
    return _srgb_to_linear(u8)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """float linear [0, 1] -> uint8 sRGB (rounded)."""
    c = np.clip(linear, 0.0, 1.0)
    s = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return np.clip(np.rint(s * 255.0), 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def vignette_gain(width: int, height: int, strength: float, fx: float | None = None) -> np.ndarray:
    """(H, W) fall-off: cos^4 of the field angle, blended by ``strength`` (1 at the optical centre).

    Read-only and cached: a camera's fall-off is the same every frame.
    """
    fx = fx or 0.5 * width
    u = (np.arange(width) + 0.5 - width / 2) / fx
    v = (np.arange(height) + 0.5 - height / 2) / fx
    r2 = u[None, :] ** 2 + v[:, None] ** 2
    cos4 = 1.0 / (1.0 + r2) ** 2
    gain = (1.0 - strength) + strength * cos4
    gain.flags.writeable = False
    return gain


def tonemap(linear: np.ndarray, mode: str) -> np.ndarray:
    if mode == "reinhard":
        return linear / (1.0 + linear)
    if mode == "aces":  # Narkowicz's fit of the ACES filmic curve
        a, b, c, d, e = 2.51, 0.03, 2.43, 0.59, 0.14
        return np.clip((linear * (a * linear + b)) / (linear * (c * linear + d) + e), 0.0, 1.0)
    return linear


def apply_realism(rgba: np.ndarray, cfg, rng: np.random.Generator, *, fx: float | None = None) -> np.ndarray:
    """Sensor effects on an sRGB uint8 image (H, W, 3|4); alpha is kept. Returns a new uint8 image."""
    if _is_identity(cfg):
        return rgba
    height, width = rgba.shape[:2]
    linear = srgb_to_linear(rgba[..., :3])
    scale = (2.0**cfg.exposure_ev) * cfg.gain
    if scale != 1.0:  # x * 1.0 == x: skip the pass
        linear *= scale
    if cfg.vignetting > 0:
        linear *= vignette_gain(width, height, cfg.vignetting, fx)[..., None]
    linear = tonemap(linear, cfg.tonemap)
    # Noise terms built in place, in the same operation order as noise * sigma * sqrt(signal) (same bits).
    if cfg.shot_noise > 0:
        noise = rng.standard_normal(linear.shape, dtype=np.float32)
        noise *= cfg.shot_noise
        noise *= np.sqrt(np.clip(linear, 0, None))
        linear += noise
    if cfg.read_noise > 0:
        noise = rng.standard_normal(linear.shape, dtype=np.float32)
        noise *= cfg.read_noise
        linear += noise
    np.clip(linear, 0.0, 1.0, out=linear)
    if cfg.gamma != 1.0:
        linear = np.power(linear, 1.0 / cfg.gamma)
    out = rgba.copy()
    out[..., :3] = linear_to_srgb(linear)
    return out


def _is_identity(cfg) -> bool:
    return (
        cfg.exposure_ev == 0.0
        and cfg.gain == 1.0
        and cfg.gamma == 1.0
        and cfg.tonemap == "none"
        and cfg.shot_noise == 0.0
        and cfg.read_noise == 0.0
        and cfg.vignetting == 0.0
    )
