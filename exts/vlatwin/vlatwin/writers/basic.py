"""Replicator BasicWriter layout: ``<camera>/<annotator>_NNNN.<ext>`` plus ``metadata.txt``.

File names, colorized segmentation PNGs with ``"(r, g, b, a)"``-keyed label JSONs, structured box
arrays with ``_labels_`` and ``_prim_paths_`` JSONs follow omni.replicator.core's BasicWriter 0.0.2,
so tools written for Isaac Sim datasets read vlatwin datasets unchanged.
"""

from __future__ import annotations

import json

import numpy as np

from vlatwin.writers.base import DatasetWriter
from vlatwin.writers.encoding import color_key, id_palette, json_bytes, npy_bytes, png_bytes
from vlatwin.writers.encoding import present_ids as _present_ids

BASIC_WRITER_VERSION = "0.0.2"


class WriterBasic(DatasetWriter):
    name = "basic"

    def __init__(self, root, cameras, annotators, *, seed: int = 0, **kw):
        super().__init__(root, cameras, annotators, **kw)
        self.seed = int(seed)

    def start(self) -> dict[str, bytes]:
        return {"metadata.txt": metadata_bytes(self.seed)}

    def encode_frame(self, frame: int, outputs_by_camera: dict[str, dict]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        tag = self.frame_tag(frame)
        for camera, out in outputs_by_camera.items():
            prefix = f"{camera}/"
            if "rgb" in out:
                files[f"{prefix}rgb_{tag}.png"] = png_bytes(out["rgb"])
            for name in ("distance_to_camera", "distance_to_image_plane"):
                if name in out:
                    files[f"{prefix}{name}_{tag}.npy"] = npy_bytes(out[name].astype(np.float32, copy=False))
            if "normals" in out:
                files[f"{prefix}normals_{tag}.png"] = png_bytes(_normals_u8(out["normals"]))
            if "semantic_segmentation" in out:
                seg = out["semantic_segmentation"]
                colors, labels = _colorize(seg["data"], {k: v for k, v in seg["info"]["idToLabels"].items()})
                files[f"{prefix}semantic_segmentation_{tag}.png"] = png_bytes(colors)
                files[f"{prefix}semantic_segmentation_labels_{tag}.json"] = json_bytes(labels)
            if "instance_segmentation" in out:
                seg = out["instance_segmentation"]
                ids_present = _present_ids(seg["data"])
                colors, paths = _colorize(seg["data"], seg["info"]["idToLabels"], ids_present)
                present = set(ids_present.tolist())
                semantics = {
                    color_key(id_palette(np.array([int(i)]))[0]): seg["info"]["idToSemantics"][i]
                    for i in seg["info"]["idToSemantics"]
                    if int(i) in present
                }
                files[f"{prefix}instance_segmentation_{tag}.png"] = png_bytes(colors)
                files[f"{prefix}instance_segmentation_mapping_{tag}.json"] = json_bytes(paths)
                files[f"{prefix}instance_segmentation_semantics_mapping_{tag}.json"] = json_bytes(semantics)
            for name in ("bounding_box_2d_tight", "bounding_box_2d_loose", "bounding_box_3d"):
                if name in out:
                    files[f"{prefix}{name}_{tag}.npy"] = npy_bytes(out[name]["data"])
                    files[f"{prefix}{name}_labels_{tag}.json"] = json_bytes(out[name]["info"]["idToLabels"])
                    files[f"{prefix}{name}_prim_paths_{tag}.json"] = json_bytes(out[name]["info"]["primPaths"])
            if "occlusion" in out:
                files[f"{prefix}occlusion_{tag}.npy"] = npy_bytes(out["occlusion"]["data"])
            if "camera_params" in out:
                files[f"{prefix}camera_params_{tag}.json"] = json_bytes(out["camera_params"])
            if "pointcloud" in out:
                pc = out["pointcloud"]
                info = pc["info"]
                files[f"{prefix}pointcloud_{tag}.npy"] = npy_bytes(pc["data"])
                files[f"{prefix}pointcloud_rgb_{tag}.npy"] = npy_bytes(info["pointRgb"].reshape(-1, 4))
                files[f"{prefix}pointcloud_normals_{tag}.npy"] = npy_bytes(info["pointNormals"].reshape(-1, 4))
                files[f"{prefix}pointcloud_semantic_{tag}.npy"] = npy_bytes(info["pointSemantic"])
                files[f"{prefix}pointcloud_instance_{tag}.npy"] = npy_bytes(info["pointInstance"])
        return files


def metadata_bytes(seed: int) -> bytes:
    """``metadata.txt`` exactly as Replicator's BasicWriter 0.0.2 writes it: one line of JSON, no newline.

    Isaac Sim 5.1's golden file holds ``{"name": "BasicWriter", "version": "0.0.2", "replicator_global_seed:": 11}``
    (the key does end in a colon): [IS] v5.1.0
    source/standalone_examples/benchmarks/validation/golden_data/benchmark_sdg/metadata.txt L1. The seed
    is the dataset's (vlatwin seeds Replicator's global generator with it on the isaacsim backend).
    """
    meta = {"name": "BasicWriter", "version": BASIC_WRITER_VERSION, "replicator_global_seed:": int(seed)}
    return json.dumps(meta).encode("utf-8")


def _colorize(ids: np.ndarray, id_to_label: dict, present: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Colour an id image; returns (RGBA image, {"(r, g, b, a)": label} for the ids present).

    ``present``: the image's :func:`_present_ids`, when the caller already has them.
    """
    present = _present_ids(ids) if present is None else present
    lut_ids = np.arange(int(present.max()) + 1 if len(present) else 1)
    palette = id_palette(lut_ids)
    labels = {color_key(palette[i]): id_to_label.get(str(int(i)), "UNLABELLED") for i in present}
    # One 4-byte word per pixel: a uint32 gather is several times faster than gathering (H, W, 4) rows.
    words = np.ascontiguousarray(palette).view(np.uint32).reshape(-1)
    return words.take(ids).view(np.uint8).reshape(*np.shape(ids), 4), labels


def _normals_u8(normals: np.ndarray) -> np.ndarray:
    """World normals [-1, 1] (H, W, C) float32 to the PNG's uint8 ((n + 1) / 2 * 255, truncated), in place on one buffer."""
    scaled = normals * 0.5
    scaled += 0.5
    scaled *= 255
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def decode_colorized(image: np.ndarray, labels: dict) -> tuple[np.ndarray, dict]:
    """Invert a colorized segmentation PNG + its label JSON into (index image, {index: label})."""
    keys = list(labels)
    out = np.full(image.shape[:2], -1, dtype=np.int64)
    for index, key in enumerate(keys):
        rgba = np.array([int(c) for c in key.strip("()").split(",")], dtype=np.uint8)
        out[np.all(image == rgba, axis=-1)] = index
    return out, {i: labels[k] for i, k in enumerate(keys)}
