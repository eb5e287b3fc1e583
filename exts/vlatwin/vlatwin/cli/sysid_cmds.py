"""``vlatwin sysid excite|fit`` (identify the twin from a robot recording) and ``vlatwin report`` (how far to trust it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FIT_DESCRIPTION = """\
Fit the twin's physical parameters to a recording: the twin replays the joint targets the robot applied,
from the measured start state, and scipy's least_squares (trust-region reflective, box bounds) moves the
parameters until the simulated joint positions match the measured ones. Jacobians are finite differences,
one rollout per parameter, spread over --workers processes. At the optimum: covariance from the Jacobian,
95 % intervals, correlations; parameters the data cannot pin down (e.g. passive damping next to the drive's
damping under position-only commands, or the damping, friction and armature of a joint the excitation did
not drive, such as fingers that only jiggle) are reported as not identifiable and held at nominal. The last
--holdout share of the recording is not fitted: the held-out error and the share of held-out samples inside
the 95 % prediction band say how far to trust the result.

Positions alone fix drive gains and link masses only relative to each other (a heavier arm on stiffer drives
moves the same). A robot that reports its drives' output (joint efforts from the PD law, e.g. motor current;
the emulated robot does) fixes that scale: each sample's effort then also predicts its tracking error.
Link-side torque sensors (Franka's tau_J) are not that and are not used.

RECORDING is a `vlatwin twin run` / `vlatwin sysid excite` log (.mcap) or a LeRobotDataset v3 folder
(--episode). PARAMS: damping, friction, armature, drive_gains (= drive_stiffness + drive_damping), masses,
sensor_delay. Writes nothing when the fit does not converge.
"""

FIT_EPILOG = """\
examples:
  vlatwin sysid excite configs/tasks/reach_ball.yaml --robot "emulated?mismatch=0.2&friction_add=0.3" --seconds 12.5 --out out/excite
  vlatwin sysid fit out/excite/run.mcap --params drive_gains,masses,friction,armature,damping -o out/params.yaml \\
      --stage-out out/identified.usda --config configs/tasks/reach_ball.yaml --config-out configs/tasks/reach_ball_identified.yaml
  vlatwin report out/excite/run.mcap --params out/params.yaml -o out/fidelity.html
"""


def register(groups) -> None:
    sysid = groups.add_parser("sysid", help="system identification: excite the robot, fit the twin's parameters")
    sub = sysid.add_subparsers(dest="sysid_command", metavar="{excite,fit}", required=True)

    ex = sub.add_parser(
        "excite", help="run a safe multi-sine excitation on twin + robot and log it",
        description="Drive the arm joints with smooth multi-sines around the start pose (targets kept 0.1 rad inside "
        "the joint limits, every command through the twin's safety monitor) and record the run (OUT/run.mcap) for "
        "`vlatwin sysid fit`. By default one joint at a time (--sequential seconds each, cycling): on the XPBD twin, "
        "all joints moving together make its unloaded joints wander by ~0.1 mrad, which hides parameter effects.",
    )
    ex.add_argument("config", type=Path, help="task config with the robot (e.g. configs/tasks/reach_ball.yaml)")
    ex.add_argument("--robot", default="emulated", help="emulated[?options] or tcp://HOST:PORT (default: %(default)s)")
    ex.add_argument("--seconds", type=float, default=12.5, help="excitation length [s] (default: %(default)s)")
    ex.add_argument("--amplitude", type=float, default=0.2, help="peak joint offset [rad] (default: %(default)s)")
    ex.add_argument("--sequential", type=float, default=1.5,
                    help="seconds per joint, one joint at a time; 0 moves all joints at once (default: %(default)s)")
    ex.add_argument("--period", type=float, default=4.0, help="slowest sine's period [s] (default: %(default)s)")
    ex.add_argument("--out", type=Path, required=True, help="output folder (run.mcap, summary.html)")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--log-truth", action="store_true", help=argparse.SUPPRESS)  # emulated robot's hidden truth (tests)
    ex.add_argument("--no-progress", action="store_true", help="hide the status line")
    ex.set_defaults(func=cmd_excite)

    fit = sub.add_parser("fit", help="fit parameters to a recording", description=FIT_DESCRIPTION, epilog=FIT_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("recording", type=Path, help="run log (.mcap) or LeRobotDataset v3 folder")
    fit.add_argument("--params", default="drive_gains,masses,friction,armature,damping",
                     help="parameter groups, comma separated (default: %(default)s)")
    fit.add_argument("-o", "--out", type=Path, required=True, help="params.yaml to write")
    fit.add_argument("--stage", type=Path, default=None, help="the twin's stage (default: the one stored in the recording)")
    fit.add_argument("--episode", type=int, default=0, help="LeRobot episode index (default: 0)")
    fit.add_argument("--joints", default=None, help="joints to fit, comma separated (default: those that moved)")
    fit.add_argument("--holdout", type=float, default=0.25, help="share of the recording kept for testing (default: %(default)s)")
    fit.add_argument("--loss", default="linear", choices=("linear", "soft_l1", "huber", "cauchy"), help="least-squares loss")
    fit.add_argument("--max-evaluations", type=int, default=40, help="cost evaluations per round (default: %(default)s)")
    fit.add_argument("--workers", type=int, default=2, help="rollout processes (default: %(default)s)")
    fit.add_argument("--no-efforts", action="store_true",
                     help="ignore the robot's drive efforts (by default, when the recording has them, they fix the drive gains' scale)")
    fit.add_argument("--all-position-rows", action="store_true",
                     help="keep every joint's positions in the fit (by default a joint the twin moves >5x more than the "
                     "median joint for the same parameter change, e.g. XPBD's Panda joints 1 and 3, is left out when "
                     "none of its own parameters needs it)")
    fit.add_argument("--stage-out", type=Path, default=None, help="also write the stage with the identified parameters")
    fit.add_argument("--config", type=Path, default=None, help="the task config to write back into (with --config-out)")
    fit.add_argument("--config-out", type=Path, default=None, help="write CONFIG with a scene.robot.dynamics block here")
    fit.add_argument("--no-progress", action="store_true", help="quiet")
    fit.set_defaults(func=cmd_fit)

    rep = groups.add_parser(
        "report", help="HTML fidelity report of a recording: robot vs twin (nominal and identified)",
        description="Re-simulate the recording with the nominal twin and (with --params) the identified one and an "
        "ensemble drawn from its posterior; write one self-contained HTML page: per-joint trajectories with the 95 % "
        "band, J over time, residual statistics, band calibration, latency and clock sync, safety events.",
    )
    rep.add_argument("recording", type=Path, help="run log (.mcap) or LeRobotDataset v3 folder")
    rep.add_argument("--params", type=Path, default=None, help="params.yaml from `vlatwin sysid fit`")
    rep.add_argument("-o", "--out", type=Path, required=True, help="report.html to write")
    rep.add_argument("--stage", type=Path, default=None, help="the twin's stage (default: the recording's)")
    rep.add_argument("--episode", type=int, default=0)
    rep.add_argument("--ensemble", type=int, default=24, help="twins drawn from the posterior for the band (default: %(default)s)")
    rep.add_argument("--holdout", type=float, default=None, help="held-out share (default: the fit's)")
    rep.add_argument("--workers", type=int, default=2)
    rep.set_defaults(func=cmd_report)


def cmd_excite(args: argparse.Namespace) -> int:
    from vlatwin.cli.twin_cmds import _status_line
    from vlatwin.errors import VlatwinError
    from vlatwin.twin.runner import TwinRunner, TwinSettings

    if not 1.0 <= args.seconds <= 600:
        raise VlatwinError(f"--seconds must be in [1, 600], got {args.seconds}")
    out = args.out
    if (out / "run.mcap").exists():
        raise VlatwinError(f"{out}: already holds a run (run.mcap); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    settings = TwinSettings(
        policy=f"excite?amplitude={args.amplitude}&period={args.period}&sequential={args.sequential}", robot=args.robot, duration_s=args.seconds,
        seed=args.seed, log_truth=args.log_truth,
    )
    runner = TwinRunner(args.config, settings, log_path=out / "run.mcap",
                        progress=_status_line(not args.no_progress and sys.stderr.isatty()))
    result = runner.run(html=out / "summary.html")
    s = result.summary
    print(f"excited {result.steps} control steps ({args.seconds:g} s): {'E-STOPPED' if s['estopped'] else 'no e-stop'}; "
          f"log {result.log}")
    return 0


def _progress(enabled: bool):
    if not enabled:
        return None

    def show(round_, pset, res, bad):
        held = f"; not identifiable: {', '.join(pset.names[i] for i in bad)}" if bad else ""
        print(f"round {round_ + 1}: {len(pset)} parameters, {res.nfev} evaluations, cost {res.cost:.4g}{held}", file=sys.stderr, flush=True)

    return show


def cmd_fit(args: argparse.Namespace) -> int:
    from vlatwin.errors import VlatwinError
    from vlatwin.sysid.data import load_recording
    from vlatwin.sysid.fit import FitSettings, check_holdout, fit, predict
    from vlatwin.sysid.params import parse_groups
    from vlatwin.sysid.results import result_to_dict, write_params_yaml

    groups = parse_groups(args.params)
    check_holdout(args.holdout)  # before the recording loads and "fitting ..." is printed
    if args.max_evaluations < 1:
        raise VlatwinError(f"--max-evaluations: must be at least 1, got {args.max_evaluations}")
    if args.joints is not None and not [j for j in args.joints.split(",") if j.strip()]:
        raise VlatwinError("--joints: name at least one joint (comma separated), or leave it out to fit the joints that moved")
    if (args.config_out is None) != (args.config is None):
        raise VlatwinError("--config and --config-out go together (the config to write back into, and where)")
    if args.out.suffix.lower() not in (".yaml", ".yml"):
        raise VlatwinError(f"-o {args.out}: give a .yaml file")
    # Before minutes of fitting, not after: every output must have a place to go.
    from vlatwin.usd.scene_builder import _check_output_path
    from vlatwin.utils.files import ensure_writable_folder

    if args.stage_out is not None:  # first: it refuses a wrong suffix before any folder is made
        _check_output_path(args.stage_out)
    for path in (args.out, args.config_out):
        if path is not None:
            ensure_writable_folder(path.parent, name=str(path))
    rec = load_recording(args.recording, stage=args.stage, episode=args.episode)
    joints = None if args.joints is None else [j.strip() for j in args.joints.split(",") if j.strip()]
    settings = FitSettings(groups=groups, joints=joints, holdout=args.holdout, loss=args.loss,
                           max_evaluations=args.max_evaluations, workers=args.workers, use_efforts=not args.no_efforts,
                           leave_out_hypersensitive=not args.all_position_rows)
    efforts = "" if rec.effort is None else f", drive efforts: {rec.effort_kind or 'of unknown kind (not used)'}"
    print(f"fitting {', '.join(groups)} to {rec.source} ({rec.duration:.1f} s, input from the {rec.input_source}{efforts}) ...",
          file=sys.stderr)
    result, pool = fit(rec, settings, progress=_progress(not args.no_progress))
    try:
        if not result.converged:
            raise VlatwinError(
                f"the fit did not converge ({result.message}; cost {result.cost_initial:.4g} -> {result.cost_final:.4g} after "
                f"{result.evaluations} evaluations); nothing written. Try --max-evaluations, fewer --params or a longer excitation"
            )
        pred = predict(pool, rec, result, holdout=args.holdout)
    finally:
        pool.close()
    heldout = _heldout_numbers(rec, pred, result, args.holdout)
    dynamics = _dynamics(result, pool.description)
    doc = result_to_dict(result, recording=str(args.recording), heldout=heldout, dynamics=dynamics)
    write_params_yaml(args.out, doc)
    _print_table(result)
    left_out = result.extra.get("left_out") or {}
    if left_out:
        print(f"left out of the position fit: {', '.join(n.rsplit('/', 1)[-1] for n in left_out)} (the twin moves "
              f"{'them' if len(left_out) > 1 else 'it'} {', '.join(f'{v:.0f}x' for v in left_out.values())} more than the median "
              "joint for the same parameter change: solver sensitivity, not the robot's); their held-out error still counts")
    samples = result.extra.get("effort_samples")
    if samples:
        pinned = sum(e.note == "from the drive efforts" for e in result.estimates)
        rest = "the rest from the joint trajectories under them" if pinned < len(result.estimates) else "nothing else fitted"
        print(f"{pinned} drive gains from the robot's drive efforts ({sum(samples.values())} unsaturated samples); {rest}")
    print(f"held-out RMS: nominal {heldout['rms_nominal'] * 1e3:.3f} mrad, identified {heldout['rms_identified'] * 1e3:.3f} mrad "
          f"({_ratio_words(heldout['improvement'])}); {result.rollouts} rollouts in {result.wall_s:.0f} s; wrote {args.out}")
    if result.model_error_dominates:
        print(f"warning: the residuals are {result.reduced_chi2 ** 0.5:.0f}x the noise floor (reduced chi^2 {result.reduced_chi2:.3g}): "
              "the twin does not reproduce the recording down to its noise (a parameter outside --params, or a local "
              "minimum); the intervals assume a right model and are too narrow. Check the held-out band coverage in "
              "`vlatwin report`.", file=sys.stderr)
    if args.stage_out is not None:
        from vlatwin.sysid.writeback import write_stage_dynamics

        print(f"wrote {write_stage_dynamics(rec.stage_path, args.stage_out, dynamics)}")
    if args.config_out is not None:
        from vlatwin.sysid.writeback import write_config_dynamics

        print(f"wrote {write_config_dynamics(args.config, args.config_out, dynamics)}")
    return 0


def _ratio_words(improvement: float) -> str:
    if improvement >= 1.0:
        return f"{improvement:.1f}x lower with the identified parameters"
    return f"{1.0 / improvement:.1f}x HIGHER with the identified parameters: do not use them"


def _heldout_numbers(rec, pred, result, holdout: float) -> dict:
    import numpy as np

    rows = pred["rows"]
    held = rec.t[rows] > rec.t[0] + (1.0 - holdout) * rec.duration
    short = {n.rsplit("/", 1)[-1] for n in result.extra["joints"]}
    cols = np.array([k for k, n in enumerate(rec.joint_names) if n.rsplit("/", 1)[-1] in short])
    measured = rec.q[rows][:, cols]

    def rms(q):
        err = (q[:, cols] - measured)[held] if held.any() else q[:, cols] - measured
        return float(np.sqrt(np.mean(err**2)))

    nominal, identified = rms(pred["nominal"]), rms(pred["identified"])
    return {"share": holdout, "samples": int(held.sum()), "rms_nominal": nominal, "rms_identified": identified,
            "improvement": nominal / identified if identified > 0 else float("inf")}


def _dynamics(result, description) -> dict:
    from vlatwin.sysid.writeback import dynamics_from_params

    return dynamics_from_params(result.params, list(description.joint_names), list(description.body_paths),
                                nominal=result.nominal, bodies=list(description.robot_bodies))


def _print_table(result) -> None:
    width = max([34] + [len(e.name) for e in result.estimates])
    print(f"{'parameter':{width}s} {'nominal':>12s} {'identified':>12s} {'95 % interval':>14s}")
    for e in result.estimates:
        if e.identifiable:
            print(f"{e.name:{width}s} {e.nominal:12.5g} {e.value:12.5g} {'+- ' + format(1.96 * e.std, '.3g'):>14s} {e.unit}"
                  + (f"  ({e.note})" if e.note else ""))
        else:
            print(f"{e.name:{width}s} {e.nominal:12.5g} {'-':>12s} {'':>14s} {e.unit}  {e.note}")


def cmd_report(args: argparse.Namespace) -> int:
    import math

    import numpy as np

    from vlatwin.report.fidelity_report import FidelityReportData, ParamRow, fidelity_summary, write_fidelity_report
    from vlatwin.sysid.data import load_recording
    from vlatwin.sysid.fit import check_holdout, predict
    from vlatwin.sysid.results import read_params_yaml, result_from_dict
    from vlatwin.sysid.rollout import RolloutPool, make_windows

    if args.holdout is not None:
        check_holdout(args.holdout)
    rec = load_recording(args.recording, stage=args.stage, episode=args.episode)
    doc = read_params_yaml(args.params) if args.params is not None else None
    holdout = args.holdout if args.holdout is not None else float(((doc or {}).get("heldout") or {}).get("share", 0.25))
    windows = make_windows(rec.t, rec.q, rec.qd, np.ones(len(rec.t), bool), window_s=math.inf, sample_period_s=0.01)
    pool = RolloutPool(rec.stage_path, rec.physics, rec.joint_names, windows, rec.target_t, rec.target_q, workers=args.workers)
    try:
        if doc is not None:
            result = result_from_dict(doc, pool.description, source=str(args.params))
            pred = predict(pool, rec, result, ensemble=args.ensemble, holdout=holdout)
        else:
            nominal, = pool.simulate_many([(pool.description.nominal, 0.0)])
            pred = {"rows": np.concatenate([w.rows for w in windows]), "nominal": nominal}
            result = None
    finally:
        pool.close()
    rows = pred["rows"]
    t = rec.t[rows]
    held = t > rec.t[0] + (1.0 - holdout) * rec.duration
    params = []
    corr = None
    if result is not None:
        truth = None
        params = [ParamRow(e.name, e.unit, e.nominal, e.value, e.std, e.identifiable, e.note, truth) for e in result.estimates]
        corr = result.correlation if result.identified_names else None
    data = FidelityReportData(
        title=Path(rec.source).name, recording=str(args.recording),
        joint_names=[n.rsplit("/", 1)[-1] for n in rec.joint_names], t=t, q_measured=rec.q[rows], held_out=held,
        q_nominal=pred["nominal"], q_identified=pred.get("identified"), band_lo=pred.get("band_lo"), band_hi=pred.get("band_hi"),
        params=params, correlation=corr,
        fit={} if doc is None else {k: v for k, v in doc["fit"].items() if not isinstance(v, (dict, list))},
        latency_s=rec.latency_s, clock=rec.clock,
        safety_events=[{"t": e.get("t"), "kind": e.get("kind", ""), "reason": e.get("reason", "")} for e in rec.safety_events],
        events=[{"t": e.get("t"), "level": e.get("level", ""), "text": e.get("text", "")} for e in rec.events],
        images=list(rec.images), point_clouds=list(rec.point_clouds),
    )
    path = write_fidelity_report(data, args.out)
    summary = fidelity_summary(data)
    parts = [f"wrote {path}"]
    if summary.get("held_out_rms_identified") is not None:
        parts.append(f"held-out RMS nominal {summary['held_out_rms_nominal'] * 1e3:.3f} mrad, identified "
                     f"{summary['held_out_rms_identified'] * 1e3:.3f} mrad")
    if summary.get("held_out_band_coverage") is not None:
        parts.append(f"{summary['held_out_band_coverage']:.1%} of held-out samples inside the 95 % band ({summary['band_calibration']})")
    print("; ".join(parts))
    return 0
