"""Self-contained HTML reports (inline CSS, inline SVG plots, base64 thumbnails; no network, no matplotlib)."""

from __future__ import annotations

from vlatwin.report.eval_report import write_report

__all__ = ["write_report"]
