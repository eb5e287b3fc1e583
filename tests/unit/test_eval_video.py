"""Episode videos: one browser-playable MP4 per episode with the instruction, step and outcome drawn on
every frame (decoded back with PyAV), a JPEG thumbnail, atomic writes, and no file for an empty episode."""

from importlib.util import find_spec

import numpy as np
import pytest
from vlatwin.errors import VlatwinError

pytestmark = pytest.mark.skipif(find_spec("av") is None or find_spec("PIL") is None, reason="needs PyAV and Pillow")


def _scene(step: int, size=(224, 224)) -> np.ndarray:
    """A mid-grey frame with a moving bright square (no green or red anywhere)."""
    h, w = size
    img = np.full((h, w, 3), 110, np.uint8)
    x = (5 * step) % (w - 20)
    img[h // 2 - 10 : h // 2 + 10, x : x + 20] = (220, 220, 240)
    return img


def _decode(path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = (stream.codec_context.name, stream.pix_fmt)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return info, frames


def _banner_pixels(frame: np.ndarray) -> np.ndarray:
    """Pixels of the bottom-right corner, where the outcome box is drawn."""
    h, w = frame.shape[:2]
    return frame[h - h // 12 :, w - w // 4 :].reshape(-1, 3).astype(int)


def _count(pixels: np.ndarray, colour: str) -> int:
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    if colour == "green":
        return int(np.sum((g > 120) & (g > r + 60) & (g > b + 40)))
    return int(np.sum((r > 150) & (r > g + 80) & (r > b + 80)))


@pytest.mark.parametrize("outcome, colour, other", [("success", "green", "red"), ("failure", "red", "green")])
def test_episode_video_frames_and_outcome_colour(tmp_path, outcome, colour, other):
    from vlatwin.eval.video import EpisodeVideo

    video = EpisodeVideo(tmp_path / "videos" / "reach" / "episode_000.mp4", fps=10)
    for step in range(12):
        video.add(_scene(step), step=step)
    path = video.close("reach the <b>red</b> target", outcome, steps=11)
    assert path == tmp_path / "videos" / "reach" / "episode_000.mp4" and path.is_file()
    assert not list(path.parent.glob(".*.tmp"))  # the temp file was renamed away

    (codec, pix_fmt), frames = _decode(path)
    assert codec in ("h264", "mpeg4") and pix_fmt == "yuv420p"
    assert len(frames) == 12 and frames[0].shape == (224, 224, 3)
    for frame in (frames[0], frames[-1]):  # the outcome is on every frame, the first included
        banner = _banner_pixels(frame)
        assert _count(banner, colour) > 100, f"no {colour} outcome box"
        assert _count(banner, other) == 0
    # Text was drawn: the top banner has near-white pixels although the scene there is uniform grey.
    assert np.sum(frames[0][:20].min(axis=2) > 200) > 30

    thumb = video.thumbnail(tmp_path / "thumbs" / "reach" / "episode_000.jpg", size=160)
    from PIL import Image

    with Image.open(thumb) as img:
        assert img.format == "JPEG" and max(img.size) == 160
        assert _count(_banner_pixels(np.asarray(img.convert("RGB"))), colour) > 20


def test_small_odd_frames_are_upscaled_to_even_size(tmp_path):
    from vlatwin.eval.video import EpisodeVideo

    video = EpisodeVideo(tmp_path / "small.mp4", fps=15, codec="mpeg4")
    for step in range(3):
        video.add(_scene(step, size=(63, 75)), step=step)
    (codec, _), frames = _decode(video.close("go", "timeout", steps=2))
    assert codec == "mpeg4" and len(frames) == 3
    h, w = frames[0].shape[:2]
    assert w >= 224 and h % 2 == 0 and w % 2 == 0
    assert _count(_banner_pixels(frames[-1]), "red") > 100  # any outcome but success is red


def test_empty_episode_writes_nothing(tmp_path):
    from vlatwin.eval.video import EpisodeVideo

    video = EpisodeVideo(tmp_path / "none.mp4", fps=10)
    assert video.close("anything", "failure", steps=0) is None
    assert video.thumbnail(tmp_path / "none.jpg") is None
    assert not any(tmp_path.iterdir())


def test_bad_frames_are_one_line_errors(tmp_path):
    from vlatwin.eval.video import EpisodeVideo

    video = EpisodeVideo(tmp_path / "bad.mp4", fps=10)
    with pytest.raises(VlatwinError, match="uint8"):
        video.add(np.zeros((8, 8, 3), np.float32), step=0)
    video.add(np.zeros((8, 8, 3), np.uint8), step=0)
    with pytest.raises(VlatwinError, match="shape changed"):
        video.add(np.zeros((8, 10, 3), np.uint8), step=1)
    with pytest.raises(VlatwinError, match="close"):
        video.thumbnail(tmp_path / "early.jpg")
    with pytest.raises(VlatwinError, match="fps"):
        EpisodeVideo(tmp_path / "x.mp4", fps=0)
