"""The authored stage: units, validators, UsdPhysics articulation/drives, labels, materials, lights, cameras."""

import math

import numpy as np
import pytest

pxr = pytest.importorskip("pxr")
from pxr import Gf, Usd, UsdGeom, UsdLux, UsdPhysics, UsdShade  # noqa: E402

from vlatwin.robots import get_builtin_robot  # noqa: E402
from vlatwin.usd.check import check_stage, run_validators  # noqa: E402
from vlatwin.usd.semantics import get_class_label  # noqa: E402


@pytest.fixture(scope="module")
def stage(tabletop_usda):
    return Usd.Stage.Open(str(tabletop_usda))


def _world(prim) -> np.ndarray:
    return np.array(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(Usd.TimeCode.Default())).T


def test_stage_metadata(stage):
    """Meters, Z up, kg, /World default prim, one physics scene with gravity -Z 9.81."""
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert UsdPhysics.GetStageKilogramsPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().GetPath() == "/World"
    scene = UsdPhysics.Scene(stage.GetPrimAtPath("/World/PhysicsScene"))
    assert tuple(scene.GetGravityDirectionAttr().Get()) == (0.0, 0.0, -1.0)
    assert scene.GetGravityMagnitudeAttr().Get() == pytest.approx(9.81)


def test_validators_report_no_errors(stage):
    """Every validator registered with UsdValidation passes (errors and warnings)."""
    errors, warnings = run_validators(stage)
    assert errors == []
    assert warnings == []


def test_physics_parse_finds_articulation(tabletop_usda):
    """UsdPhysics parsing finds one articulation, 7 revolute + 2 prismatic driven joints, a fixed base, all bodies."""
    report = check_stage(tabletop_usda)
    assert report.ok, report.errors
    assert report.articulations == ["/World/Robot"]
    kinds = [j.kind for j in report.joints]
    assert kinds.count("revolute") == 7 and kinds.count("prismatic") == 2 and kinds.count("fixed") == 1
    assert len(report.drives) == 9
    assert len(report.rigid_bodies) == 10 + 10  # 8 arm links + 2 fingers, 10 objects
    assert report.colliders["mesh"] == 2 and report.colliders["plane"] == 1


def test_joint_limits_and_drives_in_usd_units(tabletop_usda):
    """Limits are degrees and angular gains per degree, as PhysX and Isaac expect."""
    robot = get_builtin_robot("panda")
    report = check_stage(tabletop_usda)
    by_name = {j.path.rsplit("/", 1)[-1]: j for j in report.joints}
    for spec in robot.joints:
        joint = by_name[spec.name]
        scale = 180.0 / math.pi if spec.kind == "revolute" else 1.0
        assert joint.lower == pytest.approx(spec.lower * scale, rel=1e-5)
        assert joint.upper == pytest.approx(spec.upper * scale, rel=1e-5)
        assert joint.drive_stiffness == pytest.approx(spec.stiffness / scale, rel=1e-5)
        assert joint.drive_target == pytest.approx(spec.home * scale, rel=1e-5)


def test_joint_frames_agree_with_body_poses(stage):
    """For each joint, body0 * localPose0 rotated by the home angle equals body1 * localPose1.

    This is what PhysX checks when it builds the articulation: the authored body poses and joint
    frames describe the same configuration.
    """
    robot = get_builtin_robot("panda")
    home = {j.name: j.home for j in robot.joints}
    for prim in Usd.PrimRange(stage.GetPrimAtPath("/World/Robot/joints")):
        if not prim.IsA(UsdPhysics.Joint):
            continue
        joint = UsdPhysics.Joint(prim)
        frames = []
        for body_rel, pos_attr, rot_attr in (
            (joint.GetBody0Rel(), joint.GetLocalPos0Attr(), joint.GetLocalRot0Attr()),
            (joint.GetBody1Rel(), joint.GetLocalPos1Attr(), joint.GetLocalRot1Attr()),
        ):
            targets = body_rel.GetTargets()
            body = _world(stage.GetPrimAtPath(targets[0])) if targets else np.eye(4)
            local = np.eye(4)
            local[:3, :3] = np.array(Gf.Matrix3d(Gf.Rotation(Gf.Quatd(rot_attr.Get())))).T
            local[:3, 3] = np.array(pos_attr.Get())
            frames.append(body @ local)
        motion = np.eye(4)
        name = prim.GetName()
        if prim.IsA(UsdPhysics.RevoluteJoint):
            axis = "XYZ".index(UsdPhysics.RevoluteJoint(prim).GetAxisAttr().Get())
            motion[:3, :3] = np.array(Gf.Matrix3d(Gf.Rotation(Gf.Vec3d(*np.eye(3)[axis]), math.degrees(home[name])))).T
        elif prim.IsA(UsdPhysics.PrismaticJoint):
            axis = "XYZ".index(UsdPhysics.PrismaticJoint(prim).GetAxisAttr().Get())
            motion[axis, 3] = home[name]
        np.testing.assert_allclose(frames[0] @ motion, frames[1], atol=2e-5, err_msg=name)


def test_link_masses_and_colliders(stage):
    """Arm links carry MassAPI masses and collider shapes; the robot filters its own collisions."""
    robot = get_builtin_robot("panda")
    for link in robot.links:
        prim = stage.GetPrimAtPath(f"/World/Robot/{link.name}")
        assert prim.HasAPI(UsdPhysics.RigidBodyAPI)
        assert UsdPhysics.MassAPI(prim).GetMassAttr().Get() == pytest.approx(link.mass)
        assert any(child.HasAPI(UsdPhysics.CollisionAPI) for child in prim.GetChildren())
    table = UsdPhysics.CollisionGroup.ComputeCollisionGroupTable(stage)
    group = "/World/Robot/self_collision_group"
    index = [str(p) for p in table.GetGroups()].index(group)
    assert not table.IsCollisionEnabled(index, index)


def test_objects_labels_materials(stage, tabletop_config):
    """Each object is a rigid body labelled with its class; the label is inherited by its geometry."""
    for obj in tabletop_config.scene.objects:
        prim = stage.GetPrimAtPath(f"/World/Objects/{obj.name}")
        assert prim.HasAPI(UsdPhysics.RigidBodyAPI)
        geom = prim.GetChild("geom")
        assert geom.HasAPI(UsdPhysics.CollisionAPI)
        assert get_class_label(geom) == obj.semantic_label
        material, _ = UsdShade.MaterialBindingAPI(geom).ComputeBoundMaterial()
        shader = UsdShade.Shader(material.GetPrim().GetChild("PreviewSurface"))
        color = shader.GetInput("diffuseColor").Get()
        assert tuple(UsdGeom.Gprim(geom).GetDisplayColorAttr().Get()[0]) == pytest.approx(tuple(color))
        np.testing.assert_allclose(_world(prim)[:3, 3], obj.position, atol=1e-6)
    assert get_class_label(stage.GetPrimAtPath("/World/Robot/panda_link3/capsule_1")) == "robot"
    assert get_class_label(stage.GetPrimAtPath("/World/Table/leg_2")) == "table"


def test_convex_mesh_is_closed_and_outward(stage):
    """Convex meshes are hull triangles wound counter-clockwise seen from outside, flagged convexHull."""
    geom = stage.GetPrimAtPath("/World/Objects/gem/geom")
    mesh = UsdGeom.Mesh(geom)
    points = np.array(mesh.GetPointsAttr().Get())
    faces = np.array(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)
    centre = points.mean(axis=0)
    for a, b, c in points[faces]:
        normal = np.cross(b - a, c - a)
        assert np.dot(normal, a - centre) > 0
    edges = {}
    for f in faces:
        for i in range(3):
            edge = tuple(sorted((f[i], f[(i + 1) % 3])))
            edges[edge] = edges.get(edge, 0) + 1
    assert set(edges.values()) == {2}  # closed, manifold
    assert UsdPhysics.MeshCollisionAPI(geom).GetApproximationAttr().Get() == UsdPhysics.Tokens.convexHull


def test_lights_and_cameras(stage, tabletop_config):
    """Lights are UsdLux prims; cameras look at their target with the configured field of view."""
    assert stage.GetPrimAtPath("/World/Lights/key_light").IsA(UsdLux.DistantLight)
    assert stage.GetPrimAtPath("/World/Lights/dome_light").IsA(UsdLux.DomeLight)
    assert stage.GetPrimAtPath("/World/Lights/lamp").IsA(UsdLux.SphereLight)
    for cfg in tabletop_config.scene.cameras:
        prim = stage.GetPrimAtPath(f"/World/Cameras/{cfg.name}")
        camera = UsdGeom.Camera(prim).GetCamera(Usd.TimeCode.Default())
        fov = camera.GetFieldOfView(Gf.Camera.FOVHorizontal)
        assert fov == pytest.approx(cfg.fov_deg, abs=1e-4)
        world = _world(prim)
        direction = np.array(cfg.look_at) - np.array(cfg.position)
        np.testing.assert_allclose(-world[:3, 2], direction / np.linalg.norm(direction), atol=1e-6)
        assert tuple(prim.GetAttribute("vlatwin:resolution").Get()) == tuple(cfg.resolution)
