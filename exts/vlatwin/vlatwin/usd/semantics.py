"""Semantic labels as Isaac Sim 5.x writes them (``add_labels``): UsdSemantics.LabelsAPI, instance ``class``."""

from __future__ import annotations

SEMANTIC_TAXONOMY = "class"


def add_class_label(prim, label: str) -> None:
    """Label ``prim`` (and, by inheritance, its children) with semantic class ``label``."""
    from pxr import UsdSemantics

    labels = UsdSemantics.LabelsAPI.Apply(prim, SEMANTIC_TAXONOMY)
    labels.CreateLabelsAttr().Set([label])


def get_class_label(prim) -> str | None:
    """The ``class`` label on ``prim`` or its nearest labelled ancestor."""
    from pxr import UsdSemantics

    while prim and prim.IsValid() and not prim.IsPseudoRoot():
        if prim.HasAPI(UsdSemantics.LabelsAPI, SEMANTIC_TAXONOMY):
            values = UsdSemantics.LabelsAPI(prim, SEMANTIC_TAXONOMY).GetLabelsAttr().Get()
            if values:
                return str(values[0])
        prim = prim.GetParent()
    return None
