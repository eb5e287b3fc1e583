"""LIDAR on real Newton ray casting: ranges vs analytic geometry, labels, motion distortion, file formats."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from vlatwin.config.loader import config_from_dict
from vlatwin.errors import VlatwinError
from vlatwin.sensors.lidar.newton_lidar import LidarNewton
from vlatwin.sensors.lidar.profiles import resolve_profile
from vlatwin.sim.newton import SimBackendNewton
from vlatwin.usd.check import open_stage
from vlatwin.usd.scene_builder import write_scene

SENSOR = np.array([0.0, 0.0, 1.0])
SPHERE_C, SPHERE_R = np.array([2.0, 0.0, 0.3]), 0.3
BOX_LO, BOX_HI = np.array([-0.2, 1.8, 0.0]), np.array([0.2, 2.2, 1.2])


def _load(tmp_path, scene, name):
    cfg = config_from_dict({"scene": scene})
    path = write_scene(cfg.scene, tmp_path / f"{name}.usda")
    sim = SimBackendNewton(device="cpu")
    sim.load(path)
    return sim, open_stage(path)


@pytest.fixture(scope="module")
def analytic_scene(tmp_path_factory):
    scene = {
        "table": {"enabled": False},
        "robot": {"position": [300.0, 300.0, 0.0]},
        "objects": [
            {"name": "ball", "shape": "sphere", "radius": SPHERE_R, "position": SPHERE_C.tolist(), "dynamic": False, "label": "ball"},
            {"name": "crate", "shape": "box", "size": (BOX_HI - BOX_LO).tolist(), "position": ((BOX_LO + BOX_HI) / 2).tolist(), "dynamic": False, "label": "crate"},
        ],
    }
    return _load(tmp_path_factory.mktemp("lidar"), scene, "analytic")


def _analytic_first_hit(dirs):
    """Distance along each unit ray from SENSOR to floor / sphere / box, and which one (0, 1, 2)."""
    o = SENSOR
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(dirs[:, 2] < 0, -o[2] / dirs[:, 2], np.inf)
        oc = o - SPHERE_C
        b = dirs @ oc
        disc = b * b - (oc @ oc - SPHERE_R**2)
        t_sphere = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
        t_sphere = np.where(t_sphere > 0, t_sphere, np.inf)
        t1, t2 = (BOX_LO - o) / dirs, (BOX_HI - o) / dirs
        tmin = np.nanmax(np.minimum(t1, t2), axis=1)
        tmax = np.nanmin(np.maximum(t1, t2), axis=1)
        t_box = np.where((tmax >= tmin) & (tmin > 0), tmin, np.inf)
    stack = np.stack([t_floor, t_sphere, t_box])
    return stack.min(axis=0), stack.argmin(axis=0)


@pytest.mark.parametrize("profile", ["VLP-16", "OS1-64", "Mid-360"])
def test_ranges_and_labels_match_geometry(analytic_scene, profile):
    """Ideal scans of a floor, a sphere and a box: ranges within 1 mm, labels of the prim hit."""
    sim, stage = analytic_scene
    lidar = LidarNewton(sim, stage, resolve_profile(profile), blocks=4)
    T = np.eye(4)
    T[:3, 3] = SENSOR
    points = lidar.scan(lambda t: T, rng=None, advance_physics=False)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
    rng_measured = np.linalg.norm(xyz, axis=1)
    dirs = xyz / rng_measured[:, None]
    expected, which = _analytic_first_hit(dirs)
    assert len(points) > 1000
    np.testing.assert_allclose(rng_measured, expected, atol=1e-3)
    labels = lidar.labels
    class_of = {0: labels.class_id("floor"), 1: labels.class_id("ball"), 2: labels.class_id("crate")}
    expected_class = np.vectorize(class_of.get)(which)
    assert np.mean(points["class"] == expected_class) > 0.999
    ball = labels.instance_paths.index("/World/Objects/ball") + 2
    if profile != "Mid-360":  # the Mid-360 looks up (-7 .. +52 deg) and misses the low ball
        assert (which == 1).sum() > 20 and (which == 2).sum() > 20  # both objects were hit
        assert set(np.unique(points["instance"][which == 1])) == {ball}


def test_scan_returns_every_beam_in_a_closed_room(tmp_path):
    """Inside a closed box every beam of a profile returns: points per scan equals the profile's count."""
    walls = []
    for i, (pos, size) in enumerate(
        [([0, 0, -0.5], [12, 12, 1]), ([0, 0, 6.5], [12, 12, 1]), ([6.5, 0, 3], [1, 12, 7]), ([-6.5, 0, 3], [1, 12, 7]), ([0, 6.5, 3], [12, 1, 7]), ([0, -6.5, 3], [12, 1, 7])]
    ):
        walls.append({"name": f"wall{i}", "shape": "box", "size": size, "position": pos, "dynamic": False, "label": "wall"})
    sim, stage = _load(tmp_path, {"table": {"enabled": False}, "floor": {"enabled": False}, "robot": {"position": [300, 300, 0]}, "objects": walls}, "room")
    T = np.eye(4)
    T[:3, 3] = [0.0, 0.0, 2.0]
    for name in ("VLP-16", "OS1-32"):
        profile = resolve_profile(name)
        points = LidarNewton(sim, stage, profile).scan(lambda t: T, rng=None, advance_physics=False)
        assert len(points) == profile.points_per_scan
        assert set(np.unique(points["class"])) == {lidar_class(sim, stage, "wall")}


def lidar_class(sim, stage, name):
    from vlatwin.sensors.camera.labels import build_label_table

    return build_label_table(stage, list(sim.model.shape_label)).class_id(name)


def test_motion_distortion_matches_analytic_displacement(tmp_path):
    """A wall moving at 5 m/s during a 0.1 s sweep appears where it was at each block's firing time."""
    scene = {
        "physics": {"gravity": [0, 0, 0]},
        "table": {"enabled": False},
        "floor": {"enabled": False},
        "robot": {"position": [300.0, 300.0, 0.0]},
        "objects": [{"name": "wall", "shape": "box", "size": [0.2, 12, 2], "position": [3.0, 0.0, 1.0], "label": "wall", "mass": 50}],
    }
    sim, stage = _load(tmp_path, scene, "moving")
    speed = 5.0
    sim.set_body_velocity("/World/Objects/wall", [speed, 0.0, 0.0])
    profile = resolve_profile("VLP-16")
    blocks = 20
    lidar = LidarNewton(sim, stage, profile, blocks=blocks)
    T = np.eye(4)
    T[:3, 3] = [0.0, 0.0, 1.0]
    lidar.set_pose_fn(lambda t: T)
    # The loop owns time: it steps physics to each block's firing time; the sensor only looks.
    from vlatwin.loop import capture

    points = capture(sim, [lidar], refit=sim.refit_render_scene)["lidar"]
    with pytest.raises(VlatwinError, match="never step physics"):
        lidar.scan(lambda t: T, advance_physics=True)
    wall = points[points["class"] == lidar.labels.class_id("wall")]
    front = wall[wall["x"] > 0]  # the face towards the sensor, seen over the first and last quarter of the sweep
    # A beam's block fixes the simulated time it was cast at: the block's mean firing time, rounded
    # to whole physics steps.
    from vlatwin.sensors.lidar.pattern import make_pattern

    pattern = make_pattern(profile)
    dt = sim.physics_dt
    cast_time = np.empty(profile.columns)
    for block in lidar._block_slices(pattern):
        cols = pattern.columns[block]
        cast_time[cols] = np.round(pattern.times[block].mean() / dt) * dt
    column = np.round(front["t"] / profile.scan_time * profile.columns).astype(int)
    expected_face_x = 3.0 - 0.1 + speed * cast_time[column]
    np.testing.assert_allclose(front["x"], expected_face_x, atol=2e-3)
    assert np.ptp(front["x"]) > 0.3  # the distortion is real: the face moved ~0.5 m during the sweep
    assert sim.get_state().time == pytest.approx(profile.scan_time, abs=dt)


def test_generate_writes_lidar_formats(tmp_path):
    """A dataset with a lidar: npy, PCD (read by pypcd4), KITTI .bin and SemanticKITTI .label agree."""
    from pypcd4 import PointCloud

    from vlatwin.sdg.pipeline import generate

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "small_sdg.yaml").read_text())
    config["scene"]["lidars"] = [{"name": "vlp", "profile": "VLP-16", "position": [1.2, -0.8, 1.2]}]
    config["generate"]["frames"] = 2
    path = tmp_path / "lidar.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "ds"
    generate(path, out, progress=False)
    points = np.load(out / "vlp" / "lidar_0001.npy")
    assert len(points) > 1000 and set(points.dtype.names) == {"x", "y", "z", "intensity", "t", "ring", "class", "instance"}
    pcd = PointCloud.from_path(out / "vlp" / "lidar_0001.pcd")
    assert pcd.fields == ("x", "y", "z", "intensity", "t", "ring", "label", "instance")
    arr = pcd.numpy()
    np.testing.assert_array_equal(arr[:, 0], points["x"])
    np.testing.assert_array_equal(arr[:, 6], points["class"])
    scan = np.fromfile(out / "vlp" / "velodyne" / "000001.bin", dtype=np.float32).reshape(-1, 4)
    np.testing.assert_array_equal(scan[:, 3], points["intensity"])
    labels = np.fromfile(out / "vlp" / "labels" / "000001.label", dtype=np.uint32)
    np.testing.assert_array_equal(labels & 0xFFFF, points["class"])
    np.testing.assert_array_equal(labels >> 16, points["instance"])
    class_map = yaml.safe_load((out / "vlp" / "class_map.yaml").read_text())
    assert {"cube", "ball", "can", "floor", "table", "robot"} <= set(class_map["labels"].values())
    instance_map = yaml.safe_load((out / "vlp" / "instance_map.yaml").read_text())["instances"]
    table_points = points[points["class"] == class_map_id(class_map, "table")]
    assert len(table_points) and {instance_map[int(i)] for i in np.unique(table_points["instance"])} == {"/World/Table"}
    record = json.loads((out / "frames" / "frame_0001.json").read_text())["randomization"]
    assert record["lidar_scan_start"]["vlp"] > 0  # after the settle steps, right after the cameras
    # Cameras and lidar share ids: a cube point's instance id maps to the same prim in the camera mapping.
    cube = labels[(labels & 0xFFFF) == class_map_id(class_map, "cube")]
    if len(cube):
        semantics = json.loads((out / "top" / "instance_segmentation_semantics_mapping_0001.json").read_text())
        assert {"class": "cube"} in semantics.values()


def class_map_id(class_map, name):
    return next(int(k) for k, v in class_map["labels"].items() if v == name)
