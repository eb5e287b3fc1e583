"""The built-in tabletop tasks: reach, pick-and-lift, place on, push to a region, stack, gripper on a target.

Each success predicate reads only a :class:`~vlatwin.sim.types.SimState` (body poses and velocities,
finger joint positions) and static geometry from the config; thresholds are class attributes, documented
where they are defined, and overridable from ``task:`` (``tolerance``, ``lift_height``, ``hold_steps``).
The TCP is Franka's: between the fingertips (see :mod:`vlatwin.tasks.geometry`).
"""

from __future__ import annotations

import numpy as np

from vlatwin.tasks.base import ExpertGoal, InitialState, Task
from vlatwin.tasks.geometry import (
    TARGETS_PATH,
    ObjectGeom,
    between_fingers,
    body_pose,
    gripper_state,
    is_held,
    object_geom,
    world_half_extents,
)


def _phrase(name: str) -> str:
    """``red_cube`` -> ``red cube``."""
    return name.replace("_", " ").strip()


class TabletopTask(Task):
    """Shared plumbing: the scene's objects, the table height, spawn settings, instruction override."""

    type: str = ""
    default_max_steps = 200
    default_hold_steps = 1

    def __init__(self, task_cfg, scene_cfg):
        self.cfg = task_cfg
        self.name = task_cfg.name or scene_cfg.name
        self.table_top = float(scene_cfg.table.size[2])
        self.objects: dict[str, ObjectGeom] = {
            o.name: object_geom(o, self.table_top) for o in scene_cfg.objects if o.shape in ("box", "sphere", "cylinder", "capsule")
        }
        self.scene_objects_cfg = list(scene_cfg.objects)
        self.obj = self.objects[task_cfg.object]
        self.target: ObjectGeom | None = self.objects[task_cfg.target] if task_cfg.target else None
        self.max_steps = task_cfg.max_steps or self.default_max_steps
        self.hold_steps = task_cfg.hold_steps or self.default_hold_steps
        self.control_hz = task_cfg.control_hz
        self.instructions = tuple(task_cfg.instructions) if task_cfg.instructions else self.default_instructions()

    # -- description
    def default_instructions(self) -> tuple[str, ...]:
        raise NotImplementedError

    def scene_objects(self) -> list[dict]:
        """Markers this task authors (``scene.markers`` entries; the config adds them when it loads)."""
        return []

    @property
    def instruction(self) -> str:
        """The canonical instruction."""
        return self.instructions[0]

    # -- initial states
    def keep_out(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Axis-aligned XY rectangles (centre, half size) no object may overlap at the start."""
        return []

    def accept_start(self, positions: dict[str, np.ndarray]) -> bool:
        """Task-specific test of a sampled layout (object name -> centre)."""
        return True

    def sample_initial_state(self, rng: np.random.Generator, info=None) -> InitialState:
        from vlatwin.tasks.initial_states import sample_layout

        return sample_layout(self, rng)

    # -- judgement
    def _pos(self, state, info, geom: ObjectGeom) -> tuple[np.ndarray, np.ndarray]:
        return body_pose(state, info, geom.path)

    def _resting_on(self, state, info, top: ObjectGeom, bottom: ObjectGeom, tol: float) -> bool:
        """``top``'s centre over ``bottom``'s top face footprint, at bottom-top + top's half height +- tol."""
        p_t, r_t = self._pos(state, info, top)
        p_b, r_b = self._pos(state, info, bottom)
        d = r_b.T @ (p_t - p_b)
        hb = np.asarray(bottom.half_extents)
        if abs(d[0]) > hb[0] or abs(d[1]) > hb[1]:
            return False
        expected = p_b[2] + world_half_extents(bottom, r_b)[2] + world_half_extents(top, r_t)[2]
        return abs(p_t[2] - expected) <= tol

    def _speed(self, state, info, geom: ObjectGeom) -> float:
        return float(np.linalg.norm(state.body_vel_w[info.body_index(geom.path), :3]))

    def info_dict(self) -> dict:
        """What a dataset or report records about the task."""
        return {
            "name": self.name,
            "type": self.type,
            "instructions": list(self.instructions),
            "max_steps": self.max_steps,
            "hold_steps": self.hold_steps,
            "control_hz": self.control_hz,
        }


class ReachTask(TabletopTask):
    """Move the TCP close to a named object.

    Success: the TCP is within ``tolerance`` (default 0.04 m) of the object's centre (fingers straddle it;
    any gripper state). Holds 1 step by default; 100 control steps (5 s at 20 Hz).
    """

    type = "reach"
    default_max_steps = 100
    default_hold_steps = 1
    TOLERANCE = 0.04

    def __init__(self, task_cfg, scene_cfg):
        super().__init__(task_cfg, scene_cfg)
        self.tolerance = task_cfg.tolerance or self.TOLERANCE

    def default_instructions(self):
        o = _phrase(self.obj.name)
        return (f"reach the {o}", f"move your hand to the {o}", f"go to the {o}", f"touch the {o} with the gripper")

    def success(self, state, info) -> bool:
        grip = gripper_state(state, info)
        p, _ = self._pos(state, info, self.obj)
        return bool(np.linalg.norm(grip.tcp - p) <= self.tolerance)

    def expert_goal(self, state, info) -> ExpertGoal:
        p, _ = self._pos(state, info, self.obj)
        return ExpertGoal(skill="reach", object_path=self.obj.path, object_half_extents=self.obj.half_extents,
                          target_w=tuple(float(v) for v in p), gripper="open")


class PickLiftTask(TabletopTask):
    """Pick an object up and hold it in the air.

    Success: the object's centre is at least ``lift_height`` (default 0.1 m) above its resting height on
    the table and between the finger pads (:func:`between_fingers`), for ``hold_steps`` (default 5)
    consecutive control steps. 200 control steps.
    """

    type = "pick_lift"
    default_max_steps = 200
    default_hold_steps = 5
    LIFT_HEIGHT = 0.1

    def __init__(self, task_cfg, scene_cfg):
        super().__init__(task_cfg, scene_cfg)
        self.lift_height = task_cfg.lift_height or self.LIFT_HEIGHT

    def default_instructions(self):
        o = _phrase(self.obj.name)
        return (f"pick up the {o}", f"lift the {o}", f"grab the {o} and raise it", f"pick the {o} up off the table")

    def success(self, state, info) -> bool:
        p, _ = self._pos(state, info, self.obj)
        if p[2] < self.obj.rest_z + self.lift_height:
            return False
        return between_fingers(p, gripper_state(state, info))

    def expert_goal(self, state, info) -> ExpertGoal:
        p, _ = self._pos(state, info, self.obj)
        lift = self.lift_height + 0.02
        return ExpertGoal(skill="pick_lift", object_path=self.obj.path, object_half_extents=self.obj.half_extents,
                          target_w=(float(p[0]), float(p[1]), self.obj.rest_z + lift), lift_height=lift, gripper="close")


class PlaceOnTask(TabletopTask):
    """Put object A on object B.

    Success: A's centre lies over B's top-face footprint (in B's frame, |dx| <= B half x, |dy| <= B half y),
    A's centre height is B's top + A's half height within ``tolerance`` (default 0.015 m), A is not held
    (:func:`is_held`: between the pads with the gap closed on it) and moves slower than 0.05 m/s; held
    ``hold_steps`` (default 3) steps. 300 control steps.
    """

    type = "place_on"
    default_max_steps = 300
    default_hold_steps = 3
    TOLERANCE = 0.015
    MAX_SPEED = 0.05
    """[m/s]"""

    def __init__(self, task_cfg, scene_cfg):
        super().__init__(task_cfg, scene_cfg)
        self.tolerance = task_cfg.tolerance or self.TOLERANCE

    def default_instructions(self):
        a, b = _phrase(self.obj.name), _phrase(self.target.name)
        return (f"put the {a} on the {b}", f"place the {a} on top of the {b}", f"pick up the {a} and set it on the {b}",
                f"move the {a} onto the {b}")

    def success(self, state, info) -> bool:
        if not self._resting_on(state, info, self.obj, self.target, self.tolerance):
            return False
        p, _ = self._pos(state, info, self.obj)
        if is_held(p, self.obj, gripper_state(state, info)):
            return False
        return self._speed(state, info, self.obj) <= self.MAX_SPEED

    def expert_goal(self, state, info) -> ExpertGoal:
        p_b, r_b = self._pos(state, info, self.target)
        top = p_b[2] + world_half_extents(self.target, r_b)[2]
        z = top + self.obj.rest_z - self.table_top  # + A's half height as it rests
        return ExpertGoal(skill="pick_place", object_path=self.obj.path, object_half_extents=self.obj.half_extents,
                          target_w=(float(p_b[0]), float(p_b[1]), float(z)), gripper="open",
                          target_path=self.target.path, target_half_extents=self.target.half_extents)


class StackTask(PlaceOnTask):
    """Stack cube A on cube B.

    Success: as :class:`PlaceOnTask` (A on B, not held, still), and B rests on the table (its centre within
    ``tolerance`` of its resting height). 3 steps; 300 control steps.
    """

    type = "stack"

    def default_instructions(self):
        a, b = _phrase(self.obj.name), _phrase(self.target.name)
        return (f"stack the {a} on the {b}", f"put the {a} on top of the {b}", f"place the {a} onto the {b} to make a stack",
                f"build a tower with the {a} on the {b}")

    def success(self, state, info) -> bool:
        p_b, _ = self._pos(state, info, self.target)
        if abs(p_b[2] - self.target.rest_z) > self.tolerance:
            return False
        return super().success(state, info)


class PushToRegionTask(TabletopTask):
    """Push an object into a marked region on the table.

    Success: the object's centre is inside the region rectangle (``task.region``, authored as the visual
    marker ``/World/Targets/<region.name>``) and the object is on the table (centre within 0.02 m of its
    resting height); held ``hold_steps`` (default 3). Starts put the object outside the region (its
    footprint clear of it) and at most 0.3 m from the region's centre. 300 control steps.
    """

    type = "push_to_region"
    default_max_steps = 300
    default_hold_steps = 3
    ON_TABLE_TOL = 0.02
    MAX_START_DISTANCE = 0.3

    def __init__(self, task_cfg, scene_cfg):
        super().__init__(task_cfg, scene_cfg)
        r = task_cfg.region
        self.region_name = r.name
        self.region_path = f"{TARGETS_PATH}/{r.name}"
        self.region_center = np.array(r.center, dtype=float)
        self.region_half = np.array(r.size, dtype=float) / 2.0

    def default_instructions(self):
        o = _phrase(self.obj.name)
        return (f"push the {o} into the green region", f"slide the {o} to the marked area", f"push the {o} onto the target zone",
                f"move the {o} into the green square by pushing it")

    def scene_objects(self) -> list[dict]:
        from vlatwin.config.task_cfg import REGION_THICKNESS

        r = self.cfg.region
        return [{"name": r.name, "position": [*r.center, self.table_top + REGION_THICKNESS / 2],
                 "size": [*r.size, REGION_THICKNESS], "color": list(r.color), "label": "target_region"}]

    def keep_out(self):
        return [(self.region_center, self.region_half)]

    def accept_start(self, positions):
        return bool(np.linalg.norm(positions[self.obj.name][:2] - self.region_center) <= self.MAX_START_DISTANCE)

    def in_region(self, xy) -> bool:
        return bool(np.all(np.abs(np.asarray(xy[:2], dtype=float) - self.region_center) <= self.region_half))

    def success(self, state, info) -> bool:
        p, _ = self._pos(state, info, self.obj)
        return self.in_region(p) and abs(p[2] - self.obj.rest_z) <= self.ON_TABLE_TOL

    def expert_goal(self, state, info) -> ExpertGoal:
        from vlatwin.config.task_cfg import REGION_THICKNESS

        return ExpertGoal(skill="push", object_path=self.obj.path, object_half_extents=self.obj.half_extents,
                          target_w=(float(self.region_center[0]), float(self.region_center[1]), self.obj.rest_z),
                          gripper="close", target_path=self.region_path,
                          target_half_extents=(float(self.region_half[0]), float(self.region_half[1]), REGION_THICKNESS / 2))


class GripperTask(TabletopTask):
    """Close (or open) the gripper on a target object.

    Success: the TCP is within 0.02 m of the object's centre in XY, its height is between the object's
    bottom and ``tolerance`` (default 0.04 m) above the object's top, and the fingers are
    closed (gap <= the object's widest X/Y width + 6 mm: clamped on it, or closed above it) or open
    (gap >= 0.07 m) as ``task.gripper`` says; held 3 steps. 150 control steps.
    """

    type = "gripper"
    default_max_steps = 150
    default_hold_steps = 3
    XY_TOL = 0.02
    TOLERANCE = 0.04
    OPEN_GAP = 0.07
    CLOSED_MARGIN = 0.006

    def __init__(self, task_cfg, scene_cfg):
        self.mode = task_cfg.gripper or "close"
        super().__init__(task_cfg, scene_cfg)
        self.tolerance = task_cfg.tolerance or self.TOLERANCE

    def default_instructions(self):
        o = _phrase(self.obj.name)
        if self.mode == "close":
            return (f"close the gripper on the {o}", f"grasp the {o}", f"close your fingers around the {o}",
                    f"move to the {o} and close the gripper")
        return (f"open the gripper over the {o}", f"hover over the {o} with the gripper open",
                f"move to the {o} and open your fingers")

    def success(self, state, info) -> bool:
        grip = gripper_state(state, info)
        p, r = self._pos(state, info, self.obj)
        hz = world_half_extents(self.obj, r)[2]
        if np.linalg.norm(grip.tcp[:2] - p[:2]) > self.XY_TOL:
            return False
        if not p[2] - hz <= grip.tcp[2] <= p[2] + hz + self.tolerance:
            return False
        if self.mode == "close":
            return grip.gap <= self.obj.max_width + self.CLOSED_MARGIN
        return grip.gap >= self.OPEN_GAP

    def expert_goal(self, state, info) -> ExpertGoal:
        p, _ = self._pos(state, info, self.obj)
        return ExpertGoal(skill="gripper", object_path=self.obj.path, object_half_extents=self.obj.half_extents,
                          target_w=tuple(float(v) for v in p), gripper=self.mode)
