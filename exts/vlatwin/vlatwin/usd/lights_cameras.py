"""UsdLux lights and UsdGeom cameras."""

from __future__ import annotations

import numpy as np

from vlatwin.usd.stage import round_authored, set_local_pose
from vlatwin.utils.transforms import look_at_matrix, rpy_deg_to_matrix

LIGHTS_PATH = "/World/Lights"
CAMERAS_PATH = "/World/Cameras"
LIDARS_PATH = "/World/Lidars"


def spawn_light(stage, cfg):
    """Author a light from a :class:`LightCfg` under ``/World/Lights``."""
    from pxr import Gf, UsdLux

    path = f"{LIGHTS_PATH}/{cfg.name}"
    if cfg.type == "distant":
        light = UsdLux.DistantLight.Define(stage, path)
        light.CreateAngleAttr(float(cfg.angle_deg))
        # Normalized: intensity is the illuminance [lux] on a surface facing the light, whatever its angle
        # (unnormalized, UsdLux reads it as the sun disc's luminance: 3000 nit over 1 deg is under 1 lux).
        light.CreateNormalizeAttr(True)
    elif cfg.type == "dome":
        light = UsdLux.DomeLight.Define(stage, path)
        if cfg.texture is not None:
            from pxr import Sdf

            light.CreateTextureFileAttr(Sdf.AssetPath(str(cfg.texture)))
            light.CreateTextureFormatAttr(UsdLux.Tokens.latlong)
    elif cfg.type == "sphere":
        light = UsdLux.SphereLight.Define(stage, path)
        light.CreateRadiusAttr(float(cfg.radius))
    else:
        light = UsdLux.RectLight.Define(stage, path)
        light.CreateWidthAttr(float(cfg.width))
        light.CreateHeightAttr(float(cfg.height))
    light.CreateIntensityAttr(float(cfg.intensity))
    light.CreateExposureAttr(float(cfg.exposure))
    light.CreateColorAttr(Gf.Vec3f(*cfg.color))
    pos = None if cfg.type in ("distant", "dome") else cfg.position
    set_local_pose(light, pos=pos, rot=rpy_deg_to_matrix(cfg.rpy_deg))
    return light.GetPrim()


def spawn_camera(stage, cfg):
    """Author a pinhole camera from a :class:`CameraCfg` under ``/World/Cameras``.

    USD camera convention: looks along local -Z with +Y up; apertures and focal length in [mm]
    (tenths of a scene unit by the USD spec, which Isaac Sim reads as mm).
    """
    from pxr import Gf, UsdGeom

    camera = UsdGeom.Camera.Define(stage, f"{CAMERAS_PATH}/{cfg.name}")
    camera.CreateProjectionAttr(UsdGeom.Tokens.perspective)
    camera.CreateFocalLengthAttr(round_authored(cfg.focal_length_mm))
    camera.CreateHorizontalApertureAttr(float(cfg.horizontal_aperture))
    camera.CreateVerticalApertureAttr(round_authored(cfg.vertical_aperture))
    camera.CreateClippingRangeAttr(Gf.Vec2f(*map(float, cfg.clipping_range)))
    if cfg.f_stop > 0:
        focus = cfg.focus_distance or float(np.linalg.norm(np.subtract(cfg.look_at, cfg.position)))
        camera.CreateFStopAttr(round_authored(cfg.f_stop))
        camera.CreateFocusDistanceAttr(round_authored(focus))
    rot = look_at_matrix(cfg.position, cfg.look_at, cfg.up)
    set_local_pose(camera, pos=cfg.position, rot=rot)
    # Resolution is not a UsdGeom.Camera property; keep it on the prim so both backends agree.
    prim = camera.GetPrim()
    from pxr import Sdf

    prim.CreateAttribute("vlatwin:resolution", Sdf.ValueTypeNames.Int2, custom=True).Set(Gf.Vec2i(*cfg.resolution))
    # The aim the config gave (the transform alone cannot tell how far away the subject is): orbit and
    # look-at randomization pivot about it. Readers ignore it once an edit rotates the camera.
    prim.CreateAttribute("vlatwin:lookAt", Sdf.ValueTypeNames.Double3, custom=True).Set(Gf.Vec3d(*map(float, cfg.look_at)))
    prim.CreateAttribute("vlatwin:up", Sdf.ValueTypeNames.Double3, custom=True).Set(Gf.Vec3d(*map(float, cfg.up)))
    return prim


def camera_intrinsics(cfg) -> np.ndarray:
    """3x3 pinhole intrinsics [px] of a :class:`CameraCfg` (square pixels, centred principal point)."""
    width, height = cfg.resolution
    fx = cfg.focal_length_mm / cfg.horizontal_aperture * width
    return np.array([[fx, 0.0, width / 2.0], [0.0, fx, height / 2.0], [0.0, 0.0, 1.0]])


def spawn_lidar(stage, cfg):
    """Author a LIDAR mount: an Xform at its pose carrying ``vlatwin:lidar*`` attributes.

    The prim is where both backends place the sensor; Isaac Sim creates its RTX Lidar from the
    profile's ``isaac_config``/``isaac_variant`` at this pose (usd-core has no OmniLidar schema).
    """
    from pxr import Sdf, UsdGeom

    xform = UsdGeom.Xform.Define(stage, f"{LIDARS_PATH}/{cfg.name}")
    set_local_pose(xform, pos=cfg.position, rot=rpy_deg_to_matrix(cfg.rpy_deg))
    prim = xform.GetPrim()
    profile = cfg.resolved_profile
    prim.CreateAttribute("vlatwin:lidarProfile", Sdf.ValueTypeNames.String, custom=True).Set(profile.name)
    if profile.isaac_config:
        prim.CreateAttribute("vlatwin:isaacConfig", Sdf.ValueTypeNames.String, custom=True).Set(profile.isaac_config)
    if profile.isaac_variant:
        prim.CreateAttribute("vlatwin:isaacVariant", Sdf.ValueTypeNames.String, custom=True).Set(profile.isaac_variant)
    if isinstance(cfg.profile, dict):
        # An inline profile has no name to look up: keep all of it on the prim.
        import json

        prim.CreateAttribute("vlatwin:lidarProfileJson", Sdf.ValueTypeNames.String, custom=True).Set(
            json.dumps(cfg.profile, sort_keys=True)
        )
    prim.CreateAttribute("vlatwin:lidarBlocks", Sdf.ValueTypeNames.Int, custom=True).Set(int(cfg.blocks))
    prim.CreateAttribute("vlatwin:lidarNoise", Sdf.ValueTypeNames.Bool, custom=True).Set(bool(cfg.noise))
    if cfg.parent:
        prim.CreateRelationship("vlatwin:lidarParent", custom=True).SetTargets([Sdf.Path(cfg.parent)])
    return prim
