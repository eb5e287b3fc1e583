"""Reads the version from config/extension.toml so the Kit extension and the pip package share one."""

import tomllib
from pathlib import Path

from setuptools import setup

_EXT_TOML = Path(__file__).resolve().parent / "config" / "extension.toml"
setup(version=tomllib.loads(_EXT_TOML.read_text())["package"]["version"])
