"""Image/array encoders shared by the writers (Pillow PNG, numpy .npy, JSON)."""

from __future__ import annotations

import io
import json

import numpy as np

#: zlib level for PNGs: 1 keeps encoding cheap next to rendering; files are ~15% larger than level 6.
PNG_COMPRESS_LEVEL = 1


def png_bytes(image: np.ndarray) -> bytes:
    """Encode uint8 (H, W), (H, W, 3) or (H, W, 4) as PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def json_bytes(obj) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default).encode("utf-8")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def id_palette(ids: np.ndarray) -> np.ndarray:
    """Deterministic RGBA colour per id: 0 -> transparent black (BACKGROUND), 1 -> opaque black (UNLABELLED)."""
    ids = np.asarray(ids, dtype=np.uint64)
    # A multiplicative hash spreads consecutive ids over visibly different colours.
    h = (ids * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
    rgba = np.stack(
        [(h >> np.uint64(16)) & np.uint64(255), (h >> np.uint64(8)) & np.uint64(255), h & np.uint64(255), np.full_like(h, 255)],
        axis=-1,
    ).astype(np.uint8)
    rgba[..., :3] = 64 + rgba[..., :3] // 4 * 3  # keep colours away from black
    rgba[ids == 0] = (0, 0, 0, 0)
    rgba[ids == 1] = (0, 0, 0, 255)
    return rgba


def color_key(rgba) -> str:
    """Replicator's JSON key for a colour: ``"(r, g, b, a)"``."""
    return "(" + ", ".join(str(int(c)) for c in rgba) + ")"
