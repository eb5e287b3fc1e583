"""Read a stage back into the run description a job needs: USD is the source of truth of a scene.

A stage built by ``vlatwin scene build`` or edited in Isaac Sim / usdview carries everything a run
needs: cameras (UsdGeom.Camera + ``vlatwin:resolution``), LIDAR mounts (``vlatwin:lidar*``), labels
(UsdSemantics ``class``), rigid bodies, lights, the physics scene. :func:`config_from_stage` turns it
into the same validated :class:`VlatwinConfig` a YAML file gives, so every command takes either.
Fields the stage cannot hold (dataset settings: frames, annotators, randomization) come from a
settings file or the defaults.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlatwin.errors import ConfigError, StageError
from vlatwin.utils.transforms import look_at_matrix, matrix_to_rpy_deg

DEFAULT_RESOLUTION = (640, 480)
"""Used for a camera without ``vlatwin:resolution`` (a camera added in Isaac Sim or usdview)."""
#: An authored look-at is trusted while the camera's rotation still matches it within this [rad].
LOOK_AT_TOLERANCE = 1e-4


def _world(prim, cache) -> np.ndarray:
    return np.array(cache.GetLocalToWorldTransform(prim)).T


def _rotation_scale(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.linalg.norm(T[:3, :3], axis=0)
    return T[:3, :3] / np.where(scale > 0, scale, 1.0), scale


def read_cameras(stage) -> list[dict]:
    """Camera configs (as dicts for :class:`CameraCfg`) of every perspective UsdGeom.Camera on the stage."""
    from pxr import UsdGeom

    cache = UsdGeom.XformCache()
    cameras = []
    for prim in stage.Traverse():
        if not prim.IsA(UsdGeom.Camera):
            continue
        camera = UsdGeom.Camera(prim)
        if camera.GetProjectionAttr().Get() not in (None, UsdGeom.Tokens.perspective):
            continue
        T = _world(prim, cache)
        rot, _ = _rotation_scale(T)
        position = T[:3, 3]
        resolution = prim.GetAttribute("vlatwin:resolution").Get() if prim.HasAttribute("vlatwin:resolution") else None
        look_at_attr = prim.GetAttribute("vlatwin:lookAt")
        up_attr = prim.GetAttribute("vlatwin:up")
        look_at = up = None
        if look_at_attr and look_at_attr.HasAuthoredValue() and up_attr and up_attr.HasAuthoredValue():
            look_at, up = np.array(look_at_attr.Get(), dtype=float), np.array(up_attr.Get(), dtype=float)
            try:
                expected = look_at_matrix(position, look_at, up)
            except (ValueError, FloatingPointError, ZeroDivisionError):
                expected = None
            if expected is None or not np.all(np.isfinite(expected)) or np.abs(expected - rot).max() > LOOK_AT_TOLERANCE:
                look_at = None  # the camera was turned after the aim was authored: the transform wins
        if look_at is None:
            # Aim along the optical axis (-Z) at 1 m; +Y of the camera is up.
            look_at, up = position - rot[:, 2], rot[:, 1]
        clipping = camera.GetClippingRangeAttr().Get()
        cameras.append(
            {
                "name": prim.GetName(),
                "position": [float(v) for v in position],
                "look_at": [float(v) for v in look_at],
                "up": [float(v) for v in up],
                "resolution": [int(v) for v in (resolution if resolution is not None else DEFAULT_RESOLUTION)],
                "focal_length": float(camera.GetFocalLengthAttr().Get()),
                "horizontal_aperture": float(camera.GetHorizontalApertureAttr().Get()),
                **({"clipping_range": [float(clipping[0]), float(clipping[1])]} if clipping is not None else {}),
            }
        )
    return cameras


def read_lidars(stage) -> list[dict]:
    """LIDAR configs of every prim with ``vlatwin:lidarProfile`` (a vlatwin mount)."""
    import json

    from pxr import UsdGeom

    lidars = []
    for prim in stage.Traverse():
        attr = prim.GetAttribute("vlatwin:lidarProfile")
        if not attr or not attr.HasAuthoredValue():
            continue
        inline = prim.GetAttribute("vlatwin:lidarProfileJson")
        profile = json.loads(inline.Get()) if inline and inline.HasAuthoredValue() else attr.Get()
        T = np.array(UsdGeom.Xformable(prim).GetLocalTransformation()).T
        rot, _ = _rotation_scale(T)
        parent = prim.GetRelationship("vlatwin:lidarParent")
        targets = parent.GetTargets() if parent else []
        entry = {
            "name": prim.GetName(),
            "profile": profile,
            "position": [float(v) for v in T[:3, 3]],
            "rpy_deg": list(matrix_to_rpy_deg(rot)),
        }
        if targets:
            entry["parent"] = str(targets[0])
        else:
            world = _world(prim, UsdGeom.XformCache())
            entry["position"] = [float(v) for v in world[:3, 3]]
            entry["rpy_deg"] = list(matrix_to_rpy_deg(_rotation_scale(world)[0]))
        for key, name in (("blocks", "vlatwin:lidarBlocks"), ("noise", "vlatwin:lidarNoise")):
            a = prim.GetAttribute(name)
            if a and a.HasAuthoredValue():
                entry[key] = a.Get()
        lidars.append(entry)
    return lidars


def _gprim_points(prim, T_body_inv, cache) -> np.ndarray | None:
    """Sample points [m] of a gprim in its rigid body's frame."""
    from pxr import UsdGeom

    from vlatwin.sensors.camera.shapes import box_points, capsule_points, cylinder_points, sphere_points

    T = T_body_inv @ _world(prim, cache)
    if prim.IsA(UsdGeom.Cube):
        local = box_points(np.full(3, UsdGeom.Cube(prim).GetSizeAttr().Get() / 2.0))
    elif prim.IsA(UsdGeom.Sphere):
        local = sphere_points(UsdGeom.Sphere(prim).GetRadiusAttr().Get(), 100)
    elif prim.IsA(UsdGeom.Cylinder) or prim.IsA(UsdGeom.Capsule):
        shape = UsdGeom.Cylinder(prim) if prim.IsA(UsdGeom.Cylinder) else UsdGeom.Capsule(prim)
        radius, height = shape.GetRadiusAttr().Get(), shape.GetHeightAttr().Get()
        axis = shape.GetAxisAttr().Get() or "Z"
        local = (cylinder_points if prim.IsA(UsdGeom.Cylinder) else capsule_points)(radius, height / 2.0)
        if axis != "Z":  # the sample helpers run along Z
            swap = {"X": [2, 1, 0], "Y": [0, 2, 1]}[axis]
            local = local[:, swap]
    elif prim.IsA(UsdGeom.Mesh):
        points = UsdGeom.Mesh(prim).GetPointsAttr().Get()
        if not points:
            return None
        local = np.asarray(points, dtype=float)
    else:
        return None
    return local @ T[:3, :3].T + T[:3, 3]


def read_objects(stage, articulation_roots: list[str]) -> list[dict]:
    """Free rigid bodies (not part of a robot) as ``convex_mesh`` object configs for randomization.

    The objects keep their prims (nothing is re-authored); the config view only gives the randomizer a
    footprint (sample points in the body frame) and a label.
    """
    from pxr import Usd, UsdGeom, UsdPhysics

    from vlatwin.usd.semantics import get_class_label

    cache = UsdGeom.XformCache()
    objects = []
    for prim in stage.Traverse():
        if not prim.HasAPI(UsdPhysics.RigidBodyAPI):
            continue
        path = str(prim.GetPath())
        if any(path == r or path.startswith(r + "/") for r in articulation_roots):
            continue
        if path != f"/World/Objects/{prim.GetName()}":
            continue  # the randomizer moves objects by their /World/Objects path
        T = _world(prim, cache)
        rot, _ = _rotation_scale(T)
        T_inv = np.linalg.inv(np.block([[rot, T[:3, 3:4]], [np.zeros((1, 3)), np.ones((1, 1))]]))
        points = [pts for child in Usd.PrimRange(prim) if (pts := _gprim_points(child, T_inv, cache)) is not None]
        if not points:
            continue
        enabled = prim.GetAttribute("physics:rigidBodyEnabled").Get()
        objects.append(
            {
                "name": prim.GetName(),
                "shape": "convex_mesh",
                # Body-frame points; the body's rotation is given separately (rpy_deg), as the config does.
                "vertices": np.concatenate(points).round(9).tolist(),
                "position": [float(v) for v in T[:3, 3]],
                "rpy_deg": list(matrix_to_rpy_deg(rot)),
                "label": get_class_label(prim) or prim.GetName(),
                "dynamic": enabled is not False,
            }
        )
    return objects


def config_from_stage(stage_path: str | Path, settings: dict | None = None):
    """A :class:`VlatwinConfig` describing the stage at ``stage_path`` (plus ``settings``' ``generate:``)."""
    from pxr import Usd, UsdGeom, UsdLux, UsdPhysics

    from vlatwin.config.loader import config_from_dict
    from vlatwin.usd.check import open_stage
    from vlatwin.usd.semantics import get_class_label

    stage_path = Path(stage_path)
    stage = open_stage(stage_path)
    if UsdGeom.GetStageUpAxis(stage) != UsdGeom.Tokens.z:
        raise StageError(f"{stage_path}: the stage is {UsdGeom.GetStageUpAxis(stage)}-up; vlatwin runs Z-up stages")
    cache = UsdGeom.XformCache()
    roots = [str(p.GetPath()) for p in stage.Traverse() if p.HasAPI(UsdPhysics.ArticulationRootAPI)]
    scene: dict = {"name": _identifier(stage_path.stem)}
    for prim in stage.Traverse():
        if prim.IsA(UsdPhysics.Scene):
            rate = prim.GetAttribute("physxScene:timeStepsPerSecond")
            if rate and rate.HasAuthoredValue() and rate.Get():
                scene["physics"] = {"dt": 1.0 / float(rate.Get())}
            break
    if roots:
        scene["robot"] = {"position": [float(v) for v in _world(stage.GetPrimAtPath(roots[0]), cache)[:3, 3]]}
    table = next((p for p in stage.Traverse() if get_class_label(p) == "table"), None)
    if table is not None:
        box = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_]).ComputeWorldBound(table).ComputeAlignedRange()
        lo, hi = np.array(box.GetMin()), np.array(box.GetMax())
        scene["table"] = {"size": [float(hi[0] - lo[0]), float(hi[1] - lo[1]), float(hi[2])], "position": [float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2)]}
    else:
        scene["table"] = {"enabled": False}
    scene["floor"] = {"enabled": False}  # present or not, the stage already has it; the config view never authors
    lights = []
    for prim in stage.Traverse():
        if prim.IsA(UsdLux.DistantLight):
            light = UsdLux.DistantLight(prim)
            rot, _ = _rotation_scale(_world(prim, cache))
            lights.append(
                {
                    "name": prim.GetName(),
                    "type": "distant",
                    "intensity": float(light.GetIntensityAttr().Get() or 1.0),
                    "color": [float(c) for c in (light.GetColorAttr().Get() or (1.0, 1.0, 1.0))],
                    "rpy_deg": list(matrix_to_rpy_deg(rot)),
                }
            )
    scene["lights"] = lights
    scene["cameras"] = read_cameras(stage)
    scene["lidars"] = read_lidars(stage)
    scene["objects"] = read_objects(stage, roots)
    data = {"scene": scene}
    if settings:
        unknown = set(settings) - {"generate"}
        if unknown:
            raise ConfigError(f"settings for a USD stage take a 'generate:' section only (the scene is the stage); remove {sorted(unknown)}")
        data["generate"] = settings.get("generate") or {}
    return config_from_dict(data, source=stage_path, base_dir=stage_path.parent)


def _identifier(text: str) -> str:
    import re

    name = re.sub(r"\W", "_", text)
    return name if re.match(r"^[A-Za-z_]", name) else f"scene_{name}"
