"""Scan patterns -> beam directions (sensor frame: +X forward, +Z up) and firing times, in numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScanPattern:
    """All beams of one scan, in firing order grouped by column."""

    directions_s: np.ndarray
    """(N, 3) float32 unit vectors in the sensor frame."""
    times: np.ndarray
    """(N,) float64 firing time since scan start [s]."""
    rings: np.ndarray
    """(N,) uint16 channel index (row)."""
    columns: np.ndarray
    """(N,) int32 column index (firing group)."""
    n_columns: int


def _directions(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    ce = np.cos(elevation)
    return np.stack([ce * np.cos(azimuth), ce * np.sin(azimuth), np.sin(elevation)], axis=-1).astype(np.float32)


def make_pattern(profile, *, scan_index: int = 0) -> ScanPattern:
    """Beams of scan ``scan_index`` (rosette patterns do not repeat between scans)."""
    if profile.pattern == "rotating":
        n_rings, n_cols = profile.channels, profile.columns
        # A rotating head spins clockwise seen from above (azimuth decreasing), starting at +X.
        az = -np.arange(n_cols) / n_cols * np.deg2rad(profile.azimuth_fov_deg)
        el = np.deg2rad(np.asarray(profile.elevations_deg, dtype=float))
        azimuth = np.broadcast_to(az[:, None], (n_cols, n_rings))
        elevation = np.broadcast_to(el[None, :], (n_cols, n_rings))
        times = np.broadcast_to((np.arange(n_cols) / n_cols * profile.scan_time)[:, None], (n_cols, n_rings))
        rings = np.broadcast_to(np.arange(n_rings, dtype=np.uint16)[None, :], (n_cols, n_rings))
        columns = np.broadcast_to(np.arange(n_cols, dtype=np.int32)[:, None], (n_cols, n_rings))
        return ScanPattern(
            _directions(azimuth, elevation).reshape(-1, 3),
            times.reshape(-1).astype(np.float64),
            rings.reshape(-1).copy(),
            columns.reshape(-1).copy(),
            n_cols,
        )
    if profile.pattern == "solid_state":
        n_rows, n_cols = profile.rows, profile.columns
        half = np.deg2rad(profile.azimuth_fov_deg) / 2
        az = np.linspace(half, -half, n_cols)  # sweeps left to right
        lo, hi = np.deg2rad(profile.vertical_fov_deg)
        el = np.linspace(hi, lo, n_rows)
        azimuth = np.broadcast_to(az[:, None], (n_cols, n_rows))
        elevation = np.broadcast_to(el[None, :], (n_cols, n_rows))
        times = np.broadcast_to((np.arange(n_cols) / n_cols * profile.scan_time)[:, None], (n_cols, n_rows))
        rings = np.broadcast_to(np.arange(n_rows, dtype=np.uint16)[None, :], (n_cols, n_rows))
        columns = np.broadcast_to(np.arange(n_cols, dtype=np.int32)[:, None], (n_cols, n_rows))
        return ScanPattern(
            _directions(azimuth, elevation).reshape(-1, 3),
            times.reshape(-1).astype(np.float64),
            rings.reshape(-1).copy(),
            columns.reshape(-1).copy(),
            n_cols,
        )
    # Rosette (Livox style): a non-repetitive pattern; the beam index advances along a golden-ratio
    # azimuth sequence while elevation follows a fast sinusoid, so coverage fills in over time.
    n = profile.points_per_scan
    k = np.arange(n) + scan_index * n
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    azimuth = 2.0 * np.pi * ((k * golden) % 1.0)
    lo, hi = np.deg2rad(profile.vertical_fov_deg)
    phase = np.sin(2.0 * np.pi * k / 97.0 + 0.37 * np.sin(2.0 * np.pi * k / 1031.0))
    elevation = lo + (hi - lo) * (0.5 + 0.5 * phase)
    times = (np.arange(n) / n) * profile.scan_time
    n_cols = 64  # firing groups, so motion is sampled along the scan like a rotating head
    columns = (np.arange(n) * n_cols // n).astype(np.int32)
    return ScanPattern(_directions(azimuth, elevation), times, np.zeros(n, dtype=np.uint16), columns, n_cols)
