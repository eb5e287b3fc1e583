"""Write identified parameters back: into a USD stage (Isaac Sim and the Newton backend read them) and a config.

The exchange format is the ``scene.robot.dynamics`` block of a config (:class:`vlatwin.config.scene_cfg.DynamicsCfg`)::

    {"joints": {"panda_joint1": {"drive_stiffness": 61234.5, "drive_damping": 110.2, "damping": 0.0,
                                 "friction": 0.31, "armature": 0.012}},
     "links": {"panda_link3": {"mass": 2.61}}}

Joint values are per radian (revolute) or per metre (prismatic), as in :class:`vlatwin.sim.types.SimParams`; how
they are authored in USD (per degree where USD wants it, which attribute names) is
:func:`vlatwin.usd.robot.author_dynamics`. A link's inertia is not written: it scales with the mass (same density).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vlatwin.errors import ConfigError, VlatwinError
from vlatwin.sim.types import SimParams

logger = logging.getLogger(__name__)

#: SimParams joint field -> dynamics key.
JOINT_FIELDS = {
    "drive_stiffness": "drive_stiffness",
    "drive_damping": "drive_damping",
    "joint_damping": "damping",
    "joint_friction": "friction",
    "joint_armature": "armature",
}


def dynamics_from_params(
    params: SimParams,
    joint_names: Sequence[str],
    body_paths: Sequence[str],
    *,
    nominal: SimParams | None = None,
    bodies: Sequence[bool] | None = None,
    rel_tol: float = 1e-9,
) -> dict:
    """The dynamics block for ``params`` (joint arrays in ``joint_names`` order, bodies in ``body_paths`` order).

    Args:
        joint_names / body_paths: :attr:`SimModelInfo.joint_names` / ``body_paths`` (prim paths); the block uses
            the last path component.
        nominal: when given, only values that differ from it (relative tolerance ``rel_tol``) are written.
        bodies: (B,) flags selecting the bodies whose mass may be written (pass the robot's links: a stage only
            takes masses of links under the articulation); default all.

    ``params.body_inertia`` is not written: the stage scales each link's inertia with its mass.

    Returns:
        ``{"joints": {name: {field: value}}, "links": {name: {"mass": value}}}`` with plain floats.
    """
    joint_names, body_paths = list(joint_names), list(body_paths)
    joints: dict[str, dict] = {}
    links: dict[str, dict] = {}
    short_joints = _short_names(joint_names, "joint")
    for field, key in JOINT_FIELDS.items():
        values = _array(params, field, len(joint_names), "joint")
        if values is None:
            continue
        reference = None if nominal is None else _array(nominal, field, len(joint_names), "joint")
        for i, name in enumerate(short_joints):
            if reference is not None and math.isclose(values[i], reference[i], rel_tol=rel_tol, abs_tol=0.0):
                continue
            joints.setdefault(name, {})[key] = float(values[i])
    masses = _array(params, "body_mass", len(body_paths), "body")
    if masses is not None:
        keep = np.ones(len(body_paths), dtype=bool) if bodies is None else np.asarray(bodies, dtype=bool)
        if keep.shape != (len(body_paths),):
            raise VlatwinError(f"bodies: expected {len(body_paths)} flags (one per body), got shape {keep.shape}")
        chosen = [i for i in range(len(body_paths)) if keep[i]]
        short_bodies = _short_names([body_paths[i] for i in chosen], "body")
        reference = None if nominal is None else _array(nominal, "body_mass", len(body_paths), "body")
        for i, name in zip(chosen, short_bodies):
            if reference is not None and math.isclose(masses[i], reference[i], rel_tol=rel_tol, abs_tol=0.0):
                continue
            links[name] = {"mass": float(masses[i])}
    dynamics = {"joints": joints, "links": links}
    _validated(dynamics, "dynamics")
    return dynamics


def write_stage_dynamics(stage_in, stage_out, dynamics: dict, *, robot_path: str | None = None) -> Path:
    """Author ``dynamics`` on the robot of ``stage_in`` and save the result to ``stage_out`` atomically.

    The robot is the prim with ``UsdPhysics.ArticulationRootAPI`` (``robot_path`` when the stage has several);
    joints and links are found below it by name. Relative asset paths (e.g. a referenced robot) are rebased
    when ``stage_out`` is in another folder. ``stage_in`` itself is not changed (may equal ``stage_out``).

    Raises:
        VlatwinError: unreadable stage, no / several robots, unknown joint or link names (one line each).
    """
    from pxr import Sdf, Usd, UsdPhysics, UsdUtils

    from vlatwin.usd.check import open_stage
    from vlatwin.usd.robot import author_dynamics
    from vlatwin.usd.scene_builder import _check_output_path

    stage_in, stage_out = Path(stage_in), Path(stage_out)
    _check_output_path(stage_out)
    cfg = _validated(dynamics, "dynamics")
    stage = open_stage(stage_in)
    if robot_path is None:
        roots = [str(p.GetPath()) for p in stage.Traverse() if p.HasAPI(UsdPhysics.ArticulationRootAPI)]
        if len(roots) != 1:
            raise VlatwinError(
                f"{stage_in}: expected one prim with UsdPhysics.ArticulationRootAPI, found {len(roots)} "
                f"({', '.join(roots) or 'none'}); pass robot_path"
            )
        robot_path = roots[0]
    root_layer = stage.GetRootLayer()
    was_dirty = root_layer.dirty
    try:
        author_dynamics(stage, robot_path, cfg, field=f"{stage_in}: dynamics")
        copy = Sdf.Layer.CreateAnonymous(stage_out.suffix)
        copy.TransferContent(root_layer)
    finally:
        if not was_dirty:
            root_layer.Reload(True)  # the opened layer may be shared in this process: drop the edits from it
    in_dir = stage_in.resolve().parent
    out_dir = (stage_out.parent if str(stage_out.parent) else Path(".")).resolve()
    if in_dir != out_dir:

        def rebase(path: str) -> str:
            if not path or os.path.isabs(path) or "://" in path or path.startswith("anon:"):
                return path
            return os.path.relpath(os.path.normpath(in_dir / path), out_dir)

        UsdUtils.ModifyAssetPaths(copy, rebase)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{stage_out.stem}.", suffix=stage_out.suffix)
    os.close(fd)
    try:
        if not copy.Export(tmp):
            raise VlatwinError(f"{stage_out}: USD export failed")
        check = Usd.Stage.Open(tmp)  # relative paths resolve as they will next to stage_out (same folder)
        if check is None or not check.GetPrimAtPath(robot_path):
            raise VlatwinError(f"{stage_out}: the written stage does not open with the robot at {robot_path}")
        del check
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, stage_out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    cached = Sdf.Layer.Find(str(stage_out.resolve()))
    if cached is not None:
        cached.Reload(True)  # a layer already open in this process must show the new file
    return stage_out


def write_config_dynamics(config_in, config_out, dynamics: dict) -> Path:
    """Set ``scene.robot.dynamics`` of the YAML config ``config_in`` (merged into an existing block, the new
    values win per field) and save it to ``config_out`` atomically, validated with the project's loader.

    Relative paths in a config are relative to its file, so ``config_out`` should sit next to ``config_in``;
    when a path would not resolve from ``config_out``'s folder the write is refused with the field named.
    YAML comments of the input are not kept.
    """
    import yaml

    from vlatwin.config.loader import config_from_dict, load_config

    config_in, config_out = Path(config_in), Path(config_out)
    new = _validated(dynamics, "dynamics").model_dump(exclude_none=True)
    try:
        data = yaml.safe_load(config_in.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{config_in}: cannot read config: {' '.join(str(exc).split())}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{config_in}: expected a mapping at the top level (e.g. 'scene:')")
    scene = data.setdefault("scene", {})
    if scene is None:
        scene = data["scene"] = {}
    robot = scene.setdefault("robot", {})
    if robot is None:
        robot = scene["robot"] = {}
    if not isinstance(scene, dict) or not isinstance(robot, dict):
        raise ConfigError(f"{config_in}: scene.robot: expected a mapping")
    block = robot.get("dynamics") or {}
    if not isinstance(block, dict):
        raise ConfigError(f"{config_in}: scene.robot.dynamics: expected a mapping")
    merged = {}
    for group in ("joints", "links"):
        entries = {name: dict(values or {}) for name, values in (block.get(group) or {}).items()}
        for name, values in new.get(group, {}).items():
            entries.setdefault(name, {}).update(values)
        merged[group] = entries
    extra = {k: v for k, v in block.items() if k not in ("joints", "links")}
    robot["dynamics"] = {**extra, **merged}  # unknown keys stay, so the loader names them
    out_dir = config_out.parent if str(config_out.parent) else Path(".")
    # Refuse before writing when the input itself is fine but its relative paths break from the new folder.
    config_from_dict(data, source=config_in)
    try:
        config_from_dict(data, source=config_out)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (relative paths are relative to the config file: write it next to {config_in})") from None
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{config_out.stem}.", suffix=config_out.suffix or ".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            load_config(tmp)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(tmp, str(config_out))) from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, config_out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return config_out


def _validated(dynamics, where: str):
    from pydantic import ValidationError

    from vlatwin.config.loader import format_validation_error
    from vlatwin.config.scene_cfg import DynamicsCfg

    try:
        return DynamicsCfg.model_validate(dynamics if dynamics is not None else {})
    except ValidationError as exc:
        raise VlatwinError(f"{where}: {format_validation_error(exc, DynamicsCfg)}") from None


def _array(params: SimParams, field: str, n: int, kind: str) -> np.ndarray | None:
    value = getattr(params, field)
    if value is None:
        return None
    value = np.asarray(value, dtype=np.float64)
    if value.shape != (n,):
        raise VlatwinError(f"SimParams.{field}: expected {n} values (one per {kind}), got shape {value.shape}")
    return value


def _short_names(paths: list[str], kind: str) -> list[str]:
    names = [p.rsplit("/", 1)[-1] for p in paths]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise VlatwinError(f"two {kind} paths end in {name!r} ({paths[names.index(name)]}, {paths[i]}); names must be unique")
    return names
