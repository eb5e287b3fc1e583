"""Shared fixtures and marker-based skips."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"
USD_ASSETS = REPO_ROOT / "usd_assets"


def _has(module: str) -> bool:
    """True for an installed regular package (a bare namespace folder of the same name does not count)."""
    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


def pytest_collection_modifyitems(config, items):
    skip_isaac = pytest.mark.skip(reason="needs Isaac Sim (Kit); run with Isaac Sim's python.sh")
    skip_newton = pytest.mark.skip(reason="needs the newton extra: pip install -e 'exts/vlatwin[newton]'")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    has_newton = _has("newton") and _has("warp")
    for item in items:
        path = Path(str(item.fspath))
        if "isaacsim" in path.parts:
            item.add_marker(pytest.mark.isaacsim)
        elif "integration" in path.parts:
            item.add_marker(pytest.mark.integration)
        elif "unit" in path.parts:
            item.add_marker(pytest.mark.unit)
        if "isaacsim" in item.keywords and not _has("isaacsim"):
            item.add_marker(skip_isaac)
        if "integration" in item.keywords and not has_newton:
            item.add_marker(skip_newton)
        if "gpu" in item.keywords and not os.environ.get("VLATWIN_TEST_GPU"):
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tabletop_config():
    from vlatwin.config.loader import load_config

    return load_config(CONFIGS / "tabletop.yaml")


@pytest.fixture(scope="session")
def tabletop_usda(tmp_path_factory, tabletop_config) -> Path:
    """The default scene, built once per session."""
    from vlatwin.usd.scene_builder import write_scene

    return write_scene(tabletop_config.scene, tmp_path_factory.mktemp("scene") / "tabletop.usda")
