"""User-facing errors.

A :class:`VlatwinError` carries one line that names the file/field and the fix. The CLI prints it
without a traceback and exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class VlatwinError(Exception):
    """An error caused by user input (config, file, stage), reported as one line."""

    exit_code = 2


class ConfigError(VlatwinError):
    """A config file failed validation."""


class StageError(VlatwinError):
    """A USD stage cannot be used (broken file, missing physics, unsupported collider...)."""


class MissingDependencyError(VlatwinError):
    """An optional engine is not installed; the message carries the pip command."""
