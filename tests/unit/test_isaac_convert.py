"""Isaac/Replicator -> vlatwin conversion: same annotator data, byte-identical writer output."""

import numpy as np
import pytest

from vlatwin.sensors.camera.annotators import BBOX_2D_DTYPE, BBOX_3D_DTYPE
from vlatwin.sensors.camera.labels import LabelTable
from vlatwin.sensors.lidar.profiles import resolve_profile
from vlatwin.sim.isaac_convert import (
    convert_replicator_outputs,
    depth_to_vlatwin,
    labels_for_paths,
    lidar_points_from_rtx,
    rtx_lidar_config,
)
from vlatwin.writers.basic import WriterBasic

LABELS = LabelTable(
    instance_paths=("/World/Objects/ball", "/World/Objects/cube", "/World/Robot", "/World/Table"),
    instance_classes=("ball", "cube", "robot", "table"),
    shape_instance=np.array([0, 1, 2, 3], dtype=np.int32),
)


def _vlatwin_outputs(rng):
    """Outputs in vlatwin ids, as the Newton path produces them."""
    h, w = 48, 64
    instance = rng.integers(0, 6, size=(h, w)).astype(np.uint32)
    sem_of = np.concatenate([[0, 1], LABELS.instance_semantic_ids]).astype(np.uint32)
    semantic = sem_of[instance]
    paths = list(LABELS.instance_paths)
    tight = np.zeros(4, dtype=BBOX_2D_DTYPE)
    for i, path in enumerate(paths):
        tight[i] = (LABELS.instance_semantic_ids[i], 3 * i, 2 * i, 10 + 3 * i, 12 + i, 0.1 * i)
    box3d = np.zeros(4, dtype=BBOX_3D_DTYPE)
    for i in range(4):
        box3d[i]["semanticId"] = LABELS.instance_semantic_ids[i]
        box3d[i]["x_max"] = box3d[i]["y_max"] = box3d[i]["z_max"] = 0.05 * (i + 1)
        box3d[i]["transform"] = np.eye(4)
        box3d[i]["occlusionRatio"] = 0.1 * i
    depth = rng.uniform(0.5, 3.0, size=(h, w)).astype(np.float32)
    depth[instance == 0] = np.inf
    labels_info = {str(s): {"class": LABELS.classes[s - 2]} for s in sorted(set(LABELS.instance_semantic_ids.tolist()))}
    from vlatwin.sensors.camera.annotators import OCCLUSION_DTYPE

    occlusion = np.array([(i + 2, tight[i]["semanticId"], tight[i]["occlusionRatio"]) for i in range(4)], dtype=OCCLUSION_DTYPE)
    return {
        "rgb": rng.integers(0, 255, size=(h, w, 4)).astype(np.uint8),
        "distance_to_camera": depth,
        "semantic_segmentation": {"data": semantic, "info": {"idToLabels": LABELS.id_to_labels()}},
        "instance_segmentation": {
            "data": instance,
            "info": {
                "idToLabels": {"0": "BACKGROUND", "1": "UNLABELLED", **{str(i + 2): p for i, p in enumerate(paths)}},
                "idToSemantics": {"0": {"class": "BACKGROUND"}, "1": {"class": "UNLABELLED"}, **{str(i + 2): {"class": c} for i, c in enumerate(LABELS.instance_classes)}},
            },
        },
        "bounding_box_2d_tight": {"data": tight, "info": {"idToLabels": labels_info, "primPaths": paths}},
        "bounding_box_3d": {"data": box3d, "info": {"idToLabels": labels_info, "primPaths": paths}},
        "occlusion": {"data": occlusion, "info": {"primPaths": paths}},
    }


def _as_replicator(outputs, rng):
    """The same data the way Replicator hands it over: its own ids, shuffled rows, 0 depth background."""
    inst_perm = {0: 0, 1: 1, **{i: int(v) for i, v in zip(range(2, 6), rng.permutation(np.arange(10, 14)))}}
    sem_perm = {0: 0, 1: 1, **{s: int(v) for s, v in zip(range(2, 6), rng.permutation(np.arange(20, 24)))}}
    inst = np.vectorize(inst_perm.get)(outputs["instance_segmentation"]["data"]).astype(np.uint32)
    sem = np.vectorize(sem_perm.get)(outputs["semantic_segmentation"]["data"]).astype(np.uint32)
    depth = outputs["distance_to_camera"].copy()
    depth[np.isinf(depth)] = 0.0  # older Replicator background convention
    order = rng.permutation(4)
    rep_boxes = {}
    for name in ("bounding_box_2d_tight", "bounding_box_3d"):
        data = outputs[name]["data"][order].copy()
        data["semanticId"] = [sem_perm[int(s)] for s in data["semanticId"]]
        paths = [outputs[name]["info"]["primPaths"][i] for i in order]
        id_to_labels = {str(sem_perm[int(k)]): {"class": v["class"] + ",extra"} for k, v in outputs[name]["info"]["idToLabels"].items()}
        rep_boxes[name] = {"data": data, "info": {"idToLabels": id_to_labels, "primPaths": paths, "bboxIds": np.arange(4)}}
    return {
        "rgb": outputs["rgb"][..., :3].copy(),
        "distance_to_camera": depth,
        "semantic_segmentation": {"data": sem, "info": {"idToLabels": {str(v): ({"class": "BACKGROUND"} if k == 0 else {"class": "UNLABELLED"} if k == 1 else {"class": LABELS.classes[k - 2]}) for k, v in sem_perm.items()}}},
        "instance_segmentation": {
            "data": inst,
            "info": {"idToLabels": {str(v): ("BACKGROUND" if k == 0 else "UNLABELLED" if k == 1 else LABELS.instance_paths[k - 2]) for k, v in inst_perm.items()}},
        },
        **rep_boxes,
    }


def test_newton_and_isaac_paths_write_identical_bytes(tmp_path):
    """The writer output from vlatwin-native data and from converted Replicator data is byte-identical."""
    rng = np.random.default_rng(0)
    native = _vlatwin_outputs(rng)
    native["rgb"][..., 3] = 255  # Replicator rgb is opaque
    converted = convert_replicator_outputs(_as_replicator(native, rng), LABELS)
    writer = WriterBasic(tmp_path, ["cam"], set(native))
    a = writer.encode_frame(0, {"cam": native})
    b = writer.encode_frame(0, {"cam": converted})
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name


def test_depth_background_conventions():
    """0, +inf and -inf backgrounds all become +inf."""
    out = depth_to_vlatwin(np.array([0.0, np.inf, -np.inf, 1.5], dtype=np.float32))
    assert np.isinf(out[:3]).all() and out[3] == pytest.approx(1.5)


def test_lidar_points_from_rtx_and_labels():
    """RTX scan-buffer fields + StableIdMap paths become vlatwin lidar points with stable ids."""
    scan = {
        "data": np.array([[1, 0, 0], [2, 0, 0], [3, 0, 0]], dtype=np.float32),
        "intensity": np.array([0.1, 0.2, 0.3], dtype=np.float32),
        "timestamp": np.array([1_000_000_000, 1_000_050_000, 1_000_100_000], dtype=np.uint64),
        "beamId": np.array([0, 5, 7]),
    }
    paths = np.array(["/World/Objects/cube/geom", "/World/Floor", ""])
    points = lidar_points_from_rtx(scan, paths, LABELS)
    np.testing.assert_allclose(points["t"], [0.0, 5e-5, 1e-4], atol=1e-9)
    assert points["class"][0] == LABELS.class_id("cube") and points["instance"][0] == 3
    assert points["class"][1] == 1 and points["class"][2] == 0  # unlabelled hit, no hit
    assert points["ring"].tolist() == [0, 5, 7]
    sem, inst = labels_for_paths(["/World/Robot/panda_link3/capsule_1"], LABELS)
    assert sem[0] == LABELS.class_id("robot") and inst[0] == 4


def test_profile_to_rtx_config():
    """Profiles map to Isaac's RTX configs; those without one fail with the alternatives named."""
    assert rtx_lidar_config(resolve_profile("OS1-128")) == ("OS1", "OS1_REV7_128ch10hz2048res")
    assert rtx_lidar_config(resolve_profile("OS1-32-1024x20")) == ("OS1", "OS1_REV6_32ch20hz1024res")
    assert rtx_lidar_config(resolve_profile("PandarXT32")) == ("HESAI_XT32_SD10", None)
    with pytest.raises(ValueError, match="no Isaac Sim RTX config"):
        rtx_lidar_config(resolve_profile("VLP-16"))
