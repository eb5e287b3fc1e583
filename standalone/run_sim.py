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
parser.add_argument("--headless", action="store_true", default=True, help="no GUI (Isaac Sim)")
args = parser.parse_args()

simulation_app = None
if args.backend == "isaacsim":
    try:
        from isaacsim import SimulationApp
    except ImportError:
        sys.exit("error: --backend isaacsim needs Isaac Sim's python (./python.sh standalone/run_sim.py ...)")
    simulation_app = SimulationApp({"headless": args.headless})

from vlatwin.errors import VlatwinError  # noqa: E402  (after SimulationApp by design)


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
    print(
        f"{result.steps} steps in {result.wall_time:.3f} s: {result.steps_per_second:,.0f} steps/s, "
        f"real-time factor {result.real_time_factor:.1f}x (load {result.load_time:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except VlatwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    finally:
        if simulation_app is not None:
            simulation_app.close()
    sys.exit(code)
