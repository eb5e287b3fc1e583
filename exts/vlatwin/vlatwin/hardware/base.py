"""The robot seam: what the twin needs from a physical robot (LeRobot's ``Robot`` API, with timestamps).

A :class:`Robot` is connected, streams :class:`RobotObservation` (measured joints with the robot's own
clock and the host's receive time) and takes :class:`RobotAction` (joint position targets with a sequence
number, a send time and an expiry). ``send_action`` returns the action actually applied (possibly clipped
by the robot's own limits), as LeRobot's does. Command semantics are latest-value: a newer action
replaces an older one that has not been applied yet; an action past its ``expires_at`` is never applied
(the robot holds, then decelerates).

Implementations: :mod:`vlatwin.hardware.emulated` (a second Newton instance with hidden parameter
mismatch, noise, latency, loss and clock drift: the hardware every test here uses) and
:mod:`vlatwin.hardware.remote` (a ``vlatwin agent`` over the network, which wraps a driver).

Times: ``host_*`` are host monotonic seconds (:class:`~vlatwin.hardware.clock.Clock`), ``robot_time`` is
the robot's clock [s] (offset and drifting against the host's; :mod:`vlatwin.twin.clock` estimates the
mapping). Joint vectors are in :attr:`Robot.joint_names` order, [rad] for revolute and [m] for prismatic
joints.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RobotObservation:
    """One measured robot state."""

    seq: int
    """Robot-side sequence number (increases by one per state the robot sent; gaps = lost packets)."""
    robot_time: float
    """When the robot measured it, on the robot's clock [s]."""
    host_time: float
    """When the host received it, on the host clock [s]."""
    joint_q: np.ndarray
    """Measured joint positions [rad | m]."""
    joint_qd: np.ndarray
    """Measured joint velocities [rad/s | m/s]."""
    joint_effort: np.ndarray | None = None
    """Measured joint efforts [N*m | N] when the robot reports them."""
    joint_q_desired: np.ndarray | None = None
    """The joint position target the robot's servo was tracking when it measured this state (libfranka's
    ``q_d``) [rad | m], when the robot reports it; ``status["target_time"]`` (robot clock [s]) says when that
    target took effect. System identification uses them as the exact input the robot applied."""
    joint_q_goal: np.ndarray | None = None
    """An interpolating servo's goal [rad | m]: the target it ramps ``joint_q_desired`` to since
    ``status["target_time"]``, over ``status["target_ramp_s"]`` [s] (:mod:`vlatwin.hardware.servo`). None: the
    servo steps, ``joint_q_desired`` is the target itself."""
    status: dict[str, Any] = field(default_factory=dict)
    """Robot-side status: ``estop`` (bool), ``mode`` (``running`` | ``holding`` | ``decelerating`` | ``stopped``),
    ``last_command_seq``, ``command_success_rate`` ..."""
    images: dict[str, np.ndarray] | None = None
    """Camera frames taken at ``robot_time`` (uint8 (H, W, 3) RGB by camera name), on the states that carry them
    (LeRobot robots' ``get_observation`` has its cameras the same way)."""
    point_clouds: dict[str, np.ndarray] | None = None
    """LIDAR clouds taken at ``robot_time`` ((N, 3) float32 [m] in each sensor's frame, by LIDAR name)."""


@dataclass(frozen=True)
class RobotAction:
    """Joint position targets for the robot."""

    target_q: np.ndarray
    """[rad | m], every joint in :attr:`Robot.joint_names` order (grippers included)."""
    seq: int = 0
    """Host-side sequence number (the robot ignores an action older than one it already applied)."""
    send_time: float = 0.0
    """Host time when it was sent [s]."""
    expires_at: float | None = None
    """Host time [s] after which the robot must not apply it (None: never expires)."""
    apply_at: float | None = None
    """Robot-clock time [s] the target takes effect (None: on arrival). A playout schedule: the robot (or the
    agent in front of it) holds the command until then, so the twin knows when it lands instead of guessing the
    link's jitter; one that arrives later is applied on arrival and counted late."""
    previous: RobotAction | None = None
    """Scheduled commands: the command sent before this one, repeated (its own ``apply_at`` set). A robot that
    lost it takes it from here and applies it at its time, if that has not passed: with a lead of at least one
    control period plus the link's one-way delay, one lost packet changes nothing."""


class Robot(abc.ABC):
    """A physical (or emulated) robot, LeRobot-style: connect, observe, act, disconnect."""

    name: str = "robot"
    joint_names: tuple[str, ...] = ()

    @property
    def observation_features(self) -> dict[str, Any]:
        """Feature name -> shape/dtype description (callable while disconnected)."""
        n = len(self.joint_names)
        return {"joint_q": (n,), "joint_qd": (n,), "robot_time": (), "seq": ()}

    @property
    def action_features(self) -> dict[str, Any]:
        return {"target_q": (len(self.joint_names),)}

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    @abc.abstractmethod
    def get_observation(self) -> RobotObservation | None:
        """The newest state received so far (None before the first one)."""

    @abc.abstractmethod
    def send_action(self, action: RobotAction) -> RobotAction:
        """Send (latest-value) and return what the robot side will apply (clipped to its own limits)."""

    @abc.abstractmethod
    def sync_sample(self) -> tuple[float, float, float, float] | None:
        """One NTP-style exchange: (t1 host send, t2 robot receive, t3 robot reply, t4 host receive) [s],
        or None when the exchange was lost."""

    def estop(self) -> None:  # noqa: B027 - robots without a software stop rely on the watchdog
        """Stop now (latched on the robot side until :meth:`reset_estop`)."""

    def reset_estop(self) -> None:  # noqa: B027
        """Clear a latched stop."""

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.disconnect()
