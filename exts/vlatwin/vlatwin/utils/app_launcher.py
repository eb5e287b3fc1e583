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
    return SimulationApp(launch_config(headless, kit_args))


#: Kit flags every vlatwin launch passes: stable ids let RTX Lidar points be labelled (objectId ->
#: prim path through StableIdMap), as isaacsim.sensors.rtx's own tests launch
#: ([IS] v5.1.0 source/extensions/isaacsim.sensors.rtx/config/extension.toml L147).
KIT_ARGS = ("--/rtx-transient/stableIds/enabled=true",)


def launch_config(headless: bool = True, extra_args: list[str] | None = None) -> dict:
    """The ``SimulationApp`` launch config vlatwin uses (also for tests/isaacsim).

    * ``fast_shutdown=False``: with the default True, ``close()`` ends the process inside Kit's shutdown
      (``--/app/fastShutdown`` is passed from this key, [IS] v5.1.0
      source/extensions/isaacsim.simulation_app/isaacsim/simulation_app/simulation_app.py L93, L400,
      ``close`` L763-845), so the exit code and any traceback still to be printed are lost.
    * ``enable_motion_bvh=True``: every 5.1 RTX Lidar example passes it (e.g. [IS] v5.1.0
      source/standalone_examples/api/isaacsim.sensors.rtx/rotating_lidar_rtx.py L22).
    """
    args = [*KIT_ARGS, *(a for a in (extra_args or []) if a not in KIT_ARGS)]
    return {"headless": headless, "fast_shutdown": False, "enable_motion_bvh": True, "extra_args": args}


def run_main(main: Callable[[], int], app=None) -> None:
    """Run ``main``; user errors print one line (exit 2), other errors their traceback; exit code kept.

    Everything is printed and flushed *before* ``app.close()``: even if Kit's shutdown ends the process,
    the message is out. The code is passed to ``sys.exit`` after a normal close.
    """
    import traceback

    from vlatwin.errors import VlatwinError

    code = 1
    try:
        code = main()
    except VlatwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - printed here because Kit's shutdown may never return
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if app is not None:
            app.close()
    sys.exit(code)
