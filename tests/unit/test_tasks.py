"""Task seam: success predicates on hand-set states, hold logic, task configs, fixed initial states."""

from __future__ import annotations

import math

import numpy as np
import pytest
from vlatwin.config.loader import config_from_dict, load_config
from vlatwin.config.task_cfg import BUILTIN_TASK_TYPES
from vlatwin.errors import ConfigError
from vlatwin.sim.types import SimModelInfo, SimState
from vlatwin.tasks.base import ExpertGoal, InitialState, SuccessTracker
from vlatwin.tasks.factory import TASK_TYPES, task_from_config
from vlatwin.tasks.initial_states import fixed_initial_states, load_initial_states, placed_objects, states_to_json

TASK_CONFIGS = {
    "reach": "reach_ball",
    "pick_lift": "pick_red_cube",
    "place_on": "place_cube_on_block",
    "push_to_region": "push_cube_to_region",
    "stack": "stack_cubes",
    "gripper": "close_gripper_on_cube",
}
ROBOT = "/World/Robot"
ARM_JOINTS = tuple(f"{ROBOT}/panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = (f"{ROBOT}/panda_finger_joint_left", f"{ROBOT}/panda_finger_joint_right")
FINGERS = (f"{ROBOT}/panda_leftfinger", f"{ROBOT}/panda_rightfinger")
DOWN = np.array([0.0, 1.0, 0.0, 0.0])  # (w, x, y, z): pi about X, hand Z pointing at the table
FAR_TCP = (0.3, 0.0, 1.25)
OPEN = 0.08


@pytest.fixture(scope="module", params=list(TASK_CONFIGS))
def loaded(request, repo_root):
    config = load_config(repo_root / "configs" / "tasks" / f"{TASK_CONFIGS[request.param]}.yaml")
    return request.param, config, task_from_config(config)


def _task(repo_root, kind):
    return task_from_config(load_config(repo_root / "configs" / "tasks" / f"{TASK_CONFIGS[kind]}.yaml"))


class World:
    """A hand-built SimModelInfo + SimState: the Panda's finger bodies and the task's objects."""

    def __init__(self, task):
        self.task = task
        self.objects = [g.path for g in task.objects.values()]
        self.info = SimModelInfo(
            stage_path="hand-made",
            physics_dt=1 / 600,
            joint_names=ARM_JOINTS + FINGER_JOINTS,
            joint_lower=np.zeros(9),
            joint_upper=np.r_[np.ones(7), 0.04, 0.04],
            body_paths=(f"{ROBOT}/panda_link7", *FINGERS, *self.objects),
        )

    def state(self, poses: dict[str, tuple] | None = None, *, tcp=FAR_TCP, gap=OPEN, vel: dict | None = None) -> SimState:
        """Objects resting where ``poses`` says (name -> (x, y, z[, yaw])), else at their config rest pose."""
        n = len(self.info.body_paths)
        pose = np.zeros((n, 7))
        pose[:, 3] = 1.0
        tcp = np.asarray(tcp, float)
        base = tcp + np.array([0.0, 0.0, 0.045])  # finger joints' origin: 45 mm up the hand from the TCP
        y_axis = np.array([0.0, -1.0, 0.0])  # the hand's Y after pi about X
        pose[0, :3] = base + [0, 0, 0.1]
        pose[1, :3], pose[1, 3:] = base + y_axis * gap / 2, DOWN
        pose[2, :3], pose[2, 3:] = base - y_axis * gap / 2, DOWN
        for name, geom in self.task.objects.items():
            i = self.info.body_index(geom.path)
            p = (poses or {}).get(name)
            if p is None:
                cfg = next(o for o in self.task.scene_objects_cfg if o.name == name)
                p = (*cfg.position[:2], geom.rest_z)
            yaw = p[3] if len(p) > 3 else 0.0
            pose[i, :3] = p[:3]
            pose[i, 3:] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        body_vel = np.zeros((n, 6))
        for name, v in (vel or {}).items():
            body_vel[self.info.body_index(self.task.objects[name].path), :3] = v
        q = np.r_[np.zeros(7), gap / 2, gap / 2]
        return SimState(time=0.0, step=0, joint_q=q, joint_qd=np.zeros(9), body_pose_w=pose, body_vel_w=body_vel)


# ------------------------------------------------------------------ predicates, true and false


def test_types_match_config():
    assert tuple(TASK_TYPES) == BUILTIN_TASK_TYPES


def test_reach(repo_root):
    task = _task(repo_root, "reach")
    w = World(task)
    ball = (0.5, 0.1, task.obj.rest_z)
    assert task.success(w.state({"yellow_ball": ball}, tcp=(0.5, 0.1, task.obj.rest_z + 0.03)), w.info)
    assert task.success(w.state({"yellow_ball": ball}, tcp=(0.52, 0.1, task.obj.rest_z + 0.02)), w.info)
    assert not task.success(w.state({"yellow_ball": ball}, tcp=(0.5, 0.1, task.obj.rest_z + 0.06)), w.info)
    assert not task.success(w.state({"yellow_ball": ball}), w.info)  # hand far away
    # reaching the distractor is not reaching the ball
    cube = task.objects["red_cube"]
    assert not task.success(w.state({"yellow_ball": ball, "red_cube": (0.5, -0.1, cube.rest_z)}, tcp=(0.5, -0.1, cube.rest_z)), w.info)
    assert task.reward(w.state({"yellow_ball": ball}, tcp=ball), w.info) == 1.0
    assert task.reward(w.state({"yellow_ball": ball}), w.info) == 0.0


def test_pick_lift(repo_root):
    task = _task(repo_root, "pick_lift")
    w = World(task)
    z0 = task.obj.rest_z
    up = (0.5, 0.1, z0 + 0.11)
    held = w.state({"red_cube": up}, tcp=up, gap=0.045)
    assert task.success(held, w.info)
    assert task.success(w.state({"red_cube": up}, tcp=(0.5, 0.1, z0 + 0.11 - 0.02), gap=0.045), w.info)  # high in the grip
    assert not task.success(w.state({"red_cube": (0.5, 0.1, z0 + 0.09)}, tcp=(0.5, 0.1, z0 + 0.09), gap=0.045), w.info)  # too low
    assert not task.success(w.state({"red_cube": up}), w.info)  # in the air but not in the hand
    assert not task.success(w.state({"red_cube": up}, tcp=(0.5, 0.16, z0 + 0.11), gap=0.045), w.info)  # beside the fingers
    assert not task.success(w.state({"red_cube": (0.5, 0.1, z0)}, tcp=(0.5, 0.1, z0), gap=0.045), w.info)  # grasped on the table
    assert task.hold_steps == 5


def test_place_on(repo_root):
    task = _task(repo_root, "place_on")
    w = World(task)
    block, cube = task.target, task.obj
    bz = block.rest_z
    on_z = bz + block.half_extents[2] + cube.half_extents[2]
    base = {"blue_block": (0.55, -0.1, bz, 0.3)}
    assert task.success(w.state(base | {"red_cube": (0.56, -0.09, on_z, 1.0)}), w.info)
    assert task.success(w.state(base | {"red_cube": (0.55, -0.1, on_z + 0.01)}), w.info)  # within the 15 mm tolerance
    assert not task.success(w.state(base | {"red_cube": (0.55, -0.1, on_z + 0.03)}), w.info)  # floating above
    assert not task.success(w.state(base | {"red_cube": (0.65, -0.1, on_z)}), w.info)  # off the footprint
    assert not task.success(w.state(base | {"red_cube": (0.4, 0.1, cube.rest_z)}), w.info)  # still on the table
    assert not task.success(w.state(base | {"red_cube": (0.55, -0.1, on_z)}, tcp=(0.55, -0.1, on_z), gap=0.045), w.info)  # still held
    assert task.success(w.state(base | {"red_cube": (0.55, -0.1, on_z)}, tcp=(0.55, -0.1, on_z), gap=OPEN), w.info)  # released
    assert not task.success(w.state(base | {"red_cube": (0.55, -0.1, on_z)}, vel={"red_cube": (0.2, 0, 0)}), w.info)  # sliding
    goal = task.expert_goal(w.state(base), w.info)
    assert goal.skill == "pick_place" and goal.object_path == cube.path and goal.target_path == block.path
    np.testing.assert_allclose(goal.target_w, (0.55, -0.1, on_z), atol=1e-9)


def test_stack(repo_root):
    task = _task(repo_root, "stack")
    w = World(task)
    a, b = task.obj, task.target
    on_z = b.rest_z + b.half_extents[2] + a.half_extents[2]
    base = {"green_cube": (0.55, -0.1, b.rest_z)}
    assert task.success(w.state(base | {"red_cube": (0.555, -0.1, on_z, 0.7)}), w.info)
    assert not task.success(w.state(base | {"red_cube": (0.6, -0.1, on_z)}), w.info)  # beside, in the air
    assert not task.success(w.state(base | {"red_cube": (0.45, 0.1, a.rest_z)}), w.info)  # both on the table
    # A on B but B lifted off the table (both carried): not a stack
    lifted = {"green_cube": (0.55, -0.1, b.rest_z + 0.1), "red_cube": (0.55, -0.1, on_z + 0.1)}
    assert not task.success(w.state(lifted), w.info)
    # B on A is the wrong order
    rev = {"red_cube": (0.55, -0.1, a.rest_z), "green_cube": (0.55, -0.1, a.rest_z + a.half_extents[2] + b.half_extents[2])}
    assert not task.success(w.state(rev), w.info)


def test_push_to_region(repo_root):
    task = _task(repo_root, "push_to_region")
    w = World(task)
    z = task.obj.rest_z
    cx, cy = task.region_center
    assert task.success(w.state({"green_cube": (cx, cy, z)}), w.info)
    assert task.success(w.state({"green_cube": (cx + 0.055, cy - 0.055, z, 0.4)}), w.info)  # centre just inside
    assert not task.success(w.state({"green_cube": (cx + 0.065, cy, z)}), w.info)  # centre just outside
    assert not task.success(w.state({"green_cube": (cx, cy, z + 0.1)}), w.info)  # carried over it
    assert not task.success(w.state({"green_cube": (0.45, -0.1, z)}), w.info)
    goal = task.expert_goal(w.state(), w.info)
    assert goal.skill == "push" and goal.target_path == "/World/Targets/target_region"
    assert task.scene_objects()[0]["name"] == "target_region"


def test_gripper_close(repo_root):
    task = _task(repo_root, "gripper")
    w = World(task)
    z = task.obj.rest_z
    cube = {"blue_cube": (0.5, 0.1, z)}
    assert task.success(w.state(cube, tcp=(0.5, 0.1, z), gap=0.045), w.info)  # closed on it
    assert task.success(w.state(cube, tcp=(0.5, 0.1, z + 0.05), gap=0.0), w.info)  # closed just above it
    assert not task.success(w.state(cube, tcp=(0.5, 0.1, z), gap=OPEN), w.info)  # open
    assert not task.success(w.state(cube, tcp=(0.5, 0.1, z + 0.1), gap=0.0), w.info)  # too high
    assert not task.success(w.state(cube, tcp=(0.55, 0.1, z), gap=0.0), w.info)  # beside it
    assert not task.success(w.state(cube, gap=0.0), w.info)  # closed far away
    goal = task.expert_goal(w.state(cube), w.info)
    assert goal == ExpertGoal(skill="gripper", object_path=task.obj.path, object_half_extents=task.obj.half_extents,
                              target_w=(0.5, 0.1, z), gripper="close")


def test_gripper_open(repo_root):
    config = load_config(repo_root / "configs" / "tasks" / "close_gripper_on_cube.yaml")
    config.task.gripper = "open"
    task = task_from_config(config)
    w = World(task)
    z = task.obj.rest_z
    assert task.instructions[0].startswith("open")
    assert task.success(w.state({"blue_cube": (0.5, 0.1, z)}, tcp=(0.5, 0.1, z + 0.03), gap=OPEN), w.info)
    assert not task.success(w.state({"blue_cube": (0.5, 0.1, z)}, tcp=(0.5, 0.1, z + 0.03), gap=0.03), w.info)


def test_every_task_has_instructions_goal_and_limits(loaded):
    kind, _config, task = loaded
    assert len(task.instructions) >= 3 and len(set(task.instructions)) == len(task.instructions)
    assert task.max_steps > 0 and task.hold_steps >= 1 and task.type == kind
    w = World(task)
    goal = task.expert_goal(w.state(), w.info)
    assert goal.skill in ("reach", "pick_lift", "pick_place", "push", "gripper")
    assert goal.object_path == task.obj.path and goal.object_half_extents == task.obj.half_extents
    assert goal.target_w is not None and len(goal.target_w) == 3
    # the config's own layout (hand at the home height) is not a success
    assert not task.success(w.state(), w.info)


# ------------------------------------------------------------------ hold logic


def test_tracker_needs_consecutive_steps(repo_root):
    task = _task(repo_root, "pick_lift")
    tracker = task.tracker()
    seq = [True, True, True, True, False, True, True, True, True, True, True]
    results = [tracker.update(h, step) for step, h in enumerate(seq)]
    assert results[:9] == [False] * 9 and results[9] and tracker.first_success_step == 9
    assert tracker.update(False, 11)  # once succeeded, stays succeeded
    assert tracker.first_success_step == 9
    one = SuccessTracker(hold_steps=1)
    assert not one.update(False, 0) and one.update(True, 1) and one.first_success_step == 1


# ------------------------------------------------------------------ configs


def test_task_configs_load(loaded):
    kind, config, task = loaded
    assert config.task.type == kind
    assert next(c.resolution for c in config.scene.cameras) == (224, 224) and len(config.scene.cameras) == 2
    dynamic = [o for o in config.scene.objects if o.dynamic]
    assert 1 <= len(dynamic) <= 3
    for o in dynamic:  # graspable by the Panda (8 cm opening), light, grippy
        assert 2 * max(task.objects[o.name].half_extents[:2]) <= 0.07 or o.name == getattr(task.target, "name", None)
        mat = config.scene.all_materials()[o.material]
        assert mat.static_friction >= 1.0 and (o.mass or 1.0) <= 0.3
    if kind == "push_to_region":
        assert [m.name for m in config.scene.markers] == ["target_region"]


def _cfg(task: dict, objects=None):
    objects = objects or [
        {"name": "a", "shape": "box", "size": [0.04] * 3, "position": [0.5, 0, 0.77]},
        {"name": "b", "shape": "box", "size": [0.05] * 3, "position": [0.5, 0.2, 0.775]},
        {"name": "m", "shape": "convex_mesh", "position": [0.4, -0.2, 0.76],
         "vertices": [[0, 0, 0], [0.03, 0, 0], [0, 0.03, 0], [0, 0, 0.03]]},
    ]
    return {"scene": {"objects": objects}, "task": task}


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"type": "fly", "object": "a"}, "task.type: unknown task type 'fly'; known: reach, pick_lift, place_on, push_to_region, stack, gripper"),
        ({"type": "pick_lift", "object": "zz"}, "task.object: unknown object 'zz'; scene objects: a, b, m"),
        ({"type": "place_on", "object": "a", "target": "zz"}, "task.target: unknown object 'zz'; scene objects: a, b, m"),
        ({"type": "place_on", "object": "a"}, "task: task type 'place_on' needs 'target'"),
        ({"type": "reach", "object": "a", "target": "b"}, "task: 'target' does not apply to task type 'reach'"),
        ({"type": "stack", "object": "a", "target": "a"}, "task.target: must differ from 'object'"),
        ({"type": "reach", "object": "m"}, "task.object: object 'm' is a convex_mesh; tasks use box, sphere, cylinder, capsule"),
        ({"type": "push_to_region", "object": "a"}, "task: task type 'push_to_region' needs 'region'"),
        ({"type": "push_to_region", "object": "a", "region": {"center": [0.5, 0.1], "size": [0.1, -1]}},
         "task.region.size: expected 2 positive numbers"),
        ({"type": "reach", "object": "a", "lift_height": 0.2}, "task: 'lift_height' does not apply to task type 'reach'"),
        ({"type": "reach", "object": "a", "tolerence": 1}, "task.tolerence: unknown key (did you mean 'tolerance'?)"),
    ],
)
def test_bad_task_configs_are_one_line(task, expected):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(_cfg(task), source="configs/x.yaml")
    message = str(exc.value)
    assert "\n" not in message
    assert message == f"configs/x.yaml: {expected}"


def test_region_adds_a_marker_and_scene_without_task_is_unchanged():
    config = config_from_dict(_cfg({"type": "push_to_region", "object": "a", "region": {"center": [0.55, -0.15]}}))
    (marker,) = config.scene.markers
    assert marker.name == "target_region" and marker.position[2] == pytest.approx(0.751)
    assert config_from_dict({"scene": {}}).task is None


# ------------------------------------------------------------------ fixed initial states


def test_init_state_files_match_a_fresh_regeneration(loaded):
    kind, config, task = loaded
    text = states_to_json(task, fixed_initial_states(task))
    assert config.task.init_states.read_text(encoding="utf-8") == text, (
        f"regenerate: python -m vlatwin.tasks.initial_states configs/tasks/{TASK_CONFIGS[kind]}.yaml"
    )
    states = load_initial_states(config.task.init_states)
    assert len(states) == 50 and all(isinstance(s, InitialState) for s in states)
    assert len({s.seed for s in states}) == 50


def test_init_states_are_collision_free_reachable_and_not_yet_successful(loaded):
    kind, config, task = loaded
    geoms = {g.path: g for g in placed_objects(task)}
    w = World(task)
    for s in load_initial_states(config.task.init_states):
        assert set(s.object_poses) == set(geoms)
        items = []
        for path, pose in s.object_poses.items():
            x, y, z = pose[:3]
            assert 0.35 - 1e-9 <= x <= 0.65 + 1e-9 and abs(y) <= 0.25 + 1e-9, (kind, s.seed, path)
            assert 0.35 <= math.hypot(x, y) <= 0.7
            assert z == pytest.approx(geoms[path].rest_z, abs=1e-6)
            assert np.linalg.norm(pose[3:]) == pytest.approx(1.0, abs=1e-5)
            items.append((np.array([x, y]), geoms[path].footprint_radius))
        for i in range(len(items)):
            for j in range(i):
                assert np.linalg.norm(items[i][0] - items[j][0]) >= items[i][1] + items[j][1], (kind, s.seed)
        if kind == "push_to_region":
            (xy, r), = items
            d = np.maximum(np.abs(xy - task.region_center) - task.region_half, 0)
            assert np.hypot(*d) >= r  # the object starts clear of the region
        names = {g.path: n for n, g in task.objects.items()}
        state = w.state({names[p]: (*pose[:3], 2 * math.atan2(pose[6], pose[3])) for p, pose in s.object_poses.items()})
        assert not task.success(state, w.info), (kind, s.seed)


def test_sampling_is_seeded(repo_root):
    task = _task(repo_root, "stack")
    a = task.sample_initial_state(np.random.default_rng(7), None)
    b = task.sample_initial_state(np.random.default_rng(7), None)
    c = task.sample_initial_state(np.random.default_rng(8), None)
    assert a == b and a != c
    assert InitialState.from_dict(a.to_dict()) == a
