"""Validated configuration models and the one YAML loader for ``configs/*.yaml``."""
