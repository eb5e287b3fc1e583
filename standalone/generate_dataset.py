"""Generate a labeled camera/LIDAR dataset headless, on Newton (default) or inside Isaac Sim.

    python standalone/generate_dataset.py configs/tabletop.yaml --out out/dataset [--frames 20]
    ./python.sh standalone/generate_dataset.py configs/tabletop.yaml --out out/dataset --backend isaacsim

Both backends write the same files (Replicator BasicWriter layout, COCO, LIDAR npy/PCD/KITTI).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("config", type=Path, help="YAML config with scene: and generate: sections")
parser.add_argument("--out", type=Path, required=True, help="dataset folder (empty unless --resume)")
parser.add_argument("--frames", type=int, default=None)
parser.add_argument("--seed", type=int, default=None)
parser.add_argument("--resume", action="store_true")
parser.add_argument("--workers", type=int, default=1, help="render threads (newton only)")
parser.add_argument("--backend", choices=("newton", "isaacsim"), default="newton")
parser.add_argument("--headless", action=argparse.BooleanOptionalAction, default=True, help="run Isaac Sim without its GUI")
args = parser.parse_args()

from vlatwin.utils.app_launcher import launch_app, run_main  # noqa: E402  (numpy-only import)

# Kit must start before any omni/pxr import (launch_app also enables stable ids for labelled RTX Lidar points).
simulation_app = launch_app(args.backend, headless=args.headless, script="standalone/generate_dataset.py")


def main() -> int:
    from vlatwin.sdg.pipeline import generate

    result = generate(
        args.config,
        args.out,
        frames=args.frames,
        seed=args.seed,
        resume=args.resume,
        workers=args.workers,
        backend=args.backend,
        progress=sys.stderr.isatty(),
    )
    print(f"wrote {result.frames_written} frames to {result.out_dir} ({result.frames_per_second:.2f} frames/s)")
    return 0


if __name__ == "__main__":
    run_main(main, simulation_app)
