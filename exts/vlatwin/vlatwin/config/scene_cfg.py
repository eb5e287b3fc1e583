"""Scene configuration: what ``configs/*.yaml`` describe under ``scene:``.

Units: lengths [m], masses [kg], angles [deg] where a name ends in ``_deg``, colours linear RGB 0..1.
World frame: Z up, meters (the authored USD stage uses the same).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from vlatwin.config.base import StrictModel, resolve_existing_file
from vlatwin.config.generate_cfg import GenerateCfg
from vlatwin.config.task_cfg import MarkerCfg, TaskCfg
from vlatwin.config.types import (
    MAX_CLIP_DISTANCE,
    MAX_DENSITY,
    MAX_EXPOSURE,
    MAX_FRICTION,
    MAX_GAIN,
    MAX_INTENSITY,
    MAX_MASS,
    MAX_RESOLUTION,
    MAX_SCALE,
    MAX_SIZE,
    AnglesDeg3,
    ColorRGB,
    PositiveVec2,
    PositiveVec3,
    Vec2,
    Vec3,
    check_lidar_profile_bounds,
)

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""Names become USD prim names, so they follow USD identifier rules."""


class MaterialCfg(StrictModel):
    """A UsdPreviewSurface material plus its physics (friction) properties."""

    color: ColorRGB
    """Diffuse colour, linear RGB."""
    roughness: float = Field(0.5, ge=0.0, le=1.0)
    metallic: float = Field(0.0, ge=0.0, le=1.0)
    reflectivity: float | None = Field(None, ge=0.0, le=1.0)
    """LIDAR reflectivity (0..1); authored as ``vlatwin:reflectivity`` on the material."""
    static_friction: float = Field(0.8, ge=0.0, le=MAX_FRICTION)
    dynamic_friction: float = Field(0.6, ge=0.0, le=MAX_FRICTION)
    restitution: float = Field(0.0, ge=0.0, le=1.0)


#: Materials every scene can use without declaring them.
DEFAULT_MATERIALS: dict[str, MaterialCfg] = {
    "wood": MaterialCfg(color=(0.45, 0.28, 0.14), roughness=0.7),
    "floor_grey": MaterialCfg(color=(0.35, 0.35, 0.37), roughness=0.9),
    "metal": MaterialCfg(color=(0.6, 0.6, 0.62), roughness=0.3, metallic=1.0),
    "red_plastic": MaterialCfg(color=(0.8, 0.05, 0.05), roughness=0.4),
    "green_plastic": MaterialCfg(color=(0.05, 0.6, 0.1), roughness=0.4),
    "blue_plastic": MaterialCfg(color=(0.05, 0.15, 0.8), roughness=0.4),
    "yellow_plastic": MaterialCfg(color=(0.9, 0.75, 0.05), roughness=0.4),
    "orange_plastic": MaterialCfg(color=(0.95, 0.4, 0.05), roughness=0.4),
    "purple_plastic": MaterialCfg(color=(0.45, 0.1, 0.6), roughness=0.4),
    "white_plastic": MaterialCfg(color=(0.85, 0.85, 0.85), roughness=0.4),
}


class PhysicsCfg(StrictModel):
    """Physics scene and solver settings."""

    dt: float = Field(1.0 / 600.0, gt=0.0, le=0.05)
    """Physics step [s], 1e-6 (1 MHz) to 0.05."""
    gravity: Vec3 = (0.0, 0.0, -9.81)
    """Gravity vector in the world frame [m/s^2]."""

    @field_validator("dt")
    @classmethod
    def _dt_floor(cls, value):
        if value < 1e-6:
            raise ValueError(f"expected at least 1e-06 s (a 1 MHz step rate), got {value!r}")
        return value
    solver: Literal["xpbd", "vbd"] = "xpbd"
    """Newton solver. ``xpbd`` (default): fastest on CPU and differentiable; its drives converge slowly
    on some joint combinations. ``vbd``: tracks joint targets within ~1 mrad, ~40 % slower, no gradients
    (experimental in Newton 1.8)."""
    iterations: int = Field(4, ge=1, le=100)
    """Solver iterations per step."""


class DriveCfg(StrictModel):
    """Overrides for the robot's arm drive gains (per radian, as Newton and PhysX use internally)."""

    stiffness: float | None = Field(None, gt=0.0, le=MAX_GAIN)
    """[N*m/rad]; USD stores it per degree."""
    damping: float | None = Field(None, ge=0.0, le=MAX_GAIN)
    """[N*m*s/rad]"""


class JointDynamicsCfg(StrictModel):
    """Identified parameters of one robot joint; units per radian (revolute) or per metre (prismatic).

    USD stores the angular gains and passive damping per degree; the scene build converts them.
    """

    drive_stiffness: float | None = Field(None, gt=0.0, le=MAX_GAIN)
    """Drive position gain [N*m/rad | N/m]."""
    drive_damping: float | None = Field(None, ge=0.0, le=MAX_GAIN)
    """Drive velocity gain [N*m*s/rad | N*s/m]."""
    damping: float | None = Field(None, ge=0.0, le=MAX_GAIN)
    """Passive viscous damping, always active [N*m*s/rad | N*s/m]."""
    friction: float | None = Field(None, ge=0.0, le=MAX_GAIN)
    """Coulomb friction [N*m | N] (a torque or force, not a coefficient)."""
    armature: float | None = Field(None, ge=0.0, le=MAX_MASS)
    """Rotor (reflected) inertia [kg*m^2 | kg]."""


class LinkDynamicsCfg(StrictModel):
    """Identified parameters of one robot link."""

    mass: float | None = Field(None, gt=0.0, le=MAX_MASS)
    """[kg]; the link's inertia scales by the same factor (same density)."""


class DynamicsCfg(StrictModel):
    """Identified robot parameters by joint / link name (``vlatwin sysid fit`` writes this block).

    Names are the last component of the joint / link prim path; unknown names fail the scene build.
    """

    joints: dict[str, JointDynamicsCfg] = {}
    links: dict[str, LinkDynamicsCfg] = {}


class RobotCfg(StrictModel):
    """The robot: a built-in description or an external USD/URDF/MJCF file."""

    source: Literal["builtin", "usd", "urdf", "mjcf"] = "builtin"
    builtin: Literal["panda"] = "panda"
    """Built-in robot (``source: builtin``)."""
    path: Path | None = None
    """Robot file for ``usd`` / ``urdf`` / ``mjcf`` sources (relative to the config file)."""
    name: str = Field("Robot", pattern=NAME_PATTERN)
    """Prim name under /World."""
    position: Vec3 | None = None
    """Base position in the world [m]; by default the robot stands on the table top at x = y = 0."""
    yaw_deg: float = Field(0.0, ge=-360.0, le=360.0)
    """Base rotation about world Z [deg]."""
    home_joint_positions: dict[str, Annotated[float, Field(ge=-MAX_SIZE, le=MAX_SIZE)]] | None = None
    """Home pose by joint name [rad | m]; unnamed joints keep the robot's default."""
    drive: DriveCfg = DriveCfg()
    dynamics: DynamicsCfg = DynamicsCfg()
    """Identified joint / link parameters; authored after (and over) ``drive``."""
    label: str = "robot"
    """Semantic class."""

    @field_validator("path")
    @classmethod
    def _path_exists(cls, value, info: ValidationInfo):
        return resolve_existing_file(value, info)

    @model_validator(mode="after")
    def _source_fields(self):
        if self.source != "builtin" and self.path is None:
            raise ValueError(f"'path' is required when source is {self.source!r}")
        if self.source == "builtin" and self.path is not None:
            raise ValueError("'path' is only used with source usd/urdf/mjcf; remove it or set source")
        return self


class TableCfg(StrictModel):
    """A static table: a top slab on four legs, standing on the floor."""

    enabled: bool = True
    size: PositiveVec3 = (1.0, 1.2, 0.75)
    """Full extents [m]: depth (x), width (y), height (z, floor to top surface)."""
    position: Vec2 = (0.4, 0.0)
    """Centre of the top in the world XY plane [m]."""
    top_thickness: float = Field(0.04, gt=0.0, le=MAX_SIZE)
    material: str = "wood"
    label: str | None = "table"

    @model_validator(mode="after")
    def _thinner_than_tall(self):
        if self.top_thickness >= self.size[2]:
            raise ValueError(f"top_thickness: expected less than the table height size[2] = {self.size[2]:g} m")
        return self


class FloorCfg(StrictModel):
    """A static ground plane at z = 0 (infinite for physics)."""

    enabled: bool = True
    size: PositiveVec2 = (6.0, 6.0)
    """Visible extent [m]."""
    material: str = "floor_grey"
    label: str | None = "floor"


class ObjectCfg(StrictModel):
    """A rigid object. Shape parameters depend on ``shape``."""

    name: str = Field(pattern=NAME_PATTERN)
    shape: Literal["box", "sphere", "cylinder", "capsule", "convex_mesh", "mesh"]
    size: PositiveVec3 | None = None
    """Box full extents [m]."""
    radius: float | None = Field(None, gt=0.0, le=MAX_SIZE)
    """Sphere/cylinder/capsule radius [m]."""
    height: float | None = Field(None, gt=0.0, le=MAX_SIZE)
    """Cylinder height / capsule cylindrical length (without caps) [m], along the object's Z."""
    vertices: list[Vec3] | None = None
    """Convex mesh points in the object frame [m]; the convex hull is used."""
    mesh_file: Path | None = None
    """``convex_mesh``: a Wavefront .obj (vertices only; the convex hull is used). ``mesh``: the visual mesh,
    .obj/.stl/.ply/.glb/.gltf (trimesh) or .usd/.usda/.usdc (every visible mesh under the default prim, with
    its transform). Meters and Z up, except glTF (Y up) and USD (the file's ``metersPerUnit``/``upAxis``);
    the file's origin is the object frame."""
    collision: Literal["convex_hull", "convex_decomposition", "none"] | None = None
    """``mesh`` only. ``convex_hull`` (default): one hull. ``convex_decomposition``: convex pieces from CoACD
    (``pip install coacd``), for hollow or concave objects. ``none``: visual only (needs ``dynamic: false``)."""
    max_hulls: int | None = Field(None, ge=1, le=256)
    """``collision: convex_decomposition`` only: most convex pieces (default 32)."""
    up_axis: Literal["Y", "Z"] | None = None
    """``mesh`` only: the file's up axis when it is not the default for its type (Y is rotated to Z)."""
    scale: float = Field(1.0, gt=0.0, le=MAX_SCALE)
    """Uniform scale applied to the shape parameters (for ``mesh``: file units to meters, e.g. 0.001 for mm)."""
    position: Vec3
    """Centre in the world [m] (for ``convex_mesh`` and ``mesh``: where the object frame's origin goes)."""
    rpy_deg: AnglesDeg3 = (0.0, 0.0, 0.0)
    """Orientation as roll, pitch, yaw [deg] (extrinsic X, Y, Z)."""
    mass: float | None = Field(None, gt=0.0, le=MAX_MASS)
    """[kg]; when omitted, ``density`` is used."""
    density: float = Field(500.0, gt=0.0, le=MAX_DENSITY)
    """[kg/m^3]"""
    dynamic: bool = True
    """False makes a static collider."""
    material: str = "red_plastic"
    """Material name (see ``materials``); ignored when ``color`` is given."""
    color: ColorRGB | None = None
    """Shortcut for a plastic material of this linear RGB colour."""
    label: str | None = None
    """Semantic class (defaults to the object's name)."""
    reflectivity: float | None = Field(None, ge=0.0, le=1.0)
    """LIDAR reflectivity (0..1); overrides the material's."""

    @field_validator("mesh_file")
    @classmethod
    def _mesh_exists(cls, value, info: ValidationInfo):
        return resolve_existing_file(value, info)

    @model_validator(mode="after")
    def _shape_fields(self):
        required = {
            "box": ("size",),
            "sphere": ("radius",),
            "cylinder": ("radius", "height"),
            "capsule": ("radius", "height"),
            "convex_mesh": (),
            "mesh": ("mesh_file",),
        }[self.shape]
        for field in required:
            if getattr(self, field) is None:
                raise ValueError(f"shape {self.shape!r} needs '{field}'")
        allowed = set(required) | ({"vertices", "mesh_file"} if self.shape == "convex_mesh" else set())
        for field in ("size", "radius", "height", "vertices", "mesh_file"):
            if field not in allowed and getattr(self, field) is not None:
                raise ValueError(f"'{field}' does not apply to shape {self.shape!r}")
        if self.shape == "convex_mesh":
            if (self.vertices is None) == (self.mesh_file is None):
                raise ValueError("shape 'convex_mesh' needs exactly one of 'vertices' or 'mesh_file'")
            if self.vertices is not None and len(self.vertices) < 4:
                raise ValueError("a convex mesh needs at least 4 non-coplanar vertices")
        if self.shape != "mesh":
            for field in ("collision", "max_hulls", "up_axis"):
                if getattr(self, field) is not None:
                    raise ValueError(f"'{field}' only applies to shape 'mesh'")
        else:
            from vlatwin.usd.mesh_assets import MESH_SUFFIXES

            if self.mesh_file.suffix.lower() not in MESH_SUFFIXES:
                raise ValueError(
                    f"mesh_file: unsupported mesh file type {self.mesh_file.suffix or '(none)'!r}; "
                    f"use one of {', '.join(MESH_SUFFIXES)}"
                )
            if self.max_hulls is not None and self.collision != "convex_decomposition":
                raise ValueError("max_hulls: only applies to collision 'convex_decomposition'")
            if self.collision == "none" and self.dynamic:
                raise ValueError("collision: 'none' needs dynamic: false (a body without a collider falls through everything)")
        return self

    @property
    def collision_mode(self) -> str:
        """How a ``mesh`` object collides (``collision`` or its default, ``convex_hull``)."""
        return self.collision or "convex_hull"

    @property
    def semantic_label(self) -> str:
        return self.label if self.label is not None else self.name


class EnvironmentCfg(StrictModel):
    """Static geometry referenced from a USD file, e.g. the CAD of the robot cell.

    Every drawn gprim collides (``collide``); rigid bodies in the file become static colliders, its joints
    and physics scenes are switched off (in the scene's layer; the file is not edited). Labels authored in
    the file are kept.
    """

    path: Path
    """.usd / .usda / .usdc file (relative to the config); its default prim (else first root prim) is used."""
    name: str | None = Field(None, pattern=NAME_PATTERN)
    """Prim name under /World/Environment (default: the file name, made a valid identifier)."""
    position: Vec3 = (0.0, 0.0, 0.0)
    """Where the file's origin goes in the world [m]."""
    rpy_deg: AnglesDeg3 = (0.0, 0.0, 0.0)
    """Orientation as roll, pitch, yaw [deg] (extrinsic X, Y, Z)."""
    scale: float = Field(1.0, gt=0.0, le=MAX_SCALE)
    """Uniform scale on top of the file's own ``metersPerUnit`` (a Y-up file is also rotated to Z up)."""
    label: str | None = None
    """Semantic class for everything in the file that has no label of its own."""
    collide: bool = True
    """Give drawn gprims without a collider one. Meshes keep their approximation, or none (exact static
    triangle meshes in Isaac Sim; the Newton backend uses each such mesh's convex hull, with a warning)."""

    @field_validator("path")
    @classmethod
    def _usd_file(cls, value, info: ValidationInfo):
        path = resolve_existing_file(value, info)
        if path.suffix.lower() not in (".usd", ".usda", ".usdc"):
            raise ValueError(f"expected a .usd, .usda or .usdc file, got {path.name}")
        return path

    @property
    def prim_name(self) -> str:
        """``name``, else the file name as a USD identifier."""
        if self.name is not None:
            return self.name
        import re

        stem = re.sub(r"[^A-Za-z0-9_]", "_", self.path.stem)
        return stem if re.match(NAME_PATTERN, stem) else f"_{stem}"


class LightCfg(StrictModel):
    """A UsdLux light."""

    name: str = Field(pattern=NAME_PATTERN)
    type: Literal["distant", "dome", "sphere", "rect"]
    intensity: float = Field(gt=0.0, le=MAX_INTENSITY)
    """UsdLux intensity: luminance of the emitter [nit]; for a distant light the illuminance it gives [lux]
    (authored with ``inputs:normalize``). Isaac Sim's RTX and vlatwin's Cycles camera read the same units."""
    exposure: float = Field(0.0, ge=-MAX_EXPOSURE, le=MAX_EXPOSURE)
    """[EV]: the light is scaled by 2^exposure."""
    color: ColorRGB = (1.0, 1.0, 1.0)
    position: Vec3 = (0.0, 0.0, 0.0)
    """[m] (sphere, rect)."""
    rpy_deg: AnglesDeg3 = (0.0, 0.0, 0.0)
    """Orientation [deg]; a distant or rect light shines along its local -Z."""
    angle_deg: float = Field(0.53, ge=0.0, le=180.0)
    """Angular diameter of a distant light [deg] (soft shadows)."""
    radius: float = Field(0.1, gt=0.0, le=MAX_SIZE)
    """Sphere light radius [m]."""
    width: float = Field(1.0, gt=0.0, le=MAX_SIZE)
    """Rect light width [m]."""
    height: float = Field(1.0, gt=0.0, le=MAX_SIZE)
    """Rect light height [m]."""
    texture: Path | None = None
    """Dome light only: an equirectangular (lat-long) environment image (.hdr, .exr, .png, .jpg), relative
    to the config file; scaled by ``intensity`` [nit] and ``color``. Z is up (the stage's up axis)."""

    @field_validator("texture")
    @classmethod
    def _texture_file(cls, value, info: ValidationInfo):
        from vlatwin.config.base import resolve_existing_file

        return resolve_existing_file(value, info)

    @model_validator(mode="after")
    def _texture_on_dome(self):
        if self.texture is not None and self.type != "dome":
            raise ValueError(f"texture: only a dome light takes an environment image (this light is {self.type!r})")
        return self


class CameraCfg(StrictModel):
    """A pinhole camera looking from ``position`` at ``look_at``.

    Give either ``fov_deg`` (horizontal field of view) or ``focal_length`` (+ ``horizontal_aperture``).
    """

    name: str = Field(pattern=NAME_PATTERN)
    position: Vec3
    """[m], world frame."""
    look_at: Vec3
    """Point the optical axis passes through [m], world frame."""
    up: Vec3 = (0.0, 0.0, 1.0)
    """World direction that appears up in the image (not parallel to the view direction)."""
    resolution: tuple[int, int] = (640, 480)
    """Image width, height [px], each at most 16384."""
    fov_deg: float | None = Field(None, gt=0.0, lt=180.0)
    """Horizontal field of view [deg], at least 0.01."""
    focal_length: float | None = Field(None, gt=0.0, le=1e4)
    """[mm]"""
    horizontal_aperture: float = Field(20.955, gt=0.0, le=1e3)
    """Sensor width [mm] (Isaac Sim's default)."""
    clipping_range: tuple[float, float] = (0.01, 100.0)
    """Near, far [m]; far at most 1e7."""
    f_stop: float = Field(0.0, ge=0.0, le=1e3)
    """Aperture f-number for depth of field (0 = pinhole, everything sharp); used by ``render: cycles``."""
    focus_distance: float = Field(0.0, ge=0.0, le=1e6)
    """Distance to the plane in focus [m] (0 = the look-at point)."""

    @field_validator("resolution")
    @classmethod
    def _positive_resolution(cls, value):
        if value[0] <= 0 or value[1] <= 0:
            raise ValueError("expected 2 positive integers [width, height]")
        if max(value) > MAX_RESOLUTION:
            raise ValueError(f"expected 2 positive integers [width, height] of at most {MAX_RESOLUTION}")
        return value

    @field_validator("fov_deg")
    @classmethod
    def _fov_floor(cls, value):
        if value is not None and value < 0.01:
            raise ValueError(f"expected at least 0.01 deg, got {value!r}")
        return value

    @field_validator("clipping_range")
    @classmethod
    def _clipping(cls, value):
        if not 0.0 < value[0] < value[1]:
            raise ValueError("expected [near, far] with 0 < near < far")
        if value[1] > MAX_CLIP_DISTANCE:
            raise ValueError(f"expected [near, far] with far at most {MAX_CLIP_DISTANCE:g} m")
        return value

    @model_validator(mode="after")
    def _lens(self):
        if self.fov_deg is not None and self.focal_length is not None:
            raise ValueError("give either 'fov_deg' or 'focal_length', not both")
        if self.fov_deg is None and self.focal_length is None:
            self.fov_deg = 60.0
        view = [a - b for a, b in zip(self.look_at, self.position)]
        if sum(c * c for c in view) < 1e-12:
            raise ValueError("'position' and 'look_at' coincide")
        # Same test as look_at_matrix: |up x view| must not vanish (coordinates are bounded, so no overflow).
        norm = math.sqrt(sum(c * c for c in view))
        up_len = math.sqrt(sum(c * c for c in self.up))
        u = self.up
        cross = (u[1] * view[2] - u[2] * view[1], u[2] * view[0] - u[0] * view[2], u[0] * view[1] - u[1] * view[0])
        if up_len == 0.0 or math.sqrt(sum(c * c for c in cross)) < 1e-6 * norm * up_len:
            raise ValueError("up: expected a direction not parallel to the view direction (look_at - position)")
        return self

    @property
    def focal_length_mm(self) -> float:
        """Focal length [mm] derived from the field of view when needed."""
        if self.focal_length is not None:
            return self.focal_length
        return self.horizontal_aperture / (2.0 * math.tan(math.radians(self.fov_deg) / 2.0))

    @property
    def vertical_aperture(self) -> float:
        """Sensor height [mm] for square pixels."""
        return self.horizontal_aperture * self.resolution[1] / self.resolution[0]


class LidarCfg(StrictModel):
    """A LIDAR: a built-in profile name (e.g. ``OS1-128``) or an inline profile, and its mounting pose."""

    name: str = Field(pattern=NAME_PATTERN)
    profile: str | dict
    """Built-in profile name, or a mapping with the fields of :class:`LidarProfile`."""
    position: Vec3
    """Sensor origin [m]: world frame, or the parent body's frame when ``parent`` is set."""
    rpy_deg: AnglesDeg3 = (0.0, 0.0, 0.0)
    """Orientation [deg]; the sensor looks along its +X with +Z up."""
    parent: str | None = None
    """Prim path of a rigid body the sensor rides on (e.g. /World/Robot/panda_link7)."""
    blocks: int = Field(10, ge=1, le=1000)
    """Column blocks per scan cast at their own times (motion-distortion time resolution)."""
    noise: bool = True
    """False gives an ideal sensor (no range noise, jitter or dropout)."""
    isaac_profile: str | None = None
    """Built-in profile used on the isaacsim backend instead of ``profile`` (one with an Isaac Sim RTX config)."""

    @field_validator("isaac_profile")
    @classmethod
    def _isaac_profile(cls, value):
        if value is not None:
            from vlatwin.sensors.lidar.profiles import require_isaac_profile, resolve_profile

            require_isaac_profile(resolve_profile(value))
        return value

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value):
        from vlatwin.sensors.lidar.profiles import resolve_profile

        if isinstance(value, dict):
            from pydantic import ValidationError

            from vlatwin.config.loader import _message
            from vlatwin.sensors.lidar.profiles import LidarProfile

            try:
                profile = resolve_profile(value)
            except ValidationError as exc:
                raise ValueError(_message(exc.errors(include_url=False)[0], LidarProfile)) from None
        else:
            profile = resolve_profile(value)
        check_lidar_profile_bounds(profile)
        return value

    @property
    def resolved_profile(self):
        from vlatwin.sensors.lidar.profiles import resolve_profile

        return resolve_profile(self.profile)

    @property
    def isaac_resolved_profile(self):
        """The profile the isaacsim backend runs (``isaac_profile`` or ``profile``); one-line error if Isaac has none."""
        from vlatwin.sensors.lidar.profiles import require_isaac_profile, resolve_profile

        if self.isaac_profile is not None:
            return resolve_profile(self.isaac_profile)
        return require_isaac_profile(self.resolved_profile, field=f"scene.lidars.{self.name}.profile")


class SceneCfg(StrictModel):
    """A robot cell: robot, table, floor, objects, materials, lights and cameras."""

    name: str = Field("scene", pattern=NAME_PATTERN)
    physics: PhysicsCfg = PhysicsCfg()
    robot: RobotCfg = RobotCfg()
    table: TableCfg = TableCfg()
    floor: FloorCfg = FloorCfg()
    objects: list[ObjectCfg] = []
    materials: dict[str, MaterialCfg] = {}
    """Extra materials by name (the defaults in :data:`DEFAULT_MATERIALS` are always available)."""
    lights: list[LightCfg] | None = None
    """Lights; when omitted, a key distant light plus a dome light are added (``[]`` means none)."""
    cameras: list[CameraCfg] = []
    lidars: list[LidarCfg] = []
    markers: list[MarkerCfg] = []
    """Visual-only boxes under /World/Targets (no collider), e.g. a task's target region."""
    environment: list[EnvironmentCfg] = []
    """Static geometry from USD files under /World/Environment (one mapping or a list)."""

    @field_validator("environment", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _references(self):
        known = {**DEFAULT_MATERIALS, **self.materials}
        refs = [("table.material", self.table.material), ("floor.material", self.floor.material)]
        refs += [(f"objects[{i}].material", o.material) for i, o in enumerate(self.objects) if o.color is None]
        for where, name in refs:
            if name not in known:
                raise ValueError(f"{where}: unknown material {name!r}; known: {', '.join(sorted(known))}")
        for group, items in (("objects", self.objects), ("lights", self.lights or []), ("cameras", self.cameras), ("lidars", self.lidars), ("markers", self.markers)):
            seen: set[str] = set()
            for i, item in enumerate(items):
                if item.name in seen:
                    raise ValueError(f"{group}[{i}].name: duplicate name {item.name!r}")
                seen.add(item.name)
        names = [env.prim_name for env in self.environment]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"environment[{i}].name: duplicate name {name!r}; give each entry its own 'name'")
        return self

    def effective_lights(self) -> list[LightCfg]:
        """The configured lights, or the default key + dome pair when none were configured."""
        if self.lights is not None:
            return list(self.lights)
        return [
            LightCfg(name="key_light", type="distant", intensity=3000.0, rpy_deg=(35.0, 20.0, -30.0)),
            LightCfg(name="dome_light", type="dome", intensity=600.0),
        ]

    def robot_base_position(self) -> tuple[float, float, float]:
        """Where the robot base stands [m]: as configured, else on the table top (or the floor) at x = y = 0."""
        if self.robot.position is not None:
            return self.robot.position
        return (0.0, 0.0, self.table.size[2] if self.table.enabled else 0.0)

    def all_materials(self) -> dict[str, MaterialCfg]:
        """Default materials overlaid with the scene's own."""
        return {**DEFAULT_MATERIALS, **self.materials}


class VlatwinConfig(StrictModel):
    """Top level of a ``configs/*.yaml`` file."""

    scene: SceneCfg = SceneCfg()
    generate: GenerateCfg = GenerateCfg()
    """Synthetic-data run settings (``vlatwin generate``)."""
    task: TaskCfg | None = None
    """A tabletop task on the scene (:mod:`vlatwin.tasks`); its region marker is added to ``scene.markers``."""

    @model_validator(mode="after")
    def _task_refs(self, info: ValidationInfo):
        if self.task is not None:
            from vlatwin.config.task_cfg import check_task_refs

            check_task_refs(self.task, self.scene, (info.context or {}).get("base_dir"))
        return self

    @model_validator(mode="after")
    def _generate_refs(self):
        names = [c.name for c in self.scene.cameras]
        for name in self.generate.cameras or []:
            if name not in names:
                raise ValueError(f"generate.cameras: unknown camera {name!r}; scene cameras: {', '.join(names) or 'none'}")
        for name in self.generate.camera_options:
            if name not in names:
                raise ValueError(f"generate.camera_options: unknown camera {name!r}; scene cameras: {', '.join(names) or 'none'}")
        return self

