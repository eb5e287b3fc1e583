"""Image statistics of the LeRobot writer: the 256-bin fast path gives LeRobot's histogram quantiles exactly
and mean/std exactly (float64), matching a direct computation."""

import numpy as np

from vlatwin.writers.lerobot import _uint8_stats, feature_stats, image_stats


def test_uint8_fast_path_matches_the_general_path():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(50_000, 3)).astype(np.uint8)
    pixels[:, 1] = pixels[:, 1] // 4 + 100  # a narrow channel: quantiles inside a short range
    pixels[:, 2] = 7  # a constant channel
    fast, slow = _uint8_stats(pixels), feature_stats(pixels.astype(np.float64))
    for key in ("min", "max", "q01", "q10", "q50", "q90", "q99"):
        np.testing.assert_allclose(fast[key], slow[key], rtol=0, atol=1e-9, err_msg=key)
    np.testing.assert_allclose(fast["mean"], pixels.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fast["std"], pixels.astype(np.float64).std(axis=0), rtol=1e-12)
    assert int(fast["count"][0]) == 50_000


def test_image_stats_are_per_channel_in_unit_range():
    frames = [np.full((8, 8, 3), (0, 128, 255), dtype=np.uint8) for _ in range(5)]
    stats = image_stats(frames)
    assert stats["mean"].shape == (3, 1, 1)
    np.testing.assert_allclose(stats["mean"].ravel(), [0.0, 128 / 255, 1.0])
    np.testing.assert_allclose(stats["std"].ravel(), 0.0, atol=1e-12)
    assert int(stats["count"][0]) == 5


def test_non_finite_samples_carry_no_statistics():
    """Depth's inf (no hit) is left out: stats.json stays finite; a column without finite values reads 0."""
    x = np.array([[1.0, np.inf, np.inf], [3.0, 2.0, np.nan], [np.inf, 4.0, np.inf]], dtype=np.float32)
    stats = feature_stats(x)
    np.testing.assert_allclose(stats["mean"], [2.0, 3.0, 0.0])
    np.testing.assert_allclose(stats["min"], [1.0, 2.0, 0.0])
    np.testing.assert_allclose(stats["max"], [3.0, 4.0, 0.0])
    assert all(np.all(np.isfinite(v)) for v in stats.values())
    assert int(stats["count"][0]) == 3
