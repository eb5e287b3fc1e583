"""Stage creation and transform helpers."""

from __future__ import annotations

import numpy as np

from vlatwin._deps import require

WORLD_PATH = "/World"


def pxr():
    """Import pxr with an install hint (``pip install 'vlatwin[usd]'``)."""
    return require("pxr")


def new_stage(path: str | None = None):
    """A stage in meters, Z up, 1 kg per unit, with ``/World`` as its default prim.

    Args:
        path: file to create; None for an in-memory stage.
    """
    pxr()
    from pxr import Usd, UsdGeom, UsdPhysics

    stage = Usd.Stage.CreateInMemory() if path is None else Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    world = UsdGeom.Xform.Define(stage, WORLD_PATH)
    stage.SetDefaultPrim(world.GetPrim())
    return stage


def set_local_pose(xformable, pos=None, rot: np.ndarray | None = None, scale=None) -> None:
    """Author translate / orient (quatd, from a 3x3 matrix) / scale ops on a Xformable, in that order."""
    from pxr import Gf, UsdGeom

    from vlatwin.utils.transforms import matrix_to_quat_wxyz

    xformable = UsdGeom.Xformable(xformable)
    xformable.ClearXformOpOrder()
    if pos is not None:
        xformable.AddTranslateOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(*map(float, pos)))
    if rot is not None and not np.allclose(rot, np.eye(3)):
        w, x, y, z = matrix_to_quat_wxyz(rot)
        xformable.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Quatd(float(w), float(x), float(y), float(z)))
    if scale is not None:
        xformable.AddScaleOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(*map(float, scale)))


def gf_quatf(rot: np.ndarray):
    """3x3 rotation -> Gf.Quatf (USD's physics local frames are float quaternions)."""
    from pxr import Gf

    from vlatwin.utils.transforms import matrix_to_quat_wxyz

    w, x, y, z = matrix_to_quat_wxyz(rot)
    return Gf.Quatf(float(w), float(x), float(y), float(z))
