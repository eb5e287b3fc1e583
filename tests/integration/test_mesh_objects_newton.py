"""Mesh objects and environments on Newton (CPU): non-convex meshes rest on the table, decomposed ones keep
their concavity, environment geometry is static and collides, and the camera draws the visual mesh."""

import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from vlatwin.config.loader import config_from_dict
from vlatwin.sensors.camera.model import CameraModel
from vlatwin.sensors.camera.newton_camera import CameraRendererNewton
from vlatwin.sim.newton import SimBackendNewton
from vlatwin.usd.check import open_stage
from vlatwin.usd.scene_builder import write_scene
from vlatwin.utils.transforms import look_at_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_mesh_objects import u_mesh, write_obj  # noqa: E402

HAS_COACD = find_spec("coacd") is not None
TABLE_TOP = 0.75
DROP = 0.05
"""Objects start this far above where they rest [m]."""
STEPS = 900  # 1.5 s at 600 Hz: a 5 cm drop lands after 0.1 s
W, H = 320, 240
EYE, TARGET = (0.3, -0.45, 0.79), (0.3, 0.0, 0.79)
"""The camera looks along +Y at the convex-hull U: its profile (two arms and the gap) faces the camera."""


def _env_file(path):
    """A static block on the floor and a rigid-body 'cart' that the environment must keep still."""
    from pxr import Gf, Usd, UsdGeom, UsdPhysics

    src = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(src, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(src, 1.0)
    root = UsdGeom.Xform.Define(src, "/cell")
    src.SetDefaultPrim(root.GetPrim())
    block = UsdGeom.Cube.Define(src, "/cell/block")
    block.CreateSizeAttr(0.2)
    block.AddTranslateOp().Set(Gf.Vec3d(-0.6, 0.8, 0.1))
    cart = UsdGeom.Xform.Define(src, "/cell/cart")
    cart.AddTranslateOp().Set(Gf.Vec3d(-0.6, -0.8, 0.3))  # in the air: it would fall if it stayed dynamic
    UsdPhysics.RigidBodyAPI.Apply(cart.GetPrim())
    UsdPhysics.MassAPI.Apply(cart.GetPrim()).CreateMassAttr(2.0)
    UsdGeom.Cube.Define(src, "/cell/cart/body").CreateSizeAttr(0.1)
    src.GetRootLayer().Save()
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The scene built, loaded and stepped 1.5 s; plus one rendered frame of the hull U."""
    tmp = tmp_path_factory.mktemp("mesh_objects")
    points, faces = u_mesh()  # 12 x 5 x 6 cm, 2 cm walls, opening up; origin at its bottom centre
    write_obj(tmp / "u.obj", points, faces)
    _env_file(tmp / "cell.usda")
    z0 = TABLE_TOP + DROP
    objects = [
        {"name": "u_hull", "shape": "mesh", "mesh_file": "u.obj", "position": [0.3, 0.0, z0], "label": "bracket"},
        # Above the hull U's gap: the hull closes the gap, so it rests on the arms' height.
        {"name": "peg_on_hull", "shape": "box", "size": [0.02, 0.02, 0.02], "position": [0.3, 0.0, z0 + 0.08]},
        {"name": "on_block", "shape": "box", "size": [0.05, 0.05, 0.05], "position": [-0.6, 0.8, 0.2 + 0.025 + DROP]},
    ]
    if HAS_COACD:
        objects += [
            {"name": "u_parts", "shape": "mesh", "mesh_file": "u.obj", "position": [0.6, 0.3, z0], "collision": "convex_decomposition", "label": "bracket"},
            # Inside the decomposed U's gap, above its inner floor (2 cm up): it falls into the gap.
            {"name": "peg_in_parts", "shape": "box", "size": [0.02, 0.02, 0.02], "position": [0.6, 0.3, z0 + 0.04]},
        ]
    cfg = config_from_dict(
        {
            "scene": {
                "robot": {"position": [3.0, 3.0, 0.0]},  # off the table and out of view
                "objects": objects,
                "environment": {"path": "cell.usda", "label": "fixture"},
                "cameras": [{"name": "cam", "position": list(EYE), "look_at": list(TARGET), "fov_deg": 40, "resolution": [W, H]}],
            }
        },
        base_dir=tmp,
    )
    stage_path = write_scene(cfg.scene, tmp / "scene.usda")
    sim = SimBackendNewton(device="cpu")
    info = sim.load(stage_path)
    start = sim.reset(seed=0)
    renderer = CameraRendererNewton(sim, open_stage(stage_path), shadows=False)
    renderer.add_camera("cam", CameraModel.from_cfg(cfg.scene.cameras[0]))
    sim.step(num_steps=STEPS)
    state = sim.get_state()
    T = np.eye(4)
    T[:3, :3] = look_at_matrix(EYE, TARGET)
    T[:3, 3] = EYE
    renderer.refit()
    raw = renderer.render("cam", T)
    out = renderer.annotate("cam", raw, T, ["instance_segmentation", "semantic_segmentation"])
    yield {"sim": sim, "info": info, "start": start, "state": state, "raw": raw, "out": out, "tmp": tmp, "T": T, "cfg": cfg}
    sim.close()


def _pose(world, name, state_key="state"):
    info, state = world["info"], world[state_key]
    return state.body_pose_w[info.body_index(f"/World/Objects/{name}")]


def _speed(world, name):
    info, state = world["info"], world["state"]
    return float(np.linalg.norm(state.body_vel_w[info.body_index(f"/World/Objects/{name}"), :3]))


def test_non_convex_mesh_rests_on_table(world):
    """The U (convex hull collider) dropped 5 cm lands upright on the table and stops."""
    pose = _pose(world, "u_hull")
    assert pose[2] == pytest.approx(TABLE_TOP, abs=0.003)
    np.testing.assert_allclose(pose[:2], (0.3, 0.0), atol=0.005)
    assert abs(pose[3]) == pytest.approx(1.0, abs=1e-3)  # still upright
    assert _speed(world, "u_hull") < 0.01


def test_mesh_mass_properties_reach_newton(world):
    """Newton uses the authored mass (density 500 x the U's own 0.2 L) and centre of mass."""
    model = world["sim"].model
    body = world["info"].body_index("/World/Objects/u_hull")
    assert float(model.body_mass.numpy()[body]) == pytest.approx(0.1, rel=1e-5)
    np.testing.assert_allclose(model.body_com.numpy()[body], (0.0, 0.0, 0.022), atol=1e-6)


def test_convex_hull_fills_the_gap(world):
    """With convex_hull the gap between the arms is solid: a peg rests at the arms' height (6 cm)."""
    assert _pose(world, "peg_on_hull")[2] == pytest.approx(TABLE_TOP + 0.06 + 0.01, abs=0.003)
    assert _speed(world, "peg_on_hull") < 0.01


@pytest.mark.skipif(not HAS_COACD, reason="needs coacd (pip install coacd)")
def test_convex_decomposition_keeps_the_gap(world):
    """With convex_decomposition the U rests on the table and a peg drops into its gap onto the 2 cm base."""
    assert _pose(world, "u_parts")[2] == pytest.approx(TABLE_TOP, abs=0.003)
    assert _speed(world, "u_parts") < 0.01
    peg = _pose(world, "peg_in_parts")
    assert peg[2] == pytest.approx(TABLE_TOP + 0.02 + 0.01, abs=0.003)
    np.testing.assert_allclose(peg[:2], (0.6, 0.3), atol=0.01)


def test_environment_is_static_and_collides(world):
    """A box dropped on the environment's block rests on it; the file's rigid body stays where it was."""
    assert _pose(world, "on_block")[2] == pytest.approx(0.2 + 0.025, abs=0.003)
    assert _speed(world, "on_block") < 0.01
    assert "/World/Environment/cell/cell/cart" not in world["info"].body_paths
    model = world["sim"].model
    shape = list(model.shape_label).index("/World/Environment/cell/cell/cart/body")
    assert int(model.shape_body.numpy()[shape]) == -1  # a static shape


def test_camera_draws_the_visual_mesh_with_its_label(world):
    """Instance segmentation shows the U's two arms with class 'bracket', and the table through its gap."""
    seg = world["out"]["instance_segmentation"]
    ids = seg["data"]
    paths = {v: int(k) for k, v in seg["info"]["idToLabels"].items()}
    u_id = paths["/World/Objects/u_hull"]
    assert seg["info"]["idToSemantics"][str(u_id)] == {"class": "bracket"}
    model = CameraModel.from_cfg(world["cfg"].scene.cameras[0])
    T_cam_w = np.linalg.inv(world["T"])

    def pixel(p_w):
        p_c = T_cam_w[:3, :3] @ np.asarray(p_w) + T_cam_w[:3, 3]
        # Camera looks along -Z with +Y up (USD); image rows grow downwards.
        u = model.cx + model.fx * p_c[0] / -p_c[2]
        v = model.cy - model.fy * p_c[1] / -p_c[2]
        return int(round(v)), int(round(u))

    x0, y_front, z_mid = 0.3, -0.025, TABLE_TOP + 0.04
    for dx in (-0.05, 0.05):  # the arms' centres (arms span 4..6 cm from the centre)
        assert ids[pixel((x0 + dx, y_front, z_mid))] == u_id
    assert ids[pixel((x0, y_front, z_mid))] != u_id  # the gap: the hull would cover it, the mesh does not
    assert ids[pixel((x0, y_front, TABLE_TOP + 0.01))] == u_id  # the base under the gap
    assert np.count_nonzero(ids == u_id) > 500
