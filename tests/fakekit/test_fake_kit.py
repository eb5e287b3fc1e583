"""The Isaac code paths on a fake Kit (tests/fakekit/kit.py): thread, sync/async context and argument values.

No Isaac Sim needed: the fakes record calls; Replicator/RTX data are synthetic. What these tests cannot
show (real renders, real RTX returns) is listed in exts/vlatwin/docs/README.md.
"""

from __future__ import annotations

import asyncio
import json
import threading
import tomllib
import types

import numpy as np
import pytest

from tests.fakekit.kit import Kit, install, object_ids_bytes, stable_id_map_bytes
from vlatwin.errors import VlatwinError


@pytest.fixture
def kit(monkeypatch):
    return install(monkeypatch, Kit())


@pytest.fixture(params=["5.1", "6.0"])
def any_kit(request, monkeypatch):
    """A fake Kit of each Isaac Sim physics API (tests/fakekit/kit.py)."""
    return install(monkeypatch, Kit(api=request.param))


def _lidar_cfg(**kw):
    from vlatwin.config.scene_cfg import LidarCfg

    return LidarCfg(name="os1", profile="OS1-64", isaac_profile="OS1-128-1024x10", position=(1.0, 0.0, 1.0), rpy_deg=(0, 10, 145), **kw)


def _labels():
    from vlatwin.sensors.camera.labels import LabelTable

    return LabelTable(instance_paths=("/World/Objects/cube",), instance_classes=("cube",), shape_instance=np.zeros(0, np.int32))


# ----------------------------------------------------------------------------------------- finding 1
def test_default_config_has_an_isaac_lidar_profile(repo_root):
    from vlatwin.config.loader import load_config

    lidar = load_config(repo_root / "configs" / "tabletop.yaml").scene.lidars[0]
    assert lidar.resolved_profile.name == "OS1-64"  # Newton keeps the OS1-64
    assert lidar.isaac_resolved_profile.isaac_variant == "OS1_REV7_128ch10hz1024res"


def test_profile_without_isaac_config_fails_at_validation_in_one_line():
    from pydantic import ValidationError

    from vlatwin.config.scene_cfg import LidarCfg

    with pytest.raises(ValidationError, match="OS1-128-1024x10") as info:
        LidarCfg(name="l", profile="OS1-64", isaac_profile="OS1-64", position=(0, 0, 1))
    assert "VLP-16" not in str(info.value).split("use one of:")[-1]
    bare = LidarCfg(name="l", profile="OS1-64", position=(0, 0, 1))
    with pytest.raises(ValueError, match="has no Isaac Sim RTX config; on the isaacsim backend use one of: .*OS1-128"):
        bare.isaac_resolved_profile


def test_generate_on_isaac_refuses_unsupported_lidar_before_writing(tmp_path, repo_root):
    from vlatwin.config.loader import load_config
    from vlatwin.sdg.pipeline import _check_isaac_lidars

    config = load_config(repo_root / "configs" / "tabletop.yaml")
    _check_isaac_lidars(config, "tabletop.yaml")  # the default config is fine
    lidar = config.scene.lidars[0].model_copy(update={"isaac_profile": None})
    bad = config.model_copy(update={"scene": config.scene.model_copy(update={"lidars": [lidar]})})
    with pytest.raises(VlatwinError, match=r"^tabletop.yaml: scene.lidars.os1.profile: lidar profile 'OS1-64' has no Isaac"):
        _check_isaac_lidars(bad, "tabletop.yaml")


# ----------------------------------------------------------------------------------------- finding 2
def test_run_main_prints_traceback_before_close_and_keeps_exit_code(capsys):
    from vlatwin.utils.app_launcher import launch_config, run_main

    order = []

    class App:
        def close(self):
            order.append(("close", capsys.readouterr().err))

    def main():
        raise KeyError("boom")

    with pytest.raises(SystemExit) as exit_info:
        run_main(main, App())
    assert exit_info.value.code == 1
    assert "Traceback" in order[0][1] and "KeyError: 'boom'" in order[0][1]  # printed before close
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: 3, App())
    assert exit_info.value.code == 3
    config = launch_config(True, ["--enable", "vlatwin"])
    assert config["fast_shutdown"] is False and config["enable_motion_bvh"] is True
    assert "--/rtx-transient/stableIds/enabled=true" in config["extra_args"]


# ----------------------------------------------------------------------------------------- finding 3
def test_main_thread_worker_renders_on_the_calling_thread(tmp_path):
    from vlatwin.loop.worker import WorkResult
    from vlatwin.sdg.pipeline import _run_frames
    from vlatwin.writers.storage import Manifest

    threads = []

    class Worker:
        main_thread = True

        def run(self, index, seed):
            threads.append(threading.current_thread() is threading.main_thread())
            return WorkResult(index=index, outputs={"cameras": {}, "lidars": {}}, record={})

    job = types.SimpleNamespace(workers=[Worker()], seed=0, out_dir=tmp_path, manifest=Manifest(tmp_path))
    job.write_frame = lambda frame, outputs, record: {}
    written, _ = _run_frames(job, [0, 1, 2], 2, False)
    assert written == 3 and threads == [True, True, True]


def test_kit_calls_off_the_main_thread_fail(kit):
    from vlatwin.sim.isaacsim import SimBackendIsaac

    sim = SimBackendIsaac()
    errors = []
    t = threading.Thread(target=lambda: _catch(errors, lambda: sim.advance(1)))
    t.start()
    t.join()
    assert errors and "main thread" in str(errors[0])


def _catch(errors, fn):
    try:
        fn()
    except VlatwinError as exc:
        errors.append(exc)


# ----------------------------------------------------------------------------------------- finding 4
def _tiny_stage(tmp_path):
    """A 2-DOF robot (articulation root + one link) and one free rigid body."""
    from pxr import Usd, UsdGeom, UsdPhysics

    stage = Usd.Stage.CreateNew(str(tmp_path / "s.usda"))
    UsdGeom.Xform.Define(stage, "/World")
    robot = UsdGeom.Xform.Define(stage, "/World/Robot").GetPrim()
    UsdPhysics.ArticulationRootAPI.Apply(robot)
    UsdPhysics.RigidBodyAPI.Apply(UsdGeom.Xform.Define(stage, "/World/Robot/link").GetPrim())
    UsdPhysics.RigidBodyAPI.Apply(UsdGeom.Xform.Define(stage, "/World/Cube").GetPrim())
    stage.GetRootLayer().Save()
    return tmp_path / "s.usda"


def _names(kit, *prefixes):
    return [c.name for c in kit.calls if c.name.startswith(prefixes)]


PHYSICS_51 = ("World", "core.prims.")
PHYSICS_60 = ("SimulationManager", "experimental.prims.", "timeline.")


def test_physics_api_is_chosen_by_capability(any_kit):
    from vlatwin.sim.isaacsim import SimBackendIsaac, physics_api

    assert physics_api() == any_kit.api
    assert SimBackendIsaac().api == any_kit.api


def _drive(sim, path):
    """One standalone session through every backend method that reaches Isaac."""
    from vlatwin.sim.types import JointCommand, SimParams

    info = sim.load(path)
    assert info.joint_names == ("/World/Robot/joints/j1", "/World/Robot/joints/j2")
    assert info.body_paths == ("/World/Robot/link", "/World/Cube") and info.physics_dt == 0.01
    np.testing.assert_allclose(info.joint_upper, [1.0, 1.0])
    state = sim.reset(seed=None)
    np.testing.assert_allclose(state.joint_q, [0.25, 0.5])
    assert state.body_pose_w.shape == (2, 7) and state.body_vel_w.shape == (2, 6)
    sim.set_command(JointCommand(target_q=np.array([0.5, 2.0]), target_qd=np.array([0.1, np.nan]), effort=np.array([0.0, 3.0])))
    sim.advance(3)
    assert sim.get_state().step == 3
    params = sim.get_params()
    np.testing.assert_allclose(params.drive_stiffness, [100.0, 100.0])
    assert params.body_mass.shape == (2,) and params.body_inertia.shape == (2, 3, 3)
    sim.set_params(SimParams(drive_stiffness=np.array([50.0, 60.0]), joint_armature=np.array([0.01, 0.02]), body_mass=np.array([1.0, 2.0]), body_inertia=np.tile(np.eye(3), (2, 1, 1))))
    sim.set_body_pose("/World/Cube", [1.0, 2.0, 3.0, 1.0, 0.0, 0.0, 0.0])
    sim.close()


def test_isaac_51_path_calls_world_and_core_prims(kit, tmp_path):
    from vlatwin.sim.isaacsim import SimBackendIsaac

    _drive(SimBackendIsaac(physics_dt=0.01), _tiny_stage(tmp_path))
    assert not _names(kit, *PHYSICS_60)
    (world,) = kit.named("World")
    assert world.kwargs == {"physics_dt": 0.01, "rendering_dt": 0.01, "stage_units_in_meters": 1.0}
    assert [c.args for c in kit.named("core.prims.RigidPrim")] == [(["/World/Robot/link", "/World/Cube"],)]
    assert len(kit.named("World.reset")) == 2 and len(kit.named("World.scene.add")) == 3
    assert [c.kwargs for c in kit.named("World.step")] == [{"render": False}] * 3
    last = kit.named("core.prims.SingleArticulation.apply_action")[-1].kwargs
    np.testing.assert_allclose(last["joint_positions"], [0.5, 1.0])  # clipped to the upper limit
    np.testing.assert_allclose(last["joint_velocities"], [0.1, 0.0])
    np.testing.assert_allclose(kit.named("core.prims.SingleArticulation.set_joint_efforts")[-1].args[0], [0.0, 3.0])
    gains = kit.named("core.prims.Articulation.set_gains")[-1].kwargs
    np.testing.assert_allclose(gains["kps"], [[50.0, 60.0]])
    np.testing.assert_allclose(gains["kds"], [[10.0, 10.0]])
    assert kit.named("core.prims.Articulation.set_armatures")[-1].args[0].shape == (1, 2)
    assert kit.named("core.prims.RigidPrim.set_masses")[-1].args[0].shape == (2,)
    assert kit.named("core.prims.RigidPrim.set_inertias")[-1].args[0].shape == (2, 9)
    pose = kit.named("core.prims.RigidPrim.set_world_poses")[-1].kwargs
    np.testing.assert_allclose(pose["positions"], [[1.0, 2.0, 3.0]])
    assert pose["indices"].tolist() == [1]
    assert kit.named("core.prims.RigidPrim.set_velocities")[-1].args[0].shape == (1, 6)
    assert kit.named("World.clear_instance")
    kit.assert_kit_rules()


def test_isaac_60_path_calls_simulation_manager_and_experimental_prims(monkeypatch, tmp_path):
    from vlatwin.sim.isaacsim import SimBackendIsaac

    kit = install(monkeypatch, Kit(api="6.0"))  # isaacsim.core.api / .prims / .utils are unimportable here
    _drive(SimBackendIsaac(physics_dt=0.01), _tiny_stage(tmp_path))
    assert not _names(kit, *PHYSICS_51)
    assert kit.named("stage.set_stage_units")[0].kwargs["meters_per_unit"] == 1.0
    assert [c.kwargs for c in kit.named("SimulationManager.setup_simulation")] == [{"dt": 0.01, "device": None}]
    assert [c.args for c in kit.named("experimental.prims.Articulation")] == [("/World/Robot",)]
    assert [c.args for c in kit.named("experimental.prims.RigidPrim")] == [(["/World/Robot/link", "/World/Cube"],)]
    # dt is set before the first play (6.0 refuses to change dt while playing); each reset: stop, play, initialize
    order = _names(kit, "SimulationManager", "timeline", "stage.open_stage")
    reset = ["timeline.stop", "timeline.commit", "timeline.play", "timeline.commit", "SimulationManager.initialize_physics"]
    assert order[:2 + 2 * len(reset)] == ["stage.open_stage", "SimulationManager.setup_simulation", *reset, *reset]
    assert [c.kwargs["steps"] for c in kit.named("SimulationManager.step")] == [3]  # one physics-only call
    targets = kit.named("experimental.prims.Articulation.set_dof_position_targets")[-1].args[0]
    np.testing.assert_allclose(targets, [[0.5, 1.0]])  # batch axis first, clipped to the upper limit
    np.testing.assert_allclose(kit.named("experimental.prims.Articulation.set_dof_velocity_targets")[-1].args[0], [[0.1, 0.0]])
    np.testing.assert_allclose(kit.named("experimental.prims.Articulation.set_dof_efforts")[-1].args[0], [[0.0, 3.0]])
    np.testing.assert_allclose(kit.named("experimental.prims.Articulation.set_dof_positions")[0].args[0], [[0.25, 0.5]])
    gains = kit.named("experimental.prims.Articulation.set_dof_gains")[-1].kwargs
    np.testing.assert_allclose(gains["stiffnesses"], [[50.0, 60.0]])
    np.testing.assert_allclose(gains["dampings"], [[10.0, 10.0]])
    assert kit.named("experimental.prims.Articulation.set_dof_armatures")[-1].args[0].shape == (1, 2)
    assert kit.named("experimental.prims.RigidPrim.set_masses")[-1].args[0].shape == (2, 1)
    assert kit.named("experimental.prims.RigidPrim.set_inertias")[-1].args[0].shape == (2, 9)
    pose = kit.named("experimental.prims.RigidPrim.set_world_poses")[-1].kwargs
    np.testing.assert_allclose(pose["positions"], [[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(pose["orientations"], [[1.0, 0.0, 0.0, 0.0]])
    assert pose["indices"].tolist() == [1]
    vel = kit.named("experimental.prims.RigidPrim.set_velocities")[-1].kwargs
    assert vel["linear_velocities"].shape == (1, 3) and vel["angular_velocities"].shape == (1, 3)
    kit.assert_kit_rules()


def test_backend_load_async_initializes_the_simulation_context(any_kit, tmp_path):
    from vlatwin.sim.isaacsim import SimBackendIsaac

    kit = any_kit
    path = _tiny_stage(tmp_path)
    sim = SimBackendIsaac(physics_dt=0.01)
    asyncio.run(sim.load_async(path))
    asyncio.run(sim.reset_async())
    if kit.api == "5.1":
        names = [c.name for c in kit.calls if c.name.startswith(("World", "stage"))]
        assert names.index("World.initialize_simulation_context_async") < names.index("World.reset_async")
        assert "World.reset" not in names and "stage.open_stage" not in names
    else:  # as 6.0's base_sample_experimental.reset_async: stop, update, play, update; then initialize physics
        names = _names(kit, "SimulationManager", "timeline.stop", "timeline.play", "app.next_update_async", "stage.open_stage")
        reset = ["timeline.stop", "app.next_update_async", "timeline.play", "app.next_update_async", "SimulationManager.initialize_physics"]
        assert names == ["stage.open_stage_async", "SimulationManager.setup_simulation", *reset, *reset]
        assert not _names(kit, *PHYSICS_51)
    kit.assert_kit_rules()
    # the synchronous variant refuses to run inside the event loop
    async def sync_in_loop():
        SimBackendIsaac(physics_dt=0.01).load(path)

    with pytest.raises(VlatwinError, match="inside a running event loop"):
        asyncio.run(sync_in_loop())


def test_fake_physics_names_exist_in_the_symbol_indexes(repo_root, monkeypatch):
    """The fakes offer only names the real modules have (5.1 fakes vs the 5.1.0 index, 6.0 fakes vs 6.0.1)."""
    import inspect

    from tests.fakekit.kit import core_prims, experimental_prims, simulation_manager_class

    reference = repo_root.parent / "shared" / "reference"
    if not (reference / "isaacsim-6.0.1-symbols.json").is_file():
        pytest.skip("../shared/reference (Isaac Sim symbol indexes) not present")
    indexes = {v: json.loads((reference / f"isaacsim-{v}-symbols.json").read_text()) for v in ("5.1.0", "6.0.1")}

    def public(cls):
        return {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")} - {"count"}

    fakes = {
        "5.1.0": {f"isaacsim.core.prims.{n}": c for n, c in core_prims(Kit()).items()},
        "6.0.1": {f"isaacsim.core.experimental.prims.{n}": c for n, c in experimental_prims(Kit(api="6.0")).items()},
    }
    fakes["5.1.0"]["isaacsim.core.simulation_manager.SimulationManager"] = simulation_manager_class(Kit())
    fakes["6.0.1"]["isaacsim.core.simulation_manager.SimulationManager"] = simulation_manager_class(Kit(api="6.0"))
    for version, classes in fakes.items():
        members = indexes[version]["members"]
        for path, cls in classes.items():
            assert public(cls) <= set(members[path]), (version, path, public(cls) - set(members[path]))
    # the capability check tells the two apart
    manager = "isaacsim.core.simulation_manager.SimulationManager"
    assert "setup_simulation" in indexes["6.0.1"]["members"][manager]
    assert "setup_simulation" not in indexes["5.1.0"]["members"][manager]
    # the 6.0 path's classes exist in both releases (only setup_simulation is 6.0-only)
    for name in ("Articulation", "RigidPrim"):
        for version in indexes:
            assert public(fakes["6.0.1"][f"isaacsim.core.experimental.prims.{name}"]) <= set(
                indexes[version]["members"][f"isaacsim.core.experimental.prims.{name}"]
            )


def test_renderer_awaits_replicator_in_the_loop_and_passes_elapsed_time(kit):
    from vlatwin.sensors.camera.isaac_camera import CameraRendererIsaac

    sim = types.SimpleNamespace(current_step=0, physics_dt=0.01)
    renderer = CameraRendererIsaac(kit.stage, [], ["rgb"], warmup_updates=2, rt_subframes=4, sim=sim)

    async def frames():
        await renderer.warmup_async()
        await renderer.capture_once_async()
        await renderer.capture_once_async()  # same state: no second render
        sim.current_step = 10
        await renderer.capture_once_async()
        await renderer.close_async()

    asyncio.run(frames())
    steps = kit.named("rep.orchestrator.step_async")
    assert [c.kwargs["delta_time"] for c in steps] == [0.0, pytest.approx(0.1)]
    assert all(c.kwargs["rt_subframes"] == 4 for c in steps)
    assert not kit.named("rep.orchestrator.step") and not kit.named("app.update")
    kit.assert_kit_rules()
    with pytest.raises(VlatwinError, match="event loop"):
        asyncio.run(_call(renderer.capture))


async def _call(fn):
    fn()


def test_panel_job_uses_only_async_kit_calls(kit, monkeypatch, tmp_path):
    import sys

    for name in ("omni.ui", "omni.usd"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "vlatwin.ui.twin_panel", types.SimpleNamespace(TwinPanel=object))
    sys.modules.pop("vlatwin.ui.panels", None)
    import vlatwin.ui.panels as panels

    calls = []

    class Job:
        frames_skipped = 0

        @classmethod
        async def create_async(cls, config, out, **kw):
            calls.append(("create_async", config, kw["kit_settings"]))
            job = cls()
            job.left = 2
            return job

        async def step_async(self):
            calls.append("step_async")
            self.left -= 1
            return None if self.left < 0 else self.left

        async def finalize_async(self):
            calls.append("finalize_async")

        def step(self):  # pragma: no cover - must not be called
            raise AssertionError("synchronous step inside the event loop")

    monkeypatch.setattr("vlatwin.sdg.pipeline.DatasetRun", Job)
    state = {"config": "/abs/tabletop.yaml", "rt_subframes": 4, "warmup_updates": 3}
    done = asyncio.run(panels.run_dataset_job(state, tmp_path / "out", 2, lambda *a: None, lambda: False))
    assert done == 2
    assert calls[0] == ("create_async", "/abs/tabletop.yaml", {"rt_subframes": 4, "warmup_updates": 3})
    assert calls[-1] == "finalize_async"
    sys.modules.pop("vlatwin.ui.panels", None)


def test_settings_resolve_against_the_extension_folder(repo_root):
    from vlatwin.ui.settings import read_extension_settings

    ext = repo_root / "exts" / "vlatwin"
    values = read_extension_settings({"/exts/vlatwin/rt_subframes": 16}.get, ext)
    assert values == {"config": str(repo_root / "configs" / "tabletop.yaml"), "rt_subframes": 16, "warmup_updates": 20}


# ----------------------------------------------------------------------------------------- finding 5
def test_rtx_lidar_setup_arguments(any_kit):
    """Both APIs create the lidar the 5.1 way (6.0: still the deprecated isaacsim.sensors.rtx command and
    scan-buffer annotator; why: exts/vlatwin/docs/README.md, row "Isaac Sim 6.0")."""
    from vlatwin.sensors.lidar.isaac_lidar import LidarIsaac

    kit = any_kit
    lidar = LidarIsaac(_lidar_cfg(), _labels())
    (create,) = kit.named("command.IsaacSensorCreateRtxLidar")
    kw = create.kwargs
    assert kw["parent"] == "/World/Lidars/os1" and kw["path"] == "rtx"
    assert tuple(kw["translation"]) == (0.0, 0.0, 0.0) and kw["orientation"].GetReal() == 1.0  # pose only on the mount
    assert kw["config"] == "OS1" and kw["variant"] == "OS1_REV7_128ch10hz1024res"
    assert kw["omni:sensor:Core:auxOutputType"] in ("EXTRA", "FULL")  # objectId needs >= EXTRA
    (product,) = kit.named("rep.create.render_product")
    assert product.args[1] == (128, 128)
    init = [c for c in kit.named("annotator.initialize") if c.args[0] == "IsaacCreateRTXLidarScanBuffer"][0].kwargs
    assert init["enablePerFrameOutput"] and init["outputObjectId"]
    # one render per 1/60 s through the scan (0.1 s at 600 Hz): samples at 10, 20, ... 60
    assert lidar.schedule(1 / 600) == (10, 20, 30, 40, 50, 60)
    kit.assert_kit_rules()


def test_rtx_lidar_refuses_without_stable_ids_or_asset_root(kit):
    from vlatwin.sensors.lidar.isaac_lidar import LidarIsaac

    kit.settings["/rtx-transient/stableIds/enabled"] = False
    with pytest.raises(VlatwinError, match="stableIds"):
        LidarIsaac(_lidar_cfg(), _labels())
    kit.settings["/rtx-transient/stableIds/enabled"] = True
    kit.asset_root = None
    with pytest.raises(VlatwinError, match="^Isaac Sim's asset server is unreachable .*RTX Lidar configs load from it"):
        LidarIsaac(_lidar_cfg(), _labels())


def test_rtx_lidar_frames_are_labelled_through_stable_ids(kit):
    from vlatwin.sensors.base import CaptureContext
    from vlatwin.sensors.lidar.isaac_lidar import LidarIsaac

    big = (7 << 96) | 123
    kit.annotator_data["StableIdMap"] = stable_id_map_bytes({big: "/World/Objects/cube/mesh", 5: "/World/Table"})
    kit.annotator_data["IsaacCreateRTXLidarScanBuffer"] = {
        "data": np.array([[1, 0, 0], [2, 0, 0], [3, 0, 0]], np.float32),
        "objectId": object_ids_bytes([big, 5, 99]),
        "intensity": np.array([0.1, 0.2, 0.3], np.float32),
        "timestamp": np.array([10, 20, 30], np.uint64),
        "beamId": np.array([0, 1, 2], np.uint32),
    }
    renders = []
    renderer = types.SimpleNamespace(capture_once=lambda: renders.append(1))
    lidar = LidarIsaac(_lidar_cfg(), _labels(), renderer)
    lidar.begin(CaptureContext(index=0, rng=None, start_time=0.0, start_step=0))
    lidar.sample(0)
    lidar.sample(1)
    points = lidar.finish()
    assert len(renders) == 2 and len(points) == 6
    assert points["instance"][:3].tolist() == [2, 1, 1]  # cube (vlatwin id 2), unlabelled table, unknown id
    assert points["class"][0] == 2


# ----------------------------------------------------------------------------------------- finding 6
def test_inherited_labels_take_the_prims_own_class():
    from vlatwin.sim.isaac_convert import semantic_id_map

    labels = _labels()
    assert semantic_id_map({"3": {"class": "rectangle, cube"}}, labels) == {3: labels.class_id("cube")}


def test_pointcloud_ids_are_remapped_through_the_frames_segmentation():
    from vlatwin.sim.isaac_convert import convert_replicator_outputs

    labels = _labels()
    raw = {
        "pointcloud": {
            "data": np.zeros((2, 3), np.float32),
            "info": {"pointRgb": np.zeros(8, np.uint8), "pointNormals": np.zeros(8, np.float32), "pointSemantic": np.array([7, 9]), "pointInstance": np.array([40, 41])},
        },
        "semantic_segmentation": {"data": np.zeros((1, 1), np.uint32), "info": {"idToLabels": {"7": {"class": "table, cube"}, "9": {"class": "BACKGROUND"}}}},
        "instance_segmentation": {"data": np.zeros((1, 1), np.uint32), "info": {"idToLabels": {"40": "/World/Objects/cube", "41": "/World/Other"}}},
    }
    out = convert_replicator_outputs(raw, labels)["pointcloud"]["info"]
    assert out["pointSemantic"].tolist() == [labels.class_id("cube"), 0]
    assert out["pointInstance"].tolist() == [2, 1]
    # without the tables the raw ids are never written as vlatwin ids
    del raw["semantic_segmentation"], raw["instance_segmentation"]
    out = convert_replicator_outputs(raw, labels)["pointcloud"]["info"]
    assert out["pointSemantic"].tolist() == [1, 1] and out["pointInstance"].tolist() == [1, 1]


def test_renderer_attaches_id_tables_for_the_pointcloud_and_hides_them(kit):
    from vlatwin.sensors.camera.isaac_camera import CameraRendererIsaac

    cam = types.SimpleNamespace(name="front")
    model = types.SimpleNamespace(width=4, height=3, K=np.eye(3), distortion=())
    renderer = CameraRendererIsaac(kit.stage, [(cam, model)], ["rgb", "pointcloud"])
    got = {c.args[0] for c in kit.named("rep.get_annotator")}
    assert {"semantic_segmentation", "instance_segmentation_fast", "pointcloud"} <= got
    assert renderer._hidden == {"semantic_segmentation", "instance_segmentation"}


# ----------------------------------------------------------------------------------------- findings 7, 9
def test_manifest_pipapi_modules_dependencies_and_settings(repo_root):
    manifest = tomllib.loads((repo_root / "exts" / "vlatwin" / "config" / "extension.toml").read_text())
    pip = manifest["python"]["pipapi"]
    assert len(pip["modules"]) == len(pip["requirements"]) and all(">" not in m for m in pip["modules"])
    for dep in ("isaacsim.asset.importer.urdf", "isaacsim.asset.importer.mjcf", "isaacsim.core.experimental.utils"):
        assert dep in manifest["dependencies"]
    from vlatwin.ui.settings import DEFAULTS

    assert set(manifest["settings"]["exts"]["vlatwin"]) == set(DEFAULTS)


def test_metadata_matches_replicators_basic_writer():
    from vlatwin.writers.basic import metadata_bytes

    assert metadata_bytes(11) == b'{"name": "BasicWriter", "version": "0.0.2", "replicator_global_seed:": 11}'
    assert json.loads(metadata_bytes(0))["replicator_global_seed:"] == 0


def test_stable_id_map_round_trip():
    from vlatwin.sim.isaac_convert import decode_stable_id_map, parse_object_ids

    big = (1 << 127) | 42
    assert decode_stable_id_map(stable_id_map_bytes({big: "/a", 3: "/b/c"})) == {big: "/a", 3: "/b/c"}
    assert parse_object_ids(object_ids_bytes([big, 3])) == [big, 3]
