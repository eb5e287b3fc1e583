"""Task configuration: the ``task:`` section of ``configs/*.yaml`` (see :mod:`vlatwin.tasks`).

A task names its type (one of :data:`BUILTIN_TASK_TYPES`), the scene objects it acts on and its
parameters. Config never imports an implementation: :func:`vlatwin.tasks.factory.make_task` turns a
:class:`TaskCfg` into a :class:`vlatwin.tasks.base.Task`. Units: [m], control steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from vlatwin.config.base import StrictModel
from vlatwin.config.types import ColorRGB, PositiveVec2, PositiveVec3, Vec2, Vec3

#: Built-in task types (``task.type``); :data:`vlatwin.tasks.factory.TASK_TYPES` implements each.
BUILTIN_TASK_TYPES = ("reach", "pick_lift", "place_on", "push_to_region", "stack", "gripper")

#: Fields each type uses beyond the common ones (name, type, object, instructions, steps, spawn, init states).
_TYPE_FIELDS = {
    "reach": {"tolerance"},
    "pick_lift": {"lift_height"},
    "place_on": {"target", "tolerance"},
    "push_to_region": {"region"},
    "stack": {"target", "tolerance"},
    "gripper": {"gripper", "tolerance"},
}
_OPTIONAL = ("target", "region", "lift_height", "tolerance", "gripper")


class MarkerCfg(StrictModel):
    """A visual-only box (no collider, no rigid body) under /World/Targets, e.g. a target region on the table.

    Renderers (Isaac Sim, Newton's) draw it; physics ignores it.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    position: Vec3
    """Centre [m], world frame."""
    size: PositiveVec3
    """Full extents [m] (a region marker is a thin slab, e.g. 2 mm)."""
    yaw_deg: float = Field(0.0, ge=-360.0, le=360.0)
    color: ColorRGB = (0.1, 0.7, 0.2)
    label: str | None = None
    """Semantic class (defaults to the marker's name)."""

    @property
    def semantic_label(self) -> str:
        return self.label if self.label is not None else self.name


class RegionCfg(StrictModel):
    """An axis-aligned rectangle on the table top (authored as a :class:`MarkerCfg`)."""

    name: str = Field("target_region", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    center: Vec2
    """[m], world XY."""
    size: PositiveVec2 = (0.12, 0.12)
    """Full extents x, y [m]."""
    color: ColorRGB = (0.1, 0.7, 0.2)


class SpawnCfg(StrictModel):
    """Where initial states put the objects: an axis-aligned XY rectangle on the table top.

    The default keeps every object within the Panda's top-down grasp reach from a base at x = y = 0
    (about 0.35-0.7 m)."""

    center: Vec2 = (0.5, 0.0)
    size: PositiveVec2 = (0.3, 0.5)
    """Full extents [m]: x in [0.35, 0.65], |y| <= 0.25 by default."""
    yaw: bool = True
    """Random yaw about Z in [-pi, pi) (otherwise yaw 0)."""
    min_gap: float = Field(0.03, ge=0.0, le=1.0)
    """Clearance between objects' bounding circles [m]."""


class TaskCfg(StrictModel):
    """A tabletop task on the scene's objects."""

    type: str
    """One of :data:`BUILTIN_TASK_TYPES`."""
    name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Task name (init-state file name); default: the scene's name."""
    object: str
    """Name of the scene object the task acts on (``scene.objects[].name``)."""
    target: str | None = None
    """``place_on`` / ``stack``: the object to put ``object`` on."""
    region: RegionCfg | None = None
    """``push_to_region``: the target region (authored as a visual-only marker)."""
    lift_height: float | None = Field(None, gt=0.0, le=1.0)
    """``pick_lift``: how far above its resting height the object must be [m] (default 0.1)."""
    tolerance: float | None = Field(None, gt=0.0, le=0.5)
    """reach: grasp-centre distance to the object [m] (0.04); place_on/stack: height tolerance [m] (0.015);
    gripper: how far above the object's top the grasp centre may be [m] (0.04)."""
    gripper: Literal["close", "open"] | None = None
    """``gripper``: the state to end in (default ``close``)."""
    instructions: list[str] | None = None
    """Override: the canonical instruction first, then paraphrases."""
    max_steps: int | None = Field(None, ge=1, le=100000)
    """Control steps before the episode fails (default per type)."""
    hold_steps: int | None = Field(None, ge=1, le=10000)
    """Consecutive control steps the predicate must hold (default per type)."""
    control_hz: float = Field(20.0, gt=0.0, le=1000.0)
    spawn: SpawnCfg = SpawnCfg()
    num_init_states: int = Field(50, ge=1, le=10000)
    """How many fixed evaluation initial states the init-state file holds."""
    init_seed: int = Field(0, ge=0, le=2**31 - 1)
    """Seed the fixed evaluation initial states are drawn from."""
    init_states: Path | None = None
    """The fixed evaluation initial states (JSON, relative to the config); default
    ``init_states/<name>.json`` next to the config file."""

    @field_validator("type")
    @classmethod
    def _known_type(cls, value):
        if value not in BUILTIN_TASK_TYPES:
            raise ValueError(f"unknown task type {value!r}; known: {', '.join(BUILTIN_TASK_TYPES)}")
        return value

    @field_validator("instructions")
    @classmethod
    def _non_empty(cls, value):
        if value is not None and (not value or any(not s.strip() for s in value)):
            raise ValueError("expected a non-empty list of non-empty strings")
        return value

    @field_validator("init_states")
    @classmethod
    def _relative(cls, value, info: ValidationInfo):
        if value is None:
            return None
        base = (info.context or {}).get("base_dir")
        path = Path(value).expanduser()
        return (Path(base) / path if not path.is_absolute() and base is not None else path).resolve()

    @model_validator(mode="after")
    def _type_fields(self):
        used = _TYPE_FIELDS.get(self.type, set())
        for field in _OPTIONAL:
            if field not in used and getattr(self, field) is not None:
                raise ValueError(f"'{field}' does not apply to task type {self.type!r}")
        if "target" in used and self.target is None:
            raise ValueError(f"task type {self.type!r} needs 'target'")
        if "region" in used and self.region is None:
            raise ValueError(f"task type {self.type!r} needs 'region'")
        if self.target is not None and self.target == self.object:
            raise ValueError("target: must differ from 'object'")
        return self

    def resolved_init_states(self, scene_name: str, base_dir: str | Path | None = None) -> Path:
        """The init-state file: ``init_states`` or ``<base_dir>/init_states/<name>.json``."""
        if self.init_states is not None:
            return self.init_states
        return Path(base_dir or ".") / "init_states" / f"{self.name or scene_name}.json"


#: Object shapes a task can reason about (centred primitives with known half extents).
TASK_SHAPES = ("box", "sphere", "cylinder", "capsule")


def check_task_refs(task: TaskCfg, scene, base_dir=None) -> None:
    """Check ``task`` against ``scene`` (a SceneCfg), fill its defaults and add its region marker.

    Raises ValueError with a ``task.<field>: ...`` message (the loader turns it into one line).
    """
    objects = {o.name: o for o in scene.objects}
    known = ", ".join(objects) or "none"
    for field in ("object", "target"):
        name = getattr(task, field)
        if name is None:
            continue
        obj = objects.get(name)
        if obj is None:
            raise ValueError(f"task.{field}: unknown object {name!r}; scene objects: {known}")
        if obj.shape not in TASK_SHAPES:
            raise ValueError(f"task.{field}: object {name!r} is a {obj.shape}; tasks use {', '.join(TASK_SHAPES)}")
        if (field == "object" or task.type == "stack") and not obj.dynamic:
            raise ValueError(f"task.{field}: object {name!r} must be dynamic (a rigid body)")
    if task.type == "stack":
        for field in ("object", "target"):
            if objects[getattr(task, field)].shape != "box":
                raise ValueError(f"task.{field}: stack needs box objects (cubes)")
    if not scene.table.enabled:
        raise ValueError("task: tasks need the table (scene.table.enabled: true)")
    if task.name is None:
        task.name = scene.name
    if task.init_states is None and base_dir is not None:
        task.init_states = (Path(base_dir) / "init_states" / f"{task.name}.json").resolve()
    if task.region is not None:
        region = task.region
        if region.name in objects:
            raise ValueError(f"task.region.name: {region.name!r} is already a scene object")
        marker = MarkerCfg(
            name=region.name,
            position=(region.center[0], region.center[1], scene.table.size[2] + REGION_THICKNESS / 2),
            size=(region.size[0], region.size[1], REGION_THICKNESS),
            color=region.color,
            label="target_region",
        )
        existing = next((m for m in scene.markers if m.name == region.name), None)
        if existing is None:
            scene.markers.append(marker)
        elif (existing.position[:2], existing.size[:2]) != (marker.position[:2], marker.size[:2]):
            raise ValueError(f"task.region: scene.markers has a different {region.name!r}; remove one of them")


REGION_THICKNESS = 0.002
"""Region markers are 2 mm slabs lying on the table top [m]."""
