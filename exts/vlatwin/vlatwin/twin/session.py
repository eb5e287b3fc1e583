"""The twin loop one control step at a time, for a UI (the Kit "Twin" panel) that must not block.

:class:`TwinPanelModel` is everything the panel does, without Kit: the fields (task config, policy spec, robot
spec), Connect / Start / Stop, a latched operator E-STOP with an explicit Reset, the status line and a text
sparkline of J. The panel (``vlatwin.ui.twin_panel``) only wires widgets to it and calls :meth:`TwinPanelModel.update`
once per Kit update; ``update`` runs as many control steps as are due (wall clock: the control rate; virtual
clock: as many as fit in a small time budget) and returns at once.

:class:`TwinStepper` is the small adapter between the model and :class:`~vlatwin.twin.runner.TwinRunner`:
``start()`` / ``step() -> status dict`` / ``stop()``. When ``TwinRunner`` has its own ``start`` / ``step`` /
``stop`` methods they are used; until then the adapter runs the same bodies as ``TwinRunner.run`` (the only
place outside ``runner.py`` that touches the runner's private parts; keep it in step with ``run``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from vlatwin.errors import VlatwinError

__all__ = ["SPARK_CHARS", "TwinPanelModel", "TwinStepper", "format_status", "sparkline"]

SPARK_CHARS = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int = 48) -> str:
    """The last ``width`` values as block characters scaled between their min and max ('' when empty)."""
    vals = [float(v) for v in list(values)[-width:] if v is not None and math.isfinite(float(v))]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return SPARK_CHARS[0] * len(vals)
    top = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[round((v - lo) / (hi - lo) * top)] for v in vals)


def format_status(
    status: dict | None, *, connected: bool, running: bool, estop_latched: bool, estop_reason: str | None = None
) -> str:
    """One status line: connection, step, J, windowed RMS, clock offset, e-stop state."""
    s = status or {}
    head = "running" if running else ("connected" if connected else "not connected")
    parts = [head]
    if s.get("step") is not None:
        total = s.get("total")
        parts.append(f"step {s['step']}/{total}" if total else f"step {s['step']}")
    if s.get("J") is not None:
        parts.append(f"J={s['J']:.3g} rad²s")
    if s.get("rms") is not None:
        parts.append(f"rms={s['rms']:.3g} rad" + (" ALARM" if s.get("alarm") else ""))
    offset = s.get("clock_offset_s")
    parts.append("offset=--" if offset is None else f"offset={offset * 1e3:+.1f} ms")
    reason = estop_reason or s.get("estop_reason")
    if estop_latched or s.get("estopped"):
        parts.append(f"E-STOP ({reason})" if reason else "E-STOP")
    else:
        parts.append("e-stop clear")
    return "  |  ".join(parts)


class TwinStepper:
    """Drives a :class:`~vlatwin.twin.runner.TwinRunner` one control step per call (what the panel model runs
    from Kit's update callback without blocking the UI).

    Args:
        runner: a built runner (not started yet).
        html: the summary page :meth:`stop` writes (None: none).
    """

    def __init__(self, runner, *, html: str | Path | None = None):
        self.runner = runner
        self.html = html
        self.started = False
        self.stopped = False
        self.result = None

    @property
    def virtual(self) -> bool:
        return bool(self.runner.clock.is_virtual)

    @property
    def k(self) -> int:
        return int(getattr(self.runner, "_k", 0))

    @property
    def steps_cap(self) -> int:
        return int(getattr(self.runner, "steps_cap", 0))

    @property
    def done(self) -> bool:
        return bool(getattr(self.runner, "done", False))

    def due(self) -> bool:
        """A control step is due now (virtual clock: always; wall clock: its period has come)."""
        if not self.started or self.stopped or self.done:
            return False
        return self.virtual or self.runner.clock.now() >= self.runner.next_step_time()

    def start(self) -> None:
        if not self.started:
            self.runner.start()
            self.started = True

    def step(self) -> dict:
        """One control period; returns :meth:`status`. Call only while :meth:`due`."""
        if not self.started or self.stopped:
            raise VlatwinError("twin: step() before start() or after stop()")
        return self.status() if self.done else self.runner.step()

    def stop(self):
        """Disconnect the robot, close the log and the policy, write the summary; returns the TwinResult."""
        if self.stopped:
            return self.result
        self.stopped = True
        if not self.started:
            self.runner.setup.close()
            return None
        self.result = self.runner.stop(html=self.html)
        return self.result

    def estop(self, reason: str) -> None:
        if self.started and not self.stopped:
            self.runner.estop(reason)

    def reset_estop(self) -> None:
        if self.started and not self.stopped:
            self.runner.reset_estop()

    def status(self) -> dict:
        return self.runner.status()


def _default_runner_factory(config, settings, log_path):
    from vlatwin.twin.runner import TwinRunner

    return TwinRunner(config, settings, log_path=log_path)


class TwinPanelModel:
    """What the Twin panel does, without Kit.

    Life cycle: :meth:`connect` (build the twin, connect the robot, reset both, first clock sync) ->
    :meth:`start` (the update callback steps from now on) -> :meth:`stop` (disconnect, write the MCAP log and
    the HTML summary; Connect again for a new run). :meth:`estop` latches at once (with or without a run; a
    watchdog stop inside the runner latches it too) and only :meth:`reset_estop` clears it; Start is refused
    while it is latched. A running loop keeps stepping while latched (the safety gate rejects every command).

    Args:
        runner_factory: ``(config, TwinSettings, log_path) -> TwinRunner`` (tests pass fakes).
        stepper_factory: ``(runner, html=) -> TwinStepper``-like object.
        budget_s: virtual clock: control steps per :meth:`update` stop after this much wall time.
        max_catch_up: wall clock: at most this many overdue steps per :meth:`update`.
    """

    def __init__(
        self,
        *,
        config: str = "configs/tasks/reach_ball.yaml",
        policy: str = "excite?amplitude=0.3&period=3",
        robot: str = "emulated",
        out_dir: str = "out/twin",
        backend: str = "newton",
        duration_s: float | None = None,
        command_lead_ms: float = 0.0,
        runner_factory=None,
        stepper_factory=None,
        budget_s: float = 0.010,
        max_catch_up: int = 3,
        history: int = 120,
    ):
        self.config, self.policy, self.robot, self.out_dir = config, policy, robot, out_dir
        self.backend = backend
        self.duration_s = duration_s
        self.command_lead_ms = command_lead_ms
        """Scheduled commands: each takes effect this long [ms] after it is sent (0: on arrival)."""
        self._runner_factory = runner_factory or _default_runner_factory
        self._stepper_factory = stepper_factory or TwinStepper
        self.budget_s = float(budget_s)
        self.max_catch_up = int(max_catch_up)
        self.stepper = None
        self.running = False
        self.estop_latched = False
        self.estop_reason: str | None = None
        self.last_status: dict | None = None
        self.result = None
        self.error: str | None = None
        self.j_history: deque[float] = deque(maxlen=history)
        self.rms_history: deque[float] = deque(maxlen=history)
        self._run_index = 0

    @property
    def connected(self) -> bool:
        return self.stepper is not None and not self.stepper.stopped

    # ---------------------------------------------------------------- buttons
    def connect(self) -> str:
        """Build the twin and connect the robot (takes seconds: the scene loads). Returns the status line."""
        from vlatwin.twin.runner import TwinSettings

        if self.connected:
            return self._say("already connected: Stop first")
        self.error, self.result, self.last_status = None, None, None
        self.j_history.clear()
        self.rms_history.clear()
        lead = float(self.command_lead_ms or 0.0)
        settings = TwinSettings(
            policy=self.policy.strip(), robot=self.robot.strip() or "emulated", duration_s=self.duration_s,
            command_lead_s=lead * 1e-3 if lead > 0 else None,
        )
        if self.backend != "newton":
            try:
                settings = replace(settings, backend=self.backend)
            except TypeError:
                return self._fail(
                    VlatwinError(
                        f"twin on the {self.backend} backend needs TwinSettings.backend (not in this vlatwin yet)"
                    )
                )
        out = self._next_out_dir()
        try:
            runner = self._runner_factory(self.config.strip(), settings, out / "run.mcap")
            stepper = self._stepper_factory(runner, html=out / "summary.html")
            stepper.start()
        except Exception as exc:  # noqa: BLE001 - shown in the panel, the UI stays up
            return self._fail(exc)
        self.stepper = stepper
        if self.estop_latched:  # latched before connecting: the new run starts stopped
            stepper.estop(self.estop_reason)
        self.last_status = stepper.status()
        return self.status_line()

    def start(self) -> str:
        if not self.connected:
            return self._say("not connected: Connect first")
        if self.estop_latched and not self.running:
            return self._say("E-STOP latched: Reset first")
        if self.stepper.done:
            return self._say("run finished: Stop writes the log, then Connect for a new run")
        self.running = True
        self.error = None
        return self.status_line()

    def stop(self) -> str:
        """End the run: disconnect, close the log, write the summary."""
        self.running = False
        if self.stepper is None or self.stepper.stopped:
            return self.status_line()
        try:
            self.result = self.stepper.stop()
        except Exception as exc:  # noqa: BLE001
            return self._fail(exc)
        return self.status_line()

    def estop(self, reason: str = "E-STOP button") -> str:
        """Latch the e-stop now: the safety gate rejects every command and the robot is told to stop.

        A running loop goes on (as ``TwinRunner.run`` does after a watchdog stop): the twin keeps following the
        stopping robot and the status stays live; nothing moves the robot again until :meth:`reset_estop`.
        """
        self.estop_latched = True
        self.estop_reason = self.estop_reason or f"operator: {reason}"
        if self.connected:
            try:
                self.stepper.estop(self.estop_reason)
            except Exception as exc:  # noqa: BLE001 - the latch holds even if the robot did not answer
                self.error = f"e-stop sent with an error: {exc}"
        return self.status_line()

    def reset_estop(self) -> str:
        """Explicit reset of the latched e-stop (the run stays paused: press Start to go on)."""
        if not self.estop_latched and not (self.last_status or {}).get("estopped"):
            return self.status_line()
        if self.connected:
            try:
                self.stepper.reset_estop()
                self.last_status = self.stepper.status()
            except Exception as exc:  # noqa: BLE001
                return self._fail(exc)
        self.estop_latched = False
        self.estop_reason = None
        return self.status_line()

    # ---------------------------------------------------------- update callback
    def update(self) -> dict | None:
        """Run the control steps that are due now, never blocking for long; call once per Kit update."""
        if not self.running or not self.connected:
            return self.last_status
        stepper = self.stepper
        t_end = time.perf_counter() + self.budget_s
        steps = 0
        try:
            while stepper.due():
                status = stepper.step()
                self._record(status)
                steps += 1
                if status.get("estopped") and not self.estop_latched:
                    # A stop from the runner (watchdog) latches the panel too: it needs the same explicit reset.
                    self.estop_latched = True
                    self.estop_reason = status.get("estop_reason") or "runner e-stop"
                if status.get("done"):
                    self.running = False
                    self.stop()
                    break
                if stepper.virtual:
                    if time.perf_counter() >= t_end:
                        break
                elif steps >= self.max_catch_up:
                    break
        except Exception as exc:  # noqa: BLE001 - a failing step ends the run, the UI stays up
            self.running = False
            self._fail(exc)
            try:
                stepper.stop()
            except Exception as close_exc:  # noqa: BLE001 - keep the step's error, note the close's
                self.error += f" (and closing the run: {close_exc})"
        return self.last_status

    # ------------------------------------------------------------------- views
    def status_line(self) -> str:
        line = format_status(
            self.last_status,
            connected=self.connected,
            running=self.running,
            estop_latched=self.estop_latched,
            estop_reason=self.estop_reason,
        )
        if self.error:
            line += f"  |  error: {self.error}"
        elif self.result is not None and self.result.log is not None:
            line += f"  |  log {self.result.log}"
        return line

    def j_sparkline(self, width: int = 48) -> str:
        return sparkline(self.j_history, width)

    def rms_sparkline(self, width: int = 48) -> str:
        return sparkline(self.rms_history, width)

    # ----------------------------------------------------------------- helpers
    def _record(self, status: dict) -> None:
        self.last_status = status
        self.j_history.append(float(status.get("J") or 0.0))
        self.rms_history.append(float(status.get("rms") or 0.0))

    def _next_out_dir(self) -> Path:
        base = Path(self.out_dir)
        while True:
            self._run_index += 1
            out = base / f"run{self._run_index:03d}"
            if not (out / "run.mcap").exists():
                out.mkdir(parents=True, exist_ok=True)
                return out

    def _say(self, text: str) -> str:
        self.error = text
        return self.status_line()

    def _fail(self, exc: BaseException) -> str:
        self.error = str(exc) if isinstance(exc, VlatwinError) else f"{type(exc).__name__}: {exc}"
        return self.status_line()
