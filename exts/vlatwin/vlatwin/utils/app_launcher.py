"""Start Isaac Sim's ``SimulationApp`` only when the isaacsim backend is asked for.

Standalone scripts call :func:`launch_app` right after argparse and before importing anything that
may pull in omni or Kit's pxr (``import vlatwin`` itself needs numpy only, so it is safe here).
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def launch_app(backend: str, *, headless: bool = True, script: str = "the script", extra_args: list[str] | None = None):
    """Return a running ``SimulationApp`` for ``backend == "isaacsim"``, else None.

    The vlatwin extension folder is added and enabled, so the app has the same code the pip install
    has. Exits with a one-line message when Isaac Sim's python is not the one running.
    """
    if backend != "isaacsim":
        return None
    try:
        from isaacsim import SimulationApp
    except ImportError:
        sys.exit(f"error: --backend isaacsim needs Isaac Sim's python (./python.sh {script} ...)")
    from pathlib import Path

    exts = Path(__file__).resolve().parents[3]  # .../exts (folder holding the vlatwin extension)
    kit_args = ["--ext-folder", str(exts), "--enable", "vlatwin", *(extra_args or [])]
    return SimulationApp({"headless": headless, "extra_args": kit_args})


def run_main(main: Callable[[], int], app=None) -> None:
    """Run ``main``; user errors print one line (exit 2); the app is closed whatever happens."""
    from vlatwin.errors import VlatwinError

    code = 1
    try:
        code = main()
    except VlatwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    finally:
        if app is not None:
            app.close()
    sys.exit(code)
