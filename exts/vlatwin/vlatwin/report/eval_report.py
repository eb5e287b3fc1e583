"""``report.html`` of a ``vlatwin eval`` run, built from its ``results.json`` dict.

The page is self-contained: inline CSS, the success plot as inline SVG, thumbnails embedded as base64
JPEG. Each thumbnail links to its episode MP4 by the relative path stored in the results, so the report
works when the eval folder is moved or zipped. Every string taken from the results is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from vlatwin.eval.stats import summarize_episodes, wilson_interval
from vlatwin.writers.storage import atomic_write_bytes

REPORT_NAME = "report.html"

_CSS = """
:root { --ok: #1a9a3c; --bad: #d21e1e; --ink: #1d232b; --muted: #5f6b7a; --line: #d9dee5; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1200px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: var(--muted); margin: 0 0 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; vertical-align: top; }
th { background: #f3f5f8; font-weight: 600; }
td.text, th.text { text-align: left; }
table.settings td, table.settings th { text-align: left; }
.instr { color: var(--muted); max-width: 360px; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; width: 168px; text-align: center; font-size: 12px; color: var(--muted); }
figure img, figure .noimg { width: 160px; border: 4px solid; border-radius: 3px; display: block; margin: 0 auto; }
figure .noimg { height: 90px; line-height: 82px; background: #f3f5f8; }
figure.ok img, figure.ok .noimg { border-color: var(--ok); }
figure.bad img, figure.bad .noimg { border-color: var(--bad); }
.failure { color: var(--bad); white-space: pre-wrap; text-align: left; }
svg text { font: 12px system-ui, sans-serif; fill: var(--ink); }
svg .bar { fill: #4a7fc1; } svg .ci { stroke: var(--ink); stroke-width: 1.5; }
svg .gridline { stroke: var(--line); } svg .axis { stroke: var(--muted); }
"""


# ------------------------------------------------------------------------------------------ formatting
def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and digits == 0):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def _pct(value) -> str:
    return "—" if value is None else f"{100.0 * float(value):.1f} %"


def _ci(ci) -> str:
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return "—"
    return f"{100.0 * float(ci[0]):.1f} – {100.0 * float(ci[1]):.1f} %"


def _href(rel: str) -> str:
    """A results-relative file path as a safe relative URL (no scheme can survive quoting)."""
    return _esc(quote(str(rel).replace("\\", "/").lstrip("/"), safe="/"))


def _summary(block: dict | None, episodes: list[dict]) -> dict:
    """A task/overall block with every key present, falling back to values computed from the episodes."""
    block = dict(block or {})
    if not block.get("ci95") and block.get("episodes") is not None and block.get("successes") is not None:
        block["ci95"] = list(wilson_interval(int(block["successes"]), int(block["episodes"])))
    if block.get("success_rate") is None and block.get("episodes"):
        block["success_rate"] = int(block.get("successes") or 0) / int(block["episodes"])
    for key, value in summarize_episodes(episodes).items():
        if block.get(key) is None:
            block[key] = value
    return block


# ------------------------------------------------------------------------------------------ sections
_COLUMNS = (
    "Episodes", "Successes", "Success rate", "95 % CI", "Mean length", "Median length",
    "Latency p50 (ms)", "Latency p99 (ms)", "Rejected actions", "Failures",
)  # fmt: skip


def _stat_cells(block: dict) -> str:
    length = block.get("length") or {}
    latency = block.get("latency_ms") or {}
    cells = (
        _num(block.get("episodes")),
        _num(block.get("successes")),
        _pct(block.get("success_rate")),
        _ci(block.get("ci95")),
        _num(length.get("mean")),
        _num(length.get("median")),
        _num(latency.get("p50")),
        _num(latency.get("p99")),
        _num(block.get("rejected_actions")),
        _num(block.get("failures")),
    )
    return "".join(f"<td>{_esc(c)}</td>" for c in cells)


def _header(results: dict) -> str:
    policy = results.get("policy") or {}
    settings = results.get("settings") or {}
    execution = settings.get("execution") or {}
    label = results.get("label") or policy.get("spec") or "evaluation"
    rows = [
        ("Policy", policy.get("spec")),
        ("Label", results.get("label")),
        ("Date", results.get("created")),
        ("vlatwin", results.get("vlatwin_version")),
        ("Episodes per task", settings.get("episodes")),
        ("Seed", settings.get("seed")),
        ("Max steps", settings.get("max_steps")),
        ("Workers", settings.get("workers")),
        ("Replan every", execution.get("replan")),
        ("Temporal ensemble", execution.get("ensemble")),
        ("Real-time", execution.get("realtime")),
        ("Videos", settings.get("video")),
    ]
    info = policy.get("info") or {}
    for key in sorted(info):
        value = info[key]
        if isinstance(value, (str, int, float, bool)) or value is None:
            rows.append((f"policy.{key}", value))
    body = "".join(
        f"<tr><th>{_esc(k)}</th><td>{_esc('—' if v is None else v)}</td></tr>" for k, v in rows if v is not None
    )
    return (
        f"<h1>vlatwin eval: {_esc(label)}</h1>\n"
        f'<p class="meta">{_esc(policy.get("spec") or "")} · {_esc(results.get("created") or "")}</p>\n'
        f'<table class="settings">{body}</table>\n'
    )


def _overall_table(overall: dict) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in _COLUMNS)
    return f'<h2>Overall</h2>\n<table id="overall"><tr>{head}</tr><tr>{_stat_cells(overall)}</tr></table>\n'


def _task_table(tasks: dict[str, dict]) -> str:
    head = '<th class="text">Task</th><th class="text">Instruction</th>' + "".join(
        f"<th>{_esc(c)}</th>" for c in _COLUMNS
    )
    rows = []
    for name, block in tasks.items():
        rows.append(
            f'<tr><td class="text">{_esc(name)}</td><td class="text instr">{_esc(block.get("instruction") or "")}</td>'
            f"{_stat_cells(block)}</tr>"
        )
    return f'<h2>Per task</h2>\n<table id="tasks"><tr>{head}</tr>{"".join(rows)}</table>\n'


def success_chart_svg(tasks: dict[str, dict]) -> str:
    """Horizontal bars of per-task success rate (0–100 %) with 95 % CI whiskers, as an inline ``<svg>``."""
    names = list(tasks)
    label_w, plot_w, row_h, top, bottom = 220, 520, 28, 10, 30
    height = top + row_h * max(1, len(names)) + bottom
    width = label_w + plot_w + 70
    svg_open = (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="success-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="success rate per task">'
    )
    parts = [svg_open]
    axis_y = top + row_h * max(1, len(names))
    for tick in range(0, 101, 20):
        x = label_w + plot_w * tick / 100
        parts.append(f'<line class="gridline" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}"/>')
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{tick} %</text>')
    parts.append(f'<line class="axis" x1="{label_w}" y1="{top}" x2="{label_w}" y2="{axis_y}"/>')
    for k, name in enumerate(names):
        block = tasks[name]
        rate = float(block.get("success_rate") or 0.0)
        lo, hi = (block.get("ci95") or [rate, rate])[:2]
        y = top + k * row_h
        bar_h = row_h - 10
        shown = name if len(name) <= 32 else name[:31] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">{_esc(shown)}</text>'
            f'<rect class="bar" data-task="{_esc(name)}" x="{label_w}" y="{y + 5}" '
            f'width="{plot_w * rate:.1f}" height="{bar_h}"><title>{_esc(name)}: {_pct(rate)} '
            f"(95 % CI {_ci([lo, hi])})</title></rect>"
        )
        if lo is not None and hi is not None:
            x0, x1, yc = label_w + plot_w * float(lo), label_w + plot_w * float(hi), y + row_h / 2
            parts.append(
                f'<line class="ci" x1="{x0:.1f}" y1="{yc:.1f}" x2="{x1:.1f}" y2="{yc:.1f}"/>'
                f'<line class="ci" x1="{x0:.1f}" y1="{yc - 5:.1f}" x2="{x0:.1f}" y2="{yc + 5:.1f}"/>'
                f'<line class="ci" x1="{x1:.1f}" y1="{yc - 5:.1f}" x2="{x1:.1f}" y2="{yc + 5:.1f}"/>'
            )
        parts.append(f'<text x="{label_w + plot_w + 8}" y="{y + row_h / 2 + 4:.1f}">{_pct(rate)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _read_jpeg(out_dir: Path, rel: str | None) -> bytes | None:
    """The thumbnail's bytes if ``rel`` names a JPEG inside ``out_dir``; else None."""
    if not rel:
        return None
    root = out_dir.resolve()
    path = (root / rel).resolve()
    if root not in path.parents or not path.is_file():
        return None
    data = path.read_bytes()
    return data if data[:3] == b"\xff\xd8\xff" else None


def _thumbnails(out_dir: Path, tasks: Iterable[str], episodes: list[dict]) -> str:
    parts = ["<h2>Episodes</h2>\n"]
    for task in tasks:
        eps = sorted((ep for ep in episodes if ep.get("task") == task), key=lambda ep: ep.get("index") or 0)
        if not eps:
            continue
        parts.append(f'<h3>{_esc(task)}</h3>\n<div class="grid" data-task="{_esc(task)}">')
        for ep in eps:
            ok = bool(ep.get("success"))
            caption = f"ep {_num(ep.get('index'))} · {_num(ep.get('steps'))} steps"
            jpeg = _read_jpeg(out_dir, ep.get("thumbnail"))
            if jpeg is not None:
                img = (
                    f'<img alt="{_esc(caption)}" src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode("ascii")}">'
                )
            else:
                img = f'<div class="noimg">{"success" if ok else "failure"}</div>'
            if ep.get("video"):
                img = f'<a href="{_href(ep["video"])}">{img}</a>'
            title = f' title="{_esc(ep["failure"])}"' if ep.get("failure") else ""
            parts.append(
                f'<figure class="{"ok" if ok else "bad"}"{title}>{img}<figcaption>{_esc(caption)}</figcaption></figure>'
            )
        parts.append("</div>\n")
    return "".join(parts)


def _failures(episodes: list[dict]) -> str:
    failed = [ep for ep in episodes if ep.get("failure")]
    if not failed:
        return '<h2>Failures</h2>\n<p class="meta">No episode reported a failure message.</p>\n'
    rows = "".join(
        f'<tr><td class="text">{_esc(ep.get("task"))}</td><td>{_num(ep.get("index"))}</td>'
        f'<td>{_num(ep.get("steps"))}</td><td class="failure">{_esc(ep.get("failure"))}</td></tr>'
        for ep in failed
    )
    return (
        '<h2>Failures</h2>\n<table id="failures"><tr><th class="text">Task</th><th>Episode</th><th>Steps</th>'
        f'<th class="text">Message</th></tr>{rows}</table>\n'
    )


# ------------------------------------------------------------------------------------------ entry point
def render_report(results: dict, out_dir: str | Path) -> str:
    """The report as an HTML string (``out_dir`` is where the results' relative paths resolve)."""
    out_dir = Path(out_dir)
    episodes = [ep for ep in (results.get("episodes") or []) if isinstance(ep, dict)]
    task_names = list((results.get("tasks") or {}).keys())
    for ep in episodes:
        if ep.get("task") not in task_names:
            task_names.append(ep.get("task"))
    tasks = {
        str(name): _summary((results.get("tasks") or {}).get(name), [ep for ep in episodes if ep.get("task") == name])
        for name in task_names
    }
    overall = _summary(results.get("overall"), episodes)
    title = results.get("label") or (results.get("policy") or {}).get("spec") or "evaluation"
    body = (
        _header(results)
        + _overall_table(overall)
        + _task_table(tasks)
        + "<h2>Success rate per task</h2>\n"
        + success_chart_svg(tasks)
        + "\n"
        + _thumbnails(out_dir, tasks, episodes)
        + _failures(episodes)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>vlatwin eval: {_esc(title)}</title>\n<style>{_CSS}</style></head>\n<body>\n{body}</body></html>\n"
    )


def write_report(results: dict, out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` (atomically) from a ``results.json`` dict; returns its path."""
    out_dir = Path(out_dir)
    path = out_dir / REPORT_NAME
    atomic_write_bytes(path, render_report(results, out_dir).encode("utf-8"))
    return path


__all__ = ["REPORT_NAME", "render_report", "success_chart_svg", "write_report"]
