"""The vlatwin window: a scrolling stack of collapsable panels."""

from __future__ import annotations

import omni.ui as ui

from vlatwin.ui.panels import PANELS


class VlatwinWindow(ui.Window):
    def __init__(self, title: str, settings: dict | None = None):
        super().__init__(title, width=420, height=520, visible=False, dockPreference=ui.DockPreference.LEFT_BOTTOM)
        # Shared by the panels: "config" (resolved against the extension folder), "rt_subframes", "warmup_updates".
        self._state: dict = dict(settings or {})
        self._panels = [panel(self._state) for panel in PANELS]
        self.frame.set_build_fn(self._build)

    def _build(self) -> None:
        with ui.ScrollingFrame():
            with ui.VStack(spacing=6):
                for panel in self._panels:
                    with ui.CollapsableFrame(panel.title, height=0):
                        panel.build()

    def destroy(self) -> None:
        for panel in self._panels:
            close = getattr(panel, "destroy", None)
            if close is not None:
                close()  # e.g. the Twin panel disconnects its robot and writes its log
        super().destroy()
