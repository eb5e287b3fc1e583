"""The Twin panel's Kit-free model: status line, J sparkline, latched e-stop, non-blocking stepping; and a short
real run against the emulated robot (virtual clock) that must match ``TwinRunner.run`` exactly."""

from __future__ import annotations

import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from vlatwin.twin.session import SPARK_CHARS, TwinPanelModel, format_status, sparkline

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "tasks" / "reach_ball.yaml"


# ------------------------------------------------------------------ formatting
def test_sparkline_scales_between_min_and_max():
    assert sparkline([]) == ""
    assert sparkline([1.0, 1.0, 1.0]) == SPARK_CHARS[0] * 3
    line = sparkline([0.0, 0.5, 1.0])
    assert line[0] == SPARK_CHARS[0] and line[-1] == SPARK_CHARS[-1] and len(line) == 3
    assert len(sparkline(range(100), width=10)) == 10
    assert sparkline([0.0, float("nan"), 1.0]) == SPARK_CHARS[0] + SPARK_CHARS[-1]


def test_status_line_shows_step_J_rms_offset_and_estop():
    status = {
        "step": 7,
        "total": 20,
        "J": 1.234e-4,
        "rms": 0.0123,
        "alarm": True,
        "clock_offset_s": 0.37,
        "estopped": False,
    }
    line = format_status(status, connected=True, running=True, estop_latched=False)
    for part in ("running", "step 7/20", "J=0.000123", "rms=0.0123 rad ALARM", "offset=+370.0 ms", "e-stop clear"):
        assert part in line, (part, line)
    assert "offset=--" in format_status(
        {**status, "clock_offset_s": None}, connected=True, running=False, estop_latched=False
    )
    assert format_status(None, connected=False, running=False, estop_latched=False).startswith("not connected")
    latched = format_status(status, connected=True, running=False, estop_latched=True, estop_reason="operator: button")
    assert "E-STOP (operator: button)" in latched


# ------------------------------------------------------------ with a fake twin
class FakeStepper:
    """Stands in for TwinStepper: ``total`` steps, a virtual or wall clock, records what the model asked."""

    def __init__(self, runner, *, html=None, total=5, virtual=True, fail_at=None, watchdog_at=None):
        self.runner, self.html, self.total, self.virtual = runner, html, total, virtual
        self.fail_at, self.watchdog_at = fail_at, watchdog_at
        self.k = 0
        self.started = self.stopped = self.done = False
        self.estopped, self.estop_reason = False, None
        self.calls: list[str] = []
        self.wall_due = 0

    def start(self):
        self.started = True
        self.calls.append("start")

    def due(self):
        if self.done:
            return False
        if self.virtual:
            return True
        if self.wall_due > 0:
            self.wall_due -= 1
            return True
        return False

    def step(self):
        if self.fail_at is not None and self.k == self.fail_at:
            raise RuntimeError("boom")
        self.k += 1
        if self.watchdog_at is not None and self.k == self.watchdog_at:
            self.estopped, self.estop_reason = True, "watchdog: no robot state for 160 ms"
        self.done = self.k >= self.total
        return self.status()

    def status(self):
        return {
            "step": self.k,
            "total": self.total,
            "J": 1e-3 * self.k**2,
            "rms": 0.01 * self.k,
            "alarm": False,
            "clock_offset_s": 0.0,
            "estopped": self.estopped,
            "estop_reason": self.estop_reason,
            "done": self.done,
        }

    def stop(self):
        self.stopped = True
        self.calls.append("stop")

    def estop(self, reason):
        self.estopped, self.estop_reason = True, reason
        self.calls.append(f"estop:{reason}")

    def reset_estop(self):
        self.estopped, self.estop_reason = False, None
        self.calls.append("reset_estop")


def _model(tmp_path, **stepper_kw):
    made = []

    def stepper_factory(runner, html=None):
        made.append(FakeStepper(runner, html=html, **stepper_kw))
        return made[-1]

    model = TwinPanelModel(
        config="c.yaml",
        out_dir=str(tmp_path / "out"),
        runner_factory=lambda config, settings, log: (config, settings, log),
        stepper_factory=stepper_factory,
    )
    return model, made


def test_connect_start_update_runs_to_the_end_and_stops(tmp_path):
    model, made = _model(tmp_path, total=5)
    assert "not connected" in model.start()
    model.policy, model.robot = " excite ", "emulated?latency_ms=20"
    model.connect()
    (stepper,) = made
    config, settings, log = stepper.runner
    assert (config, settings.policy, settings.robot) == ("c.yaml", "excite", "emulated?latency_ms=20")
    assert settings.command_lead_s is None
    assert log == tmp_path / "out" / "run001" / "run.mcap"
    assert "already connected" in model.connect()
    model.start()
    while model.running:
        model.update()
    assert stepper.calls == ["start", "stop"] and stepper.k == 5
    assert not model.connected and len(model.j_history) == 5
    assert model.j_sparkline()[-1] == SPARK_CHARS[-1]
    assert "step 5/5" in model.status_line()
    model.command_lead_ms = 140.0
    model.connect()  # a new run gets a new folder
    assert made[-1].runner[2] == tmp_path / "out" / "run002" / "run.mcap"
    assert made[-1].runner[1].command_lead_s == 0.14


def test_update_does_not_block_virtual_budget_and_wall_catch_up(tmp_path):
    model, made = _model(tmp_path, total=10**9)
    model.budget_s = 0.005
    model.connect()
    model.start()
    t0 = time.perf_counter()
    model.update()
    assert time.perf_counter() - t0 < 0.5 and 0 < made[0].k < 10**9
    wall, made_w = _model(tmp_path / "w", total=100, virtual=False)
    wall.connect()
    wall.start()
    wall.update()
    assert made_w[0].k == 0  # nothing due yet: returns at once
    made_w[0].wall_due = 10
    wall.update()
    assert made_w[0].k == wall.max_catch_up


def test_estop_is_latched_until_reset(tmp_path):
    model, made = _model(tmp_path, total=100)
    model.budget_s = 0.0  # one step per update
    model.estop()  # before connecting: the latch holds and the new run starts stopped
    assert model.estop_latched and "E-STOP (operator: E-STOP button)" in model.status_line()
    model.connect()
    assert made[0].calls == ["start", "estop:operator: E-STOP button"]
    assert "Reset first" in model.start() and not model.running
    model.estop("again")  # a second press keeps the first reason
    assert model.estop_reason == "operator: E-STOP button"
    model.reset_estop()
    assert not model.estop_latched and made[0].calls[-1] == "reset_estop"
    model.start()
    model.update()
    model.estop()  # while running: latched at the runner at once; the loop keeps following the robot
    assert model.running and model.estop_latched and made[0].estopped
    model.update()
    assert made[0].estopped and "E-STOP" in model.status_line()
    model.stop()
    assert model.estop_latched  # still latched after the run: the next Connect starts stopped


def test_runner_estop_latches_the_panel(tmp_path):
    """A watchdog e-stop inside the runner needs the same explicit Reset as the button."""
    model, _ = _model(tmp_path, total=100, watchdog_at=3)
    model.connect()
    model.start()
    model.budget_s = 0.0  # one step per update
    for _ in range(3):
        model.update()
    assert model.estop_latched and "watchdog" in model.estop_reason
    model.stop()
    model.connect()
    assert "Reset first" in model.start()


def test_a_failing_step_ends_the_run_and_shows_the_error(tmp_path):
    model, made = _model(tmp_path, total=100, fail_at=2)
    model.connect()
    model.start()
    model.update()
    assert not model.running and made[0].stopped
    assert "RuntimeError: boom" in model.status_line()


def test_connect_error_is_shown_not_raised(tmp_path):
    def bad_factory(config, settings, log):
        from vlatwin.errors import VlatwinError

        raise VlatwinError("no such config")

    model = TwinPanelModel(out_dir=str(tmp_path), runner_factory=bad_factory)
    assert "error: no such config" in model.connect()
    assert not model.connected


# ------------------------------------------------- a real run, emulated robot
@pytest.mark.skipif(not (find_spec("newton") and find_spec("mcap")), reason="needs the newton extra and mcap")
def test_panel_model_runs_the_emulated_twin_like_twin_runner_run(tmp_path):
    """0.5 s (10 control steps) through the panel model, step by step, give the same J as TwinRunner.run."""
    from vlatwin.twin.runner import TwinRunner, TwinSettings

    robot = "emulated?latency_ms=20&offset_s=0.2&seed=1"
    policy = "excite?amplitude=0.3&period=3"
    model = TwinPanelModel(
        config=str(CONFIG), policy=policy, robot=robot, out_dir=str(tmp_path / "panel"), duration_s=0.5
    )
    model.connect()
    assert model.connected, model.status_line()
    model.start()
    model.update()
    assert model.last_status["step"] >= 1
    model.estop()  # mid-run: latched, logged, robot stopped
    assert model.stepper.runner.safety.estopped
    model.reset_estop()
    assert not model.stepper.runner.safety.estopped
    model.stop()
    assert model.result.log.is_file() and model.result.html.is_file()
    from vlatwin.twin.runlog import read_runlog

    texts = [m["text"] for _, m in read_runlog(model.result.log).messages("/events")]
    assert any("e-stop: operator: E-STOP button" in t for t in texts), texts
    assert any("reset by the operator" in t for t in texts), texts

    # Uninterrupted, the stepped run and run() agree (virtual clock: deterministic).
    model = TwinPanelModel(
        config=str(CONFIG), policy=policy, robot=robot, out_dir=str(tmp_path / "panel2"), duration_s=0.5
    )
    model.connect()
    model.start()
    while model.running:
        model.update()
    stepped = model.result
    runner = TwinRunner(
        CONFIG, TwinSettings(policy=policy, robot=robot, duration_s=0.5), log_path=tmp_path / "run" / "run.mcap"
    )
    direct = runner.run()
    assert stepped.steps == direct.steps == 10
    assert stepped.summary["J"] == pytest.approx(direct.summary["J"], rel=1e-9, abs=1e-15)
    assert stepped.summary["resyncs"] == direct.summary["resyncs"]
