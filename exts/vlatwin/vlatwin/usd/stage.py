"""Stage creation, transform helpers and the rounding applied to every computed value we author."""

from __future__ import annotations

import numpy as np

from vlatwin._deps import require

WORLD_PATH = "/World"

# Authored values are rounded so a stage's text is the same on every machine. numpy/libm results
# (sin/cos, matrix products, norms) may differ in the last bit between CPUs and builds (SIMD paths,
# FMA): ~1e-16 relative per operation, ~1e-15 after a kinematic chain. Rounding to 9 decimal places
# (1 nm, 1e-9 of a unit quaternion, 1e-9 deg) is a million times coarser than that noise at the
# magnitudes we author (|x| < 1e3), and far finer than anything physical or rendered (USD float
# attributes keep ~7 digits anyway). Larger magnitudes (gains, intensities) are also cut to 12
# significant digits, which keeps the noise margin for any value. A value that lands within ~1e-15
# of a rounding midpoint can still round differently; that has a chance of about 1e-6 per value.
AUTHORED_DECIMALS = 9
"""Decimal places kept in authored values ([m], [deg], quaternion components, ...)."""
AUTHORED_SIGNIFICANT_DIGITS = 12
"""Significant digits kept in authored values of large magnitude."""


def round_authored(value):
    """Round a computed value before authoring it (see ``AUTHORED_DECIMALS``).

    Args:
        value: a number, or a sequence / array of numbers.

    Returns:
        A float for a number, else a tuple of floats; ``-0.0`` becomes ``0.0`` (USD writes "-0").
    """
    if isinstance(value, (int, float, np.integer, np.floating)):
        rounded = float(f"{round(float(value), AUTHORED_DECIMALS):.{AUTHORED_SIGNIFICANT_DIGITS}g}")
        return rounded + 0.0
    return tuple(round_authored(v) for v in np.asarray(value, dtype=float).reshape(-1))


def quat_wxyz_authored(rot: np.ndarray) -> tuple[float, float, float, float]:
    """3x3 rotation -> rounded unit quaternion (w, x, y, z) in one canonical sign.

    Rounded after computing (no re-normalization: at 1e-9 the norm stays 1 to within float32).
    ``w >= 0``; for a half turn (w rounds to 0) the first non-zero component is made positive, so
    noise in the sign of a tiny ``w`` cannot flip the whole quaternion.
    """
    from vlatwin.utils.transforms import matrix_to_quat_wxyz

    quat = round_authored(matrix_to_quat_wxyz(rot))
    lead = next((c for c in quat if c != 0.0), 1.0)
    return quat if lead > 0.0 else tuple(-c + 0.0 for c in quat)


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
    """Author translate / orient (quatd, from a 3x3 matrix) / scale ops on a Xformable, in that order.

    Values are rounded with :func:`round_authored` / :func:`quat_wxyz_authored`.
    """
    from pxr import Gf, UsdGeom

    xformable = UsdGeom.Xformable(xformable)
    xformable.ClearXformOpOrder()
    if pos is not None:
        xformable.AddTranslateOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(*round_authored(pos)))
    if rot is not None and not np.allclose(rot, np.eye(3)):
        xformable.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Quatd(*quat_wxyz_authored(rot)))
    if scale is not None:
        xformable.AddScaleOp(UsdGeom.XformOp.PrecisionDouble).Set(Gf.Vec3d(*round_authored(scale)))


def gf_quatf(rot: np.ndarray):
    """3x3 rotation -> Gf.Quatf (USD's physics local frames are float quaternions), rounded first."""
    from pxr import Gf

    return Gf.Quatf(*quat_wxyz_authored(rot))
