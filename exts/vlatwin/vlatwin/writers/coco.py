"""COCO instances: one JSON per camera, ``coco/<camera>_instances.json``, with RLE masks.

Per-frame fragments (``coco/frames/<camera>_NNNN.json``) are written with each frame, so the final
JSON can be rebuilt from finished frames after a crash and ``--resume``.
"""

from __future__ import annotations

import json

import numpy as np

from vlatwin.writers.base import DatasetWriter
from vlatwin.writers.encoding import json_bytes, present_ids


class WriterCoco(DatasetWriter):
    name = "coco"
    required_annotators = frozenset({"rgb", "instance_segmentation"})

    def __init__(self, *args, classes: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.classes = sorted(classes)

    def category_id(self, name: str) -> int:
        return self.classes.index(name) + 1

    def encode_frame(self, frame: int, outputs_by_camera: dict[str, dict]) -> dict[str, bytes]:
        from pycocotools import mask as mask_utils

        files = {}
        tag = self.frame_tag(frame)
        for camera, out in outputs_by_camera.items():
            seg = out["instance_segmentation"]
            ids = seg["data"]
            height, width = ids.shape
            # Column-major once: every mask compared from it is already in the layout pycocotools encodes.
            ids_f = np.asfortranarray(ids)
            annotations = []
            for inst in present_ids(ids).tolist():
                if inst < 2:
                    continue
                cls = seg["info"]["idToSemantics"][str(inst)]["class"]
                if cls not in self.classes:  # filtered out (generate.class_filter)
                    continue
                mask = (ids_f == inst).view(np.uint8)
                rle = mask_utils.encode(mask)
                x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
                annotations.append(
                    {
                        "category_id": self.category_id(cls),
                        "bbox": [x, y, w, h],
                        "area": float(mask_utils.area(rle)),
                        "iscrowd": 0,
                        "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                        "vlatwin_prim_path": seg["info"]["idToLabels"][str(inst)],
                    }
                )
            image = {"file_name": f"{camera}/rgb_{tag}.png", "width": width, "height": height, "frame": frame}
            files[f"coco/frames/{camera}_{tag}.json"] = json_bytes({"image": image, "annotations": annotations})
        return files

    def finalize(self, finished_frames: list[int]) -> dict[str, bytes]:
        files = {}
        categories = [{"id": self.category_id(c), "name": c, "supercategory": c} for c in self.classes]
        for camera in self.cameras:
            images, annotations = [], []
            for frame in sorted(finished_frames):
                fragment = self.root / "coco" / "frames" / f"{camera}_{self.frame_tag(frame)}.json"
                data = json.loads(fragment.read_text(encoding="utf-8"))
                image = dict(data["image"], id=len(images) + 1)
                images.append(image)
                for ann in data["annotations"]:
                    annotations.append(dict(ann, id=len(annotations) + 1, image_id=image["id"]))
            coco = {
                "info": {"description": "vlatwin synthetic dataset", "version": "1.0"},
                "images": images,
                "annotations": annotations,
                "categories": categories,
            }
            files[f"coco/{camera}_instances.json"] = json_bytes(coco)
        return files
