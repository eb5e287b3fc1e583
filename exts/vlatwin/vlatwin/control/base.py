"""The controller seam: action spaces that describe themselves, and controllers that turn actions into joint commands.

A :class:`Controller` reads one action (a flat float vector described by its :class:`ActionSpec`)
and the measured :class:`~vlatwin.sim.types.SimState`, and returns a
:class:`~vlatwin.sim.types.JointCommand` for the drives. Policies read the spec to know what to
output; dataset writers store :meth:`ActionSpec.to_dict` as the ``action`` feature.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vlatwin.errors import VlatwinError

if TYPE_CHECKING:
    from vlatwin.sim.types import JointCommand, SimState


@dataclass(frozen=True, kw_only=True, eq=False)
class ActionSpec:
    """What an action vector means: one name, unit and bound per dimension.

    Bounds are what the controller accepts; it clips actions to them. Unbounded dimensions use
    -inf/+inf (written as null by :meth:`to_dict`).
    """

    name: str
    """Action space kind, e.g. ``joint_pos``, ``joint_pos_delta``, ``joint_vel``, ``ee_delta_pose``."""
    names: tuple[str, ...]
    """One name per dimension, e.g. ``panda_joint1``, ``dx``, ``droll``, ``gripper``."""
    units: tuple[str, ...]
    """One unit per dimension: ``rad``, ``m``, ``rad/s``, ``m/s``, ``1`` (dimensionless)."""
    low: np.ndarray
    """Lower bounds (n,)."""
    high: np.ndarray
    """Upper bounds (n,)."""
    description: str = ""
    """How the controller interprets the action (frames, reference, gripper convention)."""

    def __post_init__(self) -> None:
        names, units = tuple(self.names), tuple(self.units)
        low = np.array(self.low, dtype=np.float64).reshape(-1)
        high = np.array(self.high, dtype=np.float64).reshape(-1)
        if not (len(names) == len(units) == low.size == high.size):
            raise ValueError(
                f"action spec {self.name!r}: {len(names)} names, {len(units)} units, {low.size} low, {high.size} high"
            )
        if np.any(low > high):
            raise ValueError(
                f"action spec {self.name!r}: low > high for {[n for n, b in zip(names, low > high, strict=True) if b]}"
            )
        low.flags.writeable = False  # the spec is shared by controllers, policies and writers
        high.flags.writeable = False
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def shape(self) -> tuple[int]:
        return (len(self.names),)

    @property
    def dim(self) -> int:
        return len(self.names)

    def validate(self, action) -> np.ndarray:
        """The action as a float64 (n,) array; raises a one-line :class:`VlatwinError` for a wrong shape or NaN/Inf.

        Values outside the bounds are not an error here (controllers clip them); see :meth:`clip`.
        """
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise VlatwinError(
                f"action for {self.name!r}: expected {self.dim} numbers, got {type(action).__name__}"
            ) from None
        if arr.shape != self.shape:
            raise VlatwinError(
                f"action for {self.name!r}: expected shape {self.shape} ({', '.join(self.names)}), got {arr.shape}"
            )
        bad = ~np.isfinite(arr)
        if bad.any():
            dims = ", ".join(f"{self.names[i]}={arr[i]}" for i in np.flatnonzero(bad))
            raise VlatwinError(f"action for {self.name!r}: non-finite values in {dims}")
        return arr

    def clip(self, action: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        """The action clipped to the bounds, and the names of the dimensions that were clipped."""
        clipped = np.clip(action, self.low, self.high)
        return clipped, tuple(n for n, changed in zip(self.names, clipped != action, strict=True) if changed)

    def to_dict(self) -> dict:
        """JSON-safe description (no NaN/Inf: unbounded limits become None).

        The ``dtype``/``shape``/``names`` keys are a LeRobot dataset feature as is; the rest rides along.
        """
        return {
            "dtype": "float32",
            "shape": [self.dim],
            "names": list(self.names),
            "name": self.name,
            "units": list(self.units),
            "low": [float(v) if np.isfinite(v) else None for v in self.low],
            "high": [float(v) if np.isfinite(v) else None for v in self.high],
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ActionSpec:
        """Inverse of :meth:`to_dict`."""
        low = [-np.inf if v is None else v for v in data["low"]]
        high = [np.inf if v is None else v for v in data["high"]]
        return cls(
            name=data["name"],
            names=tuple(data["names"]),
            units=tuple(data["units"]),
            low=low,
            high=high,
            description=data.get("description", ""),
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, ActionSpec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.name, self.names))


@dataclass(frozen=True, kw_only=True, eq=False)
class RobotJoints:
    """Which commanded joints of a loaded scene are the arm and the gripper, and their limits.

    Indices refer to :attr:`SimModelInfo.joint_names` (length J); joints in neither group are not
    commanded (their targets stay NaN = unchanged). Build one with
    :func:`vlatwin.control.factory.robot_joints_from_info`.
    """

    joint_names: tuple[str, ...]
    """All J commanded joints of the scene (USD prim paths), in backend order."""
    arm: np.ndarray
    """Indices of the arm joints, in action order."""
    gripper: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Indices of the gripper (finger) joints; one action dimension drives them all."""
    lower: np.ndarray
    """Lower limits (J,) [rad | m]."""
    upper: np.ndarray
    """Upper limits (J,) [rad | m]."""
    arm_units: tuple[str, ...] | None = None
    """Unit of each arm joint, ``rad`` (revolute) or ``m`` (prismatic); all ``rad`` by default."""
    gripper_closed_at_lower: bool = True
    """Closed fingers sit at the lower limit and open ones at the upper (the built-in Panda's fingers,
    whose coordinate is the opening); False flips it."""

    def __post_init__(self) -> None:
        j = len(self.joint_names)
        arm = np.asarray(self.arm, dtype=np.int64).reshape(-1)
        gripper = np.asarray(self.gripper, dtype=np.int64).reshape(-1)
        lower = np.asarray(self.lower, dtype=np.float64).reshape(-1)
        upper = np.asarray(self.upper, dtype=np.float64).reshape(-1)
        if lower.size != j or upper.size != j:
            raise VlatwinError(f"robot joints: {j} joint names but {lower.size} lower / {upper.size} upper limits")
        both = np.concatenate([arm, gripper])
        if both.size and (both.min() < 0 or both.max() >= j):
            raise VlatwinError(f"robot joints: index out of range 0..{j - 1}: {both.tolist()}")
        if len(set(both.tolist())) != both.size:
            raise VlatwinError(
                f"robot joints: a joint is listed twice in arm {arm.tolist()} / gripper {gripper.tolist()}"
            )
        units = ("rad",) * arm.size if self.arm_units is None else tuple(self.arm_units)
        if len(units) != arm.size:
            raise VlatwinError(f"robot joints: {len(units)} arm units for {arm.size} arm joints")
        for name, value in (("arm", arm), ("gripper", gripper), ("lower", lower), ("upper", upper)):
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "arm_units", units)

    @property
    def num_joints(self) -> int:
        """J, the length of every JointCommand array."""
        return len(self.joint_names)

    @property
    def arm_names(self) -> tuple[str, ...]:
        """Arm joint names (last path component), in action order."""
        return tuple(self.joint_names[i].rsplit("/", 1)[-1] for i in self.arm)

    @property
    def gripper_open_q(self) -> np.ndarray:
        """Finger joint positions when fully open [m | rad]."""
        return (self.upper if self.gripper_closed_at_lower else self.lower)[self.gripper]

    @property
    def gripper_closed_q(self) -> np.ndarray:
        """Finger joint positions when fully closed [m | rad]."""
        return (self.lower if self.gripper_closed_at_lower else self.upper)[self.gripper]


def match_joint_names(wanted, joint_names) -> np.ndarray:
    """Indices in ``joint_names`` (prim paths) of each name in ``wanted``, by full path or last component.

    Raises:
        VlatwinError: a name is missing or matches more than one joint.
    """
    leaves = [p.rsplit("/", 1)[-1] for p in joint_names]
    out = []
    for name in wanted:
        if name in joint_names:
            out.append(joint_names.index(name))
            continue
        # A bare name matches the last path component; a path must match exactly.
        hits = [] if "/" in name else [i for i, leaf in enumerate(leaves) if leaf == name]
        if len(hits) != 1:
            why = "matches several joints" if hits else "is not a joint of the scene"
            raise VlatwinError(f"joint {name!r} {why}; known: {', '.join(leaves)}")
        out.append(hits[0])
    return np.array(out, dtype=np.int64)


class Controller(abc.ABC):
    """Turns actions into joint commands at the control rate.

    Call :meth:`reset` at the start of every episode (controllers that integrate or hold a target
    take it from the measured state there), then :meth:`compute` once per control step.
    """

    spec: ActionSpec
    """The action space this controller reads."""

    @abc.abstractmethod
    def reset(self, state: SimState) -> None:
        """Forget the episode so far and take targets from the measured ``state``."""

    @abc.abstractmethod
    def compute(self, action: np.ndarray, state: SimState) -> JointCommand:
        """The joint command for one ``action`` (shape :attr:`ActionSpec.shape`) given the measured ``state``.

        Raises:
            VlatwinError: the action has the wrong shape or non-finite values.
        """


__all__ = ["ActionSpec", "Controller", "RobotJoints", "match_joint_names"]
