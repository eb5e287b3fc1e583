"""Kit entry point: the vlatwin window under Window > vlatwin (only Kit imports this module).

``import vlatwin`` never imports this file; Kit loads it through ``[[python.module]] name =
"vlatwin.extension"`` in config/extension.toml and instantiates :class:`VlatwinExtension`.
"""

from __future__ import annotations

from pathlib import Path

import omni.ext
import omni.kit.menu.utils
from omni.kit.menu.utils import MenuItemDescription

from vlatwin.ui.settings import read_extension_settings
from vlatwin.ui.window import VlatwinWindow

WINDOW_TITLE = "vlatwin"


class VlatwinExtension(omni.ext.IExt):
    """Adds the vlatwin window and its menu entry."""

    def on_startup(self, ext_id: str) -> None:
        import carb.settings
        import omni.kit.app

        self._ext_id = ext_id
        self._window: VlatwinWindow | None = None
        ext_path = Path(omni.kit.app.get_app().get_extension_manager().get_extension_path(ext_id))
        settings = carb.settings.get_settings()
        # RTX Lidar labels need stable ids; a GUI launch does not pass the flag the standalone launcher passes.
        settings.set("/rtx-transient/stableIds/enabled", True)
        self._settings = read_extension_settings(settings.get, ext_path)
        self._menu = [MenuItemDescription(name=WINDOW_TITLE, onclick_fn=self._toggle_window)]
        omni.kit.menu.utils.add_menu_items(self._menu, "Window")

    def _toggle_window(self) -> None:
        if self._window is None:
            self._window = VlatwinWindow(WINDOW_TITLE, self._settings)
        self._window.visible = not self._window.visible

    def on_shutdown(self) -> None:
        omni.kit.menu.utils.remove_menu_items(self._menu, "Window")
        if self._window is not None:
            self._window.destroy()
            self._window = None
