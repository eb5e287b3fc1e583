"""Newton ``SensorCamera`` adapter: renders raw buffers, then hands them to the numpy annotators.

One instance renders any number of cameras of one scene. Rays are built from each camera's
intrinsics (OpenCV pinhole or fisheye distortion inside the rays, not a post-warp). Lighting maps
the stage's strongest UsdLux distant light to Newton's directional light and a dome light to its
ambient term; other light types are not represented by this renderer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlatwin.sensors.camera import annotators as ann
from vlatwin.sensors.camera.labels import build_label_table
from vlatwin.sensors.camera.model import CameraModel
from vlatwin.sensors.camera.shapes import box_points, capsule_points, cylinder_points, sphere_points
from vlatwin.utils.transforms import matrix_to_quat_wxyz, quat_wxyz_to_matrix

#: Annotators this backend produces (Replicator names): all of them.
SUPPORTED_ANNOTATORS = ann.ANNOTATOR_NAMES


@dataclass
class RawBuffers:
    """One camera's render, as numpy arrays (H, W, ...)."""

    rgba: np.ndarray
    """uint8 (H, W, 4), sRGB."""
    depth_ray: np.ndarray
    """float32 (H, W) distance along each ray [m], inf = miss."""
    depth_plane: np.ndarray
    """float32 (H, W) distance to the image plane [m], inf = miss."""
    shape_index: np.ndarray
    """uint32 (H, W) renderer shape index, 0xFFFFFFFF = miss."""
    normals_w: np.ndarray
    """float32 (H, W, 3) world-frame normals."""


def checkerboard_image(resolution: int = 64, squares: int = 8) -> np.ndarray:
    """A two-tone grey checkerboard, RGBA uint8 (resolution x resolution)."""
    cells = (np.arange(resolution) * squares // resolution)
    board = (cells[:, None] + cells[None, :]) % 2 == 0
    image = np.where(board[..., None], np.uint8(128), np.uint8(191)).repeat(4, axis=2)
    image[..., 3] = 255
    return image


def _to_T(pose7) -> np.ndarray:
    """Newton transform (p, q xyzw) to 4x4."""
    T = np.eye(4)
    T[:3, 3] = pose7[:3]
    T[:3, :3] = quat_wxyz_to_matrix([pose7[6], pose7[3], pose7[4], pose7[5]])
    return T


class CameraRendererNewton:
    """Render and annotate cameras of a scene simulated by :class:`SimBackendNewton`.

    Args:
        sim: a loaded Newton backend (the renderer reads its model and current state).
        stage: the same USD stage (labels, lights, static prim transforms).
        shadows: hard shadows from the directional light.
        samples_per_pixel: >1 enables MSAA anti-aliasing on colour (labels stay exact: one hit per pixel).
    """

    def __init__(self, sim, stage, *, shadows: bool = True, samples_per_pixel: int = 1):
        import warp as wp
        from newton.sensors import SensorCamera

        self._wp = wp
        self._sim = sim
        self.model = sim.model
        self._SensorCamera = SensorCamera
        self._spp = int(samples_per_pixel)
        config = SensorCamera.RenderConfig()
        config.enable_shadows = shadows
        if self._spp > 1:
            config.anti_aliasing = SensorCamera.AntiAliasing.MSAA
        self._config = config
        clear = SensorCamera.ClearData()
        self._sensor = SensorCamera(self.model, default_render_config=config, default_clear_data=clear)
        self._setup_lights(stage, shadows)
        self.labels = build_label_table(stage, list(self.model.shape_label))
        self._setup_geometry(stage)
        self._cameras: dict[str, dict] = {}

    # ----------------------------------------------------------- setup
    def _setup_lights(self, stage, shadows: bool) -> None:
        from pxr import UsdGeom, UsdLux

        wp = self._wp
        distant = []
        dome_color = None
        for prim in stage.Traverse():
            if prim.IsA(UsdLux.DistantLight):
                light = UsdLux.DistantLight(prim)
                T = np.array(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(0.0)).T
                direction = -T[:3, 2]  # a distant light shines along its local -Z
                color = np.array(light.GetColorAttr().Get() or (1, 1, 1))
                distant.append((float(light.GetIntensityAttr().Get() or 0.0), direction, color))
            elif prim.IsA(UsdLux.DomeLight):
                dome_color = np.array(UsdLux.DomeLight(prim).GetColorAttr().Get() or (1, 1, 1))
        if distant:
            _, direction, color = max(distant, key=lambda d: d[0])
            self._sensor.create_default_light(
                enable_shadows=shadows, direction=wp.vec3f(*map(float, direction / np.linalg.norm(direction))), color=tuple(map(float, color))
            )
        else:
            self._sensor.create_default_light(enable_shadows=shadows)
        if dome_color is not None:
            self._sensor.set_ambient_light(tuple(map(float, dome_color * 0.45)), tuple(map(float, dome_color * 0.25)))

    def _setup_geometry(self, stage) -> None:
        """Per shape: local sample points; per instance: its shapes and how to get its frame."""
        from pxr import UsdGeom

        model = self.model
        types = model.shape_type.numpy()
        scales = model.shape_scale.numpy()
        self._shape_T_b = np.array([_to_T(t) for t in model.shape_transform.numpy()])
        self._shape_body = model.shape_body.numpy()
        flags = model.shape_flags.numpy()
        import newton

        GeoType = newton.GeoType
        visible_flag = int(newton.ShapeFlags.VISIBLE)
        self._shape_scale0 = scales.copy()
        self._shape_points: list[np.ndarray | None] = []
        for i, (kind, scale) in enumerate(zip(types, scales)):
            kind = int(kind)
            points = None
            if kind == int(GeoType.BOX):
                points = box_points(scale)
            elif kind == int(GeoType.SPHERE):
                points = sphere_points(scale[0])
            elif kind == int(GeoType.CAPSULE):
                points = capsule_points(scale[0], scale[1])
            elif kind == int(GeoType.CYLINDER):
                points = cylinder_points(scale[0], scale[1])
            elif kind in (int(GeoType.MESH), int(GeoType.CONVEX_MESH)) and model.shape_source[i] is not None:
                points = np.asarray(model.shape_source[i].vertices, dtype=np.float64) * scale
            # Only visible shapes define what a camera sees (colliders hidden behind visual copies don't).
            if not int(flags[i]) & visible_flag:
                points = None
            self._shape_points.append(points)
        n_inst = len(self.labels.instance_paths)
        self._instance_shapes = [[] for _ in range(n_inst)]
        for shape, inst in enumerate(self.labels.shape_instance):
            if inst >= 0 and self._shape_points[shape] is not None:
                self._instance_shapes[inst].append(shape)
        body_paths = list(self._sim.info.body_paths)
        self._instance_body = []
        self._instance_static_T = []
        cache = UsdGeom.XformCache()
        for path in self.labels.instance_paths:
            self._instance_body.append(body_paths.index(path) if path in body_paths else -1)
            prim = stage.GetPrimAtPath(path)
            self._instance_static_T.append(np.array(cache.GetLocalToWorldTransform(prim)).T)

    def set_key_light(self, direction_w, color) -> None:
        """Point the directional light along ``direction_w`` (world, unit) with linear RGB ``color``."""
        d = np.asarray(direction_w, dtype=float)
        d = d / np.linalg.norm(d)
        self._sensor.create_default_light(
            enable_shadows=self._config.enable_shadows, direction=self._wp.vec3f(*map(float, d)), color=tuple(map(float, color))
        )

    def set_instance_color(self, prim_path: str, rgb) -> None:
        """Recolour every shape of a labelled prim (linear RGB 0..1)."""
        from vlatwin.sensors.camera.photometry import srgb_encode

        inst = self.labels.instance_paths.index(prim_path)
        colors = self.model.shape_color.numpy()
        shapes = np.flatnonzero(self.labels.shape_instance == inst)
        # Newton stores shape colours sRGB-encoded (its kernel decodes them; its USD import encodes the
        # authored linear colours), so a linear colour is encoded here, as USD colours are.
        colors[shapes] = srgb_encode(np.asarray(rgb, dtype=np.float64)).astype(colors.dtype)
        self.model.shape_color.assign(colors)

    def set_body_scale(self, body_path: str, factor: float) -> None:
        """Scale every shape of a rigid body uniformly by ``factor`` relative to its authored size.

        Collision and rendering follow; mass and inertia keep their authored values.
        """
        body = self._sim.info.body_index(body_path)
        shapes = np.flatnonzero(self._shape_body == body)
        scales = self.model.shape_scale.numpy()
        radius = self.model.shape_collision_radius.numpy()
        old = scales[shapes, 0] / np.where(self._shape_scale0[shapes, 0] > 0, self._shape_scale0[shapes, 0], 1.0)
        scales[shapes] = self._shape_scale0[shapes] * factor
        radius[shapes] = radius[shapes] / old * factor
        self.model.shape_scale.assign(scales)
        self.model.shape_collision_radius.assign(radius)

    def set_textures(self, images_by_class: dict[str, np.ndarray], *, repeat: float = 4.0) -> None:
        """Texture every shape of the given classes with an RGBA/RGB uint8 image (H, W, 3|4).

        Primitives have no UVs, so the renderer projects the image along the shape's dominant local
        axis (``TextureProjectionMode.CUBIC``); ``repeat`` tiles it. Classes not listed are untextured.
        Uses the (pinned) Newton renderer's texture table directly: its public API only offers a
        fixed grey checkerboard.
        """
        import warp as wp
        from newton._src.sensors.sensor_camera_render.types import TextureData

        ctx = self._sensor._render_context
        if not hasattr(self, "_base_textures"):
            self._base_textures = list(ctx._texture_data_source)  # textures loaded from the model
        sources = list(self._base_textures)
        texture_ids = np.full(self.model.shape_count, -1, dtype=np.int32)
        for cls, image in images_by_class.items():
            shapes = [
                s for s, inst in enumerate(self.labels.shape_instance) if inst >= 0 and self.labels.instance_classes[inst] == cls
            ]
            if not shapes:
                continue
            rgba = np.asarray(image, dtype=np.uint8)
            if rgba.shape[-1] == 3:
                rgba = np.concatenate([rgba, np.full(rgba.shape[:2] + (1,), 255, np.uint8)], axis=2)
            data = TextureData()
            data.texture = wp.Texture2D(
                np.ascontiguousarray(rgba),
                filter_mode=wp.TextureFilterMode.LINEAR,
                address_mode=wp.TextureAddressMode.WRAP,
                normalized_coords=True,
                dtype=wp.uint8,
                num_channels=4,
                device=self.model.device,
            )
            data.repeat = wp.vec2f(float(repeat), float(repeat))
            texture_ids[shapes] = len(sources)
            sources.append(data)
        ctx._texture_data_source = sources
        ctx._texture_data = wp.array(sources, dtype=TextureData, device=self.model.device) if sources else ctx._texture_data
        ctx._shape_texture_ids = wp.array(texture_ids, dtype=wp.int32, device=self.model.device)
        self._config.enable_textures = True

    def use_checker_texture(self, classes) -> None:
        """Give every shape of the listed classes a procedural grey checkerboard."""
        self.set_textures({cls: checkerboard_image() for cls in classes})

    def add_camera(self, name: str, camera: CameraModel) -> None:
        """Register a camera: its rays (distortion included) and output buffers."""
        S = self._SensorCamera
        w, h = camera.width, camera.height
        if camera.model == "fisheye":
            k = (list(camera.distortion) + [0.0] * 4)[:4]
            rays = S.compute_camera_rays_fisheye_opencv(
                w, h, camera.fx, camera.fy, camera.cx, camera.cy, k1=k[0], k2=k[1], k3=k[2], k4=k[3],
                sample_count=self._spp, device=self.model.device,
            )
        else:
            k1, k2, p1, p2, k3, k4, k5, k6 = (list(camera.distortion) + [0.0] * 8)[:8]
            rays = S.compute_camera_rays_pinhole_opencv(
                w, h, camera.fx, camera.fy, camera.cx, camera.cy,
                k1=k1, k2=k2, k3=k3, k4=k4, k5=k5, k6=k6, p1=p1, p2=p2, sample_count=self._spp, device=self.model.device,
            )
        sensor = self._sensor
        self._cameras[name] = {
            "model": camera,
            "rays": rays,
            "ray_dirs": rays.numpy()[:, :, 0, 1].astype(np.float32),
            "color": sensor.allocate_image_color(1, w, h),
            "depth": sensor.allocate_image_depth(1, w, h),
            "forward": sensor.allocate_image_depth_forward(1, w, h),
            "shape": sensor.allocate_image_shape_index(1, w, h),
            "normal": sensor.allocate_image_normal(1, w, h),
            "transform": self._wp.zeros(1, dtype=self._wp.transformf, device=self.model.device),
        }

    @property
    def physics_dt(self) -> float:
        """[s] of the simulation this renderer draws."""
        return self._sim.physics_dt

    # ---------------------------------------------------------- render
    def refit(self) -> None:
        """Update the ray-tracing acceleration structure after bodies moved (once per frame)."""
        self.model.bvh_refit_shapes(self._sim.state)

    def render_color(self, name: str, T_w_cam: np.ndarray) -> np.ndarray:
        """Colour only (for motion-blur sub-frames): uint8 (H, W, 4)."""
        cam = self._cameras[name]
        w, x, y, z = matrix_to_quat_wxyz(T_w_cam[:3, :3])
        cam["transform"].assign(np.array([[*T_w_cam[:3, 3], x, y, z, w]], dtype=np.float32))
        self._sensor.update(self._sim.state, cam["transform"], cam["rays"], color_image=cam["color"], render_config=self._config)
        model = cam["model"]
        return cam["color"].numpy().view(np.uint8).reshape(model.height, model.width, 4).copy()

    def render(self, name: str, T_w_cam: np.ndarray) -> RawBuffers:
        """Render camera ``name`` at pose ``T_w_cam`` (4x4 camera-to-world, USD camera axes)."""
        cam = self._cameras[name]
        w, x, y, z = matrix_to_quat_wxyz(T_w_cam[:3, :3])
        cam["transform"].assign(np.array([[*T_w_cam[:3, 3], x, y, z, w]], dtype=np.float32))
        self._sensor.update(
            self._sim.state,
            cam["transform"],
            cam["rays"],
            color_image=cam["color"],
            depth_image=cam["depth"],
            forward_depth_image=cam["forward"],
            shape_index_image=cam["shape"],
            normal_image=cam["normal"],
            render_config=self._config,
        )
        model = cam["model"]
        h, wd = model.height, model.width
        return RawBuffers(
            rgba=cam["color"].numpy().view(np.uint8).reshape(h, wd, 4).copy(),
            depth_ray=ann.depth_from_renderer(cam["depth"].numpy()[0]),
            depth_plane=ann.depth_from_renderer(cam["forward"].numpy()[0]),
            shape_index=cam["shape"].numpy()[0].copy(),
            normals_w=cam["normal"].numpy()[0].astype(np.float32),  # astype copies: the buffer is reused
        )

    # -------------------------------------------------------- annotate
    def instance_geometry(self) -> tuple[list[list[np.ndarray]], list[np.ndarray], list[np.ndarray | None]]:
        """Per instance at the current state: world sample points per shape, prim-to-world 4x4, local points."""
        body_q = self._sim.state.body_q.numpy()
        body_T = [_to_T(q) for q in body_q]
        # Sample points were made at load-time scale; follow any uniform rescale since (randomization).
        factor = self.model.shape_scale.numpy()[:, 0] / np.where(self._shape_scale0[:, 0] > 0, self._shape_scale0[:, 0], 1.0)
        shapes_w, frames, local = [], [], []
        for inst, shapes in enumerate(self._instance_shapes):
            body = self._instance_body[inst]
            T_prim = body_T[body] if body >= 0 else self._instance_static_T[inst]
            inv_prim = np.linalg.inv(T_prim)
            per_shape, pts_local = [], []
            for s in shapes:
                b = self._shape_body[s]
                T_shape = (body_T[b] if b >= 0 else np.eye(4)) @ self._shape_T_b[s]
                pts = (self._shape_points[s] * factor[s]) @ T_shape[:3, :3].T + T_shape[:3, 3]
                per_shape.append(pts)
                pts_local.append(pts @ inv_prim[:3, :3].T + inv_prim[:3, 3])
            shapes_w.append(per_shape)
            frames.append(T_prim)
            local.append(np.concatenate(pts_local) if pts_local else None)
        return shapes_w, frames, local

    def annotate(self, name: str, raw: RawBuffers, T_w_cam: np.ndarray, annotators, geometry=None, *, keep_classes=None) -> dict:
        """Replicator-structured outputs for the requested annotator names.

        Args:
            keep_classes: classes that get boxes and point-cloud points (None = every labelled class);
                segmentation images always keep every label.
        """
        camera = self._cameras[name]["model"]
        keep = set(keep_classes) if keep_classes else None
        wanted = set(annotators)
        out: dict = {}
        # Label images only when an annotator reads them (an RGB-only camera in the control loop does not).
        needs_labels = wanted & {
            "semantic_segmentation", "instance_segmentation", "bounding_box_2d_tight", "bounding_box_2d_loose",
            "bounding_box_3d", "occlusion", "pointcloud",
        }
        semantic, instance = self.labels.lookup_images(raw.shape_index) if needs_labels else (None, None)
        if "rgb" in wanted:
            out["rgb"] = raw.rgba
        if "distance_to_camera" in wanted:
            out["distance_to_camera"] = raw.depth_ray
        if "distance_to_image_plane" in wanted:
            out["distance_to_image_plane"] = raw.depth_plane
        if "normals" in wanted:
            out["normals"] = np.concatenate([raw.normals_w, np.zeros(raw.normals_w.shape[:2] + (1,), np.float32)], axis=2)
        if "semantic_segmentation" in wanted:
            out["semantic_segmentation"] = {"data": semantic, "info": {"idToLabels": self.labels.id_to_labels()}}
        if "instance_segmentation" in wanted:
            id_to_labels = {"0": "BACKGROUND", "1": "UNLABELLED"}
            id_to_sem = {"0": {"class": "BACKGROUND"}, "1": {"class": "UNLABELLED"}}
            for i, (path, cls) in enumerate(zip(self.labels.instance_paths, self.labels.instance_classes)):
                id_to_labels[str(i + 2)] = path
                id_to_sem[str(i + 2)] = {"class": cls}
            out["instance_segmentation"] = {"data": instance, "info": {"idToLabels": id_to_labels, "idToSemantics": id_to_sem}}
        needs_boxes = wanted & {"bounding_box_2d_tight", "bounding_box_2d_loose", "bounding_box_3d", "occlusion"}
        if needs_boxes:
            shapes_w, frames, local = geometry if geometry is not None else self.instance_geometry()
            boxes = ann.bounding_boxes_2d(instance, self.labels, shapes_w, T_w_cam, camera, keep_classes=keep)
            info = {"idToLabels": boxes["idToLabels"], "primPaths": boxes["primPaths"]}
            if "bounding_box_2d_tight" in wanted:
                out["bounding_box_2d_tight"] = {"data": boxes["tight"], "info": dict(info)}
            if "bounding_box_2d_loose" in wanted:
                out["bounding_box_2d_loose"] = {"data": boxes["loose"], "info": dict(info)}
            occlusion = dict(zip(boxes["primPaths"], boxes["tight"]["occlusionRatio"].tolist()))
            if "occlusion" in wanted:
                rows = [
                    (self.labels.instance_paths.index(p) + 2, sid, o)
                    for p, sid, o in zip(boxes["primPaths"], boxes["tight"]["semanticId"], boxes["tight"]["occlusionRatio"])
                ]
                out["occlusion"] = {"data": np.array(rows, dtype=ann.OCCLUSION_DTYPE), "info": {"primPaths": boxes["primPaths"]}}
            if "bounding_box_3d" in wanted:
                b3 = ann.bounding_boxes_3d(self.labels, local, frames, occlusion, keep_classes=keep)
                out["bounding_box_3d"] = {"data": b3["data"], "info": {"idToLabels": b3["idToLabels"], "primPaths": b3["primPaths"]}}
        if "camera_params" in wanted:
            out["camera_params"] = ann.camera_params(camera, T_w_cam)
        if "pointcloud" in wanted:
            out["pointcloud"] = ann.pointcloud(
                raw.depth_ray, self._cameras[name]["ray_dirs"], T_w_cam, rgb=raw.rgba, normals_w=raw.normals_w, semantic=semantic, instance=instance,
                keep_semantic_ids=None if keep is None else [self.labels.class_id(c) for c in keep if c in self.labels.classes],
            )
        return out
