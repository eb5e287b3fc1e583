"""The eval HTML report: self-contained (no network), tables carry the numbers, one SVG bar per task,
embedded thumbnails are real JPEGs linked to their MP4s, and every string from the results is escaped."""

import base64
import io
from html.parser import HTMLParser
from importlib.util import find_spec

import numpy as np
import pytest
from vlatwin.eval.stats import wilson_interval
from vlatwin.report import write_report

EVIL = '<script>alert("x")</script> & pick'


class _Page(HTMLParser):
    """Collects tables (by id) as rows of cell text, SVG bars, images, links, figures and all script tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.bars: list[dict] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.figures: list[dict] = []
        self.captions: list[str] = []
        self.scripts = 0
        self.external: list[str] = []
        self._table = None
        self._cell = None
        self._caption = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])
        if tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.external.append(str(a))
        elif tag == "table":
            self._table = self.tables.setdefault(a.get("id", f"t{len(self.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "rect" and "bar" in a.get("class", "").split():
            self.bars.append(a)
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "a":
            self.links.append(a["href"])
        elif tag == "figure":
            self.figures.append(a)
        elif tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "figcaption":
            self.captions.append("".join(self._caption))
            self._caption = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)


def _jpeg(colour) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((90, 120, 3), colour, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _fixture(tmp_path) -> dict:
    episodes = []
    for task, outcomes in (("reach cube", [True, True, False]), ("stack", [True, False])):
        for index, ok in enumerate(outcomes):
            rel_thumb = f"thumbs/{task}/episode_{index:03d}.jpg"
            (tmp_path / rel_thumb).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel_thumb).write_bytes(_jpeg((0, 170, 60) if ok else (210, 30, 30)))
            episodes.append(
                {
                    "task": task, "index": index, "init_state": index, "success": ok, "steps": 40 + 17 * index,
                    "first_success_step": 30 if ok else None, "latency_ms": {"p50": 3.0, "p99": 5.0, "mean": 3.2, "max": 6.0, "n": 40},
                    "rejected_actions": 0 if ok else 2, "failure": None if ok else f"NaN action at step 12 {EVIL}",
                    "video": f"videos/{task}/episode_{index:03d}.mp4", "thumbnail": rel_thumb, "wall_s": 1.5,
                }
            )  # fmt: skip
    episodes[-1]["thumbnail"] = None  # tolerated: no image, still a captioned tile
    tasks = {
        "reach cube": {
            "instruction": EVIL, "config": "configs/reach.yaml", "episodes": 3, "successes": 2, "success_rate": 2 / 3,
            "ci95": list(wilson_interval(2, 3)), "length": {"mean": 57.0, "median": 57.0, "min": 40, "max": 74},
            "latency_ms": {"p50": 3.1, "p99": 5.4, "mean": 3.3, "max": 6.0, "n": 171}, "rejected_actions": 2, "failures": 1,
        },
        "stack": {  # optional fields missing: ci95, length, latency computed or shown as a dash
            "instruction": "stack the blocks", "episodes": 2, "successes": 1, "success_rate": 0.5,
        },
    }  # fmt: skip
    return {
        "vlatwin_version": "0.1.0",
        "created": "2026-12-02T10:00:00+00:00",
        "label": "expert <v1>",
        "policy": {"spec": "expert", "info": {"name": "expert", "chunk_size": 1}},
        "settings": {"episodes": 3, "seed": 7, "max_steps": 200, "workers": 1,
                     "execution": {"replan": None, "ensemble": None, "realtime": False}, "video": True},
        "tasks": tasks,
        "overall": {"episodes": 5, "successes": 3, "success_rate": 0.6, "ci95": list(wilson_interval(3, 5)),
                    "length": {"mean": 60.4, "median": 57.0, "min": 40, "max": 74},
                    "latency_ms": {"p50": 3.0, "p99": 5.2, "mean": 3.2, "max": 6.0, "n": 300},
                    "rejected_actions": 4, "failures": 2},
        "episodes": episodes,
    }  # fmt: skip


def test_report_tables_chart_thumbnails_and_escaping(tmp_path):
    results = _fixture(tmp_path)
    path = write_report(results, tmp_path)
    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)

    # Self-contained, and the hostile instruction / failure message stayed text.
    assert page.scripts == 0 and not page.external
    assert "<script>" not in text and "&lt;script&gt;" in text

    overall = page.tables["overall"]
    head, row = overall[0], overall[1]
    cell = dict(zip(head, row, strict=True))
    lo, hi = wilson_interval(3, 5)
    assert cell["Episodes"] == "5" and cell["Successes"] == "3" and cell["Success rate"] == "60.0 %"
    assert cell["95 % CI"] == f"{100 * lo:.1f} – {100 * hi:.1f} %"
    assert cell["Mean length"] == "60.4" and cell["Latency p99 (ms)"] == "5.2" and cell["Rejected actions"] == "4"

    tasks = {row[0]: dict(zip(page.tables["tasks"][0], row, strict=True)) for row in page.tables["tasks"][1:]}
    assert set(tasks) == {"reach cube", "stack"}
    assert tasks["reach cube"]["Instruction"] == EVIL  # shown verbatim, as text
    assert tasks["reach cube"]["Success rate"] == "66.7 %" and tasks["reach cube"]["Latency p50 (ms)"] == "3.1"
    lo, hi = wilson_interval(1, 2)  # computed for the task that lacks ci95
    assert tasks["stack"]["95 % CI"] == f"{100 * lo:.1f} – {100 * hi:.1f} %"
    assert tasks["stack"]["Mean length"] == "48.5"  # from its episodes (40, 57)
    assert tasks["stack"]["Latency p50 (ms)"] == "—"

    # One bar per task, width proportional to the success rate.
    assert [b["data-task"] for b in page.bars] == ["reach cube", "stack"]
    widths = [float(b["width"]) for b in page.bars]
    assert widths[0] / widths[1] == pytest.approx((2 / 3) / 0.5, rel=1e-3)

    # Thumbnails: valid base64 JPEGs that PIL opens, each linked to its MP4 (relative, URL-quoted).
    assert len(page.images) == 4 and len(page.figures) == 5
    if find_spec("PIL") is not None:
        from PIL import Image

        for src in page.images:
            assert src.startswith("data:image/jpeg;base64,")
            with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as img:
                assert img.format == "JPEG" and img.size == (120, 90)
    assert "videos/reach%20cube/episode_002.mp4" in page.links
    assert [f["class"] for f in page.figures] == ["ok", "ok", "bad", "ok", "bad"]
    assert "ep 1 · 57 steps" in page.captions

    # Failures listed with their (escaped) messages.
    failures = page.tables["failures"]
    assert len(failures) == 3 and failures[1][:2] == ["reach cube", "2"]
    assert failures[1][3] == f"NaN action at step 12 {EVIL}"


def test_report_survives_minimal_results(tmp_path):
    """Only episodes: task and overall blocks are computed; no thumbnails or videos."""
    results = {
        "episodes": [
            {"task": "t", "index": 0, "success": True, "steps": 5},
            {"task": "t", "index": 1, "success": False, "steps": 9},
        ]
    }
    page = _Page()
    page.feed(write_report(results, tmp_path).read_text(encoding="utf-8"))
    cell = dict(zip(*page.tables["overall"][:2], strict=True))
    assert cell["Episodes"] == "2" and cell["Success rate"] == "50.0 %"
    assert len(page.bars) == 1 and not page.images and not page.links


def test_thumbnail_paths_outside_the_folder_are_not_embedded(tmp_path):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(_jpeg((1, 2, 3)))
    out = tmp_path / "run"
    results = {"episodes": [{"task": "t", "index": 0, "success": True, "steps": 5, "thumbnail": "../secret.jpg",
                             "video": "javascript:alert(1)"}]}  # fmt: skip
    page = _Page()
    page.feed(write_report(results, out).read_text(encoding="utf-8"))
    assert not page.images
    assert page.links == ["javascript%3Aalert%281%29"]  # a relative path, not a script URL
