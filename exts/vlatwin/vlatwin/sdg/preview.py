"""Contact sheet of a BasicWriter dataset: RGB with 2D boxes and class names, segmentation overlay, depth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.writers.encoding import class_colors


def depth_colormap(depth: np.ndarray) -> np.ndarray:
    """float depth [m] (inf = none) -> uint8 RGB, near = warm, far = cool (turbo-like ramp).

    Colours follow inverse depth, so a floor running to the horizon does not flatten the near range.
    """
    finite = np.isfinite(depth) & (depth > 0)
    out = np.zeros(depth.shape + (3,), dtype=np.uint8)
    if not finite.any():
        return out
    inverse = np.where(finite, 1.0 / np.where(finite, depth, 1.0), 0.0)
    lo, hi = np.percentile(inverse[finite], [2, 98])
    t = np.clip((hi - inverse) / max(hi - lo, 1e-9), 0, 1)
    # Piecewise-linear ramp red -> yellow -> green -> cyan -> blue.
    stops = np.array([[220, 40, 30], [250, 210, 40], [60, 200, 80], [40, 180, 220], [40, 60, 200]], dtype=float)
    pos = t * (len(stops) - 1)
    i = np.clip(pos.astype(int), 0, len(stops) - 2)
    f = (pos - i)[..., None]
    rgb = stops[i] * (1 - f) + stops[i + 1] * f
    out[finite] = rgb[finite].astype(np.uint8)
    return out


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _panel_rgb_boxes(folder: Path, tag: str):
    from PIL import Image, ImageDraw

    rgb = Image.open(folder / f"rgb_{tag}.png").convert("RGB")
    draw = ImageDraw.Draw(rgb)
    boxes_path = folder / f"bounding_box_2d_tight_{tag}.npy"
    if boxes_path.is_file():
        boxes = np.load(boxes_path)
        labels = json.loads((folder / f"bounding_box_2d_tight_labels_{tag}.json").read_text())
        font = _font()
        for box in boxes:
            name = labels.get(str(int(box["semanticId"])), {}).get("class", "?")
            if name in ("floor", "table"):
                continue
            color = tuple(int(c) for c in class_colors([int(box["semanticId"])])[0])
            draw.rectangle([int(box["x_min"]), int(box["y_min"]), int(box["x_max"]), int(box["y_max"])], outline=color, width=2)
            text = f"{name} vis {1 - float(box['occlusionRatio']):.0%}"
            x, y = int(box["x_min"]), max(int(box["y_min"]) - 13, 0)
            bbox = draw.textbbox((x, y), text, font=font)
            draw.rectangle(bbox, fill=(0, 0, 0))
            draw.text((x, y), text, fill=color, font=font)
    return rgb


def _panel_segmentation(folder: Path, tag: str, base):
    from PIL import Image

    path = folder / f"instance_segmentation_{tag}.png"
    if not path.is_file():
        path = folder / f"semantic_segmentation_{tag}.png"
    if not path.is_file():
        return None
    seg = np.asarray(Image.open(path).convert("RGBA")).astype(float)
    rgb = np.asarray(base).astype(float)
    alpha = (seg[..., 3:4] / 255.0) * 0.6
    return Image.fromarray((rgb * (1 - alpha) + seg[..., :3] * alpha).astype(np.uint8))


def _panel_depth(folder: Path, tag: str):
    from PIL import Image

    path = folder / f"distance_to_camera_{tag}.npy"
    if not path.is_file():
        return None
    return Image.fromarray(depth_colormap(np.load(path)))


def make_contact_sheet(dataset: str | Path, out_path: str | Path, *, max_frames: int = 4, tile_width: int = 320) -> Path:
    """Rows = (camera, frame); columns = RGB + boxes, segmentation overlay, depth."""
    from PIL import Image, ImageDraw

    dataset = Path(dataset)
    if not dataset.is_dir():
        raise VlatwinError(f"{dataset}: dataset folder not found")
    cameras = sorted(p for p in dataset.iterdir() if p.is_dir() and any(p.glob("rgb_*.png")))
    lidar_rows = make_lidar_sheet_rows(dataset, max_frames)
    if not cameras and not lidar_rows:
        raise VlatwinError(f"{dataset}: no rgb_NNNN.png or lidar_NNNN.npy files found (is this a vlatwin dataset?)")
    rows = []
    for cam in cameras:
        tags = sorted(p.stem.split("_")[-1] for p in cam.glob("rgb_*.png"))[:max_frames]
        for tag in tags:
            rgb = _panel_rgb_boxes(cam, tag)
            base = Image.open(cam / f"rgb_{tag}.png").convert("RGB")
            panels = [rgb, _panel_segmentation(cam, tag, base), _panel_depth(cam, tag)]
            panels = [p for p in panels if p is not None]
            scale = tile_width / rgb.width
            size = (tile_width, int(round(rgb.height * scale)))
            row = Image.new("RGB", (size[0] * len(panels), size[1] + 16), (24, 24, 24))
            for i, panel in enumerate(panels):
                row.paste(panel.resize(size), (i * size[0], 16))
            ImageDraw.Draw(row).text((4, 2), f"{cam.name}  frame {tag}   rgb + 2D boxes | instance overlay | depth", fill=(230, 230, 230), font=_font())
            rows.append(row)
    rows.extend(lidar_rows)
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows)), (24, 24, 24))
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path)
    return out_path


def lidar_panels(points: np.ndarray, profile_channels: int | None = None, *, size: int = 320):
    """(bird's-eye view, range image) PIL images of one scan, coloured by class, brightness by intensity."""
    from PIL import Image

    colors = class_colors(points["class"]).astype(float)
    shade = (0.35 + 0.65 * np.clip(points["intensity"], 0, 1))[:, None]
    colors = (colors * shade).astype(np.uint8)
    # Bird's-eye view: sensor at the centre, +X up, fit to the 98th-percentile range.
    bev = np.full((size, size, 3), 16, dtype=np.uint8)
    xy = np.stack([points["x"], points["y"]], axis=1)
    if len(xy):
        # Frame the scene, not the horizon: fit the points of every class except the most common
        # one (usually the ground), else all points.
        classes, counts = np.unique(points["class"], return_counts=True)
        focus = points["class"] != classes[np.argmax(counts)] if len(classes) > 1 else np.ones(len(points), bool)
        extent = max(1.2 * float(np.percentile(np.abs(xy[focus]), 98)), 0.5)
        scale = (size / 2 - 2) / extent
        u = (size / 2 - xy[:, 1] * scale).astype(int)
        v = (size / 2 - xy[:, 0] * scale).astype(int)
        ok = (u >= 0) & (u < size) & (v >= 0) & (v < size)
        order = np.argsort(points["z"][ok])  # higher points drawn last
        bev[v[ok][order], u[ok][order]] = colors[ok][order]
        bev[size // 2 - 1 : size // 2 + 2, size // 2 - 1 : size // 2 + 2] = 255
    # Range image: ring (rows) x azimuth (columns).
    rows = int(points["ring"].max()) + 1 if len(points) else 1
    rows = max(rows, profile_channels or 1)
    width = size * 2
    rng_img = np.zeros((rows, width, 3), dtype=np.uint8)
    if len(points):
        azimuth = np.arctan2(points["y"], points["x"])
        col = ((np.pi - azimuth) / (2 * np.pi) * width).astype(int).clip(0, width - 1)
        rng_img[points["ring"].astype(int), col] = colors
    range_image = Image.fromarray(rng_img).resize((width, max(rows * 4, 64)), Image.NEAREST)
    return Image.fromarray(bev), range_image


def make_lidar_sheet_rows(dataset: Path, max_frames: int):
    """Contact-sheet rows for every LIDAR folder (lidar_NNNN.npy files)."""
    from PIL import Image, ImageDraw

    rows = []
    for folder in sorted(p for p in dataset.iterdir() if p.is_dir() and any(p.glob("lidar_*.npy"))):
        for path in sorted(folder.glob("lidar_*.npy"))[:max_frames]:
            points = np.load(path)
            bev, range_image = lidar_panels(points)
            row = Image.new("RGB", (bev.width + range_image.width, max(bev.height, range_image.height) + 16), (24, 24, 24))
            row.paste(bev, (0, 16))
            row.paste(range_image, (bev.width, 16))
            label = f"{folder.name}  {path.stem}  {len(points):,} points   bird's-eye view | range image (ring x azimuth)"
            ImageDraw.Draw(row).text((4, 2), label, fill=(230, 230, 230), font=_font())
            rows.append(row)
    return rows
