"""Step a vlatwin scene headless and print the real-time factor.

    python standalone/run_sim.py configs/tabletop.yaml --num-steps 1200 [--backend newton|isaacsim]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("source", type=Path, help="config (.yaml) or USD stage")
parser.add_argument("--num-steps", type=int, default=1200, help="physics steps (default: %(default)s)")
parser.add_argument("--backend", choices=("newton", "isaacsim"), default="newton")
parser.add_argument("--device", default=None, help="Warp device for newton (cpu, cuda:0)")
parser.add_argument("--seed", type=int, default=None)
parser.add_argument("--motion", choices=("hold", "sine"), default="hold")
parser.add_argument("--headless", action=argparse.BooleanOptionalAction, default=True, help="run Isaac Sim without its GUI")
args = parser.parse_args()

from vlatwin.utils.app_launcher import launch_app, run_main  # noqa: E402  (numpy-only import)

# Kit must start before any omni/pxr import.
simulation_app = launch_app(args.backend, headless=args.headless, script="standalone/run_sim.py")


def main() -> int:
    from vlatwin.sim.runner import run_simulation

    result = run_simulation(
        args.source,
        steps=args.num_steps,
        backend=args.backend,
        device=args.device,
        seed=args.seed,
        motion=args.motion,
        progress=sys.stderr.isatty(),
    )
    print("\n".join(result.summary_lines()))
    return 0


if __name__ == "__main__":
    run_main(main, simulation_app)
