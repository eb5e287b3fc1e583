"""Domain randomization on real renders: scale, distractors, checker textures, motion blur."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from vlatwin.sdg.pipeline import generate

DR = Path(__file__).resolve().parents[1] / "data" / "dr_sdg.yaml"


@pytest.fixture(scope="module")
def dr_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("dr") / "ds"
    generate(DR, out, progress=False)
    return out


def test_scale_randomization_changes_3d_extent(dr_dataset):
    """The cube's 3D box extent equals its 5 cm size times the scale drawn for the frame."""
    for frame in range(2):
        record = json.loads((dr_dataset / "frames" / f"frame_{frame:04d}.json").read_text())["randomization"]
        scale = record["scales"]["/World/Objects/red_cube"]
        boxes = np.load(dr_dataset / "top" / f"bounding_box_3d_{frame:04d}.npy")
        paths = json.loads((dr_dataset / "top" / f"bounding_box_3d_prim_paths_{frame:04d}.json").read_text())
        cube = boxes[paths.index("/World/Objects/red_cube")]
        assert cube["x_max"] - cube["x_min"] == pytest.approx(0.05 * scale, rel=1e-3)


def test_distractors_placed_per_frame(dr_dataset):
    """Between 2 and 3 distractors per frame sit on the table, labelled 'distractor'; the others are off-scene."""
    for frame in range(2):
        record = json.loads((dr_dataset / "frames" / f"frame_{frame:04d}.json").read_text())["randomization"]
        placed = record["distractors"]
        assert 2 <= len(placed) <= 3
        paths = json.loads((dr_dataset / "top" / f"bounding_box_2d_tight_prim_paths_{frame:04d}.json").read_text())
        seen = {p for p in paths if "distractor_" in p}
        assert seen <= set(placed) and seen  # only placed ones can be visible
        labels = json.loads((dr_dataset / "top" / f"bounding_box_2d_tight_labels_{frame:04d}.json").read_text())
        assert {"class": "distractor"} in labels.values()


def _sharpness(path: Path) -> float:
    """Strength of the strongest edges: a blur over N sub-frames splits each step into N smaller ones."""
    gray = np.asarray(Image.open(path).convert("L"), dtype=float)
    return float(np.percentile(np.abs(np.diff(gray, axis=1)), 99.5) + np.percentile(np.abs(np.diff(gray, axis=0)), 99.5))


def test_motion_blur_and_checker_texture(dr_dataset, tmp_path):
    """Camera shake during the shutter blurs the image; the checker texture makes the floor two-tone."""
    config = yaml.safe_load(DR.read_text())
    config["generate"]["camera_options"] = {}
    sharp_cfg = tmp_path / "sharp.yaml"
    sharp_cfg.write_text(yaml.safe_dump(config))
    sharp = tmp_path / "sharp"
    generate(sharp_cfg, sharp, frames=1, progress=False)
    assert _sharpness(dr_dataset / "top" / "rgb_0000.png") < 0.7 * _sharpness(sharp / "top" / "rgb_0000.png")
    rgb = np.asarray(Image.open(sharp / "top" / "rgb_0000.png").convert("L"))
    corner = rgb[:20, :20].astype(float)  # floor outside the table
    assert corner.max() - corner.min() > 40

    config["generate"]["checker_textures"] = []
    plain_cfg = tmp_path / "plain.yaml"
    plain_cfg.write_text(yaml.safe_dump(config))
    plain = tmp_path / "plain"
    generate(plain_cfg, plain, frames=1, progress=False)
    corner = np.asarray(Image.open(plain / "top" / "rgb_0000.png").convert("L"))[:20, :20].astype(float)
    assert corner.max() - corner.min() < 20  # at most a soft shadow edge


def test_image_textures_randomized_per_frame(tmp_path):
    """A floor texture drawn per frame from [stripes image, checker]: the red/blue stripes show up on the floor."""
    stripes = np.zeros((64, 64, 3), dtype=np.uint8)
    stripes[:, :32] = (220, 30, 30)
    stripes[:, 32:] = (30, 30, 220)
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    config = yaml.safe_load(DR.read_text())
    config["generate"].update({"checker_textures": [], "camera_options": {}, "frames": 4, "textures": {"floor": ["stripes.png", "checker"]}})
    config["generate"]["randomize"] = {}
    path = tmp_path / "tex.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "ds"
    generate(path, out, progress=False)
    used = [json.loads((out / "frames" / f"frame_{i:04d}.json").read_text())["randomization"]["textures"]["floor"] for i in range(4)]
    assert set(used) == {"stripes.png", "checker"}
    for i, name in enumerate(used):
        corner = np.asarray(Image.open(out / "top" / f"rgb_{i:04d}.png").convert("RGB"))[:30, :30].reshape(-1, 3).astype(int)
        reddish = np.mean((corner[:, 0] > 120) & (corner[:, 1] < 60) & (corner[:, 2] < 60))  # the wood table is tan
        bluish = np.mean((corner[:, 2] > 120) & (corner[:, 0] < 60) & (corner[:, 1] < 60))
        if name == "stripes.png":
            assert reddish > 0.05 and bluish > 0.05
        else:
            assert reddish < 0.01 and bluish < 0.01


def test_missing_texture_file_is_a_config_error(tmp_path):
    """A texture path that does not exist is reported with its field."""
    from vlatwin.config.loader import config_from_dict
    from vlatwin.errors import ConfigError

    with pytest.raises(ConfigError, match=r"generate.textures.floor\[0\]: file not found"):
        config_from_dict({"generate": {"textures": {"floor": ["nope.png"]}}}, source="c.yaml", base_dir=tmp_path)
