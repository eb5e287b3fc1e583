"""Backend factory: imports implementations lazily so unused engines are never imported."""

from __future__ import annotations

from vlatwin.errors import VlatwinError
from vlatwin.sim.base import SimBackend

BACKENDS = ("newton", "isaacsim")


def make_backend(name: str = "newton", **kwargs) -> SimBackend:
    """Create a backend by name (``newton`` or ``isaacsim``); kwargs go to its constructor."""
    if name == "newton":
        from vlatwin.sim.newton import SimBackendNewton

        return SimBackendNewton(**kwargs)
    if name == "isaacsim":
        from vlatwin.sim.isaacsim import SimBackendIsaac

        return SimBackendIsaac(**kwargs)
    raise VlatwinError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
