"""Isaac Sim RTX Lidar for a vlatwin profile, with per-point labels via the StableIdMap chain.

Kit-only. Needs Isaac Sim started with ``--/rtx-transient/stableIds/enabled=true`` (the standalone
scripts pass it) so ``objectId`` can be resolved to prim paths.
"""

from __future__ import annotations

import numpy as np

from vlatwin.sensors.base import Sensor

from vlatwin.sim.isaac_convert import lidar_points_from_rtx, rtx_lidar_config

SCAN_BUFFER_OUTPUTS = {
    "outputIntensity": True,
    "outputDistance": True,
    "outputObjectId": True,
    "outputTimestamp": True,
    "outputEmitterId": True,
    "outputBeamId": True,
    "outputNormal": True,
}


class LidarIsaac(Sensor):
    """One RTX Lidar created from a vlatwin profile at the lidar prim's pose.

    As a :class:`~vlatwin.sensors.base.Sensor` it takes one sample at the end of a scan: RTX Lidar
    accumulates its beams while the loop steps physics and renders through the scan time.
    """

    kind = "lidar"

    def __init__(self, lidar_cfg, labels):
        import omni.kit.commands
        import omni.replicator.core as rep
        from pxr import Gf

        from vlatwin.utils.transforms import matrix_to_quat_wxyz, rpy_deg_to_matrix

        profile = lidar_cfg.resolved_profile
        config, variant = rtx_lidar_config(profile)
        w, x, y, z = matrix_to_quat_wxyz(rpy_deg_to_matrix(lidar_cfg.rpy_deg))
        _, self.prim = omni.kit.commands.execute(
            "IsaacSensorCreateRtxLidar",
            path=f"/World/Lidars/{lidar_cfg.name}/rtx",
            parent=None,
            config=config,
            variant=variant,
            translation=Gf.Vec3d(*map(float, lidar_cfg.position)),
            orientation=Gf.Quatd(float(w), float(x), float(y), float(z)),
            **{"omni:sensor:Core:auxOutputType": "FULL"},
        )
        self.labels = labels
        self.name = lidar_cfg.name
        self._profile = profile
        self.product = rep.create.render_product(self.prim.GetPath(), (1, 1), name=f"{lidar_cfg.name}_rtx")
        self.scan_buffer = rep.AnnotatorRegistry.get_annotator("IsaacCreateRTXLidarScanBuffer")
        self.scan_buffer.initialize(**SCAN_BUFFER_OUTPUTS)
        self.scan_buffer.attach(self.product)
        self.stable_ids = rep.AnnotatorRegistry.get_annotator("StableIdMap")
        self.stable_ids.attach(self.product)

    def schedule(self, physics_dt: float, index: int = 0):
        return (max(0, int(round(self._profile.scan_time / physics_dt))),)

    def begin(self, context) -> None:
        self.last_start_time = context.start_time
        self._points = None

    def sample(self, k: int) -> None:
        self._points = self.points()

    def finish(self) -> np.ndarray:
        return self._points

    def points(self) -> np.ndarray:
        """The latest full scan as vlatwin :data:`POINT_DTYPE` points (sensor frame)."""
        from isaacsim.sensors.rtx import LidarRtx

        data = self.scan_buffer.get_data()
        id_map = LidarRtx.decode_stable_id_mapping(self.stable_ids.get_data().tobytes())
        object_ids = LidarRtx.get_object_ids(data["objectId"])
        paths = np.array([id_map.get(int(i), "") for i in object_ids])
        scan = {
            "data": data["data"],
            "intensity": data["intensity"],
            "timestamp": data["timestamp"],
            "beamId": data["beamId"],
        }
        return lidar_points_from_rtx(scan, paths, self.labels)

    def close(self) -> None:
        self.scan_buffer.detach()
        self.stable_ids.detach()
        self.product.destroy()
