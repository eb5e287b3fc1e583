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


def _column_grid(azimuths: np.ndarray, elevations: np.ndarray, scan_time: float) -> ScanPattern:
    """Columns fired one after another, each column firing every elevation at once."""
    n_cols, n_rows = len(azimuths), len(elevations)
    azimuth = np.broadcast_to(azimuths[:, None], (n_cols, n_rows))
    elevation = np.broadcast_to(elevations[None, :], (n_cols, n_rows))
    times = np.repeat(np.arange(n_cols) / n_cols * scan_time, n_rows)
    rings = np.tile(np.arange(n_rows, dtype=np.uint16), n_cols)
    columns = np.repeat(np.arange(n_cols, dtype=np.int32), n_rows)
    return ScanPattern(_directions(azimuth, elevation).reshape(-1, 3), times, rings, columns, n_cols)


def make_pattern(profile, *, scan_index: int = 0) -> ScanPattern:
    """Beams of scan ``scan_index`` (rosette patterns do not repeat between scans)."""
    if profile.pattern == "rotating":
        # A rotating head spins clockwise seen from above (azimuth decreasing), starting at +X.
        az = -np.arange(profile.columns) / profile.columns * np.deg2rad(profile.azimuth_fov_deg)
        return _column_grid(az, np.deg2rad(np.asarray(profile.elevations_deg, dtype=float)), profile.scan_time)
    if profile.pattern == "solid_state":
        half = np.deg2rad(profile.azimuth_fov_deg) / 2
        lo, hi = np.deg2rad(profile.vertical_fov_deg)
        # Sweeps left to right, one column of rows at a time.
        return _column_grid(np.linspace(half, -half, profile.columns), np.linspace(hi, lo, profile.rows), profile.scan_time)
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
