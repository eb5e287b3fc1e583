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


#: Categorical colours (matplotlib's tab20) for class visualizations, indexed by class id.
CLASS_COLORS = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
        (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
        (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
        (219, 219, 141), (158, 218, 229),
    ],
    dtype=np.uint8,
)


def class_colors(class_ids) -> np.ndarray:
    """RGB uint8 per class id (BACKGROUND 0 black, UNLABELLED 1 grey)."""
    ids = np.asarray(class_ids, dtype=np.int64)
    out = CLASS_COLORS[(ids - 2) % len(CLASS_COLORS)]
    out = out.copy()
    out[ids == 0] = (0, 0, 0)
    out[ids == 1] = (90, 90, 90)
    return out
