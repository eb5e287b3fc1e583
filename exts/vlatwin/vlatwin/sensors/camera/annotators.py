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
    """Counter-clockwise convex hull (monotone chain) of 2D points (N, 2) -> (M, 2).

    Collinear points are dropped. The chain runs on Python floats (the same IEEE doubles as numpy
    scalars, so the same hull bit for bit) because numpy scalar indexing costs ~10x more per step.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    # Sorted by (x, y) and de-duplicated: what np.unique(axis=0) gives, without its structured-array sort.
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    if len(pts) > 1:
        fresh = np.ones(len(pts), dtype=bool)
        fresh[1:] = (pts[1:, 0] != pts[:-1, 0]) | (pts[1:, 1] != pts[:-1, 1])
        pts = pts[fresh]
    if len(pts) < 3:
        return pts
    xs, ys = pts[:, 0].tolist(), pts[:, 1].tolist()

    def half(order):
        chain: list[int] = []
        for i in order:
            px, py = xs[i], ys[i]
            while len(chain) >= 2:
                a, b = chain[-2], chain[-1]
                ax, ay = xs[a], ys[a]
                if (xs[b] - ax) * (py - ay) - (ys[b] - ay) * (px - ax) > 0:
                    break
                chain.pop()
            chain.append(i)
        return chain

    lower, upper = half(range(len(xs))), half(range(len(xs) - 1, -1, -1))
    return pts[lower[:-1] + upper[:-1]]


def _clip_window(polygon: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Pixel window (x0, x1, y0, y1), end-exclusive, of a polygon's bounds clipped to the image; None if empty."""
    x0 = max(int(np.floor(polygon[:, 0].min())), 0)
    x1 = min(int(np.ceil(polygon[:, 0].max())), width)
    y0 = max(int(np.floor(polygon[:, 1].min())), 0)
    y1 = min(int(np.ceil(polygon[:, 1].max())), height)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, x1, y0, y1


#: Above this many edge x pixel tests, :func:`_inside_convex` goes edge by edge instead of all at once (memory).
_BROADCAST_LIMIT = 1 << 21


def _inside_convex(polygon: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """(y1 - y0, x1 - x0) bool: pixel centres of ``window`` inside a convex polygon [px] (edges included).

    The edge test is ``(bx - ax) * (y - ay) - (by - ay) * (x - ax)`` on the polygon's inner side, split
    into a per-row and a per-column term compared directly: for finite doubles ``c - r >= 0`` exactly
    when ``c >= r``, so the pixels are the same as the subtract-then-compare form, with far less work.
    """
    x0, x1, y0, y1 = window
    xs = np.arange(x0, x1) + 0.5
    ys = np.arange(y0, y1) + 0.5
    a, b = polygon, np.roll(polygon, -1, axis=0)
    # CCW in (u right, v down) pixel space is clockwise on screen; test against the edges' consistent side.
    area = np.sum(polygon[:, 0] * np.roll(polygon[:, 1], -1) - np.roll(polygon[:, 0], -1) * polygon[:, 1])
    test = np.greater_equal if area > 0 else np.less_equal
    by_row = (b[:, 0] - a[:, 0])[:, None] * (ys[None, :] - a[:, 1][:, None])  # (E, rows)
    by_col = (b[:, 1] - a[:, 1])[:, None] * (xs[None, :] - a[:, 0][:, None])  # (E, cols)
    if len(polygon) * len(ys) * len(xs) <= _BROADCAST_LIMIT:
        return test(by_row[:, :, None], by_col[:, None, :]).all(axis=0)
    inside = np.ones((len(ys), len(xs)), dtype=bool)
    scratch = np.empty_like(inside)
    for r, c in zip(by_row, by_col):
        test(r[:, None], c[None, :], out=scratch)
        inside &= scratch
    return inside


def rasterize_convex(polygon: np.ndarray, width: int, height: int, out: np.ndarray) -> None:
    """OR into ``out`` (H, W) bool the pixels whose centres lie inside a CCW convex polygon [px]."""
    if len(polygon) < 3:
        return
    window = _clip_window(polygon, width, height)
    if window is None:
        return
    x0, x1, y0, y1 = window
    out[y0:y1, x0:x1] |= _inside_convex(polygon, window)


def _silhouette_parts(shapes_points_w: list[np.ndarray], T_w_cam: np.ndarray, camera: CameraModel):
    """(hull polygon [px], clipped window) per convex shape that lands on the image."""
    parts = []
    for points in shapes_points_w:
        uv, front = project_points(points, T_w_cam, camera)
        if front.sum() < 3:
            continue
        hull = convex_hull_2d(uv[front])
        if len(hull) < 3:
            continue
        window = _clip_window(hull, camera.width, camera.height)
        if window is not None:
            parts.append((hull, window))
    return parts


def silhouette_mask(shapes_points_w: list[np.ndarray], T_w_cam: np.ndarray, camera: CameraModel) -> np.ndarray | None:
    """Full projected silhouette (H, W) bool of one instance, ignoring occluders; None if off-screen.

    An instance is a union of convex shapes given as surface sample points (world frame); the
    silhouette of a convex shape is the convex hull of its projected points. Points behind the near
    plane are dropped (shapes crossing it are approximated by their visible part).
    """
    mask = np.zeros((camera.height, camera.width), dtype=bool)
    for hull, (x0, x1, y0, y1) in _silhouette_parts(shapes_points_w, T_w_cam, camera):
        mask[y0:y1, x0:x1] |= _inside_convex(hull, (x0, x1, y0, y1))
    return mask if mask.any() else None


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

    # find_objects wants int32; a uint32 image of small ids is reinterpreted, not copied.
    ids = instance_image.view(np.int32) if instance_image.dtype == np.uint32 else instance_image.astype(np.int32)
    slices = ndimage.find_objects(ids)
    visible_counts = np.bincount(ids.ravel(), minlength=len(labels.instance_paths) + 2)
    tight, loose, paths = [], [], []
    sem_ids = labels.instance_semantic_ids
    for index, path in enumerate(labels.instance_paths):
        label_value = index + 2
        if label_value - 1 >= len(slices) or slices[label_value - 1] is None:
            continue  # not visible
        if keep_classes is not None and labels.instance_classes[index] not in keep_classes:
            continue
        rows, cols = slices[label_value - 1]
        visible = int(visible_counts[label_value])
        tight_box = (cols.start, rows.start, cols.stop - 1, rows.stop - 1)
        parts = _silhouette_parts(instance_shapes_w[index], T_w_cam, camera) if index < len(instance_shapes_w) else []
        # Work in the window holding the visible pixels and every silhouette part, not the whole image.
        x0 = min([cols.start] + [w[0] for _, w in parts])
        x1 = max([cols.stop] + [w[1] for _, w in parts])
        y0 = min([rows.start] + [w[2] for _, w in parts])
        y1 = max([rows.stop] + [w[3] for _, w in parts])
        full = instance_image[y0:y1, x0:x1] == label_value
        for hull, (wx0, wx1, wy0, wy1) in parts:
            full[wy0 - y0 : wy1 - y0, wx0 - x0 : wx1 - x0] |= _inside_convex(hull, (wx0, wx1, wy0, wy1))
        occlusion = 1.0 - visible / float(full.sum())
        frows = np.flatnonzero(full.any(axis=1))
        fcols = np.flatnonzero(full.any(axis=0))
        loose_box = (x0 + fcols[0], y0 + frows[0], x0 + fcols[-1], y0 + frows[-1])
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
    # Flat pixel indices, gathered once per buffer (boolean masks would be re-counted for every array);
    # labelled pixels are picked first so the depth test runs on those only.
    index = np.arange(depth_ray.size) if include_unlabelled else np.flatnonzero(instance >= 2)
    depth = depth_ray.reshape(-1)[index]
    hit = np.isfinite(depth) & (depth > 0)
    index, depth = index[hit], depth[hit]
    semantic_kept = semantic.reshape(-1)[index]
    if keep_semantic_ids is not None:
        chosen = _member_of(semantic_kept, np.asarray(list(keep_semantic_ids), dtype=semantic.dtype))
        index, depth, semantic_kept = index[chosen], depth[chosen], semantic_kept[chosen]
    points_cam = ray_dirs_cam.reshape(-1, 3)[index] * depth[:, None]
    points_w = np.empty((len(index), 3))
    rotation = T_w_cam[:3, :3].T
    # Row blocks keep each product below OpenBLAS's threading threshold: it then runs on this thread
    # instead of waking BLAS threads that spin against the render threads (same kernel, same bits).
    for start in range(0, len(index), _MATMUL_ROWS):
        np.matmul(points_cam[start : start + _MATMUL_ROWS], rotation, out=points_w[start : start + _MATMUL_ROWS])
    points_w += T_w_cam[:3, 3]
    normals = np.zeros((len(index), 4), dtype=np.float32)
    normals[:, :3] = normals_w.reshape(-1, 3)[index]
    # The gathers are fresh arrays: convert without a second copy when the dtype already matches.
    return {
        "data": points_w.astype(np.float32),
        "info": {
            "pointRgb": rgb.reshape(-1, rgb.shape[-1])[index].astype(np.uint8, copy=False).reshape(-1),
            "pointNormals": normals.reshape(-1),
            "pointSemantic": semantic_kept.astype(np.uint32, copy=False),
            "pointInstance": instance.reshape(-1)[index].astype(np.uint32, copy=False),
        },
    }


_MATMUL_ROWS = 16384
"""Rows per (N, 3) x (3, 3) product in :func:`pointcloud`: 16384 * 3 * 3 is under OpenBLAS's 4 * 65536 threading threshold."""


def _member_of(values: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``np.isin(values, allowed)`` for small non-negative integer ids, as one table lookup."""
    if values.dtype.kind != "u" or len(allowed) == 0:
        return np.isin(values, allowed)
    table = np.zeros(int(allowed.max()) + 2, dtype=bool)  # "clip" reads ids past the largest allowed from the False last entry
    table[allowed] = True
    return table.take(values, mode="clip")


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
    np.copyto(out, np.float32(np.inf), where=~(out > 0))
    return out
