"""``vlatwin twin run`` (the synchronized twin driving a robot) and ``vlatwin twin replay`` (from its log)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

RUN_DESCRIPTION = """\
Run a policy on the twin and a robot at once: every action goes through one safety monitor (NaN,
joint limits with margin, per-step relative clamp, rate limits, end-effector workspace box, a shadow
roll-out in the twin) and then to both. The twin stays synchronized with the robot: NTP-style clock
sync, delay compensation, a Kalman estimate with the twin as process model, re-sync when they part;
the divergence J is computed online. No robot state for max(3 periods, 100 ms) latches an e-stop.
Writes OUT/run.mcap (Foxglove / ROS 2 tools read it) and OUT/summary.html.

ROBOT is `emulated[?options]` (a second Newton instance with hidden parameter mismatch, sensor noise,
latency, loss and clock drift; virtual clock, deterministic) or `tcp://HOST:PORT[?token=..]` (a
`vlatwin agent` next to the robot; wall clock). Emulation options: latency_ms, jitter_ms, loss,
offset_s, drift_ppm, mismatch, noise_q, noise_qd, rate_hz, seed.
"""

RUN_EPILOG = """\
examples:
  vlatwin twin run configs/tasks/reach_ball.yaml --policy expert --robot "emulated?latency_ms=50&jitter_ms=10&loss=0.05&mismatch=0.2" --out out/twin
  vlatwin twin run configs/tasks/reach_ball.yaml --policy excite --duration 30 --robot emulated?latency_ms=50 --out out/twin_excite
  vlatwin twin run configs/tasks/reach_ball.yaml --policy expert --robot "emulated?latency_ms=50&jitter_ms=10&loss=0.05" --command-lead-ms 140 --out out/twin_sched
  vlatwin agent --driver emulated --config configs/tasks/reach_ball.yaml &   # then:
  vlatwin twin run configs/tasks/reach_ball.yaml --policy expert --robot tcp://127.0.0.1:5555 --out out/twin_net
  vlatwin twin replay out/twin/run.mcap
"""


def register(groups) -> None:
    twin = groups.add_parser("twin", help="the synchronized twin: run a policy on twin + robot, replay a run log")
    sub = twin.add_subparsers(dest="twin_command", metavar="{run,replay}", required=True)
    run = sub.add_parser(
        "run", help="drive the twin and a robot with one action stream", description=RUN_DESCRIPTION, epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("config", type=Path, help="task config (scene + task), e.g. configs/tasks/reach_ball.yaml")
    run.add_argument("--policy", required=True, help="policy spec as in `vlatwin eval` (expert, excite, hf://..., openpi://...)")
    run.add_argument("--robot", default="emulated", help="emulated[?options] or tcp://HOST:PORT (default: %(default)s)")
    run.add_argument("--out", type=Path, required=True, help="output folder (run.mcap, summary.html)")
    run.add_argument("--duration", type=float, default=None, help="seconds to run (default: the task's step limit)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--init-state", type=int, default=0, help="index of the task's stored initial state (default: 0)")
    run.add_argument("--no-sync", action="store_true", help="open-loop twin: no estimation or re-sync (a baseline)")
    run.add_argument("--no-shadow", action="store_true", help="skip the shadow roll-out veto")
    run.add_argument(
        "--command-lead-ms", type=float, default=None, metavar="MS",
        help="scheduled commands: each takes effect MS after it is sent (stamped on the robot clock; the robot or its "
        "agent holds it until then), so the twin applies it at the same instant instead of guessing the link's "
        "jitter; each also repeats the one before, so a lost packet is recovered when MS >= one control period + "
        "the largest one-way delay (latency + 3-4 x jitter). Costs MS of reaction time (default: on arrival)",
    )
    run.add_argument(
        "--servo-ramp-ms", type=float, default=None, metavar="MS",
        help="the robot's servo ramps to each new target over MS (as interpolating arm controllers do); the twin runs "
        "the same ramp. Default: what the robot reports (the emulated robot's ramp_ms option), else 0 (steps)",
    )
    run.add_argument("--stop-on-success", action="store_true", help="end when the task succeeds")
    run.add_argument("--no-progress", action="store_true", help="hide the status line")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser(
        "replay", help="re-simulate a twin run from its MCAP log and report J against the robot",
        description="Load the stage stored in the log, apply the initial state, feed the safe commands at their "
        "send times plus the downlink delay (open loop), and compare with the logged robot states: "
        "J = integral of ||q_robot - q_replay||^2 dt, per joint. --html rewrites the run's summary page.",
    )
    rep.add_argument("log", type=Path, help="run.mcap written by vlatwin twin run")
    rep.add_argument("--delay", type=float, default=None, help="downlink delay [s] (default: the run's clock-sync estimate)")
    rep.add_argument("--html", type=Path, default=None, help="write the run's summary page here")
    rep.set_defaults(func=cmd_replay)


def _status_line(enabled: bool):
    if not enabled:
        return None
    import time

    last = [0.0]

    def show(k, total, divergence, safety):
        now = time.monotonic()
        if now - last[0] < 0.2 and k + 1 < total:
            return
        last[0] = now
        state = "E-STOP" if safety.estopped else ("ALARM" if divergence.alarm else "ok")
        sys.stderr.write(f"\rstep {k + 1}/{total}  J={divergence.J:.3g}  rms={divergence.rms:.3g} rad  [{state}]   ")
        if k + 1 == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def cmd_run(args: argparse.Namespace) -> int:
    from vlatwin.errors import VlatwinError
    from vlatwin.twin.runner import TwinRunner, TwinSettings

    if args.duration is not None and not 0 < args.duration <= 3600:
        raise VlatwinError(f"--duration must be in (0, 3600] s, got {args.duration}")
    if args.command_lead_ms is not None and not 0 < args.command_lead_ms <= 2000:
        raise VlatwinError(
            f"--command-lead-ms must be in (0, 2000] ms, above the link's one-way delay; got {args.command_lead_ms}"
        )
    if args.servo_ramp_ms is not None and not 0 <= args.servo_ramp_ms <= 1000:
        raise VlatwinError(f"--servo-ramp-ms must be in [0, 1000] ms (0: the robot steps), got {args.servo_ramp_ms}")
    out = args.out
    if out.exists() and not out.is_dir():
        raise VlatwinError(f"{out}: output path is a file; give a folder")
    if out.is_dir() and (out / "run.mcap").exists():
        raise VlatwinError(f"{out}: already holds a run (run.mcap); choose another --out")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    settings = TwinSettings(
        policy=args.policy, robot=args.robot, duration_s=args.duration, seed=args.seed, init_state=args.init_state,
        sync=not args.no_sync, shadow=not args.no_shadow, stop_on_success=args.stop_on_success,
        command_lead_s=None if args.command_lead_ms is None else args.command_lead_ms * 1e-3,
        servo_ramp_s=None if args.servo_ramp_ms is None else args.servo_ramp_ms * 1e-3,
    )
    try:
        runner = TwinRunner(args.config, settings, log_path=out / "run.mcap", progress=_status_line(not args.no_progress and sys.stderr.isatty()))
        result = runner.run(html=out / "summary.html")
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a run that never started leaves nothing behind
        raise
    s = result.summary
    print(
        f"ran {result.steps} control steps: J = {s['J']:.4g} rad^2*s, re-syncs {s['resyncs']}, "
        f"{'E-STOPPED' if s['estopped'] else 'no e-stop'}; log {result.log}, summary {result.html}"
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from vlatwin.twin.replay import replay_twin

    result = replay_twin(args.log, delay_s=args.delay)
    timing = f"downlink delay {result.downlink_delay_s * 1e3:.1f} ms"
    if result.scheduled == result.commands:
        timing = "each at its scheduled time"
    elif result.scheduled:
        timing = f"{result.scheduled} at their scheduled times, the others after a {timing}"
    print(f"replayed {result.commands} commands over {result.duration_s:.2f} s ({timing})")
    print(f"J (robot vs open-loop replay) = {result.J:.6g}   max |q_robot - q_replay| = {result.max_abs_error:.3g}")
    for name, value in result.J_per_joint.items():
        print(f"  {name:24s} {value:.6g}")
    if args.html is not None:
        from vlatwin.report.twin_report import write_twin_summary

        print(f"wrote {write_twin_summary(args.log, args.html)}")
    return 0
