"""One annotated MP4 per evaluation episode, plus a JPEG thumbnail for the report.

Every frame carries the instruction (top banner), ``step k/N`` and the outcome (bottom banner, green for
success, red otherwise). The outcome is known only when the episode ends, so frames are buffered and
encoded in :meth:`EpisodeVideo.close`. The MP4 is H.264 / yuv420p when PyAV's FFmpeg has an H.264
encoder (browsers play it), otherwise MPEG-4 part 2; it is written to a temp file and renamed into place.
PIL and PyAV are imported lazily.
"""

from __future__ import annotations

import io
import logging
import math
import os
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.writers.storage import atomic_write_bytes

#: Encoders tried in order for ``codec="auto"``: H.264 first so the report's links play in a browser.
VIDEO_CODEC_PREFERENCE = ("libx264", "h264", "mpeg4")

#: Outcome banner colours (RGB).
SUCCESS_RGB = (0, 170, 60)
FAILURE_RGB = (210, 30, 30)

#: Frames narrower than this are upscaled (nearest, integer factor) so the text stays legible.
MIN_WIDTH = 224

_CODEC_CACHE: dict[tuple[str, ...], str] = {}


def outcome_colour(outcome: str) -> tuple[int, int, int]:
    """Green for ``"success"``, red for any other outcome (``"failure"``, ``"timeout"``, ``"error"`` ...)."""
    return SUCCESS_RGB if str(outcome).lower() == "success" else FAILURE_RGB


def _codec_options(codec: str) -> dict[str, str]:
    if codec in ("libx264", "h264"):
        return {"crf": "23", "preset": "veryfast", "bf": "0", "threads": "1", "g": "30"}
    return {"qscale": "3", "bf": "0", "threads": "1", "g": "30"}


def _encode_mp4(path: Path, frames: list[np.ndarray], fps: float, codec: str) -> None:
    """Encode (H, W, 3) uint8 frames into ``path`` (an MP4, whatever its suffix)."""
    import av

    height, width = frames[0].shape[:2]
    container = av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"})
    try:
        rate = round(fps) if float(fps).is_integer() else _fraction(fps)
        stream = container.add_stream(codec, rate=rate, options=_codec_options(codec))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()


def _fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def choose_video_codec(preference: tuple[str, ...] = VIDEO_CODEC_PREFERENCE) -> str:
    """The first encoder of ``preference`` that PyAV's FFmpeg has and can open (probed once per process)."""
    if preference in _CODEC_CACHE:
        return _CODEC_CACHE[preference]
    try:
        import av
    except ImportError as exc:
        raise VlatwinError("episode videos need PyAV: pip install av (or run eval without videos)") from exc
    import tempfile

    for codec in preference:
        if codec not in av.codecs_available:
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                _encode_mp4(Path(tmp) / "probe.mp4", [np.zeros((16, 16, 3), np.uint8)] * 2, 10, codec)
        except Exception as exc:  # noqa: BLE001 - an encoder that fails to open is simply skipped
            logging.getLogger(__name__).info("video encoder %s unusable here: %s", codec, exc)
            continue
        _CODEC_CACHE[preference] = codec
        return codec
    raise VlatwinError(f"no usable video encoder in PyAV's FFmpeg (tried {', '.join(preference)})")


# ------------------------------------------------------------------------------------------ drawing
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _text_width(font, text: str) -> float:
    return float(font.getlength(text)) if hasattr(font, "getlength") else 6.0 * len(text)


def _wrap(text: str, font, width: float, max_lines: int = 2) -> list[str]:
    """Greedy word wrap to ``width`` pixels; the last kept line ends with an ellipsis if text was cut."""
    words = " ".join(str(text).split()).split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        trial = f"{current} {word}".strip()
        if _text_width(font, trial) <= width or not current:
            current = trial
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1] + " ..."
    # A single word longer than the frame: cut it character by character.
    out = []
    for line in lines:
        while len(line) > 1 and _text_width(font, line) > width:
            line = line[:-2] + "…"
        out.append(line)
    return out or [""]


def _check(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise VlatwinError(f"EpisodeVideo.add: expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")


def _prepare(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> upscaled to >= MIN_WIDTH wide (integer factor) and padded to even dims."""
    _check(image)
    height, width = image.shape[:2]
    if width < MIN_WIDTH:
        factor = math.ceil(MIN_WIDTH / width)
        image = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
        height, width = image.shape[:2]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
    return np.ascontiguousarray(image)


def annotate(image: np.ndarray, instruction: str, step: int, steps: int, outcome: str) -> np.ndarray:
    """Draw the instruction (top), ``step k/N`` (bottom left) and the outcome (bottom right) on a frame."""
    from PIL import Image, ImageDraw

    frame = _prepare(image).copy()
    height, width = frame.shape[:2]
    size = max(9, round(11 * width / MIN_WIDTH))
    font = _font(size)
    pad = max(2, size // 4)
    line_h = size + pad

    lines = _wrap(instruction, font, width - 2 * pad)
    top_h = min(height // 2, len(lines) * line_h + pad)
    bottom_h = min(height // 3, size + 3 * pad)
    # Darken the banner areas so white text reads on any scene.
    frame[:top_h] = (frame[:top_h].astype(np.uint16) * 2 // 5).astype(np.uint8)
    frame[height - bottom_h :] = (frame[height - bottom_h :].astype(np.uint16) * 2 // 5).astype(np.uint8)

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        draw.text((pad, pad // 2 + k * line_h), line, fill=(255, 255, 255), font=font)
    y_text = height - bottom_h + (bottom_h - size) // 2 - 1
    draw.text((pad, y_text), f"step {int(step)}/{int(steps)}", fill=(255, 255, 255), font=font)
    label = str(outcome).upper()
    box_w = int(_text_width(font, label)) + 4 * pad
    x0 = width - box_w - pad
    draw.rectangle((x0, height - bottom_h + 1, width - pad, height - 2), fill=outcome_colour(outcome))
    draw.text((x0 + 2 * pad, y_text), label, fill=(255, 255, 255), font=font)
    return np.asarray(img, dtype=np.uint8)


# ------------------------------------------------------------------------------------------ writer
class EpisodeVideo:
    """Collects an episode's frames and writes them, annotated, as one MP4 when the episode ends.

    Args:
        path: Destination ``.mp4``; its folder is created.
        fps: Playback rate [frames/s], normally the policy's control rate.
        codec: An FFmpeg encoder name, or ``"auto"`` (H.264 if available, else MPEG-4 part 2).

    Usage::

        video = EpisodeVideo(out / "videos/reach/episode_000.mp4", fps=10)
        video.add(rgb, step=0)            # step = env steps taken when the frame was rendered
        ...
        mp4 = video.close(instruction, "success", steps=57)   # None if no frame was added
        jpg = video.thumbnail(out / "thumbs/reach/episode_000.jpg")
    """

    def __init__(self, path: str | Path, fps: float, *, codec: str = "auto"):
        if not fps or fps <= 0:
            raise VlatwinError(f"EpisodeVideo: fps must be > 0, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.codec = codec
        self._frames: list[tuple[np.ndarray, int]] = []
        self._shape: tuple[int, ...] | None = None
        self._last: np.ndarray | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, rgb: np.ndarray, step: int) -> None:
        """Buffer one (H, W, 3) uint8 RGB frame rendered after ``step`` environment steps."""
        if self._closed:
            raise VlatwinError(f"EpisodeVideo {self.path}: add() after close()")
        image = np.asarray(rgb)
        if self._shape is None:
            _check(image)
            self._shape = image.shape
        elif image.shape != self._shape:
            raise VlatwinError(f"EpisodeVideo {self.path}: frame shape changed from {self._shape} to {image.shape}")
        self._frames.append((np.array(image, dtype=np.uint8, copy=True), int(step)))

    def close(self, instruction: str, outcome: str, steps: int) -> Path | None:
        """Annotate every frame and write the MP4 atomically; returns its path, or None if no frame was added."""
        if self._closed:
            raise VlatwinError(f"EpisodeVideo {self.path}: close() called twice")
        self._closed = True
        frames, self._frames = self._frames, []
        if not frames:
            return None
        annotated = [annotate(image, instruction, step, steps, outcome) for image, step in frames]
        self._last = annotated[-1]
        codec = choose_video_codec() if self.codec == "auto" else self.codec
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.parent / f".{self.path.name}.{os.getpid()}.tmp"
        try:
            _encode_mp4(tmp, annotated, self.fps, codec)
            os.replace(tmp, self.path)
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise
        return self.path

    def thumbnail(self, path: str | Path, size: int = 160) -> Path | None:
        """Save the last annotated frame (the one showing the outcome) as a JPEG, longest side ``size`` px."""
        if not self._closed:
            raise VlatwinError(
                f"EpisodeVideo {self.path}: thumbnail() needs close() first (the outcome is drawn on it)"
            )
        if self._last is None:
            return None
        from PIL import Image

        img = Image.fromarray(self._last)
        img.thumbnail((int(size), int(size)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=85)
        path = Path(path)
        atomic_write_bytes(path, buffer.getvalue())
        return path


__all__ = ["EpisodeVideo", "annotate", "choose_video_codec", "outcome_colour"]
