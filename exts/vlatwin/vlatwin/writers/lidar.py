"""LIDAR files: structured .npy, binary PCD, KITTI velodyne .bin + SemanticKITTI .label, class map.

Layout per sensor: ``<lidar>/lidar_NNNN.npy``, ``<lidar>/lidar_NNNN.pcd``,
``<lidar>/velodyne/NNNNNN.bin`` (x, y, z, intensity float32), ``<lidar>/labels/NNNNNN.label``
(uint32: class id in the lower 16 bits, instance id in the upper 16), ``<lidar>/class_map.yaml``
(class id -> name) and ``<lidar>/instance_map.yaml`` (instance id -> labelled prim path).
"""

from __future__ import annotations

import numpy as np
import yaml

from vlatwin.writers.encoding import class_colors, npy_bytes

PCD_FIELDS = (("x", "F", 4), ("y", "F", 4), ("z", "F", 4), ("intensity", "F", 4), ("t", "F", 4), ("ring", "U", 2), ("label", "U", 2), ("instance", "U", 2))


def pcd_bytes(points: np.ndarray) -> bytes:
    """Binary PCD v0.7 with fields x y z intensity t ring label instance (``label`` = class id)."""
    n = len(points)
    header = "\n".join(
        [
            "# .PCD v0.7 - Point Cloud Data file format",
            "VERSION 0.7",
            "FIELDS " + " ".join(f[0] for f in PCD_FIELDS),
            "SIZE " + " ".join(str(f[2]) for f in PCD_FIELDS),
            "TYPE " + " ".join(f[1] for f in PCD_FIELDS),
            "COUNT " + " ".join("1" for _ in PCD_FIELDS),
            f"WIDTH {n}",
            "HEIGHT 1",
            "VIEWPOINT 0 0 0 1 0 0 0",
            f"POINTS {n}",
            "DATA binary",
        ]
    )
    dtype = np.dtype([(name, f"<{'f' if kind == 'F' else 'u'}{size}") for name, kind, size in PCD_FIELDS])
    packed = np.empty(n, dtype=dtype)
    for name, _, _ in PCD_FIELDS:
        packed[name] = points["class" if name == "label" else name]
    return header.encode("ascii") + b"\n" + packed.tobytes()


def kitti_bin_bytes(points: np.ndarray) -> bytes:
    """KITTI velodyne scan: N x (x, y, z, intensity) float32."""
    return np.stack([points["x"], points["y"], points["z"], points["intensity"]], axis=1).astype("<f4").tobytes()


def semantic_kitti_label_bytes(points: np.ndarray) -> bytes:
    """SemanticKITTI labels: uint32 per point, class in the lower 16 bits, instance in the upper 16."""
    labels = points["class"].astype(np.uint32) | (points["instance"].astype(np.uint32) << np.uint32(16))
    return labels.astype("<u4").tobytes()


class WriterLidar:
    """Writes every LIDAR's scans in all three formats (same manifest as the camera files)."""

    def __init__(self, lidar_names: list[str], class_names: dict[int, str], instance_paths: dict[int, str] | None = None, *, frame_padding: int = 4):
        self.lidar_names = list(lidar_names)
        self.class_names = dict(class_names)
        self.instance_paths = dict(instance_paths or {})
        self.frame_padding = frame_padding

    def start(self) -> dict[str, bytes]:
        colors = {i: [int(c) for c in class_colors([i])[0][::-1]] for i in self.class_names}
        doc = {
            "labels": {int(i): name for i, name in sorted(self.class_names.items())},
            "color_map": colors,  # BGR, as semantic-kitti.yaml
            "learning_map": {int(i): int(i) for i in self.class_names},
            "note": "label = class id (lower 16 bits) | instance id << 16; ids match the camera annotators",
        }
        data = yaml.safe_dump(doc, sort_keys=False).encode()
        instances = yaml.safe_dump({"instances": {int(i): p for i, p in sorted(self.instance_paths.items())}}, sort_keys=False).encode()
        files = {}
        for name in self.lidar_names:
            files[f"{name}/class_map.yaml"] = data
            files[f"{name}/instance_map.yaml"] = instances  # instance id -> labelled prim path
        return files

    def encode_frame(self, frame: int, scans: dict[str, np.ndarray]) -> dict[str, bytes]:
        files = {}
        tag = f"{frame:0{self.frame_padding}d}"
        kitti = f"{frame:06d}"
        for name, points in scans.items():
            files[f"{name}/lidar_{tag}.npy"] = npy_bytes(points)
            files[f"{name}/lidar_{tag}.pcd"] = pcd_bytes(points)
            files[f"{name}/velodyne/{kitti}.bin"] = kitti_bin_bytes(points)
            files[f"{name}/labels/{kitti}.label"] = semantic_kitti_label_bytes(points)
        return files
