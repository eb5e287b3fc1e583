"""Run-log encoding of camera frames and LIDAR clouds (Foxglove CompressedImage / PointCloud in JSON)."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from vlatwin.errors import VlatwinError
from vlatwin.twin.cameras import decode_image_message, foxglove_time, image_message
from vlatwin.twin.lidars import cloud_message, decode_cloud_message


def test_image_round_trip_through_pillow():
    rgb = np.random.default_rng(0).integers(0, 256, (12, 17, 3), dtype=np.uint8)
    msg = image_message(rgb, 12.25, "front")
    assert msg["format"] == "png" and msg["frame_id"] == "front" and msg["timestamp"] == {"sec": 12, "nsec": 250_000_000}
    # A third-party decoder reads the bytes; and ours gives the same pixels.
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(msg["data"])))), rgb)
    assert np.array_equal(decode_image_message(msg), rgb)


def test_cloud_round_trip_is_packed_little_endian_float32():
    xyz = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    msg = cloud_message(xyz, 3.5, "os1")
    assert msg["point_stride"] == 12 and [f["name"] for f in msg["fields"]] == ["x", "y", "z"]
    assert all(f["type"] == 7 for f in msg["fields"])  # FLOAT32 in foxglove.PointCloud
    assert np.array_equal(np.frombuffer(base64.b64decode(msg["data"]), "<f4").reshape(-1, 3), xyz)
    assert np.array_equal(decode_cloud_message(msg), xyz)
    assert decode_cloud_message(cloud_message(np.zeros((0, 3)), 0.0, "empty")).shape == (0, 3)


def test_foxglove_time_carries_nanoseconds():
    assert foxglove_time(1.999999999) == {"sec": 1, "nsec": 999_999_999}
    assert foxglove_time(0.0) == {"sec": 0, "nsec": 0}


def test_bad_frames_and_clouds_are_one_line_errors():
    with pytest.raises(VlatwinError, match="uint8 \\(H, W, 3\\)"):
        image_message(np.zeros((4, 4), np.uint8), 0.0, "front")
    with pytest.raises(VlatwinError, match="'front': not a decodable image"):
        decode_image_message({"frame_id": "front", "data": base64.b64encode(b"not a png").decode()})
    with pytest.raises(VlatwinError, match="finite \\(N, 3\\)"):
        cloud_message(np.array([[0.0, np.nan, 1.0]]), 0.0, "os1")
    with pytest.raises(VlatwinError, match="'os1': not an x, y, z float32 cloud"):
        decode_cloud_message({"frame_id": "os1", "point_stride": 12, "fields": [{"name": n} for n in "xyz"], "data": "AAAA"})
