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
    # NaN and +-inf fail the range test on their own (min_range >= 0), so no separate isfinite pass.
    keep = r >= profile.min_range
    keep &= r <= profile.max_range
    measured = r.astype(np.float32, copy=True)
    if rng is not None:
        d = profile.dropout
        # p = base + at_max_range * (r / r_max)^2 + grazing * (1 - cos)^2, the same float operations in the
        # same order, on as few temporaries as possible.
        p = r / profile.max_range
        np.square(p, out=p)
        np.multiply(p, d.at_max_range, out=p)
        np.add(p, d.base, out=p)
        grazing = np.subtract(1.0, cos_incidence)
        np.square(grazing, out=grazing)
        np.multiply(grazing, d.grazing, out=grazing)
        p = np.add(p, grazing, out=p if p.dtype == np.result_type(p, grazing) else None)
        keep &= rng.random(r.shape, dtype=np.float32) >= p
        if profile.range_sigma > 0:
            noise = rng.standard_normal(r.shape, dtype=np.float32)
            measured += np.multiply(noise, np.float32(profile.range_sigma), out=noise)
    with np.errstate(divide="ignore", invalid="ignore"):
        falloff = np.divide(REFERENCE_RANGE, np.where(keep, r, REFERENCE_RANGE))
        np.square(falloff, out=falloff)
        np.minimum(falloff, 1.0, out=falloff)
    intensity = reflectivity * cos_incidence
    intensity = np.multiply(intensity, falloff, out=intensity if intensity.dtype == np.result_type(intensity, falloff) else None)
    np.clip(intensity, 0.0, 1.0, out=intensity)
    return keep, measured, intensity.astype(np.float32, copy=False)
