"""Config -> USD stage: robot, table, floor, objects, materials, lights, cameras, labels, physics."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from vlatwin.errors import ConfigError, VlatwinError
from vlatwin.utils.files import ensure_writable_folder
from vlatwin.usd.lights_cameras import spawn_camera, spawn_lidar, spawn_light
from vlatwin.usd.markers import author_markers
from vlatwin.usd.materials import bind_material, define_material
from vlatwin.usd.mesh_assets import reference_environment, relocated_root_layer, spawn_mesh_object
from vlatwin.usd.robot import author_dynamics, author_robot, placeholder_robot, reference_robot
from vlatwin.usd.semantics import add_class_label
from vlatwin.usd.shapes import read_obj_vertices, spawn_gprim
from vlatwin.usd.stage import WORLD_PATH, new_stage, pxr, round_authored, set_local_pose
from vlatwin.utils.transforms import rot_z, rpy_deg_to_matrix

PHYSICS_SCENE_PATH = f"{WORLD_PATH}/PhysicsScene"
OBJECTS_PATH = f"{WORLD_PATH}/Objects"
TABLE_PATH = f"{WORLD_PATH}/Table"
FLOOR_PATH = f"{WORLD_PATH}/Floor"


def build_scene(scene, *, asset_dir: str | Path | None = None):
    """Author ``scene`` (a :class:`SceneCfg`) into a new in-memory stage and return it.

    Args:
        asset_dir: folder the stage will be saved in; external robot references are written relative
            to it so the saved file can move together with its assets (environment references are made
            relative when the stage is saved, see :func:`export_stage`).
    """
    pxr()
    from pxr import UsdGeom

    stage = new_stage()
    _author_physics_scene(stage, scene.physics)

    materials_cfg = scene.all_materials()
    used = {scene.table.material, scene.floor.material, *(o.material for o in scene.objects if o.color is None)}
    materials = {name: define_material(stage, name, materials_cfg[name]) for name in sorted(used)}

    if scene.floor.enabled:
        floor = spawn_gprim(stage, FLOOR_PATH, "plane", size=scene.floor.size)
        bind_material(floor, materials[scene.floor.material], materials_cfg[scene.floor.material].color)
        if scene.floor.label:
            add_class_label(floor, scene.floor.label)

    if scene.table.enabled:
        _author_table(stage, scene.table, materials[scene.table.material], materials_cfg[scene.table.material].color)

    _author_robot(stage, scene, asset_dir)

    if scene.objects:
        UsdGeom.Scope.Define(stage, OBJECTS_PATH)
    for obj in scene.objects:
        _author_object(stage, obj, materials, materials_cfg)
    for i, env in enumerate(scene.environment):
        reference_environment(stage, env, field=f"scene.environment[{i}]")
    author_markers(stage, scene.markers)

    for light in scene.effective_lights():
        spawn_light(stage, light)
    for camera in scene.cameras:
        spawn_camera(stage, camera)
    for i, lidar in enumerate(scene.lidars):
        if lidar.parent is not None:
            _check_lidar_parent(stage, lidar.parent, f"scene.lidars[{i}].parent")
        spawn_lidar(stage, lidar)
    return stage


def _check_lidar_parent(stage, path: str, field: str) -> None:
    from pxr import Sdf, UsdPhysics

    prim = stage.GetPrimAtPath(path) if Sdf.Path.IsValidPathString(path) else None
    if prim is None or not prim.IsValid() or not prim.HasAPI(UsdPhysics.RigidBodyAPI):
        bodies = [str(p.GetPath()) for p in stage.Traverse() if p.HasAPI(UsdPhysics.RigidBodyAPI)]
        raise ConfigError(f"{field}: {path} is not a rigid body of the scene; e.g. {', '.join(bodies[:4])}")


def build_robot_asset(name: str = "panda"):
    """A stage holding only a built-in robot at the origin, its root prim as defaultPrim (for referencing)."""
    from vlatwin.robots import get_builtin_robot

    stage = new_stage()
    stage.RemovePrim(WORLD_PATH)
    robot = get_builtin_robot(name)
    author_robot(stage, f"/{name}", robot)
    add_class_label(stage.GetPrimAtPath(f"/{name}"), "robot")
    stage.SetDefaultPrim(stage.GetPrimAtPath(f"/{name}"))
    # A physics scene outside the default prim lets the asset simulate when opened on its own;
    # a referencing stage brings its own.
    from vlatwin.config.scene_cfg import PhysicsCfg

    _author_physics_scene(stage, PhysicsCfg(), path="/physicsScene")
    return stage


def write_scene(scene, out_path: str | Path, *, source: str | Path | None = None) -> Path:
    """Build ``scene`` and save it to ``out_path`` (.usda / .usd / .usdc) atomically.

    ``source`` (the config file) prefixes errors found while authoring, like the loader's errors.
    """
    out_path = Path(out_path)
    _check_output_path(out_path)
    try:
        stage = build_scene(scene, asset_dir=(out_path.parent if str(out_path.parent) else Path(".")).resolve())
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None
    return export_stage(stage, out_path)


def export_stage(stage, out_path: str | Path) -> Path:
    """Save ``stage`` to ``out_path`` via a temp file + rename, so a crash never leaves a half-written file."""
    out_path = Path(out_path)
    _check_output_path(out_path)
    out_dir = out_path.parent if str(out_path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{out_path.stem}.", suffix=out_path.suffix)
    os.close(fd)
    # Environment references are absolute in memory; the saved file gets them relative to its folder.
    layer = relocated_root_layer(stage, out_dir) or stage.GetRootLayer()
    try:
        if not layer.Export(tmp):
            raise VlatwinError(f"{out_path}: USD export failed")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


def _check_output_path(out_path: Path) -> None:
    if out_path.is_dir():
        raise VlatwinError(f"{out_path}: is a directory; give a file name such as {out_path / 'scene.usda'}")
    if out_path.suffix not in (".usda", ".usd", ".usdc"):
        raise VlatwinError(f"{out_path}: output must end in .usda, .usd or .usdc")
    ensure_writable_folder(out_path.parent if str(out_path.parent) else Path("."), name=str(out_path))


def _author_physics_scene(stage, physics, *, path: str = PHYSICS_SCENE_PATH) -> None:
    from pxr import Gf, Sdf, UsdPhysics

    scene = UsdPhysics.Scene.Define(stage, path)
    gravity = np.asarray(physics.gravity, dtype=float)
    magnitude = float(np.linalg.norm(gravity))
    direction = gravity / magnitude if magnitude > 0 else np.array([0.0, 0.0, -1.0])
    scene.CreateGravityDirectionAttr(Gf.Vec3f(*round_authored(direction)))
    scene.CreateGravityMagnitudeAttr(round_authored(magnitude))
    # The step rate PhysX (physxScene:) and Newton both read; usd-core has no PhysxSchema, so custom.
    scene.GetPrim().CreateAttribute("physxScene:timeStepsPerSecond", Sdf.ValueTypeNames.UInt, custom=True).Set(
        int(round(1.0 / physics.dt))
    )


def _author_table(stage, table, material, color) -> None:
    from pxr import UsdGeom

    depth, width, height = table.size
    cx, cy = table.position
    root = UsdGeom.Xform.Define(stage, TABLE_PATH)
    set_local_pose(root, pos=(cx, cy, 0.0))
    parts = [("top", (0.0, 0.0, height - table.top_thickness / 2), (depth, width, table.top_thickness))]
    leg = 0.05
    leg_height = height - table.top_thickness
    for i, (sx, sy) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
        pos = (sx * (depth / 2 - leg), sy * (width / 2 - leg), leg_height / 2)
        parts.append((f"leg_{i}", pos, (leg, leg, leg_height)))
    for name, pos, size in parts:
        prim = spawn_gprim(stage, f"{TABLE_PATH}/{name}", "box", size=size, pos=pos)
        bind_material(prim, material, color)
    if table.label:
        add_class_label(root.GetPrim(), table.label)


def _author_robot(stage, scene, asset_dir) -> None:
    from vlatwin.robots import get_builtin_robot

    cfg = scene.robot
    path = f"{WORLD_PATH}/{cfg.name}"
    base_rot = rot_z(np.deg2rad(cfg.yaw_deg))
    if cfg.source == "builtin":
        robot = get_builtin_robot(cfg.builtin)
        if cfg.home_joint_positions:
            try:
                robot = robot.with_home(cfg.home_joint_positions)
            except KeyError as exc:
                raise ConfigError(f"scene.robot.home_joint_positions: {exc.args[0]}") from None
            for joint in robot.joints:
                if not joint.lower <= joint.home <= joint.upper:
                    raise ConfigError(
                        f"scene.robot.home_joint_positions.{joint.name}: {joint.home:.4f} is outside the joint "
                        f"limits [{joint.lower:.4f}, {joint.upper:.4f}]"
                    )
        if cfg.drive.stiffness is not None or cfg.drive.damping is not None:
            from dataclasses import replace

            robot = replace(
                robot,
                joints=tuple(
                    replace(
                        j,
                        stiffness=cfg.drive.stiffness or j.stiffness,
                        damping=j.damping if cfg.drive.damping is None else cfg.drive.damping,
                    )
                    if j.name in robot.arm_joint_names
                    else j
                    for j in robot.joints
                ),
            )
        author_robot(stage, path, robot, base_pos_w=scene.robot_base_position(), base_rot_w=base_rot)
    else:
        asset = Path(cfg.path)
        asset_path = os.path.relpath(asset, asset_dir) if asset_dir is not None else str(asset)
        if cfg.source == "usd":
            _check_usd_file(asset)
            reference_robot(
                stage, path, asset_path, base_pos_w=scene.robot_base_position(), base_rot_w=base_rot, asset_file=asset
            )
        else:
            placeholder_robot(
                stage,
                path,
                cfg.source,
                asset_path,
                base_pos_w=scene.robot_base_position(),
                base_rot_w=base_rot,
                drive_stiffness=cfg.drive.stiffness,
                drive_damping=cfg.drive.damping,
            )
    if cfg.dynamics.joints or cfg.dynamics.links:
        if cfg.source in ("urdf", "mjcf"):
            raise ConfigError(
                f"scene.robot.dynamics: not supported for source {cfg.source!r} (the robot is imported from the file "
                "at load, so the stage has no joints to author on); convert the robot to USD"
            )
        # Identified parameters go over the robot's own (and over scene.robot.drive).
        author_dynamics(stage, path, cfg.dynamics, field="scene.robot.dynamics", error=ConfigError)
    if cfg.label:
        add_class_label(stage.GetPrimAtPath(path), cfg.label)


def _check_usd_file(path: Path) -> None:
    from pxr import Sdf, Tf

    try:
        layer = Sdf.Layer.FindOrOpen(str(path))
    except Tf.ErrorException as exc:
        raise ConfigError(f"scene.robot.path: {path}: not a readable USD file ({str(exc).strip().splitlines()[-1]})") from None
    if layer is None:
        raise ConfigError(f"scene.robot.path: {path}: not a readable USD file")
    if not layer.defaultPrim:
        raise ConfigError(f"scene.robot.path: {path}: has no defaultPrim to reference; set one in that file")


def _author_object(stage, obj, materials, materials_cfg) -> None:
    from pxr import UsdGeom, UsdPhysics

    from vlatwin.config.scene_cfg import MaterialCfg
    from vlatwin.usd.materials import define_material

    path = f"{OBJECTS_PATH}/{obj.name}"
    body = UsdGeom.Xform.Define(stage, path)
    set_local_pose(body, pos=obj.position, rot=rpy_deg_to_matrix(obj.rpy_deg))
    if obj.dynamic:
        UsdPhysics.RigidBodyAPI.Apply(body.GetPrim())
        mass_api = UsdPhysics.MassAPI.Apply(body.GetPrim())
        if obj.mass is not None:
            mass_api.CreateMassAttr(float(obj.mass))
        elif obj.shape != "mesh":  # mesh objects get computed mass properties (spawn_mesh_object)
            mass_api.CreateDensityAttr(float(obj.density))
    s = obj.scale
    points = None
    collider_parts = []
    if obj.shape == "convex_mesh":
        points = np.asarray(obj.vertices if obj.vertices is not None else read_obj_vertices(obj.mesh_file)) * s
    try:
        if obj.shape == "mesh":
            geom, collider_parts = spawn_mesh_object(stage, path, obj, field=f"scene.objects[{obj.name}]")
        else:
            geom = spawn_gprim(
                stage,
                f"{path}/geom",
                obj.shape,
                size=None if obj.size is None else tuple(v * s for v in obj.size),
                radius=None if obj.radius is None else obj.radius * s,
                height=None if obj.height is None else obj.height * s,
                points=points,
            )
    except ValueError as exc:
        raise ConfigError(f"scene.objects[{obj.name}]: {exc}") from None
    if obj.color is not None:
        material = define_material(stage, f"{obj.name}_color", MaterialCfg(color=obj.color, roughness=0.4))
        color = obj.color
    else:
        material, color = materials[obj.material], materials_cfg[obj.material].color
    for prim in (geom, *collider_parts):  # collider parts need the physics material (friction) too
        bind_material(prim, material, color)
    add_class_label(body.GetPrim(), obj.semantic_label)
    if obj.reflectivity is not None:
        from pxr import Sdf

        body.GetPrim().CreateAttribute("vlatwin:reflectivity", Sdf.ValueTypeNames.Float, custom=True).Set(float(obj.reflectivity))


def regenerate_assets(config_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Rebuild the shipped assets: ``panda.usda`` and ``<config stem>.usda`` in ``out_dir``."""
    from vlatwin.config.loader import load_config

    out_dir = Path(out_dir)
    config = load_config(config_path)
    robot = export_stage(build_robot_asset("panda"), out_dir / "panda.usda")
    scene = write_scene(config.scene, out_dir / f"{Path(config_path).stem}.usda", source=config_path)
    return [robot, scene]
