"""The LIDAR model's vectorised per-return code equals the straightforward numpy it replaced, bit for bit."""

import numpy as np
import pytest

from vlatwin.sensors.camera.labels import LabelTable
from vlatwin.sensors.lidar.newton_lidar import shape_tables
from vlatwin.sensors.lidar.profiles import DropoutCfg, resolve_profile
from vlatwin.sensors.lidar.sensor_model import REFERENCE_RANGE, returns


def _returns_reference(range_true, cos_incidence, reflectivity, profile, rng):
    """The per-return model as first written (one numpy expression per quantity)."""
    r = range_true
    keep = np.isfinite(r) & (r >= profile.min_range) & (r <= profile.max_range)
    measured = r.astype(np.float32, copy=True)
    if rng is not None:
        d = profile.dropout
        p = d.base + d.at_max_range * (r / profile.max_range) ** 2 + d.grazing * (1.0 - cos_incidence) ** 2
        keep &= rng.random(r.shape, dtype=np.float32) >= p
        if profile.range_sigma > 0:
            measured += rng.standard_normal(r.shape, dtype=np.float32) * np.float32(profile.range_sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        falloff = np.minimum(1.0, (REFERENCE_RANGE / np.where(keep, r, REFERENCE_RANGE)) ** 2)
    intensity = np.clip(reflectivity * cos_incidence * falloff, 0.0, 1.0).astype(np.float32)
    return keep, measured, intensity


def _synthetic_returns(n, dtype, seed):
    rng = np.random.default_rng(seed)
    r = rng.uniform(-5.0, 140.0, n).astype(dtype)
    r[rng.choice(n, n // 20, replace=False)] = 0.0
    r[rng.choice(n, n // 50, replace=False)] = np.inf
    r[rng.choice(n, n // 50, replace=False)] = -np.inf
    r[rng.choice(n, n // 50, replace=False)] = np.nan
    cos = rng.uniform(0.0, 1.0, n).astype(dtype)
    refl = rng.uniform(0.0, 1.2, n).astype(np.float32)
    return r, cos, refl


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "profile",
    [
        resolve_profile("OS1-128"),
        resolve_profile("Mid-360"),
        resolve_profile("VLP-16").model_copy(update={"range_sigma": 0.0, "min_range": 0.0}),
        resolve_profile("HDL-64E").model_copy(update={"dropout": DropoutCfg(base=0.1, at_max_range=0.2, grazing=0.05)}),
    ],
    ids=["os1-128", "mid-360", "no-noise-zero-min", "dropout-base"],
)
@pytest.mark.parametrize("noisy", [True, False])
def test_returns_matches_reference(dtype, profile, noisy):
    """keep / measured range / intensity equal the reference exactly, misses and non-finite ranges included,
    and both consume the random generator identically."""
    r, cos, refl = _synthetic_returns(20_000, dtype, seed=3)
    rng_a, rng_b = (np.random.default_rng(11), np.random.default_rng(11)) if noisy else (None, None)
    got = returns(r, cos, refl, profile, rng_a)
    want = _returns_reference(r, cos, refl, profile, rng_b)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    if noisy:
        assert rng_a.random() == rng_b.random()


def test_shape_tables_match_per_scan_lookup():
    """Table lookups (index clamped to the extra last entry) equal the per-scan reflectivity / label lookup,
    for known shapes, shapes past the reflectivity table and renderer misses (0xFFFFFFFF)."""
    labels = LabelTable(
        instance_paths=("/World/a", "/World/b", "/World/c"),
        instance_classes=("cube", "table", "cube"),
        shape_instance=np.array([0, -1, 1, 2, -1, 0, 1], dtype=np.int32),
    )
    reflectivity = np.array([0.1, 0.2, 0.3, 0.4, 0.5], dtype=np.float32)  # shorter than the label table
    refl_of, semantic_of, instance_of = shape_tables(labels, reflectivity)
    shapes = np.array([0, 1, 2, 3, 4, 5, 6, 7, 100, 0xFFFFFFFF, 6, 0], dtype=np.uint32)
    row = np.minimum(shapes, len(refl_of) - 1)
    valid = shapes < len(reflectivity)
    want_refl = np.where(valid, reflectivity[np.where(valid, shapes, 0)], 0.0)
    want_sem, want_inst = labels.lookup_images(shapes)
    for got, want in ((refl_of[row], want_refl), (semantic_of[row], want_sem), (instance_of[row], want_inst)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
