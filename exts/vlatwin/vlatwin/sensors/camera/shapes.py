"""Surface sample points of convex primitives (numpy), for silhouettes and 3D box extents."""

from __future__ import annotations

import numpy as np

_RING = 32


def _circle(radius: float, z: float, n: int = _RING) -> np.ndarray:
    a = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([radius * np.cos(a), radius * np.sin(a), np.full(n, z)], axis=1)


def sphere_points(radius: float, n: int = 160) -> np.ndarray:
    """Fibonacci points on a sphere of ``radius`` [m]."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return radius * np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def box_points(half_extents) -> np.ndarray:
    hx, hy, hz = half_extents
    return np.array([[sx * hx, sy * hy, sz * hz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])


def cylinder_points(radius: float, half_height: float) -> np.ndarray:
    """Rim points of a Z-axis cylinder."""
    return np.concatenate([_circle(radius, -half_height), _circle(radius, half_height)])


def capsule_points(radius: float, half_height: float) -> np.ndarray:
    """Surface points of a Z-axis capsule (two hemispheres joined by a cylinder)."""
    cap = sphere_points(radius, 120)
    top = cap[cap[:, 2] >= 0] + [0.0, 0.0, half_height]
    bottom = cap[cap[:, 2] < 0] - [0.0, 0.0, half_height]
    return np.concatenate([top, bottom, cylinder_points(radius, half_height)])
