"""``vlatwin sim run``: headless simulation with a progress bar and the real-time factor."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _reset_noise(text: str) -> float:
    """``--reset-noise``: a finite half-width in [0, 10] (argparse prints the one-line error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 10.0:  # also rejects nan and inf
        raise argparse.ArgumentTypeError(f"expected a number of radians (or meters) in [0, 10], got {text}")
    return value


def register(groups) -> None:
    sim = groups.add_parser("sim", help="run simulations", description="Run simulations headless.")
    sub = sim.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    run = sub.add_parser(
        "run",
        help="step a scene headless and report speed",
        description="Build the scene (from a YAML config) or load a USD stage, step it N physics steps on the chosen "
        "backend while the arm follows a target motion, then print steps/s, the real-time factor and the final "
        "joint tracking error. Kernel compilation (first run: about a minute on CPU) is reported as load time.",
    )
    run.add_argument("source", type=Path, help="config (.yaml) or USD stage (.usda/.usd/.usdc)")
    run.add_argument("--steps", type=int, default=1200, help="physics steps (default: %(default)s = 2 s at 600 Hz)")
    run.add_argument("--backend", choices=("newton", "isaacsim"), default="newton", help="simulator (default: %(default)s)")
    run.add_argument("--device", default=None, help="Warp device for newton, e.g. cpu or cuda:0 (default: GPU if any)")
    run.add_argument(
        "--solver", choices=("xpbd", "vbd"), default=None,
        help="Newton solver (default: the config's physics.solver, else xpbd); vbd tracks joint targets tighter",
    )
    run.add_argument("--seed", type=int, default=None, help="seed for the reset noise (same seed, same states)")
    run.add_argument(
        "--reset-noise", type=_reset_noise, default=0.0, metavar="RAD",
        help="uniform noise [rad | m] added to the initial joint positions, within limits (0..10, default: 0)",
    )
    run.add_argument("--motion", choices=("hold", "sine"), default="hold", help="arm target motion (default: %(default)s)")
    run.add_argument(
        "--replay", type=Path, default=None, metavar="RECORDING",
        help="instead of --motion: replay a robot recording (twin run log .mcap or LeRobotDataset v3 folder) on this "
        "stage from its measured start and print the joint error against the robot (e.g. a stage written by "
        "`vlatwin sysid fit --stage-out` against the nominal one)",
    )
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    if args.replay is not None:
        return _replay(args)
    from vlatwin.sim.runner import run_simulation

    result = run_simulation(
        args.source,
        steps=args.steps,
        backend=args.backend,
        device=args.device,
        seed=args.seed,
        motion=args.motion,
        reset_joint_noise=args.reset_noise,
        solver=args.solver,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    built = args.source.suffix in (".yaml", ".yml")
    print(f"scene: {args.source}" + (" (built to a temporary USD stage)" if built else ""))
    print("\n".join(result.summary_lines()))
    return 0


def _replay(args: argparse.Namespace) -> int:
    """Replay a recording's applied targets on SOURCE (a stage) and compare with the measured joints."""
    import math

    import numpy as np

    from vlatwin.errors import VlatwinError
    from vlatwin.sysid.data import load_recording
    from vlatwin.sysid.rollout import RolloutEngine, make_windows

    if args.backend != "newton":
        raise VlatwinError("--replay runs on the newton backend")
    if args.source.suffix.lower() not in (".usd", ".usda", ".usdc"):
        raise VlatwinError(f"--replay: {args.source} is not a USD stage; give the stage to test (e.g. from sysid fit --stage-out)")
    rec = load_recording(args.replay, stage=args.source)
    windows = make_windows(rec.t, rec.q, rec.qd, np.ones(len(rec.t), bool), window_s=math.inf, sample_period_s=0.01)
    engine = RolloutEngine(args.source, rec.physics, rec.joint_names)
    try:
        pred = engine.simulate(engine.description.nominal, 0.0, windows, rec.target_t, rec.target_q)
    finally:
        engine.sim.close()
    rows = np.concatenate([w.rows for w in windows])
    err = pred - rec.q[rows]
    moving = rec.moving_joints()
    cols = np.flatnonzero(moving) if moving.any() else np.arange(len(rec.joint_names))
    rms = np.sqrt(np.mean(err[:, cols] ** 2, axis=0))
    print(f"replayed {args.replay} ({rec.duration:.2f} s, {len(rows)} samples, {len(rec.target_t)} targets) on {args.source}")
    print(f"RMS joint error against the robot: {float(np.sqrt(np.mean(err[:, cols] ** 2))) * 1e3:.3f} mrad | mm over the moving joints")
    for k, value in zip(cols, rms):
        print(f"  {rec.joint_names[k].rsplit('/', 1)[-1]:24s} {value * 1e3:.3f}")
    return 0
