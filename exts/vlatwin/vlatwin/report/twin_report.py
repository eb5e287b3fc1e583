"""The short HTML summary of a twin run, built from its MCAP run log.

One self-contained page (inline CSS and SVG, no network): the run's settings, a table of the numbers that
say whether the twin tracked the robot (:func:`summary_numbers`), J and the windowed RMS divergence over
time with alarm spans shaded, robot vs twin vs estimate joint positions as small multiples, and the
events. Every string taken from the log is HTML-escaped.

Clock convention (the ``/clock`` topic): the robot clock reads
``robot_time = host_time + offset_s + skew_ppm * 1e-6 * (host_time - ref_s)`` (``ref_s`` is optional in the
message, default 0), so :func:`to_host` inverts it. Measured latency is ``host_time - to_host(robot_time)``
of each ``/robot/state`` message, mapped with the last clock estimate of the run (the best one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vlatwin.report.eval_report import _CSS as _BASE_CSS
from vlatwin.report.eval_report import _esc, _num
from vlatwin.twin.runlog import RunLogData, read_runlog
from vlatwin.writers.storage import atomic_write_bytes

#: Joints drawn in the small multiples.
MAX_JOINTS = 7
#: Points per polyline (longer series are decimated evenly; the last point is always kept).
MAX_POINTS = 600
#: Rows of the events table.
MAX_EVENTS = 200

_CSS = (
    _BASE_CSS
    + """
.warn { color: var(--bad); font-weight: 600; }
.joints { display: flex; flex-wrap: wrap; gap: 8px; }
svg .robot { stroke: #1d232b; } svg .twin { stroke: #4a7fc1; } svg .estimate { stroke: #e08a1e; stroke-dasharray: 4 3; }
svg .J { stroke: #4a7fc1; } svg .rms { stroke: #d21e1e; }
svg polyline { fill: none; stroke-width: 1.4; } svg .alarm { fill: #d21e1e; fill-opacity: 0.12; }
.legend span { margin-right: 14px; } .legend i { display: inline-block; width: 18px; height: 3px; vertical-align: middle;
  margin-right: 4px; }
"""
)

_COMMAND_TOPICS = ("/command/safe", "/command/raw", "/twin/state")


# ------------------------------------------------------------------------------------------ numbers
def to_host(robot_time: np.ndarray | float, clock: dict | None) -> np.ndarray:
    """Robot-clock times [s] mapped to the host clock with one ``/clock`` estimate (identity without one)."""
    robot_time = np.asarray(robot_time, dtype=float)
    if not clock:
        return robot_time
    offset = _float(clock.get("offset_s"), 0.0)
    skew = _float(clock.get("skew_ppm"), 0.0) * 1e-6
    ref = _float(clock.get("ref_s"), 0.0)
    return (robot_time - offset + skew * ref) / (1.0 + skew)


def _float(value: Any, default: float = math.nan) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _pct(values: np.ndarray, q: float) -> float | None:
    values = _finite(values)
    return float(np.percentile(values, q)) if values.size else None


def _last(data: RunLogData, topic: str) -> dict | None:
    msgs = data.messages(topic)
    return msgs[-1][1] if msgs else None


def _rate(times: np.ndarray) -> float | None:
    if times.size < 2:
        return None
    dt = np.diff(times)
    dt = dt[dt > 0]
    return float(1.0 / np.median(dt)) if dt.size else None


def _rms_against(t_ref: np.ndarray, q_ref: np.ndarray, t: np.ndarray, q: np.ndarray) -> float | None:
    """RMS of ``q_ref - q`` over all joints, with ``q`` interpolated at ``t_ref`` inside their common span."""
    if t_ref.size == 0 or t.size < 2 or q_ref.ndim != 2 or q.ndim != 2:
        return None
    joints = min(q_ref.shape[1], q.shape[1])
    inside = (t_ref >= t[0]) & (t_ref <= t[-1])
    if not inside.any() or joints == 0:
        return None
    diffs = [q_ref[inside, j] - np.interp(t_ref[inside], t, q[:, j]) for j in range(joints)]
    err = _finite(np.stack(diffs, axis=1))
    return float(np.sqrt(np.mean(err**2))) if err.size else None


def _robot_sample_times(data: RunLogData) -> tuple[np.ndarray, np.ndarray]:
    """Times [s] of ``/robot/state`` on the host clock: measurement time via the clock estimate, else receive time."""
    t_log, _ = data.series("/robot/state", "joint_q")
    clock = _last(data, "/clock")
    if clock is None:
        return t_log, t_log
    msgs = [m for _, m in data.messages("/robot/state") if "joint_q" in m]
    robot_time = np.array([_float(m.get("robot_time")) for m in msgs])
    measured = to_host(robot_time, clock)
    return np.where(np.isfinite(measured), measured, t_log), t_log


def summary_numbers(data: RunLogData) -> dict:
    """The run's key numbers (None where the log lacks the topic); the HTML summary and the CLI show these.

    Keys: ``duration_s``, ``messages``, ``complete``, ``control_rate_hz`` (from the median period of
    ``/command/safe``, else ``/command/raw``, else ``/twin/state``), ``final_J``, ``max_rms``, ``alarms``
    (rising edges of ``/divergence.alarm``), ``alarm_time_fraction``, ``safety_events`` (``{kind: count}``),
    ``safety_events_total``, ``watchdog_events`` and ``estop_events`` (safety events whose kind mentions
    them), ``clock_offset_s``, ``clock_skew_ppm``, ``clock_delay_s``, ``clock_samples``,
    ``latency_p50_ms``/``latency_p99_ms`` (measured, see the module docstring), ``estimated_latency_s``
    (the estimator's last value), ``policy_latency_p50_ms``/``policy_latency_p99_ms``, ``tracking_rms_twin``
    and ``tracking_rms_estimate`` (RMS joint error of the twin / the estimate against the measured robot
    state at its measurement time [rad | m]), ``command_lead_ms`` (median scheduled lead, None when no command
    was scheduled), ``commands_scheduled`` (how many were), and the robot's own last counts
    ``commands_lost``/``commands_late``/``commands_recovered`` (None when it does not report them).
    """
    out: dict[str, Any] = {
        "duration_s": data.duration,
        "messages": int(sum(data.topics.values())),
        "complete": data.complete,
    }
    rate = None
    for topic in _COMMAND_TOPICS:
        t, _ = data.series(topic, "seq" if topic != "/twin/state" else "step")
        rate = _rate(t)
        if rate is not None:
            break
    out["control_rate_hz"] = rate

    _, J = data.series("/divergence", "J")
    _, rms = data.series("/divergence", "rms")
    _, alarm = data.series("/divergence", "alarm")
    out["final_J"] = _float(J[-1]) if J.size else None
    out["max_rms"] = float(_finite(rms).max()) if _finite(rms).size else None
    if alarm.size:
        on = np.nan_to_num(alarm.astype(float)) > 0.5
        out["alarms"] = int(on[0]) + int(np.count_nonzero(on[1:] & ~on[:-1]))
        out["alarm_time_fraction"] = float(on.mean())
    else:
        out["alarms"], out["alarm_time_fraction"] = None, None

    kinds: dict[str, int] = {}
    for _, msg in data.messages("/safety/event"):
        kind = str(msg.get("kind") or "unknown")
        kinds[kind] = kinds.get(kind, 0) + 1
    out["safety_events"] = dict(sorted(kinds.items()))
    out["safety_events_total"] = int(sum(kinds.values()))
    out["watchdog_events"] = int(sum(n for k, n in kinds.items() if "watchdog" in k.lower()))
    out["estop_events"] = int(
        sum(n for k, n in kinds.items() if k.lower().replace("-", "").replace("_", "").find("estop") >= 0)
    )

    clock = _last(data, "/clock") or {}
    out["clock_offset_s"] = _float(clock.get("offset_s")) if clock else None
    out["clock_skew_ppm"] = _float(clock.get("skew_ppm")) if clock else None
    out["clock_delay_s"] = _float(clock.get("delay_s")) if clock else None
    out["clock_samples"] = clock.get("samples") if clock else None

    latency = None
    if clock:
        msgs = data.messages("/robot/state")
        host = np.array([_float(m.get("host_time"), t) for t, m in msgs])
        robot = np.array([_float(m.get("robot_time")) for _, m in msgs])
        latency = (host - to_host(robot, clock)) * 1e3
    out["latency_p50_ms"] = _pct(latency, 50) if latency is not None else None
    out["latency_p99_ms"] = _pct(latency, 99) if latency is not None else None
    estimate = _last(data, "/estimate") or {}
    out["estimated_latency_s"] = _float(estimate.get("latency_s")) if "latency_s" in estimate else None
    _, policy_ms = data.series("/policy", "latency_ms")
    out["policy_latency_p50_ms"] = _pct(policy_ms, 50) if policy_ms.size else None
    out["policy_latency_p99_ms"] = _pct(policy_ms, 99) if policy_ms.size else None

    t_robot, _ = _robot_sample_times(data)
    _, q_robot = data.series("/robot/state", "joint_q")
    t_twin, q_twin = data.series("/twin/state", "joint_q")
    t_est, q_est = data.series("/estimate", "joint_q")
    out["tracking_rms_twin"] = _rms_against(t_robot, q_robot, t_twin, q_twin)
    out["tracking_rms_estimate"] = _rms_against(t_robot, q_robot, t_est, q_est)

    leads = [_float(m.get("apply_time")) - t for t, m in data.messages("/command/safe") if m.get("apply_time") is not None]
    out["commands_scheduled"] = len(leads)
    out["command_lead_ms"] = float(np.median(leads)) * 1e3 if leads else None
    states = data.messages("/robot/state")
    status = (states[-1][1].get("status") or {}) if states else {}
    for key in ("commands_lost", "commands_late", "commands_recovered"):
        value = status.get(key)
        out[key] = int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return out


def format_summary(numbers: dict) -> list[str]:
    """``summary_numbers`` as ``name: value`` lines for a terminal."""
    lines = []
    for key, value in numbers.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        lines.append(f"{key}: {'—' if value is None else value}")
    return lines


# ------------------------------------------------------------------------------------------ SVG
def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _decimate(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    if t.size > MAX_POINTS:
        idx = np.unique(np.append(np.linspace(0, t.size - 1, MAX_POINTS).astype(int), t.size - 1))
        t, y = t[idx], y[idx]
    return t, y


def _tick_label(value: float) -> str:
    return f"{value:.3g}" if value != 0 else "0"


def line_plot_svg(
    lines: Sequence[tuple[np.ndarray, np.ndarray, str, dict[str, str]]],
    *,
    svg_id: str,
    title: str,
    width: int = 560,
    height: int = 200,
    t_range: tuple[float, float] | None = None,
    shade: Sequence[tuple[float, float]] = (),
) -> str:
    """An inline ``<svg>`` with one ``<polyline>`` per ``(t, y, css_class, attributes)``; ``shade`` spans are alarm rects."""
    left, right, top, bottom = 58, 10, 22, 26
    pw, ph = width - left - right, height - top - bottom
    pts = [_decimate(np.asarray(t, float), np.asarray(y, float)) + (cls, attrs) for t, y, cls, attrs in lines]
    all_t = np.concatenate([p[0] for p in pts]) if pts else np.zeros(0)
    all_y = np.concatenate([p[1] for p in pts]) if pts else np.zeros(0)
    t0, t1 = t_range if t_range is not None else ((all_t.min(), all_t.max()) if all_t.size else (0.0, 1.0))
    if t1 <= t0:
        t1 = t0 + 1.0
    parts, sx, sy = plot_frame(
        svg_id=svg_id, title=title, width=width, height=height, box=(left, top, pw, ph), t_range=(t0, t1), y_values=all_y,
        shade=shade, shade_class="alarm", title_y=14, tick_class="", x_ticks=6, x_label_dy=16,
    )
    for t, y, cls, attrs in pts:
        if t.size == 0:
            continue
        coords = " ".join(f"{x:.1f},{v:.1f}" for x, v in zip(sx(t), sy(y), strict=True))
        extra = "".join(f' {_esc(k)}="{_esc(v)}"' for k, v in attrs.items())
        parts.append(f'<polyline class="{_esc(cls)}"{extra} points="{coords}"/>')
    parts.append("</svg>")
    return "".join(parts)


def plot_frame(
    *,
    svg_id: str,
    title: str,
    width: int,
    height: int,
    box: tuple[int, int, int, int],
    t_range: tuple[float, float],
    y_values: np.ndarray,
    shade: Sequence[tuple[float, float]],
    shade_class: str,
    title_y: int,
    tick_class: str,
    x_ticks: int,
    x_label_dy: int,
):
    """Open an inline ``<svg>`` time plot: title, shaded spans, y grid with labels, x labels, axes.

    ``box`` = (left, top, width, height) of the plot area [px]; the y range covers ``y_values`` plus 5 %.
    Returns ``(parts, sx, sy)``: the SVG pieces so far (the caller adds its data and ``</svg>``) and the
    data-to-pixel maps.
    """
    left, top, pw, ph = box
    t0, t1 = t_range
    y0, y1 = (float(y_values.min()), float(y_values.max())) if y_values.size else (0.0, 1.0)
    if y1 <= y0:
        y0, y1 = y0 - 0.5 * (abs(y0) or 1.0), y1 + 0.5 * (abs(y1) or 1.0)
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def sx(t):
        return left + pw * (np.asarray(t) - t0) / (t1 - t0)

    def sy(y):
        return top + ph * (1.0 - (np.asarray(y) - y0) / (y1 - y0))

    label_class = f' class="{tick_class}"' if tick_class else ""
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" id="{_esc(svg_id)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title)}">'
        ),
        f'<text x="{left}" y="{title_y}">{_esc(title)}</text>',
    ]
    for a, b in shade:
        xa, xb = float(sx(max(a, t0))), float(sx(min(b, t1)))
        parts.append(f'<rect class="{shade_class}" x="{xa:.1f}" y="{top}" width="{max(xb - xa, 1.0):.1f}" height="{ph}"/>')
    for tick in _nice_ticks(y0, y1, 4):
        y = float(sy(tick))
        parts.append(f'<line class="gridline" x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}"/>')
        parts.append(f'<text{label_class} x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_tick_label(tick)}</text>')
    for tick in _nice_ticks(t0, t1, x_ticks):
        x = float(sx(tick))
        parts.append(f'<text{label_class} x="{x:.1f}" y="{top + ph + x_label_dy}" text-anchor="middle">{_tick_label(tick)}</text>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>')
    return parts, sx, sy


def _alarm_spans(t: np.ndarray, alarm: np.ndarray) -> list[tuple[float, float]]:
    if t.size == 0:
        return []
    on = np.nan_to_num(alarm.astype(float)) > 0.5
    spans, start = [], None
    for k in range(t.size):
        if on[k] and start is None:
            start = t[k]
        elif not on[k] and start is not None:
            spans.append((float(start), float(t[k])))
            start = None
    if start is not None:
        spans.append((float(start), float(t[-1])))
    return spans


# ------------------------------------------------------------------------------------------ sections
def _header(data: RunLogData, numbers: dict) -> str:
    meta = data.metadata
    label = meta.get("config") or meta.get("name") or data.path.name
    rows: list[tuple[str, Any]] = [
        ("Config", meta.get("config")),
        ("Policy", meta.get("policy")),
        ("Robot", meta.get("robot")),
        ("Duration (s)", _num(numbers.get("duration_s"), 2)),
        ("Control rate (Hz)", _num(numbers.get("control_rate_hz"), 1)),
        ("Log", data.path.name),
    ]
    shown = {"config", "policy", "robot"}
    for key in sorted(meta):
        value = meta[key]
        if key in shown:
            continue
        if isinstance(value, (str, int, float, bool)) or (isinstance(value, (dict, list)) and len(str(value)) <= 160):
            rows.append((key, value))
    body = "".join(f'<tr><th>{_esc(k)}</th><td class="text">{_esc(v)}</td></tr>' for k, v in rows if v is not None)
    warn = ""
    if not data.complete:
        warn = (
            '<p class="warn">This log was not closed cleanly (killed run?): the summary covers what was '
            f"written before it stopped ({_esc(data.error or 'no footer')}).</p>\n"
        )
    return (
        f"<h1>vlatwin twin: {_esc(label)}</h1>\n"
        f'<p class="meta">{_esc(meta.get("policy") or "")} → {_esc(meta.get("robot") or "")}</p>\n'
        f"{warn}"
        f'<table class="settings">{body}</table>\n'
    )


def _summary_table(numbers: dict) -> str:
    kinds = numbers.get("safety_events") or {}
    rows = [
        ("Final J (∫‖x_phys − x_twin‖² dt)", _num(numbers.get("final_J"), 6)),
        ("Max windowed RMS divergence", _num(numbers.get("max_rms"), 6)),
        ("Divergence alarms", _num(numbers.get("alarms"))),
        ("Tracking RMS, twin vs robot (rad | m)", _num(numbers.get("tracking_rms_twin"), 5)),
        ("Tracking RMS, estimate vs robot (rad | m)", _num(numbers.get("tracking_rms_estimate"), 5)),
        ("Safety events", _num(numbers.get("safety_events_total"))),
        ("Watchdog events", _num(numbers.get("watchdog_events"))),
        ("E-stop events", _num(numbers.get("estop_events"))),
        ("Clock offset (s)", _num(numbers.get("clock_offset_s"), 6)),
        ("Clock skew (ppm)", _num(numbers.get("clock_skew_ppm"), 2)),
        ("Clock sync delay (s)", _num(numbers.get("clock_delay_s"), 6)),
        ("Measured latency p50 (ms)", _num(numbers.get("latency_p50_ms"), 2)),
        ("Measured latency p99 (ms)", _num(numbers.get("latency_p99_ms"), 2)),
        ("Estimator latency (s)", _num(numbers.get("estimated_latency_s"), 4)),
        ("Scheduled commands (lead, ms)", f"{numbers.get('commands_scheduled') or 0} ({_num(numbers.get('command_lead_ms'), 1)})"),
        ("Commands lost / recovered / late (robot's count)", " / ".join(
            _num(numbers.get(k)) for k in ("commands_lost", "commands_recovered", "commands_late"))),
        ("Policy latency p50 (ms)", _num(numbers.get("policy_latency_p50_ms"), 2)),
        ("Policy latency p99 (ms)", _num(numbers.get("policy_latency_p99_ms"), 2)),
        ("Messages", _num(numbers.get("messages"))),
    ]
    body = "".join(f'<tr><th class="text">{_esc(k)}</th><td>{_esc(v)}</td></tr>' for k, v in rows)
    kind_rows = "".join(f'<tr><td class="text">{_esc(k)}</td><td>{_esc(n)}</td></tr>' for k, n in kinds.items())
    kinds_html = (
        f'<table id="safety-kinds"><tr><th class="text">Safety event kind</th><th>Count</th></tr>{kind_rows}</table>\n'
        if kinds
        else '<p class="meta">No safety events.</p>\n'
    )
    return f'<h2>Summary</h2>\n<table id="summary">{body}</table>\n{kinds_html}'


def _legend(items: Sequence[tuple[str, str]]) -> str:
    colors = {"robot": "#1d232b", "twin": "#4a7fc1", "estimate": "#e08a1e", "J": "#4a7fc1", "rms": "#d21e1e"}
    spans = "".join(f'<span><i style="background:{colors[c]}"></i>{_esc(label)}</span>' for c, label in items)
    return f'<p class="legend meta">{spans}</p>\n'


def _divergence_section(data: RunLogData, t0: float) -> str:
    t, J = data.series("/divergence", "J")
    _, rms = data.series("/divergence", "rms")
    _, alarm = data.series("/divergence", "alarm")
    if t.size == 0:
        return '<h2>Divergence</h2>\n<p class="meta">No /divergence messages.</p>\n'
    tr = t - t0
    span = (float(tr.min()), float(tr.max()))
    shade = _alarm_spans(tr, alarm) if alarm.size == t.size else []
    svg_j = line_plot_svg(
        [(tr, J, "J", {"data-series": "J"})], svg_id="divergence-J", title="J", t_range=span, shade=shade
    )
    svg_r = line_plot_svg(
        [(tr, rms, "rms", {"data-series": "rms"})],
        svg_id="divergence-rms",
        title="windowed RMS",
        t_range=span,
        shade=shade,
    )
    return (
        "<h2>Divergence</h2>\n"
        + _legend([("J", "J"), ("rms", "windowed RMS (alarm spans shaded)")])
        + f'<div id="divergence-plot" class="joints">{svg_j}{svg_r}</div>\n'
        + '<p class="meta">time [s] since the first message (host clock)</p>\n'
    )


def _joints_section(data: RunLogData, t0: float) -> str:
    t_robot, _ = _robot_sample_times(data)
    _, q_robot = data.series("/robot/state", "joint_q")
    t_twin, q_twin = data.series("/twin/state", "joint_q")
    t_est, q_est = data.series("/estimate", "joint_q")
    widths = [q.shape[1] for q in (q_robot, q_twin, q_est) if q.ndim == 2 and q.size]
    if not widths:
        return '<h2>Joints</h2>\n<p class="meta">No joint states.</p>\n'
    joints = min(max(widths), MAX_JOINTS)
    ends = [t[[0, -1]] for t in (t_robot, t_twin, t_est) if t.size]
    span = (float(min(e[0] for e in ends) - t0), float(max(e[1] for e in ends) - t0))
    figures = []
    for j in range(joints):
        lines = []
        for t, q, cls in ((t_robot, q_robot, "robot"), (t_twin, q_twin, "twin"), (t_est, q_est, "estimate")):
            if q.ndim == 2 and q.shape[1] > j:
                lines.append((t - t0, q[:, j], cls, {"data-joint": str(j)}))
        figures.append(
            line_plot_svg(lines, svg_id=f"joint-{j}", title=f"joint {j}", width=380, height=170, t_range=span)
        )
    legend = [("robot", "robot (measured, at its measurement time)"), ("twin", "twin")]
    if q_est.size:
        legend.append(("estimate", "estimate"))
    return (
        "<h2>Joints</h2>\n"
        + _legend(legend)
        + f'<div id="joints" class="joints">{"".join(figures)}</div>\n'
        + '<p class="meta">position [rad | m] over time [s] since the first message (host clock)</p>\n'
    )


def _short(values: Any, limit: int = 80) -> str:
    if isinstance(values, list):
        text = "[" + ", ".join(_num(v, 3) if isinstance(v, (int, float)) else str(v) for v in values) + "]"
    else:
        text = "" if values is None else str(values)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _events_section(data: RunLogData, t0: float) -> str:
    rows = []
    for t, topic, msg in data.iter_messages(["/events", "/safety/event"]):
        if topic == "/events":
            rows.append((t, "event", str(msg.get("level") or ""), str(msg.get("text") or "")))
        else:
            text = str(msg.get("reason") or "")
            if "before" in msg or "after" in msg:
                text += f" (before {_short(msg.get('before'))} → after {_short(msg.get('after'))})"
            rows.append((t, "safety", str(msg.get("kind") or ""), text))
    if not rows:
        return '<h2>Events</h2>\n<p class="meta">No events.</p>\n'
    more = len(rows) - MAX_EVENTS
    body = "".join(
        f'<tr><td>{t - t0:.3f}</td><td class="text">{_esc(src)}</td><td class="text">{_esc(kind)}</td>'
        f'<td class="text failure">{_esc(text)}</td></tr>'
        for t, src, kind, text in rows[:MAX_EVENTS]
    )
    note = f'<p class="meta">… and {more} more events in the log.</p>\n' if more > 0 else ""
    return (
        '<h2>Events</h2>\n<table id="events"><tr><th>t (s)</th><th class="text">Source</th>'
        f'<th class="text">Level / kind</th><th class="text">Text</th></tr>{body}</table>\n{note}'
    )


# ------------------------------------------------------------------------------------------ entry point
def render_twin_summary(data: RunLogData) -> str:
    """The summary page of a read run log, as an HTML string."""
    numbers = summary_numbers(data)
    t0 = data.start_time or 0.0
    title = data.metadata.get("config") or data.path.name
    body = (
        _header(data, numbers)
        + _summary_table(numbers)
        + _divergence_section(data, t0)
        + _joints_section(data, t0)
        + _events_section(data, t0)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>vlatwin twin: {_esc(title)}</title>\n<style>{_CSS}</style></head>\n<body>\n{body}</body></html>\n"
    )


def write_twin_summary(runlog_path: str | Path, out_html: str | Path) -> Path:
    """Read the MCAP run log (closed or not) and write its HTML summary atomically; returns ``out_html``."""
    out_html = Path(out_html)
    atomic_write_bytes(out_html, render_twin_summary(read_runlog(runlog_path)).encode("utf-8"))
    return out_html


__all__ = ["format_summary", "line_plot_svg", "render_twin_summary", "summary_numbers", "to_host", "write_twin_summary"]
