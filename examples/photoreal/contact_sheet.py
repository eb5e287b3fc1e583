"""Raster | Cycles side by side: the default cell as authored, then randomized frames of `vlatwin generate`.

Runs the dataset job twice per row set (``--render raster`` and ``--render cycles``, same seed, so the
same randomization and labels) and stitches the ``front`` camera's RGB, half size.

    python examples/photoreal/contact_sheet.py -o exts/vlatwin/docs/images/photoreal_sheet.png [--frames 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]


def render_rows(config: Path, out: Path, frames: int, camera: str) -> list[tuple[np.ndarray, np.ndarray]]:
    from vlatwin.sdg.pipeline import generate

    images = {}
    for render in ("raster", "cycles"):
        folder = out / render
        generate(config, folder, frames=frames, render=render, progress=True)
        images[render] = [np.asarray(Image.open(folder / camera / f"rgb_{f:04d}.png").convert("RGB")) for f in range(frames)]
    return list(zip(images["raster"], images["cycles"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", type=Path, required=True, help="output PNG")
    parser.add_argument("--config", type=Path, default=REPO / "configs/tabletop.yaml")
    parser.add_argument("--frames", type=int, default=2, help="randomized frames after the authored one")
    parser.add_argument("--camera", default="front")
    parser.add_argument("--scale", type=float, default=0.5, help="image scale in the sheet")
    args = parser.parse_args()

    data = yaml.safe_load(args.config.read_text())
    data["scene"]["lidars"] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        authored = dict(data, generate=dict(data["generate"], randomize={
            "objects": {"scatter": False, "yaw": False}, "robot": {"joint_noise": 0.0},
        }))
        (tmp / "authored.yaml").write_text(yaml.safe_dump(authored))
        (tmp / "randomized.yaml").write_text(yaml.safe_dump(data))
        rows = render_rows(tmp / "authored.yaml", tmp / "a", 1, args.camera)
        rows += render_rows(tmp / "randomized.yaml", tmp / "r", args.frames + 1, args.camera)[1:]
    h, w = rows[0][0].shape[:2]
    sw, sh = int(w * args.scale), int(h * args.scale)
    label_h = 22
    sheet = Image.new("RGB", (2 * sw, label_h + len(rows) * sh), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 5), "raster (Newton ray cast)", fill="black")
    draw.text((sw + 8, 5), "cycles (path traced, same labels)", fill="black")
    for i, (raster, cycles) in enumerate(rows):
        for j, image in enumerate((raster, cycles)):
            sheet.paste(Image.fromarray(image).resize((sw, sh), Image.LANCZOS), (j * sw, label_h + i * sh))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
