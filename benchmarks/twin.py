"""The synchronized twin, measured in one run each:

(a) the robot state stream at 1 kHz over loopback through ``vlatwin agent`` vs a raw ZMQ PUB/SUB echo of
    the same bytes: p50 / p99 added latency (goal: p99 <= 2x the raw p99; ``benchmarks/twin_link.py``);
(b) twin fidelity: time RMS over a scripted motion (``excite``) of |q_twin - q_robot_true| (the emulated robot's
    hidden truth at the same host time, every 5 ms) for the synchronized twin vs the open-loop twin, on the issue's
    link (50 +- 10 ms, 5 % loss) with 20 % hidden parameter mismatch and encoder noise, then with one error
    source at a time. Goal: synchronized <= 10 % of open loop. A last column gives both twins told each
    command's true arrival on the robot (not causal: what no twin can know until the robot's state comes
    back): the part of the error that is the link's and not the twin's. A second row per link schedules the
    commands (``command_lead_s``: each takes effect 140 ms after it is sent, on the robot clock, and repeats
    the one before), which takes the jitter and single losses out of both twins; its ratio is against the
    unscheduled open-loop twin. A third row gives the robot an interpolating servo (``ramp_ms``, 50 ms: each
    target reached over a ramp, as real arm controllers do; the twin runs the same ramp), scheduled, against
    that robot's unscheduled open-loop twin. On the issue's link a last row fits the twin first
    (``sysid``: drive gains and link masses from 12.5 s of excitation of the same hidden robot over a 20 ms
    link) and runs the identified twin, scheduled, synchronized vs open loop: synchronization takes out the
    link, identification the parameters;
(c) shadow-mode veto latency: control-step time with the shadow roll-out minus without, per command.

Speed and ratios are printed, never asserted (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
CONFIG = REPO / "configs" / "tasks" / "reach_ball.yaml"


def _oracle_runner():
    """A TwinRunner that applies each command at its true arrival on the emulated robot (lost ones never)."""
    from vlatwin.twin.runner import TwinRunner

    class OracleTwinRunner(TwinRunner):
        def _twin_applications(self, send_time, seq, target):
            return [(entry[0], target) for entry in getattr(self.robot, "_down_q", ()) if entry[2] == seq][:1]

    return OracleTwinRunner


def identified_params(robot: str, seconds: float = 12.5, workers: int = 2):
    """The twin's parameters fitted (drive gains + link masses, ``vlatwin sysid``) to an excitation of ``robot``."""
    from vlatwin.sysid.data import load_recording
    from vlatwin.sysid.fit import FitSettings, fit
    from vlatwin.sysid.params import parse_groups
    from vlatwin.twin.runner import TwinRunner, TwinSettings

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "excite.mcap"
        TwinRunner(CONFIG, TwinSettings(policy="excite?amplitude=0.2&sequential=1.5", robot=robot, duration_s=seconds),
                   log_path=log).run()
        t0 = time.perf_counter()
        result, pool = fit(load_recording(log), FitSettings(groups=parse_groups("drive_gains,masses"), holdout=0.2, workers=workers))
        pool.close()  # fit() closes its pool itself when it raises
    return result.params, time.perf_counter() - t0


def twin_run(robot: str, duration: float, *, sync: bool, shadow: bool = True, log_truth: bool = True,
             oracle: bool = False, lead: float | None = None, policy: str = "excite?amplitude=0.3&period=4",
             params=None):
    """(time RMS, RMS at the control steps) of |q_twin - q_true| over the 7 arm joints [rad], wall [s], steps."""
    from vlatwin.twin.runlog import read_runlog
    from vlatwin.twin.runner import TwinRunner, TwinSettings

    runner_cls = _oracle_runner() if oracle else TwinRunner
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "run.mcap"
        runner = runner_cls(
            CONFIG, TwinSettings(policy=policy, robot=robot, duration_s=duration, sync=sync, shadow=shadow,
                                 log_truth=log_truth, command_lead_s=lead),
            log_path=log,
        )
        if params is not None:
            runner.started._sim.set_params(params)  # the identified twin; the robot keeps its hidden truth
        t0 = time.perf_counter()
        result = runner.run()
        wall = time.perf_counter() - t0
        rms = None
        if log_truth:
            messages = read_runlog(log).messages("/truth")
            errors = np.array([m["error_q"] for _, m in messages])[:, :7]
            times = np.array([t for t, _ in messages])
            squared = (errors**2).sum(axis=1)
            phase = np.mod(times - times[0], runner.control_dt)
            at_steps = np.minimum(phase, runner.control_dt - phase) < 1e-6
            rms = (float(np.sqrt(squared.mean())), float(np.sqrt(squared[at_steps].mean())))
    return rms, wall, result.steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="scripted motion length [s] for (b)")
    parser.add_argument("--link-samples", type=int, default=2000)
    parser.add_argument("--lead-ms", type=float, default=140.0,
                        help="command lead of the scheduled rows [ms]: one period + latency + 4 x jitter, so a lost packet's repeat is in time")
    parser.add_argument("--ramp-ms", type=float, default=50.0, help="servo ramp of the interpolating-robot rows [ms]")
    parser.add_argument("--cases", default="issue,link,jitter,loss,mismatch,mismatch0",
                        help="links of (b), comma separated (default: all): issue, link, jitter, loss, mismatch, mismatch0")
    parser.add_argument("--skip-identified", action="store_true", help="skip the identified-twin row (a 2-3 min fit)")
    parser.add_argument("--skip-stream", action="store_true", help="skip (a), the state-stream latency")
    args = parser.parse_args(argv)

    from twin_link import run as link_run

    if not args.skip_stream:
        link = link_run(n=args.link_samples)
        print("(a) state stream at 1 kHz, loopback:")
        def fmt(value):
            if isinstance(value, dict):
                return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) + "}"
            return f"{value:.3f}" if isinstance(value, float) else str(value)

        for key, value in link.items():
            print(f"    {key}: {fmt(value)}")

    print(f"(b) twin fidelity over a {args.duration:g} s multi-sine motion (time RMS |q_twin - q_true| over 7 arm "
          "joints; [at the control steps]; goal: synchronized <= 0.10 x open loop):")
    base = "offset_s=0.3&seed=1"
    cases = {
        "issue": ("the issue's link: 50+-10 ms, 5 % loss, 20 % mismatch, noise, drift",
                  "latency_ms=50&jitter_ms=10&loss=0.05&mismatch=0.2&noise_q=0.0005&drift_ppm=50"),
        "link": ("the issue's link alone: 50+-10 ms, 5 % loss, drift", "latency_ms=50&jitter_ms=10&loss=0.05&drift_ppm=50"),
        "jitter": ("jitter alone (50+-10 ms)", "latency_ms=50&jitter_ms=10"),
        "loss": ("loss alone (50 ms, 5 %)", "latency_ms=50&loss=0.05"),
        "mismatch": ("mismatch + noise alone (50 ms)", "latency_ms=50&mismatch=0.2&noise_q=0.0005"),
        "mismatch0": ("mismatch + noise, no latency", "latency_ms=0&mismatch=0.2&noise_q=0.0005"),
    }
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in cases]
    if unknown:
        parser.error(f"--cases: unknown {unknown}; known: {', '.join(cases)}")
    for key in chosen:
        name, spec = cases[key]
        robot = f"emulated?{spec}&{base}"
        (synced, synced_steps), _, _ = twin_run(robot, args.duration, sync=True)
        (open_loop, open_steps), _, _ = twin_run(robot, args.duration, sync=False)
        (o_synced, _), _, _ = twin_run(robot, args.duration, sync=True, oracle=True)
        (o_open, _), _, _ = twin_run(robot, args.duration, sync=False, oracle=True)
        print(f"    {name}:\n        synchronized {synced * 1e3:6.2f} [{synced_steps * 1e3:6.2f}] mrad   open loop "
              f"{open_loop * 1e3:6.2f} [{open_steps * 1e3:6.2f}] mrad   ratio {synced / open_loop:.2f} "
              f"[{synced_steps / open_steps:.2f}]   told each arrival: synchronized {o_synced * 1e3:6.2f}, "
              f"open loop {o_open * 1e3:6.2f} mrad", flush=True)
        lead = args.lead_ms * 1e-3
        (s_synced, s_synced_steps), _, _ = twin_run(robot, args.duration, sync=True, lead=lead)
        (s_open, s_open_steps), _, _ = twin_run(robot, args.duration, sync=False, lead=lead)
        print(f"        scheduled ({args.lead_ms:g} ms lead): synchronized {s_synced * 1e3:6.2f} [{s_synced_steps * 1e3:6.2f}] "
              f"mrad   open loop {s_open * 1e3:6.2f} [{s_open_steps * 1e3:6.2f}] mrad   ratio to the unscheduled open loop "
              f"{s_synced / open_loop:.2f} [{s_synced_steps / open_steps:.2f}]", flush=True)
        ramped = f"{robot}&ramp_ms={args.ramp_ms:g}"
        (r_open, r_open_steps), _, _ = twin_run(ramped, args.duration, sync=False)
        (r_synced, r_synced_steps), _, _ = twin_run(ramped, args.duration, sync=True, lead=lead)
        (r_s_open, _), _, _ = twin_run(ramped, args.duration, sync=False, lead=lead)
        print(f"        {args.ramp_ms:g} ms servo ramp, scheduled: synchronized {r_synced * 1e3:6.2f} [{r_synced_steps * 1e3:6.2f}] mrad   "
              f"open loop {r_s_open * 1e3:6.2f} mrad   unscheduled open loop {r_open * 1e3:6.2f} [{r_open_steps * 1e3:6.2f}] mrad   "
              f"ratio {r_synced / r_open:.2f} [{r_synced_steps / r_open_steps:.2f}]", flush=True)
        if key == "issue" and not args.skip_identified:
            # Same seed and mismatch: the same hidden parameters, excited over a quiet 20 ms link.
            excite = f"emulated?latency_ms=20&mismatch=0.2&noise_q=0.0005&{base}&ramp_ms={args.ramp_ms:g}"
            params, fit_wall = identified_params(excite)
            (i_synced, i_synced_steps), _, _ = twin_run(ramped, args.duration, sync=True, lead=lead, params=params)
            (i_s_open, _), _, _ = twin_run(ramped, args.duration, sync=False, lead=lead, params=params)
            (i_open, i_open_steps), _, _ = twin_run(ramped, args.duration, sync=False, params=params)
            print(f"        identified twin (gains + masses fitted in {fit_wall:.0f} s), {args.ramp_ms:g} ms ramp, scheduled: "
                  f"synchronized {i_synced * 1e3:6.2f} [{i_synced_steps * 1e3:6.2f}] mrad   open loop {i_s_open * 1e3:6.2f} mrad   "
                  f"unscheduled open loop {i_open * 1e3:6.2f} [{i_open_steps * 1e3:6.2f}] mrad   ratio {i_synced / i_open:.3f} "
                  f"[{i_synced_steps / i_open_steps:.3f}]", flush=True)

    robot = "emulated?latency_ms=20&seed=1"
    _, with_shadow, steps = twin_run(robot, 5.0, sync=True, shadow=True, log_truth=False)
    _, without, _ = twin_run(robot, 5.0, sync=True, shadow=False, log_truth=False)
    print(f"(c) shadow veto: {(with_shadow - without) / steps * 1e3:.2f} ms per command "
          f"(control step {with_shadow / steps * 1e3:.2f} ms with, {without / steps * 1e3:.2f} ms without; 3-period roll-out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
