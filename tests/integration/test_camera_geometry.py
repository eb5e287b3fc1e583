"""Camera annotators against known geometry: a 20 cm cube seen head-on from 0.9 m, with and without a wall."""

import math

import numpy as np
import pytest

from vlatwin.config.loader import config_from_dict
from vlatwin.sensors.camera.model import CameraModel
from vlatwin.sensors.camera.newton_camera import SUPPORTED_ANNOTATORS, CameraRendererNewton
from vlatwin.sim.newton import SimBackendNewton
from vlatwin.usd.check import open_stage
from vlatwin.usd.scene_builder import write_scene
from vlatwin.utils.transforms import look_at_matrix

W, H, FOV = 640, 480, 60.0
EYE, TARGET = (1.0, 0.0, 0.1), (0.0, 0.0, 0.1)
CUBE = {"name": "cube", "shape": "box", "size": [0.2, 0.2, 0.2], "position": [0, 0, 0.1], "dynamic": False, "label": "cube"}
WALL = {"name": "wall", "shape": "box", "size": [0.02, 0.4, 0.5], "position": [0.5, 0.2, 0.25], "dynamic": False, "label": "wall"}


def _render(tmp_path, objects, name):
    cfg = config_from_dict(
        {
            "scene": {
                "table": {"enabled": False},
                "robot": {"position": [6.0, 6.0, 0.0]},  # out of view
                "objects": objects,
                "cameras": [{"name": "cam", "position": list(EYE), "look_at": list(TARGET), "fov_deg": FOV, "resolution": [W, H]}],
            }
        }
    )
    stage_path = write_scene(cfg.scene, tmp_path / f"{name}.usda")
    sim = SimBackendNewton(device="cpu")
    sim.load(stage_path)
    renderer = CameraRendererNewton(sim, open_stage(stage_path), shadows=False)
    renderer.add_camera("cam", CameraModel.from_cfg(cfg.scene.cameras[0]))
    T = np.eye(4)
    T[:3, :3] = look_at_matrix(EYE, TARGET)
    T[:3, 3] = EYE
    renderer.refit()
    raw = renderer.render("cam", T)
    return renderer, renderer.annotate("cam", raw, T, SUPPORTED_ANNOTATORS), T


@pytest.fixture(scope="module")
def clear_view(tmp_path_factory):
    return _render(tmp_path_factory.mktemp("clear"), [CUBE], "clear")


@pytest.fixture(scope="module")
def half_hidden(tmp_path_factory):
    return _render(tmp_path_factory.mktemp("wall"), [CUBE, WALL], "wall")


def _box(out, name, path):
    data, info = out[name]["data"], out[name]["info"]
    return data[info["primPaths"].index(path)]


def test_box_2d_matches_analytic_projection(clear_view):
    """The tight and loose boxes of a fully visible cube equal the projected front face within 1 px."""
    _, out, _ = clear_view
    f = (W / 2) / math.tan(math.radians(FOV / 2))
    half = f * 0.1 / 0.9  # the front face (x = 0.1) is 0.9 m away and 0.2 m wide
    expected = (W / 2 - half, H / 2 - half, W / 2 + half, H / 2 + half)
    for name in ("bounding_box_2d_tight", "bounding_box_2d_loose"):
        box = _box(out, name, "/World/Objects/cube")
        # Boxes are inclusive pixel indices; the analytic box is in continuous pixel coordinates.
        got = (box["x_min"], box["y_min"], box["x_max"] + 1, box["y_max"] + 1)
        np.testing.assert_allclose(got, expected, atol=1.0, err_msg=name)
        assert box["occlusionRatio"] == pytest.approx(0.0, abs=0.01)
    labels = out["bounding_box_2d_tight"]["info"]["idToLabels"]
    assert labels[str(_box(out, "bounding_box_2d_tight", "/World/Objects/cube")["semanticId"])] == {"class": "cube"}


def test_depth_at_face_centre(clear_view):
    """Distance to camera and to image plane at the face centre are 0.9 m within 1 mm; background is inf."""
    _, out, _ = clear_view
    centre = np.s_[H // 2 - 1 : H // 2 + 1, W // 2 - 1 : W // 2 + 1]
    np.testing.assert_allclose(out["distance_to_camera"][centre], 0.9, atol=1e-3)
    np.testing.assert_allclose(out["distance_to_image_plane"][centre], 0.9, atol=1e-3)
    assert np.isinf(out["distance_to_camera"][0, 0])  # the top row looks over the floor into the sky
    assert out["distance_to_camera"].dtype == np.float32


def test_normals_face_the_camera(clear_view):
    """Normals on the front face point along +X (world)."""
    _, out, _ = clear_view
    np.testing.assert_allclose(out["normals"][H // 2, W // 2, :3], [1.0, 0.0, 0.0], atol=1e-3)


def _analytic_labels(T):
    """Expected instance per pixel by ray casting the cube, the wall and the floor analytically."""
    f = (W / 2) / math.tan(math.radians(FOV / 2))
    u = np.arange(W) + 0.5
    v = np.arange(H) + 0.5
    dirs_cam = np.stack(np.broadcast_arrays((u[None, :] - W / 2) / f, -(v[:, None] - H / 2) / f, -np.ones((H, W))), axis=-1)
    dirs = dirs_cam @ T[:3, :3].T
    origin = np.array(EYE)

    def slab(lo, hi):
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (np.array(lo) - origin) / dirs
            t2 = (np.array(hi) - origin) / dirs
        tmin = np.nanmax(np.minimum(t1, t2), axis=-1)
        tmax = np.nanmin(np.maximum(t1, t2), axis=-1)
        return np.where((tmax >= tmin) & (tmax > 0), tmin, np.inf)

    t_cube = slab((-0.1, -0.1, 0.0), (0.1, 0.1, 0.2))
    t_wall = slab((0.49, 0.0, 0.0), (0.51, 0.4, 0.5))
    with np.errstate(divide="ignore"):
        t_floor = np.where(dirs[..., 2] < 0, -origin[2] / dirs[..., 2], np.inf)
    stack = np.stack([t_floor, t_cube, t_wall])
    first = np.argmin(stack, axis=0)
    first[np.isinf(stack.min(axis=0))] = -1
    return first  # -1 sky, 0 floor, 1 cube, 2 wall


def test_half_occluded_cube(half_hidden):
    """A wall over half the cube: occlusion 0.5 +- 0.05, tight box inside loose box, loose = full face."""
    _, out, _ = half_hidden
    tight = _box(out, "bounding_box_2d_tight", "/World/Objects/cube")
    loose = _box(out, "bounding_box_2d_loose", "/World/Objects/cube")
    assert tight["occlusionRatio"] == pytest.approx(0.5, abs=0.05)
    assert loose["x_min"] <= tight["x_min"] and loose["y_min"] <= tight["y_min"]
    assert loose["x_max"] >= tight["x_max"] and loose["y_max"] >= tight["y_max"]
    assert (tight["x_max"] - tight["x_min"]) == pytest.approx((loose["x_max"] - loose["x_min"]) / 2, abs=2)
    occl = out["occlusion"]["data"]
    cube_row = occl[out["occlusion"]["info"]["primPaths"].index("/World/Objects/cube")]
    assert cube_row["occlusionRatio"] == pytest.approx(0.5, abs=0.05)


def test_segmentation_agrees_with_ray_casting(half_hidden):
    """Semantic and instance ids match analytic ray casting on >= 99.5 % of pixels."""
    renderer, out, T = half_hidden
    expected = _analytic_labels(T)
    instance = out["instance_segmentation"]
    paths = {v: int(k) for k, v in instance["info"]["idToLabels"].items()}
    expected_ids = np.select(
        [expected == 0, expected == 1, expected == 2],
        [paths["/World/Floor"], paths["/World/Objects/cube"], paths["/World/Objects/wall"]],
        default=0,
    )
    assert np.mean(instance["data"] == expected_ids) > 0.995
    semantic = out["semantic_segmentation"]
    id_to_class = {int(k): v["class"] for k, v in semantic["info"]["idToLabels"].items()}
    classes = np.vectorize(id_to_class.get)(semantic["data"])
    expected_classes = np.select([expected == 0, expected == 1, expected == 2], ["floor", "cube", "wall"], default="BACKGROUND")
    assert np.mean(classes == expected_classes) > 0.995
    sems = instance["info"]["idToSemantics"]
    assert sems[str(paths["/World/Objects/cube"])] == {"class": "cube"}


def test_pointcloud_lies_on_cube_faces(clear_view):
    """Every point labelled cube is on the cube's surface within 1 mm."""
    renderer, out, _ = clear_view
    pc = out["pointcloud"]
    cube_id = renderer.labels.instance_paths.index("/World/Objects/cube") + 2
    points = pc["data"][pc["info"]["pointInstance"] == cube_id]
    assert len(points) > 10000
    distance_to_surface = np.max(np.abs(points - [0.0, 0.0, 0.1]), axis=1)
    np.testing.assert_allclose(distance_to_surface, 0.1, atol=1e-3)
    assert pc["info"]["pointRgb"].reshape(-1, 4).shape[0] == len(pc["data"])


def test_box_3d_and_camera_params(clear_view):
    """The 3D box is the cube's local extent with its world transform; camera params round-trip the pose."""
    _, out, T = clear_view
    box = _box(out, "bounding_box_3d", "/World/Objects/cube")
    np.testing.assert_allclose([box["x_min"], box["y_min"], box["z_min"]], [-0.1, -0.1, -0.1], atol=1e-5)
    np.testing.assert_allclose([box["x_max"], box["y_max"], box["z_max"]], [0.1, 0.1, 0.1], atol=1e-5)
    np.testing.assert_allclose(box["transform"][3, :3], [0.0, 0.0, 0.1], atol=1e-5)  # row-vector convention
    params = out["camera_params"]
    view = np.array(params["cameraViewTransform"]).reshape(4, 4).T
    np.testing.assert_allclose(np.linalg.inv(view), T, atol=1e-9)
    assert params["renderProductResolution"] == [W, H]
    f_px = params["cameraFocalLength"] / params["cameraAperture"][0] * W
    assert f_px == pytest.approx((W / 2) / math.tan(math.radians(FOV / 2)))


@pytest.mark.parametrize(
    ("model", "distortion"),
    [("pinhole", [-0.25, 0.08, 0.001, -0.002, 0.0]), ("fisheye", [0.05, -0.01, 0.0, 0.0])],
)
def test_lens_distortion_is_in_the_rays(tmp_path, model, distortion):
    """With a distorted lens the rendered box matches the numpy projection with the same distortion (1 px)."""
    from vlatwin.sensors.camera.model import project_points

    cfg = config_from_dict(
        {
            "scene": {
                "table": {"enabled": False},
                "robot": {"position": [6.0, 6.0, 0.0]},
                "objects": [CUBE | {"position": [0.0, 0.25, 0.1]}],
                "cameras": [{"name": "cam", "position": list(EYE), "look_at": list(TARGET), "fov_deg": 90, "resolution": [W, H]}],
            }
        }
    )
    stage_path = write_scene(cfg.scene, tmp_path / "lens.usda")
    sim = SimBackendNewton(device="cpu")
    sim.load(stage_path)
    renderer = CameraRendererNewton(sim, open_stage(stage_path), shadows=False)
    camera = CameraModel.from_cfg(cfg.scene.cameras[0], distortion=distortion, model=model)
    renderer.add_camera("cam", camera)
    T = np.eye(4)
    T[:3, :3] = look_at_matrix(EYE, TARGET)
    T[:3, 3] = EYE
    renderer.refit()
    out = renderer.annotate("cam", renderer.render("cam", T), T, ["bounding_box_2d_tight", "bounding_box_2d_loose"])
    box = _box(out, "bounding_box_2d_tight", "/World/Objects/cube")
    # Dense points on the cube's surface (all six faces) projected through the same lens model.
    grid = np.linspace(-0.1, 0.1, 41)
    a, b = (g.ravel() for g in np.meshgrid(grid, grid))
    ones = np.full_like(a, 0.1)
    local = np.concatenate([np.stack(p, axis=1) for s in (1, -1) for p in ((s * ones, a, b), (a, s * ones, b), (a, b, s * ones))])
    face = local + [0.0, 0.25, 0.1]
    uv, front = project_points(face, T, camera)
    assert front.all()
    expected = (uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max())
    got = (box["x_min"], box["y_min"], box["x_max"] + 1, box["y_max"] + 1)
    np.testing.assert_allclose(got, expected, atol=1.5)
    straight = CameraModel.from_cfg(cfg.scene.cameras[0])
    uv_straight, _ = project_points(face, T, straight)
    assert np.abs(uv - uv_straight).max() > 5  # the lens really bends the image


def test_msaa_smooths_edges_labels_stay_exact(tmp_path):
    """4-sample MSAA adds blended edge colours to RGB; the instance image still has only exact ids."""
    cfg = config_from_dict(
        {
            "scene": {
                "table": {"enabled": False},
                "robot": {"position": [6.0, 6.0, 0.0]},
                "objects": [CUBE | {"rpy_deg": [0, 0, 30]}],
                "cameras": [{"name": "cam", "position": list(EYE), "look_at": list(TARGET), "fov_deg": FOV, "resolution": [W, H]}],
            }
        }
    )
    stage_path = write_scene(cfg.scene, tmp_path / "aa.usda")
    T = np.eye(4)
    T[:3, :3] = look_at_matrix(EYE, TARGET)
    T[:3, 3] = EYE
    colours = {}
    for spp in (1, 4):
        sim = SimBackendNewton(device="cpu")
        sim.load(stage_path)
        renderer = CameraRendererNewton(sim, open_stage(stage_path), shadows=False, samples_per_pixel=spp)
        renderer.add_camera("cam", CameraModel.from_cfg(cfg.scene.cameras[0]))
        renderer.refit()
        out = renderer.annotate("cam", renderer.render("cam", T), T, ["rgb", "instance_segmentation"])
        rgb = out["rgb"][..., :3].reshape(-1, 3)
        colours[spp] = len(np.unique(rgb, axis=0))
        ids = set(np.unique(out["instance_segmentation"]["data"]).tolist())
        assert ids <= {0, 1} | {int(k) for k in out["instance_segmentation"]["info"]["idToLabels"]}
    assert colours[4] > colours[1] * 1.2
