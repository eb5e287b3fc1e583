"""Fidelity metrics against closed forms and brute force: PSNR, SSIM, Chamfer, band coverage, residuals, J(t)."""

import itertools
import math

import numpy as np
import pytest

pytest.importorskip("scipy")

from vlatwin.errors import VlatwinError
from vlatwin.report.fidelity_metrics import (
    band_coverage,
    chamfer,
    divergence_curve,
    psnr,
    residual_stats,
    ssim,
)


def _texture(h=48, w=64, seed=0) -> np.ndarray:
    """A smooth float image in [0.2, 0.8] with structure at several scales."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.15 * np.sin(x / 3.0) * np.cos(y / 5.0) + 0.1 * np.sin((x + y) / 7.0)
    return img + 0.02 * rng.standard_normal((h, w))


# ------------------------------------------------------------------------------------------ PSNR
def test_psnr_closed_form_and_identical():
    a = np.full((20, 30, 3), 100, dtype=np.uint8)
    b = a + np.uint8(5)  # MSE = 25
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25.0), rel=1e-12)
    assert psnr(b, a) == pytest.approx(psnr(a, b))
    assert psnr(a, a) == math.inf
    # uint8 must not wrap around: 0 vs 255 is the full range -> 0 dB
    assert psnr(np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)) == pytest.approx(0.0, abs=1e-12)
    # floats default to range 1.0; an explicit range overrides
    f = np.zeros((8, 8))
    assert psnr(f, f + 0.1) == pytest.approx(20.0, rel=1e-9)
    assert psnr(f, f + 0.1, data_range=2.0) == pytest.approx(20 * math.log10(2.0 / 0.1), rel=1e-9)


def test_psnr_rejects_bad_input():
    with pytest.raises(VlatwinError, match="shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(VlatwinError, match="NaN"):
        psnr(np.zeros((4, 4)), np.full((4, 4), np.nan))


# ------------------------------------------------------------------------------------------ SSIM
def test_ssim_identical_is_one():
    img = _texture()
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    rgb = (np.stack([img, img[::-1], img[:, ::-1]], axis=2) * 255).astype(np.uint8)
    assert ssim(rgb, rgb) == pytest.approx(1.0, abs=1e-12)


def test_ssim_decreases_with_noise():
    img = _texture()
    noise = np.random.default_rng(1).standard_normal(img.shape)
    values = [ssim(img, img + s * noise) for s in (0.0, 0.01, 0.03, 0.1, 0.3)]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    assert values[-1] < 0.5


def test_ssim_contrast_inverted_is_negative():
    img = _texture()
    assert ssim(img, 1.0 - img) < 0.0


def test_ssim_constant_images_closed_form():
    """Two constant images: variances and covariance vanish, SSIM = (2 ma mb + C1) / (ma² + mb² + C1)."""
    ma, mb = 0.3, 0.7
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * ma * mb + c1) / (ma**2 + mb**2 + c1)
    assert ssim(np.full((32, 32), ma), np.full((32, 32), mb)) == pytest.approx(expected, rel=1e-9)
    # uint8 with range 255, per channel then averaged (two channels with different means)
    a = np.zeros((16, 16, 2), np.uint8)
    b = np.zeros((16, 16, 2), np.uint8)
    a[..., 0], b[..., 0], a[..., 1], b[..., 1] = 50, 100, 200, 200
    c1 = (0.01 * 255) ** 2
    ch0 = (2 * 50 * 100 + c1) / (50**2 + 100**2 + c1)
    assert ssim(a, b) == pytest.approx((ch0 + 1.0) / 2, rel=1e-9)


def test_ssim_symmetric_and_shape_checked():
    img = _texture()
    other = _texture(seed=5) * 0.9
    assert ssim(img, other) == pytest.approx(ssim(other, img), rel=1e-12)
    with pytest.raises(VlatwinError, match="shape"):
        ssim(img, img[:-1])
    with pytest.raises(VlatwinError, match="HxW"):
        ssim(np.zeros(10), np.zeros(10))


# ------------------------------------------------------------------------------------------ Chamfer
def test_chamfer_matches_brute_force():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(120, 3))
    b = rng.normal(size=(90, 3)) + 0.3
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    ab, ba = d.min(axis=1), d.min(axis=0)
    out = chamfer(a, b)
    assert out["a_to_b"] == pytest.approx(ab.mean(), rel=1e-12)
    assert out["b_to_a"] == pytest.approx(ba.mean(), rel=1e-12)
    assert out["a_to_b_p95"] == pytest.approx(np.percentile(ab, 95), rel=1e-12)
    assert out["b_to_a_p95"] == pytest.approx(np.percentile(ba, 95), rel=1e-12)
    assert out["mean"] == pytest.approx(0.5 * (ab.mean() + ba.mean()), rel=1e-12)
    assert chamfer(a, a)["mean"] == 0.0


def test_chamfer_translation():
    """Points 10 m apart shifted by 1 cm: every nearest neighbour is the shifted copy, distance 1 cm."""
    a = np.random.default_rng(3).uniform(-1, 1, size=(6, 3)) * 0.1 + 10.0 * np.arange(6)[:, None]
    shift = np.array([0.006, 0.0, 0.008])  # |shift| = 0.01
    out = chamfer(a, a + shift)
    for key in ("mean", "a_to_b", "b_to_a", "a_to_b_p95", "b_to_a_p95"):
        assert out[key] == pytest.approx(0.01, rel=1e-9)


def test_chamfer_rejects_bad_clouds():
    good = np.zeros((4, 3))
    with pytest.raises(VlatwinError, match="empty"):
        chamfer(np.zeros((0, 3)), good)
    with pytest.raises(VlatwinError, match="NaN"):
        chamfer(good, np.array([[0.0, np.nan, 0.0]]))
    with pytest.raises(VlatwinError, match=r"\(N, D\)"):
        chamfer(np.zeros(3), good)
    with pytest.raises(VlatwinError, match="dimension"):
        chamfer(good, np.zeros((4, 2)))


# ------------------------------------------------------------------------------------------ trajectories
def test_band_coverage_hand_computed():
    y = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, np.nan], [6.0, 7.0]])
    lo = np.array([[-1.0, 1.5], [2.0, 2.0], [5.0, 0.0], [0.0, 0.0]])
    hi = np.array([[1.0, 2.0], [2.0, 3.0], [6.0, 9.0], [5.0, 9.0]])
    # inside: (0,0) yes, (0,1) no, (1,0) yes (edge), (1,1) yes (edge), (2,0) no, (2,1) NaN skipped, (3,0) no, (3,1) yes
    assert band_coverage(y, lo, hi) == pytest.approx(4 / 7)
    assert band_coverage(y, lo, hi, mask=np.array([False, True, True, False])) == pytest.approx(2 / 3)
    assert math.isnan(band_coverage(y, lo, hi, mask=np.zeros(4, bool)))
    with pytest.raises(VlatwinError, match="mask"):
        band_coverage(y, lo, hi, mask=np.ones(3, bool))
    with pytest.raises(VlatwinError, match="lo"):
        band_coverage(y, lo[:3], hi)


def test_residual_stats_hand_computed():
    measured = np.zeros((4, 2))
    predicted = np.array([[1.0, 0.0], [-1.0, 2.0], [3.0, np.nan], [1.0, -2.0]])
    out = residual_stats(measured, predicted)
    np.testing.assert_allclose(out["rms"], [math.sqrt(12 / 4), math.sqrt(8 / 3)])
    np.testing.assert_allclose(out["mae"], [6 / 4, 4 / 3])
    np.testing.assert_allclose(out["max_abs"], [3.0, 2.0])
    np.testing.assert_allclose(out["bias"], [4 / 4, 0.0])
    np.testing.assert_allclose(out["p95_abs"], [np.percentile([1, 1, 3, 1], 95), 2.0])
    np.testing.assert_array_equal(out["count"], [4, 3])
    assert out["rms_all"] == pytest.approx(math.sqrt(20 / 7))
    # sign convention: predicted - measured
    assert residual_stats(np.zeros((2, 1)), np.full((2, 1), 0.5))["bias"][0] == pytest.approx(0.5)
    masked = residual_stats(measured, predicted, mask=np.array([True, False, False, True]))
    np.testing.assert_allclose(masked["rms"], [1.0, math.sqrt(2.0)])
    assert masked["rms_all"] == pytest.approx(math.sqrt(6 / 4))
    empty = residual_stats(measured, predicted, mask=np.zeros(4, bool))
    assert np.isnan(empty["rms"]).all() and math.isnan(empty["rms_all"])


def test_divergence_curve_hand_computed():
    t = np.array([0.0, 1.0, 3.0])
    measured = np.zeros((3, 2))
    predicted = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])  # squared norms 0, 2, 4
    np.testing.assert_allclose(divergence_curve(t, measured, predicted), [0.0, 1.0, 1.0 + 6.0])
    # a constant error e on one joint over T seconds gives e² T
    tt = np.linspace(0.0, 2.0, 21)
    curve = divergence_curve(tt, np.zeros(21), np.full(21, 0.1))
    assert curve[0] == 0.0 and curve[-1] == pytest.approx(0.02)
    assert np.all(np.diff(curve) >= 0)
    # a blown-up twin is never shown as perfect
    bad = predicted.copy()
    bad[1, 0] = np.nan
    out = divergence_curve(t, measured, bad)
    assert out[0] == 0.0 and np.isnan(out[1:]).all()
    with pytest.raises(VlatwinError, match="rows"):
        divergence_curve(t[:2], measured, predicted)
