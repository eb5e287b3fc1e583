"""Label tables shared by every annotator: shape -> labelled prim (instance) -> semantic class.

Ids follow Replicator: semantic and instance id 0 = BACKGROUND, 1 = UNLABELLED, then one id per class
(sorted by name) or per labelled prim (sorted by path), stable for the whole dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

BACKGROUND_ID = 0
UNLABELLED_ID = 1


@dataclass(frozen=True)
class LabelTable:
    """Static label lookup for one scene."""

    instance_paths: tuple[str, ...]
    """Labelled prim paths; instance id = index + 2."""
    instance_classes: tuple[str, ...]
    """``class`` label of each labelled prim."""
    shape_instance: np.ndarray
    """(S,) int32: instance index of each renderer shape, -1 when unlabelled."""
    classes: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(sorted(set(self.instance_classes))))

    def class_id(self, name: str) -> int:
        return self.classes.index(name) + 2

    @cached_property
    def instance_semantic_ids(self) -> np.ndarray:
        """(I,) semantic id of each instance (read-only; computed once)."""
        ids = np.array([self.class_id(c) for c in self.instance_classes], dtype=np.uint32)
        ids.flags.writeable = False
        return ids

    def id_to_labels(self) -> dict[str, dict[str, str]]:
        """Replicator ``idToLabels`` for semantic ids."""
        out = {str(BACKGROUND_ID): {"class": "BACKGROUND"}, str(UNLABELLED_ID): {"class": "UNLABELLED"}}
        out.update({str(self.class_id(c)): {"class": c} for c in self.classes})
        return out

    @cached_property
    def _shape_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """(semantic id, instance id) uint32 per shape index, plus a last entry for a miss (background)."""
        inst = np.asarray(self.shape_instance)
        instance = np.where(inst >= 0, inst + 2, np.where(inst == -1, UNLABELLED_ID, BACKGROUND_ID))
        instance = np.append(instance, BACKGROUND_ID).astype(np.uint32)
        sem_of_inst = np.concatenate([[BACKGROUND_ID, UNLABELLED_ID], self.instance_semantic_ids]).astype(np.uint32)
        return sem_of_inst[instance], instance

    def lookup_images(self, shape_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(semantic ids, instance ids) images (H, W) uint32 from a renderer shape-index image."""
        semantic, instance = self._shape_lookup
        # "clip": every index past the last shape (0xFFFFFFFF = miss) reads the table's last entry, background.
        return semantic.take(shape_index, mode="clip"), instance.take(shape_index, mode="clip")


def build_label_table(stage, shape_paths) -> LabelTable:
    """Join renderer shapes to USD ``class`` labels by prim path (nearest labelled ancestor).

    Shapes the importer invented (e.g. ``<mesh>_visual`` copies) resolve through their nearest
    existing ancestor prim.
    """
    from vlatwin.usd.semantics import SEMANTIC_TAXONOMY

    from pxr import Sdf, UsdSemantics

    labelled: dict[str, str] = {}
    shape_instance_path: list[str | None] = []
    for path in shape_paths:
        prim = stage.GetPrimAtPath(Sdf.Path(path)) if path and Sdf.Path.IsValidPathString(path) else None
        probe = Sdf.Path(path) if path and Sdf.Path.IsValidPathString(path) else None
        while probe is not None and (prim is None or not prim.IsValid()) and probe != Sdf.Path.absoluteRootPath:
            probe = probe.GetParentPath()
            prim = stage.GetPrimAtPath(probe)
        found = None
        while prim is not None and prim.IsValid() and not prim.IsPseudoRoot():
            if prim.HasAPI(UsdSemantics.LabelsAPI, SEMANTIC_TAXONOMY):
                values = UsdSemantics.LabelsAPI(prim, SEMANTIC_TAXONOMY).GetLabelsAttr().Get()
                if values:
                    found = str(prim.GetPath())
                    labelled[found] = str(values[0])
                    break
            prim = prim.GetParent()
        shape_instance_path.append(found)
    paths = tuple(sorted(labelled))
    index = {p: i for i, p in enumerate(paths)}
    shape_instance = np.array([index[p] if p is not None else -1 for p in shape_instance_path], dtype=np.int32)
    return LabelTable(instance_paths=paths, instance_classes=tuple(labelled[p] for p in paths), shape_instance=shape_instance)
