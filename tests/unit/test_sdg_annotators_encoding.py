"""The fast annotator and encoder paths equal their straightforward versions exactly (issue 14, SDG speed).

Each test keeps the plain version (full-image masks, per-edge subtract-then-compare, boolean-mask
gathers, np.unique) as the reference and feeds both the same synthetic input.
"""

import io

import numpy as np
import pytest
from PIL import Image
from vlatwin.sensors.camera import annotators as ann
from vlatwin.sensors.camera.labels import LabelTable
from vlatwin.sensors.camera.model import CameraModel, project_points
from vlatwin.sensors.camera.shapes import box_points, sphere_points
from vlatwin.writers.basic import _colorize, _normals_u8
from vlatwin.writers.encoding import id_palette, png_bytes, present_ids

CAM = CameraModel(width=160, height=120, fx=150.0, fy=150.0, cx=80.0, cy=60.0)


# ------------------------------------------------------------------ reference (straightforward) versions
def hull_reference(points):
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return pts
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]

    def half(seq):
        chain = []
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


def rasterize_reference(polygon, width, height, out):
    if len(polygon) < 3:
        return
    x0 = max(int(np.floor(polygon[:, 0].min())), 0)
    x1 = min(int(np.ceil(polygon[:, 0].max())), width)
    y0 = max(int(np.floor(polygon[:, 1].min())), 0)
    y1 = min(int(np.ceil(polygon[:, 1].max())), height)
    if x0 >= x1 or y0 >= y1:
        return
    xs, ys = np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5
    inside = np.ones((y1 - y0, x1 - x0), dtype=bool)
    area = np.sum(polygon[:, 0] * np.roll(polygon[:, 1], -1) - np.roll(polygon[:, 0], -1) * polygon[:, 1])
    sign = 1.0 if area > 0 else -1.0
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):
        cross = (b[0] - a[0]) * (ys[:, None] - a[1]) - (b[1] - a[1]) * (xs[None, :] - a[0])
        inside &= sign * cross >= 0
    out[y0:y1, x0:x1] |= inside


def boxes_reference(instance_image, labels, shapes_w, T_w_cam, camera):
    """Per visible instance: (semantic id, tight box, loose box, occlusion) with full-image masks."""
    rows = []
    for index in range(len(labels.instance_paths)):
        mask = instance_image == index + 2
        if not mask.any():
            continue
        full = np.zeros_like(mask)
        for points in shapes_w[index]:
            uv, front = project_points(points, T_w_cam, camera)
            if front.sum() >= 3:
                rasterize_reference(hull_reference(uv[front]), camera.width, camera.height, full)
        full |= mask
        r, c = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        fr, fc = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
        occlusion = 1.0 - int(mask.sum()) / float(full.sum())
        sid = int(labels.instance_semantic_ids[index])
        rows.append((sid, (c[0], r[0], c[-1], r[-1]), (fc[0], fr[0], fc[-1], fr[-1]), np.float32(occlusion)))
    return rows


def random_polygons(rng, count):
    for k in range(count):
        pts = rng.uniform(-60, 60, 2) + [80, 60] + rng.normal(size=(int(rng.integers(3, 30)), 2)) * rng.uniform(0.5, 90)
        if k % 3 == 0:
            pts = np.round(pts) + 0.5 * (k % 2)  # edges through pixel centres: the boundary rule decides
        yield ann.convex_hull_2d(pts)


# ------------------------------------------------------------------ tests
def test_convex_hull_equals_reference():
    """The list-based monotone chain returns the numpy version's hull bit for bit, duplicates and collinear points included."""
    rng = np.random.default_rng(0)
    cases = [rng.uniform(0, 100, (n, 2)) for n in (1, 2, 3, 7, 200)]
    cases += [np.round(rng.uniform(0, 6, (40, 2))) for _ in range(20)]
    cases += [np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), np.array([[0.0, 0.0], [-0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])]
    for pts in cases:
        fast, slow = ann.convex_hull_2d(pts), hull_reference(pts)
        assert fast.shape == slow.shape and fast.tobytes() == slow.tobytes()


@pytest.mark.parametrize("limit", [ann._BROADCAST_LIMIT, 0], ids=["all-edges-at-once", "edge-by-edge"])
def test_rasterize_equals_reference(monkeypatch, limit):
    """Both inside-test paths mark exactly the pixels of the per-edge subtract-then-compare test, either winding."""
    monkeypatch.setattr(ann, "_BROADCAST_LIMIT", limit)
    for hull in random_polygons(np.random.default_rng(1), 120):
        for polygon in (hull, hull[::-1]):
            fast, slow = np.zeros((120, 160), bool), np.zeros((120, 160), bool)
            ann.rasterize_convex(polygon, 160, 120, fast)
            rasterize_reference(polygon, 160, 120, slow)
            assert np.array_equal(fast, slow)


def test_bounding_boxes_equal_full_image_reference():
    """Windowed boxes and occlusion equal the full-image computation: partly hidden, off-screen and clipped instances."""
    rng = np.random.default_rng(2)
    T_w_cam = np.eye(4)  # USD camera at the origin looking down -Z
    centres = [(-0.3, 0.1, -2.0), (0.2, -0.1, -1.5), (0.0, 0.0, -1.0), (5.0, 0.0, -1.0), (0.55, 0.3, -1.2)]
    shapes_w = [[box_points([0.2, 0.15, 0.1]) + c, sphere_points(0.08) + c + (0.1, 0.1, 0.0)] for c in centres]
    labels = LabelTable(
        instance_paths=tuple(f"/World/o{i}" for i in range(len(centres))),
        instance_classes=("cube", "ball", "cube", "ball", "mug"),
        shape_instance=np.arange(len(centres), dtype=np.int32),
    )
    # Instance image: each instance's own silhouette, nearer ones painted over farther ones, then noise.
    image = np.zeros((120, 160), np.uint32)
    for index in np.argsort([c[2] for c in centres]):
        sil = ann.silhouette_mask(shapes_w[index], T_w_cam, CAM)
        if sil is not None:
            image[sil & (image == 0)] = index + 2
    image[rng.random(image.shape) < 0.01] = 1
    boxes = ann.bounding_boxes_2d(image, labels, shapes_w, T_w_cam, CAM)
    expected = boxes_reference(image, labels, shapes_w, T_w_cam, CAM)
    assert len(expected) >= 3 and len(boxes["tight"]) == len(expected)
    for tight, loose, (sid, tight_box, loose_box, occlusion) in zip(boxes["tight"], boxes["loose"], expected):
        assert tight["semanticId"] == loose["semanticId"] == sid
        assert tuple(tight[["x_min", "y_min", "x_max", "y_max"]].item()) == tight_box
        assert tuple(loose[["x_min", "y_min", "x_max", "y_max"]].item()) == loose_box
        assert tight["occlusionRatio"] == loose["occlusionRatio"] == occlusion
    assert any(o > 0 for o in boxes["tight"]["occlusionRatio"])


def test_label_lookup_equals_reference():
    """The per-shape lookup table gives the where-chain's ids, misses (0xFFFFFFFF and past the table) included."""
    table = LabelTable(instance_paths=("/a", "/b", "/c"), instance_classes=("cup", "box", "cup"), shape_instance=np.array([0, 1, -1, 2, -1]))
    shape_index = np.random.default_rng(3).integers(0, 8, (30, 40)).astype(np.uint32)
    shape_index[0, :4] = 0xFFFFFFFF
    miss = shape_index >= len(table.shape_instance)
    inst_index = np.where(miss, -2, table.shape_instance[np.where(miss, 0, shape_index).astype(np.int64)])
    instance = np.where(inst_index >= 0, inst_index + 2, np.where(inst_index == -1, 1, 0))
    semantic = np.concatenate([[0, 1], table.instance_semantic_ids]).astype(np.uint32)[instance]
    fast_semantic, fast_instance = table.lookup_images(shape_index)
    assert fast_semantic.dtype == fast_instance.dtype == np.uint32
    assert np.array_equal(fast_semantic, semantic) and np.array_equal(fast_instance, instance)


@pytest.mark.parametrize("include_unlabelled", [False, True])
@pytest.mark.parametrize("keep_ids", [None, [], [2, 4], [3, 99]])
@pytest.mark.parametrize("block_rows", [ann._MATMUL_ROWS, 7], ids=["one-block", "blocks-of-7"])
def test_pointcloud_equals_boolean_mask_version(monkeypatch, include_unlabelled, keep_ids, block_rows):
    """Index gathers and row-blocked rotation give the boolean-mask version's points, colours, normals and ids."""
    monkeypatch.setattr(ann, "_MATMUL_ROWS", block_rows)
    rng = np.random.default_rng(4)
    h, w = 24, 32
    depth = rng.uniform(0.1, 3, (h, w)).astype(np.float32)
    depth[rng.random((h, w)) < 0.2] = np.inf
    depth[0, :4], depth[1, :4], depth[2, :4] = np.nan, 0.0, -1.0
    rgb = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    normals = rng.normal(size=(h, w, 3)).astype(np.float32)
    semantic = rng.integers(0, 6, (h, w)).astype(np.uint32)
    instance = rng.integers(0, 9, (h, w)).astype(np.uint32)
    dirs = rng.normal(size=(h, w, 3)).astype(np.float32)
    T = np.eye(4)
    T[:3, 3] = (0.5, -1.0, 2.0)
    out = ann.pointcloud(depth, dirs, T, rgb=rgb, normals_w=normals, semantic=semantic, instance=instance,
                         include_unlabelled=include_unlabelled, keep_semantic_ids=keep_ids)
    keep = np.isfinite(depth) & (depth > 0)
    if not include_unlabelled:
        keep &= instance >= 2
    if keep_ids is not None:
        keep &= np.isin(semantic, np.asarray(keep_ids, dtype=np.uint32))
    points = (dirs[keep] * depth[keep][:, None]) @ T[:3, :3].T + T[:3, 3]
    assert out["data"].tobytes() == points.astype(np.float32).tobytes()
    info = out["info"]
    assert info["pointRgb"].tobytes() == rgb[keep].reshape(-1).tobytes()
    padded = np.concatenate([normals[keep], np.zeros((int(keep.sum()), 1))], axis=1).astype(np.float32).reshape(-1)
    assert info["pointNormals"].tobytes() == padded.tobytes()
    assert info["pointSemantic"].tobytes() == semantic[keep].tobytes()
    assert info["pointInstance"].tobytes() == instance[keep].tobytes()


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (1, 9), (37, 53), (37, 53, 2), (37, 53, 3), (37, 53, 4)])
def test_png_decodes_to_the_same_pixels(shape):
    """The Up-filter PNG decodes (Pillow) to the input: same mode, size and bytes; strided input too."""
    image = np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)
    image[: shape[0] // 2] //= 16  # runs for the RLE strategy, noise below
    for candidate in (image, image[:, ::-1]):
        decoded = Image.open(io.BytesIO(png_bytes(candidate)))
        assert decoded.mode == ("L" if candidate.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[shape[2]])
        assert np.array_equal(np.asarray(decoded), candidate)


def test_png_other_dtypes_go_through_pillow():
    """16-bit greyscale still encodes (Pillow) and round-trips."""
    image = np.random.default_rng(6).integers(0, 65535, (9, 11)).astype(np.uint16)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(image)))), image)


def test_colorize_normals_and_present_ids_equal_reference():
    """uint32 palette gather, in-place normal scaling and bincount ids equal palette[ids], the formula and np.unique."""
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 12, (40, 50)).astype(np.uint32)
    ids[ids == 5] = 0
    assert present_ids(ids).tolist() == np.unique(ids).tolist()
    image, _ = _colorize(ids, {})
    assert np.array_equal(image, id_palette(np.arange(ids.max() + 1))[ids])
    normals = rng.uniform(-1.2, 1.2, (40, 50, 4)).astype(np.float32)
    assert np.array_equal(_normals_u8(normals), ((normals * 0.5 + 0.5) * 255).clip(0, 255).astype(np.uint8))


def test_coco_masks_equal_per_instance_reference(tmp_path):
    """COCO RLEs from the column-major id image equal pycocotools' encoding of each instance mask."""
    import json

    mask_utils = pytest.importorskip("pycocotools.mask")
    from vlatwin.writers.coco import WriterCoco

    ids = np.random.default_rng(8).integers(0, 6, (30, 40)).astype(np.uint32)
    info = {"idToLabels": {str(i): f"/p{i}" for i in range(6)}, "idToSemantics": {str(i): {"class": "c" if i % 2 else "d"} for i in range(6)}}
    writer = WriterCoco(tmp_path, ["cam"], {"rgb", "instance_segmentation"}, classes=["c", "d"])
    data = json.loads(writer.encode_frame(3, {"cam": {"instance_segmentation": {"data": ids, "info": info}}})["coco/frames/cam_0003.json"])
    annotations = data["annotations"]
    assert [a["vlatwin_prim_path"] for a in annotations] == [f"/p{i}" for i in range(2, 6)]
    for a, inst in zip(annotations, range(2, 6)):
        rle = mask_utils.encode(np.asfortranarray((ids == inst).astype(np.uint8)))
        assert a["segmentation"]["counts"] == rle["counts"].decode("ascii")
        assert a["area"] == float(mask_utils.area(rle))


def realism_reference(rgba, cfg, rng, fx):
    from vlatwin.sensors.camera.realism import linear_to_srgb, tonemap

    c = rgba[..., :3].astype(np.float32) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    linear *= (2.0**cfg.exposure_ev) * cfg.gain
    if cfg.vignetting > 0:
        height, width = rgba.shape[:2]
        u = (np.arange(width) + 0.5 - width / 2) / fx
        v = (np.arange(height) + 0.5 - height / 2) / fx
        cos4 = 1.0 / (1.0 + u[None, :] ** 2 + v[:, None] ** 2) ** 2
        linear *= ((1.0 - cfg.vignetting) + cfg.vignetting * cos4)[..., None]
    linear = tonemap(linear, cfg.tonemap)
    if cfg.shot_noise > 0:
        linear = linear + rng.standard_normal(linear.shape, dtype=np.float32) * cfg.shot_noise * np.sqrt(np.clip(linear, 0, None))
    if cfg.read_noise > 0:
        linear = linear + rng.standard_normal(linear.shape, dtype=np.float32) * cfg.read_noise
    linear = np.clip(linear, 0.0, 1.0)
    if cfg.gamma != 1.0:
        linear = np.power(linear, 1.0 / cfg.gamma)
    out = rgba.copy()
    out[..., :3] = linear_to_srgb(linear)
    return out


@pytest.mark.parametrize(
    "settings",
    [
        {"shot_noise": 0.01, "read_noise": 0.002, "vignetting": 0.25},
        {"exposure_ev": 0.7, "gain": 1.3, "tonemap": "aces", "gamma": 1.2},
        {"exposure_ev": -1.0, "tonemap": "reinhard", "shot_noise": 0.05, "vignetting": 1.0},
    ],
)
def test_realism_equals_reference(settings):
    """Table lookup, cached vignetting and in-place noise give the formula's image bit for bit (same random draws)."""
    from vlatwin.config.generate_cfg import RealismCfg
    from vlatwin.sensors.camera.realism import apply_realism, srgb_to_linear

    image = np.random.default_rng(9).integers(0, 256, (61, 83, 4), dtype=np.uint8)
    cfg = RealismCfg(**settings)
    for _ in range(2):  # the second frame reads the cached vignetting
        assert np.array_equal(apply_realism(image, cfg, np.random.default_rng(3), fx=70.0), realism_reference(image, cfg, np.random.default_rng(3), 70.0))
    c = image[..., :3].astype(np.float32) / 255.0
    assert np.array_equal(srgb_to_linear(image[..., :3]), np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4))
