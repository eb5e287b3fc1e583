"""The HTML fidelity report of a system-identification fit: should the identified twin be trusted?

One self-contained page (inline CSS, inline SVG, optional PNG thumbnails as data URIs; no network, no
script): the verdict on the held-out samples (the ones the fit never saw), the parameter table with 95 %
intervals (and the hidden truth for an emulated robot), the parameter correlation heatmap, per-joint
measured vs nominal vs identified trajectories with the identified twin's 95 % prediction band, the
divergence J(t), per-joint residual statistics, latency and clock sync, safety events and events, and
image / point-cloud fidelity. Every string taken from the data is HTML-escaped.

Times: ``t``, event and safety-event times are on the same (host) clock; the page shows them in seconds
since the first sample. Positions are rad | m; errors are shown in mrad | mm (value x 1e3).
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.report.eval_report import _esc, _num
from vlatwin.report.fidelity_metrics import (
    band_coverage,
    chamfer,
    divergence_curve,
    psnr,
    residual_stats,
    ssim,
)
from vlatwin.report.twin_report import _CSS as _TWIN_CSS
from vlatwin.report.twin_report import (
    MAX_EVENTS,
    _alarm_spans,
    _decimate,
    _nice_ticks,
    _tick_label,
    line_plot_svg,
    plot_frame,
)
from vlatwin.sysid.fit import MODEL_ERROR_CHI2
from vlatwin.writers.storage import atomic_write_bytes

#: Joints drawn as small multiples (the residual table lists all of them).
MAX_JOINT_PLOTS = 16
#: Parameters above which the correlation heatmap labels rows by number only.
MAX_LABELLED_PARAMS = 40
#: |correlation| above which a pair is listed as (nearly) confounded.
CORR_ALARM = 0.9
#: Rows of the confounded-pairs table.
MAX_PAIRS = 200
#: Image pairs shown with thumbnails, and the thumbnail width [px].
MAX_THUMBNAILS = 12
THUMB_WIDTH = 160
#: Held-out band coverage counted as well calibrated for a 95 % band.
CALIBRATED = (0.90, 0.98)

_CSS = (
    _TWIN_CSS
    + """
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
.verdict-line { font-size: 15px; margin: 6px 0 10px; }
tr.unident td { background: #f7f3e8; color: var(--muted); }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 12px; background: #e9c46a;
  color: #3d2e00; margin-right: 6px; }
svg .measured { stroke: #1d232b; stroke-width: 1.1; } svg .nominal { stroke: #e08a1e; stroke-dasharray: 5 3; }
svg .identified { stroke: #2f6db5; stroke-width: 1.6; }
svg .band { fill: #4a7fc1; fill-opacity: 0.22; stroke: none; }
svg .heldout, svg .alarm { fill: #8a5cc7; fill-opacity: 0.10; }
svg .hist { fill: #4a7fc1; } svg .marker { stroke: #d21e1e; stroke-width: 1.2; stroke-dasharray: 3 2; }
svg .cell-text { font-size: 9px; } svg .small { font-size: 10px; }
.thumbs img { image-rendering: auto; border: 1px solid var(--line); display: block; }
.thumbs td { vertical-align: middle; } details { margin: 4px 0 12px; } details li { font-size: 12px; }
.legend i.box { height: 10px; }
#params td { white-space: nowrap; } #params td:last-child { white-space: normal; min-width: 220px; }
#residuals th[colspan] { text-align: center; }
"""
)

_ABBREV = {"nominal": "nom.", "identified": "id."}
_COLORS = {
    "measured": "#1d232b",
    "nominal": "#e08a1e",
    "identified": "#2f6db5",
    "band": "rgba(74,127,193,0.35)",
    "heldout": "rgba(138,92,199,0.25)",
}


# ------------------------------------------------------------------------------------------ data
@dataclass
class ParamRow:
    """One physical parameter of the fit."""

    name: str  # e.g. "drive_stiffness[panda_joint1]"
    unit: str  # e.g. "N*m/rad"
    nominal: float
    value: float  # identified (equals nominal when not identifiable / held)
    std: float | None  # 1-sigma; None when not identifiable
    identifiable: bool
    note: str = ""  # e.g. "confounded with damping[panda_joint1] (corr -1.00)" or "held at nominal"
    truth: float | None = None  # hidden truth, only known for an emulated robot


@dataclass
class FidelityReportData:
    """Everything the fidelity report shows; arrays are validated by :func:`validate_report_data`."""

    title: str
    recording: str  # path of the recording shown in the header
    joint_names: list[str]  # J names
    t: np.ndarray  # (N,) sample times [s] (host clock)
    q_measured: np.ndarray  # (N, J) measured joint positions [rad | m]
    held_out: np.ndarray  # (N,) bool: samples NOT used for fitting (the honest test set)
    q_nominal: np.ndarray | None = None  # (N, J) twin with nominal parameters, same inputs
    q_identified: np.ndarray | None = None  # (N, J) twin with identified parameters
    band_lo: np.ndarray | None = None  # (N, J) 95 % prediction band of the identified twin (incl. sensor noise)
    band_hi: np.ndarray | None = None
    params: list[ParamRow] = field(default_factory=list)
    correlation: np.ndarray | None = None  # (P, P) of the identifiable params, in their order in `params`
    fit: dict = field(default_factory=dict)  # summary shown as a key/value table
    latency_s: np.ndarray | None = None  # measured one-way state latencies [s]
    clock: dict | None = None  # offset_s, skew_ppm, delay_s, samples
    safety_events: list[dict] = field(default_factory=list)  # {"t": s, "kind": str, "reason": str}
    events: list[dict] = field(default_factory=list)  # {"t": s, "level": str, "text": str}
    images: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)  # (name, robot, twin)
    point_clouds: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)  # (name, robot, twin) [m]


def _bad(name: str, expected: Any, got: Any) -> VlatwinError:
    return VlatwinError(f"FidelityReportData.{name}: expected shape {expected}, got {got}")


def _array(data: FidelityReportData, name: str, shape: tuple[int, ...], *, optional: bool = True) -> None:
    value = getattr(data, name)
    if value is None:
        if optional:
            return
        raise VlatwinError(f"FidelityReportData.{name}: required, got None")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise VlatwinError(f"FidelityReportData.{name}: not a numeric array ({exc})") from None
    if arr.shape != shape:
        raise _bad(name, shape, arr.shape)


def validate_report_data(data: FidelityReportData) -> None:
    """Raise a one-line :class:`VlatwinError` naming the first field whose shape or type is wrong."""
    t = np.asarray(data.t, dtype=float) if data.t is not None else None
    if t is None or t.ndim != 1 or t.size == 0:
        raise _bad("t", "(N,) with N >= 1", None if t is None else t.shape)
    if not np.isfinite(t).all():
        raise VlatwinError("FidelityReportData.t: holds NaN or inf sample times")
    n, joints = t.size, len(data.joint_names)
    if joints == 0:
        raise VlatwinError("FidelityReportData.joint_names: empty (expected one name per joint column)")
    _array(data, "q_measured", (n, joints), optional=False)
    held = np.asarray(data.held_out) if data.held_out is not None else None
    if held is None or held.shape != (n,):
        raise _bad("held_out", (n,), None if held is None else held.shape)
    if held.dtype != bool and not np.isin(held, (0, 1)).all():
        raise VlatwinError("FidelityReportData.held_out: expected a bool array (True = not used for fitting)")
    for name in ("q_nominal", "q_identified", "band_lo", "band_hi"):
        _array(data, name, (n, joints))
    if (data.band_lo is None) != (data.band_hi is None):
        missing = "band_hi" if data.band_hi is None else "band_lo"
        raise VlatwinError(f"FidelityReportData.{missing}: required when the other band edge is given")
    for k, row in enumerate(data.params):
        if not isinstance(row, ParamRow):
            raise VlatwinError(f"FidelityReportData.params[{k}]: expected a ParamRow, got {type(row).__name__}")
    if data.correlation is not None:
        corr = np.asarray(data.correlation, dtype=float)
        ident = sum(1 for p in data.params if p.identifiable)
        if corr.ndim != 2 or corr.shape[0] != corr.shape[1]:
            raise _bad("correlation", "(P, P)", corr.shape)
        if data.params and corr.shape[0] != ident:
            raise _bad("correlation", f"({ident}, {ident}) (one row per identifiable param)", corr.shape)
    if data.latency_s is not None and np.asarray(data.latency_s).ndim != 1:
        raise _bad("latency_s", "(K,)", np.asarray(data.latency_s).shape)
    for k, item in enumerate(data.images):
        if len(item) != 3:
            raise VlatwinError(f"FidelityReportData.images[{k}]: expected (name, robot image, twin image)")
        a, b = np.asarray(item[1]), np.asarray(item[2])
        if a.ndim not in (2, 3) or a.shape != b.shape:
            raise VlatwinError(
                f"FidelityReportData.images[{k}] ({item[0]}): expected two HxW[xC] images of one shape, "
                f"got {a.shape} and {b.shape}"
            )
    for k, item in enumerate(data.point_clouds):
        if len(item) != 3:
            raise VlatwinError(f"FidelityReportData.point_clouds[{k}]: expected (name, robot cloud, twin cloud)")
        for which, cloud in (("robot", item[1]), ("twin", item[2])):
            shape = np.asarray(cloud).shape
            if len(shape) != 2 or shape[1] != 3:
                raise VlatwinError(
                    f"FidelityReportData.point_clouds[{k}] ({item[0]}): {which} cloud: expected shape (N, 3), got {shape}"
                )


# ------------------------------------------------------------------------------------------ numbers
def _f(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _calibration(coverage: float | None) -> str | None:
    if coverage is None:
        return None
    if coverage < CALIBRATED[0]:
        return "over-confident"
    if coverage > CALIBRATED[1]:
        return "under-confident"
    return "well-calibrated"


def fidelity_summary(data: FidelityReportData) -> dict:
    """The numbers of the verdict (None where the data lacks them); the page and the CLI show these.

    Keys: ``duration_s``, ``samples``, ``joints``, ``held_out_samples``, ``held_out_rms_nominal`` and
    ``held_out_rms_identified`` (RMS of twin - measured over all joints of the held-out samples [rad | m]),
    ``fit_rms_nominal`` / ``fit_rms_identified`` (the same on the samples used for fitting: far below the
    held-out value means over-fitting), ``improvement`` (held-out nominal / identified RMS),
    ``held_out_band_coverage`` (share of held-out measured samples inside the identified twin's 95 %
    band), ``band_calibration`` ("well-calibrated" for 0.90-0.98, "over-confident" below: band too narrow,
    "under-confident" above: band too wide), ``final_J_nominal`` / ``final_J_identified`` [rad² s],
    ``params_total``, ``params_identifiable``, ``params_not_identifiable``, ``reduced_chi2`` (the fit's squared
    residuals per degree of freedom in units of the noise floor: far above 1, model error dominates).
    """
    validate_report_data(data)
    t = np.asarray(data.t, dtype=float)
    q = np.asarray(data.q_measured, dtype=float)
    held = np.asarray(data.held_out).astype(bool)
    fit_rows = ~held
    out: dict[str, Any] = {
        "duration_s": float(t[-1] - t[0]),
        "samples": int(t.size),
        "joints": len(data.joint_names),
        "held_out_samples": int(np.count_nonzero(held)),
    }
    for label, pred in (("nominal", data.q_nominal), ("identified", data.q_identified)):
        if pred is None:
            out[f"held_out_rms_{label}"] = out[f"fit_rms_{label}"] = out[f"final_J_{label}"] = None
            continue
        pred = np.asarray(pred, dtype=float)
        out[f"held_out_rms_{label}"] = _f(residual_stats(q, pred, held)["rms_all"]) if held.any() else None
        out[f"fit_rms_{label}"] = _f(residual_stats(q, pred, fit_rows)["rms_all"]) if fit_rows.any() else None
        out[f"final_J_{label}"] = _f(divergence_curve(t, q, pred)[-1])
    nom, ident = out["held_out_rms_nominal"], out["held_out_rms_identified"]
    out["improvement"] = (nom / ident if ident > 0 else math.inf) if nom is not None and ident is not None else None
    coverage = None
    if data.band_lo is not None and held.any():
        coverage = _f(band_coverage(q, data.band_lo, data.band_hi, held))
    out["held_out_band_coverage"] = coverage
    out["band_calibration"] = _calibration(coverage)
    chi2 = _f((data.fit or {}).get("reduced_chi2"))
    out["reduced_chi2"] = chi2
    out["params_total"] = len(data.params)
    out["params_identifiable"] = sum(1 for p in data.params if p.identifiable)
    out["params_not_identifiable"] = out["params_total"] - out["params_identifiable"]
    return out


# ------------------------------------------------------------------------------------------ formatting
def _sig(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits ("—" for None / NaN / inf)."""
    v = _f(value)
    return "—" if v is None else f"{v:.{digits}g}"


def _milli(value: Any, digits: int = 3) -> str:
    v = _f(value)
    return "—" if v is None else f"{1e3 * v:.{digits}f}"


def _pct(value: Any, digits: int = 1) -> str:
    v = _f(value)
    return "—" if v is None else f"{100.0 * v:.{digits}f} %"


def _factor(value: Any) -> str:
    v = _f(value)
    return "—" if v is None else f"{v:.2f}×"


def _cell(value: Any) -> str:
    """A fit-summary value as short text."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _sig(value, 6)
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


def _spans(t: np.ndarray, held: np.ndarray) -> list[tuple[float, float]]:
    return _alarm_spans(t, held.astype(float))


def _legend(items: Sequence[tuple[str, str]]) -> str:
    spans = []
    for key, label in items:
        box = key in ("band", "heldout")
        cls = ' class="box"' if box else ""
        spans.append(f'<span><i{cls} style="background:{_COLORS[key]}"></i>{_esc(label)}</span>')
    return f'<p class="legend meta">{"".join(spans)}</p>\n'


# ------------------------------------------------------------------------------------------ SVG
def band_plot_svg(
    t: np.ndarray,
    lines: Sequence[tuple[np.ndarray, str]],
    *,
    band: tuple[np.ndarray, np.ndarray] | None,
    shade: Sequence[tuple[float, float]],
    svg_id: str,
    title: str,
    width: int = 370,
    height: int = 180,
) -> str:
    """An inline ``<svg>``: shaded ``shade`` spans, the band as one ``<polygon>``, one ``<polyline>`` per line.

    Lines and both band edges are decimated to at most ``twin_report.MAX_POINTS`` points.
    """
    left, right, top, bottom = 52, 8, 20, 24
    pw, ph = width - left - right, height - top - bottom
    t = np.asarray(t, dtype=float)
    pts = [_decimate(t, np.asarray(y, float)) + (cls,) for y, cls in lines]
    edges = [_decimate(t, np.asarray(e, float)) for e in band] if band is not None else []
    all_y = np.concatenate([p[1] for p in pts] + [e[1] for e in edges] + [np.zeros(0)])
    t0, t1 = float(t.min()), float(t.max())
    if t1 <= t0:
        t1 = t0 + 1.0
    parts, sx, sy = plot_frame(
        svg_id=svg_id, title=title, width=width, height=height, box=(left, top, pw, ph), t_range=(t0, t1), y_values=all_y,
        shade=shade, shade_class="heldout", title_y=13, tick_class="small", x_ticks=5, x_label_dy=15,
    )

    def coords(tt, yy):
        return " ".join(f"{x:.1f},{v:.1f}" for x, v in zip(sx(tt), sy(yy), strict=True))

    if len(edges) == 2 and edges[0][0].size and edges[1][0].size:
        (tl, lo), (th, hi) = edges
        poly = coords(tl, lo) + " " + coords(th[::-1], hi[::-1])
        parts.append(f'<polygon class="band" points="{poly}"/>')
    for tt, yy, cls in pts:
        if tt.size:
            parts.append(f'<polyline class="{_esc(cls)}" points="{coords(tt, yy)}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _corr_color(c: float) -> str:
    if not math.isfinite(c):
        return "#c8c8c8"
    c = max(-1.0, min(1.0, c))
    white = (247, 247, 247)
    end = (178, 24, 43) if c > 0 else (33, 102, 172)
    f = abs(c)
    r, g, b = (round(w + (e - w) * f) for w, e in zip(white, end, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def correlation_svg(corr: np.ndarray, labels: Sequence[str], *, svg_id: str = "correlation") -> str:
    """A diverging (blue -1 … white 0 … red +1) heatmap of a correlation matrix, with a colour scale.

    Up to :data:`MAX_LABELLED_PARAMS` rows are labelled ``k name`` on the left and ``k`` on top; above that
    only every few numbers are drawn (the page lists the numbers). Each cell has a ``<title>`` tooltip.
    """
    corr = np.asarray(corr, dtype=float)
    p = corr.shape[0]
    cell = int(max(6, min(30, 600 // max(p, 1))))
    labelled = p <= MAX_LABELLED_PARAMS
    names = [f"{k + 1} {_short(n, 34)}" for k, n in enumerate(labels)] if labelled else [str(k + 1) for k in range(p)]
    label_w = int(min(260, 8 + 6.4 * max((len(s) for s in names), default=1)))
    top, legend_w = 22, 70
    grid = cell * p
    width, height = label_w + grid + legend_w, top + grid + 24
    step = 1 if labelled or cell >= 12 else math.ceil(12 / cell)
    font = 11 if cell >= 14 else 9
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" id="{_esc(svg_id)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="parameter correlation">'
        )
    ]
    for i in range(p):
        y = top + i * cell
        if i % step == 0 or i == p - 1:
            parts.append(
                f'<text x="{label_w - 4}" y="{y + cell / 2 + font / 2 - 1:.1f}" text-anchor="end" '
                f'style="font-size:{font}px">{_esc(names[i])}</text>'
            )
            parts.append(
                f'<text x="{label_w + i * cell + cell / 2:.1f}" y="{top - 5}" text-anchor="middle" '
                f'style="font-size:{font}px">{i + 1}</text>'
            )
        for j in range(p):
            c = float(corr[i, j])
            tip = f"{labels[i]} × {labels[j]}: {_num(c if math.isfinite(c) else None, 3)}"
            parts.append(
                f'<rect x="{label_w + j * cell}" y="{y}" width="{cell}" height="{cell}" fill="{_corr_color(c)}">'
                f"<title>{_esc(tip)}</title></rect>"
            )
            if cell >= 26 and math.isfinite(c):
                ink = "#ffffff" if abs(c) > 0.6 else "#1d232b"
                parts.append(
                    f'<text class="cell-text" x="{label_w + j * cell + cell / 2:.1f}" y="{y + cell / 2 + 3:.1f}" '
                    f'text-anchor="middle" style="fill:{ink}">{c:.2f}</text>'
                )
    parts.append(
        f'<rect x="{label_w}" y="{top}" width="{grid}" height="{grid}" fill="none" stroke="#5f6b7a" stroke-width="0.8"/>'
    )
    # colour scale
    lx, steps, lh = label_w + grid + 14, 20, min(grid, 200)
    for k in range(steps):
        c = 1.0 - 2.0 * (k + 0.5) / steps
        parts.append(
            f'<rect x="{lx}" y="{top + k * lh / steps:.1f}" width="14" height="{lh / steps + 0.5:.1f}" '
            f'fill="{_corr_color(c)}"/>'
        )
    for value, frac in (("+1", 0.0), ("0", 0.5), ("−1", 1.0)):
        parts.append(f'<text class="small" x="{lx + 18}" y="{top + frac * lh + 4:.1f}">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(values: np.ndarray, *, svg_id: str, title: str, unit: str, markers: dict[str, float]) -> str:
    """Bars of a histogram of the finite ``values`` (about 30 bins), with dashed vertical ``markers``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    width, height = 560, 200
    left, right, top, bottom = 52, 12, 22, 30
    pw, ph = width - left - right, height - top - bottom
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" id="{_esc(svg_id)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title)}">'
        ),
        f'<text x="{left}" y="14">{_esc(title)}</text>',
    ]
    if values.size == 0:
        parts.append(f'<text x="{left}" y="{top + ph / 2}">no finite values</text></svg>')
        return "".join(parts)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    counts, edges = np.histogram(values, bins=min(30, max(5, int(np.sqrt(values.size)))), range=(lo, hi))
    cmax = max(int(counts.max()), 1)

    def sx(v):
        return left + pw * (v - lo) / (hi - lo)

    for tick in _nice_ticks(0, cmax, 4):
        y = top + ph * (1 - tick / cmax)
        parts.append(f'<line class="gridline" x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}"/>')
        parts.append(f'<text class="small" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_tick_label(tick)}</text>')
    for k, n in enumerate(counts):
        x0, x1 = sx(edges[k]), sx(edges[k + 1])
        h = ph * n / cmax
        parts.append(
            f'<rect class="hist" x="{x0 + 0.5:.1f}" y="{top + ph - h:.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
            f'height="{h:.1f}"><title>{_sig(edges[k])}–{_sig(edges[k + 1])} {_esc(unit)}: {int(n)}</title></rect>'
        )
    for tick in _nice_ticks(lo, hi, 6):
        parts.append(
            f'<text class="small" x="{sx(tick):.1f}" y="{top + ph + 15}" text-anchor="middle">{_tick_label(tick)}</text>'
        )
    parts.append(
        f'<text class="small" x="{left - 4}" y="{top - 6}" text-anchor="end">count</text>'
        f'<text class="small" x="{left + pw}" y="{top + ph + 27}" text-anchor="end">{_esc(unit)}</text>'
        f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>'
    )
    for k, (name, value) in enumerate(markers.items()):
        if value is None or not math.isfinite(value):
            continue
        x = sx(min(max(value, lo), hi))
        parts.append(f'<line class="marker" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}"/>')
        parts.append(f'<text class="small" x="{x + 3:.1f}" y="{top + 10 + 12 * k}">{_esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------------------------------ images
def _png_bytes(rgb: np.ndarray) -> bytes:
    """An HxWx3 uint8 array as PNG bytes (stdlib zlib + struct, no imaging library)."""
    h, w = rgb.shape[:2]
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        f = np.nan_to_num(img.astype(float), nan=0.0, posinf=1.0, neginf=0.0)
        scale = 255.0 if np.issubdtype(img.dtype, np.floating) else 255.0 / max(float(np.iinfo(img.dtype).max), 1.0)
        img = np.clip(f * scale, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _thumb(img: np.ndarray, alt: str) -> str:
    rgb = _to_rgb8(img)
    stride = max(1, math.ceil(rgb.shape[1] / THUMB_WIDTH))
    small = np.ascontiguousarray(rgb[::stride, ::stride])
    data = base64.b64encode(_png_bytes(small)).decode("ascii")
    return f'<img alt="{_esc(alt)}" width="{small.shape[1]}" src="data:image/png;base64,{data}">'


def _diff_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    fa, fb = _to_rgb8(a).astype(np.int16), _to_rgb8(b).astype(np.int16)
    return np.clip(np.abs(fa - fb) * 4, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------ sections
def _short(text: Any, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rel_t(value: Any, t0: float) -> str:
    v = _f(value)
    return "—" if v is None else f"{v - t0:.3f}"


def _header(data: FidelityReportData, numbers: dict) -> str:
    n, held = numbers["samples"], numbers["held_out_samples"]
    t = np.asarray(data.t, dtype=float)
    dt = np.diff(t)
    rate = 1.0 / float(np.median(dt)) if dt.size and np.median(dt) > 0 else None
    rows = [
        ("Recording", data.recording),
        ("Duration (s)", _num(numbers["duration_s"], 2)),
        ("Samples", f"{n} ({_num(rate, 1)} Hz median)"),
        ("Held-out samples (not used for fitting)", f"{held} ({_pct(held / n)})"),
        ("Joints", f"{numbers['joints']}: {', '.join(str(j) for j in data.joint_names)}"),
    ]
    body = "".join(f'<tr><th>{_esc(k)}</th><td class="text">{_esc(v)}</td></tr>' for k, v in rows)
    return (
        f"<h1>vlatwin fidelity: {_esc(data.title)}</h1>\n"
        f'<p class="meta">System identification of the twin against the recording {_esc(data.recording)}</p>\n'
        f'<table class="settings" id="header">{body}</table>\n'
    )


def _verdict_line(numbers: dict) -> str:
    held = numbers["held_out_samples"]
    if held == 0:
        return (
            '<p class="verdict-line bad">No held-out samples: every sample was used for fitting, so nothing '
            "below measures how the twin predicts data it has not seen.</p>\n"
        )
    nom, ident, imp = numbers["held_out_rms_nominal"], numbers["held_out_rms_identified"], numbers["improvement"]
    parts = []
    if ident is not None and nom is not None and imp is not None:
        if imp >= 1.0:
            parts.append(
                f'On {held} held-out samples the identified twin\'s RMS error is <span class="ok">{_factor(imp)} lower'
                "</span> than the nominal twin's"
            )
        else:
            parts.append(
                f'On {held} held-out samples the identified twin is <span class="bad">worse than the nominal twin '
                f"({_factor(imp)})</span>"
            )
    elif ident is not None:
        parts.append(f"On {held} held-out samples the identified twin's RMS error is {_milli(ident)} mrad | mm")
    calib, cov = numbers["band_calibration"], numbers["held_out_band_coverage"]
    if calib is not None:
        cls = "ok" if calib == "well-calibrated" else "bad"
        parts.append(f'its 95 % band holds {_pct(cov)} of them: <span class="{cls}">{_esc(calib)}</span>')
    chi2 = numbers.get("reduced_chi2")
    if chi2 is not None and chi2 > MODEL_ERROR_CHI2:
        parts.append(
            f'<span class="bad">the fit\'s residuals are {math.sqrt(chi2):.0f}× the noise floor: model error dominates and '
            "the parameter intervals (which assume a right model) are too narrow</span>"
        )
    fit_id = numbers["fit_rms_identified"]
    if fit_id is not None and ident is not None and fit_id > 0 and ident > 3.0 * fit_id:
        parts.append(
            f'<span class="bad">held-out error {ident / fit_id:.1f}× the fitting error: over-fitted or the '
            "held-out motion differs</span>"
        )
    if not parts:
        return ""
    return f'<p class="verdict-line">{"; ".join(parts)}.</p>\n'


def _verdict(numbers: dict) -> str:
    calib = numbers["band_calibration"]
    if calib is None:
        calib_cell = "—"
    else:
        word = {"over-confident": " (band too narrow)", "under-confident": " (band too wide)"}.get(calib, "")
        cls = "ok" if calib == "well-calibrated" else "bad"
        calib_cell = f'{_esc(_pct(numbers["held_out_band_coverage"]))} <span class="{cls}">{_esc(calib + word)}</span>'
    imp = numbers["improvement"]
    imp_cls = "" if imp is None else (' class="ok"' if imp >= 1.0 else ' class="bad"')
    rows = [
        ("RMS error on held-out samples, nominal twin (mrad | mm)", _esc(_milli(numbers["held_out_rms_nominal"]))),
        (
            "RMS error on held-out samples, identified twin (mrad | mm)",
            _esc(_milli(numbers["held_out_rms_identified"])),
        ),
        ("Improvement (nominal / identified)", f"<span{imp_cls}>{_esc(_factor(imp))}</span>"),
        ("Held-out measured samples inside the identified twin's 95 % band", calib_cell),
        ("RMS error on fitting samples, nominal twin (mrad | mm)", _esc(_milli(numbers["fit_rms_nominal"]))),
        ("RMS error on fitting samples, identified twin (mrad | mm)", _esc(_milli(numbers["fit_rms_identified"]))),
        (
            "Parameters identified / not identifiable",
            f"{numbers['params_identifiable']} / {numbers['params_not_identifiable']}",
        ),
    ]
    body = "".join(f'<tr><th class="text">{_esc(k)}</th><td>{v}</td></tr>' for k, v in rows)
    return f'<h2>Verdict</h2>\n{_verdict_line(numbers)}<table id="verdict">{body}</table>\n'


def _fit_table(fit: dict) -> str:
    if not fit:
        return ""
    body = "".join(f'<tr><th>{_esc(k)}</th><td class="text">{_esc(_cell(v))}</td></tr>' for k, v in fit.items())
    return f'<h3>Fit</h3>\n<table class="settings" id="fit">{body}</table>\n'


def _params_section(data: FidelityReportData) -> str:
    if not data.params:
        return '<h2>Parameters</h2>\n<p class="meta">No parameters in this fit.</p>\n' + _fit_table(data.fit)
    has_truth = any(_f(p.truth) is not None for p in data.params)
    head = [
        '<th class="text">Parameter</th>',
        '<th class="text">Unit</th>',
        "<th>Nominal</th>",
        "<th>Identified</th>",
        "<th>± 95 % (1.96 σ)</th>",
        "<th>Change</th>",
    ]
    if has_truth:
        head += ["<th>Truth</th>", "<th>|id − truth| / truth</th>", "<th>Truth in 95 %</th>"]
    head.append('<th class="text">Status / note</th>')
    rows = []
    for p in data.params:
        nominal, value, std = _f(p.nominal), _f(p.value), _f(p.std)
        half = 1.96 * std if std is not None else None
        change = (value - nominal) / abs(nominal) if value is not None and nominal not in (None, 0.0) else None
        cells = [
            f'<td class="text">{_esc(p.name)}</td>',
            f'<td class="text">{_esc(p.unit)}</td>',
            f"<td>{_sig(nominal)}</td>",
            f"<td>{_sig(value)}</td>",
            f"<td>{'± ' + _sig(half, 3) if half is not None and p.identifiable else '—'}</td>",
            f"<td>{'—' if change is None else f'{100.0 * change:+.1f} %'}</td>",
        ]
        if has_truth:
            truth = _f(p.truth)
            err = abs(value - truth) / abs(truth) if truth not in (None, 0.0) and value is not None else None
            inside = None
            if truth is not None and value is not None and half is not None and p.identifiable:
                inside = abs(value - truth) <= half
            inside_cell = (
                "—" if inside is None else ('<span class="ok">yes</span>' if inside else '<span class="bad">no</span>')
            )
            cells += [f"<td>{_sig(truth)}</td>", f"<td>{_pct(err)}</td>", f"<td>{inside_cell}</td>"]
        if p.identifiable:
            status = f'<td class="text">{_esc(p.note)}</td>'
            cls = ""
        else:
            status = f'<td class="text"><span class="badge">not identifiable</span>{_esc(p.note)}</td>'
            cls = ' class="unident"'
        cells.append(status)
        rows.append(f'<tr{cls} data-param="{_esc(p.name)}">{"".join(cells)}</tr>')
    note = (
        '<p class="meta">Not-identifiable parameters keep their nominal value. Change is relative to the nominal '
        "value. The 95 % interval is the identified value ± 1.96 standard deviations of the fit.</p>\n"
    )
    return (
        f'<h2>Parameters</h2>\n<table id="params"><tr>{"".join(head)}</tr>{"".join(rows)}</table>\n{note}'
        + _fit_table(data.fit)
    )


def _correlation_section(data: FidelityReportData) -> str:
    if data.correlation is None:
        return '<h2>Parameter correlation</h2>\n<p class="meta">No correlation matrix in this fit.</p>\n'
    corr = np.asarray(data.correlation, dtype=float)
    p = corr.shape[0]
    ident = [x.name for x in data.params if x.identifiable]
    labels = ident if len(ident) == p else [f"p{k + 1}" for k in range(p)]
    if p == 0:
        return '<h2>Parameter correlation</h2>\n<p class="meta">No identifiable parameters.</p>\n'
    svg = correlation_svg(corr, labels)
    key = ""
    if p > MAX_LABELLED_PARAMS:
        items = "".join(f"<li>{_esc(name)}</li>" for name in labels)
        key = f"<details><summary>Parameter numbers ({p})</summary><ol>{items}</ol></details>\n"
    pairs = []
    for i in range(p):
        for j in range(i + 1, p):
            c = corr[i, j]
            if math.isfinite(c) and abs(c) > CORR_ALARM:
                pairs.append((abs(c), c, i, j))
    pairs.sort(key=lambda x: -x[0])
    if pairs:
        body = "".join(
            f'<tr><td class="text">{_esc(labels[i])}</td><td class="text">{_esc(labels[j])}</td><td>{c:+.3f}</td></tr>'
            for _, c, i, j in pairs[:MAX_PAIRS]
        )
        more = f'<p class="meta">… and {len(pairs) - MAX_PAIRS} more pairs.</p>\n' if len(pairs) > MAX_PAIRS else ""
        pair_html = (
            f"<h3>Strongly correlated pairs (|corr| &gt; {CORR_ALARM})</h3>\n"
            '<p class="meta">The data hardly separates these: their sum or ratio is known better than each.</p>\n'
            '<table id="corr-pairs"><tr><th class="text">Parameter</th><th class="text">Parameter</th>'
            f"<th>corr</th></tr>{body}</table>\n{more}"
        )
    else:
        pair_html = (
            f'<p class="meta" id="corr-pairs">No pair of identifiable parameters has |corr| &gt; {CORR_ALARM}.</p>\n'
        )
    return (
        "<h2>Parameter correlation</h2>\n"
        '<p class="meta">Correlation of the identified parameters (blue −1, white 0, red +1); hover a cell for its value.</p>\n'
        f'<div id="correlation-plot">{svg}</div>\n{key}{pair_html}'
    )


def _joints_section(data: FidelityReportData) -> str:
    t = np.asarray(data.t, dtype=float)
    tr = t - t[0]
    q = np.asarray(data.q_measured, dtype=float)
    held = np.asarray(data.held_out).astype(bool)
    shade = _spans(tr, held)
    joints = len(data.joint_names)
    figures = []
    for j in range(min(joints, MAX_JOINT_PLOTS)):
        lines = []
        if data.q_nominal is not None:
            lines.append((np.asarray(data.q_nominal, float)[:, j], "nominal"))
        lines.append((q[:, j], "measured"))
        if data.q_identified is not None:
            lines.append((np.asarray(data.q_identified, float)[:, j], "identified"))
        band = None
        if data.band_lo is not None:
            band = (np.asarray(data.band_lo, float)[:, j], np.asarray(data.band_hi, float)[:, j])
        figures.append(
            band_plot_svg(tr, lines, band=band, shade=shade, svg_id=f"joint-{j}", title=str(data.joint_names[j]))
        )
    legend = [("measured", "measured")]
    if data.q_nominal is not None:
        legend.append(("nominal", "nominal twin"))
    if data.q_identified is not None:
        legend.append(("identified", "identified twin"))
    if data.band_lo is not None:
        legend.append(("band", "95 % band (identified)"))
    if held.any():
        legend.append(("heldout", "held-out (not used for fitting)"))
    more = (
        f'<p class="meta">Showing {MAX_JOINT_PLOTS} of {joints} joints; the residual table lists all.</p>\n'
        if joints > MAX_JOINT_PLOTS
        else ""
    )
    return (
        "<h2>Joint trajectories</h2>\n"
        + _legend(legend)
        + f'<div id="joints" class="joints">{"".join(figures)}</div>\n{more}'
        + '<p class="meta">position [rad | m] over time [s] since the first sample (host clock)</p>\n'
        + _residual_plots(data, tr, shade)
    )


def _residual_plots(data: FidelityReportData, tr: np.ndarray, shade: list[tuple[float, float]]) -> str:
    """Measured minus identified twin per joint, with the band around the identified twin on the same scale."""
    if data.q_identified is None:
        return ""
    q = np.asarray(data.q_measured, dtype=float)
    ident = np.asarray(data.q_identified, dtype=float)
    figures = []
    for j in range(min(len(data.joint_names), MAX_JOINT_PLOTS)):
        band = None
        if data.band_lo is not None:
            band = (
                1e3 * (np.asarray(data.band_lo, float)[:, j] - ident[:, j]),
                1e3 * (np.asarray(data.band_hi, float)[:, j] - ident[:, j]),
            )
        figures.append(
            band_plot_svg(
                tr,
                [(1e3 * (q[:, j] - ident[:, j]), "measured")],
                band=band,
                shade=shade,
                svg_id=f"residual-{j}",
                title=f"{data.joint_names[j]}: measured − identified",
            )
        )
    legend = [("measured", "measured − identified twin")]
    if data.band_lo is not None:
        legend.append(("band", "95 % band − identified twin"))
    return (
        "<h3>Residual against the identified twin</h3>\n"
        + _legend(legend)
        + f'<div id="joint-residuals" class="joints">{"".join(figures)}</div>\n'
        + '<p class="meta">error [mrad | mm] over time [s]; a calibrated band holds about 95 % of the measured '
        "points, on held-out spans too</p>\n"
    )


def _divergence_section(data: FidelityReportData) -> str:
    t = np.asarray(data.t, dtype=float)
    tr = t - t[0]
    q = np.asarray(data.q_measured, dtype=float)
    held = np.asarray(data.held_out).astype(bool)
    twins = [
        (label, np.asarray(x, float))
        for label, x in (("nominal", data.q_nominal), ("identified", data.q_identified))
        if x is not None
    ]
    if not twins:
        return '<h2>Divergence and residuals</h2>\n<p class="meta">No twin trajectories to compare.</p>\n'
    lines = [(tr, divergence_curve(t, q, pred), label, {"data-series": label}) for label, pred in twins]
    svg = line_plot_svg(
        lines,
        svg_id="divergence-J",
        title="J(t) = ∫‖q_measured − q_twin‖² dt  [rad² s]",
        width=760,
        height=240,
        shade=_spans(tr, held),
    )
    legend = [(label, f"{label} twin") for label, _ in twins]
    if held.any():
        legend.append(("heldout", "held-out"))
    mask = held if held.any() else np.ones_like(held)
    stats = {label: residual_stats(q, pred, mask) for label, pred in twins}
    cover = None
    if data.band_lo is not None:
        lo, hi = np.asarray(data.band_lo, float), np.asarray(data.band_hi, float)
        cover = [band_coverage(q[:, j], lo[:, j], hi[:, j], mask) for j in range(q.shape[1])]
    labels = [label for label, _ in twins]
    head = '<tr><th class="text" rowspan="2">Joint</th>'
    for name in ("RMS", "p95 |err|", "max |err|", "bias"):
        head += f'<th colspan="{len(labels)}">{name}</th>'
    head += ('<th rowspan="2">in 95 % band</th>' if cover is not None else "") + "</tr><tr>"
    head += "".join(f"<th>{_ABBREV[label]}</th>" for _ in range(4) for label in labels) + "</tr>"
    rows = []
    for j, name in enumerate(data.joint_names):
        cells = "".join(
            f"<td>{_milli(stats[label][key][j])}</td>"
            for key in ("rms", "p95_abs", "max_abs", "bias")
            for label in labels
        )
        cov = f"<td>{_pct(cover[j])}</td>" if cover is not None else ""
        rows.append(f'<tr><td class="text">{_esc(name)}</td>{cells}{cov}</tr>')
    all_cells = "".join(f"<td>{_milli(stats[label]['rms_all'])}</td>" for label in labels)
    empty = "<td></td>" * (3 * len(labels)) + ("<td></td>" if cover is not None else "")
    rows.append(f'<tr><th class="text">all joints</th>{all_cells}{empty}</tr>')
    scope = "held-out samples" if held.any() else "all samples (none is held out)"
    return (
        "<h2>Divergence and residuals</h2>\n"
        + _legend(legend)
        + f'<div id="divergence-plot">{svg}</div>\n'
        + '<p class="meta">time [s] since the first sample; held-out spans shaded</p>\n'
        + f"<h3>Residuals per joint on the {scope} (twin − measured, mrad | mm)</h3>\n"
        + f'<table id="residuals">{head}{"".join(rows)}</table>\n'
    )


def _latency_section(data: FidelityReportData) -> str:
    parts = ["<h2>Latency and clock</h2>\n"]
    lat = None if data.latency_s is None else np.asarray(data.latency_s, dtype=float)
    lat = lat[np.isfinite(lat)] if lat is not None else None
    if lat is not None and lat.size:
        ms = lat * 1e3
        p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
        parts.append(
            histogram_svg(
                ms,
                svg_id="latency",
                title="measured one-way state latency",
                unit="ms",
                markers={"p50": p50, "p99": p99},
            )
        )
        rows = [
            ("Samples", str(ms.size)),
            ("p50 (ms)", _num(p50, 2)),
            ("p99 (ms)", _num(p99, 2)),
            ("mean (ms)", _num(float(ms.mean()), 2)),
            ("max (ms)", _num(float(ms.max()), 2)),
        ]
        body = "".join(f'<tr><th class="text">{_esc(k)}</th><td>{_esc(v)}</td></tr>' for k, v in rows)
        parts.append(f'\n<table id="latency-stats">{body}</table>\n')
    if data.clock:
        known = [
            ("offset_s", "Clock offset (s)", 6),
            ("skew_ppm", "Clock skew (ppm)", 2),
            ("delay_s", "Clock sync delay (s)", 6),
            ("samples", "Clock sync samples", 0),
        ]
        rows = [
            (label, _num(_f(data.clock.get(key)), digits) if key in data.clock else None)
            for key, label, digits in known
        ]
        rows += [(str(k), _cell(v)) for k, v in data.clock.items() if k not in {k for k, _, _ in known}]
        body = "".join(f'<tr><th class="text">{_esc(k)}</th><td>{_esc(v)}</td></tr>' for k, v in rows if v is not None)
        parts.append(f'<table id="clock">{body}</table>\n')
    if len(parts) == 1:
        parts.append('<p class="meta">This recording holds no latency measurements or clock-sync estimate.</p>\n')
    return "".join(parts)


def _alert(table_id: str, row: dict) -> str:
    """Red text for safety events and for events at warning level or above."""
    level = str(row.get("level") or "").lower()
    return " failure" if table_id == "safety-events" or level.startswith(("warn", "err", "crit", "fatal")) else ""


def _event_table(rows: list[dict], t0: float, *, table_id: str, title: str, cols: tuple[str, str], empty: str) -> str:
    if not rows:
        return f'<h2>{_esc(title)}</h2>\n<p class="meta">{_esc(empty)}</p>\n'
    body = "".join(
        f'<tr><td>{_rel_t(r.get("t"), t0)}</td><td class="text">{_esc(r.get(cols[0]) or "")}</td>'
        f'<td class="text{_alert(table_id, r)}">{_esc(r.get(cols[1]) or "")}</td></tr>'
        for r in rows[:MAX_EVENTS]
    )
    more = f'<p class="meta">… and {len(rows) - MAX_EVENTS} more.</p>\n' if len(rows) > MAX_EVENTS else ""
    return (
        f'<h2>{_esc(title)}</h2>\n<table id="{table_id}"><tr><th>t (s)</th><th class="text">{_esc(cols[0].title())}</th>'
        f'<th class="text">{_esc(cols[1].title())}</th></tr>{body}</table>\n{more}'
    )


def _images_section(data: FidelityReportData) -> str:
    if not data.images:
        return '<h2>Camera fidelity</h2>\n<p class="meta">This recording holds no camera frames.</p>\n'
    rows = []
    for k, (name, robot, twin) in enumerate(data.images):
        robot, twin = np.asarray(robot), np.asarray(twin)
        try:
            p, s, err = psnr(robot, twin), ssim(robot, twin), ""
        except VlatwinError as exc:
            p, s, err = None, None, str(exc)
        thumbs = ""
        if k < MAX_THUMBNAILS:
            thumbs = "".join(
                f"<td>{_thumb(img, f'{name} {which}')}</td>"
                for which, img in (("robot", robot), ("twin", twin), ("|diff| ×4", _diff_image(robot, twin)))
            )
        else:
            thumbs = '<td colspan="3" class="meta">(no thumbnail)</td>'
        psnr_text = "∞ (identical)" if p is not None and math.isinf(p) else _num(p, 2)
        rows.append(
            f'<tr><td class="text">{_esc(name)}</td><td>{_esc("×".join(str(d) for d in robot.shape))}</td>'
            f"<td>{_esc(psnr_text)}</td><td>{_num(s, 4)}</td>{thumbs}"
            + (f'<td class="failure">{_esc(err)}</td>' if err else "")
            + "</tr>"
        )
    return (
        "<h2>Camera fidelity</h2>\n"
        '<table id="images" class="thumbs"><tr><th class="text">Camera / frame</th><th>Shape</th><th>PSNR (dB)</th>'
        f"<th>SSIM</th><th>Robot</th><th>Twin</th><th>|diff| ×4</th></tr>{''.join(rows)}</table>\n"
        '<p class="meta">PSNR and SSIM (11×11 Gaussian window, σ 1.5) of the twin image against the robot image; '
        "SSIM 1 is identical.</p>\n"
    )


def _clouds_section(data: FidelityReportData) -> str:
    if not data.point_clouds:
        return '<h2>Point-cloud fidelity</h2>\n<p class="meta">This recording holds no point clouds.</p>\n'
    rows = []
    for name, robot, twin in data.point_clouds:
        try:
            c = chamfer(robot, twin)
            cells = "".join(
                f"<td>{_milli(c[k], 2)}</td>" for k in ("mean", "a_to_b", "b_to_a", "a_to_b_p95", "b_to_a_p95")
            )
        except VlatwinError as exc:
            cells = f'<td colspan="5" class="failure">{_esc(exc)}</td>'
        rows.append(
            f'<tr><td class="text">{_esc(name)}</td><td>{len(np.asarray(robot))}</td><td>{len(np.asarray(twin))}</td>{cells}</tr>'
        )
    return (
        "<h2>Point-cloud fidelity</h2>\n"
        '<table id="clouds"><tr><th class="text">Sensor / frame</th><th>Robot points</th><th>Twin points</th>'
        "<th>Chamfer (mm)</th><th>robot→twin mean</th><th>twin→robot mean</th><th>robot→twin p95</th>"
        f"<th>twin→robot p95</th></tr>{''.join(rows)}</table>\n"
        '<p class="meta">Nearest-neighbour distances in mm; Chamfer is the mean of the two directed means.</p>\n'
    )


# ------------------------------------------------------------------------------------------ entry point
def render_fidelity_report(data: FidelityReportData) -> str:
    """The fidelity report as an HTML string (raises :class:`VlatwinError` naming a malformed field)."""
    numbers = fidelity_summary(data)  # validates
    t0 = float(np.asarray(data.t, dtype=float)[0])
    body = (
        _header(data, numbers)
        + _verdict(numbers)
        + _params_section(data)
        + _correlation_section(data)
        + _joints_section(data)
        + _divergence_section(data)
        + _latency_section(data)
        + _event_table(
            list(data.safety_events),
            t0,
            table_id="safety-events",
            title="Safety events",
            cols=("kind", "reason"),
            empty="No safety events.",
        )
        + _event_table(
            list(data.events), t0, table_id="events", title="Events", cols=("level", "text"), empty="No events."
        )
        + _images_section(data)
        + _clouds_section(data)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>vlatwin fidelity: {_esc(data.title)}</title>\n<style>{_CSS}</style></head>\n<body>\n{body}</body></html>\n"
    )


def write_fidelity_report(data: FidelityReportData, out_html: str | Path) -> Path:
    """Render the report and write it to ``out_html`` atomically; returns the path."""
    out_html = Path(out_html)
    atomic_write_bytes(out_html, render_fidelity_report(data).encode("utf-8"))
    return out_html


__all__ = [
    "FidelityReportData",
    "ParamRow",
    "band_plot_svg",
    "correlation_svg",
    "fidelity_summary",
    "histogram_svg",
    "render_fidelity_report",
    "validate_report_data",
    "write_fidelity_report",
]
