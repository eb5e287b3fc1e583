"""Synthetic-data throughput: `vlatwin generate` end to end vs the raw Newton render loop, in one run.

End to end = randomize + settle physics + render + annotate (all annotators) + encode + write, with
the render threads and the writer thread sharing the machine's cores. Raw = the same cameras'
SensorCamera renders of the same buffers (colour + ray depth + planar depth + shape index + normals),
nothing else, with the same number of threads. Both at 640x480 and 1280x720.

    python benchmarks/sdg.py [--frames 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

CONFIG = Path("configs/tabletop.yaml")


def make_config(tmp: Path, resolution, frames: int) -> Path:
    data = yaml.safe_load(CONFIG.read_text())
    for cam in data["scene"]["cameras"]:
        cam["resolution"] = list(resolution)
    data["scene"]["cameras"] = data["scene"]["cameras"][:1]  # one camera: frames/s = images/s
    data["generate"]["frames"] = frames
    data["generate"]["camera_options"] = {}
    path = tmp / f"bench_{resolution[0]}x{resolution[1]}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def raw_render_fps(config_path: Path, frames: int, workers: int) -> float:
    from vlatwin.config.loader import load_config
    from vlatwin.sdg.newton_worker import FrameWorkerNewton
    from vlatwin.sdg.randomize import camera_pose, frame_rng
    from vlatwin.usd.scene_builder import write_scene

    config = load_config(config_path)
    with tempfile.TemporaryDirectory() as tmp:
        stage = write_scene(config.scene, Path(tmp) / "scene.usda")
        pool = [FrameWorkerNewton(config, stage, config.scene.cameras) for _ in range(workers)]
    for w in pool:  # compile outside the timing
        cam = w.cameras[0].cfg
        w.renderer.render(cam.name, camera_pose(cam, config.generate.randomize.cameras, frame_rng(0, 0)))

    counter = iter(range(frames))
    lock = threading.Lock()

    def loop(worker):
        cam = worker.cameras[0].cfg
        while True:
            with lock:
                frame = next(counter, None)
            if frame is None:
                return
            worker.renderer.refit()
            worker.renderer.render(cam.name, camera_pose(cam, config.generate.randomize.cameras, frame_rng(0, frame)))

    threads = [threading.Thread(target=loop, args=(w,)) for w in pool]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return frames / (time.perf_counter() - t0)


def pipeline_fps(config_path: Path, frames: int, workers: int) -> float:
    from vlatwin.sdg.pipeline import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(config_path, Path(tmp) / "warm", frames=2, workers=workers, progress=False)  # compile caches
        result = generate(config_path, Path(tmp) / "ds", frames=frames, workers=workers, progress=False)
    return result.frames_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="render threads for both loops (default: 2 = both cores)")
    args = parser.parse_args()
    import os

    print(f"{CONFIG} (arm + 10 objects), front camera, all annotators, basic + coco writers, "
          f"{args.workers} render threads + 1 writer thread, {os.cpu_count()} cores, {args.frames} frames per measurement")
    with tempfile.TemporaryDirectory() as tmp:
        for resolution in ((640, 480), (1280, 720)):
            path = make_config(Path(tmp), resolution, args.frames)
            raw = raw_render_fps(path, args.frames, args.workers)
            end_to_end = pipeline_fps(path, args.frames, args.workers)
            print(f"  {resolution[0]}x{resolution[1]}: end-to-end {end_to_end:5.2f} frames/s, raw render {raw:5.2f} frames/s, "
                  f"ratio {end_to_end / raw:.2f}")
    print("  goals: ratio >= 0.85 at 640x480; >= 6.6 frames/s at 1280x720 (Isaac Sim 5.0 all-annotator rate, RTX 5080)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
