"""Replicator-compatible annotator outputs computed from raw render buffers, in numpy.

Field names, dtypes and dict keys follow omni.replicator.core's annotators so one writer serves both
backends. Inputs are engine-neutral: a shape-index image, depths, normals, and per-instance convex
geometry (sample points per convex shape, world frame) for the full (un-occluded) silhouettes.
"""

from __future__ import annotations

import numpy as np

from vlatwin.sensors.camera.labels import LabelTable
from vlatwin.sensors.camera.model import CameraModel, project_points, projection_matrix, view_matrix

#: Replicator annotator names vlatwin produces (every backend must produce all of them).
ANNOTATOR_NAMES = (
    "rgb",
    "distance_to_camera",
    "distance_to_image_plane",
    "normals",
    "semantic_segmentation",
    "instance_segmentation",
    "bounding_box_2d_tight",
    "bounding_box_2d_loose",
    "bounding_box_3d",
    "occlusion",
    "camera_params",
    "pointcloud",
)

BBOX_2D_DTYPE = np.dtype(
    [("semanticId", "<u4"), ("x_min", "<i4"), ("y_min", "<i4"), ("x_max", "<i4"), ("y_max", "<i4"), ("occlusionRatio", "<f4")]
)
OCCLUSION_DTYPE = np.dtype([("instanceId", "<u4"), ("semanticId", "<u4"), ("occlusionRatio", "<f4")])
BBOX_3D_DTYPE = np.dtype(
    [
        ("semanticId", "<u4"),
        ("x_min", "<f4"),
        ("y_min", "<f4"),
        ("z_min", "<f4"),
        ("x_max", "<f4"),
        ("y_max", "<f4"),
        ("z_max", "<f4"),
        ("transform", "<f4", (4, 4)),
        ("occlusionRatio", "<f4"),
    ]
)


def convex_hull_2d(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull (monotone chain) of 2D points (N, 2) -> (M, 2)."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return pts
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]

    def half(seq):
        chain: list[np.ndarray] = []
        for p in seq:
            while len(chain) >= 2:
                a, b = chain[-2], chain[-1]
                if (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def rasterize_convex(polygon: np.ndarray, width: int, height: int, out: np.ndarray) -> None:
    """OR into ``out`` (H, W) bool the pixels whose centres lie inside a CCW convex polygon [px]."""
    if len(polygon) < 3:
        return
    x0 = max(int(np.floor(polygon[:, 0].min())), 0)
    x1 = min(int(np.ceil(polygon[:, 0].max())), width)
    y0 = max(int(np.floor(polygon[:, 1].min())), 0)
    y1 = min(int(np.ceil(polygon[:, 1].max())), height)
    if x0 >= x1 or y0 >= y1:
        return
    xs = np.arange(x0, x1) + 0.5
    ys = np.arange(y0, y1) + 0.5
    inside = np.ones((y1 - y0, x1 - x0), dtype=bool)
    # CCW in (u right, v down) pixel space is clockwise on screen; test against the edges' consistent side.
    area = np.sum(polygon[:, 0] * np.roll(polygon[:, 1], -1) - np.roll(polygon[:, 0], -1) * polygon[:, 1])
    sign = 1.0 if area > 0 else -1.0
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):
        cross = (b[0] - a[0]) * (ys[:, None] - a[1]) - (b[1] - a[1]) * (xs[None, :] - a[0])
        inside &= sign * cross >= 0
    out[y0:y1, x0:x1] |= inside


def silhouette_mask(shapes_points_w: list[np.ndarray], T_w_cam: np.ndarray, camera: CameraModel) -> np.ndarray | None:
    """Full projected silhouette (H, W) bool of one instance, ignoring occluders; None if off-screen.

    An instance is a union of convex shapes given as surface sample points (world frame); the
    silhouette of a convex shape is the convex hull of its projected points. Points behind the near
    plane are dropped (shapes crossing it are approximated by their visible part).
    """
    mask = None
    for points in shapes_points_w:
        uv, front = project_points(points, T_w_cam, camera)
        if front.sum() < 3:
            continue
        if mask is None:
            mask = np.zeros((camera.height, camera.width), dtype=bool)
        rasterize_convex(convex_hull_2d(uv[front]), camera.width, camera.height, mask)
    return mask if mask is not None and mask.any() else None


def bounding_boxes_2d(
    instance_image: np.ndarray,
    labels: LabelTable,
    instance_shapes_w: list[list[np.ndarray]],
    T_w_cam: np.ndarray,
    camera: CameraModel,
    *,
    keep_classes: set[str] | None = None,
):
    """Tight (visible pixels) and loose (full silhouette) 2D boxes plus occlusion, per visible labelled prim.

    Args:
        keep_classes: only these classes get boxes (None = all); others are not even rasterized.

    Returns:
        dict with ``tight`` and ``loose`` structured arrays (:data:`BBOX_2D_DTYPE`, inclusive pixel
        bounds), ``primPaths`` and ``idToLabels``, the same rows in the same order.
    """
    from scipy import ndimage

    slices = ndimage.find_objects(instance_image.astype(np.int32))
    tight, loose, paths = [], [], []
    sem_ids = labels.instance_semantic_ids
    for index, path in enumerate(labels.instance_paths):
        label_value = index + 2
        if label_value - 1 >= len(slices) or slices[label_value - 1] is None:
            continue  # not visible
        if keep_classes is not None and labels.instance_classes[index] not in keep_classes:
            continue
        rows, cols = slices[label_value - 1]
        mask = np.zeros(instance_image.shape, dtype=bool)
        mask[rows, cols] = instance_image[rows, cols] == label_value
        visible = int(mask[rows, cols].sum())
        tight_box = (cols.start, rows.start, cols.stop - 1, rows.stop - 1)
        full = silhouette_mask(instance_shapes_w[index], T_w_cam, camera) if index < len(instance_shapes_w) else None
        full = mask if full is None else (full | mask)
        occlusion = 1.0 - visible / float(full.sum())
        frows = np.flatnonzero(full.any(axis=1))
        fcols = np.flatnonzero(full.any(axis=0))
        loose_box = (fcols[0], frows[0], fcols[-1], frows[-1])
        sid = int(sem_ids[index])
        tight.append((sid, *tight_box, occlusion))
        loose.append((sid, *loose_box, occlusion))
        paths.append(path)
    present = sorted({int(sem_ids[labels.instance_paths.index(p)]) for p in paths})
    id_to_labels = {str(i): {"class": labels.classes[i - 2]} for i in present}
    return {
        "tight": np.array(tight, dtype=BBOX_2D_DTYPE),
        "loose": np.array(loose, dtype=BBOX_2D_DTYPE),
        "primPaths": paths,
        "idToLabels": id_to_labels,
    }


def bounding_boxes_3d(
    labels: LabelTable, instance_points_local, instance_T_w, occlusion_by_path: dict[str, float], *, keep_classes=None
):
    """3D boxes: local-frame extents of each labelled prim plus its prim-to-world transform.

    ``transform`` follows USD/Replicator's row-vector convention (translation in the last row).
    Prims not seen by the camera get occlusionRatio -1 (Replicator uses -1/nan when unknown).
    """
    rows, paths = [], []
    for index, path in enumerate(labels.instance_paths):
        points = instance_points_local[index]
        if points is None or len(points) == 0:
            continue
        if keep_classes is not None and labels.instance_classes[index] not in keep_classes:
            continue
        lo, hi = points.min(axis=0), points.max(axis=0)
        rows.append(
            (
                int(labels.instance_semantic_ids[index]),
                *lo.astype(np.float32),
                *hi.astype(np.float32),
                np.asarray(instance_T_w[index], dtype=np.float32).T,
                occlusion_by_path.get(path, -1.0),
            )
        )
        paths.append(path)
    present = sorted({r[0] for r in rows})
    return {
        "data": np.array(rows, dtype=BBOX_3D_DTYPE),
        "primPaths": paths,
        "idToLabels": {str(i): {"class": labels.classes[i - 2]} for i in present},
    }


def pointcloud(
    depth_ray: np.ndarray,
    ray_dirs_cam: np.ndarray,
    T_w_cam: np.ndarray,
    *,
    rgb: np.ndarray,
    normals_w: np.ndarray,
    semantic: np.ndarray,
    instance: np.ndarray,
    include_unlabelled: bool = False,
    keep_semantic_ids=None,
) -> dict:
    """World points from ray depth (Replicator ``pointcloud``): labelled pixels only unless asked.

    ``keep_semantic_ids`` restricts the points to those classes (the run's class filter).
    """
    hit = np.isfinite(depth_ray) & (depth_ray > 0)
    keep = hit & (instance >= 2) if not include_unlabelled else hit
    if keep_semantic_ids is not None:
        keep &= np.isin(semantic, np.asarray(list(keep_semantic_ids), dtype=semantic.dtype))
    dirs = ray_dirs_cam[keep]
    points_cam = dirs * depth_ray[keep][:, None]
    points_w = points_cam @ T_w_cam[:3, :3].T + T_w_cam[:3, 3]
    normals = normals_w[keep]
    return {
        "data": points_w.astype(np.float32),
        "info": {
            "pointRgb": rgb[keep].astype(np.uint8).reshape(-1),
            "pointNormals": np.concatenate([normals, np.zeros((len(normals), 1))], axis=1).astype(np.float32).reshape(-1),
            "pointSemantic": semantic[keep].astype(np.uint32),
            "pointInstance": instance[keep].astype(np.uint32),
        },
    }


def camera_params(camera: CameraModel, T_w_cam: np.ndarray) -> dict:
    """Replicator ``camera_params``; 4x4 matrices flattened row-major in the row-vector convention."""
    return {
        "cameraAperture": [camera.horizontal_aperture_mm, camera.vertical_aperture_mm],
        "cameraApertureOffset": [0.0, 0.0],
        "cameraFisheyeLensP": [],
        "cameraFisheyeLensS": [],
        "cameraFisheyeMaxFOV": 0.0,
        "cameraFisheyeNominalHeight": 0,
        "cameraFisheyeNominalWidth": 0,
        "cameraFisheyeOpticalCentre": [0.0, 0.0],
        "cameraFisheyePolynomial": [],
        "cameraFocalLength": camera.focal_length_mm,
        "cameraFocusDistance": 400.0,
        "cameraFStop": 0.0,
        "cameraModel": "pinhole" if camera.model == "pinhole" else "fisheyeOpenCV",
        "cameraNearFar": [camera.near, camera.far],
        "cameraProjection": projection_matrix(camera).T.reshape(-1).tolist(),
        "cameraViewTransform": view_matrix(T_w_cam).T.reshape(-1).tolist(),
        "metersPerSceneUnit": 1.0,
        "renderProductResolution": [camera.width, camera.height],
        "cameraIntrinsics": camera.K.tolist(),
        "cameraDistortion": list(camera.distortion),
    }


def depth_from_renderer(depth: np.ndarray) -> np.ndarray:
    """Renderer depth (0 = miss) to Replicator convention (float32, background = inf)."""
    out = depth.astype(np.float32, copy=True)
    out[~(out > 0)] = np.inf
    return out
