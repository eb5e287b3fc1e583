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
from vlatwin.usd.stage import gf_quatf, set_local_pose
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
        UsdPhysics.MassAPI.Apply(body.GetPrim()).CreateMassAttr(float(link.mass))
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
    base.CreateLocalPos0Attr(Gf.Vec3f(*map(float, base_pos_w)))
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
        usd_joint.CreateLocalPos0Attr(Gf.Vec3f(*map(float, joint.parent_tf[:3, 3])))
        usd_joint.CreateLocalRot0Attr(gf_quatf(joint.parent_tf[:3, :3]))
        usd_joint.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, 0.0))
        usd_joint.CreateLocalRot1Attr(Gf.Quatf(1.0, 0.0, 0.0, 0.0))
        to_usd = DEG_PER_RAD if angular else 1.0
        usd_joint.CreateLowerLimitAttr(float(joint.lower * to_usd))
        usd_joint.CreateUpperLimitAttr(float(joint.upper * to_usd))
        drive_name = "angular" if angular else "linear"
        drive = UsdPhysics.DriveAPI.Apply(usd_joint.GetPrim(), drive_name)
        drive.CreateTypeAttr("force")
        # Per-degree gains: stiffness [N*m/deg] = [N*m/rad] * pi/180.
        drive.CreateStiffnessAttr(float(joint.stiffness / to_usd))
        drive.CreateDampingAttr(float(joint.damping / to_usd))
        drive.CreateMaxForceAttr(float(joint.max_effort))
        drive.CreateTargetPositionAttr(float(joint.home * to_usd))
        # Initial joint position (PhysX JointStateAPI attribute name; Newton's importer reads it too).
        usd_joint.GetPrim().CreateAttribute(
            f"state:{drive_name}:physics:position", Sdf.ValueTypeNames.Float, custom=True
        ).Set(float(joint.home * to_usd))

    # Links of one robot never collide with each other (PhysX only filters jointed pairs by default).
    group_path = f"{path}/self_collision_group"
    group = UsdPhysics.CollisionGroup.Define(stage, group_path)
    group.GetCollidersCollectionAPI().CreateIncludesRel().AddTarget(Sdf.Path(path))
    group.CreateFilteredGroupsRel().AddTarget(Sdf.Path(group_path))


def reference_robot(stage, path: str, asset_path: str, *, base_pos_w, base_rot_w: np.ndarray) -> None:
    """Reference an external USD robot (its default prim) at ``path`` with the given base pose."""
    from pxr import UsdGeom

    from pxr import Gf, UsdPhysics

    prim = UsdGeom.Xform.Define(stage, path)
    prim.GetPrim().GetReferences().AddReference(asset_path)
    set_local_pose(prim, pos=base_pos_w, rot=base_rot_w)
    # A base welded to the world (body0 empty) holds its body where the asset was authored; move the
    # weld's world-side frame to wherever the robot is placed now.
    from pxr import Usd

    cache = UsdGeom.XformCache()
    for joint_prim in Usd.PrimRange(stage.GetPrimAtPath(path)):
        if not joint_prim.IsA(UsdPhysics.FixedJoint):
            continue
        joint = UsdPhysics.FixedJoint(joint_prim)
        if joint.GetBody0Rel().GetTargets() or not joint.GetBody1Rel().GetTargets():
            continue
        body = stage.GetPrimAtPath(joint.GetBody1Rel().GetTargets()[0])
        body_w = np.array(cache.GetLocalToWorldTransform(body)).T
        local1 = np.eye(4)
        local1[:3, 3] = np.array(joint.GetLocalPos1Attr().Get() or (0, 0, 0))
        rot1 = joint.GetLocalRot1Attr().Get()
        if rot1 is not None:
            local1[:3, :3] = quat_wxyz_to_matrix([rot1.GetReal(), *rot1.GetImaginary()])
        frame_w = body_w @ local1
        joint.CreateLocalPos0Attr().Set(Gf.Vec3f(*map(float, frame_w[:3, 3])))
        joint.CreateLocalRot0Attr().Set(gf_quatf(frame_w[:3, :3]))


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
