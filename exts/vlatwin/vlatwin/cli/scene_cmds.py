"""``vlatwin scene ...``: build a USD stage from a config, check a stage, regenerate shipped assets."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from vlatwin.errors import VlatwinError


def register(groups) -> None:
    scene = groups.add_parser("scene", help="build and check USD scenes", description="Build and check USD scenes.")
    sub = scene.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)

    build = sub.add_parser(
        "build",
        help="author a USD stage from a YAML config",
        description="Author a USD stage (meters, Z up, UsdPhysics, UsdSemantics labels) from a config's scene: section. "
        "Isaac Sim opens the result as is.",
    )
    build.add_argument("config", type=Path, help="YAML config (e.g. configs/tabletop.yaml)")
    build.add_argument("-o", "--out", type=Path, required=True, help="output stage (.usda text, .usd/.usdc binary)")
    build.add_argument("--no-check", action="store_true", help="skip validating the written stage")
    build.set_defaults(func=cmd_build)

    check = sub.add_parser(
        "check",
        help="validate a USD stage and summarize its physics",
        description="Run pxr's registered validators (UsdValidation) and UsdPhysics parsing, then print a summary: "
        "units, articulations, bodies, colliders, joints, drives, semantic labels. Exit code 1 if errors are found.",
    )
    check.add_argument("stage", type=Path, help="USD file to check")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=cmd_check)

    assets = sub.add_parser(
        "assets",
        help="regenerate the shipped usd_assets/ (robot + default scene)",
        description="Rebuild usd_assets/panda.usda (the built-in arm, defaultPrim /panda) and usd_assets/tabletop.usda "
        "(from configs/tabletop.yaml). Run from the repository root.",
    )
    assets.add_argument("--config", type=Path, default=Path("configs/tabletop.yaml"), help="scene config (default: %(default)s)")
    assets.add_argument("--out-dir", type=Path, default=Path("usd_assets"), help="output folder (default: %(default)s)")
    assets.set_defaults(func=cmd_assets)


def cmd_build(args: argparse.Namespace) -> int:
    from vlatwin.config.loader import load_config
    from vlatwin.usd.check import check_stage
    from vlatwin.usd.scene_builder import write_scene

    config = load_config(args.config)
    out = write_scene(config.scene, args.out, source=args.config)
    print(f"wrote {out}")
    if not args.no_check:
        report = check_stage(out)
        for line in report.summary_lines()[1:]:
            print(line)
        return 0 if report.ok else 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from vlatwin.usd.check import check_stage

    report = check_stage(args.stage)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print("\n".join(report.summary_lines()))
    return 0 if report.ok else 1


def cmd_assets(args: argparse.Namespace) -> int:
    from vlatwin.usd.scene_builder import regenerate_assets

    if not args.config.is_file():
        raise VlatwinError(f"{args.config}: config not found; run from the repository root or pass --config")
    for path in regenerate_assets(args.config, args.out_dir):
        print(f"wrote {path}")
    return 0
