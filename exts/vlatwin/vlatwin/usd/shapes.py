"""Primitive and convex-mesh gprims, optionally colliders, with extents authored."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlatwin.config.types import MAX_COORDINATE
from vlatwin.errors import ConfigError
from vlatwin.usd.stage import round_authored, set_local_pose


def spawn_gprim(
    stage,
    path: str,
    kind: str,
    *,
    size=None,
    radius: float | None = None,
    height: float | None = None,
    points: np.ndarray | None = None,
    pos=None,
    rot: np.ndarray | None = None,
    collide: bool = True,
):
    """Define a gprim at ``path`` (local pose ``pos``/``rot`` in its parent) and return its prim.

    Args:
        kind: ``box`` (full extents ``size`` [m]), ``sphere``, ``cylinder``, ``capsule`` (axis local Z,
            capsule ``height`` without the caps), ``plane`` (``size`` = width, length) or
            ``convex_mesh`` (hull of ``points`` [m]).
        collide: apply UsdPhysics.CollisionAPI (convex meshes also get a convexHull approximation).
    """
    from pxr import Gf, UsdGeom, UsdPhysics

    scale = None
    if kind == "box":
        gprim = UsdGeom.Cube.Define(stage, path)
        gprim.CreateSizeAttr(1.0)
        scale = size
    elif kind == "sphere":
        gprim = UsdGeom.Sphere.Define(stage, path)
        gprim.CreateRadiusAttr(round_authored(radius))
    elif kind in ("cylinder", "capsule"):
        gprim = (UsdGeom.Cylinder if kind == "cylinder" else UsdGeom.Capsule).Define(stage, path)
        gprim.CreateRadiusAttr(round_authored(radius))
        gprim.CreateHeightAttr(round_authored(height))
        gprim.CreateAxisAttr(UsdGeom.Tokens.z)
    elif kind == "plane":
        gprim = UsdGeom.Plane.Define(stage, path)
        gprim.CreateWidthAttr(round_authored(size[0]))
        gprim.CreateLengthAttr(round_authored(size[1]))
        gprim.CreateAxisAttr(UsdGeom.Tokens.z)
    elif kind == "convex_mesh":
        gprim = UsdGeom.Mesh.Define(stage, path)
        hull_points, faces = convex_hull(points)
        gprim.CreatePointsAttr([Gf.Vec3f(*round_authored(p)) for p in hull_points])
        gprim.CreateFaceVertexCountsAttr([3] * len(faces))
        gprim.CreateFaceVertexIndicesAttr([int(i) for i in faces.reshape(-1)])
        gprim.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    set_local_pose(gprim, pos=pos, rot=rot, scale=scale)
    extent = UsdGeom.Boundable.ComputeExtentFromPlugins(gprim, 0.0)
    if extent:
        gprim.CreateExtentAttr(extent)
    if collide:
        UsdPhysics.CollisionAPI.Apply(gprim.GetPrim())
        if kind == "convex_mesh":
            UsdPhysics.MeshCollisionAPI.Apply(gprim.GetPrim()).CreateApproximationAttr(
                UsdPhysics.Tokens.convexHull
            )
    return gprim.GetPrim()


def convex_hull(points) -> tuple[np.ndarray, np.ndarray]:
    """Convex hull of ``points`` (N, 3) [m]: (hull vertices (M, 3), outward CCW triangles (F, 3))."""
    from scipy.spatial import ConvexHull, QhullError

    pts = np.asarray(points, dtype=float)
    try:
        hull = ConvexHull(pts)
    except QhullError as exc:
        raise ValueError(f"cannot build a convex hull (points coplanar or degenerate): {str(exc).splitlines()[0]}") from None
    used = np.unique(hull.simplices)
    remap = {int(old): new for new, old in enumerate(used)}
    faces = []
    for simplex, equation in zip(hull.simplices, hull.equations):
        a, b, c = pts[simplex]
        if np.dot(np.cross(b - a, c - a), equation[:3]) < 0.0:
            simplex = simplex[[0, 2, 1]]
        faces.append([remap[int(i)] for i in simplex])
    return pts[used], np.asarray(faces, dtype=np.int64)


def read_obj_vertices(path: Path) -> np.ndarray:
    """Vertex positions ('v' lines) of a Wavefront OBJ file [file units, taken as m]."""
    vertices = []
    try:
        for line_no, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if line.startswith("v "):
                parts = line.split()[1:4]
                try:
                    vertex = [float(v) for v in parts]
                except ValueError:
                    raise ConfigError(f"{path}:{line_no}: bad vertex line {line.strip()!r}") from None
                if len(vertex) != 3 or not all(abs(v) <= MAX_COORDINATE for v in vertex):  # also rejects inf / nan
                    raise ConfigError(
                        f"{path}:{line_no}: bad vertex line {line.strip()!r}: expected 3 numbers in "
                        f"[{-MAX_COORDINATE:g}, {MAX_COORDINATE:g}]"
                    )
                vertices.append(vertex)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read mesh: {exc}") from None
    if len(vertices) < 4:
        raise ConfigError(f"{path}: a convex mesh needs at least 4 vertices, found {len(vertices)}")
    return np.asarray(vertices)
