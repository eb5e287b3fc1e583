"""System identification, measured in one run:

(a) a fit of 7 joints x 4 parameters (armature, friction, drive damping, passive damping) from 10 s of an
    emulated robot's excitation, one joint at a time (hidden armature 0.03, friction 0.3, 20 % gain/mass
    mismatch; the last 20 % of a 12.5 s run is held out): wall time,
    rollouts and rollouts/s, simulated seconds per wall second, held-out error nominal vs identified;
(b) the Warp-tape gradient of the rollout cost against central finite differences of the same parameters
    (drive damping, armature, link masses): values and time per gradient;
(c) drive gains + link masses (28 parameters, 20 % hidden mismatch each) with the robot's drive efforts and
    from positions alone (``use_efforts=False``): relative error against the hidden truth (median, max, share
    within 2 %, for gains and masses apart), held-out error, wall time.

Printed, never asserted (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "tasks" / "reach_ball.yaml"
ROBOT = "emulated?mismatch=0.2&armature_add=0.03&friction_add=0.3&noise_q=0.0001&latency_ms=20&seed=3"


def record(path: Path, seconds: float, *, robot: str = ROBOT, sequential: float = 1.5, amplitude: float = 0.2) -> None:
    from vlatwin.twin.runner import TwinRunner, TwinSettings

    TwinRunner(CONFIG, TwinSettings(policy=f"excite?amplitude={amplitude}&sequential={sequential}", robot=robot, duration_s=seconds,
                                    log_truth=True), log_path=path).run()


def fit_case(log: Path, groups: str, max_evaluations: int, workers: int) -> None:
    from vlatwin.sysid.data import load_recording
    from vlatwin.sysid.fit import FitSettings, fit, predict
    from vlatwin.sysid.params import parse_groups

    rec = load_recording(log)
    t0 = time.perf_counter()
    result, pool = fit(rec, FitSettings(groups=parse_groups(groups), holdout=0.2, max_evaluations=max_evaluations, workers=workers))
    wall = time.perf_counter() - t0
    try:
        pred = predict(pool, rec, result, holdout=0.2)
        simulated = pool.seconds_simulated
    finally:
        pool.close()
    rows = pred["rows"]
    held = rec.t[rows] > rec.t[0] + 0.8 * rec.duration
    err = {k: float(np.sqrt(np.mean((pred[k][:, :7] - rec.q[rows][:, :7])[held] ** 2))) for k in ("nominal", "identified")}
    ident = sum(e.identifiable for e in result.estimates)
    print(f"(a) fit of {len(result.estimates)} parameters ({ident} identifiable) from {0.8 * rec.duration:.1f} s, {workers} workers: "
          f"{wall:.1f} s wall, {result.rollouts} rollouts ({result.rollouts / wall:.2f}/s), "
          f"{simulated / wall:.1f} simulated s per wall s, converged {result.converged}")
    print(f"    held-out RMS nominal {err['nominal'] * 1e3:.3f} mrad, identified {err['identified'] * 1e3:.3f} mrad "
          f"(ratio {err['nominal'] / max(err['identified'], 1e-12):.2f})")


GAINS_ROBOT = "emulated?mismatch=0.2&noise_q=0.0001&seed=3"


def gains_and_masses_case(log: Path, workers: int) -> None:
    from vlatwin.sysid.data import load_recording
    from vlatwin.sysid.fit import FitSettings, fit, predict
    from vlatwin.sysid.params import parse_groups
    from vlatwin.twin.runlog import read_runlog

    rec = load_recording(log)
    truth = read_runlog(log).messages("/truth/params")[0][1]
    print("(c) drive gains + link masses, 20 % hidden mismatch each (relative error against the truth):")
    for use_efforts in (True, False):
        t0 = time.perf_counter()
        result, pool = fit(rec, FitSettings(groups=parse_groups("drive_gains,masses"), holdout=0.2, workers=workers,
                                            use_efforts=use_efforts))
        wall = time.perf_counter() - t0
        try:
            pred = predict(pool, rec, result, holdout=0.2)
        finally:
            pool.close()
        pset = result.extra["pset"]
        errors = {"gains": [], "masses": []}
        inside = {"gains": [], "masses": []}
        for p, e in zip(pset.params, result.estimates):
            group = "masses" if p.field == "body_mass" else "gains"
            true = float(truth[p.field][p.index])
            errors[group].append(abs(e.value / true - 1))
            inside[group].append(e.ci95 is not None and e.ci95[0] <= true <= e.ci95[1])
        rows = pred["rows"]
        held = rec.t[rows] > rec.t[0] + 0.8 * rec.duration
        rms = {k: float(np.sqrt(np.mean((pred[k][:, :7] - rec.q[rows][:, :7])[held] ** 2))) for k in ("nominal", "identified")}
        words = "with the drive efforts" if use_efforts else "positions alone     "
        summary = "; ".join(f"{k} median {np.median(v):.1%} max {np.max(v):.1%} within 2 % {np.mean(np.array(v) <= 0.02):.0%}"
                            f" (truth inside the 95 % interval: {sum(inside[k])}/{len(v)})" for k, v in errors.items())
        print(f"    {words}: {summary}; held-out {rms['nominal'] * 1e3:.2f} -> {rms['identified'] * 1e3:.3f} mrad; "
              f"{wall:.0f} s", flush=True)


def gradient_case(stage: Path) -> None:
    from vlatwin.record.recorder import load_sim
    from vlatwin.sysid.gradients import TapeRollout, compare_with_finite_differences

    sim = load_sim(stage, {"dt": 1 / 600, "iterations": 4, "solver": "xpbd"})
    q0 = np.asarray(sim.reset(seed=0).joint_q, float)
    sim.close()
    rollout = TapeRollout(stage, physics_dt=1 / 600, iterations=4)
    target = q0.copy()
    target[:7] += 0.1
    targets = np.stack([q0, target, target])
    qd0 = np.zeros_like(q0)
    truth = {"joint_armature": np.full(len(q0), 0.02)}
    measured = rollout.joint_trajectory(truth, q0, qd0, targets, 50, 10)
    wrt = {"drive_damping": [0, 1, 3], "joint_armature": [0, 3, 5], "body_mass": [1, 3, 6]}
    # Compared around armature 0.01 (not 0: a one-sided difference from 0 over a 0.01 step measures curvature).
    base = {"joint_armature": np.full(len(q0), 0.01)}
    out = compare_with_finite_differences(rollout, base, q0, qd0, targets, 50, 10, measured, wrt)
    print("(b) tape gradient vs central finite differences (150 steps):")
    for name, (tape, fd, s_tape, s_fd) in out.items():
        idx = wrt[name]
        rel = np.max(np.abs(tape[idx] - fd[idx])) / max(np.max(np.abs(fd[idx])), 1e-30)
        print(f"    {name:15s} tape {np.array2string(tape[idx], precision=3)}  fd {np.array2string(fd[idx], precision=3)}  "
              f"max rel diff {rel:.1%}   tape {s_tape:.2f} s (all params) vs fd {s_fd:.2f} s ({2 * len(idx)} rollouts)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.5, help="excitation length [s] (the last 20 %% is held out)")
    parser.add_argument("--params", default="armature,friction,drive_damping,damping")
    parser.add_argument("--max-evaluations", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--skip-gains", action="store_true", help="skip (c) (two 28-parameter fits, minutes)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "run.mcap"
        record(log, args.seconds)
        if not args.skip_fit:
            fit_case(log, args.params, args.max_evaluations, args.workers)
        from vlatwin.sysid.data import load_recording

        gradient_case(load_recording(log).stage_path)
        if not args.skip_gains:
            gains_log = Path(tmp) / "gains.mcap"
            record(gains_log, args.seconds, robot=GAINS_ROBOT, sequential=1.5, amplitude=0.2)
            gains_and_masses_case(gains_log, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
