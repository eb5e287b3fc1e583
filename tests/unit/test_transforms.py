"""Rotation helpers (quaternions are w, x, y, z)."""

import numpy as np
import pytest

from vlatwin.utils.transforms import look_at_matrix, matrix_to_quat_wxyz, quat_wxyz_to_matrix, rpy_deg_to_matrix


def test_quaternion_roundtrip():
    """matrix -> quaternion -> matrix is the identity for random rotations, including 180 deg turns."""
    rng = np.random.default_rng(1)
    rotations = [rpy_deg_to_matrix(rng.uniform(-180, 180, 3)) for _ in range(100)]
    rotations += [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])]
    for rot in rotations:
        q = matrix_to_quat_wxyz(rot)
        assert q[0] >= 0.0 and np.linalg.norm(q) == pytest.approx(1.0)
        np.testing.assert_allclose(quat_wxyz_to_matrix(q), rot, atol=1e-9)


def test_rpy_is_extrinsic_xyz():
    """Yaw 90 deg maps +X to +Y; roll 90 deg maps +Y to +Z."""
    np.testing.assert_allclose(rpy_deg_to_matrix([0, 0, 90]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(rpy_deg_to_matrix([90, 0, 0]) @ [0, 1, 0], [0, 0, 1], atol=1e-12)


def test_look_at_points_camera_minus_z_at_target():
    """The camera's -Z axis points from eye to target and +Y stays up-ish."""
    rot = look_at_matrix([2, 1, 1.5], [0.5, 0, 0.75])
    direction = np.array([0.5, 0, 0.75]) - np.array([2, 1, 1.5])
    np.testing.assert_allclose(-rot[:, 2], direction / np.linalg.norm(direction), atol=1e-12)
    assert rot[2, 1] > 0
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
    with pytest.raises(ValueError):
        look_at_matrix([0, 0, 2], [0, 0, 0])
