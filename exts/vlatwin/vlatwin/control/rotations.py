"""Rotation helpers for action spaces: axis-angle (rotation vector) and roll-pitch-yaw, in radians.

Conventions: rotation matrices act on column vectors; rpy is **extrinsic X, then Y, then Z** about the
fixed axes, i.e. ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (the same as
:func:`vlatwin.utils.transforms.rpy_deg_to_matrix`, and what OpenVLA/Bridge/LIBERO call "rpy");
a rotation vector is ``axis * angle`` [rad]; quaternions are (w, x, y, z).
"""

from __future__ import annotations

import numpy as np

from vlatwin.utils.transforms import matrix_to_quat_wxyz


def skew(v) -> np.ndarray:
    """3x3 cross-product matrix of a 3-vector: ``skew(a) @ b == cross(a, b)``."""
    x, y, z = np.asarray(v, dtype=float)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def rotvec_to_matrix(rotvec) -> np.ndarray:
    """Rotation vector ``axis * angle`` [rad] to a 3x3 rotation matrix (Rodrigues)."""
    rotvec = np.asarray(rotvec, dtype=float)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3) + skew(rotvec)
    k = skew(rotvec / angle)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def matrix_to_rotvec(rot: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix to a rotation vector [rad] with angle in [0, pi].

    Goes through the quaternion so it stays accurate near 0 and near pi, where the trace formula
    ``acos((tr - 1) / 2)`` loses precision.
    """
    w, *xyz = matrix_to_quat_wxyz(rot)  # w >= 0, so the angle is at most pi
    xyz = np.asarray(xyz)
    sin_half = float(np.linalg.norm(xyz))
    if sin_half < 1e-12:
        return 2.0 * xyz  # first order: angle ~ 2 * sin(angle / 2)
    angle = 2.0 * np.arctan2(sin_half, w)
    return xyz / sin_half * angle


def rpy_to_matrix(rpy) -> np.ndarray:
    """Roll, pitch, yaw [rad] (extrinsic X, Y, Z) to ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    r, p, y = np.asarray(rpy, dtype=float)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def matrix_to_rpy(rot: np.ndarray) -> np.ndarray:
    """3x3 rotation to roll, pitch, yaw [rad] (inverse of :func:`rpy_to_matrix`; pitch in [-pi/2, pi/2]).

    At pitch = +-pi/2 (gimbal lock) roll and yaw are not unique; roll is set to 0 there.
    """
    m = np.asarray(rot, dtype=float)
    pitch = float(np.arcsin(np.clip(-m[2, 0], -1.0, 1.0)))
    if abs(m[2, 0]) < 1.0 - 1e-9:
        roll = float(np.arctan2(m[2, 1], m[2, 2]))
        yaw = float(np.arctan2(m[1, 0], m[0, 0]))
    else:
        roll = 0.0
        yaw = float(np.arctan2(-m[0, 1], m[1, 1]))
    return np.array([roll, pitch, yaw])


def pose_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """6-D error from ``current`` to ``target`` (both 4x4 in the same frame): [dp [m], rotvec [rad]].

    The rotation part is ``rotvec(R_target @ R_current.T)``, expressed in that common frame, which is
    what a geometric Jacobian's angular rows (also in that frame) map joint velocities to.
    """
    err = np.empty(6)
    err[:3] = target[:3, 3] - current[:3, 3]
    err[3:] = matrix_to_rotvec(target[:3, :3] @ current[:3, :3].T)
    return err


__all__ = ["matrix_to_rotvec", "matrix_to_rpy", "pose_error", "rotvec_to_matrix", "rpy_to_matrix", "skew"]
