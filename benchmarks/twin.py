"""The synchronized twin, measured in one run each:

(a) the robot state stream at 1 kHz over loopback through ``vlatwin agent`` vs a raw ZMQ PUB/SUB echo of
    the same bytes: p50 / p99 added latency (goal: p99 <= 2x the raw p99; ``benchmarks/twin_link.py``);
(b) twin fidelity: RMS over a scripted motion (``excite``) of |q_twin - q_robot_true| (the emulated robot's
    hidden truth, same host time) for the synchronized twin vs the open-loop twin, on the issue's link
    (50 +- 10 ms, 5 % loss) with 20 % hidden parameter mismatch and encoder noise, and on a link without
    jitter or loss (what re-synchronization can fix: mismatch). Goal: synchronized <= 10 % of open loop;
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


def twin_run(robot: str, duration: float, *, sync: bool, shadow: bool = True, log_truth: bool = True):
    from vlatwin.twin.runlog import read_runlog
    from vlatwin.twin.runner import TwinRunner, TwinSettings

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "run.mcap"
        runner = TwinRunner(
            CONFIG, TwinSettings(policy="excite?amplitude=0.3&period=4", robot=robot, duration_s=duration, sync=sync, shadow=shadow,
                                 log_truth=log_truth),
            log_path=log,
        )
        t0 = time.perf_counter()
        result = runner.run()
        wall = time.perf_counter() - t0
        rms = None
        if log_truth:
            errors = np.array([m["error_q"] for _, m in read_runlog(log).messages("/truth")])[:, :7]
            rms = float(np.sqrt((errors**2).sum(axis=1).mean()))
    return rms, wall, result.steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="scripted motion length [s] for (b)")
    parser.add_argument("--link-samples", type=int, default=2000)
    args = parser.parse_args(argv)

    from twin_link import run as link_run

    link = link_run(n=args.link_samples)
    print("(a) state stream at 1 kHz, loopback:")
    for key, value in link.items():
        print(f"    {key}: {value:.3f}" if isinstance(value, float) else f"    {key}: {value}")

    print(f"(b) twin fidelity over a {args.duration:g} s multi-sine motion (RMS |q_twin - q_true| over 7 arm joints):")
    cases = {
        "50+-10 ms, 5 % loss, 20 % mismatch, noise": "emulated?latency_ms=50&jitter_ms=10&loss=0.05&mismatch=0.2&noise_q=0.0005&offset_s=0.3&drift_ppm=50&seed=1",
        "50 ms, 20 % mismatch, noise (no jitter/loss)": "emulated?latency_ms=50&mismatch=0.2&noise_q=0.0005&offset_s=0.3&seed=1",
    }
    for name, robot in cases.items():
        synced, _, _ = twin_run(robot, args.duration, sync=True)
        open_loop, _, _ = twin_run(robot, args.duration, sync=False)
        print(f"    {name:46s} synchronized {synced * 1e3:7.2f} mrad   open loop {open_loop * 1e3:7.2f} mrad   "
              f"ratio {synced / open_loop:.2f} (goal <= 0.10)")

    robot = "emulated?latency_ms=20&seed=1"
    _, with_shadow, steps = twin_run(robot, 5.0, sync=True, shadow=True, log_truth=False)
    _, without, _ = twin_run(robot, 5.0, sync=True, shadow=False, log_truth=False)
    print(f"(c) shadow veto: {(with_shadow - without) / steps * 1e3:.2f} ms per command "
          f"(control step {with_shadow / steps * 1e3:.2f} ms with, {without / steps * 1e3:.2f} ms without; 3-period roll-out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
