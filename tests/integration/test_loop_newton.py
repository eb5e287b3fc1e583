"""The control loop on Newton: 20 Hz control over 600 Hz physics, a camera read every control step, an
end-effector controller, a LIDAR sampled in blocks while the loop steps; one seed, one run."""

import numpy as np
import pytest

from vlatwin.control import KinematicChain, make_controller
from vlatwin.loop.control_loop import ControlLoop
from vlatwin.utils.transforms import make_transform, rot_z

TCP = make_transform(rot_z(-np.pi / 4), [0.0, 0.0, 0.107 + 0.1034])


def _loop(tabletop_usda, tabletop_config):
    from vlatwin.config.generate_cfg import CameraRandomizationCfg
    from vlatwin.config.scene_cfg import CameraCfg
    from vlatwin.sensors.camera.model import CameraModel
    from vlatwin.sensors.camera.newton_camera import CameraRendererNewton
    from vlatwin.sensors.camera.newton_sensor import CameraSensorNewton
    from vlatwin.sensors.lidar.newton_lidar import LidarNewton
    from vlatwin.sdg.newton_worker import lidar_pose_fn
    from vlatwin.sim.factory import make_backend
    from vlatwin.usd.check import open_stage

    sim = make_backend("newton", device="cpu")
    sim.load(tabletop_usda)
    stage = open_stage(tabletop_usda)
    renderer = CameraRendererNewton(sim, stage, shadows=False)
    cam_cfg = CameraCfg(name="wrist_view", position=(1.2, 0.0, 1.3), look_at=(0.4, 0.0, 0.8), resolution=(224, 224))
    model = CameraModel.from_cfg(cam_cfg)
    renderer.add_camera(cam_cfg.name, model)
    camera = CameraSensorNewton(renderer, cam_cfg, model, None, ["rgb", "instance_segmentation"], CameraRandomizationCfg(), None, renderer.instance_geometry)
    lidar_cfg = tabletop_config.scene.lidars[0]
    lidar = LidarNewton(sim, stage, lidar_cfg.resolved_profile, blocks=5, labels=renderer.labels, name="os1")
    lidar.set_pose_fn(lidar_pose_fn(sim, lidar_cfg))
    lidar.rate_hz = 10.0
    chain = KinematicChain.from_usd(stage, "/World/Robot/panda_link0", "/World/Robot/panda_link7", TCP)
    controller = make_controller("ee_delta_pose", info=sim.info, chain=chain, control_dt=0.05)
    return sim, ControlLoop(sim, control_hz=20.0, sensors=[camera, lidar], controller=controller)


@pytest.fixture(scope="module")
def two_runs(tabletop_usda, tabletop_config):
    runs = []
    for _ in range(2):
        sim, loop = _loop(tabletop_usda, tabletop_config)
        action = np.r_[0.004, 0.0, -0.003, 0.0, 0.0, 0.0, 0.0]  # 4 mm/step forward, 3 mm down, gripper open
        obs = loop.reset(seed=5)
        steps = []
        for _ in range(8):
            record, obs = loop.step(obs, action)
            steps.append(record)
        runs.append((sim, loop, steps, obs))
        sim.close()
    return runs


def test_loop_clock_and_sensor_rates(two_runs):
    sim, loop, steps, last = two_runs[0]
    assert loop.decimation == 30
    assert [s.next_state.step for s in steps] == [30 * (k + 1) for k in range(8)]
    # the camera is fresh at every control step: a 224x224 image of this step
    for record in steps:
        rgb = record.observation.sensors["wrist_view"]["rgb"]
        assert rgb.shape == (224, 224, 4) and rgb[..., :3].std() > 5
    # the 10 Hz lidar starts every 2nd control step and its 0.1 s scan lands two control steps later
    assert "os1" not in steps[0].observation.sensors and "os1" not in steps[1].observation.sensors
    scan = steps[2].observation.sensors["os1"]
    assert len(scan) > 1000 and steps[2].observation.sensor_times["os1"] == 0.0
    # at t = 0.4 s the newest finished scan is the one started at 0.3 s (its last block fired before 0.4 s)
    assert last.time == pytest.approx(0.4) and last.sensor_times["os1"] == pytest.approx(0.3)


def test_controller_moves_the_arm_in_the_loop(two_runs):
    _, _, steps, last = two_runs[0]
    first, final = steps[0].observation.state.joint_q, last.state.joint_q
    assert np.abs(final - first)[:7].max() > 0.01


def test_same_seed_same_run(two_runs):
    (_, _, a, last_a), (_, _, b, last_b) = two_runs
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.next_state.body_pose_w, rb.next_state.body_pose_w)
        np.testing.assert_array_equal(ra.observation.sensors["wrist_view"]["rgb"], rb.observation.sensors["wrist_view"]["rgb"])
    np.testing.assert_array_equal(last_a.sensors["os1"]["x"], last_b.sensors["os1"]["x"])


def test_usd_edited_stage_generates_what_the_edit_says(tmp_path):
    """A stage edited with pxr (as in usdview): a moved camera and an added labelled cube show up in the dataset."""
    import json

    from pxr import Gf, Usd, UsdGeom, UsdPhysics

    from vlatwin.config.loader import load_config
    from vlatwin.sdg.pipeline import generate
    from vlatwin.usd.scene_builder import write_scene
    from vlatwin.usd.semantics import add_class_label

    small = load_config(__import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "small_sdg.yaml")
    stage_path = write_scene(small.scene, tmp_path / "cell.usda")
    stage = Usd.Stage.Open(str(stage_path))
    UsdGeom.Xformable(stage.GetPrimAtPath("/World/Cameras/top")).GetOrderedXformOps()[0].Set(Gf.Vec3d(0.6, 0.1, 1.7))
    cube = UsdGeom.Xform.Define(stage, "/World/Objects/new_cube")
    cube.AddTranslateOp().Set(Gf.Vec3d(0.5, -0.2, 0.8))
    UsdPhysics.RigidBodyAPI.Apply(cube.GetPrim())
    geom = UsdGeom.Cube.Define(stage, "/World/Objects/new_cube/geom")
    geom.CreateSizeAttr(0.08)
    UsdPhysics.CollisionAPI.Apply(geom.GetPrim())
    add_class_label(cube.GetPrim(), "newthing")
    stage.Save()
    settings = tmp_path / "settings.yaml"
    settings.write_text("generate:\n  frames: 1\n  settle_steps: 30\n  randomize: {objects: {scatter: false}}\n")
    out = tmp_path / "ds"
    generate(stage_path, out, settings=settings, progress=False)
    params = json.loads((out / "top" / "camera_params_0000.json").read_text())
    view = np.array(params["cameraViewTransform"]).reshape(4, 4)  # world -> camera, row-vector convention
    eye = -view[3, :3] @ np.linalg.inv(view[:3, :3])
    np.testing.assert_allclose(eye, [0.6, 0.1, 1.7], atol=1e-6)
    semantics = json.loads((out / "top" / "instance_segmentation_semantics_mapping_0000.json").read_text())
    assert {"class": "newthing"} in semantics.values()
    # the new cube is seen where it was put: its pixels exist in the instance image
    from PIL import Image

    from vlatwin.writers.basic import decode_colorized

    mapping = json.loads((out / "top" / "instance_segmentation_mapping_0000.json").read_text())
    index, labels = decode_colorized(np.asarray(Image.open(out / "top" / "instance_segmentation_0000.png")), mapping)
    key = next(k for k, v in labels.items() if v == "/World/Objects/new_cube")
    assert np.count_nonzero(index == key) > 50


def test_bad_settings_for_a_stage_name_the_settings_file(tmp_path):
    """Errors in --settings name that file, and nothing is written to --out."""
    from vlatwin.errors import VlatwinError
    from vlatwin.sdg.pipeline import generate

    stage = __import__("pathlib").Path(__file__).resolve().parents[2] / "usd_assets" / "tabletop.usda"
    cases = {
        "scene: {}\ngenerate: {frames: 1}\n": "take a 'generate:' section only",
        "generate: {frames: 1, bogus: 2}\n": "generate.bogus: unknown key",
        "generate: {frames: 0}\n": "generate.frames",
    }
    for i, (text, message) in enumerate(cases.items()):
        settings = tmp_path / f"settings_{i}.yaml"
        settings.write_text(text)
        with pytest.raises(VlatwinError, match=message) as err:
            generate(stage, tmp_path / f"out_{i}", settings=settings, progress=False)
        assert str(err.value).startswith(str(settings)) and "\n" not in str(err.value)
        assert not (tmp_path / f"out_{i}").exists()
