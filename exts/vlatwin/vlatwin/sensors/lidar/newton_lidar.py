"""Newton adapter: cast a scan's beams with ``SensorCamera`` custom rays, in column blocks over time.

The scan is split into ``blocks`` groups of columns; each block is cast at its own time with the sensor
pose of that instant, so a moving sensor or moving objects distort the scan the way a real spinning
lidar does. The LIDAR is a :class:`~vlatwin.sensors.base.Sensor`: it asks for one sample per block
(:meth:`LidarNewton.schedule`) and the loop steps physics to each block's time; it never steps physics
itself. Points are reported in the sensor frame of their own firing time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sensors.base import CaptureContext, Sensor
from vlatwin.sensors.camera.labels import build_label_table
from vlatwin.sensors.lidar.pattern import make_pattern
from vlatwin.sensors.lidar.reflectivity import shape_reflectivity
from vlatwin.sensors.lidar.sensor_model import POINT_DTYPE, jitter_directions, returns
from vlatwin.utils.transforms import matrix_to_quat_wxyz


class LidarNewton(Sensor):
    """One LIDAR on a :class:`SimBackendNewton` scene.

    Args:
        blocks: column blocks per scan (time resolution of motion distortion = scan time / blocks).
        name: sensor name (the config's).
        pose_at: sensor-to-world 4x4 as a function of time since the scan start [s] (set per capture
            with :meth:`set_pose_fn` otherwise).
        noise: False gives an ideal sensor even when the capture has a random generator.
    """

    kind = "lidar"

    def __init__(self, sim, stage, profile, *, blocks: int = 10, labels=None, name: str = "lidar", pose_at=None, noise: bool = True):
        import warp as wp
        from newton.sensors import SensorCamera

        self._wp = wp
        self.name = name
        self._pose_at = pose_at
        self._noise = noise
        self.sim = sim
        self.profile = profile
        self.blocks = max(1, int(blocks))
        config = SensorCamera.RenderConfig()
        config.enable_shadows = False
        config.max_distance = float(profile.max_range) * 1.01
        self._config = config
        self._sensor = SensorCamera(sim.model, default_render_config=config)
        self.labels = labels or build_label_table(stage, list(sim.model.shape_label))
        self.reflectivity = shape_reflectivity(stage, list(sim.model.shape_label), self.labels)
        self._static_pattern = make_pattern(profile) if profile.pattern != "rosette" else None
        self._buffers: dict[int, dict] = {}

    def _block_slices(self, pattern) -> list[slice]:
        # Beams are ordered by column, so a block of columns is a contiguous range of beams.
        edges = np.searchsorted(pattern.columns, np.linspace(0, pattern.n_columns, self.blocks + 1).round().astype(int))
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    def _buffers_for_new(self, n: int) -> dict:
        s, wp = self._sensor, self._wp
        device = self.sim.model.device
        return {
            "rays": wp.zeros((1, n, 1, 2), dtype=wp.vec3f, device=device),
            "depth": s.allocate_image_depth(1, n, 1),
            "shape": s.allocate_image_shape_index(1, n, 1),
            "normal": s.allocate_image_normal(1, n, 1),
            "transform": wp.zeros(1, dtype=wp.transformf, device=device),
        }

    def _buffers_for(self, n: int) -> dict:
        if n not in self._buffers:
            self._buffers[n] = self._buffers_for_new(n)
        return self._buffers[n]

    @staticmethod
    def _upload(buf: dict, directions_s: np.ndarray) -> None:
        rays = np.zeros((1, len(directions_s), 1, 2, 3), dtype=np.float32)
        rays[0, :, 0, 1] = directions_s
        buf["rays"].assign(rays)

    def cast(self, directions_s: np.ndarray, T_w_s: np.ndarray, *, cache_key=None):
        """Cast beams (sensor frame) from pose ``T_w_s``: (range [m] inf = miss, shape index, world normals).

        ``cache_key`` marks directions that repeat every scan (static patterns, no jitter): their ray
        buffer is uploaded once.
        """
        n = len(directions_s)
        if cache_key is not None:
            buf = self._buffers.setdefault(("static", cache_key), dict(self._buffers_for_new(n)))
            if "uploaded" not in buf:
                self._upload(buf, directions_s)
                buf["uploaded"] = True
        else:
            buf = self._buffers_for(n)
            self._upload(buf, directions_s)
        w, x, y, z = matrix_to_quat_wxyz(T_w_s[:3, :3])
        buf["transform"].assign(np.array([[*T_w_s[:3, 3], x, y, z, w]], dtype=np.float32))
        self._sensor.update(
            self.sim.state,
            buf["transform"],
            buf["rays"],
            depth_image=buf["depth"],
            shape_index_image=buf["shape"],
            normal_image=buf["normal"],
        )
        # Views of the render buffers (CPU: no copy); callers use them before the next cast.
        depth = buf["depth"].numpy()[0, 0]
        depth[~(depth > 0)] = np.inf
        return depth, buf["shape"].numpy()[0, 0], buf["normal"].numpy()[0, 0]

    # ------------------------------------------------------------- sensor seam
    def set_pose_fn(self, pose_at: Callable[[float], np.ndarray]) -> None:
        """Sensor-to-world 4x4 at time t [s] since the scan start."""
        self._pose_at = pose_at

    def _pattern(self, index: int):
        return self._static_pattern or make_pattern(self.profile, scan_index=index)

    def schedule(self, physics_dt: float, index: int = 0):
        """One sample per column block, at the block's mean firing time rounded to whole physics steps."""
        pattern = self._pattern(index)
        return tuple(int(round(float(pattern.times[block].mean()) / physics_dt)) for block in self._block_slices(pattern))

    def duration_steps(self, physics_dt: float, index: int = 0) -> int:
        return max(int(round(self.profile.scan_time / physics_dt)), self.schedule(physics_dt, index)[-1])

    def begin(self, context: CaptureContext) -> None:
        if self._pose_at is None:
            raise VlatwinError(f"lidar {self.name}: no pose; call set_pose_fn() before capturing")
        self._rng = context.rng if self._noise else None
        self.last_start_time = context.start_time
        self._scan_pattern = self._pattern(context.index)
        self._blocks = self._block_slices(self._scan_pattern)
        self._chunks = []

    def sample(self, k: int) -> None:
        """Cast block ``k`` from the current state (the loop has refit the scene for this step)."""
        profile, pattern, rng = self.profile, self._scan_pattern, self._rng
        block = self._blocks[k]
        static = self._static_pattern is not None and (rng is None or profile.angular_sigma_deg <= 0)
        times = pattern.times[block]
        t_block = float(times.mean())
        T_w_s = self._pose_at(t_block)
        nominal = pattern.directions_s[block]
        cast_dirs = jitter_directions(nominal, profile.angular_sigma_deg, rng) if rng is not None else nominal
        depth, shape_index, normals_w = self.cast(cast_dirs, T_w_s, cache_key=k if static else None)
        # Only beams that hit inside the range limits need the per-return model.
        hit = np.flatnonzero((depth >= profile.min_range) & (depth <= profile.max_range))
        dirs_w = cast_dirs[hit] @ T_w_s[:3, :3].T.astype(np.float32)
        cos_inc = np.abs(np.einsum("ij,ij->i", normals_w[hit], dirs_w))
        shapes = shape_index[hit]
        valid_shape = shapes < len(self.reflectivity)
        refl = np.where(valid_shape, self.reflectivity[np.where(valid_shape, shapes, 0)], 0.0)
        keep, measured, intensity = returns(depth[hit], cos_inc, refl, profile, rng)
        sel = hit[keep]
        semantic, instance = self.labels.lookup_images(shapes[keep])
        pts = np.empty(len(sel), dtype=POINT_DTYPE)
        xyz = nominal[sel] * measured[keep, None]
        pts["x"], pts["y"], pts["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        pts["intensity"] = intensity[keep]
        pts["t"] = times[sel]
        pts["ring"] = pattern.rings[block][sel]
        pts["class"] = semantic
        pts["instance"] = instance
        self._chunks.append(pts)

    def finish(self) -> np.ndarray:
        """The scan as a :data:`POINT_DTYPE` array."""
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.empty(0, dtype=POINT_DTYPE)

    def scan(
        self,
        pose_at: Callable[[float], np.ndarray],
        *,
        rng: np.random.Generator | None = None,
        scan_index: int = 0,
        advance_physics: bool = False,
    ) -> np.ndarray:
        """One scan with time frozen (every block from the current state), as a :data:`POINT_DTYPE` array.

        A scan over simulated time (motion distortion) is a capture run by the loop:
        ``vlatwin.loop.capture(sim, [lidar], rng=rng)`` steps physics to each block's time.
        """
        if advance_physics:
            raise VlatwinError("sensors never step physics: capture with vlatwin.loop.capture(sim, [lidar]) instead")
        self.set_pose_fn(pose_at)
        state_step = self.sim.current_step
        self.begin(CaptureContext(index=scan_index, rng=rng, start_time=state_step * self.sim.physics_dt, start_step=state_step))
        self.sim.refit_render_scene()
        for k in range(len(self._blocks)):
            self.sample(k)
        return self.finish()


def points_to_world(points: np.ndarray, pose_at: Callable[[float], np.ndarray], profile, blocks: int) -> np.ndarray:
    """De-skew helper for tests/consumers: each point's sensor pose is taken at its own block time."""
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
    out = np.empty_like(xyz)
    t = points["t"].astype(np.float64)
    edges = np.linspace(0.0, profile.scan_time, blocks + 1)
    block = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, blocks - 1)
    for b in np.unique(block):
        sel = block == b
        T = pose_at(float(t[sel].mean()))
        out[sel] = xyz[sel] @ T[:3, :3].T + T[:3, 3]
    return out
