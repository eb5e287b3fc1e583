"""The extension's ``[settings]`` (carb ``/exts/vlatwin/...``) as plain values; no Kit import, so it is unit-tested."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

SETTINGS_ROOT = "/exts/vlatwin"
DEFAULTS = {"default_config": "configs/tabletop.yaml", "rt_subframes": 8, "warmup_updates": 20}


def resolve_config_path(value: str, ext_path: Path) -> str:
    """A config path from the settings: absolute as is; relative against the extension folder, then the
    folders above it (the repository root holds ``configs/``), never Kit's working directory."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    ext_path = Path(ext_path).resolve()
    for base in (ext_path, *ext_path.parents[:2]):
        if (base / path).is_file():
            return str(base / path)
    return str(ext_path / path)


def read_extension_settings(get: Callable[[str], object], ext_path: Path) -> dict:
    """``{"config", "rt_subframes", "warmup_updates"}`` from carb settings (``get(path)``), with defaults."""
    values = {}
    for key, default in DEFAULTS.items():
        value = get(f"{SETTINGS_ROOT}/{key}")
        values[key] = default if value is None else value
    return {
        "config": resolve_config_path(str(values["default_config"]), ext_path),
        "rt_subframes": max(1, int(values["rt_subframes"])),
        "warmup_updates": max(0, int(values["warmup_updates"])),
    }
