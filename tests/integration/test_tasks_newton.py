"""Task configs on Newton: they build and load, initial states apply, the region marker is visual only."""

from __future__ import annotations

import numpy as np
import pytest
from vlatwin.config.loader import config_from_dict, load_config
from vlatwin.tasks.factory import task_from_config
from vlatwin.tasks.initial_states import apply_initial_state, load_initial_states
from vlatwin.usd.scene_builder import write_scene

TASKS = ["reach_ball", "pick_red_cube", "place_cube_on_block", "push_cube_to_region", "stack_cubes", "close_gripper_on_cube"]
SETTLE_STEPS = 60  # 0.1 s at 600 Hz


def _load(config, tmp_path, name):
    from vlatwin.sim.newton import SimBackendNewton

    usda = write_scene(config.scene, tmp_path / f"{name}.usda")
    sim = SimBackendNewton(device="cpu")
    sim.load(usda)
    return sim


@pytest.mark.parametrize("name", TASKS)
def test_task_scene_loads_and_initial_states_apply(name, repo_root, tmp_path):
    config = load_config(repo_root / "configs" / "tasks" / f"{name}.yaml")
    task = task_from_config(config)
    states = load_initial_states(config.task.init_states)
    sim = _load(config, tmp_path, name)
    try:
        info = sim.info
        # Success is False at the start of every fixed initial state.
        for init in states:
            state = apply_initial_state(sim, init)
            for path, pose in init.object_poses.items():
                np.testing.assert_allclose(state.body_pose_w[info.body_index(path), :3], pose[:3], atol=1e-6)
            assert not task.success(state, info), (name, init.seed)
        # Objects rest where the state says after settling (hold the robot still).
        for init in states[:2]:
            apply_initial_state(sim, init)
            state = sim.step(num_steps=SETTLE_STEPS)
            for path, pose in init.object_poses.items():
                got = state.body_pose_w[info.body_index(path)]
                assert np.linalg.norm(got[:3] - np.asarray(pose[:3])) < 0.003, (name, init.seed, path, got[:3], pose[:3])
            assert not task.success(state, info)
    finally:
        sim.close()


def test_region_marker_is_drawn_but_does_not_collide(tmp_path):
    """A cube dropped onto a raised marker falls through it onto the table; the marker is a visual shape."""
    import newton

    cube = {"name": "cube", "shape": "box", "size": [0.04] * 3, "position": [0.5, 0.0, 0.95], "mass": 0.05}
    config = config_from_dict({
        "scene": {
            "objects": [cube],
            "markers": [{"name": "target_region", "position": [0.5, 0.0, 0.85], "size": [0.2, 0.2, 0.01]}],
        }
    })
    sim = _load(config, tmp_path, "marker")
    try:
        info = sim.info
        path = "/World/Targets/target_region"
        assert path in info.shape_paths
        shape = info.shape_paths.index(path)
        assert info.shape_body[shape] == -1
        flags = int(sim.model.shape_flags.numpy()[shape])
        assert flags & int(newton.ShapeFlags.VISIBLE)
        assert not flags & int(newton.ShapeFlags.COLLIDE_SHAPES)
        state = sim.step(num_steps=360)  # 0.6 s: falls 0.18 m to the table and settles
        z = state.body_pose_w[info.body_index("/World/Objects/cube"), 2]
        assert z == pytest.approx(0.75 + 0.02, abs=0.003)
    finally:
        sim.close()


def test_push_config_stage_has_the_marker(repo_root, tmp_path):
    from pxr import Usd, UsdPhysics

    config = load_config(repo_root / "configs" / "tasks" / "push_cube_to_region.yaml")
    usda = write_scene(config.scene, tmp_path / "push.usda")
    stage = Usd.Stage.Open(str(usda))
    prim = stage.GetPrimAtPath("/World/Targets/target_region")
    assert prim.IsValid() and not prim.HasAPI(UsdPhysics.CollisionAPI) and not prim.HasAPI(UsdPhysics.RigidBodyAPI)
