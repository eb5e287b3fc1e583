"""Build a USD scene from a vlatwin config, headless.

    python standalone/build_scene.py configs/tabletop.yaml -o out/tabletop.usda [--backend newton|isaacsim]

With ``--backend isaacsim`` (run with Isaac Sim's ``python.sh``) the stage is authored with Kit's pxr
and opened in the running app; with ``newton`` (default) plain usd-core is used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("config", type=Path, help="YAML config")
parser.add_argument("-o", "--out", type=Path, required=True, help="output .usda/.usd/.usdc")
parser.add_argument("--backend", choices=("newton", "isaacsim"), default="newton")
parser.add_argument("--headless", action=argparse.BooleanOptionalAction, default=True, help="run Isaac Sim without its GUI")
args = parser.parse_args()

from vlatwin.utils.app_launcher import launch_app, run_main  # noqa: E402  (numpy-only import)

# Kit must start before any omni/pxr import.
simulation_app = launch_app(args.backend, headless=args.headless, script="standalone/build_scene.py")


def main() -> int:
    from vlatwin.config.loader import load_config
    from vlatwin.usd.check import check_stage
    from vlatwin.usd.scene_builder import write_scene

    out = write_scene(load_config(args.config).scene, args.out)
    report = check_stage(out)
    print("\n".join(report.summary_lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    run_main(main, simulation_app)
