"""Rigid transforms in numpy.

Conventions: quaternions are **(w, x, y, z)** unless a name ends in ``_xyzw``; rotation matrices act
on column vectors; angles are radians unless a name ends in ``_deg``.
"""

from __future__ import annotations

import numpy as np


def rot_x(angle: float) -> np.ndarray:
    """3x3 rotation about +X by ``angle`` [rad]."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle: float) -> np.ndarray:
    """3x3 rotation about +Z by ``angle`` [rad]."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rpy_deg_to_matrix(rpy_deg) -> np.ndarray:
    """Roll-pitch-yaw [deg] (extrinsic X, then Y, then Z) to a 3x3 rotation matrix."""
    r, p, y = np.deg2rad(np.asarray(rpy_deg, dtype=float))
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def matrix_to_rpy_deg(rot: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rpy_deg_to_matrix`: roll, pitch, yaw [deg] (extrinsic X, Y, Z) of a 3x3 rotation."""
    rot = np.asarray(rot, dtype=float)
    pitch = np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))
    if abs(np.cos(pitch)) > 1e-9:
        roll = np.arctan2(rot[2, 1], rot[2, 2])
        yaw = np.arctan2(rot[1, 0], rot[0, 0])
    else:  # gimbal lock: put everything in yaw
        roll, yaw = 0.0, np.arctan2(-rot[0, 1], rot[1, 1])
    return tuple(float(v) for v in np.rad2deg([roll, pitch, yaw]))


def matrix_to_quat_wxyz(rot: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix to a unit quaternion (w, x, y, z) with w >= 0."""
    m = np.asarray(rot, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0.0 else q


def quat_wxyz_to_matrix(quat_wxyz) -> np.ndarray:
    """Unit quaternion (w, x, y, z) to a 3x3 rotation matrix."""
    w, x, y, z = np.asarray(quat_wxyz, dtype=float) / np.linalg.norm(quat_wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def make_transform(rot: np.ndarray | None = None, pos=None) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a translation [m]."""
    tf = np.eye(4)
    if rot is not None:
        tf[:3, :3] = rot
    if pos is not None:
        tf[:3, 3] = pos
    return tf


def look_at_matrix(eye_w, target_w, up_w=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world rotation for a USD camera (looks along its -Z, +Y up) at ``eye_w`` facing ``target_w``."""
    eye, target, up = (np.asarray(v, dtype=float) for v in (eye_w, target_w, up_w))
    z_axis = eye - target
    if np.linalg.norm(z_axis) < 1e-9:
        raise ValueError("camera position and look_at coincide")
    z_axis /= np.linalg.norm(z_axis)
    x_axis = np.cross(up, z_axis)
    if np.linalg.norm(x_axis) < 1e-9:
        raise ValueError("camera view direction is parallel to its up vector; choose another up")
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    return np.stack([x_axis, y_axis, z_axis], axis=1)
