"""The Twin panel: connect a robot, run the synchronized twin step by step, watch J, latch an e-stop.

All logic is in :class:`vlatwin.twin.session.TwinPanelModel` (Kit-free, unit-tested); this module only builds
the widgets and calls the model once per Kit update, so the window stays responsive while the twin runs.
"""

from __future__ import annotations

import asyncio

import omni.kit.app
import omni.ui as ui

from vlatwin.hardware.factory import ROBOT_FORMS
from vlatwin.twin.session import TwinPanelModel

# omni.ui colors are 0xAABBGGRR.
_ESTOP_STYLE = {"background_color": 0xFF1F1FD0, "color": 0xFFFFFFFF}
_ESTOP_LATCHED_STYLE = {"background_color": 0xFF0000FF, "color": 0xFFFFFFFF}


class TwinPanel:
    """Task config, policy and robot spec; Connect / Start / Stop; status line; J sparkline; E-STOP + Reset."""

    title = "Twin"

    def __init__(self, state: dict):
        self.state = state
        self.model = TwinPanelModel(config=state.get("twin_config", "configs/tasks/reach_ball.yaml"))
        self._task: asyncio.Task | None = None

    def build(self) -> None:
        with ui.VStack(spacing=4):
            with ui.HStack(height=22):
                ui.Label("Task config", width=90)
                self.config_field = ui.StringField()
                self.config_field.model.set_value(self.model.config)
            with ui.HStack(height=22):
                ui.Label("Policy", width=90)
                self.policy_field = ui.StringField()
                self.policy_field.model.set_value(self.model.policy)
            with ui.HStack(height=22):
                ui.Label("Robot", width=90, tooltip=ROBOT_FORMS)
                self.robot_field = ui.StringField()
                self.robot_field.model.set_value(self.model.robot)
            with ui.HStack(height=22):
                ui.Label(
                    "Lead [ms]", width=90,
                    tooltip="scheduled commands: each takes effect this long after it is sent, on the robot clock "
                    "(0: on arrival); above one control period + the link's largest one-way delay",
                )
                self.lead_field = ui.FloatField()
                self.lead_field.model.set_value(float(self.model.command_lead_ms))
            with ui.HStack(height=22):
                ui.Label("Log folder", width=90)
                self.out_field = ui.StringField()
                self.out_field.model.set_value(self.model.out_dir)
            with ui.HStack(height=26, spacing=4):
                ui.Button("Connect", clicked_fn=self._connect)
                ui.Button("Start", clicked_fn=self._start)
                ui.Button("Stop", clicked_fn=self._stop)
            with ui.HStack(height=32, spacing=4):
                self.estop_button = ui.Button("E-STOP", clicked_fn=self._estop, style=_ESTOP_STYLE)
                ui.Button("Reset", width=80, clicked_fn=self._reset_estop)
            self.status = ui.Label(self.model.status_line(), word_wrap=True)
            with ui.HStack(height=20):
                ui.Label("J", width=90)
                self.j_plot = ui.Label(
                    "", tooltip="J = integral of |q_robot - q_twin|^2 dt over the run (min..max scaled)"
                )
            with ui.HStack(height=20):
                ui.Label("RMS (0.5 s)", width=90)
                self.rms_plot = ui.Label("", tooltip="windowed RMS joint error [rad] (min..max scaled)")

    # ---------------------------------------------------------------- buttons
    def _read_fields(self) -> None:
        self.model.config = self.config_field.model.get_value_as_string()
        self.model.policy = self.policy_field.model.get_value_as_string()
        self.model.robot = self.robot_field.model.get_value_as_string()
        self.model.command_lead_ms = self.lead_field.model.get_value_as_float()
        self.model.out_dir = self.out_field.model.get_value_as_string()
        self.state["twin_config"] = self.model.config

    def _connect(self) -> None:
        self._read_fields()
        self.status.text = "connecting (loading the scene takes a few seconds) ..."
        asyncio.ensure_future(self._connect_next_update())

    async def _connect_next_update(self) -> None:
        """Connect after one app update, so that the window shows "connecting" while the scene loads."""
        await omni.kit.app.get_app().next_update_async()
        self.model.connect()
        self._refresh()

    def _start(self) -> None:
        self.status.text = self.model.start()
        if self.model.running and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._run())

    def _stop(self) -> None:
        self.status.text = self.model.stop()
        self._refresh()

    def _estop(self) -> None:
        self.model.estop()
        self._refresh()

    def _reset_estop(self) -> None:
        self.model.reset_estop()
        self._refresh()

    # --------------------------------------------------------- update callback
    async def _run(self) -> None:
        """One ``model.update()`` per Kit update: the due control steps, then back to the app."""
        app = omni.kit.app.get_app()
        while self.model.running:
            self.model.update()
            self._refresh()
            await app.next_update_async()
        self._refresh()

    def _refresh(self) -> None:
        self.status.text = self.model.status_line()
        self.j_plot.text = self.model.j_sparkline()
        self.rms_plot.text = self.model.rms_sparkline()
        self.estop_button.text = "E-STOP (latched)" if self.model.estop_latched else "E-STOP"
        self.estop_button.set_style(_ESTOP_LATCHED_STYLE if self.model.estop_latched else _ESTOP_STYLE)

    def destroy(self) -> None:
        """Window closing: end a running twin (the robot is disconnected, the log written)."""
        self.model.running = False
        if self.model.connected:
            self.model.stop()
