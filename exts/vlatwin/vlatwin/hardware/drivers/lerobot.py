"""Any LeRobot ``Robot`` object (SO-100/101, Koch, ...) as a vlatwin :class:`Robot`, for ``vlatwin agent``.

LeRobot's API (``lerobot.robots.robot.Robot``): ``connect(calibrate=True)``, ``is_connected``,
``action_features`` (``{"<motor>.pos": float, ...}``, valid while disconnected), ``get_observation()``
(``{"<motor>.pos": float, ..., "<camera>": image}``), ``send_action({"<motor>.pos": ...})`` returning the
action actually sent (clipped by its ``max_relative_target``), ``disconnect()``. Actions are absolute joint
position targets.

Mapping (the joints are the ``*.pos`` motors of ``action_features``, in that order):

* arm joints: LeRobot degrees (``use_degrees=True`` robots) <-> [rad]; with ``degrees=False`` values pass
  through unchanged (e.g. the ``RANGE_M100_100`` normalisation, which only the robot's calibration maps to
  angles);
* gripper motors (``gripper_joints``): LeRobot's ``RANGE_0_100`` <-> ``gripper_range`` linearly
  (``gripper_range[0]`` at 0, ``gripper_range[1]`` at 100; e.g. ``(0.0, 1.0)`` for a 0..1 closure or
  opening fraction: which end is closed depends on the robot's calibration).

LeRobot observations carry no timestamps and no velocities: ``robot_time`` is the host clock at the middle
of the bus read (so the robot clock *is* the host clock and :meth:`sync_sample` is exact), ``joint_qd`` is
the finite difference of consecutive reads. Camera frames in the observation (uint8 (H, W, 3) RGB, LeRobot's
default colour mode) go into ``RobotObservation.images`` by their key, so the agent forwards them and the twin
renders the same cameras at that instant (name the twin's cameras like LeRobot's). LeRobot reads each camera's
newest frame in the background, so a frame can be up to one camera period older than the joints. The e-stop is software: it holds the last measured position and refuses commands until reset.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.hardware.base import Robot, RobotAction, RobotObservation
from vlatwin.hardware.clock import Clock, WallClock

logger = logging.getLogger(__name__)


class LeRobotDriver(Robot):
    """Wrap a LeRobot ``Robot`` object (duck-typed: no ``lerobot`` import here).

    Args:
        robot: the LeRobot robot (connected or not).
        degrees: arm joints are in degrees on the LeRobot side (converted to [rad]); False: passed through.
        gripper_joints: motor names treated as 0..100 grippers.
        gripper_range: twin values at LeRobot gripper 0 and 100.
        calibrate: passed to ``robot.connect(calibrate=...)``.
        clock: the host clock (default :class:`WallClock`).
    """

    def __init__(
        self,
        robot: Any,
        *,
        degrees: bool = True,
        gripper_joints: tuple[str, ...] = ("gripper",),
        gripper_range: tuple[float, float] = (0.0, 1.0),
        calibrate: bool = True,
        clock: Clock | None = None,
    ) -> None:
        for attr in ("connect", "disconnect", "get_observation", "send_action", "action_features"):
            if not hasattr(robot, attr):
                raise VlatwinError(f"{type(robot).__name__} is not a LeRobot Robot (no {attr}); pass e.g. SO101Follower(config)")
        lo, hi = (float(v) for v in gripper_range)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
            raise VlatwinError(f"gripper_range must be two different finite numbers, got {gripper_range}")
        self.robot = robot
        self.name = f"lerobot:{getattr(robot, 'name', type(robot).__name__)}"
        self.motors = tuple(k[: -len(".pos")] for k in robot.action_features if isinstance(k, str) and k.endswith(".pos"))
        if not self.motors:
            raise VlatwinError(f"{self.name}: action_features has no '<motor>.pos' keys ({list(robot.action_features)[:5]})")
        self.joint_names = self.motors
        self.degrees = bool(degrees)
        self.gripper_range = (lo, hi)
        self.calibrate = calibrate
        self.clock = clock or WallClock()
        self._is_gripper = np.array([m in gripper_joints for m in self.motors])
        self._seq = 0
        self._prev: tuple[float, np.ndarray] | None = None
        self._last: RobotObservation | None = None
        self._target: np.ndarray | None = None
        self._estop = False

    # ------------------------------------------------------------------ unit mapping

    def to_joints(self, values: dict[str, Any], *, fallback: np.ndarray | None = None) -> np.ndarray:
        """LeRobot ``{"<motor>.pos": v}`` -> joint vector (missing motors: ``fallback`` or an error)."""
        raw = np.empty(len(self.motors))
        for i, motor in enumerate(self.motors):
            value = values.get(f"{motor}.pos")
            if value is None:
                if fallback is None:
                    raise VlatwinError(f"{self.name}: observation lacks '{motor}.pos' (has {sorted(values)[:8]})")
                raw[i] = np.nan
            else:
                raw[i] = float(value)
        lo, hi = self.gripper_range
        q = np.where(self._is_gripper, lo + raw / 100.0 * (hi - lo), np.deg2rad(raw) if self.degrees else raw)
        if fallback is not None:
            q = np.where(np.isnan(q), fallback, q)
        return q

    def to_lerobot(self, q: np.ndarray) -> dict[str, float]:
        """Joint vector -> LeRobot ``{"<motor>.pos": v}``."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.size != len(self.motors):
            raise VlatwinError(f"{self.name}: action has {q.size} joints, the robot has {len(self.motors)} ({', '.join(self.motors)})")
        lo, hi = self.gripper_range
        raw = np.where(self._is_gripper, (q - lo) / (hi - lo) * 100.0, np.rad2deg(q) if self.degrees else q)
        return {f"{m}.pos": float(v) for m, v in zip(self.motors, raw)}

    # ------------------------------------------------------------------ Robot API

    @property
    def is_connected(self) -> bool:
        return bool(getattr(self.robot, "is_connected", False))

    def connect(self) -> None:
        if not self.is_connected:
            self.robot.connect(calibrate=self.calibrate)

    def disconnect(self) -> None:
        if self.is_connected:
            self.robot.disconnect()

    def get_observation(self) -> RobotObservation:
        t0 = self.clock.now()
        raw = self.robot.get_observation()
        t1 = self.clock.now()
        q = self.to_joints(raw)
        t_mid = 0.5 * (t0 + t1)
        qd = np.zeros_like(q)
        if self._prev is not None and t_mid > self._prev[0]:
            qd = (q - self._prev[1]) / (t_mid - self._prev[0])
        self._prev = (t_mid, q)
        self._seq += 1
        mode = "stopped" if self._estop else "running"
        images = {
            str(k): v for k, v in raw.items()
            if isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 3 and v.shape[2] == 3
        }
        self._last = RobotObservation(
            seq=self._seq, robot_time=t_mid, host_time=t1, joint_q=q, joint_qd=qd,
            status={"estop": self._estop, "mode": mode, "read_ms": (t1 - t0) * 1e3}, images=images or None,
        )
        return self._last

    def send_action(self, action: RobotAction) -> RobotAction:
        now = self.clock.now()
        if self._estop or (action.expires_at is not None and now > action.expires_at):
            why = "e-stop latched" if self._estop else f"expired {1e3 * (now - action.expires_at):.1f} ms ago"
            logger.warning("%s: action seq %d not applied (%s); holding", self.name, action.seq, why)
            held = self._target if self._target is not None else (self._last.joint_q if self._last is not None else action.target_q)
            return RobotAction(target_q=np.array(held, dtype=np.float64), seq=action.seq, send_time=now, expires_at=action.expires_at)
        requested = np.asarray(action.target_q, dtype=np.float64)
        sent = self.robot.send_action(self.to_lerobot(requested))
        applied = self.to_joints(dict(sent or {}), fallback=requested)
        self._target = applied
        return RobotAction(target_q=applied, seq=action.seq, send_time=now, expires_at=action.expires_at)

    def sync_sample(self) -> tuple[float, float, float, float]:
        t = self.clock.now()  # robot_time is the host clock: the exchange is exact
        return (t, t, t, t)

    def estop(self) -> None:
        """Hold the current position (software stop; LeRobot motors have no brake) until :meth:`reset_estop`."""
        self._estop = True
        try:
            hold = self.to_joints(self.robot.get_observation())
            self.robot.send_action(self.to_lerobot(hold))
            self._target = hold
        except Exception as exc:  # noqa: BLE001 - latched anyway; commands stay refused
            logger.error("%s: e-stop could not command a hold: %s", self.name, exc)

    def reset_estop(self) -> None:
        self._estop = False


__all__ = ["LeRobotDriver"]
