"""Which physical parameters a fit may change, and how they map to the optimizer's variables.

Users name parameter groups (``--params damping,friction,armature,drive_gains,masses,sensor_delay``); each
group expands to one scalar per joint (or per robot link, or one for the whole robot). The optimizer works
on ``x``, a dimensionless vector of order 1, so that one finite-difference step and one trust region fit
every parameter:

* ``scale`` parameters (drive gains, link masses) are relative to their nominal value: ``value = nominal * x``,
  ``x0 = 1``, bounds [0.2, 5];
* ``value`` parameters (passive damping, Coulomb friction, armature, sensor delay), whose nominal value is
  often 0, are in units of a typical magnitude: ``value = typical * x``.

A link's mass scales its inertia by the same factor (same density, same shape): the fit moves mass
distributions as a whole, which joint trajectories can tell apart, rather than six inertia entries they
cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sim.types import SimParams

__all__ = ["GROUPS", "Parameter", "ParameterSet", "build_parameter_set", "parse_groups"]


@dataclass(frozen=True)
class _Group:
    field: str | None
    """SimParams field (None: sensor delay, which is not a simulator parameter)."""
    per: str
    """``joint`` | ``body`` | ``robot``"""
    kind: str
    """``scale`` | ``value``"""
    unit: tuple[str, str]
    """(revolute, prismatic) units."""
    typical: float = 1.0
    upper: float = 5.0
    lower: float = 0.2


GROUPS: dict[str, _Group] = {
    "drive_stiffness": _Group("drive_stiffness", "joint", "scale", ("N*m/rad", "N/m")),
    "drive_damping": _Group("drive_damping", "joint", "scale", ("N*m*s/rad", "N*s/m")),
    "damping": _Group("joint_damping", "joint", "value", ("N*m*s/rad", "N*s/m"), typical=1.0, upper=500.0, lower=0.0),
    "friction": _Group("joint_friction", "joint", "value", ("N*m", "N"), typical=0.5, upper=50.0, lower=0.0),
    "armature": _Group("joint_armature", "joint", "value", ("kg*m^2", "kg"), typical=0.01, upper=2.0, lower=0.0),
    "masses": _Group("body_mass", "body", "scale", ("kg", "kg")),
    "sensor_delay": _Group(None, "robot", "value", ("s", "s"), typical=0.005, upper=0.2, lower=-0.05),
}
#: Aliases users may write.
ALIASES = {"drive_gains": ("drive_stiffness", "drive_damping"), "gains": ("drive_stiffness", "drive_damping"),
           "mass": ("masses",), "delay": ("sensor_delay",)}
#: When two parameters cannot be told apart, the one earlier in this list is held at nominal: passive damping
#: and the drive's damping act identically on position-only commands (target velocity 0), and the drive's
#: is the one the controller's user tunes.
HOLD_FIRST = ("damping", "sensor_delay", "friction", "armature", "masses", "drive_damping", "drive_stiffness")


def parse_groups(text: str | list[str]) -> list[str]:
    """``"damping,drive_gains"`` -> ``["damping", "drive_stiffness", "drive_damping"]`` (order kept, no repeats)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        expanded = ALIASES.get(name, (name,))
        for group in expanded:
            if group not in GROUPS:
                known = sorted(set(GROUPS) | set(ALIASES))
                raise VlatwinError(f"--params: unknown parameter {name!r}; known: {', '.join(known)}")
            if group not in out:
                out.append(group)
    if not out:
        raise VlatwinError("--params: name at least one parameter group (e.g. damping,friction,drive_gains,masses)")
    return out


@dataclass(frozen=True)
class Parameter:
    """One scalar the fit may change."""

    name: str
    """e.g. ``drive_stiffness[panda_joint1]``, ``masses[panda_link3]``, ``sensor_delay``."""
    group: str
    field: str | None
    index: int
    """Joint or body index in the SimParams arrays (-1 for sensor delay)."""
    kind: str
    nominal: float
    """In physical units."""
    typical: float
    """x = value / typical (value parameters) or value / nominal (scale parameters)."""
    lower: float
    upper: float
    """Bounds on x."""
    unit: str

    @property
    def x0(self) -> float:
        return 1.0 if self.kind == "scale" else self.nominal / self.typical

    def value(self, x: float) -> float:
        return float(self.nominal * x) if self.kind == "scale" else float(self.typical * x)

    def x_of(self, value: float) -> float:
        return float(value / self.nominal) if self.kind == "scale" else float(value / self.typical)

    @property
    def unit_per_x(self) -> float:
        """d value / d x (converts x-space standard deviations to physical units)."""
        return self.nominal if self.kind == "scale" else self.typical


class ParameterSet:
    """The fitted parameters in a fixed order, with the map x <-> SimParams."""

    def __init__(self, params: list[Parameter], nominal: SimParams):
        if not params:
            raise VlatwinError("sysid: no parameter left to fit (every group was empty for the selected joints)")
        self.params = params
        self.nominal = nominal.copy()

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def x0(self) -> np.ndarray:
        return np.array([p.x0 for p in self.params])

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([p.lower for p in self.params]), np.array([p.upper for p in self.params])

    def values(self, x) -> np.ndarray:
        return np.array([p.value(v) for p, v in zip(self.params, np.asarray(x, float))])

    def to_sim(self, x) -> tuple[SimParams, float]:
        """(SimParams with the fitted fields set, sensor delay [s]) for the optimizer vector ``x``."""
        out = self.nominal.copy()
        delay = 0.0
        for p, v in zip(self.params, np.asarray(x, float)):
            value = p.value(v)
            if p.field is None:
                delay = value
                continue
            getattr(out, p.field)[p.index] = value
            if p.field == "body_mass":
                # Same density: the inertia follows the mass.
                out.body_inertia[p.index] = self.nominal.body_inertia[p.index] * (value / p.nominal)
        return out, delay


def build_parameter_set(
    groups: list[str],
    *,
    nominal: SimParams,
    joint_names: list[str],
    body_paths: list[str],
    prismatic: np.ndarray,
    fit_joints: np.ndarray,
    fit_bodies: np.ndarray,
) -> ParameterSet:
    """Expand groups over the selected joints (``fit_joints``, (J,) bool) and robot links (``fit_bodies``, (B,) bool).

    A drive gain whose nominal is 0 cannot be scaled and a massless link has nothing to scale: both are left out.
    """
    params: list[Parameter] = []
    for group_name in groups:
        g = GROUPS[group_name]
        if g.per == "robot":
            params.append(Parameter(group_name, group_name, None, -1, g.kind, 0.0, g.typical, g.lower / g.typical,
                                    g.upper / g.typical, g.unit[0]))
            continue
        if g.per == "joint":
            nominal_values = getattr(nominal, g.field)
            for j, name in enumerate(joint_names):
                if not fit_joints[j]:
                    continue
                nom = float(nominal_values[j])
                if g.kind == "scale" and nom <= 0:
                    continue
                unit = g.unit[1] if prismatic[j] else g.unit[0]
                short = name.rsplit("/", 1)[-1]
                lower, upper = (g.lower, g.upper) if g.kind == "scale" else (g.lower / g.typical, g.upper / g.typical)
                params.append(Parameter(f"{group_name}[{short}]", group_name, g.field, j, g.kind, nom, g.typical, lower, upper, unit))
        else:
            for b, path in enumerate(body_paths):
                if not fit_bodies[b] or float(nominal.body_mass[b]) <= 0:
                    continue
                short = path.rsplit("/", 1)[-1]
                params.append(Parameter(f"{group_name}[{short}]", group_name, g.field, b, g.kind, float(nominal.body_mass[b]),
                                        g.typical, g.lower, g.upper, g.unit[0]))
    return ParameterSet(params, nominal)
