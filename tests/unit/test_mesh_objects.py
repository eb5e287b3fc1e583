"""Mesh objects (OBJ/STL/glTF/USD) and referenced USD environments: the authored prims, without a simulator."""

from importlib.util import find_spec

import numpy as np
import pytest

pxr = pytest.importorskip("pxr")
trimesh = pytest.importorskip("trimesh")
from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdShade  # noqa: E402

from vlatwin.config.loader import config_from_dict  # noqa: E402
from vlatwin.errors import ConfigError  # noqa: E402
from vlatwin.usd.check import check_stage  # noqa: E402
from vlatwin.usd.scene_builder import build_scene, write_scene  # noqa: E402
from vlatwin.usd.semantics import add_class_label, get_class_label  # noqa: E402

HAS_COACD = find_spec("coacd") is not None


def u_mesh(width=0.12, depth=0.05, height=0.06, wall=0.02):
    """A closed U-shaped solid (the opening faces +Z), outward counter-clockwise triangles, built by hand.

    The U profile lies in the XZ plane and is extruded along Y; its origin is the bottom centre.
    """
    w, t, h = width, wall, height
    profile = [(0, 0), (w, 0), (w, t), (w, h), (w - t, h), (w - t, t), (t, t), (t, h), (0, h), (0, t)]
    cap = [(0, 1, 2), (0, 2, 5), (0, 5, 6), (0, 6, 9), (9, 6, 7), (9, 7, 8), (5, 2, 3), (5, 3, 4)]
    n = len(profile)
    points = [(x - w / 2, -depth / 2, z) for x, z in profile] + [(x - w / 2, depth / 2, z) for x, z in profile]
    faces = [(a, b, c) for a, b, c in cap] + [(a + n, c + n, b + n) for a, b, c in cap]
    for i in range(n):
        j = (i + 1) % n
        faces += [(i, j + n, j), (i, i + n, j + n)]
    return np.array(points, dtype=float), np.array(faces, dtype=np.int64)


def write_obj(path, points, faces):
    lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in points] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def _scene(tmp_path, objects=(), environment=None):
    scene = {"robot": {"position": [3.0, 3.0, 0.0]}, "objects": list(objects)}
    if environment is not None:
        scene["environment"] = environment
    return config_from_dict({"scene": scene}, base_dir=tmp_path).scene


def _points(stage, path):
    return np.array(UsdGeom.Mesh(stage.GetPrimAtPath(path)).GetPointsAttr().Get(), dtype=float)


def _bound_material(prim, purpose=""):
    return str(UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial(purpose)[0].GetPath())


def test_u_mesh_is_a_closed_outward_solid():
    """The test solid is watertight with positive volume 0.2 L (so mass = density x volume applies)."""
    points, faces = u_mesh()
    solid = trimesh.Trimesh(points, faces, process=True)
    assert solid.is_watertight and solid.is_winding_consistent
    assert solid.volume == pytest.approx(0.12 * 0.06 * 0.05 - 0.08 * 0.04 * 0.05)


def test_obj_mesh_object_convex_hull(tmp_path):
    """OBJ -> visual mesh equal to the file, collider with convexHull, material, label, mass from the closed solid."""
    points, faces = u_mesh()
    write_obj(tmp_path / "u.obj", points, faces)
    obj = {"name": "u", "shape": "mesh", "mesh_file": "u.obj", "position": [0.3, 0.0, 0.8], "label": "bracket", "density": 1000.0}
    stage = build_scene(_scene(tmp_path, [obj]))
    geom = stage.GetPrimAtPath("/World/Objects/u/geom")
    authored = _points(stage, "/World/Objects/u/geom")
    assert len(authored) == len(points)
    np.testing.assert_allclose(authored, points, atol=1e-6)
    extent = np.array(UsdGeom.Mesh(geom).GetExtentAttr().Get())
    np.testing.assert_allclose(extent, [points.min(0), points.max(0)], atol=1e-6)
    assert list(UsdGeom.Mesh(geom).GetFaceVertexIndicesAttr().Get()) == faces.reshape(-1).tolist()
    assert geom.HasAPI(UsdPhysics.CollisionAPI)
    assert UsdPhysics.MeshCollisionAPI(geom).GetApproximationAttr().Get() == "convexHull"
    assert _bound_material(geom) == "/World/Looks/red_plastic"
    assert _bound_material(geom, "physics") == "/World/Looks/red_plastic"
    assert get_class_label(geom) == "bracket"
    assert not UsdGeom.Mesh(geom).GetDoubleSidedAttr().Get()  # closed: back faces are never seen
    body = stage.GetPrimAtPath("/World/Objects/u")
    mass = UsdPhysics.MassAPI(body)
    assert body.HasAPI(UsdPhysics.RigidBodyAPI)
    # Mass of the U itself (density x its volume), not of its hull (which is almost twice as big).
    assert mass.GetMassAttr().Get() == pytest.approx(1000.0 * 0.0002, rel=1e-6)
    assert not mass.GetDensityAttr().HasAuthoredValue()
    np.testing.assert_allclose(mass.GetCenterOfMassAttr().Get(), (0.0, 0.0, 0.022), atol=1e-7)
    # Principal inertia of the U (its symmetry axes are the frame's): base + two arms, parallel-axis theorem.
    np.testing.assert_allclose(mass.GetDiagonalInertiaAttr().Get(), (9.953333e-05, 4.045333e-04, 3.883333e-04), rtol=1e-5)
    assert mass.GetPrincipalAxesAttr().Get() == Gf.Quatf(1.0, 0.0, 0.0, 0.0)


def test_stl_and_explicit_mass(tmp_path):
    """STL (a triangle soup: 3 points per face) keeps the file's points; a given mass wins over density."""
    points, faces = u_mesh()
    trimesh.Trimesh(points, faces, process=False).export(tmp_path / "u.stl")
    obj = {"name": "u", "shape": "mesh", "mesh_file": "u.stl", "position": [0, 0, 0.8], "mass": 0.5, "scale": 2.0}
    stage = build_scene(_scene(tmp_path, [obj]))
    authored = _points(stage, "/World/Objects/u/geom")
    assert len(authored) == 3 * len(faces)
    np.testing.assert_allclose([authored.min(0), authored.max(0)], [2 * points.min(0), 2 * points.max(0)], atol=1e-6)
    assert UsdPhysics.MassAPI(stage.GetPrimAtPath("/World/Objects/u")).GetMassAttr().Get() == pytest.approx(0.5)


def test_gltf_is_rotated_from_y_up(tmp_path):
    """A glTF's up (+Y by its spec) becomes +Z; ``up_axis: Z`` keeps the file's axes."""
    box = trimesh.creation.box((0.1, 0.3, 0.05))  # tallest along the file's Y
    box.apply_translation((0.0, 0.15, 0.0))  # standing on the file's ground (y = 0)
    box.export(tmp_path / "box.glb")
    objects = [
        {"name": "yup", "shape": "mesh", "mesh_file": "box.glb", "position": [0, 0, 1]},
        {"name": "asis", "shape": "mesh", "mesh_file": "box.glb", "position": [0, 0, 1], "up_axis": "Z"},
    ]
    stage = build_scene(_scene(tmp_path, objects))
    yup = _points(stage, "/World/Objects/yup/geom")
    np.testing.assert_allclose([yup.min(0), yup.max(0)], [(-0.05, -0.025, 0.0), (0.05, 0.025, 0.3)], atol=1e-6)
    asis = _points(stage, "/World/Objects/asis/geom")
    np.testing.assert_allclose([asis.min(0), asis.max(0)], [(-0.05, 0.0, -0.025), (0.05, 0.3, 0.025)], atol=1e-6)


def test_usd_mesh_source_units_axis_and_transform(tmp_path):
    """A USD mesh keeps its transform and is converted from the file's centimeters / Y up to meters / Z up."""
    src = Usd.Stage.CreateNew(str(tmp_path / "part.usda"))
    UsdGeom.SetStageMetersPerUnit(src, 0.01)
    UsdGeom.SetStageUpAxis(src, UsdGeom.Tokens.y)
    root = UsdGeom.Xform.Define(src, "/part")
    src.SetDefaultPrim(root.GetPrim())
    points, faces = u_mesh(0.12, 0.05, 0.06, 0.02)
    mesh = UsdGeom.Mesh.Define(src, "/part/shape")
    mesh.CreatePointsAttr([Gf.Vec3f(*map(float, p * 100.0)) for p in points])  # cm
    mesh.CreateFaceVertexCountsAttr([3] * len(faces))
    mesh.CreateFaceVertexIndicesAttr(faces.reshape(-1).tolist())
    mesh.AddTranslateOp().Set(Gf.Vec3d(0.0, 10.0, 0.0))  # 10 cm up (Y)
    hidden = UsdGeom.Cube.Define(src, "/part/hidden_collider")
    hidden.CreatePurposeAttr(UsdGeom.Tokens.guide)
    src.GetRootLayer().Save()

    stage = build_scene(_scene(tmp_path, [{"name": "part", "shape": "mesh", "mesh_file": "part.usda", "position": [0, 0, 1]}]))
    authored = _points(stage, "/World/Objects/part/geom")
    # (x, y, z) in a Y-up file -> (x, -z, y) in Z up; +10 cm along the file's Y -> +0.1 m along Z.
    expected = np.stack([points[:, 0], -points[:, 2], points[:, 1] + 0.1], axis=1)
    assert len(authored) == len(points)
    np.testing.assert_allclose(authored, expected, atol=1e-6)


@pytest.mark.skipif(not HAS_COACD, reason="needs coacd (pip install coacd)")
def test_convex_decomposition_parts_are_guide_colliders(tmp_path):
    """convex_decomposition: visual mesh without collider + convex guide-purpose collider parts."""
    points, faces = u_mesh()
    write_obj(tmp_path / "u.obj", points, faces)
    obj = {"name": "u", "shape": "mesh", "mesh_file": "u.obj", "position": [0, 0, 0.8], "collision": "convex_decomposition", "color": [0.1, 0.2, 0.9]}
    stage = build_scene(_scene(tmp_path, [obj]))
    geom = stage.GetPrimAtPath("/World/Objects/u/geom")
    assert not geom.HasAPI(UsdPhysics.CollisionAPI)
    parts = stage.GetPrimAtPath("/World/Objects/u/collision").GetChildren()
    assert len(parts) >= 3  # a U needs at least its two arms and its base
    for part in parts:
        assert part.HasAPI(UsdPhysics.CollisionAPI)
        assert UsdPhysics.MeshCollisionAPI(part).GetApproximationAttr().Get() == "convexHull"
        assert UsdGeom.Imageable(part).ComputePurpose() == UsdGeom.Tokens.guide
        assert _bound_material(part, "physics") == "/World/Looks/u_color"
        hull = trimesh.Trimesh(_points(stage, str(part.GetPath())), np.array(UsdGeom.Mesh(part).GetFaceVertexIndicesAttr().Get()).reshape(-1, 3))
        assert hull.is_convex and hull.volume > 0
    assert _bound_material(geom) == "/World/Looks/u_color"
    # The pieces cover the U (volume within 2 %) but not the gap between its arms.
    volume = sum(trimesh.Trimesh(_points(stage, str(p.GetPath())), np.array(UsdGeom.Mesh(p).GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)).volume for p in parts)
    assert volume == pytest.approx(0.0002, rel=0.02)


def test_collision_none_is_visual_only(tmp_path):
    """collision: none on a static object authors no collider and no body."""
    points, faces = u_mesh()
    write_obj(tmp_path / "u.obj", points, faces)
    obj = {"name": "u", "shape": "mesh", "mesh_file": "u.obj", "position": [0, 0, 0.8], "collision": "none", "dynamic": False}
    stage = build_scene(_scene(tmp_path, [obj]))
    prims = list(Usd.PrimRange(stage.GetPrimAtPath("/World/Objects/u")))
    assert not any(p.HasAPI(UsdPhysics.CollisionAPI) or p.HasAPI(UsdPhysics.RigidBodyAPI) for p in prims)
    assert get_class_label(stage.GetPrimAtPath("/World/Objects/u/geom")) == "u"


def test_open_surface_is_double_sided(tmp_path):
    """A mesh that encloses no volume renders from both sides; its mass comes from its hull."""
    write_obj(tmp_path / "tent.obj", np.array([[0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0], [0.05, 0.05, 0.05]]), np.array([[0, 1, 3], [1, 2, 3]]))
    stage = build_scene(_scene(tmp_path, [{"name": "tent", "shape": "mesh", "mesh_file": "tent.obj", "position": [0, 0, 1], "density": 600.0}]))
    assert UsdGeom.Mesh(stage.GetPrimAtPath("/World/Objects/tent/geom")).GetDoubleSidedAttr().Get() is True
    hull_volume = trimesh.Trimesh(np.array([[0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0], [0.05, 0.05, 0.05]])).convex_hull.volume
    assert UsdPhysics.MassAPI(stage.GetPrimAtPath("/World/Objects/tent")).GetMassAttr().Get() == pytest.approx(600.0 * hull_volume, rel=1e-5)


@pytest.mark.parametrize(
    "obj, expected",
    [
        ({"mesh_file": "nope.obj"}, "scene.objects[0].mesh_file: file not found"),
        ({"mesh_file": "u.step"}, "scene.objects[0].mesh_file: unsupported mesh file type '.step'"),
        ({"mesh_file": "u.obj", "collision": "none"}, "scene.objects[0].collision: 'none' needs dynamic: false"),
        ({"mesh_file": "u.obj", "max_hulls": 4}, "scene.objects[0].max_hulls: only applies to collision 'convex_decomposition'"),
        ({"mesh_file": None}, "scene.objects[0]: shape 'mesh' needs 'mesh_file'"),
        ({"shape": "box", "size": [0.1, 0.1, 0.1], "mesh_file": None, "collision": "convex_hull"}, "'collision' only applies to shape 'mesh'"),
    ],
)
def test_bad_mesh_config_is_one_line(tmp_path, obj, expected):
    """Config mistakes name the field in one line."""
    (tmp_path / "u.obj").write_text("v 0 0 0\n")
    (tmp_path / "u.step").write_text("ISO-10303-21;\n")
    entry = {"name": "u", "shape": "mesh", "position": [0, 0, 1]} | obj
    with pytest.raises(ConfigError) as err:
        _scene(tmp_path, [entry])
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("points.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n", "mesh file has no faces"),
        ("empty.stl", "", "mesh file has no faces"),
        ("garbage.ply", "ply\nformat nonsense\n", "cannot read mesh"),
        ("flat.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "cannot build a convex hull"),
        ("empty.usda", "#usda 1.0\n", "USD file has no prims"),
        ("broken.usda", "#usda 1.0\ndef Xform \"a\" {\n", "not a readable USD file"),
    ],
)
def test_bad_mesh_files_are_one_line(tmp_path, name, text, expected):
    """Unreadable, empty or flat mesh files fail the build with one line naming the object and file."""
    (tmp_path / name).write_text(text)
    scene = _scene(tmp_path, [{"name": "thing", "shape": "mesh", "mesh_file": name, "position": [0, 0, 1]}])
    with pytest.raises(ConfigError) as err:
        build_scene(scene)
    message = str(err.value)
    assert message.startswith("scene.objects[thing].mesh_file: ")
    assert expected in message and name in message
    assert "\n" not in message


# ------------------------------------------------------------------------------------------- environment
def _cell_file(path, *, up_axis="Z", meters_per_unit=1.0):
    """A small cell: a block without collider, a labelled bin mesh, a cart rigid body on a joint, a physics
    scene, a guide helper and an instanced peg (from a class prototype)."""
    src = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(src, up_axis)
    UsdGeom.SetStageMetersPerUnit(src, meters_per_unit)
    root = UsdGeom.Xform.Define(src, "/cell")
    src.SetDefaultPrim(root.GetPrim())
    block = UsdGeom.Cube.Define(src, "/cell/block")
    block.CreateSizeAttr(0.2)
    block.AddTranslateOp().Set(Gf.Vec3d(0.6, 0.3, 0.85))
    points, faces = u_mesh(0.4, 0.2, 0.2, 0.04)
    bin_mesh = UsdGeom.Mesh.Define(src, "/cell/bin")
    bin_mesh.CreatePointsAttr([Gf.Vec3f(*map(float, p)) for p in points])
    bin_mesh.CreateFaceVertexCountsAttr([3] * len(faces))
    bin_mesh.CreateFaceVertexIndicesAttr(faces.reshape(-1).tolist())
    bin_mesh.AddTranslateOp().Set(Gf.Vec3d(-0.8, 0.0, 0.0))
    UsdPhysics.CollisionAPI.Apply(bin_mesh.GetPrim())
    add_class_label(bin_mesh.GetPrim(), "bin")
    cart = UsdGeom.Xform.Define(src, "/cell/cart")
    cart.AddTranslateOp().Set(Gf.Vec3d(1.5, 0.0, 0.1))
    UsdPhysics.RigidBodyAPI.Apply(cart.GetPrim())
    UsdPhysics.MassAPI.Apply(cart.GetPrim()).CreateMassAttr(2.0)
    UsdGeom.Cube.Define(src, "/cell/cart/body").CreateSizeAttr(0.2)
    joint = UsdPhysics.RevoluteJoint.Define(src, "/cell/hinge")
    joint.CreateBody1Rel().SetTargets(["/cell/cart"])
    UsdPhysics.Scene.Define(src, "/cell/physicsScene")
    UsdGeom.Cube.Define(src, "/cell/helper").CreatePurposeAttr(UsdGeom.Tokens.guide)
    proto = UsdGeom.Xform.Define(src, "/peg_proto")
    proto.GetPrim().SetSpecifier(Sdf.SpecifierClass)
    UsdGeom.Cylinder.Define(src, "/peg_proto/pin").CreateRadiusAttr(0.01)
    for i in range(2):
        peg = UsdGeom.Xform.Define(src, f"/cell/peg_{i}").GetPrim()
        peg.GetInherits().AddInherit("/peg_proto")
        peg.SetInstanceable(True)
    src.GetRootLayer().Save()
    return path


def test_environment_reference_is_static_and_collides(tmp_path):
    """The file composes under /World/Environment; drawn gprims collide, bodies/joints/scenes are off, labels kept."""
    _cell_file(tmp_path / "cell.usda")
    env = {"path": "cell.usda", "position": [0.0, 0.0, 0.0], "label": "fixture"}
    out = write_scene(_scene(tmp_path, environment=env), tmp_path / "out" / "scene.usda")
    stage = Usd.Stage.Open(str(out))
    base = "/World/Environment/cell/cell"
    asset = stage.GetPrimAtPath(base)
    assert asset.GetPrimStack()[0].referenceList.prependedItems[0].assetPath == "../cell.usda"  # relative
    block = stage.GetPrimAtPath(f"{base}/block")
    assert block.IsA(UsdGeom.Cube) and block.HasAPI(UsdPhysics.CollisionAPI)
    assert stage.GetPrimAtPath(f"{base}/cart/body").HasAPI(UsdPhysics.CollisionAPI)
    assert not stage.GetPrimAtPath(f"{base}/helper").HasAPI(UsdPhysics.CollisionAPI)  # guide: not geometry
    for i in range(2):
        pin = stage.GetPrimAtPath(f"{base}/peg_{i}/pin")
        assert not pin.IsInstanceProxy() and pin.HasAPI(UsdPhysics.CollisionAPI)
    composed = list(Usd.PrimRange(stage.GetPrimAtPath("/World/Environment")))
    assert not any(p.HasAPI(UsdPhysics.RigidBodyAPI) or p.HasAPI(UsdPhysics.MassAPI) for p in composed)
    assert not stage.GetPrimAtPath(f"{base}/hinge").IsActive()
    assert not stage.GetPrimAtPath(f"{base}/physicsScene").IsActive()
    scenes = [p for p in stage.Traverse() if p.IsA(UsdPhysics.Scene)]
    assert [str(p.GetPath()) for p in scenes] == ["/World/PhysicsScene"]
    assert get_class_label(stage.GetPrimAtPath(f"{base}/bin")) == "bin"  # the file's own label
    assert get_class_label(block) == "fixture"
    # Block world pose = its file pose (the entry's pose is the identity here).
    matrix = np.array(UsdGeom.Xformable(block).ComputeLocalToWorldTransform(0.0)).T
    np.testing.assert_allclose(matrix[:3, 3], (0.6, 0.3, 0.85), atol=1e-9)
    # The referenced file itself is untouched.
    assert "PhysicsCollisionAPI" not in (tmp_path / "cell.usda").read_text().split("def Cube \"block\"")[1].split("}")[0]
    report = check_stage(out)
    assert report.errors == [], report.errors


def test_environment_pose_units_and_names(tmp_path):
    """Entry pose x the file's centimeters/Y-up correction; a single mapping or a list; names from the file."""
    src = Usd.Stage.CreateNew(str(tmp_path / "shelf-v2.usda"))
    UsdGeom.SetStageUpAxis(src, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(src, 0.01)
    root = UsdGeom.Xform.Define(src, "/shelf")
    src.SetDefaultPrim(root.GetPrim())
    board = UsdGeom.Cube.Define(src, "/shelf/board")
    board.AddTranslateOp().Set(Gf.Vec3d(10.0, 50.0, 0.0))  # cm, Y up: 0.5 m high
    src.GetRootLayer().Save()
    envs = [{"path": "shelf-v2.usda", "position": [1.0, 0.0, 0.0], "rpy_deg": [0, 0, 90]}, {"path": "shelf-v2.usda", "name": "shelf_b", "collide": False}]
    stage = build_scene(_scene(tmp_path, environment=envs))
    first = stage.GetPrimAtPath("/World/Environment/shelf_v2/shelf/board")
    matrix = np.array(UsdGeom.Xformable(first).ComputeLocalToWorldTransform(0.0)).T
    # file (0.1, 0.5, 0) m Y-up -> (0.1, 0, 0.5) Z-up -> yaw 90 -> (0, 0.1, 0.5) -> + (1, 0, 0)
    np.testing.assert_allclose(matrix[:3, 3], (1.0, 0.1, 0.5), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(matrix[:3, :3], axis=0), [0.01] * 3, rtol=1e-9)
    assert first.HasAPI(UsdPhysics.CollisionAPI)
    assert not stage.GetPrimAtPath("/World/Environment/shelf_b/shelf/board").HasAPI(UsdPhysics.CollisionAPI)
    assert get_class_label(first) is None


@pytest.mark.parametrize(
    "env, files, expected",
    [
        ({"path": "nope.usda"}, {}, "scene.environment[0].path: file not found"),
        ({"path": "cell.obj"}, {"cell.obj": "v 0 0 0\n"}, "scene.environment[0].path: expected a .usd, .usda or .usdc file"),
        ([{"path": "a.usda"}, {"path": "a.usda"}], {"a.usda": "#usda 1.0\ndef Xform \"a\" {}\n"}, "scene.environment[1].name: duplicate name 'a'"),
        ({"path": "a.usda", "size": 2}, {"a.usda": "#usda 1.0\n"}, "scene.environment[0].size: unknown key"),
    ],
)
def test_bad_environment_config_is_one_line(tmp_path, env, files, expected):
    """Environment config mistakes name the field in one line."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as err:
        _scene(tmp_path, environment=env)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("#usda 1.0\ndef Xform \"a\" {\n", "scene.environment[0].path: "),
        ("#usda 1.0\n", "USD file has no prims to reference"),
    ],
)
def test_bad_environment_file_is_one_line(tmp_path, text, expected):
    """A broken or empty environment file fails the build with one line naming the entry."""
    (tmp_path / "cell.usda").write_text(text)
    with pytest.raises(ConfigError) as err:
        build_scene(_scene(tmp_path, environment={"path": "cell.usda"}))
    assert expected in str(err.value)
    assert "cell.usda" in str(err.value) and "\n" not in str(err.value)


def test_mesh_objects_pass_stage_checks(tmp_path):
    """A scene with hull, visual-only and environment geometry passes every registered USD validator."""
    points, faces = u_mesh()
    write_obj(tmp_path / "u.obj", points, faces)
    _cell_file(tmp_path / "cell.usda")
    objects = [
        {"name": "u", "shape": "mesh", "mesh_file": "u.obj", "position": [0.3, 0.0, 0.8]},
        {"name": "deco", "shape": "mesh", "mesh_file": "u.obj", "position": [0.3, 0.3, 0.8], "collision": "none", "dynamic": False},
    ]
    out = write_scene(_scene(tmp_path, objects, environment={"path": "cell.usda"}), tmp_path / "scene.usda")
    report = check_stage(out)
    assert report.errors == [] and report.warnings == [], (report.errors, report.warnings)
