"""Per-return LIDAR physics in numpy: range limits, noise, dropout, intensity.

Intensity model: I = reflectivity * |cos(incidence)| * min(1, (r_ref / r)^2), clipped to [0, 1], with
r_ref = 10 m (most sensors report range-normalised reflectivity close by and fall off beyond).
"""

from __future__ import annotations

import numpy as np

REFERENCE_RANGE = 10.0
"""[m]"""

POINT_DTYPE = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("intensity", "<f4"),
        ("t", "<f4"),
        ("ring", "<u2"),
        ("class", "<u2"),
        ("instance", "<u2"),
    ]
)
"""Per-point record: position in the sensor frame at firing time [m], intensity [0, 1], time since scan
start [s], channel, semantic class id, instance id (ids as in the camera annotators)."""


def jitter_directions(directions: np.ndarray, sigma_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Perturb unit beam directions by ~N(0, sigma) pointing error (small-angle), renormalised."""
    if sigma_deg <= 0:
        return directions
    noise = rng.standard_normal(directions.shape).astype(np.float32) * np.float32(np.deg2rad(sigma_deg))
    noise -= np.sum(noise * directions, axis=1, keepdims=True) * directions  # keep it perpendicular
    out = directions + noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def returns(
    range_true: np.ndarray,
    cos_incidence: np.ndarray,
    reflectivity: np.ndarray,
    profile,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which beams return, their measured range and intensity.

    Args:
        range_true: (N,) distance to the first hit [m]; inf or <= 0 for a miss.
        cos_incidence: (N,) |cos| of the angle between beam and surface normal.
        reflectivity: (N,) surface reflectivity in [0, 1].
        rng: None disables noise and dropout (ideal sensor).

    Returns:
        (keep mask (N,), measured range (N,), intensity (N,)).
    """
    r = range_true
    keep = np.isfinite(r) & (r >= profile.min_range) & (r <= profile.max_range)
    measured = r.astype(np.float32, copy=True)
    if rng is not None:
        d = profile.dropout
        p = d.base + d.at_max_range * (r / profile.max_range) ** 2 + d.grazing * (1.0 - cos_incidence) ** 2
        keep &= rng.random(r.shape, dtype=np.float32) >= p
        if profile.range_sigma > 0:
            measured += rng.standard_normal(r.shape, dtype=np.float32) * np.float32(profile.range_sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        falloff = np.minimum(1.0, (REFERENCE_RANGE / np.where(keep, r, REFERENCE_RANGE)) ** 2)
    intensity = np.clip(reflectivity * cos_incidence * falloff, 0.0, 1.0).astype(np.float32)
    return keep, measured, intensity
