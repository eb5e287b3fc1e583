"""``params.yaml``: what ``vlatwin sysid fit`` identified, with its uncertainty, readable back by ``vlatwin report``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sysid.fit import FitResult, ParamEstimate
from vlatwin.sysid.params import ParameterSet, build_parameter_set
from vlatwin.writers.storage import atomic_write_bytes

FORMAT = "vlatwin-sysid/1"


def result_to_dict(result: FitResult, *, recording: str, heldout: dict | None = None, dynamics: dict | None = None) -> dict:
    pset: ParameterSet = result.extra["pset"]
    return {
        "format": FORMAT,
        "recording": recording,
        "converged": bool(result.converged),
        "message": result.message,
        "fit": {
            "groups": sorted({p.group for p in pset.params}, key=[p.group for p in pset.params].index),
            "joints": [n.rsplit("/", 1)[-1] for n in result.extra["joints"]],
            "cost_initial": result.cost_initial, "cost_final": result.cost_final,
            "evaluations": result.evaluations, "rollouts": result.rollouts, "wall_s": round(result.wall_s, 2),
            "residual_autocorrelation": round(result.autocorrelation, 4),
            "reduced_chi2": float(result.reduced_chi2),
            "residual_std": {n.rsplit("/", 1)[-1]: float(s) for n, s in zip(result.fit_joints, result.residual_std)},
            # Joints whose position rows the rollouts left out (hypersensitive twin), with their sensitivity
            # relative to the median joint.
            "position_rows_left_out": {n.rsplit("/", 1)[-1]: round(v, 1) for n, v in (result.extra.get("left_out") or {}).items()},
            # Valid drive-effort samples per joint (None: the fit used positions only).
            "drive_effort_samples": None if result.extra.get("effort_samples") is None else {
                n.rsplit("/", 1)[-1]: int(k) for n, k in result.extra["effort_samples"].items()},
        },
        "heldout": heldout or {},
        "sensor_delay_s": float(result.sensor_delay_s),
        "parameters": [
            {"name": e.name, "unit": e.unit, "nominal": e.nominal, "value": e.value, "std": e.std,
             "ci95": None if e.ci95 is None else list(e.ci95), "identifiable": e.identifiable, "note": e.note}
            for e in result.estimates
        ],
        "x": [float(v) for v in result.extra["x"]],
        "covariance": {"names": result.identified_names, "matrix": np.asarray(result.covariance).tolist()},
        "dynamics": dynamics or {},
    }


def write_params_yaml(path: str | Path, doc: dict) -> Path:
    import yaml

    path = Path(path)
    atomic_write_bytes(path, yaml.safe_dump(doc, sort_keys=False, width=120).encode("utf-8"))
    return path


def read_params_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise VlatwinError(f"--params {path}: no such file (write one with `vlatwin sysid fit ... -o params.yaml`)")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise VlatwinError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise VlatwinError(f"{path}: not a vlatwin sysid result (format {FORMAT!r} expected)")
    for key in ("fit", "parameters", "x", "covariance"):
        if key not in doc:
            raise VlatwinError(f"{path}: field {key!r} is missing")
    return doc


def result_from_dict(doc: dict, description, *, source: str = "params.yaml") -> FitResult:
    """Rebuild a :class:`FitResult` (enough for :func:`vlatwin.sysid.fit.predict`) against the loaded twin."""
    fit = doc["fit"]
    short = [n.rsplit("/", 1)[-1] for n in description.joint_names]
    sel = np.array([s in set(fit.get("joints") or []) for s in short])
    pset = build_parameter_set(
        list(fit["groups"]), nominal=description.nominal, joint_names=list(description.joint_names),
        body_paths=list(description.body_paths), prismatic=description.prismatic, fit_joints=sel,
        fit_bodies=description.robot_bodies,
    )
    names = [p["name"] for p in doc["parameters"]]
    if pset.names != names or len(doc["x"]) != len(pset):
        raise VlatwinError(f"{source}: its parameters do not match this twin's (fitted on another stage?)")
    x = np.asarray(doc["x"], dtype=float)
    identified, delay = pset.to_sim(x)
    cov_names = list(doc["covariance"]["names"])
    free = [names.index(n) for n in cov_names]
    estimates = [ParamEstimate(p["name"], pset.params[i].group, p["unit"], p["nominal"], p["value"], p["std"], p["identifiable"], p["note"])
                 for i, p in enumerate(doc["parameters"])]
    std = fit.get("residual_std") or {}
    return FitResult(
        estimates=estimates, params=identified, nominal=description.nominal.copy(), sensor_delay_s=delay,
        covariance=np.asarray(doc["covariance"]["matrix"], dtype=float).reshape(len(free), len(free)),
        identified_names=cov_names, converged=bool(doc.get("converged")), message=str(doc.get("message", "")),
        cost_initial=float(fit.get("cost_initial", np.nan)), cost_final=float(fit.get("cost_final", np.nan)),
        evaluations=int(fit.get("evaluations", 0)), rollouts=int(fit.get("rollouts", 0)), wall_s=float(fit.get("wall_s", 0)),
        residual_std=np.array(list(std.values()), dtype=float),
        fit_joints=[p for p, s in zip(description.joint_names, short) if s in std],
        autocorrelation=float(fit.get("residual_autocorrelation", 0.0)),
        reduced_chi2=float(fit.get("reduced_chi2", float("nan"))),
        extra={"x": x, "free": free, "pset": pset, "joints": [p for p, s in zip(description.joint_names, sel) if s]},
    )
