"""Range images of rotating LIDAR scans: cells at the right ring and azimuth, nearest return kept."""

import numpy as np
import pytest

from vlatwin.errors import VlatwinError
from vlatwin.sensors.lidar.profiles import resolve_profile
from vlatwin.sensors.lidar.range_image import range_image, range_image_shape
from vlatwin.sensors.lidar.sensor_model import POINT_DTYPE


def _points(rows):
    pts = np.zeros(len(rows), dtype=POINT_DTYPE)
    for i, (x, y, z, ring) in enumerate(rows):
        pts[i]["x"], pts[i]["y"], pts[i]["z"], pts[i]["ring"] = x, y, z, ring
    return pts


def test_cells_hold_the_range_at_ring_and_azimuth():
    profile = resolve_profile("VLP-16")
    rings, columns = range_image_shape(profile)
    assert (rings, columns) == (16, profile.columns)
    pts = _points([(2.0, 0.0, 0.0, 3), (0.0, 3.0, 0.0, 5), (-4.0, -1e-3, 0.0, 0), (0.0, -1.0, 1.0, 15), (4.0, -1e-3, 0.0, 7)])
    image = range_image(pts, profile)
    assert image.dtype == np.float32 and image.shape == (16, columns)
    assert image[3, 0] == pytest.approx(2.0)                        # +X: azimuth 0
    assert image[5, columns // 4] == pytest.approx(3.0)             # +Y: a quarter turn
    assert image[0, columns // 2] == pytest.approx(4.0, abs=1e-5)   # just past -X (half a turn)
    assert image[15, 3 * columns // 4] == pytest.approx(np.sqrt(2.0))  # -Y
    assert image[7, columns - 1] == pytest.approx(4.0, abs=1e-5)    # just below +X: the last column
    assert np.count_nonzero(image) == 5                             # everything else: no return


def test_nearest_return_wins_and_empty_scans():
    profile = resolve_profile("VLP-16")
    image = range_image(_points([(5.0, 0.0, 0.0, 2), (1.5, 0.0, 0.0, 2), (3.0, 0.0, 0.0, 2)]), profile)
    assert image[2, 0] == pytest.approx(1.5)
    assert not range_image(np.empty(0, dtype=POINT_DTYPE), profile).any()


def test_patterns_without_a_grid_are_refused():
    with pytest.raises(VlatwinError, match="no fixed ring x column grid"):
        range_image_shape(resolve_profile("Mid-360"))
