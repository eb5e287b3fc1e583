"""Pure-numpy camera math: projection, silhouettes, labels, realism, colour encoding."""

import numpy as np
import pytest

from vlatwin.config.generate_cfg import RealismCfg
from vlatwin.sensors.camera.annotators import convex_hull_2d, rasterize_convex
from vlatwin.sensors.camera.labels import LabelTable
from vlatwin.sensors.camera.model import CameraModel, distort_normalized, project_points
from vlatwin.sensors.camera.realism import apply_realism, linear_to_srgb, srgb_to_linear, vignette_gain
from vlatwin.writers.basic import _colorize, decode_colorized
from vlatwin.writers.encoding import id_palette

CAM = CameraModel(width=640, height=480, fx=500.0, fy=500.0, cx=320.0, cy=240.0)


def test_projection_pinhole():
    """A point 2 m ahead and 0.4 m right lands 100 px right of the centre; points behind are flagged."""
    T = np.eye(4)  # USD camera at the origin looking down -Z, +Y up
    uv, front = project_points(np.array([[0.4, 0.2, -2.0], [0.0, 0.0, 1.0]]), T, CAM)
    np.testing.assert_allclose(uv[0], [420.0, 190.0])
    assert front.tolist() == [True, False]


def test_fisheye_equidistant():
    """With zero coefficients the fisheye maps the field angle linearly: r_d = theta."""
    fisheye = CameraModel(width=640, height=480, fx=500.0, fy=500.0, cx=320.0, cy=240.0, model="fisheye", distortion=(0, 0, 0, 0))
    xy = np.array([[1.0, 0.0]])  # 45 degrees off axis
    np.testing.assert_allclose(distort_normalized(xy, fisheye), [[np.pi / 4, 0.0]])


def test_convex_rasterization_area():
    """A rasterized convex polygon covers its area within a perimeter's worth of pixels."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        pts = rng.uniform(50, 400, size=(12, 2))
        hull = convex_hull_2d(pts)
        mask = np.zeros((480, 640), dtype=bool)
        rasterize_convex(hull, 640, 480, mask)
        x, y = hull[:, 0], hull[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        perimeter = np.sum(np.linalg.norm(hull - np.roll(hull, -1, axis=0), axis=1))
        assert abs(mask.sum() - area) < perimeter


def test_label_lookup_images():
    """Shape-index pixels map to instance ids (2+) and class ids; misses are background, unlabelled stay 1."""
    table = LabelTable(instance_paths=("/a", "/b"), instance_classes=("cup", "box"), shape_instance=np.array([0, 1, -1, 1]))
    shape_index = np.array([[0, 1], [2, 0xFFFFFFFF]], dtype=np.uint32)
    semantic, instance = table.lookup_images(shape_index)
    assert instance.tolist() == [[2, 3], [1, 0]]
    assert table.classes == ("box", "cup")
    assert semantic.tolist() == [[table.class_id("cup"), table.class_id("box")], [1, 0]]
    assert table.id_to_labels()["0"] == {"class": "BACKGROUND"}


def test_colorize_round_trip():
    """Colorized ids + their '(r, g, b, a)' JSON decode back to the same partition."""
    ids = np.random.default_rng(1).integers(0, 9, size=(40, 50)).astype(np.uint32)
    image, labels = _colorize(ids, {str(i): f"/prim{i}" for i in range(9)})
    index, decoded = decode_colorized(image, labels)
    for i in range(9):
        key = next(k for k, v in decoded.items() if v == f"/prim{i}")
        assert np.array_equal(index == key, ids == i)
    assert tuple(id_palette(np.array([0]))[0]) == (0, 0, 0, 0)


def test_srgb_round_trip():
    """uint8 sRGB -> linear -> sRGB is lossless."""
    values = np.arange(256, dtype=np.uint8)
    assert np.array_equal(linear_to_srgb(srgb_to_linear(values)), values)


def test_exposure_doubles_linear_light():
    """+1 EV doubles linear intensity (before clipping)."""
    img = np.full((8, 8, 4), 80, dtype=np.uint8)
    out = apply_realism(img, RealismCfg(exposure_ev=1.0), np.random.default_rng(0))
    assert srgb_to_linear(out[..., :3]).mean() == pytest.approx(2 * srgb_to_linear(img[..., :3]).mean(), rel=0.02)
    assert (out[..., 3] == 80).all()  # alpha untouched


def test_noise_statistics_match_sigma():
    """Read noise on a flat grey image has the configured standard deviation in linear units (10 %)."""
    img = np.full((256, 256, 3), 128, dtype=np.uint8)
    sigma = 0.02
    out = apply_realism(img, RealismCfg(read_noise=sigma), np.random.default_rng(0))
    diff = srgb_to_linear(out) - srgb_to_linear(img)
    assert diff.std() == pytest.approx(sigma, rel=0.1)
    assert abs(diff.mean()) < 0.002


def test_identity_realism_is_a_no_op_and_vignetting_darkens_corners():
    """Default realism returns the image untouched; vignetting keeps the centre and darkens the corners."""
    img = np.full((10, 10, 3), 200, dtype=np.uint8)
    assert apply_realism(img, RealismCfg(), np.random.default_rng(0)) is img
    gain = vignette_gain(640, 480, 1.0, fx=320.0)
    assert gain[240, 320] == pytest.approx(1.0, abs=1e-3)
    assert gain[0, 0] < 0.4


def test_camera_orbit_keeps_distance_and_target():
    """Orbit jitter turns the camera about the vertical through its target: same distance and height, new azimuth."""
    from vlatwin.config.generate_cfg import CameraRandomizationCfg
    from vlatwin.config.scene_cfg import CameraCfg
    from vlatwin.sdg.randomize import camera_pose, frame_rng

    cam = CameraCfg(name="c", position=(1.5, 0.0, 1.2), look_at=(0.5, 0.0, 0.8))
    settings = CameraRandomizationCfg(orbit_deg=60)
    azimuths = []
    for frame in range(20):
        T = camera_pose(cam, settings, frame_rng(0, frame))
        offset = T[:3, 3] - np.array(cam.look_at)
        assert np.linalg.norm(offset) == pytest.approx(np.linalg.norm(np.subtract(cam.position, cam.look_at)))
        assert T[2, 3] == pytest.approx(1.2)
        direction = (np.array(cam.look_at) - T[:3, 3]) / np.linalg.norm(offset)
        np.testing.assert_allclose(-T[:3, 2], direction, atol=1e-9)
        azimuths.append(np.degrees(np.arctan2(offset[1], offset[0])))
    assert max(azimuths) - min(azimuths) > 60 and max(np.abs(azimuths)) <= 60 + 1e-9
    assert camera_pose(cam, settings, frame_rng(0, 3)).tolist() == camera_pose(cam, settings, frame_rng(0, 3)).tolist()
