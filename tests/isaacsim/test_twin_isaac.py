"""The synchronized twin on the Isaac backend (PhysX) against the emulated robot (a Newton instance), and the
Twin panel's model stepping it as the Kit update callback would (needs Kit and Newton; skipped here).

Run with Isaac Sim's python:  ./python.sh -m pytest tests/isaacsim/test_twin_isaac.py
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("isaacsim")

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "tasks" / "reach_ball.yaml"
ROBOT = "emulated?latency_ms=20&jitter_ms=5&offset_s=0.2&mismatch=0.1&noise_q=0.0005&seed=1"
POLICY = "excite?amplitude=0.3&period=3"  # reads joint state only: the twin's cameras are Newton-rendered


@contextmanager
def _twin_on_isaac(settings):
    """``settings`` for a twin on SimBackendIsaac. Until ``TwinSettings.backend`` exists the twin's simulator
    is swapped while ``load_task_setup`` runs (only then: the emulated robot keeps loading Newton)."""
    if "backend" in settings.__dataclass_fields__:
        yield replace(settings, backend="isaacsim")
        return
    from vlatwin.record import recorder

    def load_isaac(stage_path, physics):
        from vlatwin.sim.factory import make_backend

        sim = make_backend("isaacsim", physics_dt=physics["dt"], solver_iterations=physics["iterations"])
        sim.load(stage_path)
        return sim

    newton_load = recorder.load_sim
    recorder.load_sim = load_isaac
    try:
        yield settings
    finally:
        recorder.load_sim = newton_load


def _truth_rms(log: Path) -> float:
    from vlatwin.twin.runlog import read_runlog

    errors = np.array([m["error_q"] for _, m in read_runlog(log).messages("/truth")])[:, :7]
    return float(np.sqrt((errors**2).sum(axis=1).mean()))


def test_one_second_twin_on_isaac_tracks_the_emulated_robot(tmp_path, kit_app):
    if True:
        pytest.importorskip("newton")  # the emulated robot is a second (Newton) simulator
        from vlatwin.hardware.factory import make_robot
        from vlatwin.twin.runner import TwinRunner, TwinSettings
        from vlatwin.twin.session import TwinPanelModel

        robots = []

        def robot_factory(**kw):
            robots.append(make_robot(ROBOT, **kw))
            return robots[-1]

        base = TwinSettings(policy=POLICY, robot=ROBOT, duration_s=1.0, log_truth=True)
        with _twin_on_isaac(base) as settings:
            runner = TwinRunner(CONFIG, settings, log_path=tmp_path / "run" / "run.mcap", robot_factory=robot_factory)
        assert runner.setup.sim.name == "isaacsim"
        result = runner.run(html=tmp_path / "run" / "summary.html")

        # The robot's joint order is the twin's (the runner does not map names).
        twin_joints = [p.rsplit("/", 1)[-1] for p in runner.joint_names]
        assert [p.rsplit("/", 1)[-1] for p in robots[0].joint_names] == twin_joints
        assert result.steps == round(1.0 * runner.task.control_hz)
        assert not result.summary["estopped"] and result.summary["resyncs"] > 0
        assert result.summary["clock_offset_s"] == pytest.approx(0.2, abs=0.01)
        assert result.html.is_file()
        # Synchronized: the PhysX twin stays near the robot's hidden true state.
        assert _truth_rms(result.log) < 0.05

        # The same run stepped by the Twin panel's model, one update at a time.
        def runner_factory(config, settings, log_path):
            with _twin_on_isaac(settings) as isaac_settings:
                return TwinRunner(config, isaac_settings, log_path=log_path)

        model = TwinPanelModel(
            config=str(CONFIG),
            policy=POLICY,
            robot=ROBOT,
            out_dir=str(tmp_path / "panel"),
            duration_s=1.0,
            runner_factory=runner_factory,
        )
        model.connect()
        assert model.connected, model.status_line()
        model.start()
        updates = 0
        while model.running and updates < 10_000:
            model.update()
            updates += 1
            if updates == 3:
                model.estop()
                assert model.stepper.runner.safety.estopped
                model.reset_estop()
        assert model.error is None, model.status_line()
        assert model.result.steps == result.steps and model.result.log.is_file()
