"""The Cycles camera (``render: cycles``): radiance against closed forms, pixel alignment with the ray-cast
labels, colours against the raster camera, determinism, the generate job, bad input.

Blender holds one scene per process, so every test closes its renderer before the next opens one.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.photoreal]
from vlatwin.errors import VlatwinError  # noqa: E402
from vlatwin.sensors.camera import photometry as ph  # noqa: E402
from vlatwin.sensors.camera.cycles_renderer import import_bpy  # noqa: E402

try:
    import_bpy()
except VlatwinError as exc:
    pytest.skip(str(exc), allow_module_level=True)

from vlatwin.sensors.camera.model import CameraModel  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ALBEDO = 0.5


# ----------------------------------------------------------------------------- grey card scenes
def card_stage(path: Path, light: dict, *, card_material: str = "preview") -> Path:
    """A 1 m grey card (albedo 0.5, Lambertian: ior 1 = no specular layer) at the origin facing +Z, one light."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdLux, UsdShade

    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    card = UsdGeom.Cube.Define(stage, "/World/Card")
    card.CreateSizeAttr(1.0)
    UsdGeom.XformCommonAPI(card).SetScale(Gf.Vec3f(1.0, 1.0, 0.01))
    UsdGeom.XformCommonAPI(card).SetTranslate(Gf.Vec3d(0, 0, -0.005))
    material = UsdShade.Material.Define(stage, "/World/Looks/grey")
    shader = UsdShade.Shader.Define(stage, "/World/Looks/grey/Shader")
    if card_material in ("preview", "textured"):
        shader.CreateIdAttr("UsdPreviewSurface")
        diffuse = shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f)
        diffuse.Set(Gf.Vec3f(ALBEDO, ALBEDO, ALBEDO))
        shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(1.0)
        shader.CreateInput("ior", Sdf.ValueTypeNames.Float).Set(1.0)
        if card_material == "textured":
            # An sRGB image of grey 188 (linear 0.503) instead of the constant: the texture path and its colour space.
            from PIL import Image

            Image.fromarray(np.full((8, 8, 3), 188, np.uint8)).save(path.parent / "grey188.png")
            tex = UsdShade.Shader.Define(stage, "/World/Looks/grey/Texture")
            tex.CreateIdAttr("UsdUVTexture")
            tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(Sdf.AssetPath("grey188.png"))
            diffuse.ConnectToSource(tex.CreateOutput("rgb", Sdf.ValueTypeNames.Float3))
    else:
        shader.CreateIdAttr(card_material)
    material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    UsdShade.MaterialBindingAPI.Apply(card.GetPrim()).Bind(material)
    kind = light["kind"]
    if kind == "distant":
        lux = UsdLux.DistantLight.Define(stage, "/World/Light")
        lux.CreateNormalizeAttr(True)
        lux.CreateAngleAttr(0.53)
    elif kind == "dome":
        lux = UsdLux.DomeLight.Define(stage, "/World/Light")
        if light.get("sky_only"):
            # A lat-long image, white above the horizon, black below: a card facing up sees the same
            # as under a uniform sky; a wrongly oriented image (Y up) would light it half as much.
            from PIL import Image

            image = np.zeros((64, 128, 3), np.uint8)
            image[:32] = 255
            Image.fromarray(image).save(path.parent / "sky.png")
            lux.CreateTextureFileAttr(Sdf.AssetPath("sky.png"))
            lux.CreateTextureFormatAttr(UsdLux.Tokens.latlong)
    elif kind == "sphere":
        lux = UsdLux.SphereLight.Define(stage, "/World/Light")
        lux.CreateRadiusAttr(light["radius"])
        UsdGeom.XformCommonAPI(lux).SetTranslate(Gf.Vec3d(0, 0, light["distance"]))
    elif kind == "rect":
        lux = UsdLux.RectLight.Define(stage, "/World/Light")
        lux.CreateWidthAttr(light["size"])
        lux.CreateHeightAttr(light["size"])
        UsdGeom.XformCommonAPI(lux).SetTranslate(Gf.Vec3d(0, 0, light["distance"]))  # shines along -Z: at the card
    lux.CreateIntensityAttr(light["intensity"])
    lux.CreateExposureAttr(light.get("exposure", 0.0))
    stage.GetRootLayer().Save()
    return path


def card_camera() -> tuple[CameraModel, np.ndarray]:
    """A 64x48 camera 2 m from the card, 30 deg off its normal (out of the lights' way), aimed at its centre."""
    from vlatwin.utils.transforms import look_at_matrix

    model = CameraModel(width=64, height=48, fx=80.0, fy=80.0, cx=32.0, cy=24.0, focal_length_mm=26.2, horizontal_aperture_mm=20.955)
    position = np.array([0.0, 2.0 * np.sin(np.deg2rad(30)), 2.0 * np.cos(np.deg2rad(30))])
    T = np.eye(4)
    T[:3, :3] = look_at_matrix(position, np.zeros(3), (0.0, 0.0, 1.0))
    T[:3, 3] = position
    return model, T


def render_card(tmp_path: Path, light: dict, ev100: float, samples: int = 64) -> float:
    """Mean linear value of the card's central 8x8 pixels."""
    from pxr import Usd

    from vlatwin.config.generate_cfg import CyclesCfg
    from vlatwin.sensors.camera.cycles_renderer import CyclesRenderer

    path = card_stage(tmp_path / f"card_{light['kind']}.usda", light)
    renderer = CyclesRenderer(path, Usd.Stage.Open(str(path)), [], ev100=ev100)
    try:
        model, T = card_camera()
        renderer.add_camera("cam", model, CyclesCfg(samples=samples, adaptive_threshold=0.0, denoise=False, max_bounces=4, ev100=ev100))
        image = renderer.render_linear("cam", T, seed=1)
    finally:
        renderer.close()
    patch = image[20:28, 28:36]
    # Grey card under a white light: the three channels agree.
    assert np.allclose(patch.mean(axis=(0, 1)), patch.mean(), rtol=0.01)
    return float(patch.mean())


@pytest.mark.parametrize(
    "light, ev100, expected_illuminance",
    [
        # A normalized distant light: intensity * 2**exposure is the illuminance [lux].
        ({"kind": "distant", "intensity": 500.0, "exposure": 1.0}, 8.0, 1000.0),
        # A uniform sky of luminance L lights a surface facing up with E = pi * L.
        ({"kind": "dome", "intensity": 100.0}, 8.0, np.pi * 100.0),
        # The same sky from an environment image (white upper half): HDRI mapping and orientation.
        ({"kind": "dome", "intensity": 100.0, "sky_only": True}, 8.0, np.pi * 100.0),
        # A sphere of luminance L, radius r at distance d: E = pi * L * (r / d)^2.
        ({"kind": "sphere", "intensity": 20000.0, "radius": 0.1, "distance": 2.0}, 6.0, ph.sphere_illuminance(20000.0, 0.1, 2.0)),
        # A small rect facing the card: E ~= L * A / d^2 (to (size/d)^2 = 0.25%).
        ({"kind": "rect", "intensity": 20000.0, "size": 0.1, "distance": 2.0}, 6.0, 20000.0 * 0.01 / 4.0),
    ],
    ids=["distant", "dome", "dome_image", "sphere", "rect"],
)
def test_grey_card_radiance_matches_closed_form(tmp_path, light, ev100, expected_illuminance):
    value = render_card(tmp_path, light, ev100)
    expected = ph.lambert_pixel(ALBEDO, expected_illuminance, ph.saturation_luminance(ev100))
    assert 0.1 < expected < 0.9, "the test must measure inside the sensor's range"
    assert value == pytest.approx(expected, rel=0.03), f"{light['kind']}: pixel {value:.4f}, closed form {expected:.4f}"


def test_depth_of_field_from_the_usd_camera_blurs_out_of_focus_edges(tmp_path):
    from pxr import Usd, UsdGeom

    from vlatwin.config.generate_cfg import CyclesCfg
    from vlatwin.sensors.camera.cycles_renderer import CyclesRenderer

    path = card_stage(tmp_path / "dof.usda", {"kind": "distant", "intensity": 1000.0})  # black background
    stage = Usd.Stage.Open(str(path))
    camera = UsdGeom.Camera.Define(stage, "/World/Camera")
    camera.CreateFStopAttr(0.5)
    camera.CreateFocusDistanceAttr(0.3)  # the card is 2 m away: far out of focus at f/0.5
    stage.GetRootLayer().Save()
    renderer = CyclesRenderer(path, stage, [], ev100=8.0)
    try:
        model, T = card_camera()
        cfg = CyclesCfg(samples=32, adaptive_threshold=0.0, denoise=False, ev100=8.0)
        renderer.add_camera("sharp", model, cfg)  # no USD camera: pinhole
        renderer.add_camera("dof", model, cfg, usd_camera=camera.GetPrim())
        sharp, blurred = (renderer.render_linear(name, T, seed=1)[24, :, 0] for name in ("sharp", "dof"))
    finally:
        renderer.close()

    def edge_width(row):  # pixels between 10 % and 90 % of the card's level
        level = row.max()
        return int(np.sum((row > 0.1 * level) & (row < 0.9 * level)))

    assert edge_width(sharp) <= 4
    assert edge_width(blurred) >= edge_width(sharp) + 4


def test_image_textured_material_reads_its_texture_in_srgb(tmp_path):
    from pxr import Usd

    from vlatwin.config.generate_cfg import CyclesCfg
    from vlatwin.sensors.camera.cycles_renderer import CyclesRenderer

    path = card_stage(tmp_path / "tex.usda", {"kind": "distant", "intensity": 1000.0}, card_material="textured")
    renderer = CyclesRenderer(path, Usd.Stage.Open(str(path)), [], ev100=8.0)
    try:
        model, T = card_camera()
        renderer.add_camera("cam", model, CyclesCfg(samples=16, adaptive_threshold=0.0, denoise=False, ev100=8.0))
        value = float(renderer.render_linear("cam", T, seed=1)[20:28, 28:36].mean())
    finally:
        renderer.close()
    albedo = ((188 / 255 + 0.055) / 1.055) ** 2.4
    assert value == pytest.approx(ph.lambert_pixel(albedo, 1000.0, ph.saturation_luminance(8.0)), rel=0.02)


def test_missing_texture_is_one_line_naming_the_file(tmp_path):
    from pxr import Usd

    from vlatwin.errors import VlatwinError
    from vlatwin.sensors.camera.cycles_renderer import CyclesRenderer

    path = card_stage(tmp_path / "tex.usda", {"kind": "distant", "intensity": 1000.0}, card_material="textured")
    (tmp_path / "grey188.png").unlink()
    with pytest.raises(VlatwinError, match="grey188.png"):
        CyclesRenderer(path, Usd.Stage.Open(str(path)), [], ev100=8.0)
    # The failed renderer released Blender's scene: the next one opens.
    card_stage(tmp_path / "ok.usda", {"kind": "distant", "intensity": 1000.0})
    CyclesRenderer(tmp_path / "ok.usda", Usd.Stage.Open(str(tmp_path / "ok.usda")), [], ev100=8.0).close()


def test_unreadable_hdri_is_one_line_naming_the_light(tmp_path):
    from pxr import Sdf, Usd, UsdLux

    from vlatwin.sensors.camera.cycles_renderer import CyclesRenderer

    path = card_stage(tmp_path / "hdri.usda", {"kind": "dome", "intensity": 100.0})
    (tmp_path / "broken.hdr").write_bytes(b"")
    stage = Usd.Stage.Open(str(path))
    UsdLux.DomeLight(stage.GetPrimAtPath("/World/Light")).CreateTextureFileAttr(Sdf.AssetPath("broken.hdr"))
    stage.GetRootLayer().Save()
    with pytest.raises(VlatwinError, match=r"/World/Light: dome texture .*broken.hdr.*not a readable image"):
        CyclesRenderer(path, stage, [], ev100=8.0)


def test_meshes_without_normals_are_faceted_like_the_ray_cast(tmp_path):
    from pxr import Usd, UsdGeom

    from vlatwin.sensors.camera.cycles_renderer import CyclesRenderer

    path = card_stage(tmp_path / "mesh.usda", {"kind": "distant", "intensity": 1000.0})
    stage = Usd.Stage.Open(str(path))
    mesh = UsdGeom.Mesh.Define(stage, "/World/Wedge")
    mesh.CreatePointsAttr([(0, 0, 0), (0.1, 0, 0), (0, 0.1, 0), (0, 0, 0.1)])
    mesh.CreateFaceVertexCountsAttr([3, 3, 3, 3])
    mesh.CreateFaceVertexIndicesAttr([0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3])
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    stage.GetRootLayer().Save()
    renderer = CyclesRenderer(path, stage, [], ev100=8.0)
    try:
        polygons = renderer.objects["/World/Wedge"].data.polygons
        assert len(polygons) == 4 and not any(p.use_smooth for p in polygons)
    finally:
        renderer.close()


def test_exposure_doubles_with_one_stop_less(tmp_path):
    light = {"kind": "distant", "intensity": 1000.0}
    bright, dark = render_card(tmp_path, light, 8.0, samples=16), render_card(tmp_path, light, 9.0, samples=16)
    assert bright / dark == pytest.approx(2.0, rel=0.02)


def test_cameras_with_their_own_exposure_share_one_renderer(tmp_path):
    from pxr import Usd

    from vlatwin.config.generate_cfg import CyclesCfg
    from vlatwin.sensors.camera.cycles_renderer import CyclesRenderer

    path = card_stage(tmp_path / "ev.usda", {"kind": "distant", "intensity": 1000.0})
    renderer = CyclesRenderer(path, Usd.Stage.Open(str(path)), [], ev100=8.0)
    try:
        model, T = card_camera()
        renderer.add_camera("ev8", model, CyclesCfg(samples=16, adaptive_threshold=0.0, denoise=False, ev100=8.0))
        renderer.add_camera("ev9", model, CyclesCfg(samples=16, adaptive_threshold=0.0, denoise=False, ev100=9.0))
        ev8, ev9 = (float(renderer.render_linear(name, T, seed=1)[20:28, 28:36].mean()) for name in ("ev8", "ev9"))
    finally:
        renderer.close()
    assert ev9 == pytest.approx(ph.lambert_pixel(ALBEDO, 1000.0, ph.saturation_luminance(9.0)), rel=0.03)
    assert ev8 / ev9 == pytest.approx(2.0, rel=1e-4)


def test_unmappable_material_warns_with_the_prim_and_uses_grey(tmp_path, caplog):
    from pxr import Usd

    from vlatwin.config.generate_cfg import CyclesCfg
    from vlatwin.sensors.camera.cycles_renderer import CyclesRenderer

    path = card_stage(tmp_path / "odd.usda", {"kind": "distant", "intensity": 1000.0}, card_material="MyStudioShader")
    with caplog.at_level("WARNING"):
        renderer = CyclesRenderer(path, Usd.Stage.Open(str(path)), [], ev100=8.0)
    try:
        model, T = card_camera()
        renderer.add_camera("cam", model, CyclesCfg(samples=8, adaptive_threshold=0.0, denoise=False, ev100=8.0))
        value = float(renderer.render_linear("cam", T, seed=1)[20:28, 28:36].mean())
    finally:
        renderer.close()
    assert any("/World/Looks/grey" in r.getMessage() and "MyStudioShader" in r.getMessage() for r in caplog.records)
    # Nearest mapping: the default grey diffuse (0.8) lit by 1000 lux, with its specular layer.
    assert value == pytest.approx(ph.lambert_pixel(0.8, 1000.0, ph.saturation_luminance(8.0)), rel=0.15)


# ------------------------------------------------------------------- the default cell, both paths
@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """The default cell with the front camera on Cycles: one randomized frame, raster and Cycles of the same pose."""
    from vlatwin.config.loader import load_config
    from vlatwin.sdg.newton_worker import FrameWorkerNewton
    from vlatwin.usd.scene_builder import write_scene

    tmp = tmp_path_factory.mktemp("cell")
    data = yaml.safe_load((REPO / "configs/tabletop.yaml").read_text())
    data["scene"]["lidars"] = []
    data["scene"]["cameras"] = [c for c in data["scene"]["cameras"] if c["name"] == "front"]
    data["generate"]["camera_options"] = {"front": {"render": "cycles", "cycles": {"samples": 16}}}
    data["generate"]["randomize"]["objects"]["colors"] = True
    path = tmp / "cell.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    stage = write_scene(config.scene, tmp / "scene.usda")
    worker = FrameWorkerNewton(config, stage, config.scene.cameras)
    try:
        result = worker.run(1, 0)
        sensor = worker.cameras[0]
        pose = sensor._pose
        raster = worker.renderer.render("front", pose)
        labels = worker.renderer.labels
        shape_instance = np.append(labels.shape_instance, -1)
        raster_ids = np.where(raster.shape_index == 0xFFFFFFFF, -1, shape_instance[np.minimum(raster.shape_index, len(shape_instance) - 1)])
        worker.photoreal.sync_bodies(worker.sim.get_state().body_pose_w)
        cycles_ids = worker.photoreal.render_ids("front", pose, labels.instance_paths)
        data = {
            "outputs": result.outputs["cameras"]["front"],
            "record": result.record,
            "raster_rgb": raster.rgba[..., :3],
            "raster_ids": raster_ids,
            "cycles_ids": cycles_ids,
            "paths": list(labels.instance_paths),
        }
    finally:
        worker.close()  # Blender's one scene per process is free for the next tests
    return data


def test_silhouettes_of_both_paths_align_per_object(cell):
    checked = 0
    for i, path in enumerate(cell["paths"]):
        a, b = cell["raster_ids"] == i, cell["cycles_ids"] == i
        if a.sum() < 50:
            continue
        iou = (a & b).sum() / (a | b).sum()
        assert iou >= 0.98, f"{path}: silhouette IoU {iou:.4f} between the ray cast and Cycles"
        checked += 1
    assert checked >= 10  # table, floor, robot and the objects in view


def test_labels_come_from_the_ray_cast_and_rgb_from_cycles(cell):
    out = cell["outputs"]
    rgb = out["rgb"][..., :3]
    assert rgb.shape == cell["raster_rgb"].shape
    # Photoreal, not the raster image: indirect light and soft shadows change most pixels.
    assert np.mean(np.abs(rgb.astype(int) - cell["raster_rgb"].astype(int)) > 8) > 0.3
    seg = out["instance_segmentation"]
    assert seg["data"].shape == rgb.shape[:2]


def _hue_saturation(rgb: np.ndarray) -> tuple[float, float]:
    """HSV hue [deg] and saturation of a linear RGB colour."""
    r, g, b = rgb
    hi, lo = rgb.max(), rgb.min()
    span = hi - lo
    if hi == r:
        hue = 60.0 * ((g - b) / span % 6.0)
    elif hi == g:
        hue = 60.0 * ((b - r) / span + 2.0)
    else:
        hue = 60.0 * ((r - g) / span + 4.0)
    return float(hue), float(span / hi)


def test_object_colours_agree_with_the_raster_camera(cell):
    """Per-object mean colour in linear light: same hue, saturation no higher and at least half.

    The raster camera has no light units, no indirect light and no specular reflection; Cycles adds
    light reflected off the table, the robot and the sky, which desaturates a colour but keeps its hue
    (measured here: hue within 10 deg, saturation 0.6-1.0x). A wrong mapping shows as a hue error or
    a saturation ratio outside that band: reading linear colours as sRGB (the bug this test caught in
    the raster path's recolouring) made the raster 1.5-3x more saturated.
    """
    from vlatwin.sensors.camera.realism import srgb_to_linear

    rgb_c = srgb_to_linear(cell["outputs"]["rgb"][..., :3])
    rgb_r = srgb_to_linear(cell["raster_rgb"])
    ids = cell["raster_ids"]
    compared = 0
    for i, path in enumerate(cell["paths"]):
        mask = ids == i
        if not path.startswith("/World/Objects/") or mask.sum() < 80:
            continue
        hue_c, sat_c = _hue_saturation(rgb_c[mask].mean(axis=0))
        hue_r, sat_r = _hue_saturation(rgb_r[mask].mean(axis=0))
        hue_error = abs((hue_c - hue_r + 180.0) % 360.0 - 180.0)
        assert hue_error < 15.0, f"{path}: hue {hue_c:.0f} deg in Cycles vs {hue_r:.0f} deg raster"
        assert 0.5 * sat_r <= sat_c <= 1.05 * sat_r, f"{path}: saturation {sat_c:.2f} in Cycles vs {sat_r:.2f} raster"
        compared += 1
    assert compared >= 5
    assert "colors" in cell["record"], "the frame's objects were recoloured (randomization reached Cycles)"


# ------------------------------------------------------------------------------------ generate
def _tiny_config(tmp_path: Path, **camera_options) -> Path:
    data = yaml.safe_load((REPO / "configs/tabletop.yaml").read_text())
    data["scene"]["lidars"] = []
    for cam in data["scene"]["cameras"]:
        cam["resolution"] = [96, 72]
    data["generate"]["frames"] = 2
    data["generate"]["settle_steps"] = 10
    data["generate"]["camera_options"] = camera_options
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generate_render_cycles_same_layout_and_bytes_for_a_seed(tmp_path):
    config = _tiny_config(tmp_path)
    runs = []
    for name, render in (("raster", None), ("cycles_a", "cycles"), ("cycles_b", "cycles")):
        cmd = [sys.executable, "-m", "vlatwin.cli.main", "generate", str(config), "--out", str(tmp_path / name), "--no-progress"]
        if render:
            cmd += ["--render", render]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(_digests(tmp_path / name))
    raster, cycles_a, cycles_b = runs
    assert sorted(cycles_a) == sorted(raster), "same dataset layout as the raster path"
    assert cycles_a == cycles_b, "same seed, same bytes"
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:  # one Blender per Ray actor: the same files again
        cmd = [sys.executable, "-m", "vlatwin.cli.main", "generate", str(config), "--out", str(tmp_path / "ray"), "--no-progress",
               "--render", "cycles", "--ray", "--workers", "2"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert _digests(tmp_path / "ray") == cycles_a
    rgb = [k for k in raster if k.startswith("front/rgb")]
    assert rgb and all(raster[k] != cycles_a[k] for k in rgb)
    seg = [k for k in raster if "instance_segmentation" in k and k.endswith(".png")]
    assert seg and all(raster[k] == cycles_a[k] for k in seg), "labels are the ray cast's, unchanged"


def test_distortion_is_refused_in_one_line(tmp_path):
    config = _tiny_config(tmp_path, front={"render": "cycles", "lens": {"distortion": [0.1, 0.01]}})
    proc = subprocess.run(
        [sys.executable, "-m", "vlatwin.cli.main", "generate", str(config), "--out", str(tmp_path / "d"), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "front" in proc.stderr and "distortion" in proc.stderr


def test_workers_above_one_are_refused_before_writing(tmp_path):
    from vlatwin.errors import VlatwinError
    from vlatwin.sdg.pipeline import generate

    config = _tiny_config(tmp_path)
    with pytest.raises(VlatwinError, match="--workers must be 1"):
        generate(config, tmp_path / "w", workers=2, render="cycles", progress=False)
    assert not (tmp_path / "w").exists()


def test_a_failed_render_writes_no_partial_frame(tmp_path, monkeypatch):
    from vlatwin.errors import VlatwinError
    from vlatwin.sdg.pipeline import generate
    from vlatwin.sensors.camera import cycles_renderer

    calls = {"n": 0}
    real = cycles_renderer.CyclesRenderer._render

    def flaky(self, cam, T):
        calls["n"] += 1
        if calls["n"] == 2:  # frame 0's render succeeds, frame 1's fails
            raise cycles_renderer.CyclesRenderError("Cycles render failed: out of memory")
        return real(self, cam, T)

    monkeypatch.setattr(cycles_renderer.CyclesRenderer, "_render", flaky)
    config = _tiny_config(tmp_path, front={"render": "cycles"})
    out = tmp_path / "fail"
    with pytest.raises(VlatwinError, match="Cycles render failed"):
        generate(config, out, progress=False)
    manifest = [json.loads(line)["frame"] for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]
    assert manifest == [0]
    assert not [p for p in out.rglob("*_0001.*")], "nothing of the failed frame is on disk"


def test_missing_bpy_gives_the_install_hint(monkeypatch):
    from vlatwin.errors import VlatwinError
    from vlatwin.sensors.camera import cycles_renderer

    monkeypatch.setitem(sys.modules, "bpy", None)
    with pytest.raises(VlatwinError, match=r"pip install 'vlatwin\[photoreal\]'"):
        cycles_renderer.import_bpy()


def test_motion_blur_averages_cycles_subframes_across_the_shutter(tmp_path):
    """A shaking camera: the photo is the linear mean of one Cycles render per sub-frame (softer than any one)."""
    from vlatwin.config.loader import load_config
    from vlatwin.sdg.newton_worker import FrameWorkerNewton
    from vlatwin.sensors.camera.realism import srgb_to_linear
    from vlatwin.usd.scene_builder import write_scene

    blur = {"subframes": 3, "shutter_s": 0.05, "camera_shake_speed": 1.0}
    config = load_config(_tiny_config(tmp_path, front={"render": "cycles", "motion_blur": blur, "cycles": {"samples": 4}}))
    stage = write_scene(config.scene, tmp_path / "scene.usda")
    worker = FrameWorkerNewton(config, stage, [c for c in config.scene.cameras if c.name == "front"])
    renders = []
    real = worker.photoreal.render_linear

    def spy(name, T, *, seed=0):
        image = real(name, T, seed=seed)
        renders.append(image)
        return image

    worker.photoreal.render_linear = spy
    try:
        rgb = worker.run(0, 0).outputs["cameras"]["front"]["rgb"][..., :3]
    finally:
        worker.close()
    assert len(renders) == 3
    mean = np.mean([srgb_to_linear(np.round(ph.srgb_encode(r) * 255).astype(np.uint8)) for r in renders], axis=0)
    assert np.abs(srgb_to_linear(rgb) - mean).max() < 0.01

    def sharpness(image):
        return float(np.abs(np.diff(image, axis=1)).mean())

    assert sharpness(srgb_to_linear(rgb)) < min(sharpness(r) for r in renders)
