"""Visual-only markers (e.g. a task's target region): drawn by every renderer, ignored by physics.

A marker is a UsdGeom.Cube gprim under ``/World/Targets/<name>`` with no CollisionAPI and no RigidBodyAPI,
so PhysX and Newton give it no collider; Isaac Sim's RTX and Newton's renderer (the importer loads
static visual shapes) draw it. It carries a semantic ``class`` label like the objects.
"""

from __future__ import annotations

import numpy as np

from vlatwin.usd.stage import WORLD_PATH

TARGETS_PATH = f"{WORLD_PATH}/Targets"


def author_markers(stage, markers) -> None:
    """Author each :class:`vlatwin.config.task_cfg.MarkerCfg` in ``markers`` under :data:`TARGETS_PATH`."""
    if not markers:
        return
    from pxr import UsdGeom

    from vlatwin.config.scene_cfg import MaterialCfg
    from vlatwin.usd.materials import bind_material, define_material
    from vlatwin.usd.semantics import add_class_label
    from vlatwin.usd.shapes import spawn_gprim
    from vlatwin.utils.transforms import rot_z

    UsdGeom.Scope.Define(stage, TARGETS_PATH)
    for marker in markers:
        prim = spawn_gprim(
            stage,
            f"{TARGETS_PATH}/{marker.name}",
            "box",
            size=marker.size,
            pos=marker.position,
            rot=rot_z(np.deg2rad(marker.yaw_deg)),
            collide=False,
        )
        material = define_material(stage, f"{marker.name}_marker", MaterialCfg(color=marker.color, roughness=0.6))
        bind_material(prim, material, marker.color)
        add_class_label(prim, marker.semantic_label)
