"""Seeded domain randomization on the Newton backend.

Every frame draws from its own generator seeded by (run seed, frame index), so a frame is the same
whether the run went straight through or resumed after a crash.
"""

from __future__ import annotations

import numpy as np

from vlatwin.sensors.camera.shapes import box_points, capsule_points, cylinder_points, sphere_points
from vlatwin.utils.transforms import look_at_matrix, matrix_to_quat_wxyz, rot_z, rpy_deg_to_matrix


DISTRACTOR_CLASS = "distractor"
PARKING_XY = (40.0, 40.0)
"""Where unused distractors wait, far outside every camera [m]."""


def frame_rng(seed: int, frame: int) -> np.random.Generator:
    return np.random.default_rng([seed, frame])


def with_distractors(scene, settings, seed: int):
    """A copy of ``scene`` with ``settings.count`` random primitives parked off-scene (seeded by ``seed``)."""
    from vlatwin.config.scene_cfg import ObjectCfg

    if settings.count == 0:
        return scene
    rng = np.random.default_rng([seed, 0xD157])
    extra = []
    for i in range(settings.count):
        half = rng.uniform(*settings.size_range)
        shape = ["box", "sphere", "cylinder"][int(rng.integers(3))]
        params = {
            "box": {"size": list(rng.uniform(0.6, 1.0, 3) * 2 * half)},
            "sphere": {"radius": half},
            "cylinder": {"radius": half * rng.uniform(0.5, 1.0), "height": 2 * half},
        }[shape]
        extra.append(
            ObjectCfg(
                name=f"distractor_{i}",
                shape=shape,
                position=(PARKING_XY[0] + 0.5 * i, PARKING_XY[1], half + 0.01),
                color=tuple(float(c) for c in rng.uniform(0.1, 0.9, 3)),
                label=DISTRACTOR_CLASS,
                **params,
            )
        )
    return scene.model_copy(update={"objects": [*scene.objects, *extra]})


def object_local_points(obj) -> np.ndarray:
    """Sample points of a config object's shape in its own frame [m] (scale applied)."""
    from vlatwin.usd.shapes import read_obj_vertices

    s = obj.scale
    if obj.shape == "box":
        return box_points(np.array(obj.size) * s / 2)
    if obj.shape == "sphere":
        return sphere_points(obj.radius * s, 100)
    if obj.shape == "cylinder":
        return cylinder_points(obj.radius * s, obj.height * s / 2)
    if obj.shape == "capsule":
        return capsule_points(obj.radius * s, obj.height * s / 2)
    if obj.shape == "mesh":
        from vlatwin.usd.mesh_assets import mesh_object_points

        return mesh_object_points(obj)
    vertices = obj.vertices if obj.vertices is not None else read_obj_vertices(obj.mesh_file)
    return np.asarray(vertices, dtype=float) * s


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Approximate linear RGB of a black body at ``kelvin`` (Tanner Helland's fit), normalised to max 1."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
    rgb = np.clip([r, g, b], 0, 255) / 255.0
    return tuple(float(c) for c in rgb / rgb.max())


class SceneRandomizer:
    """Applies the ``generate.randomize`` settings to a loaded scene before each frame."""

    def __init__(self, config, sim, renderer):
        self.scene = config.scene
        self.settings = config.generate.randomize
        self.sim = sim
        self.renderer = renderer
        info = sim.info
        self._home_q = sim.reset().joint_q.copy()
        self._objects = []
        self._distractors = []
        for obj in self.scene.objects:
            path = f"/World/Objects/{obj.name}"
            if not obj.dynamic or path not in info.body_paths:
                continue
            base_rot = rpy_deg_to_matrix(obj.rpy_deg)
            points = object_local_points(obj) @ base_rot.T
            entry = (path, base_rot, points)
            (self._distractors if obj.label == DISTRACTOR_CLASS and obj.name.startswith("distractor_") else self._objects).append(entry)
        table = self.scene.table
        top = table.size[2] if table.enabled else 0.0
        self._surface_z = top
        if self.settings.objects.region is not None:
            (x0, y0), (x1, y1) = self.settings.objects.region
        else:
            margin = 0.06
            cx, cy = table.position
            x0, x1 = cx - table.size[0] / 2 + margin, cx + table.size[0] / 2 - margin
            y0, y1 = cy - table.size[1] / 2 + margin, cy + table.size[1] / 2 - margin
        self._region = (x0, y0, x1, y1)
        self._robot_xy = np.array(self.scene.robot_base_position()[:2])
        self._key_light = self._find_key_light()

    def _find_key_light(self):
        lights = [l for l in self.scene.effective_lights() if l.type == "distant"]
        if not lights:
            return None
        key = max(lights, key=lambda l: l.intensity)
        return rpy_deg_to_matrix(key.rpy_deg) @ np.array([0.0, 0.0, -1.0]), np.array(key.color)

    def apply(self, rng: np.random.Generator) -> dict:
        """Randomize robot, objects and lights in place; returns what was drawn (for the frame record)."""
        record: dict = {}
        self.sim.reset()
        robot = self.settings.robot
        if robot.joint_noise > 0:
            q = self._home_q + rng.uniform(-robot.joint_noise, robot.joint_noise, size=self._home_q.shape)
            self.sim.set_joint_positions(q)
            record["robot_q"] = self.sim.get_state().joint_q.round(6).tolist()
        objects = self.settings.objects
        placed = list(self._objects)
        if self._distractors:
            lo, hi = self.settings.distractors.active
            count = int(rng.integers(lo, min(hi, len(self._distractors)) + 1))
            chosen = sorted(rng.choice(len(self._distractors), size=count, replace=False).tolist())
            placed += [self._distractors[i] for i in chosen]
            record["distractors"] = [self._distractors[i][0] for i in chosen]
        scales = {}
        if objects.scale_range is not None:
            for path, _, _ in placed:
                scales[path] = float(rng.uniform(*objects.scale_range))
                self.renderer.set_body_scale(path, scales[path])
            record["scales"] = {k: round(v, 5) for k, v in scales.items()}
        if objects.scatter and placed:
            record["objects"] = self._scatter(rng, objects, placed, scales)
        if objects.colors:
            record["colors"] = self._recolor(rng, placed)
        if self._key_light is not None and (self.settings.lights.direction_jitter_deg > 0 or self.settings.lights.color_temperature_range):
            record["light"] = self._relight(rng)
        return record

    def _scatter(self, rng, settings, objects, scales) -> dict:
        x0, y0, x1, y1 = self._region
        placed: list[tuple[np.ndarray, float]] = []
        poses = {}
        for path, base_rot, points in objects:
            points = points * scales.get(path, 1.0)
            radius = float(np.max(np.linalg.norm(points[:, :2], axis=1)))
            lift = float(-points[:, 2].min())
            for _ in range(200):
                xy = rng.uniform([x0 + radius, y0 + radius], [x1 - radius, y1 - radius])
                if np.linalg.norm(xy - self._robot_xy) < settings.keep_out_radius + radius:
                    continue
                if all(np.linalg.norm(xy - other) > radius + r + 0.01 for other, r in placed):
                    break
            else:
                raise RuntimeError(
                    f"could not place {path} without overlap in region {self._region}; enlarge the region or remove objects"
                )
            placed.append((xy, radius))
            yaw = rng.uniform(-np.pi, np.pi) if settings.yaw else 0.0
            rot = rot_z(yaw) @ base_rot
            pos = np.array([xy[0], xy[1], self._surface_z + lift + 0.002])
            self.sim.set_body_pose(path, np.concatenate([pos, matrix_to_quat_wxyz(rot)]))
            poses[path] = pos.round(5).tolist()
        return poses

    def _recolor(self, rng, objects) -> dict:
        colors = {}
        for path, *_ in objects:
            hue = rng.uniform(0, 1)
            rgb = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0))
            self.renderer.set_instance_color(path, rgb)
            colors[path] = [round(c, 4) for c in rgb]
        return colors

    def _relight(self, rng) -> dict:
        direction, color = self._key_light
        settings = self.settings.lights
        if settings.direction_jitter_deg > 0:
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            angle = np.deg2rad(rng.uniform(0, settings.direction_jitter_deg))
            direction = _rotate(direction, axis, angle)
            if direction[2] > -0.05:  # keep the sun above the horizon
                direction[2] = -0.05
            direction = direction / np.linalg.norm(direction)
        if settings.color_temperature_range:
            color = np.array(kelvin_to_rgb(rng.uniform(*settings.color_temperature_range)))
        self.renderer.set_key_light(direction, color)
        return {"direction": direction.round(5).tolist(), "color": np.round(color, 4).tolist()}


def camera_pose(cam_cfg, settings, rng: np.random.Generator) -> np.ndarray:
    """Camera-to-world 4x4 for a :class:`CameraCfg` with jitter / orbit drawn from ``rng``."""
    position = np.array(cam_cfg.position, dtype=float)
    target = np.array(cam_cfg.look_at, dtype=float)
    if settings.orbit_deg > 0:
        yaw = np.deg2rad(rng.uniform(-settings.orbit_deg, settings.orbit_deg))
        position = target + rot_z(yaw) @ (position - target)
    if settings.position_jitter > 0:
        position = position + rng.uniform(-settings.position_jitter, settings.position_jitter, 3)
    if settings.look_at_jitter > 0:
        target = target + rng.uniform(-settings.look_at_jitter, settings.look_at_jitter, 3)
    T = np.eye(4)
    T[:3, :3] = look_at_matrix(position, target, cam_cfg.up)
    T[:3, 3] = position
    return T


def _rotate(v, axis, angle):
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * np.dot(axis, v) * (1 - np.cos(angle))


def _hsv_to_rgb(h, s, v):
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
