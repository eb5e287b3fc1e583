"""Numbers that say how closely a twin reproduces its robot: image, point-cloud and joint-trajectory metrics.

Pure numpy; scipy (``ndimage`` for SSIM, ``spatial`` for Chamfer) is imported inside the functions that
need it, so importing this module stays light. Every function raises a one-line
:class:`~vlatwin.errors.VlatwinError` naming the argument when its input cannot be used.

Conventions: the residual is ``predicted - measured`` (so a positive bias means the twin overshoots);
joint arrays are ``(N, J)`` (``(N,)`` is read as one joint); times are seconds, positions rad | m.
"""

from __future__ import annotations

import numpy as np

from vlatwin.errors import VlatwinError

#: SSIM window: Gaussian, sigma 1.5, truncated to 11 x 11 (radius int(3.5 * 1.5 + 0.5) = 5), Wang et al. 2004.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_RADIUS = 5
SSIM_K1, SSIM_K2 = 0.01, 0.03


# ------------------------------------------------------------------------------------------ images
def _image_pair(a, b, fn: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise VlatwinError(f"{fn}: images differ in shape, {a.shape} vs {b.shape}")
    if a.size == 0:
        raise VlatwinError(f"{fn}: empty image, shape {a.shape}")
    return a, b


def _data_range(a: np.ndarray, data_range: float | None, fn: str) -> float:
    if data_range is not None:
        value = float(data_range)
        if not np.isfinite(value) or value <= 0:
            raise VlatwinError(f"{fn}: data_range must be a positive number, got {data_range!r}")
        return value
    if a.dtype == np.uint8:
        return 255.0
    if np.issubdtype(a.dtype, np.integer):
        return float(np.iinfo(a.dtype).max)
    return 1.0


def _as_float(a: np.ndarray, fn: str, which: str) -> np.ndarray:
    out = a.astype(np.float64)
    if not np.isfinite(out).all():
        raise VlatwinError(f"{fn}: image {which} holds NaN or inf values")
    return out


def psnr(a, b, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio [dB] of two same-shape images: ``10 log10(data_range^2 / MSE)``.

    ``data_range`` defaults to 255 for uint8 (the integer maximum for other integer types) and 1.0 for floats.
    Identical images give ``inf``.
    """
    a, b = _image_pair(a, b, "psnr")
    peak = _data_range(a, data_range, "psnr")
    mse = float(np.mean((_as_float(a, "psnr", "a") - _as_float(b, "psnr", "b")) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse))


def _ssim_channel(x: np.ndarray, y: np.ndarray, peak: float) -> float:
    from scipy.ndimage import gaussian_filter

    def blur(z: np.ndarray) -> np.ndarray:
        return gaussian_filter(z, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    smap = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    r = SSIM_RADIUS
    if smap.shape[0] > 2 * r and smap.shape[1] > 2 * r:
        smap = smap[r:-r, r:-r]  # drop the border where the window reaches past the image (as scikit-image)
    return float(smap.mean())


def ssim(a, b, data_range: float | None = None) -> float:
    """Mean structural similarity (Wang et al. 2004) of two same-shape HxW or HxWxC images.

    11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, population (co)variances; computed per
    channel and averaged; the mean skips the 5-pixel border when the image is larger than the window.
    1.0 for identical images, near 0 for unrelated ones, negative for anti-correlated structure.
    """
    a, b = _image_pair(a, b, "ssim")
    if a.ndim not in (2, 3):
        raise VlatwinError(f"ssim: expected an HxW or HxWxC image, got shape {a.shape}")
    peak = _data_range(a, data_range, "ssim")
    x, y = _as_float(a, "ssim", "a"), _as_float(b, "ssim", "b")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    return float(np.mean([_ssim_channel(x[..., c], y[..., c], peak) for c in range(x.shape[2])]))


# ------------------------------------------------------------------------------------------ point clouds
def _cloud(points, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] == 0:
        raise VlatwinError(f"chamfer: point cloud {name} must be (N, D), got shape {points.shape}")
    if points.shape[0] == 0:
        raise VlatwinError(f"chamfer: point cloud {name} is empty")
    if not np.isfinite(points).all():
        raise VlatwinError(f"chamfer: point cloud {name} holds NaN or inf coordinates (drop invalid returns first)")
    return points


def chamfer(a, b) -> dict:
    """Nearest-neighbour distances [m] between two point clouds ``(N, 3)`` and ``(M, 3)``.

    Keys: ``a_to_b`` / ``b_to_a`` (mean distance from each point of one cloud to the nearest of the
    other), ``a_to_b_p95`` / ``b_to_a_p95`` (their 95th percentiles), and ``mean`` (the symmetric Chamfer
    distance, the mean of the two directed means).
    """
    from scipy.spatial import cKDTree

    a, b = _cloud(a, "a"), _cloud(b, "b")
    if a.shape[1] != b.shape[1]:
        raise VlatwinError(f"chamfer: point clouds differ in dimension, {a.shape[1]} vs {b.shape[1]}")
    d_ab, _ = cKDTree(b).query(a, k=1)
    d_ba, _ = cKDTree(a).query(b, k=1)
    a_to_b, b_to_a = float(np.mean(d_ab)), float(np.mean(d_ba))
    return {
        "mean": 0.5 * (a_to_b + b_to_a),
        "a_to_b": a_to_b,
        "b_to_a": b_to_a,
        "a_to_b_p95": float(np.percentile(d_ab, 95)),
        "b_to_a_p95": float(np.percentile(d_ba, 95)),
    }


# ------------------------------------------------------------------------------------------ trajectories
def _joints(values, name: str, fn: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise VlatwinError(f"{fn}: {name} must be (N, J), got shape {values.shape}")
    return values


def _same(ref: np.ndarray, other: np.ndarray, name: str, fn: str) -> None:
    if other.shape != ref.shape:
        raise VlatwinError(f"{fn}: {name}: expected shape {ref.shape}, got {other.shape}")


def _rows(mask, n: int, fn: str) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != (n,):
        raise VlatwinError(f"{fn}: mask: expected shape ({n},), got {mask.shape}")
    return mask.astype(bool)


def band_coverage(measured, lo, hi, mask=None) -> float:
    """Share in [0, 1] of the finite samples with ``lo <= measured <= hi`` (NaN when none is finite).

    ``measured``, ``lo``, ``hi`` are ``(N, J)``; ``mask`` ``(N,)`` bool selects the rows counted (e.g. the
    held-out samples). A sample counts when all three of its values are finite.
    """
    y = _joints(measured, "measured", "band_coverage")
    lo, hi = _joints(lo, "lo", "band_coverage"), _joints(hi, "hi", "band_coverage")
    _same(y, lo, "lo", "band_coverage")
    _same(y, hi, "hi", "band_coverage")
    rows = _rows(mask, y.shape[0], "band_coverage")
    y, lo, hi = y[rows], lo[rows], hi[rows]
    finite = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
    total = int(np.count_nonzero(finite))
    if total == 0:
        return float("nan")
    inside = finite & (lo <= y) & (y <= hi)
    return float(np.count_nonzero(inside) / total)


def residual_stats(measured, predicted, mask=None) -> dict:
    """Per-joint statistics of ``predicted - measured`` over the selected rows (finite samples only).

    Keys holding ``(J,)`` arrays: ``rms``, ``mae``, ``p95_abs`` (95th percentile of |error|), ``max_abs``,
    ``bias`` (mean signed error), ``count`` (finite samples per joint); and the scalar ``rms_all`` (square
    root of the mean squared error over all joints and samples). NaN where a joint has no finite sample.
    """
    y = _joints(measured, "measured", "residual_stats")
    p = _joints(predicted, "predicted", "residual_stats")
    _same(y, p, "predicted", "residual_stats")
    rows = _rows(mask, y.shape[0], "residual_stats")
    err = (p - y)[rows]
    joints = err.shape[1]
    out = {k: np.full(joints, np.nan) for k in ("rms", "mae", "p95_abs", "max_abs", "bias")}
    out["count"] = np.zeros(joints, dtype=int)
    for j in range(joints):
        e = err[:, j]
        e = e[np.isfinite(e)]
        out["count"][j] = e.size
        if e.size == 0:
            continue
        ae = np.abs(e)
        out["rms"][j] = np.sqrt(np.mean(e * e))
        out["mae"][j] = np.mean(ae)
        out["p95_abs"][j] = np.percentile(ae, 95)
        out["max_abs"][j] = np.max(ae)
        out["bias"][j] = np.mean(e)
    finite = err[np.isfinite(err)]
    out["rms_all"] = float(np.sqrt(np.mean(finite * finite))) if finite.size else float("nan")
    return out


def divergence_curve(t, measured, predicted) -> np.ndarray:
    """``J(t) = ∫ ||measured - predicted||² dt`` [rad² s | m² s] by the cumulative trapezoid rule, ``J(t0) = 0``.

    Returns an ``(N,)`` array. A sample with a non-finite error makes J NaN from there on (a twin that blew
    up must not look like a perfect one).
    """
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1:
        raise VlatwinError(f"divergence_curve: t must be (N,), got shape {t.shape}")
    y = _joints(measured, "measured", "divergence_curve")
    p = _joints(predicted, "predicted", "divergence_curve")
    if y.shape[0] != t.size:
        raise VlatwinError(f"divergence_curve: measured: expected {t.size} rows, got shape {y.shape}")
    _same(y, p, "predicted", "divergence_curve")
    if t.size == 0:
        return np.zeros(0)
    sq = np.sum((y - p) ** 2, axis=1)
    steps = 0.5 * (sq[1:] + sq[:-1]) * np.diff(t)
    return np.concatenate([[0.0], np.cumsum(steps)])


__all__ = ["band_coverage", "chamfer", "divergence_curve", "psnr", "residual_stats", "ssim"]
