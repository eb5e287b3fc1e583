"""LIDAR throughput per profile on this machine's cores vs each sensor's real-time point rate.

Every scan is the full model: labels, intensity, range noise, dropout and motion distortion (the scan
cast in 10 column blocks with the physics stepped between them), on the default tabletop scene with
the sensor on a post. With --threads 2 two scanners (each with its own simulator) run in parallel,
as `vlatwin generate --workers 2` does. Real-time factor = simulated points/s / the sensor's points/s.

    python benchmarks/lidar.py [--scans 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PROFILES_ALL = ("OS1-32", "OS1-64", "OS1-128", "VLP-16", "HDL-64E", "PandarXT32", "Pandar64", "Mid-360", "SolidState-120x25")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=6, help="scans per thread per profile")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profiles", nargs="*", default=list(PROFILES_ALL), help="profile names (default: all shipped)")
    args = parser.parse_args()

    from vlatwin.config.loader import load_config
    from vlatwin.sensors.lidar.newton_lidar import LidarNewton
    from vlatwin.sensors.lidar.profiles import resolve_profile
    from vlatwin.loop import capture
    from vlatwin.sim.factory import make_backend
    from vlatwin.usd.check import open_stage
    from vlatwin.usd.scene_builder import write_scene

    config = load_config("configs/tabletop.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        stage_path = write_scene(config.scene, Path(tmp) / "scene.usda")
        sims = []
        for _ in range(args.threads):
            sim = make_backend("newton")
            sim.load(stage_path)
            sims.append(sim)
        stage = open_stage(stage_path)
    T = np.eye(4)
    T[:3, 3] = [1.3, -0.9, 1.3]
    print(f"tabletop scene, sensor on a post, labels + intensity + noise + dropout + motion distortion (10 blocks), "
          f"{args.threads} thread(s) x {args.scans} scans")
    print(f"  {'profile':20s} {'beams/scan':>10s} {'sensor pts/s':>13s} {'sim beams/s':>12s} {'real-time x':>11s}")
    for name in args.profiles:
        profile = resolve_profile(name)
        scanners = [LidarNewton(sim, stage, profile, pose_at=lambda t: T) for sim in sims]
        for scanner in scanners:  # warm-up (kernel variants, buffers)
            capture(scanner.sim, [scanner], rng=np.random.default_rng(0), refit=scanner.sim.refit_render_scene)

        def run(scanner, seed):
            rng = np.random.default_rng(seed)
            for k in range(args.scans):
                scanner.sim.reset()
                # The full model over simulated time: the loop steps physics to each column block.
                capture(scanner.sim, [scanner], index=k, rng=rng, refit=scanner.sim.refit_render_scene)

        threads = [threading.Thread(target=run, args=(s, i)) for i, s in enumerate(scanners)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        beams = profile.points_per_scan * args.scans * len(scanners)
        rate = beams / elapsed
        sensor_rate = profile.points_per_scan * profile.rate_hz
        print(f"  {name:20s} {profile.points_per_scan:10,d} {sensor_rate:13,.0f} {rate:12,.0f} {rate / sensor_rate:11.1f}")
    print("  goal: OS1-128 >= 5x real time (2.62 M points/s) with the full model")


if __name__ == "__main__":
    main()
