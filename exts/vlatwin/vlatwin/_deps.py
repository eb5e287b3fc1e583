"""Optional-dependency gate: one place that turns a missing engine into an install hint."""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from types import ModuleType

from vlatwin.errors import MissingDependencyError

#: import name -> the extra that installs it
_EXTRA_FOR_MODULE = {
    "pxr": "usd",
    "scipy": "usd",
    "newton": "newton",
    "warp": "newton",
    "pydantic": "",
    "yaml": "",
}


def is_available(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, *, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise a one-line error with the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA_FOR_MODULE.get(module.split(".")[0], "") if extra is None else extra
        target = f"'vlatwin[{extra}]'" if extra else "vlatwin"
        raise MissingDependencyError(
            f"{module} is not installed ({exc}); install it with: pip install {target}"
        ) from exc
