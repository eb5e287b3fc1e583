"""``vlatwin`` console entry point: ``generate``, ``preview``, ``scene build|check|assets``, ``sim run``.

User errors (:class:`VlatwinError`) print one line and exit with code 2; no traceback. So does an
``OverflowError`` / ``FloatingPointError``: config validation bounds every number, so one that still
overflows came from an absurd input value (``-v`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from vlatwin import __version__
from vlatwin.errors import VlatwinError

EPILOG = """examples:
  vlatwin generate configs/tabletop.yaml --out out/dataset --frames 20
  vlatwin preview out/dataset -o out/sheet.png
  vlatwin scene build configs/tabletop.yaml -o out/tabletop.usda
  vlatwin scene check out/tabletop.usda
  vlatwin sim run configs/tabletop.yaml --steps 1200
  vlatwin record configs/tasks/pick_red_cube.yaml --episodes 10 --out out/pick
  vlatwin replay out/pick --episode 0
  vlatwin eval configs/tasks --tasks reach_ball,pick_red_cube --policy expert --episodes 10 --out out/eval
  vlatwin serve --policy expert --config configs/tasks/reach_ball.yaml --port 8000
  vlatwin twin run configs/tasks/reach_ball.yaml --policy expert --robot "emulated?latency_ms=50" --out out/twin
"""


def build_parser() -> argparse.ArgumentParser:
    from vlatwin.cli import eval_cmds, record_cmds, scene_cmds, sdg_cmds, serve_cmds, sim_cmds, sysid_cmds, twin_cmds
    from vlatwin.cli import agent_cmds

    parser = argparse.ArgumentParser(
        prog="vlatwin",
        description="Robot digital twins: YAML -> USD scenes, simulation on Newton (embedded) or Isaac Sim.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vlatwin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log engine details (Warp compiles, importer notes)")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    sdg_cmds.register(groups)
    scene_cmds.register(groups)
    sim_cmds.register(groups)
    record_cmds.register(groups)
    eval_cmds.register(groups)
    serve_cmds.register(groups)
    agent_cmds.register(groups)
    twin_cmds.register(groups)
    sysid_cmds.register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except VlatwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OverflowError, FloatingPointError) as exc:
        if args.verbose:
            traceback.print_exc()
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"error: a number is out of range ({detail}); check the magnitudes in the config and arguments"
            + ("" if args.verbose else " (-v shows where)"),
            file=sys.stderr,
        )
        return VlatwinError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
