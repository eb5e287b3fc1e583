"""Author a :class:`RobotDescription` as a UsdPhysics articulation.

Layout under the robot prim (e.g. ``/World/Robot``, which carries ArticulationRootAPI and the base pose):
``<link>/`` rigid bodies placed at the home pose with their shapes as children, ``joints/<joint>``
revolute/prismatic joints with drives, ``joints/base_fixed`` welding the base to the world.
Angles are authored the USD way: limits and targets in degrees, angular gains per degree.
"""

from __future__ import annotations

import math

import numpy as np

from vlatwin.usd.materials import bind_material, define_material
from vlatwin.usd.shapes import spawn_gprim
from vlatwin.usd.stage import gf_quatf, round_authored, set_local_pose
from vlatwin.utils.transforms import quat_wxyz_to_matrix

DEG_PER_RAD = 180.0 / math.pi


def author_robot(stage, path: str, robot, *, base_pos_w=(0.0, 0.0, 0.0), base_rot_w: np.ndarray | None = None) -> None:
    """Write ``robot`` at prim ``path`` with its base at ``base_pos_w`` [m] / ``base_rot_w`` (3x3).

    Everything the robot needs (materials, its self-collision filter) lives under ``path`` so the
    prim can be referenced into other stages as one asset.
    """
    from pxr import Gf, Sdf, UsdGeom, UsdPhysics

    from vlatwin.config.scene_cfg import MaterialCfg

    base_rot_w = np.eye(3) if base_rot_w is None else base_rot_w
    root = UsdGeom.Xform.Define(stage, path)
    set_local_pose(root, pos=base_pos_w, rot=base_rot_w)
    UsdPhysics.ArticulationRootAPI.Apply(root.GetPrim())
    materials = {
        color: define_material(stage, f"robot_{i}", MaterialCfg(color=color, roughness=0.35), looks_path=f"{path}/Looks")
        for i, color in enumerate(sorted({link.color for link in robot.links}))
    }

    frames = robot.forward_kinematics()
    link_paths = {}
    for link in robot.links:
        link_path = f"{path}/{link.name}"
        link_paths[link.name] = link_path
        body = UsdGeom.Xform.Define(stage, link_path)
        frame = frames[link.name]
        set_local_pose(body, pos=frame[:3, 3], rot=frame[:3, :3])
        UsdPhysics.RigidBodyAPI.Apply(body.GetPrim())
        UsdPhysics.MassAPI.Apply(body.GetPrim()).CreateMassAttr(round_authored(link.mass))
        for i, shape in enumerate(link.shapes):
            gprim = spawn_gprim(
                stage,
                f"{link_path}/{shape.kind}_{i}",
                shape.kind,
                size=shape.size,
                radius=shape.radius,
                height=shape.height,
                pos=shape.pos_b,
                rot=shape.rot_b,
                collide=shape.collide,
            )
            bind_material(gprim, materials[link.color], link.color)

    UsdGeom.Scope.Define(stage, f"{path}/joints")
    base = UsdPhysics.FixedJoint.Define(stage, f"{path}/joints/base_fixed")
    base.CreateBody1Rel().SetTargets([link_paths[robot.links[0].name]])
    base.CreateLocalPos0Attr(Gf.Vec3f(*round_authored(base_pos_w)))
    base.CreateLocalRot0Attr(gf_quatf(base_rot_w))
    base.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, 0.0))
    base.CreateLocalRot1Attr(Gf.Quatf(1.0, 0.0, 0.0, 0.0))

    for joint in robot.joints:
        angular = joint.kind == "revolute"
        schema = UsdPhysics.RevoluteJoint if angular else UsdPhysics.PrismaticJoint
        usd_joint = schema.Define(stage, f"{path}/joints/{joint.name}")
        usd_joint.CreateAxisAttr(joint.axis)
        usd_joint.CreateBody0Rel().SetTargets([link_paths[joint.parent]])
        usd_joint.CreateBody1Rel().SetTargets([link_paths[joint.child]])
        usd_joint.CreateLocalPos0Attr(Gf.Vec3f(*round_authored(joint.parent_tf[:3, 3])))
        usd_joint.CreateLocalRot0Attr(gf_quatf(joint.parent_tf[:3, :3]))
        usd_joint.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, 0.0))
        usd_joint.CreateLocalRot1Attr(Gf.Quatf(1.0, 0.0, 0.0, 0.0))
        to_usd = DEG_PER_RAD if angular else 1.0
        usd_joint.CreateLowerLimitAttr(round_authored(joint.lower * to_usd))
        usd_joint.CreateUpperLimitAttr(round_authored(joint.upper * to_usd))
        drive_name = "angular" if angular else "linear"
        drive = UsdPhysics.DriveAPI.Apply(usd_joint.GetPrim(), drive_name)
        drive.CreateTypeAttr("force")
        # Per-degree gains: stiffness [N*m/deg] = [N*m/rad] * pi/180.
        drive.CreateStiffnessAttr(round_authored(joint.stiffness / to_usd))
        drive.CreateDampingAttr(round_authored(joint.damping / to_usd))
        drive.CreateMaxForceAttr(round_authored(joint.max_effort))
        drive.CreateTargetPositionAttr(round_authored(joint.home * to_usd))
        # Initial joint position (PhysX JointStateAPI attribute name; Newton's importer reads it too).
        usd_joint.GetPrim().CreateAttribute(
            f"state:{drive_name}:physics:position", Sdf.ValueTypeNames.Float, custom=True
        ).Set(round_authored(joint.home * to_usd))

    # Links of one robot never collide with each other (PhysX only filters jointed pairs by default).
    group_path = f"{path}/self_collision_group"
    group = UsdPhysics.CollisionGroup.Define(stage, group_path)
    group.GetCollidersCollectionAPI().CreateIncludesRel().AddTarget(Sdf.Path(path))
    group.CreateFilteredGroupsRel().AddTarget(Sdf.Path(group_path))


def reference_robot(
    stage, path: str, asset_path: str, *, base_pos_w, base_rot_w: np.ndarray, asset_file=None
) -> None:
    """Reference an external USD robot at ``path``, placed on top of the asset's own root transform.

    The referenced prim is the asset's default prim or, when it has none, its only root prim that
    holds an articulation. The placement (``base_pos_w`` [m], ``base_rot_w`` 3x3) is composed with the
    transform the asset authors on that prim, so an asset whose root stands 1 m up stands 1 m above
    the placement (a Y-up asset is turned Z-up first). Joints that tie a body to the world (one body
    target empty) get their world-side frame moved with the placement, so a welded base stays where
    the asset has it relative to the robot.

    Args:
        asset_path: the path written into the reference (relative to the saved stage's folder).
        asset_file: the asset on disk, read to compose the pose (default: ``asset_path`` as given).
    """
    import logging

    from pxr import Gf, Usd, UsdGeom, UsdPhysics

    from vlatwin.errors import ConfigError
    from vlatwin.utils.transforms import rot_x

    where = f"scene.robot.path: {asset_file or asset_path}"
    asset = Usd.Stage.Open(str(asset_file or asset_path))
    if asset is None:
        raise ConfigError(f"{where}: not a readable USD file")
    # Units cannot be fixed by a transform: masses, gains and limits would stay in the asset's units.
    for key, ours, theirs in (
        ("metersPerUnit", UsdGeom.GetStageMetersPerUnit(stage), UsdGeom.GetStageMetersPerUnit(asset)),
        ("kilogramsPerUnit", UsdPhysics.GetStageKilogramsPerUnit(stage), UsdPhysics.GetStageKilogramsPerUnit(asset)),
    ):
        if asset.HasAuthoredMetadata(key) and not math.isclose(ours, theirs, rel_tol=1e-6):
            raise ConfigError(
                f"{where}: authored with {key} = {theirs:g}, the scene uses {ours:g}; physics values (masses, "
                "gains, limits) do not scale with a transform, so convert the asset to meters and kilograms"
            )
    root = asset.GetDefaultPrim()
    if not root:  # no defaultPrim, or one naming a prim the file lacks (cartpole_single_pendulum.usda)
        candidates = [
            p for p in asset.GetPseudoRoot().GetChildren()
            if any(q.HasAPI(UsdPhysics.ArticulationRootAPI) for q in Usd.PrimRange(p))
        ]
        named = asset.GetRootLayer().defaultPrim
        problem = f"its defaultPrim {named!r} is not a prim of the file" if named else "it has no defaultPrim"
        if len(candidates) != 1:
            found = ", ".join(str(p.GetPath()) for p in candidates) or "none"
            raise ConfigError(
                f"{where}: {problem}, and not exactly one root prim holds an ArticulationRootAPI (found: {found}); "
                "set defaultPrim to the robot's root prim"
            )
        root = candidates[0]
        logging.getLogger(__name__).warning(
            "%s: %s; referencing %s, its only root prim with an articulation", where, problem, root.GetPath()
        )

    prim = UsdGeom.Xform.Define(stage, path)
    if root == asset.GetDefaultPrim():
        prim.GetPrim().GetReferences().AddReference(asset_path)
    else:
        prim.GetPrim().GetReferences().AddReference(asset_path, root.GetPath())

    # World placement = placement @ up-axis correction @ the asset root's own local transform.
    placement = np.eye(4)
    placement[:3, :3] = base_rot_w
    placement[:3, 3] = base_pos_w
    up_fix = np.eye(4)
    if asset.HasAuthoredMetadata("upAxis") and UsdGeom.GetStageUpAxis(asset) == UsdGeom.Tokens.y:
        up_fix[:3, :3] = rot_x(np.pi / 2)  # +Y up -> +Z up, what Isaac Sim's metrics assembler does
    asset_local = np.array(UsdGeom.Xformable(root).GetLocalTransformation(Usd.TimeCode.Default())).T
    composed = placement @ up_fix @ asset_local
    scale = np.linalg.norm(composed[:3, :3], axis=0)
    rot = composed[:3, :3] / scale
    if np.allclose(scale, 1.0, rtol=0.0, atol=1e-9):
        set_local_pose(prim, pos=composed[:3, 3], rot=composed[:3, :3])
    elif np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) and np.linalg.det(rot) > 0:
        set_local_pose(prim, pos=composed[:3, 3], rot=rot, scale=scale)
    else:  # shear or mirror: keep the full matrix
        xformable = UsdGeom.Xformable(prim)
        xformable.ClearXformOpOrder()
        xformable.AddTransformOp().Set(Gf.Matrix4d(*round_authored(composed.T)))

    # Body poses in the scene: the asset's world poses carried by (scene root) @ (asset root)^-1.
    parent_w = np.array(UsdGeom.XformCache().GetParentToWorldTransform(prim.GetPrim())).T
    asset_cache = UsdGeom.XformCache()
    asset_to_scene = parent_w @ composed @ np.linalg.inv(np.array(asset_cache.GetLocalToWorldTransform(root)).T)
    root_path = root.GetPath()
    for joint_prim in Usd.PrimRange(root):
        if not joint_prim.IsA(UsdPhysics.Joint):
            continue
        joint = UsdPhysics.Joint(joint_prim)
        body0, body1 = joint.GetBody0Rel().GetTargets(), joint.GetBody1Rel().GetTargets()
        if bool(body0) == bool(body1):
            continue  # between two bodies (or none): nothing tied to the world
        body_path = (body0 or body1)[0]
        body = asset.GetPrimAtPath(body_path)
        if not body or not body_path.HasPrefix(root_path):
            continue
        body_w = asset_to_scene @ np.array(asset_cache.GetLocalToWorldTransform(body)).T
        side = "0" if body0 else "1"
        pos = getattr(joint, f"GetLocalPos{side}Attr")().Get()
        quat = getattr(joint, f"GetLocalRot{side}Attr")().Get()
        local_rot = np.eye(3) if quat is None else quat_wxyz_to_matrix([quat.GetReal(), *quat.GetImaginary()])
        frame_pos = body_w @ np.r_[np.array(pos if pos is not None else (0.0, 0.0, 0.0), dtype=float), 1.0]
        body_rot = body_w[:3, :3]
        if not np.allclose(body_rot.T @ body_rot, np.eye(3), atol=1e-9):
            u, _, vt = np.linalg.svd(body_rot)  # the body's rotation without its scale
            body_rot = u @ vt
        frame_rot = body_rot @ local_rot
        world_side = "1" if body0 else "0"
        scene_joint = UsdPhysics.Joint(stage.OverridePrim(path + str(joint_prim.GetPath())[len(str(root_path)):]))
        getattr(scene_joint, f"CreateLocalPos{world_side}Attr")().Set(Gf.Vec3f(*round_authored(frame_pos[:3])))
        getattr(scene_joint, f"CreateLocalRot{world_side}Attr")().Set(gf_quatf(frame_rot))


def placeholder_robot(
    stage,
    path: str,
    source: str,
    asset_path: str,
    *,
    base_pos_w,
    base_rot_w: np.ndarray,
    drive_stiffness: float | None = None,
    drive_damping: float | None = None,
) -> None:
    """Mark where a URDF/MJCF robot goes: the Newton backend imports the file at this prim's pose.

    Isaac Sim converts such files with its own importers; usd-core has no URDF/MJCF converter.
    """
    from pxr import Sdf, UsdGeom

    prim = UsdGeom.Xform.Define(stage, path)
    set_local_pose(prim, pos=base_pos_w, rot=base_rot_w)
    prim.GetPrim().CreateAttribute("vlatwin:robotSource", Sdf.ValueTypeNames.Token, custom=True).Set(source)
    prim.GetPrim().CreateAttribute("vlatwin:robotAsset", Sdf.ValueTypeNames.Asset, custom=True).Set(Sdf.AssetPath(asset_path))
    # URDF has no drive stiffness: the gains [per rad] the importer should give its joints.
    for name, value in (("driveStiffness", drive_stiffness), ("driveDamping", drive_damping)):
        if value is not None:
            prim.GetPrim().CreateAttribute(f"vlatwin:{name}", Sdf.ValueTypeNames.Double, custom=True).Set(float(value))


# Attribute names for the identified joint dynamics. Each is read by Isaac Sim (PhysX schema) and/or by Newton's
# USD importer with the schema resolvers vlatwin loads with (SchemaResolverNewton, then SchemaResolverPhysx):
#   physxJoint:armature            PhysxJointAPI; Newton: newton/_src/usd/schemas.py, SchemaResolverPhysx JOINT "armature"
#                                  [kg*m^2 | kg], no degree conversion in either.
#   physxJointAxis:<axis>:*        PhysxJointAxisAPI (Isaac Sim 5 / PhysX 5.6, per axis "angular" | "linear"; it takes
#                                  precedence over PhysxJointAPI for its axis). Newton does not read it.
#     armature                     [kg*m^2 | kg]
#     staticFrictionEffort,        Coulomb friction torque [N*m] / force [N] (the friction here has no separate
#     dynamicFrictionEffort        stiction, so both get the same value)
#     viscousFrictionCoefficient   passive viscous damping, angular stored PER DEGREE [N*m*s/deg]: PhysX's USD parser
#                                  multiplies it by 180/pi (ovphysx PhysxJointAxisAPI population notes)
#   newton:friction                SchemaResolverNewton JOINT "friction" (newton/_src/usd/schemas.py) [N*m | N], as is
#   newton:damping                 SchemaResolverNewton JOINT "damping" (newton/_src/usd/schemas.py), angular PER
#                                  DEGREE: newton/_src/usd/_resolution_policy.py resolve_joint_damping divides by pi/180
# Not used: physxJoint:jointFriction is PhysX's unitless friction *coefficient* (resisting torque <= coefficient x the
# transmitted wrench), not a Coulomb torque; Newton's PhysX resolver does not read it either.
DYNAMICS_JOINT_FIELDS = ("drive_stiffness", "drive_damping", "damping", "friction", "armature")


def author_dynamics(stage, robot_path: str, dynamics, *, field: str = "dynamics", error=None) -> None:
    """Author identified joint / link parameters on the robot under ``robot_path`` (found by short name).

    Args:
        dynamics: a :class:`vlatwin.config.scene_cfg.DynamicsCfg` (or a mapping of that shape): joint values per
            radian | metre, link masses [kg].
        field: config field named in errors.
        error: exception class for unknown names (default :class:`vlatwin.errors.VlatwinError`).

    Conversions (revolute): drive gains and passive damping are authored per degree (value * pi/180), friction
    and armature as given. Prismatic: everything as given. A link's mass goes on its MassAPI; an authored
    ``physics:diagonalInertia`` is scaled by new mass / old mass (the same density).
    """
    from pxr import Gf, Sdf, Usd, UsdPhysics

    from vlatwin.config.scene_cfg import DynamicsCfg
    from vlatwin.errors import VlatwinError

    error = error or VlatwinError
    if not isinstance(dynamics, DynamicsCfg):
        dynamics = DynamicsCfg.model_validate(dynamics or {})
    if not dynamics.joints and not dynamics.links:
        return
    root = stage.GetPrimAtPath(robot_path)
    if not root or not root.IsValid():
        raise error(f"{field}: no robot prim at {robot_path}")
    joints: dict[str, list] = {}
    links: dict[str, list] = {}
    for prim in Usd.PrimRange(root):
        if prim.IsA(UsdPhysics.RevoluteJoint) or prim.IsA(UsdPhysics.PrismaticJoint):
            joints.setdefault(prim.GetName(), []).append(prim)
        if prim.HasAPI(UsdPhysics.RigidBodyAPI):
            links.setdefault(prim.GetName(), []).append(prim)

    def lookup(kind: str, table: dict, name: str):
        found = table.get(name, [])
        if len(found) != 1:
            problem = f"unknown {kind[:-1]} {name!r}" if not found else f"{kind[:-1]} name {name!r} is ambiguous"
            raise error(f"{field}.{kind}: {problem}; available: {', '.join(sorted(table)) or 'none'}")
        return found[0]

    # Resolve every name first so an error leaves the stage unchanged.
    joint_prims = {name: lookup("joints", joints, name) for name in dynamics.joints}
    link_prims = {name: lookup("links", links, name) for name in dynamics.links}

    def set_float(prim, name: str, value: float) -> None:
        attr = prim.GetAttribute(name)
        if not attr:
            attr = prim.CreateAttribute(name, Sdf.ValueTypeNames.Float, custom=True)
        attr.Set(round_authored(value))

    for name, values in dynamics.joints.items():
        prim = joint_prims[name]
        angular = prim.IsA(UsdPhysics.RevoluteJoint)
        per_rad_to_usd = 1.0 / DEG_PER_RAD if angular else 1.0  # [x/rad] -> [x/deg]
        axis = "angular" if angular else "linear"
        if values.drive_stiffness is not None or values.drive_damping is not None:
            drive = UsdPhysics.DriveAPI.Apply(prim, axis)
            if values.drive_stiffness is not None:
                drive.CreateStiffnessAttr().Set(round_authored(values.drive_stiffness * per_rad_to_usd))
            if values.drive_damping is not None:
                drive.CreateDampingAttr().Set(round_authored(values.drive_damping * per_rad_to_usd))
        if values.damping is None and values.friction is None and values.armature is None:
            continue
        prim.AddAppliedSchema("PhysxJointAPI")
        prim.AddAppliedSchema(f"PhysxJointAxisAPI:{axis}")
        prefix = f"physxJointAxis:{axis}:"
        armature = values.armature
        if armature is None:  # the per-axis API now applied would shadow an armature authored the older way
            old = prim.GetAttribute("physxJoint:armature")
            armature = old.Get() if old and old.HasAuthoredValue() else None
        if armature is not None:
            set_float(prim, "physxJoint:armature", armature)
            set_float(prim, prefix + "armature", armature)
            if _authored(prim, "newton:armature"):  # Newton's resolver reads it before physxJoint:armature
                set_float(prim, "newton:armature", armature)
        velocity = prim.GetAttribute("physxJoint:maxJointVelocity")
        if _authored(prim, "physxJoint:maxJointVelocity") and not _authored(prim, prefix + "maxJointVelocity"):
            set_float(prim, prefix + "maxJointVelocity", float(velocity.Get()))
        if values.damping is not None:
            set_float(prim, "newton:damping", values.damping * per_rad_to_usd)
            set_float(prim, prefix + "viscousFrictionCoefficient", values.damping * per_rad_to_usd)
        if values.friction is not None:
            set_float(prim, "newton:friction", values.friction)
            set_float(prim, prefix + "staticFrictionEffort", values.friction)
            set_float(prim, prefix + "dynamicFrictionEffort", values.friction)

    for name, values in dynamics.links.items():
        if values.mass is None:
            continue
        mass_api = UsdPhysics.MassAPI.Apply(link_prims[name])
        old = mass_api.GetMassAttr().Get() if mass_api.GetMassAttr().HasAuthoredValue() else None
        inertia_attr = mass_api.GetDiagonalInertiaAttr()
        inertia = inertia_attr.Get() if inertia_attr.HasAuthoredValue() else None
        if inertia is not None and any(v > 0 for v in inertia):
            if not old or old <= 0:
                raise error(
                    f"{field}.links.{name}: the link authors physics:diagonalInertia but no mass to scale it from; "
                    "author its mass first"
                )
            factor = values.mass / float(old)
            inertia_attr.Set(Gf.Vec3f(*round_authored([v * factor for v in inertia])))
        mass_api.CreateMassAttr().Set(round_authored(values.mass))


def _authored(prim, name: str) -> bool:
    attr = prim.GetAttribute(name)
    return bool(attr) and attr.HasAuthoredValue()
