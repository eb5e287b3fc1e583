"""Reusable validated field types with messages a user can act on."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator


def _numbers(value: Any, count: int, what: str, *, positive: bool = False, nonneg: bool = False) -> tuple:
    if positive:
        what = f"positive {what}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"expected {count} {what}, got a single number")
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise ValueError(f"expected {count} {what}")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ValueError(f"expected {count} {what}, got {item!r}")
        if not math.isfinite(item):
            raise ValueError(f"expected {count} finite {what}, got {item!r}")
        if positive and item <= 0:
            raise ValueError(f"expected {count} {what}")
        if nonneg and item < 0:
            raise ValueError(f"expected {count} non-negative {what}")
        out.append(float(item))
    return tuple(out)


def _color(value: Any) -> tuple:
    rgb = _numbers(value, 3, "numbers [r, g, b] in 0..1")
    if any(c < 0.0 or c > 1.0 for c in rgb):
        raise ValueError("expected 3 numbers [r, g, b] in 0..1 (linear RGB)")
    return rgb


Vec3 = Annotated[tuple[float, float, float], BeforeValidator(lambda v: _numbers(v, 3, "numbers [x, y, z]"))]
PositiveVec3 = Annotated[tuple[float, float, float], BeforeValidator(lambda v: _numbers(v, 3, "numbers", positive=True))]
Vec2 = Annotated[tuple[float, float], BeforeValidator(lambda v: _numbers(v, 2, "numbers [x, y]"))]
PositiveVec2 = Annotated[tuple[float, float], BeforeValidator(lambda v: _numbers(v, 2, "numbers", positive=True))]
ColorRGB = Annotated[tuple[float, float, float], BeforeValidator(_color)]
