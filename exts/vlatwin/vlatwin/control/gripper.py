"""Gripper command conventions of VLA models, mapped to one normalized closure.

Every convention maps a policy's scalar gripper value to a closure ``c`` in [0, 1] (**0 = fully
open, 1 = fully closed**), and ``c`` to finger joint targets by linear interpolation between the
open and closed joint positions (the built-in Panda: each finger joint is its opening 0..0.04 m, so
open = upper limit 0.04, closed = lower limit 0). Values outside a convention's range are clipped.

===================== ============ ============ ==================================================
convention            open value   closed value used by
===================== ============ ============ ==================================================
``close_0_1``         0            1            pi0 / pi0-FAST / pi0.5 (openpi, "gripper position
                                                in [0, 1], 0 = fully open, 1 = fully closed"),
                                                DROID gripper position, LeRobot pi0 fine-tunes
``open_0_1``          1            0            OpenVLA and the RLDS/Open-X datasets it was trained
                                                on (Bridge, Fractal: "0 = closed, 1 = open"; the
                                                gripper dim is not normalized)
``pm1_close_positive``  -1         +1           LIBERO (robosuite: "-1 = open, +1 = close"; OpenVLA's
                                                LIBERO eval maps [0, 1] to [-1, 1] and flips the sign)
``pm1_open_positive``   +1         -1           SimplerEnv WidowX (Bridge) adapters: ``2 * (g > 0.5) - 1``
===================== ============ ============ ==================================================

**Binarize** (optional): the value is snapped to fully open or fully closed, as the evaluation
scripts above do. The threshold is in the convention's own units, 0.5 for the [0, 1] conventions and
0 for the [-1, 1] ones by default. A value strictly greater than the threshold selects the state the
convention's *high* value names (closed for ``close_0_1``/``pm1_close_positive``, open for
``open_0_1``/``pm1_open_positive``); a value equal to it selects the other state. This matches
openpi's DROID client (``> 0.5`` closes), SimplerEnv (``g > 0.5`` opens) and LIBERO (sign, with 0
treated as open).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from vlatwin.errors import VlatwinError


class GripperConvention(StrEnum):
    """How a policy encodes its gripper command (see the module docstring for sources)."""

    CLOSE_0_1 = "close_0_1"
    """0 = open, 1 = closed (pi0 / openpi, DROID)."""
    OPEN_0_1 = "open_0_1"
    """1 = open, 0 = closed (OpenVLA, RLDS / Open-X)."""
    PM1_CLOSE_POSITIVE = "pm1_close_positive"
    """-1 = open, +1 = closed (LIBERO / robosuite)."""
    PM1_OPEN_POSITIVE = "pm1_open_positive"
    """+1 = open, -1 = closed (SimplerEnv WidowX)."""


#: (open value, closed value) of each convention.
GRIPPER_ENDPOINTS: dict[GripperConvention, tuple[float, float]] = {
    GripperConvention.CLOSE_0_1: (0.0, 1.0),
    GripperConvention.OPEN_0_1: (1.0, 0.0),
    GripperConvention.PM1_CLOSE_POSITIVE: (-1.0, 1.0),
    GripperConvention.PM1_OPEN_POSITIVE: (1.0, -1.0),
}


def parse_convention(name) -> GripperConvention:
    """The convention named ``name`` (a string or a :class:`GripperConvention`), or a one-line error."""
    try:
        return GripperConvention(name)
    except ValueError:
        known = ", ".join(c.value for c in GripperConvention)
        raise VlatwinError(f"unknown gripper convention {name!r}; known: {known}") from None


def gripper_to_closure(value, convention, *, binarize: bool = False, threshold: float | None = None):
    """Closure in [0, 1] (0 open, 1 closed) from a policy's gripper ``value`` in ``convention``.

    Args:
        value: scalar or array in the convention's units.
        convention: a :class:`GripperConvention` or its name.
        binarize: snap to 0 or 1 (see the module docstring for the threshold rule).
        threshold: binarization threshold in the convention's units; the middle of its range by default.
    """
    open_v, closed_v = GRIPPER_ENDPOINTS[parse_convention(convention)]
    value = np.asarray(value, dtype=float)
    if binarize:
        threshold = 0.5 * (open_v + closed_v) if threshold is None else float(threshold)
        high_is_closed = closed_v > open_v
        above = value > threshold
        closure = np.where(above == high_is_closed, 1.0, 0.0)
    else:
        closure = np.clip((value - open_v) / (closed_v - open_v), 0.0, 1.0)
    return float(closure) if closure.ndim == 0 else closure


def closure_to_gripper(closure, convention):
    """Inverse of :func:`gripper_to_closure` (without binarization): the policy value for ``closure``."""
    open_v, closed_v = GRIPPER_ENDPOINTS[parse_convention(convention)]
    value = open_v + np.clip(np.asarray(closure, dtype=float), 0.0, 1.0) * (closed_v - open_v)
    return float(value) if value.ndim == 0 else value


def closure_to_joint_targets(closure: float, open_q: np.ndarray, closed_q: np.ndarray) -> np.ndarray:
    """Finger joint targets (k,) [m | rad] for ``closure`` in [0, 1], between the open and closed positions."""
    c = float(np.clip(closure, 0.0, 1.0))
    open_q, closed_q = np.asarray(open_q, dtype=float), np.asarray(closed_q, dtype=float)
    return open_q + c * (closed_q - open_q)


def joints_to_closure(q: np.ndarray, open_q: np.ndarray, closed_q: np.ndarray) -> float:
    """Measured closure in [0, 1] from finger joint positions (k,), averaged over the fingers."""
    q, open_q, closed_q = (np.asarray(a, dtype=float) for a in (q, open_q, closed_q))
    return float(np.clip(np.mean((q - open_q) / (closed_q - open_q)), 0.0, 1.0))


@dataclass(frozen=True, kw_only=True)
class GripperMapping:
    """A gripper action dimension: its convention and whether it is binarized."""

    convention: GripperConvention = GripperConvention.CLOSE_0_1
    binarize: bool = False
    threshold: float | None = None
    """Binarization threshold in the convention's units (None: middle of the range)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "convention", parse_convention(self.convention))

    @classmethod
    def parse(cls, value) -> GripperMapping:
        """A mapping from a mapping, a convention name, or None (the default ``close_0_1``)."""
        if isinstance(value, GripperMapping):
            return value
        if value is None:
            return cls()
        if isinstance(value, dict):
            return cls(**value)
        return cls(convention=value)

    @property
    def low(self) -> float:
        """Smallest valid action value."""
        return min(GRIPPER_ENDPOINTS[self.convention])

    @property
    def high(self) -> float:
        """Largest valid action value."""
        return max(GRIPPER_ENDPOINTS[self.convention])

    def to_closure(self, value) -> float:
        """Closure in [0, 1] (0 open, 1 closed) for an action value."""
        return gripper_to_closure(value, self.convention, binarize=self.binarize, threshold=self.threshold)

    def from_closure(self, closure) -> float:
        """Action value for a closure in [0, 1] (e.g. to record a measured gripper state)."""
        return closure_to_gripper(closure, self.convention)

    @property
    def description(self) -> str:
        open_v, closed_v = GRIPPER_ENDPOINTS[self.convention]
        text = f"gripper {self.convention.value}: {open_v:g} = open, {closed_v:g} = closed"
        if self.binarize:
            mid = 0.5 * (open_v + closed_v) if self.threshold is None else self.threshold
            text += f", binarized at {mid:g}"
        return text


__all__ = [
    "GRIPPER_ENDPOINTS",
    "GripperConvention",
    "GripperMapping",
    "closure_to_gripper",
    "closure_to_joint_targets",
    "gripper_to_closure",
    "joints_to_closure",
    "parse_convention",
]
