"""Isaac Sim (Replicator / RTX Lidar) outputs -> vlatwin's structures, in numpy (no Kit needed).

Replicator ids change from frame to frame and between runs; vlatwin ids are stable per dataset
(:class:`LabelTable`: class ids by sorted class name, instance ids by sorted prim path). These
functions remap Replicator's annotator data onto vlatwin ids so the writers produce the same files
from either backend.
"""

from __future__ import annotations

import numpy as np

from vlatwin.sensors.camera.annotators import BBOX_2D_DTYPE, BBOX_3D_DTYPE, OCCLUSION_DTYPE  # noqa: F401 (re-export)
from vlatwin.sensors.camera.labels import BACKGROUND_ID, UNLABELLED_ID, LabelTable

_SPECIAL = {"BACKGROUND": BACKGROUND_ID, "UNLABELLED": UNLABELLED_ID}


def _class_of(label) -> str:
    """The prim's own class from a Replicator label ({"class": "cube"}).

    Replicator joins inherited labels of the same type parent first ("rectangle, cube" for a cube under
    a labelled rectangle), so the prim's own label is the *last* entry, not the ancestor's first one.
    """
    if isinstance(label, dict):
        label = label.get("class", "UNLABELLED")
    return str(label).split(",")[-1].strip()


def semantic_id_map(id_to_labels: dict, labels: LabelTable) -> dict[int, int]:
    """Replicator semantic id -> vlatwin class id (unknown classes become UNLABELLED)."""
    out = {}
    for rep_id, label in id_to_labels.items():
        name = _class_of(label)
        out[int(rep_id)] = _SPECIAL.get(name, labels.class_id(name) if name in labels.classes else UNLABELLED_ID)
    return out


def instance_id_map(id_to_paths: dict, labels: LabelTable) -> dict[int, int]:
    """Replicator instance id -> vlatwin instance id by prim path."""
    index = {p: i + 2 for i, p in enumerate(labels.instance_paths)}
    out = {}
    for rep_id, path in id_to_paths.items():
        path = str(path)
        out[int(rep_id)] = _SPECIAL.get(path, index.get(path, UNLABELLED_ID))
    return out


def remap_image(ids: np.ndarray, mapping: dict[int, int], default: int = UNLABELLED_ID) -> np.ndarray:
    """Apply an id mapping to an id image (ids absent from the mapping become ``default``)."""
    ids = np.asarray(ids).astype(np.int64)
    top = max(int(ids.max(initial=0)), max(mapping, default=0)) + 1
    lut = np.full(top, default, dtype=np.uint32)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut[ids]


def depth_to_vlatwin(depth: np.ndarray) -> np.ndarray:
    """Replicator depth (float32 m; background 0 in older docs, +-inf in Isaac 5.1) -> background +inf."""
    out = np.asarray(depth, dtype=np.float32).copy()
    out[~np.isfinite(out) | (out <= 0)] = np.inf
    return out


def _boxes(data: np.ndarray, info: dict, labels: LabelTable, dtype: np.dtype, keep_classes=None):
    """Remap a Replicator box array onto vlatwin class ids, rows sorted by prim path like the Newton path."""
    paths = [str(p) for p in info.get("primPaths", [])]
    rows = []
    for row, path in zip(np.asarray(data), paths):
        if path not in labels.instance_paths:
            continue
        cls = labels.instance_classes[labels.instance_paths.index(path)]
        if keep_classes and cls not in keep_classes:
            continue
        new = np.zeros((), dtype=dtype)
        for name in dtype.names:
            new[name] = row[name]
        new["semanticId"] = labels.class_id(cls)
        rows.append((path, new))
    rows.sort(key=lambda r: labels.instance_paths.index(r[0]))
    arr = np.array([r[1] for r in rows], dtype=dtype) if rows else np.zeros(0, dtype=dtype)
    present = sorted({int(i) for i in arr["semanticId"]}) if len(arr) else []
    return arr, [r[0] for r in rows], {str(i): {"class": labels.classes[i - 2]} for i in present}


def convert_replicator_outputs(raw: dict, labels: LabelTable, *, keep_classes=None, extra_camera_params: dict | None = None) -> dict:
    """Replicator annotator data (``annotator.get_data()`` per name) -> vlatwin camera outputs."""
    out: dict = {}
    if "rgb" in raw:
        rgb = np.asarray(raw["rgb"], dtype=np.uint8)
        if rgb.shape[-1] == 3:
            rgb = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
        out["rgb"] = rgb
    for name in ("distance_to_camera", "distance_to_image_plane"):
        if name in raw:
            out[name] = depth_to_vlatwin(raw[name])
    if "normals" in raw:
        normals = np.asarray(raw["normals"], dtype=np.float32).copy()
        normals[..., 3] = 0.0
        out["normals"] = normals
    if "semantic_segmentation" in raw:
        seg = raw["semantic_segmentation"]
        mapping = semantic_id_map(seg["info"]["idToLabels"], labels)
        out["semantic_segmentation"] = {"data": remap_image(seg["data"], mapping), "info": {"idToLabels": labels.id_to_labels()}}
    if "instance_segmentation" in raw:
        seg = raw["instance_segmentation"]
        mapping = instance_id_map(seg["info"]["idToLabels"], labels)
        id_to_labels = {"0": "BACKGROUND", "1": "UNLABELLED"}
        id_to_sem = {"0": {"class": "BACKGROUND"}, "1": {"class": "UNLABELLED"}}
        for i, (path, cls) in enumerate(zip(labels.instance_paths, labels.instance_classes)):
            id_to_labels[str(i + 2)] = path
            id_to_sem[str(i + 2)] = {"class": cls}
        out["instance_segmentation"] = {
            "data": remap_image(seg["data"], mapping),
            "info": {"idToLabels": id_to_labels, "idToSemantics": id_to_sem},
        }
    for name, dtype in (("bounding_box_2d_tight", BBOX_2D_DTYPE), ("bounding_box_2d_loose", BBOX_2D_DTYPE), ("bounding_box_3d", BBOX_3D_DTYPE)):
        if name in raw:
            arr, paths, id_to_labels = _boxes(raw[name]["data"], raw[name]["info"], labels, dtype, keep_classes)
            out[name] = {"data": arr, "info": {"idToLabels": id_to_labels, "primPaths": paths}}
    if "bounding_box_2d_tight" in out:
        tight = out["bounding_box_2d_tight"]
        rows = [
            (labels.instance_paths.index(p) + 2, sid, o)
            for p, sid, o in zip(tight["info"]["primPaths"], tight["data"]["semanticId"], tight["data"]["occlusionRatio"])
        ]
        out["occlusion"] = {"data": np.array(rows, dtype=OCCLUSION_DTYPE), "info": {"primPaths": list(tight["info"]["primPaths"])}}
    if "camera_params" in raw:
        params = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in raw["camera_params"].items()}
        params.update(extra_camera_params or {})
        out["camera_params"] = params
    if "pointcloud" in raw:
        pc = raw["pointcloud"]
        info = pc["info"]
        # The pointcloud annotator's info has no id tables: its pointSemantic / pointInstance ids are
        # Replicator's, so they go through the same frame's segmentation tables (never written raw).
        # A point whose table is missing is UNLABELLED rather than carrying a Replicator id as a vlatwin one.
        sem_table = _table(raw, "semantic_segmentation", info, "idToLabels")
        inst_table = _table(raw, "instance_segmentation", info, "idToInstance")
        n = len(np.asarray(pc["data"]).reshape(-1, 3))
        sem_raw = np.asarray(info.get("pointSemantic", np.zeros(n)), dtype=np.int64).reshape(-1)
        inst_raw = np.asarray(info.get("pointInstance", np.zeros(n)), dtype=np.int64).reshape(-1)
        sem = remap_image(sem_raw, semantic_id_map(sem_table, labels)) if sem_table is not None else np.full(n, UNLABELLED_ID, np.uint32)
        inst = remap_image(inst_raw, instance_id_map(inst_table, labels)) if inst_table is not None else np.full(n, UNLABELLED_ID, np.uint32)
        out["pointcloud"] = {
            "data": np.asarray(pc["data"], dtype=np.float32),
            "info": {
                "pointRgb": np.asarray(info["pointRgb"], dtype=np.uint8).reshape(-1),
                "pointNormals": np.asarray(info["pointNormals"], dtype=np.float32).reshape(-1),
                "pointSemantic": sem.astype(np.uint32),
                "pointInstance": inst.astype(np.uint32),
            },
        }
    return out


def _table(raw: dict, annotator: str, info: dict, own_key: str):
    """Replicator id table for point ids: the same frame's ``annotator`` info, else one in ``info`` itself."""
    if annotator in raw:
        return raw[annotator]["info"]["idToLabels"]
    return info.get(own_key)


def decode_stable_id_map(buffer) -> dict[int, str]:
    """``StableIdMap`` annotator bytes -> {128-bit stable id: prim path}, in numpy.

    Layout (Isaac Sim 5.1 ``LidarRtx.decode_stable_id_mapping``, [IS] v5.1.0
    source/extensions/isaacsim.sensors.rtx/python/impl/lidar_rtx.py L705-722, and 6.0's
    ``parse_stable_id_map_data``, [IS] v6.0.1 source/extensions/isaacsim.sensors.experimental.rtx/python/impl/utils.py
    L82-134): the last 4 bytes count the entries; each entry is 6 little-endian uint32 (4 for the id,
    label length, label offset); labels are UTF-8 at their byte offsets. Decoding here keeps vlatwin
    off the module that 6.0 deprecates (isaacsim.sensors.rtx).
    """
    data = np.asarray(buffer).tobytes() if not isinstance(buffer, (bytes, bytearray)) else bytes(buffer)
    if len(data) < 4:
        return {}
    count = int.from_bytes(data[-4:], byteorder="little")
    entries = np.frombuffer(data[: count * 24], dtype="<u4").reshape(-1, 6)
    out = {}
    for entry in entries:
        key = int.from_bytes(entry[:4].tobytes(), byteorder="little")
        out[key] = data[int(entry[5]) : int(entry[5]) + int(entry[4])].decode("utf8").rstrip()
    return out


def parse_object_ids(object_ids) -> list[int]:
    """RTX ``objectId`` buffer (16 bytes per point) -> 128-bit ints matching :func:`decode_stable_id_map` keys.

    As [IS] v6.0.1 source/extensions/isaacsim.sensors.experimental.rtx/python/impl/utils.py L137-158.
    """
    ids = np.ascontiguousarray(object_ids)
    width = {np.dtype(np.uint8): 16, np.dtype(np.uint32): 4, np.dtype(np.uint64): 2}.get(ids.dtype)
    if width is None:
        raise ValueError(f"objectId: expected uint8, uint32 or uint64 data, got {ids.dtype}")
    return [int.from_bytes(group.tobytes(), byteorder="little") for group in ids.reshape(-1, width)]


def lidar_points_from_rtx(scan: dict, object_paths: np.ndarray, labels: LabelTable, *, channel_of_beam=None) -> np.ndarray:
    """``IsaacCreateRTXLidarScanBuffer`` output (+ per-point prim paths from StableIdMap) -> :data:`POINT_DTYPE`.

    Args:
        scan: dict with ``data`` (N, 3) sensor-frame points [m], ``intensity`` [0, 1], ``timestamp`` [ns],
            ``beamId`` or ``emitterId`` (channel).
        object_paths: (N,) prim path of the object each point hit ("" when unknown), already decoded
            from ``objectId`` with the StableIdMap.
    """
    from vlatwin.sensors.lidar.sensor_model import POINT_DTYPE

    xyz = np.asarray(scan["data"], dtype=np.float32).reshape(-1, 3)
    n = len(xyz)
    points = np.zeros(n, dtype=POINT_DTYPE)
    points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    points["intensity"] = np.asarray(scan.get("intensity", np.zeros(n)), dtype=np.float32)
    stamps = np.asarray(scan.get("timestamp", np.zeros(n)), dtype=np.float64)
    points["t"] = ((stamps - stamps.min()) * 1e-9 if n else stamps).astype(np.float32)
    beams = np.asarray(scan.get("beamId", scan.get("emitterId", np.zeros(n))), dtype=np.int64)
    points["ring"] = (channel_of_beam[beams] if channel_of_beam is not None else beams).astype(np.uint16)
    semantic, instance = labels_for_paths(object_paths, labels)
    points["class"], points["instance"] = semantic, instance
    return points


def labels_for_paths(paths, labels: LabelTable) -> tuple[np.ndarray, np.ndarray]:
    """(class ids, instance ids) for hit prim paths: the nearest labelled ancestor path wins."""
    index = {p: i for i, p in enumerate(labels.instance_paths)}
    cache: dict[str, int] = {}
    inst = np.empty(len(paths), dtype=np.int64)
    for k, path in enumerate(paths):
        path = str(path)
        if path not in cache:
            found = -1
            probe = path
            while probe:
                if probe in index:
                    found = index[probe]
                    break
                probe = probe.rsplit("/", 1)[0] if "/" in probe.strip("/") else ""
            cache[path] = found
        inst[k] = cache[path]
    sem_of_inst = labels.instance_semantic_ids
    semantic = np.where(inst >= 0, sem_of_inst[np.maximum(inst, 0)], np.where(np.array([bool(str(p)) for p in paths]), UNLABELLED_ID, BACKGROUND_ID))
    instance = np.where(inst >= 0, inst + 2, np.where(semantic == BACKGROUND_ID, BACKGROUND_ID, UNLABELLED_ID))
    return semantic.astype(np.uint16), instance.astype(np.uint16)


def rtx_lidar_config(profile) -> tuple[str, str | None]:
    """(Isaac RTX Lidar config, variant) for a vlatwin profile; raises with the fallback when none ships."""
    from vlatwin.sensors.lidar.profiles import require_isaac_profile

    require_isaac_profile(profile, field="lidar profile")
    return profile.isaac_config, profile.isaac_variant
