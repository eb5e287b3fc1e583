"""Camera models in numpy: intrinsics, OpenCV distortion, world->pixel projection, GL matrices.

Frames: ``T_w_cam`` is the camera-to-world transform of a USD camera (looks along its -Z, +Y up).
Pixels: (u, v) with the origin at the top-left pixel's corner, v down (image row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class CameraModel:
    """Static intrinsics of one camera."""

    width: int
    """[px]"""
    height: int
    """[px]"""
    fx: float
    """[px]"""
    fy: float
    """[px]"""
    cx: float
    """Principal point [px] (image centre = width / 2)."""
    cy: float
    """[px]"""
    model: str = "pinhole"
    """``pinhole`` (OpenCV radial-tangential distortion) or ``fisheye`` (OpenCV equidistant)."""
    distortion: tuple[float, ...] = ()
    """pinhole: (k1, k2, p1, p2, k3, k4, k5, k6); fisheye: (k1, k2, k3, k4)."""
    near: float = 0.01
    """[m]"""
    far: float = 100.0
    """[m]"""
    focal_length_mm: float = 0.0
    horizontal_aperture_mm: float = 20.955

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsic matrix (OpenCV convention: x right, y down, z forward)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def vertical_aperture_mm(self) -> float:
        return self.horizontal_aperture_mm * self.height / self.width

    @classmethod
    def from_cfg(cls, cfg, *, resolution: tuple[int, int] | None = None, distortion=(), model="pinhole") -> CameraModel:
        """Intrinsics of a :class:`CameraCfg` (square pixels, centred principal point)."""
        width, height = resolution or cfg.resolution
        fx = cfg.focal_length_mm / cfg.horizontal_aperture * width
        return cls(
            width=int(width),
            height=int(height),
            fx=fx,
            fy=fx,
            cx=width / 2.0,
            cy=height / 2.0,
            model=model,
            distortion=tuple(float(d) for d in distortion),
            near=cfg.clipping_range[0],
            far=cfg.clipping_range[1],
            focal_length_mm=cfg.focal_length_mm,
            horizontal_aperture_mm=cfg.horizontal_aperture,
        )


# USD camera (x right, y up, looks -z) -> OpenCV camera (x right, y down, looks +z).
USD_TO_CV = np.diag([1.0, -1.0, -1.0])


def world_to_camera_cv(points_w: np.ndarray, T_w_cam: np.ndarray) -> np.ndarray:
    """World points (N, 3) [m] into the OpenCV camera frame (N, 3)."""
    rot, pos = T_w_cam[:3, :3], T_w_cam[:3, 3]
    points_usd = (np.asarray(points_w, dtype=np.float64) - pos) @ rot
    return points_usd @ USD_TO_CV


def distort_normalized(xy: np.ndarray, camera: CameraModel) -> np.ndarray:
    """Apply the camera's distortion to normalized image coordinates (N, 2)."""
    if camera.model == "fisheye":
        k = (list(camera.distortion) + [0.0] * 4)[:4]
        r = np.linalg.norm(xy, axis=1)
        theta = np.arctan(r)
        theta_d = theta * (1 + k[0] * theta**2 + k[1] * theta**4 + k[2] * theta**6 + k[3] * theta**8)
        scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
        return xy * scale[:, None]
    if not camera.distortion or not any(camera.distortion):
        return xy
    k1, k2, p1, p2, k3, k4, k5, k6 = (list(camera.distortion) + [0.0] * 8)[:8]
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], axis=1)


def project_points(points_w: np.ndarray, T_w_cam: np.ndarray, camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Project world points to pixels.

    Returns:
        (uv (N, 2) [px], in_front (N,) bool); points behind the near plane have undefined uv.
    """
    p_cv = world_to_camera_cv(points_w, T_w_cam)
    z = p_cv[:, 2]
    in_front = z > camera.near
    safe_z = np.where(in_front, z, 1.0)
    xy = p_cv[:, :2] / safe_z[:, None]
    xy = distort_normalized(xy, camera)
    uv = np.stack([camera.fx * xy[:, 0] + camera.cx, camera.fy * xy[:, 1] + camera.cy], axis=1)
    return uv, in_front


def view_matrix(T_w_cam: np.ndarray) -> np.ndarray:
    """World->camera 4x4 (USD camera frame, column-vector convention)."""
    return np.linalg.inv(T_w_cam)


def projection_matrix(camera: CameraModel) -> np.ndarray:
    """OpenGL-style 4x4 perspective projection (column-vector convention) for the pinhole part."""
    n, f = camera.near, camera.far
    w, h = camera.width, camera.height
    return np.array(
        [
            [2 * camera.fx / w, 0.0, 1 - 2 * camera.cx / w, 0.0],
            [0.0, 2 * camera.fy / h, 2 * camera.cy / h - 1, 0.0],
            [0.0, 0.0, -(f + n) / (f - n), -2 * f * n / (f - n)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )
