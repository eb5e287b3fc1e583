"""``generate:`` section: what a dataset run renders, randomizes and writes.

Angles in degrees where a name ends in ``_deg``; lengths [m].
"""

from __future__ import annotations

from typing import Annotated, Literal

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from vlatwin.config.base import StrictModel
from vlatwin.config.types import MAX_COUNT, MAX_SCALE, MAX_SIZE, Vec2
from vlatwin.sensors.camera.annotators import ANNOTATOR_NAMES

WRITER_NAMES = ("basic", "coco")


class LensCfg(StrictModel):
    """Lens model built into the camera rays (not a post-warp)."""

    model: Literal["pinhole", "fisheye"] = "pinhole"
    distortion: list[Annotated[float, Field(ge=-1e3, le=1e3)]] = []
    """pinhole: OpenCV (k1, k2, p1, p2, k3, k4, k5, k6); fisheye: OpenCV equidistant (k1, k2, k3, k4); each within +-1000."""

    @model_validator(mode="after")
    def _length(self):
        limit = 8 if self.model == "pinhole" else 4
        if len(self.distortion) > limit:
            raise ValueError(f"distortion: at most {limit} coefficients for the {self.model} model")
        return self


class RealismCfg(StrictModel):
    """Sensor effects applied to RGB only (labels stay exact)."""

    exposure_ev: float = Field(0.0, ge=-10, le=10)
    """Exposure compensation [EV]; +1 doubles the light."""
    gain: float = Field(1.0, gt=0.0, le=1e4)
    gamma: float = Field(1.0, gt=0.0, le=10.0)
    """Extra display gamma on top of sRGB (1 = none)."""
    tonemap: Literal["none", "reinhard", "aces"] = "none"
    """HDR tonemapping of the exposed linear image."""
    shot_noise: float = Field(0.0, ge=0.0, le=10.0)
    """Photon noise scale: sigma = shot_noise * sqrt(linear value)."""
    read_noise: float = Field(0.0, ge=0.0, le=1.0)
    """Gaussian read noise sigma in linear [0, 1] units."""
    vignetting: float = Field(0.0, ge=0.0, le=1.0)
    """Light fall-off at the image corners (0 = none, 1 = black corners), cos^4-like."""


class MotionBlurCfg(StrictModel):
    """Motion blur from sub-frame renders across the shutter (colour only; labels at shutter close)."""

    subframes: int = Field(1, ge=1, le=32)
    """Renders averaged per frame (1 = no blur)."""
    shutter_s: float = Field(0.02, gt=0.0, le=1.0)
    """Exposure time [s]; physics advances across it."""
    camera_shake_speed: float = Field(0.0, ge=0.0, le=100.0)
    """Random camera velocity during the shutter [m/s] (hand-held / vibrating mount)."""


class CyclesCfg(StrictModel):
    """Path-traced RGB with Blender Cycles (``render: cycles``; ``pip install 'vlatwin[photoreal]'``)."""

    samples: int = Field(8, ge=1, le=65536)
    """Paths per pixel (the most; adaptive sampling stops converged pixels earlier)."""
    adaptive_threshold: float = Field(0.05, ge=0.0, le=1.0)
    """Noise level at which a pixel stops sampling (0 = adaptive sampling off)."""
    denoise: bool = True
    """OpenImageDenoise on the rendered image (albedo + normal guided)."""
    ev100: float = Field(10.0, ge=-6.0, le=24.0)
    """Camera exposure [EV at ISO 100]: luminance 1.2 * 2**ev100 [nit] is white. 10 is f/4 at 1/60 s: a
    white part in the default cell's 3000 lux key light plus 500 nit sky reads ~0.8."""
    max_bounces: int = Field(4, ge=0, le=1024)
    """Light bounces per path (indirect light and reflections)."""
    depth_of_field: bool = True
    """Use the USD camera's ``fStop`` and ``focusDistance`` (fStop 0 = pinhole, the default)."""
    threads: int = Field(0, ge=0, le=1024)
    """CPU threads (0 = all cores)."""


class CameraOverrideCfg(StrictModel):
    """Per-camera rendering options."""

    lens: LensCfg = LensCfg()
    realism: RealismCfg = RealismCfg()
    motion_blur: MotionBlurCfg = MotionBlurCfg()
    samples_per_pixel: int = Field(1, ge=1, le=16)
    """>1 anti-aliases colour (MSAA)."""
    render: Literal["raster", "cycles"] = "raster"
    """RGB renderer: ``raster`` (Newton ray cast, fast, flat shading) or ``cycles`` (path traced, photoreal).
    Labels (depth, normals, segmentation, boxes) always come from the exact ray cast, pixel-aligned with the RGB."""
    cycles: CyclesCfg = CyclesCfg()


class ObjectRandomizationCfg(StrictModel):
    """Scatter the dynamic objects on the table top without overlap, then let physics settle them."""

    scatter: bool = True
    region: tuple[Vec2, Vec2] | None = None
    """[[x_min, y_min], [x_max, y_max]] on the table top [m]; default: the table top minus a margin."""
    keep_out_radius: float = Field(0.25, ge=0.0, le=MAX_SIZE)
    """No object closer than this to the robot base in XY [m]."""
    yaw: bool = True
    colors: bool = False
    """Random object colours (hue-uniform, saturated)."""
    scale_range: tuple[float, float] | None = None
    """Uniform scale factor per object per frame, e.g. [0.8, 1.2] (collision and look; mass unchanged)."""

    @field_validator("scale_range")
    @classmethod
    def _scale_range(cls, value):
        if value is not None and not 0.0 < value[0] <= value[1] <= MAX_SCALE:
            raise ValueError(f"expected [min, max] with 0 < min <= max <= {MAX_SCALE:g}")
        return value


class DistractorCfg(StrictModel):
    """Extra random primitives (class ``distractor``) added to the scene; a random number per frame join the objects."""

    count: int = Field(0, ge=0, le=50)
    """Distractors built into the dataset's stage."""
    active: tuple[int, int] = (0, 3)
    """Min, max placed on the table per frame (the rest wait off-scene)."""
    size_range: tuple[float, float] = (0.02, 0.06)
    """Half-size range [m], at most 10."""

    @model_validator(mode="after")
    def _ranges(self):
        if not 0 <= self.active[0] <= self.active[1] <= 50:
            raise ValueError("active: expected [min, max] with 0 <= min <= max <= 50")
        if not 0.0 < self.size_range[0] <= self.size_range[1] <= 10.0:
            raise ValueError("size_range: expected [min, max] with 0 < min <= max <= 10 m")
        return self


class LightRandomizationCfg(StrictModel):
    direction_jitter_deg: float = Field(0.0, ge=0.0, le=90.0)
    color_temperature_range: tuple[float, float] | None = None
    """Kelvin range for the key light colour, e.g. [3500, 7500] (within 1000..40000, where the colour fit holds)."""

    @field_validator("color_temperature_range")
    @classmethod
    def _kelvin(cls, value):
        if value is not None and not 1000.0 <= value[0] <= value[1] <= 40000.0:
            raise ValueError("expected [min, max] kelvin with 1000 <= min <= max <= 40000")
        return value


class CameraRandomizationCfg(StrictModel):
    position_jitter: float = Field(0.0, ge=0.0, le=MAX_SIZE)
    """Uniform +- offset of each camera position per axis [m]."""
    look_at_jitter: float = Field(0.0, ge=0.0, le=MAX_SIZE)
    """[m]"""
    orbit_deg: float = Field(0.0, ge=0.0, le=180.0)
    """Random rotation of the camera about the vertical axis through its look-at point [deg]."""


class RobotRandomizationCfg(StrictModel):
    joint_noise: float = Field(0.0, ge=0.0, le=10.0)
    """Uniform +- noise around home [rad | m], clipped to joint limits."""


class RandomizeCfg(StrictModel):
    objects: ObjectRandomizationCfg = ObjectRandomizationCfg()
    distractors: DistractorCfg = DistractorCfg()
    lights: LightRandomizationCfg = LightRandomizationCfg()
    cameras: CameraRandomizationCfg = CameraRandomizationCfg()
    robot: RobotRandomizationCfg = RobotRandomizationCfg()


class GenerateCfg(StrictModel):
    """A synthetic-data run."""

    frames: int = Field(20, ge=1, le=MAX_COUNT)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    cameras: list[str] | None = None
    """Scene camera names to render (default: all)."""
    annotators: list[str] = list(ANNOTATOR_NAMES)
    writers: list[str] = ["basic", "coco"]
    settle_steps: int = Field(240, ge=0, le=1_000_000)
    """Physics steps after randomizing, before rendering (0.4 s at 600 Hz)."""
    shadows: bool = True
    checker_textures: list[str] = []
    """Classes rendered with a procedural checkerboard texture (e.g. [floor, table])."""
    textures: dict[str, list[Path | Literal["checker"]]] = {}
    """Image textures by class, e.g. ``{floor: [tiles.png, checker]}`` (paths relative to the config);
    with several entries one is drawn per frame (texture randomization)."""
    texture_repeat: float = Field(4.0, gt=0.0, le=1e4)
    """How many times a texture tiles across a shape."""

    @field_validator("textures")
    @classmethod
    def _texture_files(cls, value, info: ValidationInfo):
        from vlatwin.config.base import resolve_existing_file

        out = {}
        for cls_name, entries in value.items():
            if not entries:
                raise ValueError(f"{cls_name}: give at least one image path or 'checker'")
            resolved = []
            for i, entry in enumerate(entries):
                try:
                    resolved.append(entry if entry == "checker" else resolve_existing_file(Path(entry), info))
                except ValueError as exc:
                    raise ValueError(f"{cls_name}[{i}]: {exc}") from None
            out[cls_name] = resolved
        return out
    camera_options: dict[str, CameraOverrideCfg] = {}
    """Per-camera lens/realism/anti-aliasing, by camera name."""
    randomize: RandomizeCfg = RandomizeCfg()
    class_filter: list[str] | None = None
    """Classes that get boxes / COCO annotations (default: all labelled classes)."""

    @field_validator("annotators")
    @classmethod
    def _known_annotators(cls, value):
        for name in value:
            if name not in ANNOTATOR_NAMES:
                raise ValueError(f"annotator {name!r} is not produced by vlatwin; known: {', '.join(ANNOTATOR_NAMES)}")
        return value

    @field_validator("writers")
    @classmethod
    def _known_writers(cls, value):
        for name in value:
            if name not in WRITER_NAMES:
                raise ValueError(f"unknown writer {name!r}; known: {', '.join(WRITER_NAMES)}")
        return value
