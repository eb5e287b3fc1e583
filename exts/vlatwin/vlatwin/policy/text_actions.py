"""Actions written as plain text by a general vision-language model (pure python/numpy).

Accepts what a prompted VLM tends to answer: ``[0.01, -0.02, 0.0, 0, 0, 0, 1]``, ``(0.01 -0.02 ...)``,
``dx=0.01 dy=-0.02 dz=0 droll=0 dpitch=0 dyaw=0 gripper=1``, ``1e-3``, and any of these surrounded by
words ("Sure! The action is [0.01, ...]."). Exactly ``dim`` numbers are required; NaN/Inf are rejected.

Numbers inside ``name=value`` / ``name: value`` pairs are taken by value only, so digits in the names
(``j1=0.1``) are not counted. When the text has a bracketed list, only the numbers inside the first
bracket pair with ``dim`` numbers are read, so surrounding text may mention other numbers.
"""

from __future__ import annotations

import re

import numpy as np

from vlatwin.errors import VlatwinError

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"
_NUMBER_RE = re.compile(rf"(?<![\w.])(?:{_NUMBER})(?![\w.])", re.IGNORECASE)
_PAIR_RE = re.compile(rf"[A-Za-z_][\w]*\s*[=:]\s*({_NUMBER})(?![\w.])", re.IGNORECASE)
_BRACKETS_RE = re.compile(r"[\[(]([^\[\]()]*)[\])]")


def _numbers(text: str) -> list[str]:
    pairs = _PAIR_RE.findall(text)
    if pairs:
        return pairs
    return _NUMBER_RE.findall(text)


def _short(text: str, limit: int = 80) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def parse_action_text(text: str, dim: int) -> np.ndarray:
    """The ``dim`` numbers in ``text`` as a float64 (dim,) action (one-line VlatwinError otherwise)."""
    if not isinstance(text, str):
        raise VlatwinError(f"action text must be a string, got {type(text).__name__}")
    if dim < 1:
        raise VlatwinError(f"action dim must be >= 1, got {dim}")
    found: list[str] | None = None
    for inner in _BRACKETS_RE.findall(text):
        nums = _numbers(inner)
        if len(nums) == dim:
            found = nums
            break
    if found is None:
        found = _numbers(text)
    if len(found) != dim:
        raise VlatwinError(f"expected {dim} numbers in the model's answer, found {len(found)}: {_short(text)!r}")
    values = np.array([float(v) for v in found], dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise VlatwinError(f"the model's answer has NaN/Inf: {_short(text)!r}")
    return values


__all__ = ["parse_action_text"]
