"""Point clouds of a stage's LIDARs from a Newton simulation, and their run-log encoding.

The LIDAR counterpart of :mod:`vlatwin.twin.cameras`: the emulated robot scans with its own simulation, the
twin scans the same sensors at the same instant of its re-simulation, and the fidelity report compares the
clouds (Chamfer distance). Scans are ideal (no noise or dropout) and taken with time frozen at that instant,
so the difference is the twin's geometry, not sensor noise or motion distortion. Clouds go into the MCAP run
log as Foxglove ``PointCloud`` messages (x, y, z float32 in the sensor frame, base64 in JSON).
"""

from __future__ import annotations

import base64

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.twin.cameras import foxglove_time, select_by_name

__all__ = ["StageLidars", "cloud_message", "decode_cloud_message"]


class StageLidars:
    """Ideal, time-frozen scans of the stage's LIDARs (``vlatwin:lidarProfile`` mounts) from ``sim``'s current state.

    Args:
        sim: a loaded :class:`~vlatwin.sim.newton.SimBackendNewton`.
        stage_path: the stage it was loaded from.
        names: LIDARs to scan (None: all on the stage).
    """

    def __init__(self, sim, stage_path, names=None):
        from vlatwin.config.scene_cfg import LidarCfg
        from vlatwin.sdg.newton_worker import lidar_pose_fn
        from vlatwin.sensors.lidar.newton_lidar import LidarNewton
        from vlatwin.usd.check import open_stage
        from vlatwin.usd.read_back import read_lidars

        stage = open_stage(stage_path)
        cfgs = select_by_name([LidarCfg(**c) for c in read_lidars(stage)], names, "lidar", stage_path)
        self._sim = sim
        self._sensors = {}
        for cfg in cfgs:
            sensor = LidarNewton(sim, stage, cfg.resolved_profile, blocks=1, name=cfg.name, noise=False)
            self._sensors[cfg.name] = (sensor, lidar_pose_fn(sim, cfg))

    @property
    def names(self) -> list[str]:
        return list(self._sensors)

    def scan(self) -> dict[str, np.ndarray]:
        """One (N, 3) float32 cloud [m] per LIDAR, in its sensor frame, from the simulation's current state."""
        out = {}
        for name, (sensor, pose_at) in self._sensors.items():
            points = sensor.scan(pose_at)
            out[name] = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float32)
        return out


_FIELDS = [{"name": axis, "offset": 4 * k, "type": 7} for k, axis in enumerate("xyz")]  # 7 = FLOAT32


def cloud_message(points: np.ndarray, t_host: float, frame_id: str) -> dict:
    """A ``foxglove.PointCloud`` message (x, y, z float32, sensor frame) for the run log."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3 or not np.all(np.isfinite(points)):
        raise VlatwinError(f"lidar {frame_id}: expected finite (N, 3) points, got shape {points.shape}")
    return {
        "timestamp": foxglove_time(t_host),
        "frame_id": frame_id,
        "pose": {"position": {"x": 0.0, "y": 0.0, "z": 0.0}, "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}},
        "point_stride": 12,
        "fields": _FIELDS,
        "data": base64.b64encode(np.ascontiguousarray(points, dtype="<f4").tobytes()).decode("ascii"),
    }


def decode_cloud_message(message: dict) -> np.ndarray:
    """The (N, 3) float32 points of a message written by :func:`cloud_message`."""
    name = message.get("frame_id", "?") if isinstance(message, dict) else "?"
    try:
        if int(message["point_stride"]) != 12 or [f["name"] for f in message["fields"]] != ["x", "y", "z"]:
            raise ValueError("layout")
        raw = base64.b64decode(message["data"], validate=True)
        if len(raw) % 12:
            raise ValueError("size")
    except (KeyError, TypeError, ValueError) as exc:
        raise VlatwinError(f"point cloud message {name!r}: not an x, y, z float32 cloud ({exc})") from None
    return np.frombuffer(raw, dtype="<f4").reshape(-1, 3).copy()
