"""Surface reflectivity per renderer shape, from USD.

Lookup order: ``vlatwin:reflectivity`` on the gprim or its nearest ancestor that has it, then on its
bound material, then a default by semantic class, then 0.5.
"""

from __future__ import annotations

import numpy as np

REFLECTIVITY_ATTR = "vlatwin:reflectivity"
CLASS_DEFAULTS = {"floor": 0.2, "table": 0.35, "robot": 0.55, "wall": 0.5, "distractor": 0.5}
DEFAULT_REFLECTIVITY = 0.5


def shape_reflectivity(stage, shape_paths, labels) -> np.ndarray:
    """(S,) reflectivity for each renderer shape."""
    from pxr import Sdf, UsdShade

    out = np.full(len(shape_paths), DEFAULT_REFLECTIVITY, dtype=np.float32)
    for i, path in enumerate(shape_paths):
        value = None
        prim = None
        if path and Sdf.Path.IsValidPathString(path):
            probe = Sdf.Path(path)
            prim = stage.GetPrimAtPath(probe)
            while (prim is None or not prim.IsValid()) and probe != Sdf.Path.absoluteRootPath:
                probe = probe.GetParentPath()
                prim = stage.GetPrimAtPath(probe)
        walker = prim
        while walker is not None and walker.IsValid() and not walker.IsPseudoRoot():
            attr = walker.GetAttribute(REFLECTIVITY_ATTR)
            if attr and attr.HasAuthoredValue():
                value = float(attr.Get())
                break
            walker = walker.GetParent()
        if value is None and prim is not None and prim.IsValid():
            material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
            if material:
                attr = material.GetPrim().GetAttribute(REFLECTIVITY_ATTR)
                if attr and attr.HasAuthoredValue():
                    value = float(attr.Get())
        if value is None:
            inst = labels.shape_instance[i]
            if inst >= 0:
                value = CLASS_DEFAULTS.get(labels.instance_classes[inst])
        if value is not None:
            out[i] = value
    return out
