"""`vlatwin generate` end to end: layout, third-party readers, determinism, resume after kill -9, bad input."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlatwin.sdg.pipeline import generate
from vlatwin.writers.basic import decode_colorized

SMALL = Path(__file__).resolve().parents[1] / "data" / "small_sdg.yaml"


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "small"
    result = generate(SMALL, out, progress=False)
    assert result.frames_written == 4
    return out


def test_basic_writer_layout(dataset):
    """Replicator BasicWriter file names, per camera folder, plus metadata and the manifest."""
    cam = dataset / "top"
    expected = [
        "rgb_0000.png", "distance_to_camera_0000.npy", "distance_to_image_plane_0000.npy", "normals_0000.png",
        "semantic_segmentation_0000.png", "semantic_segmentation_labels_0000.json",
        "instance_segmentation_0000.png", "instance_segmentation_mapping_0000.json",
        "instance_segmentation_semantics_mapping_0000.json",
        "bounding_box_2d_tight_0000.npy", "bounding_box_2d_tight_labels_0000.json", "bounding_box_2d_tight_prim_paths_0000.json",
        "bounding_box_2d_loose_0000.npy", "bounding_box_3d_0000.npy", "occlusion_0000.npy", "camera_params_0000.json",
        "pointcloud_0000.npy", "pointcloud_rgb_0000.npy", "pointcloud_semantic_0000.npy",
    ]
    for name in expected:
        assert (cam / name).is_file(), name
    assert json.loads((dataset / "metadata.txt").read_text())["version"] == "0.0.2"
    assert json.loads((dataset / "dataset.json").read_text())["complete"] is True
    assert not list(dataset.rglob(".*.tmp"))


def test_basic_writer_round_trip(dataset):
    """PNG/NPY/JSON read back with PIL/numpy agree with each other and with the labels."""
    cam = dataset / "top"
    rgb = np.asarray(Image.open(cam / "rgb_0001.png"))
    assert rgb.shape == (240, 320, 4) and rgb.dtype == np.uint8
    depth = np.load(cam / "distance_to_camera_0001.npy")
    assert depth.shape == (240, 320) and depth.dtype == np.float32
    seg_img = np.asarray(Image.open(cam / "instance_segmentation_0001.png"))
    mapping = json.loads((cam / "instance_segmentation_mapping_0001.json").read_text())
    index, labels = decode_colorized(seg_img, mapping)
    assert (index >= 0).all()  # every pixel's colour is in the mapping
    boxes = np.load(cam / "bounding_box_2d_tight_0001.npy")
    paths = json.loads((cam / "bounding_box_2d_tight_prim_paths_0001.json").read_text())
    box_labels = json.loads((cam / "bounding_box_2d_tight_labels_0001.json").read_text())
    assert boxes.dtype.names == ("semanticId", "x_min", "y_min", "x_max", "y_max", "occlusionRatio")
    assert set(paths) <= {"/World/Objects/red_cube", "/World/Objects/yellow_ball", "/World/Objects/can"}
    for box, path in zip(boxes, paths):
        key = next(k for k, v in labels.items() if v == path)
        ys, xs = np.nonzero(index == key)
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == (box["x_min"], box["y_min"], box["x_max"], box["y_max"])
        assert box_labels[str(box["semanticId"])]["class"] in {"cube", "ball", "can"}
    # Depth is finite exactly where something was hit (the top camera sees the floor everywhere).
    assert np.isfinite(depth).all()


def test_coco_loads_and_scores_perfectly(dataset):
    """pycocotools loads the COCO file; evaluating ground truth against itself gives AP 1.0."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(dataset / "coco" / "top_instances.json"))
    assert len(gt.getImgIds()) == 4
    assert {c["name"] for c in gt.loadCats(gt.getCatIds())} == {"cube", "ball", "can"}
    annotations = gt.loadAnns(gt.getAnnIds())
    assert annotations and all(a["area"] > 0 for a in annotations)
    detections = [dict(a, score=1.0) for a in annotations]
    for iou_type in ("bbox", "segm"):
        evaluator = COCOeval(gt, gt.loadRes(detections), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        assert evaluator.stats[0] == pytest.approx(1.0)
    # Masks decode to the instance segmentation of the same frame.
    image = gt.loadImgs(gt.getImgIds())[0]
    first = gt.loadAnns(gt.getAnnIds(imgIds=[image["id"]]))[0]
    mask = gt.annToMask(first)
    assert mask.sum() == first["area"]


def test_same_seed_is_byte_identical(dataset, tmp_path):
    """A second run with the same seed writes the same bytes; another seed does not."""
    again = tmp_path / "again"
    generate(SMALL, again, progress=False)
    assert _digest_tree(again) == _digest_tree(dataset)
    other = tmp_path / "other"
    generate(SMALL, other, seed=4, frames=1, progress=False)
    assert _digest_tree(other)["top/rgb_0000.png"] != _digest_tree(dataset)["top/rgb_0000.png"]


def test_resume_after_kill_9(dataset, tmp_path):
    """kill -9 mid-run, then --resume: the result equals an uninterrupted run, file for file."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vlatwin.cli.main", "generate", str(SMALL), "--out", str(out), "--frames", "12", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(manifest.read_text().splitlines())
    assert 2 <= done_before < 12
    result = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"({done_before} already done)" in result.stdout
    frames = [json.loads(line)["frame"] for line in manifest.read_text().splitlines()]
    assert frames == list(range(12))  # each frame once, in order
    reference = tmp_path / "straight"
    generate(SMALL, reference, frames=12, progress=False)
    assert _digest_tree(out) == _digest_tree(reference)


def test_bad_output_paths(tmp_path):
    """An output path that is a file, or a non-empty folder without --resume, is refused in one line."""
    afile = tmp_path / "file"
    afile.write_text("x")
    for out, expected in ((afile, "output path is a file"), (tmp_path, "output folder is not empty")):
        result = subprocess.run(
            [sys.executable, "-m", "vlatwin.cli.main", "generate", str(SMALL), "--out", str(out), "--no-progress"],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 2
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_write_error_mid_run_keeps_finished_frames(tmp_path):
    """A write that fails mid-run is one error line; finished frames stay, and the run is not marked complete."""
    out = tmp_path / "ds"
    generate(SMALL, out, frames=2, progress=False)
    # Turn the camera folder into a file so the next frame cannot be written.
    for path in sorted((out / "top").iterdir()):
        path.unlink()
    (out / "top").rmdir()
    (out / "top").write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "vlatwin.cli.main", "generate", str(SMALL), "--out", str(out), "--frames", "3", "--resume", "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "write failed" in result.stderr and "Traceback" not in result.stderr
    assert json.loads((out / "dataset.json").read_text())["complete"] is False
    assert [json.loads(line)["frame"] for line in (out / "manifest.jsonl").read_text().splitlines()] == [0, 1]


def test_preview_contact_sheet(dataset, tmp_path):
    """`vlatwin preview` draws a sheet with one row per frame and three panels."""
    from vlatwin.sdg.preview import make_contact_sheet

    sheet = Image.open(make_contact_sheet(dataset, tmp_path / "sheet.png", max_frames=2))
    assert sheet.width == 3 * 320 and sheet.height == 2 * (240 + 16)
    pixels = np.asarray(sheet.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 500  # real images, not blank panels


def test_step_by_step_run_equals_threaded_run(dataset, tmp_path):
    """DatasetRun.step() (how the Kit window drives a run) writes the same bytes as generate()."""
    from vlatwin.sdg.pipeline import DatasetRun

    job = DatasetRun(SMALL, tmp_path / "stepped")
    frames = []
    while (frame := job.step()) is not None:
        frames.append(frame)
    job.finalize()
    assert frames == [0, 1, 2, 3]
    assert _digest_tree(tmp_path / "stepped") == _digest_tree(dataset)


def test_unreadable_texture_fails_before_writing(tmp_path):
    """A texture that is not an image: one line naming config and field, and --out is not touched."""
    (tmp_path / "bad.png").write_text("not a png")
    config = tmp_path / "tex.yaml"
    config.write_text(SMALL.read_text() + "  textures: {floor: [bad.png]}\n")
    result = subprocess.run(
        [sys.executable, "-m", "vlatwin.cli.main", "generate", str(config), "--out", str(tmp_path / "ds"), "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {config}: generate.textures.floor: cannot read image")
    assert not (tmp_path / "ds").exists()
