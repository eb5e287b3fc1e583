"""The control loop against the same work done by hand, in one run.

Loop: ``ControlLoop`` at 20 Hz control over 600 Hz physics with one 224x224 camera read every control
step (joint-position actions, no policy). Raw: the same backend calls written out (set command, advance
30 steps, read the state, refit, render the camera). Ratio goal >= 0.9x. Speed is never asserted in
tests; this prints what it measured on this machine (shared and noisy: compare numbers of one run).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def build(stage_path):
    from vlatwin.config.generate_cfg import CameraRandomizationCfg
    from vlatwin.config.scene_cfg import CameraCfg
    from vlatwin.sensors.camera.model import CameraModel
    from vlatwin.sensors.camera.newton_camera import CameraRendererNewton
    from vlatwin.sensors.camera.newton_sensor import CameraSensorNewton
    from vlatwin.sim.factory import make_backend
    from vlatwin.usd.check import open_stage

    sim = make_backend("newton", device="cpu")
    sim.load(stage_path)
    renderer = CameraRendererNewton(sim, open_stage(stage_path), shadows=True)
    cfg = CameraCfg(name="cam", position=(1.2, 0.0, 1.3), look_at=(0.4, 0.0, 0.8), resolution=(224, 224))
    model = CameraModel.from_cfg(cfg)
    renderer.add_camera("cam", model)
    sensor = CameraSensorNewton(renderer, cfg, model, None, ["rgb"], CameraRandomizationCfg(), None, renderer.instance_geometry)
    return sim, renderer, sensor, cfg


def targets(home, k):
    wave = 0.2 * np.sin(2 * np.pi * 0.5 * k * 0.05 + np.arange(len(home)))
    wave[7:] = 0.0
    return home + wave


def run_loop(stage_path, steps):
    from vlatwin.loop.control_loop import ControlLoop

    sim, _, sensor, _ = build(stage_path)
    loop = ControlLoop(sim, control_hz=20.0, sensors=[sensor])
    obs = loop.reset(seed=0)
    home = obs.state.joint_q.copy()
    for k in range(5):  # warm-up: kernels, buffers
        _, obs = loop.step(obs, targets(home, k))
    obs = loop.reset(seed=0)
    t0 = time.perf_counter()
    for k in range(steps):
        _, obs = loop.step(obs, targets(home, k))
    elapsed = time.perf_counter() - t0
    final = obs.state.joint_q
    sim.close()
    return steps / elapsed, final


def run_raw(stage_path, steps):
    from vlatwin.sdg.randomize import camera_pose
    from vlatwin.config.generate_cfg import CameraRandomizationCfg
    from vlatwin.sim.types import JointCommand

    sim, renderer, _, cfg = build(stage_path)
    T = camera_pose(cfg, CameraRandomizationCfg(), None)
    state = sim.reset(seed=0)
    home = state.joint_q.copy()
    for k in range(5):
        sim.set_command(JointCommand(target_q=targets(home, k)))
        sim.advance(30)
        renderer.refit()
        renderer.render("cam", T)
    state = sim.reset(seed=0)
    sim.refit_render_scene()
    renderer.render("cam", T)
    t0 = time.perf_counter()
    for k in range(steps):
        sim.set_command(JointCommand(target_q=targets(home, k)))
        sim.advance(30)
        state = sim.get_state()
        renderer.refit()
        renderer.render("cam", T)
    elapsed = time.perf_counter() - t0
    sim.close()
    return steps / elapsed, state.joint_q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="control steps per measurement (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: %(default)s)")
    args = parser.parse_args()
    from vlatwin.config.loader import load_config
    from vlatwin.usd.scene_builder import write_scene

    with tempfile.TemporaryDirectory() as tmp:
        stage = write_scene(load_config(REPO / "configs" / "tabletop.yaml").scene, Path(tmp) / "tabletop.usda")
        loop_rates, raw_rates = [], []
        for _ in range(args.rounds):
            raw, q_raw = run_raw(stage, args.steps)
            loop, q_loop = run_loop(stage, args.steps)
            raw_rates.append(raw)
            loop_rates.append(loop)
            if not np.allclose(q_raw, q_loop, atol=1e-6):
                print("warning: loop and raw runs ended in different states")
    loop, raw = max(loop_rates), max(raw_rates)
    print("loop benchmark: 20 Hz control / 600 Hz physics, one 224x224 RGB camera per control step, default cell")
    print(f"  loop: {loop:7.1f} control steps/s ({loop * 0.05:.2f}x real time)")
    print(f"  raw : {raw:7.1f} control steps/s ({raw * 0.05:.2f}x real time)")
    print(f"  ratio loop/raw: {loop / raw:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
