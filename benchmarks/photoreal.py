"""Photoreal RGB (``render: cycles``): what vlatwin adds to Cycles, and the quality/speed curve, in one run.

1. Per-frame cost at the default settings (640x480, ``CyclesCfg()`` defaults) on this machine's cores:
   ``vlatwin`` = the Cycles camera's whole capture (sync the simulation's poses into Blender, render,
   read the float image back, encode sRGB) vs ``bare`` = ``bpy.ops.render.render()`` of the same open
   scene and pose, nothing else. Ratio = bare / vlatwin time (goal >= 0.9); goal <= 5 s per frame.
2. Quality vs samples: PSNR (sRGB, 8-bit peak) of the denoised image against a high-sample reference
   of the same frame, per sample count, with the time each took.

    python benchmarks/photoreal.py [--frames 3] [--reference-samples 1024] [--curve-resolution 320 240]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

CONFIG = Path("configs/tabletop.yaml")


def make_worker(tmp: Path, resolution, cycles: dict):
    from vlatwin.config.loader import load_config
    from vlatwin.sdg.newton_worker import FrameWorkerNewton
    from vlatwin.usd.scene_builder import write_scene

    data = yaml.safe_load(CONFIG.read_text())
    data["scene"]["lidars"] = []
    data["scene"]["cameras"] = [c for c in data["scene"]["cameras"] if c["name"] == "front"]
    data["scene"]["cameras"][0]["resolution"] = list(resolution)
    data["generate"]["camera_options"] = {"front": {"render": "cycles", "cycles": cycles}}
    path = tmp / "photoreal.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    stage = write_scene(config.scene, tmp / "scene.usda")
    return FrameWorkerNewton(config, stage, config.scene.cameras)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=3, help="timed frames per loop (default: %(default)s)")
    parser.add_argument("--reference-samples", type=int, default=1024)
    parser.add_argument("--samples", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--curve-resolution", type=int, nargs=2, default=[320, 240])
    args = parser.parse_args()
    os.environ.setdefault("WARP_CACHE_PATH", str(Path.home() / ".cache/vlatwin/warp"))
    from vlatwin.config.generate_cfg import CyclesCfg
    from vlatwin.sensors.camera.cycles_renderer import import_bpy

    bpy = import_bpy()

    print(f"photoreal benchmark: {os.cpu_count()} cores, Blender {bpy.app.version_string}")
    with tempfile.TemporaryDirectory() as tmp:
        worker = make_worker(Path(tmp), (640, 480), {})
        try:
            sensor, photoreal = worker.cameras[0], worker.photoreal
            worker.run(0, 0)  # warm: kernels, BVH, shaders
            pose = sensor._pose
            vlatwin_s, bare_s = [], []
            for i in range(args.frames):
                t0 = time.perf_counter()
                sensor._seed = i
                sensor._photoreal_rgba(pose)
                vlatwin_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                bpy.ops.render.render(write_still=False)
                bare_s.append(time.perf_counter() - t0)
            v, b = statistics.median(vlatwin_s), statistics.median(bare_s)
            defaults = CyclesCfg()
            print(f"  640x480, {defaults.samples} samples, adaptive {defaults.adaptive_threshold}, denoise {defaults.denoise}:")
            print(f"    vlatwin Cycles camera {v:.2f} s/frame, bare Cycles render {b:.2f} s/frame")
            print(f"    bare / vlatwin ratio: {b / v:.3f} (goal >= 0.9); per frame {v:.2f} s (goal <= 5 s)")
        finally:
            worker.close()

        w, h = args.curve_resolution
        worker = make_worker(Path(tmp), (w, h), {})
        try:
            sensor, photoreal = worker.cameras[0], worker.photoreal
            worker.run(0, 0)
            pose = sensor._pose
            photoreal._cameras["front"]["settings"] = CyclesCfg(samples=args.reference_samples, adaptive_threshold=0.0)
            t0 = time.perf_counter()
            reference = sensor._photoreal_rgba(pose)[..., :3]
            print(f"  quality at {w}x{h} vs a {args.reference_samples}-sample denoised reference ({time.perf_counter() - t0:.1f} s):")
            for samples in args.samples:
                for denoise in (True, False):
                    photoreal._cameras["front"]["settings"] = CyclesCfg(samples=samples, denoise=denoise)
                    t0 = time.perf_counter()
                    image = sensor._photoreal_rgba(pose)[..., :3]
                    dt = time.perf_counter() - t0
                    print(f"    {samples:4d} samples, denoise {'on ' if denoise else 'off'}: PSNR {psnr(image, reference):5.1f} dB, {dt:.2f} s")
        finally:
            worker.close()


if __name__ == "__main__":
    main()
