"""vlatwin: robot digital twins with photoreal sensor simulation.

``import vlatwin`` needs numpy only. Everything that pulls in pxr, Newton/Warp or Kit is imported
lazily by the submodule that uses it (``vlatwin.usd``, ``vlatwin.sim.newton``, ``vlatwin.extension``).
"""

from __future__ import annotations

import importlib
from typing import Any

from vlatwin.errors import VlatwinError

__version__ = "0.1.0"

# PEP 562 lazy exports: name -> "module:attribute". Keeps heavy engines out of `import vlatwin`.
_LAZY_EXPORTS = {
    "load_config": "vlatwin.config.loader:load_config",
    "build_scene": "vlatwin.usd.scene_builder:build_scene",
    "check_stage": "vlatwin.usd.check:check_stage",
    "make_backend": "vlatwin.sim.factory:make_backend",
    "JointCommand": "vlatwin.sim.types:JointCommand",
    "SimState": "vlatwin.sim.types:SimState",
    "SimModelInfo": "vlatwin.sim.types:SimModelInfo",
}

__all__ = ["VlatwinError", "__version__", *_LAZY_EXPORTS]


def __getattr__(name: str) -> Any:
    target = _LAZY_EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'vlatwin' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
