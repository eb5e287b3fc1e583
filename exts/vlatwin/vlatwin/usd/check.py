"""Stage checking: pxr's registered validators plus a UsdPhysics summary, as a user would read them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from vlatwin.errors import StageError
from vlatwin.usd.stage import pxr


@dataclass
class JointInfo:
    """One joint as UsdPhysics parses it."""

    path: str
    kind: str
    body0: str
    body1: str
    lower: float | None
    """USD units: [deg] for revolute, [m] for prismatic."""
    upper: float | None
    drive_stiffness: float | None
    """USD units: per degree for angular drives."""
    drive_damping: float | None
    drive_target: float | None


@dataclass
class StageReport:
    """What ``vlatwin scene check`` prints."""

    path: str
    meters_per_unit: float
    up_axis: str
    default_prim: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    physics_scenes: list[str] = field(default_factory=list)
    gravity: tuple[float, float, float] | None = None
    articulations: list[str] = field(default_factory=list)
    rigid_bodies: list[str] = field(default_factory=list)
    colliders: dict[str, int] = field(default_factory=dict)
    """Collider shape type -> count."""
    joints: list[JointInfo] = field(default_factory=list)
    semantic_labels: dict[str, str] = field(default_factory=dict)
    """Prim path -> ``class`` label (prims that carry LabelsAPI themselves)."""
    lights: list[str] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def drives(self) -> list[JointInfo]:
        return [j for j in self.joints if j.drive_stiffness is not None]

    def summary_lines(self) -> list[str]:
        """Human-readable report lines."""
        colliders = ", ".join(f"{n} {k}" for k, n in sorted(self.colliders.items())) or "none"
        lines = [
            f"stage: {self.path}",
            f"  units: {self.meters_per_unit} m/unit, up axis {self.up_axis}, default prim {self.default_prim or '(none)'}",
            f"  physics scenes: {len(self.physics_scenes)}"
            + (f" (gravity {tuple(round(g, 4) for g in self.gravity)} m/s^2)" if self.gravity else ""),
            f"  articulations: {len(self.articulations)} {self.articulations}",
            f"  rigid bodies: {len(self.rigid_bodies)}",
            f"  colliders: {colliders}",
            f"  joints: {len(self.joints)} ({', '.join(_count_kinds(self.joints))}); drives: {len(self.drives)}",
            f"  semantic labels: {len(self.semantic_labels)} ({', '.join(sorted(set(self.semantic_labels.values())))})",
            f"  lights: {len(self.lights)}, cameras: {len(self.cameras)}",
        ]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  error: {e}" for e in self.errors]
        lines.append("  result: " + ("OK" if self.ok else f"{len(self.errors)} error(s)"))
        return lines


def _count_kinds(joints) -> list[str]:
    counts: dict[str, int] = {}
    for joint in joints:
        counts[joint.kind] = counts.get(joint.kind, 0) + 1
    return [f"{n} {k}" for k, n in sorted(counts.items())]


def open_stage(path: str | Path):
    """Open a USD file or raise a one-line :class:`StageError`."""
    pxr()
    from pxr import Tf, Usd

    path = Path(path)
    if path.is_dir():
        raise StageError(f"{path}: is a folder; give a USD file (.usda/.usd/.usdc)")
    if not path.is_file():
        raise StageError(f"{path}: USD file not found")
    try:
        stage = Usd.Stage.Open(str(path))
    except Tf.ErrorException as exc:
        detail = " ".join(str(exc).split())
        raise StageError(f"{path}: cannot open USD stage: {detail[:300]}") from None
    if stage is None:
        raise StageError(f"{path}: cannot open USD stage")
    return stage


def run_validators(stage) -> tuple[list[str], list[str]]:
    """Run every validator registered with UsdValidation; returns (errors, warnings) as text.

    ``pxr.UsdValidation`` is new in OpenUSD 24.11-era builds; Kit's pxr may lack it. Then no validators
    run and one warning says so (UsdPhysics parsing still checks the stage).
    """
    try:
        from pxr import UsdValidation
    except ImportError:
        return [], ["UsdValidation is not available in this pxr build; registered USD validators were not run"]

    registry = UsdValidation.ValidationRegistry()
    validators = registry.GetOrLoadAllValidators()
    errors, warns = [], []
    for issue in UsdValidation.ValidationContext(validators).Validate(stage):
        sites = [str(s.GetPrim().GetPath()) for s in issue.GetSites() if s.GetPrim()]
        where = f" at {sites[0]}" if sites else ""
        text = f"{issue.GetName()}{where}: {' '.join(issue.GetMessage().split())}"
        if issue.GetType() == UsdValidation.ValidationErrorType.Error:
            errors.append(text)
        elif issue.GetType() == UsdValidation.ValidationErrorType.Warn:
            warns.append(text)
    return errors, warns


def physics_summary(stage, report: StageReport) -> None:
    """Fill ``report`` from UsdPhysics parsing (the same parser PhysX and Newton's importer follow)."""
    from pxr import UsdPhysics

    parsed = UsdPhysics.UsdPhysicsLoadStageFromPrimRange(stage, ["/"])
    joint_kinds = {
        UsdPhysics.ObjectType.RevoluteJoint: "revolute",
        UsdPhysics.ObjectType.PrismaticJoint: "prismatic",
        UsdPhysics.ObjectType.FixedJoint: "fixed",
        UsdPhysics.ObjectType.SphericalJoint: "spherical",
        UsdPhysics.ObjectType.DistanceJoint: "distance",
        UsdPhysics.ObjectType.D6Joint: "d6",
        UsdPhysics.ObjectType.CustomJoint: "custom",
    }
    for obj_type, (paths, descs) in parsed.items():
        name = str(obj_type).rsplit(".", 1)[-1]
        if obj_type == UsdPhysics.ObjectType.Scene:
            report.physics_scenes = [str(p) for p in paths]
            d = descs[0]
            report.gravity = tuple(float(d.gravityDirection[i]) * d.gravityMagnitude for i in range(3))
        elif obj_type == UsdPhysics.ObjectType.Articulation:
            report.articulations = [str(p) for p in paths]
        elif obj_type == UsdPhysics.ObjectType.RigidBody:
            report.rigid_bodies = [str(p) for p in paths]
        elif name.endswith("Shape"):
            report.colliders[name[: -len("Shape")].lower()] = len(paths)
        elif obj_type in joint_kinds:
            for path, desc in zip(paths, descs):
                limit = getattr(desc, "limit", None)
                drive = getattr(desc, "drive", None)
                has_drive = drive is not None and drive.enabled
                report.joints.append(
                    JointInfo(
                        path=str(path),
                        kind=joint_kinds[obj_type],
                        body0=str(desc.body0),
                        body1=str(desc.body1),
                        lower=float(limit.lower) if limit is not None and limit.enabled else None,
                        upper=float(limit.upper) if limit is not None and limit.enabled else None,
                        drive_stiffness=float(drive.stiffness) if has_drive else None,
                        drive_damping=float(drive.damping) if has_drive else None,
                        drive_target=float(drive.targetPosition) if has_drive else None,
                    )
                )
    report.joints.sort(key=lambda j: j.path)


def check_stage(path: str | Path) -> StageReport:
    """Validate a USD file and summarize its physics, labels, lights and cameras.

    Errors (validator errors, missing physics scene, wrong units) go to ``report.errors``; the
    stage is usable by both backends when ``report.ok``.
    """
    from pxr import UsdGeom, UsdLux, UsdSemantics

    stage = open_stage(path)
    default_prim = stage.GetDefaultPrim()
    report = StageReport(
        path=str(path),
        meters_per_unit=UsdGeom.GetStageMetersPerUnit(stage),
        up_axis=str(UsdGeom.GetStageUpAxis(stage)),
        default_prim=str(default_prim.GetPath()) if default_prim else "",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        report.errors, report.warnings = run_validators(stage)
        physics_summary(stage, report)
    if report.meters_per_unit != 1.0:
        report.errors.append(f"metersPerUnit is {report.meters_per_unit}; vlatwin and Isaac Sim expect 1.0 (meters)")
    if report.up_axis != "Z":
        report.errors.append(f"upAxis is {report.up_axis}; vlatwin and Isaac Sim expect Z")
    if not report.default_prim:
        report.warnings.append("no defaultPrim: the stage cannot be referenced without naming a prim")
    if not report.physics_scenes:
        report.errors.append("no UsdPhysics.Scene prim: add one (vlatwin scene build writes /World/PhysicsScene)")
    for prim in stage.Traverse():
        if prim.HasAPI(UsdSemantics.LabelsAPI, "class"):
            labels = UsdSemantics.LabelsAPI(prim, "class").GetLabelsAttr().Get()
            if labels:
                report.semantic_labels[str(prim.GetPath())] = str(labels[0])
        if prim.HasAPI(UsdLux.LightAPI):
            report.lights.append(str(prim.GetPath()))
        if prim.IsA(UsdGeom.Camera):
            report.cameras.append(str(prim.GetPath()))
    return report
