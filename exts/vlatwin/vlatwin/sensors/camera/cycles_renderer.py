"""Photoreal RGB for the camera seam: Blender Cycles through ``bpy``, driven by the Newton simulation.

The stage the other backends load is opened in Blender once (:mod:`cycles_scene`); every frame the
simulation's body poses, the randomized colours / scales / key light and the camera pose are written
into the open scene and Cycles renders scene-linear radiance, scaled so that a pixel value is
luminance / L_sat (:mod:`photometry`), then encoded to sRGB. Labels never come from here: the
caller keeps the exact ray-cast labels, which this camera matches pixel for pixel (same intrinsics,
pixel centres at +0.5, same geometry to a 96-gon).

Blender holds one scene per process, so there is one renderer per process (threads share it behind
a lock); scale out over processes (``--ray``). ``pip install 'vlatwin[photoreal]'`` installs bpy.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sensors.camera import photometry as ph

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "render: cycles needs Blender as a Python module (Python 3.11): "
    "pip install 'vlatwin[photoreal]' && pip install --no-deps bpy==5.0.1"
)

_LOCK = threading.RLock()
_ACTIVE: list = []


def import_bpy():
    """``bpy``, or a one-line install hint."""
    import contextlib
    import io

    try:
        # Blender's audio module is built against numpy 1.x and reports it at import under numpy 2;
        # rendering does not use it, so keep that report off the user's console.
        with contextlib.redirect_stderr(io.StringIO()):
            import bpy
    except ImportError:
        raise VlatwinError(INSTALL_HINT) from None
    return bpy


class CyclesRenderError(VlatwinError):
    """Cycles did not produce an image (nothing of the frame is written)."""


class CyclesRenderer:
    """Path-traced cameras of a scene simulated by a Newton backend.

    Args:
        stage_path: the USD stage the simulation loaded (Blender imports the same file).
        stage: that stage opened with pxr (materials, lights and cameras are read from it).
        body_paths: prim paths of the simulation's rigid bodies, in body index order.
        ev100: exposure the lights are scaled for [EV at ISO 100]; a camera with another ``ev100`` is rescaled linearly.
    """

    def __init__(self, stage_path: str | Path, stage, body_paths, *, ev100: float = 10.0):
        from vlatwin.sensors.camera import cycles_scene as cs

        bpy = import_bpy()
        with _LOCK:
            if _ACTIVE:
                raise VlatwinError(
                    "render: cycles: Blender holds one scene per process and one is already open here; "
                    "use --workers 1 (scale Cycles out over processes with --ray)"
                )
            _ACTIVE.append(self)
        self._bpy = bpy
        self.stage_path = Path(stage_path)
        self.ev100 = float(ev100)
        self.l_sat = ph.saturation_luminance(ev100)
        self._tmp = Path(tempfile.mkdtemp(prefix="vlatwin-cycles-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
        try:
            self.objects = cs.import_stage(bpy, self.stage_path, stage)
            cs.rebuild_curved_gprims(bpy, stage, self.objects)
            base_dir = self.stage_path.resolve().parent
            try:
                self._materials = cs.assign_materials(bpy, stage, self.objects, base_dir)
            except FileNotFoundError as exc:
                raise VlatwinError(f"{stage_path}: material texture not found: {exc}") from None
            self._mesh_paths = [p for p, o in self.objects.items() if o.type == "MESH"]
            lights = cs.read_lights(stage)
            domes = [light for light in lights if light.kind == "dome"]
            if len(domes) > 1:
                log.warning("%d dome lights; Cycles has one world, using %s", len(domes), domes[0].path)
            try:
                cs.set_world(bpy, domes[0] if domes else None, self.l_sat)
            except FileNotFoundError as exc:
                raise VlatwinError(f"{domes[0].path}: dome texture not found: {exc}; give an equirectangular .hdr/.exr/.png") from None
            self._lights = {light.path: (light, cs.add_light(bpy, light, self.l_sat)) for light in lights if light.kind != "dome"}
            distant = [light for light in lights if light.kind == "distant"]
            self._key_light = max(distant, key=lambda light: light.illuminance).path if distant else None
        except BaseException:
            self.close()
            raise
        self._body_objects = [self.objects.get(path) for path in body_paths]
        self._body_scale = np.ones(len(self._body_objects))
        self._body_paths = list(body_paths)
        self._cameras: dict[str, dict] = {}
        self._stage = stage
        self._setup_render()

    # ----------------------------------------------------------------------------- setup
    def _setup_render(self) -> None:
        scene = self._bpy.context.scene
        scene.render.engine = "CYCLES"
        cycles = scene.cycles
        cycles.device = "CPU"
        cycles.use_denoising = True
        cycles.denoiser = "OPENIMAGEDENOISE"
        cycles.denoising_input_passes = "RGB_ALBEDO_NORMAL"
        # Albedo and normal passes are clean enough after a few samples: prefiltering them ("ACCURATE")
        # doubled the frame time at 640x480 for +1-2 dB PSNR (benchmarks/photoreal.py).
        cycles.denoising_prefilter = "FAST"
        cycles.caustics_reflective = False
        cycles.caustics_refractive = False
        cycles.sample_clamp_indirect = 10.0  # fireflies from indirect paths; direct light stays unbiased
        scene.render.use_persistent_data = True  # keep the BVH and shaders between frames
        scene.render.dither_intensity = 0.0
        scene.render.resolution_percentage = 100
        scene.render.image_settings.file_format = "OPEN_EXR"
        scene.render.image_settings.color_depth = "32"
        scene.render.image_settings.exr_codec = "NONE"
        scene.render.image_settings.color_mode = "RGBA"
        scene.render.film_transparent = False
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.view_settings.exposure = 0.0
        scene.view_settings.gamma = 1.0

    def add_camera(self, name: str, model, settings, usd_camera=None) -> None:
        """Register camera ``name`` with intrinsics ``model`` (:class:`CameraModel`) and ``settings`` (:class:`CyclesCfg`).

        Pinhole without distortion only: Cycles has no OpenCV lens model, and a post-warp would
        resample the photoreal image. ``usd_camera``: the USD camera prim (depth of field).
        """
        if model.model != "pinhole" or any(abs(float(k)) > 0 for k in model.distortion):
            raise VlatwinError(
                f"camera {name}: render: cycles renders pinhole cameras without distortion; remove lens.distortion / "
                "lens.model or use render: raster for this camera"
            )
        if abs(model.fx - model.fy) > 1e-9 * model.fx:
            raise VlatwinError(f"camera {name}: render: cycles needs square pixels (fx == fy)")
        bpy = self._bpy
        data = bpy.data.cameras.new(f"vlatwin_{name}")
        data.type = "PERSP"
        data.sensor_fit = "HORIZONTAL"
        data.sensor_width = float(model.horizontal_aperture_mm)
        data.lens = float(model.fx * data.sensor_width / model.width)
        # Blender's shift is in units of the fitted (horizontal) sensor size; +x shifts the view right,
        # moving the principal point left, +y up (image rows grow down).
        data.shift_x = float((model.width / 2.0 - model.cx) / model.width)
        data.shift_y = float((model.cy - model.height / 2.0) / model.width)
        # The ray cast sees to infinity (labels of the ground up to the horizon): so must Cycles.
        data.clip_start, data.clip_end = float(model.near), 1.0e7
        if settings.depth_of_field and usd_camera is not None:
            f_stop = float(usd_camera.GetAttribute("fStop").Get() or 0.0)
            focus = float(usd_camera.GetAttribute("focusDistance").Get() or 0.0)
            if f_stop > 0 and focus > 0:
                data.dof.use_dof = True
                data.dof.aperture_fstop = f_stop
                data.dof.focus_distance = focus
        obj = bpy.data.objects.new(f"vlatwin_{name}", data)
        bpy.context.scene.collection.objects.link(obj)
        self._cameras[name] = {"model": model, "settings": settings, "object": obj}

    # ------------------------------------------------------------------- per-frame state
    def sync_bodies(self, body_pose_w: np.ndarray) -> None:
        """Move every body's Blender object to the simulation's poses (N, 7): position [m], quaternion (w, x, y, z)."""
        from mathutils import Matrix

        from vlatwin.utils.transforms import quat_wxyz_to_matrix

        for i, obj in enumerate(self._body_objects):
            if obj is None:
                continue
            T = np.eye(4)
            T[:3, :3] = quat_wxyz_to_matrix(body_pose_w[i, 3:7]) * self._body_scale[i]
            T[:3, 3] = body_pose_w[i, :3]
            obj.matrix_world = Matrix(T.tolist())

    def set_body_scale(self, body_path: str, factor: float) -> None:
        """Scale a rigid body's shapes by ``factor`` (as :meth:`CameraRendererNewton.set_body_scale`)."""
        self._body_scale[self._body_paths.index(body_path)] = float(factor)

    def set_instance_color(self, prim_path: str, rgb) -> None:
        """Recolour every mesh under ``prim_path`` (linear RGB 0..1); its other material inputs stay."""
        from vlatwin.sensors.camera.cycles_scene import recolor

        for path in self._mesh_paths:
            if path == prim_path or path.startswith(prim_path + "/"):
                recolor(self._bpy, self.objects[path], self._materials[path], rgb)

    def set_key_light(self, direction_w, color) -> None:
        """Aim the strongest distant light along ``direction_w`` (world, unit) with linear RGB ``color``."""
        if self._key_light is None:
            return
        from mathutils import Matrix

        from vlatwin.utils.transforms import look_at_matrix

        light, obj = self._lights[self._key_light]
        d = np.asarray(direction_w, dtype=float)
        d = d / np.linalg.norm(d)
        up = (0.0, 0.0, 1.0) if abs(d[2]) < 0.99 else (1.0, 0.0, 0.0)
        T = np.eye(4)
        T[:3, :3] = look_at_matrix(np.zeros(3), d, up)  # local -Z along d (USD / Blender camera-like axes)
        obj.matrix_world = Matrix(T.tolist())
        obj.data.color = tuple(float(c) for c in np.asarray(color) * light.rgb)

    def set_textures(self, images_by_class: dict[str, np.ndarray], labels, *, repeat: float = 4.0) -> None:
        """Texture every mesh of the given classes with an RGB(A) uint8 image, box-projected and tiled ``repeat`` times."""
        from vlatwin.sensors.camera.cycles_scene import texture

        for cls, image in images_by_class.items():
            for inst, path in enumerate(labels.instance_paths):
                if labels.instance_classes[inst] != cls:
                    continue
                for mesh_path in self._mesh_paths:
                    if mesh_path == path or mesh_path.startswith(path + "/"):
                        texture(self._bpy, self.objects[mesh_path], self._materials[mesh_path], image, repeat, cls)

    # ------------------------------------------------------------------------------ render
    def render_linear(self, name: str, T_w_cam: np.ndarray, *, seed: int = 0) -> np.ndarray:
        """Scene-linear RGB (H, W, 3) float32 of camera ``name`` at pose ``T_w_cam`` (4x4, USD camera axes):
        luminance / L_sat at the camera's own ``ev100``."""
        cam = self._cameras[name]
        settings = cam["settings"]
        with _LOCK:
            scene = self._bpy.context.scene
            cycles = scene.cycles
            cycles.samples = int(settings.samples)
            cycles.use_adaptive_sampling = settings.adaptive_threshold > 0
            if settings.adaptive_threshold > 0:
                cycles.adaptive_threshold = float(settings.adaptive_threshold)
            cycles.use_denoising = bool(settings.denoise)
            cycles.max_bounces = int(settings.max_bounces)
            cycles.diffuse_bounces = min(int(settings.max_bounces), 4)
            cycles.glossy_bounces = min(int(settings.max_bounces), 4)
            cycles.transparent_max_bounces = 8
            cycles.pixel_filter_type = "BLACKMAN_HARRIS"
            cycles.filter_width = 1.5
            cycles.seed = int(seed) % (2**31)
            scene.render.threads_mode = "FIXED" if settings.threads else "AUTO"
            if settings.threads:
                scene.render.threads = int(settings.threads)
            scene.view_layers[0].material_override = None
            linear = self._render(cam, T_w_cam)[..., :3]
        if settings.ev100 != self.ev100:  # nothing clips before this: the float image is unbounded
            linear *= np.float32(2.0 ** (self.ev100 - settings.ev100))
        return linear

    def render(self, name: str, T_w_cam: np.ndarray, *, seed: int = 0) -> np.ndarray:
        """sRGB uint8 (H, W, 4) of camera ``name`` (alpha 255), as the raster path returns colour."""
        linear = self.render_linear(name, T_w_cam, seed=seed)
        rgba = np.empty(linear.shape[:2] + (4,), np.uint8)
        rgba[..., :3] = np.round(ph.srgb_encode(linear) * 255.0).astype(np.uint8)
        rgba[..., 3] = 255
        return rgba

    def render_ids(self, name: str, T_w_cam: np.ndarray, instance_paths) -> np.ndarray:
        """Which instance each pixel centre sees (int32 (H, W), -1 = none), for alignment checks.

        One sample per pixel through a box filter of 0.01 px, i.e. at the pixel centre, like the ray cast.
        """
        bpy = self._bpy
        with _LOCK:
            index_of = {}
            for path in self._mesh_paths:
                best = max((p for p in instance_paths if path == p or path.startswith(p + "/")), key=len, default=None)
                index_of[path] = -1 if best is None else list(instance_paths).index(best)
            for path, idx in index_of.items():
                self.objects[path].pass_index = idx + 1
            scene = bpy.context.scene
            cycles = scene.cycles
            saved = (cycles.samples, cycles.use_adaptive_sampling, cycles.use_denoising, cycles.pixel_filter_type, cycles.filter_width, cycles.max_bounces)
            world_strength = scene.world.node_tree.nodes["Background"].inputs["Strength"]
            saved_world = world_strength.default_value
            cycles.samples, cycles.use_adaptive_sampling, cycles.use_denoising = 1, False, False
            cycles.pixel_filter_type, cycles.filter_width, cycles.max_bounces = "BOX", 0.01, 0
            world_strength.default_value = 0.0
            scene.view_layers[0].material_override = self._id_material()
            try:
                image = self._render(self._cameras[name], T_w_cam)
            finally:
                scene.view_layers[0].material_override = None
                world_strength.default_value = saved_world
                (cycles.samples, cycles.use_adaptive_sampling, cycles.use_denoising, cycles.pixel_filter_type, cycles.filter_width, cycles.max_bounces) = saved
        return np.round(image[..., 0]).astype(np.int32) - 1

    def _id_material(self):
        bpy = self._bpy
        mat = bpy.data.materials.get("vlatwin_ids")
        if mat is not None:
            return mat
        mat = bpy.data.materials.new("vlatwin_ids")
        if mat.node_tree is None:
            mat.use_nodes = True
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        nodes.clear()
        info = nodes.new("ShaderNodeObjectInfo")
        emission = nodes.new("ShaderNodeEmission")
        out = nodes.new("ShaderNodeOutputMaterial")
        links.new(info.outputs["Object Index"], emission.inputs["Strength"])
        emission.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
        links.new(emission.outputs["Emission"], out.inputs["Surface"])
        return mat

    def _render(self, cam: dict, T_w_cam: np.ndarray) -> np.ndarray:
        from mathutils import Matrix

        bpy = self._bpy
        model = cam["model"]
        scene = bpy.context.scene
        scene.camera = cam["object"]
        cam["object"].matrix_world = Matrix(np.asarray(T_w_cam, dtype=float).tolist())
        scene.render.resolution_x, scene.render.resolution_y = model.width, model.height
        out = self._tmp / "frame.exr"
        out.unlink(missing_ok=True)
        scene.render.filepath = str(out)
        try:
            bpy.ops.render.render(write_still=True)
        except RuntimeError as exc:
            raise CyclesRenderError(f"Cycles render failed: {str(exc).strip().splitlines()[-1]}") from None
        if not out.is_file():
            raise CyclesRenderError("Cycles render failed: no image was written (see Blender's log above)")
        image = bpy.data.images.load(str(out))
        try:
            pixels = np.empty(model.width * model.height * 4, np.float32)
            image.pixels.foreach_get(pixels)
        finally:
            bpy.data.images.remove(image)
        # Blender's rows run bottom-up.
        return pixels.reshape(model.height, model.width, 4)[::-1].copy()

    def close(self) -> None:
        """Release the process's Blender scene (another renderer may open one afterwards)."""
        with _LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)
