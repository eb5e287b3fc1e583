"""Objects and environments from files: mesh objects (OBJ/STL/PLY/glTF/USD) and referenced USD environments.

Units and axes of a mesh file: coordinates are meters with Z up, except glTF (Y up by its spec; rotated
+90 deg about X so its up becomes Z) and USD (the file's authored ``metersPerUnit`` and ``upAxis``; when
not authored, meters and Z up). An object's ``up_axis`` overrides the file's, its ``scale`` multiplies on
top. The file's origin becomes the object frame, which ``position`` / ``rpy_deg`` place.

Layout under an object's body prim ``/World/Objects/<name>``:

- ``geom``: the visual mesh as read (points, faces, normals when the file has them), material-bound.
  With ``collision: convex_hull`` it is also the collider, with ``physics:approximation = convexHull``:
  PhysX cooks the hull; Newton 1.8 collides with a CONVEX_MESH hull and draws a ``geom_visual`` copy.
- ``collision/part_<i>`` (``collision: convex_decomposition``): convex pieces from CoACD, each a
  ``purpose = guide`` mesh collider (``convexHull``), so no renderer draws them (Isaac, Newton) while both
  engines collide with them. The decomposition is computed once and cached (see :func:`cache_dir`).

Mass: ``mass`` or ``density`` x the volume of the solid the mesh encloses when it is closed (a watertight,
consistently wound mesh), else of the collision geometry. Mass, centre of mass and principal inertia are
authored explicitly on the body so PhysX and Newton agree (each engine would otherwise derive them from
different geometry: Newton from the visual mesh, PhysX from the cooked hull).

Environments (``scene.environment``) are referenced under ``/World/Environment/<name>/<file root>``:
static geometry. Overrides are written into the scene's own layer only (the file is not edited): gprims
without a collider get ``CollisionAPI`` (``collide: true``; meshes keep their own approximation, or none:
static triangle meshes, which PhysX collides exactly; the Newton backend replaces each mesh collider that
has no convex approximation by its convex hull, with a warning), rigid bodies lose ``RigidBodyAPI`` (so they become static
colliders), joints and physics scenes are deactivated, articulation roots removed. Labels authored in
the file are kept.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlatwin._deps import require
from vlatwin.errors import ConfigError, MissingDependencyError
from vlatwin.usd.stage import WORLD_PATH, quat_wxyz_authored, round_authored, set_local_pose

logger = logging.getLogger(__name__)

TRIMESH_SUFFIXES = (".obj", ".stl", ".ply", ".glb", ".gltf")
"""Mesh files read with trimesh."""
USD_SUFFIXES = (".usd", ".usda", ".usdc")
"""USD files (mesh objects and environments)."""
MESH_SUFFIXES = TRIMESH_SUFFIXES + USD_SUFFIXES
"""Every file type ``shape: mesh`` accepts."""

ENVIRONMENT_PATH = f"{WORLD_PATH}/Environment"
COACD_THRESHOLD = 0.05
"""CoACD concavity threshold (its default): lower gives more, tighter pieces."""
DEFAULT_MAX_HULLS = 32
"""Most convex pieces per decomposed object (PhysX's default for its own decomposition)."""

_Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""+90 deg about X: a Y-up file's up (0, 1, 0) becomes (0, 0, 1)."""


@dataclass(frozen=True)
class MeshData:
    """A polygon mesh in the object frame: meters, Z up."""

    points: np.ndarray
    """(N, 3) float64 [m]."""
    face_counts: np.ndarray
    """(F,) int: vertices per face."""
    face_indices: np.ndarray
    """(sum(face_counts),) int: point index of each face corner."""
    normals: np.ndarray | None = None
    """(N, 3) per point (``vertex``) or (len(face_indices), 3) per corner (``faceVarying``); None when the
    file has none (renderers then compute them)."""
    normals_interpolation: str | None = None

    @property
    def triangles(self) -> np.ndarray:
        """(T, 3) int64: the faces fan-triangulated (faces with fewer than 3 corners dropped)."""
        return _fan_triangulate(self.face_counts, self.face_indices)


def _fan_triangulate(counts, indices) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    if np.all(counts == 3):
        return indices.reshape(-1, 3)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tris = [
        (indices[s], indices[s + k], indices[s + k + 1])
        for s, n in zip(starts, counts)
        if n >= 3
        for k in range(1, n - 1)
    ]
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


# ---------------------------------------------------------------------------------------------- loading
def load_mesh(path: str | Path, *, scale: float = 1.0, up_axis: str | None = None) -> MeshData:
    """Read a mesh file into the object frame (see the module docstring for units and axes).

    Args:
        scale: uniform factor applied after the file's own units.
        up_axis: ``Y`` or ``Z`` to override the file's up axis.

    Raises:
        ConfigError: unreadable file, unsupported type, or no faces (one line naming the file).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in USD_SUFFIXES:
        mesh, file_up, meters_per_unit = _load_usd_meshes(path)
    elif suffix in TRIMESH_SUFFIXES:
        mesh, meters_per_unit = _load_trimesh(path), 1.0
        file_up = "Y" if suffix in (".glb", ".gltf") else "Z"
    else:
        raise ConfigError(
            f"{path}: unsupported mesh file type {suffix or '(none)'!r}; use one of {', '.join(MESH_SUFFIXES)}"
        )
    rot = _Y_UP_TO_Z_UP if (up_axis or file_up) == "Y" else np.eye(3)
    factor = float(scale) * meters_per_unit
    points = mesh.points @ rot.T * factor
    normals = None if mesh.normals is None else mesh.normals @ rot.T
    if not np.all(np.isfinite(points)):
        raise ConfigError(f"{path}: mesh has non-finite coordinates")
    return MeshData(points, mesh.face_counts, mesh.face_indices, normals, mesh.normals_interpolation)


def _load_trimesh(path: Path) -> MeshData:
    trimesh = _import_trimesh()
    try:
        # process=False keeps the file's vertices (no merging or reordering): the authored mesh is the file's.
        loaded = trimesh.load(str(path), process=False)
    except Exception as exc:  # trimesh raises assorted exception types for malformed files
        text = str(exc).strip().splitlines()
        detail = text[0] if text else "no details"
        raise ConfigError(f"{path}: cannot read mesh ({type(exc).__name__}: {detail})") from None
    if isinstance(loaded, trimesh.Scene):
        if not loaded.geometry:
            raise ConfigError(f"{path}: mesh file has no faces")
        # Every geometry with its node transform, as one mesh.
        loaded = loaded.to_mesh() if hasattr(loaded, "to_mesh") else loaded.dump(concatenate=True)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ConfigError(f"{path}: mesh file has no faces")
    faces = np.asarray(loaded.faces, dtype=np.int64)
    normals = None
    # Normals the file carries (OBJ vn, glTF NORMAL, PLY nx/ny/nz) sit in trimesh's cache from the start;
    # computed ones would only repeat what a renderer derives itself.
    if "vertex_normals" in loaded._cache:
        normals = np.asarray(loaded.vertex_normals, dtype=np.float64)
    return MeshData(
        np.asarray(loaded.vertices, dtype=np.float64),
        np.full(len(faces), 3, dtype=np.int64),
        faces.reshape(-1),
        normals,
        "vertex" if normals is not None else None,
    )


def _open_usd(path: Path, field: str = ""):
    from pxr import Tf, Usd

    prefix = f"{field}: " if field else ""
    try:
        stage = Usd.Stage.Open(str(path))
    except Tf.ErrorException as exc:
        lines = str(exc).strip().splitlines()
        detail = lines[-1].strip() if lines else "parse error"
        raise ConfigError(f"{prefix}{path}: not a readable USD file ({detail})") from None
    if stage is None:
        raise ConfigError(f"{prefix}{path}: not a readable USD file")
    return stage


def _stage_units(stage) -> tuple[str, float]:
    """(up axis, meters per unit) as authored, else the project's convention (Z, 1.0)."""
    from pxr import UsdGeom

    up = str(UsdGeom.GetStageUpAxis(stage)) if stage.HasAuthoredMetadata(UsdGeom.Tokens.upAxis) else "Z"
    mpu = float(UsdGeom.GetStageMetersPerUnit(stage)) if UsdGeom.StageHasAuthoredMetersPerUnit(stage) else 1.0
    return up, mpu


def _root_prim(stage):
    """The default prim, else the first root prim."""
    root = stage.GetDefaultPrim()
    if not root:
        children = stage.GetPseudoRoot().GetChildren()
        root = children[0] if children else None
    return root


def _load_usd_meshes(path: Path) -> tuple[MeshData, str, float]:
    """Every drawn mesh under the default prim (purpose default/render, visible), merged in file coordinates."""
    from pxr import Usd, UsdGeom

    stage = _open_usd(path)
    up, mpu = _stage_units(stage)
    root = _root_prim(stage)
    if root is None:
        raise ConfigError(f"{path}: USD file has no prims")
    cache = UsdGeom.XformCache()
    parts = []
    drawn = (UsdGeom.Tokens.default_, UsdGeom.Tokens.render)
    for prim in Usd.PrimRange(root, Usd.TraverseInstanceProxies()):
        if not prim.IsA(UsdGeom.Mesh):
            continue
        imageable = UsdGeom.Imageable(prim)
        if imageable.ComputeVisibility() == UsdGeom.Tokens.invisible or imageable.ComputePurpose() not in drawn:
            continue
        mesh = UsdGeom.Mesh(prim)
        points = _get(mesh.GetPointsAttr())
        counts = _get(mesh.GetFaceVertexCountsAttr())
        indices = _get(mesh.GetFaceVertexIndicesAttr())
        if points is None or counts is None or indices is None or len(points) == 0 or len(counts) == 0:
            continue
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        counts = np.asarray(counts, dtype=np.int64)
        indices = np.asarray(indices, dtype=np.int64)
        if counts.sum() != len(indices) or indices.min() < 0 or indices.max() >= len(points):
            raise ConfigError(f"{path}: {prim.GetPath()}: faceVertexCounts/faceVertexIndices do not match the points")
        matrix = np.array(cache.GetLocalToWorldTransform(prim), dtype=np.float64).T
        normals, interp = _usd_normals(mesh, len(points), len(indices))
        if normals is not None:
            normal_matrix = np.linalg.inv(matrix[:3, :3]).T
            normals = normals @ normal_matrix.T
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
        parts.append((points @ matrix[:3, :3].T + matrix[:3, 3], counts, indices, normals, interp))
    if not parts:
        raise ConfigError(f"{path}: no visible UsdGeom.Mesh with faces under {root.GetPath()}")
    offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
    interps = {p[4] for p in parts}
    keep_normals = None not in interps and len(interps) == 1
    merged = MeshData(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] + off for p, off in zip(parts, offsets)]),
        np.concatenate([p[3] for p in parts]) if keep_normals else None,
        parts[0][4] if keep_normals else None,
    )
    return merged, up, mpu


def _get(attr):
    from pxr import Usd

    if not attr:
        return None
    value = attr.Get()
    if value is None and attr.GetNumTimeSamples():
        value = attr.Get(Usd.TimeCode.EarliestTime())
    return value


def _usd_normals(mesh, n_points: int, n_corners: int):
    """Authored normals (primvars:normals first, as USD specifies) if per point or per face corner."""
    from pxr import UsdGeom

    primvar = UsdGeom.PrimvarsAPI(mesh).GetPrimvar("normals")
    if primvar and primvar.HasAuthoredValue():
        values, interp = primvar.ComputeFlattened(), primvar.GetInterpolation()
    else:
        values, interp = _get(mesh.GetNormalsAttr()), mesh.GetNormalsInterpolation()
    if values is None or len(values) == 0:
        return None, None
    values = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    if interp in (UsdGeom.Tokens.vertex, UsdGeom.Tokens.varying) and len(values) == n_points:
        return values, "vertex"
    if interp == UsdGeom.Tokens.faceVarying and len(values) == n_corners:
        return values, "faceVarying"
    return None, None


def mesh_object_points(obj) -> np.ndarray:
    """Points [m] of a ``shape: mesh`` object in its own frame (for placement and sampling)."""
    return load_mesh(obj.mesh_file, scale=obj.scale, up_axis=obj.up_axis).points


# ------------------------------------------------------------------------------------------- geometry
def _import_trimesh():
    """trimesh, or a one-line install hint (inside Isaac Sim install it alone: Kit ships its own pxr)."""
    try:
        import trimesh
    except ImportError as exc:
        raise MissingDependencyError(
            f"trimesh is not installed ({exc}); install it with: pip install 'trimesh>=4.4' "
            "(included in 'vlatwin[usd]' and 'vlatwin[newton]')"
        ) from exc
    return trimesh


def _trimesh(points, triangles, *, process: bool):
    trimesh = _import_trimesh()
    return trimesh.Trimesh(np.asarray(points, dtype=np.float64), np.asarray(triangles, dtype=np.int64), process=process)


def closed_solid(mesh: MeshData):
    """The mesh as a closed, outward-wound trimesh when it encloses a volume, else None."""
    solid = _trimesh(mesh.points, mesh.triangles, process=True)  # merges duplicate points (STL soups)
    if not (solid.is_watertight and solid.is_winding_consistent):
        return None
    if solid.volume < 0.0:
        solid.invert()
    return solid if solid.volume > 0.0 else None


def convex_decomposition(mesh: MeshData, *, max_hulls: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Convex pieces of ``mesh`` from CoACD (cached): a list of (points (M, 3), outward triangles (K, 3))."""
    from vlatwin.usd.shapes import convex_hull

    merged = _trimesh(mesh.points, mesh.triangles, process=True)
    vertices = np.ascontiguousarray(merged.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(merged.faces, dtype=np.int64)
    pieces = _cached_coacd(vertices, faces, max_hulls)
    parts = []
    for piece in pieces:
        try:
            parts.append(convex_hull(piece))
        except ValueError:
            continue  # a flat sliver adds nothing to collision
    if not parts:
        raise ValueError("the convex decomposition produced no solid piece (is the mesh flat?)")
    return parts


def cache_dir() -> Path:
    """Where decompositions are cached: ``$VLATWIN_CACHE_DIR/coacd`` or ``~/.cache/vlatwin/coacd``."""
    base = os.environ.get("VLATWIN_CACHE_DIR") or Path.home() / ".cache" / "vlatwin"
    return Path(base) / "coacd"


def _cached_coacd(vertices: np.ndarray, faces: np.ndarray, max_hulls: int) -> list[np.ndarray]:
    coacd = require("coacd", extra="coacd")
    version = getattr(coacd, "__version__", "")
    try:
        from importlib.metadata import version as dist_version

        version = dist_version("coacd")
    except Exception:  # noqa: BLE001 - metadata is only part of the cache key
        pass
    digest = hashlib.sha256()
    for item in (vertices.tobytes(), faces.tobytes(), f"{COACD_THRESHOLD}|{max_hulls}|{version}".encode()):
        digest.update(item)
    path = cache_dir() / f"{digest.hexdigest()}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                return [data[f"part_{i}"] for i in range(int(data["count"]))]
        except (OSError, ValueError, KeyError):
            logger.debug("ignoring unreadable decomposition cache %s", path)
    coacd.set_log_level("error")
    result = coacd.run_coacd(
        coacd.Mesh(vertices, faces), threshold=COACD_THRESHOLD, max_convex_hull=int(max_hulls), seed=0
    )
    pieces = [np.asarray(points, dtype=np.float64) for points, _ in result]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, count=len(pieces), **{f"part_{i}": p for i, p in enumerate(pieces)})
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug("could not cache the decomposition in %s: %s", path, exc)
    return pieces


def mass_properties(solids, mass: float | None, density: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Mass [kg], centre of mass [m], principal moments [kg m^2] and their axes (3x3, columns) of solids.

    Args:
        solids: closed trimeshes (overlaps count twice, as in PhysX's per-shape sums).
        mass: total mass, or None for ``density`` x volume.
    """
    volumes = np.array([s.volume for s in solids], dtype=np.float64)
    volume = float(volumes.sum())
    if not volume > 0.0:
        raise ValueError("the collision geometry encloses no volume")
    centres = np.array([s.center_mass for s in solids], dtype=np.float64)
    com = (volumes[:, None] * centres).sum(axis=0) / volume
    inertia = np.zeros((3, 3))
    for solid, vol, centre in zip(solids, volumes, centres):
        d = centre - com
        # trimesh's moment_inertia is about the solid's own centre of mass, for density 1.
        parallel_axis = vol * (np.dot(d, d) * np.eye(3) - np.outer(d, d))
        inertia += np.asarray(solid.moment_inertia, dtype=np.float64) + parallel_axis
    total = float(mass) if mass is not None else density * volume
    inertia *= total / volume
    moments, axes = _principal(inertia)
    return total, com, moments, axes


def _principal(inertia: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal moments and axes; exactly diagonal tensors keep the frame's own axes.

    Near-diagonal tensors (rounding noise only) are treated as diagonal so that symmetric shapes, whose
    eigenvectors are otherwise arbitrary, author the same axes on every machine.
    """
    inertia = 0.5 * (inertia + inertia.T)
    scale = float(np.max(np.abs(np.diag(inertia)))) or 1.0
    off = inertia - np.diag(np.diag(inertia))
    if np.max(np.abs(off)) <= 1e-9 * scale:
        return np.diag(inertia).copy(), np.eye(3)
    moments, axes = np.linalg.eigh(inertia)
    if np.linalg.det(axes) < 0.0:
        axes[:, 2] *= -1.0
    return moments, axes


# ------------------------------------------------------------------------------------------- authoring
def _define_mesh(stage, path: str, points, counts, indices, *, normals=None, interpolation=None, double_sided=False):
    from pxr import UsdGeom, Vt

    mesh = UsdGeom.Mesh.Define(stage, path)
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.round(np.asarray(points, dtype=np.float64), 9).astype(np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.asarray(counts, dtype=np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.asarray(indices, dtype=np.int32)))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    if normals is not None:
        mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(np.round(normals, 9).astype(np.float32)))
        mesh.SetNormalsInterpolation(interpolation)
    if double_sided:
        mesh.CreateDoubleSidedAttr(True)
    extent = UsdGeom.Boundable.ComputeExtentFromPlugins(mesh, 0.0)
    if extent:
        mesh.CreateExtentAttr(extent)
    return mesh


def _apply_hull_collider(prim) -> None:
    from pxr import UsdPhysics

    UsdPhysics.CollisionAPI.Apply(prim)
    UsdPhysics.MeshCollisionAPI.Apply(prim).CreateApproximationAttr(UsdPhysics.Tokens.convexHull)


def spawn_mesh_object(stage, body_path: str, obj, *, field: str):
    """Author the visual mesh and colliders of a ``shape: mesh`` object under ``body_path``.

    On a dynamic object this also authors the body's mass properties (see the module docstring).

    Returns:
        (visual mesh prim, separate collider prims): bind the object's material to all of them.

    Raises:
        ConfigError: unreadable/empty file, or no collision volume (``field`` names the config entry).
    """
    from pxr import UsdGeom, UsdPhysics

    from vlatwin.usd.shapes import convex_hull

    try:
        mesh = load_mesh(obj.mesh_file, scale=obj.scale, up_axis=obj.up_axis)
    except ConfigError as exc:
        raise ConfigError(f"{field}.mesh_file: {exc}") from None
    triangles = mesh.triangles
    if len(triangles) == 0:
        raise ConfigError(f"{field}.mesh_file: {obj.mesh_file}: mesh has no triangles")
    solid = closed_solid(mesh)
    geom = _define_mesh(
        stage,
        f"{body_path}/geom",
        mesh.points,
        mesh.face_counts,
        mesh.face_indices,
        normals=mesh.normals,
        interpolation=mesh.normals_interpolation,
        double_sided=solid is None,  # an open surface is seen from both sides
    )
    colliders = []
    collision_solids = []
    mode = obj.collision_mode
    try:
        if mode == "convex_hull":
            hull_points, hull_faces = convex_hull(mesh.points)
            _apply_hull_collider(geom.GetPrim())
            collision_solids.append(_trimesh(hull_points, hull_faces, process=False))
        elif mode == "convex_decomposition":
            parts = convex_decomposition(mesh, max_hulls=obj.max_hulls or DEFAULT_MAX_HULLS)
            group = UsdGeom.Xform.Define(stage, f"{body_path}/collision")
            group.CreatePurposeAttr(UsdGeom.Tokens.guide)
            for i, (points, faces) in enumerate(parts):
                part_path = f"{body_path}/collision/part_{i:03d}"
                part = _define_mesh(stage, part_path, points, np.full(len(faces), 3), faces.reshape(-1))
                part.CreatePurposeAttr(UsdGeom.Tokens.guide)
                _apply_hull_collider(part.GetPrim())
                colliders.append(part.GetPrim())
                collision_solids.append(_trimesh(points, faces, process=False))
    except ValueError as exc:
        raise ConfigError(f"{field}.mesh_file: {obj.mesh_file}: {exc}") from None
    if obj.dynamic:
        try:
            solids = [solid] if solid is not None else collision_solids
            mass, com, moments, axes = mass_properties(solids, obj.mass, obj.density)
        except ValueError as exc:
            raise ConfigError(f"{field}.mesh_file: {obj.mesh_file}: {exc}") from None
        from pxr import Gf

        mass_api = UsdPhysics.MassAPI.Apply(stage.GetPrimAtPath(body_path))
        mass_api.CreateMassAttr(round_authored(mass))
        mass_api.CreateCenterOfMassAttr(Gf.Vec3f(*round_authored(com)))
        mass_api.CreateDiagonalInertiaAttr(Gf.Vec3f(*round_authored(moments)))
        mass_api.CreatePrincipalAxesAttr(Gf.Quatf(*quat_wxyz_authored(axes)))
    return geom.GetPrim(), colliders


# ----------------------------------------------------------------------------------------- environment
def reference_environment(stage, env, *, field: str):
    """Reference ``env.path`` under ``/World/Environment/<name>`` as static geometry; returns the pose prim.

    The reference holds the absolute file path so the in-memory stage composes (the overrides are
    authored on composed prims); :func:`relocated_root_layer` makes it relative for a saved file.

    Raises:
        ConfigError: unreadable file or nothing to reference (``field`` names the config entry).
    """
    from pxr import Sdf, UsdGeom

    from vlatwin.usd.semantics import add_class_label
    from vlatwin.utils.transforms import rpy_deg_to_matrix

    path = Path(env.path)
    source = _open_usd(path, f"{field}.path")
    root = _root_prim(source)
    if root is None:
        raise ConfigError(f"{field}.path: {path}: USD file has no prims to reference")
    up, mpu = _stage_units(source)
    asset_path = str(path.resolve())

    if not stage.GetPrimAtPath(ENVIRONMENT_PATH):
        UsdGeom.Scope.Define(stage, ENVIRONMENT_PATH)
    holder = UsdGeom.Xform.Define(stage, f"{ENVIRONMENT_PATH}/{env.prim_name}")
    rot = rpy_deg_to_matrix(env.rpy_deg) @ (_Y_UP_TO_Z_UP if up == "Y" else np.eye(3))
    factor = env.scale * mpu
    set_local_pose(holder, pos=env.position, rot=rot, scale=None if factor == 1.0 else (factor,) * 3)
    # A typeless def: the prim takes its type from the referenced root.
    asset = stage.DefinePrim(f"{holder.GetPath()}/{root.GetName()}")
    if root == source.GetDefaultPrim():
        asset.GetReferences().AddReference(asset_path)
    else:
        asset.GetReferences().AddReference(asset_path, Sdf.Path(str(root.GetPath())))
    _make_static(asset, collide=env.collide, where=f"{field} ({path.name})")
    if env.label:
        add_class_label(holder.GetPrim(), env.label)
    return holder.GetPrim()


def relocated_root_layer(stage, out_dir: str | Path):
    """A copy of ``stage``'s root layer with environment references relative to ``out_dir``, or None.

    None when the stage references no environment: its root layer is exported as it is.
    """
    from pxr import Sdf

    layer = stage.GetRootLayer()
    if not layer.GetPrimAtPath(ENVIRONMENT_PATH):
        return None
    copy = Sdf.Layer.CreateAnonymous(".usda")
    copy.TransferContent(layer)
    out_dir = Path(out_dir).resolve()
    for holder in copy.GetPrimAtPath(ENVIRONMENT_PATH).nameChildren:
        for asset in holder.nameChildren:
            refs = list(asset.referenceList.prependedItems)
            if not refs:
                continue
            asset.referenceList.prependedItems = [
                Sdf.Reference(
                    os.path.relpath(ref.assetPath, out_dir) if os.path.isabs(ref.assetPath) else ref.assetPath,
                    ref.primPath,
                    ref.layerOffset,
                    ref.customData,
                )
                for ref in refs
            ]
    return copy


_GPRIM_TYPES = ("Mesh", "Cube", "Sphere", "Cylinder", "Capsule", "Cone", "Plane")


def _make_static(asset, *, collide: bool, where: str) -> None:
    """Author the static-environment overrides on the composed prims below ``asset`` (our layer only)."""
    from pxr import Usd, UsdGeom, UsdPhysics

    # Edits cannot target prims inside instance prototypes; make the instances that need one local.
    for _ in range(32):
        blocked = set()
        for prim in Usd.PrimRange(asset, Usd.TraverseInstanceProxies()):
            if prim.IsInstanceProxy() and _needs_edit(prim, collide, UsdGeom, UsdPhysics):
                blocked.add(_outermost_instance(prim))
        if not blocked:
            break
        for instance in blocked:
            instance.SetInstanceable(False)

    counts = {"colliders added": 0, "rigid bodies made static": 0, "joints disabled": 0, "physics scenes disabled": 0}
    for prim in list(Usd.PrimRange(asset)):
        if not prim.IsValid() or not prim.IsActive():
            continue
        if prim.IsA(UsdPhysics.Scene):
            prim.SetActive(False)
            counts["physics scenes disabled"] += 1
            continue
        if prim.IsA(UsdPhysics.Joint):
            prim.SetActive(False)
            counts["joints disabled"] += 1
            continue
        if prim.HasAPI(UsdPhysics.ArticulationRootAPI):
            prim.RemoveAPI(UsdPhysics.ArticulationRootAPI)
        if prim.HasAPI(UsdPhysics.RigidBodyAPI):
            prim.RemoveAPI(UsdPhysics.RigidBodyAPI)
            if prim.HasAPI(UsdPhysics.MassAPI):
                prim.RemoveAPI(UsdPhysics.MassAPI)
            counts["rigid bodies made static"] += 1
        if collide and _wants_collider(prim, UsdGeom, UsdPhysics):
            UsdPhysics.CollisionAPI.Apply(prim)
            counts["colliders added"] += 1
    dynamic = {k: v for k, v in counts.items() if v and k != "colliders added"}
    if dynamic:
        logger.warning(
            "%s: environments are static: %s", where, ", ".join(f"{v} {k}" for k, v in dynamic.items())
        )


def _wants_collider(prim, UsdGeom, UsdPhysics) -> bool:
    """A drawn gprim (purpose default, visible) without a collider."""
    if prim.GetTypeName() not in _GPRIM_TYPES or prim.HasAPI(UsdPhysics.CollisionAPI):
        return False
    imageable = UsdGeom.Imageable(prim)
    drawn = imageable.ComputePurpose() == UsdGeom.Tokens.default_
    return drawn and imageable.ComputeVisibility() != UsdGeom.Tokens.invisible


def _needs_edit(prim, collide, UsdGeom, UsdPhysics) -> bool:
    return (
        prim.IsA(UsdPhysics.Scene)
        or prim.IsA(UsdPhysics.Joint)
        or prim.HasAPI(UsdPhysics.RigidBodyAPI)
        or prim.HasAPI(UsdPhysics.ArticulationRootAPI)
        or (collide and _wants_collider(prim, UsdGeom, UsdPhysics))
    )


def _outermost_instance(prim):
    found = None
    while prim and not prim.IsPseudoRoot():
        if prim.IsInstance():
            found = prim
        prim = prim.GetParent()
    return found
