"""Isaac Sim RTX Lidar for a vlatwin profile, with per-point labels via the StableIdMap chain.

Kit-only (imports inside the methods). Sources for each choice ([IS] = isaac-sim/IsaacSim at v5.1.0):

* The sensor is created *under* the lidar's mount prim (``/World/Lidars/<name>``, which carries the
  pose from the config) with an identity local pose: ``IsaacSensorCreateRtxLidar`` writes the given
  translation/orientation as the new prim's local xform ops (source/extensions/isaacsim.sensors.rtx/python/impl/commands.py
  L119-124), so passing the mount pose again applied it twice.
* Render product 128 x 128, as ``LidarRtx`` makes (source/extensions/isaacsim.sensors.rtx/python/impl/lidar_rtx.py L142).
* Points per rendered frame: the ``IsaacCreateRTXLidarScanBuffer`` node with ``enablePerFrameOutput``,
  which is exactly how the ``IsaacExtractRTXSensorPointCloudNoAccumulator`` annotator is registered
  (source/extensions/isaacsim.sensors.rtx/python/impl/extension.py L143-153), plus the per-point
  fields vlatwin needs. The loop renders the frames through one scan time with ``delta_time`` = the
  time since the previous render, and the frames' points are concatenated into the scan.
* ``objectId`` is output only when ``omni:sensor:Core:auxOutputType`` >= EXTRA
  (source/extensions/isaacsim.sensors.rtx/nodes/OgnIsaacCreateRTXLidarScanBuffer.cpp L270); FULL is used.
* Stable ids must be on (``--/rtx-transient/stableIds/enabled=true``,
  source/extensions/isaacsim.sensors.rtx/config/extension.toml L147): checked here, one-line error if off.
* Config USDs load from the asset root (commands.py L120 ``get_assets_root_path() + config``), which
  raises RuntimeError when it is unreachable (source/extensions/isaacsim.storage.native/isaacsim/storage/native/nucleus.py
  L461-496): turned into a one-line error.

Isaac Sim 6.x: the same calls (the physics backend switches API, this module does not). The sensor
command and the ``IsaacCreateRTXLidarScanBuffer`` annotator both come from ``isaacsim.sensors.rtx``, which
6.0 still ships but deprecates ([IS] v6.0.1 source/deprecated/isaacsim.sensors.rtx/python/impl/extension.py
L191-230 registers the annotator). Its 6.0 replacement, ``isaacsim.sensors.experimental.rtx``, is not a
drop-in: ``Lidar.create`` (source/extensions/isaacsim.sensors.experimental.rtx/python/impl/lidar.py L190-270)
authors the aux level as ``_replicator:rendervar:GenericModelOutput:channels`` (impl/_sensor_base.py L236-242),
not ``omni:sensor:Core:auxOutputType``, and ``LidarSensor`` delivers points through the
``generic-model-output`` / ``stable-id-map`` annotators only (impl/_common.py L16-19, attached in
impl/_sensor_base.py L449-474), a different data layout from the scan buffer's. Porting means a new per-point decode that cannot be checked without Isaac Sim 6, and the
module is absent from 5.1 (the 5.1.0 symbol index lists no ``isaacsim.sensors.experimental``), so it
stays on the 5.1 API until it can be run on 6.0 (exts/vlatwin/docs/README.md, row "Isaac Sim 6.0").
"""

from __future__ import annotations

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sensors.base import Sensor
from vlatwin.sim.isaac_convert import decode_stable_id_map, lidar_points_from_rtx, parse_object_ids, rtx_lidar_config

#: IsaacCreateRTXLidarScanBuffer init params: per-frame output (the NoAccumulator annotator's setting) + fields.
SCAN_BUFFER_OUTPUTS = {
    "enablePerFrameOutput": True,
    "outputIntensity": True,
    "outputDistance": True,
    "outputObjectId": True,
    "outputTimestamp": True,
    "outputEmitterId": True,
    "outputBeamId": True,
    "outputNormal": True,
}
#: objectId needs auxOutputType >= EXTRA (OgnIsaacCreateRTXLidarScanBuffer.cpp L270); the examples use FULL.
AUX_OUTPUT_TYPE = "FULL"
RENDER_PRODUCT_SIZE = (128, 128)
STABLE_IDS_SETTING = "/rtx-transient/stableIds/enabled"
#: Rendered frames per second of simulated time while a scan is captured.
RENDER_HZ = 60.0


def assets_root() -> str:
    """Isaac Sim's asset root (where RTX Lidar config USDs live), or a one-line error saying it is unreachable."""
    from isaacsim.storage.native import get_assets_root_path

    try:
        return get_assets_root_path()
    except RuntimeError as exc:
        raise VlatwinError(
            f"Isaac Sim's asset server is unreachable ({exc}); RTX Lidar configs load from it: connect it or set "
            "/persistent/isaac/asset_root/default to a local copy of the Isaac Sim assets"
        ) from None


def require_stable_ids() -> None:
    import carb.settings

    if not carb.settings.get_settings().get(STABLE_IDS_SETTING):
        raise VlatwinError(
            f"RTX Lidar labels need stable ids: start Isaac Sim with --{STABLE_IDS_SETTING}=true "
            "(the vlatwin launcher and extension set it)"
        )


def mount_path(lidar_cfg) -> str:
    return f"/World/Lidars/{lidar_cfg.name}"


class LidarIsaac(Sensor):
    """One RTX Lidar created from a vlatwin profile under the lidar's mount prim.

    As a :class:`~vlatwin.sensors.base.Sensor` it samples once per rendered frame through one scan
    time (offsets ``f, 2f, ..., scan``); before each sample the loop renders (``renderer.capture_once``),
    and the sample keeps that frame's points. ``finish`` returns the concatenated scan.
    """

    kind = "lidar"

    def __init__(self, lidar_cfg, labels, renderer=None):
        import omni.kit.commands
        import omni.replicator.core as rep
        from pxr import Gf

        profile = lidar_cfg.isaac_resolved_profile
        config, variant = rtx_lidar_config(profile)
        require_stable_ids()
        assets_root()
        _, self.prim = omni.kit.commands.execute(
            "IsaacSensorCreateRtxLidar",
            path="rtx",
            parent=mount_path(lidar_cfg),
            config=config,
            variant=variant,
            translation=Gf.Vec3d(0.0, 0.0, 0.0),  # the mount prim carries the pose
            orientation=Gf.Quatd(1.0, 0.0, 0.0, 0.0),
            **{"omni:sensor:Core:auxOutputType": AUX_OUTPUT_TYPE},
        )
        if self.prim is None or not self.prim.IsValid():
            raise VlatwinError(f"scene.lidars.{lidar_cfg.name}: Isaac Sim did not create the RTX Lidar ({config}, {variant})")
        self.labels = labels
        self.renderer = renderer
        self.name = lidar_cfg.name
        self._profile = profile
        self.product = rep.create.render_product(self.prim.GetPath(), RENDER_PRODUCT_SIZE, name=f"{lidar_cfg.name}_rtx")
        self.scan_buffer = rep.AnnotatorRegistry.get_annotator("IsaacCreateRTXLidarScanBuffer")
        self.scan_buffer.initialize(**SCAN_BUFFER_OUTPUTS)
        self.scan_buffer.attach(self.product)
        self.stable_ids = rep.AnnotatorRegistry.get_annotator("StableIdMap")
        self.stable_ids.attach(self.product)
        self.last_start_time = 0.0
        self._frames: list[np.ndarray] = []

    def schedule(self, physics_dt: float, index: int = 0):
        scan_steps = max(1, int(round(self._profile.scan_time / physics_dt)))
        frame_steps = max(1, int(round(1.0 / (RENDER_HZ * physics_dt))))
        offsets = list(range(frame_steps, scan_steps, frame_steps)) + [scan_steps]
        return tuple(offsets)

    def duration_steps(self, physics_dt: float, index: int = 0) -> int:
        return int(self.schedule(physics_dt, index)[-1])

    def begin(self, context) -> None:
        self.last_start_time = context.start_time
        self._frames = []

    def sample(self, k: int) -> None:
        if self.renderer is not None:
            self.renderer.capture_once()  # no-op when the loop already rendered this state
        self._frames.append(self.points())

    def finish(self) -> np.ndarray:
        from vlatwin.sensors.lidar.sensor_model import POINT_DTYPE

        frames = [f for f in self._frames if len(f)]
        return np.concatenate(frames) if frames else np.zeros(0, dtype=POINT_DTYPE)

    def points(self) -> np.ndarray:
        """The points of the latest rendered frame as vlatwin :data:`POINT_DTYPE` (sensor frame)."""
        data = self.scan_buffer.get_data()
        xyz = np.asarray(data.get("data", np.zeros((0, 3))), dtype=np.float32).reshape(-1, 3)
        n = len(xyz)
        id_map = decode_stable_id_map(self.stable_ids.get_data())
        object_ids = parse_object_ids(np.asarray(data.get("objectId", np.zeros(0, np.uint8)))) if n else []
        # A hit whose id has no map entry (procedural geometry, unexpanded submeshes: [IS] v6.0.1
        # source/extensions/isaacsim.sensors.experimental.rtx/python/impl/utils.py L91-106) hit *something*: UNLABELLED.
        paths = np.array([id_map.get(int(i), "<unknown>") for i in object_ids], dtype=object) if n else np.zeros(0, dtype=object)
        if len(paths) != n:
            raise VlatwinError(f"lidar {self.name}: {n} points but {len(paths)} object ids (is auxOutputType >= EXTRA?)")
        scan = {"data": xyz, "intensity": data.get("intensity", np.zeros(n)), "timestamp": data.get("timestamp", np.zeros(n))}
        scan["beamId"] = data.get("beamId", data.get("emitterId", np.zeros(n)))
        return lidar_points_from_rtx(scan, paths, self.labels)

    def close(self) -> None:
        self.scan_buffer.detach()
        self.stable_ids.detach()
        self.product.destroy()
