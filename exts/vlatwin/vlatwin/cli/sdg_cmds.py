"""``vlatwin generate`` and ``vlatwin preview``."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path


def register(groups) -> None:
    gen = groups.add_parser(
        "generate",
        help="render a labeled camera dataset (the main job)",
        description="Randomize the scene, settle physics, render every camera on the Newton backend and write the "
        "annotators (rgb, depth, normals, segmentation, 2D/3D boxes, occlusion, camera params, point clouds) in "
        "Replicator's BasicWriter layout plus COCO. Same --seed, same bytes. A crashed or interrupted run continues "
        "with --resume (finished frames are checksummed in manifest.jsonl).",
    )
    gen.add_argument(
        "config", type=Path,
        help="YAML config with scene: and generate: sections, or a USD stage (.usda/.usd/.usdc) built by vlatwin or "
        "edited in Isaac Sim/usdview: cameras, resolutions, LIDARs and labels are read from the stage",
    )
    gen.add_argument(
        "--settings", type=Path, default=None,
        help="with a USD stage: a YAML file whose generate: section sets frames, annotators, randomization (default: defaults)",
    )
    gen.add_argument("--out", type=Path, required=True, help="dataset folder (must be empty unless --resume)")
    gen.add_argument("--frames", type=int, default=None, help="frames to write (default: generate.frames)")
    gen.add_argument("--seed", type=int, default=None, help="randomization seed (default: generate.seed)")
    gen.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    gen.add_argument("--workers", type=int, default=1, help="render threads, each with its own simulator (default: 1)")
    gen.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="shard frames over --workers Ray actors: a local Ray (no ADDRESS) or the cluster at ADDRESS "
        "(ray://HOST:10001, auto); same files as without --ray",
    )
    gen.add_argument(
        "--render", choices=("raster", "cycles"), default=None,
        help="RGB renderer for every camera: raster (Newton ray cast, fast) or cycles (Blender Cycles path tracer, "
        "photoreal; pip install 'vlatwin[photoreal]'); labels always come from the exact ray cast "
        "(default: each camera's generate.camera_options.<camera>.render, else raster)",
    )
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen.set_defaults(func=cmd_generate)

    prev = groups.add_parser(
        "preview",
        help="contact sheet of a dataset",
        description="Draw a contact sheet: RGB with coloured 2D boxes and class names, instance-segmentation overlay, "
        "and a depth colormap, one row per camera and frame.",
    )
    prev.add_argument("dataset", type=Path, help="dataset folder written by vlatwin generate (or Replicator BasicWriter)")
    prev.add_argument("-o", "--out", type=Path, required=True, help="output PNG")
    prev.add_argument("--frames", type=int, default=4, help="frames per camera (default: %(default)s)")
    prev.set_defaults(func=cmd_preview)


def cmd_generate(args: argparse.Namespace) -> int:
    from vlatwin.sdg.pipeline import generate

    if args.ray is not None:
        from vlatwin.scale.generate import generate_ray as generate

        generate = functools.partial(generate, address=args.ray)
    result = generate(
        args.config,
        args.out,
        frames=args.frames,
        seed=args.seed,
        resume=args.resume,
        workers=args.workers,
        progress=not args.no_progress and sys.stderr.isatty(),
        settings=args.settings,
        **({"render": args.render} if args.render else {}),
    )
    skipped = f" ({result.frames_skipped} already done)" if result.frames_skipped else ""
    print(
        f"wrote {result.frames_written} frames{skipped} to {result.out_dir} in {result.wall_time:.1f} s "
        f"({result.frames_per_second:.2f} frames/s, excluding start-up)"
    )
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from vlatwin.sdg.preview import make_contact_sheet

    print(f"wrote {make_contact_sheet(args.dataset, args.out, max_frames=args.frames)}")
    return 0
