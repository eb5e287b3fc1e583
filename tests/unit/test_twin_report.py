"""The twin run's HTML summary: known numbers from a synthetic run log (divergence, alarms, safety events,
clock, measured latency, tracking error), one robot polyline per joint, escaped events, and killed logs."""

import os
import subprocess
import sys
import textwrap
from html.parser import HTMLParser

import numpy as np
import pytest

pytest.importorskip("mcap")

from vlatwin.report.twin_report import (
    format_summary,
    summary_numbers,
    to_host,
    write_twin_summary,
)
from vlatwin.twin.runlog import RunLog, read_runlog

EVIL = '<script>alert("x")</script> & stop'
N = 300
DOF = 7
T0 = 100.0
DT = 0.02
OFFSET = 2.5  # robot clock ahead of the host [s]
LATENCY = 0.020  # measurement -> host receive [s]


def q_true(t: float) -> np.ndarray:
    return 0.1 * np.sin(t + np.arange(DOF))


def write_synthetic(path, *, close: bool = True) -> RunLog:
    """A 6 s run at 50 Hz with known latency, clock offset, divergence, alarms and safety events."""
    meta = {"config": "configs/twin/panda.yaml", "policy": "scripted:sine", "robot": "emulated", "control_hz": 50}
    log = RunLog(path, metadata=meta, attachments={"config.yaml": b"robot: panda\n"})
    kinds = ["clamp"] * 3 + ["watchdog_expired"] * 2 + ["estop"]
    for i in range(N):
        t = T0 + DT * i
        t_meas = t - LATENCY
        log.log("/policy", t, {"action": q_true(t), "latency_ms": 10.0 + (i % 5), "queried": i % 5 == 0})
        log.log("/command/raw", t, {"seq": i, "target_q": q_true(t)})
        scheduled = {"apply_time": t + 0.14, "apply_at": t + 0.14 + OFFSET} if i >= N // 2 else {}
        log.log("/command/safe", t, {"seq": i, "target_q": q_true(t), "expires_at": t + 0.1, **scheduled})
        log.log(
            "/robot/state",
            t,
            {"seq": i, "robot_time": t_meas + OFFSET, "host_time": t, "joint_q": q_true(t_meas),
             "joint_qd": np.zeros(DOF), "status": {"mode": "running", "commands_lost": 3, "commands_late": 1, "commands_recovered": 2}},
        )  # fmt: skip
        log.log("/twin/state", t, {"step": i, "time": DT * i, "joint_q": q_true(t) + 1e-3, "joint_qd": np.zeros(DOF)})
        log.log(
            "/estimate",
            t,
            {"joint_q": q_true(t), "joint_qd": np.zeros(DOF), "std_q": np.full(DOF, 1e-3), "latency_s": LATENCY},
        )
        alarm = 100 <= i < 120
        log.log(
            "/divergence",
            t,
            {"J": 1e-3 * i, "rms": 0.5 if alarm else 0.01, "alarm": alarm, "max_abs": np.full(DOF, 1e-3)},
        )
        if i % 25 == 0:
            log.log("/clock", t, {"offset_s": OFFSET, "skew_ppm": 0.0, "delay_s": 0.001, "samples": i // 25 + 1})
        if i < len(kinds):
            log.log(
                "/safety/event", t, {"kind": kinds[i], "reason": "limit", "before": [1.0, 2.0], "after": [0.5, 2.0]}
            )
    log.log("/events", T0 + 1.0, {"text": EVIL, "level": "warning"})
    log.log("/events", T0 + 2.0, {"text": "resynchronized", "level": "info"})
    if close:
        log.close()
    return log


class _Page(HTMLParser):
    """Collects tags, table cells by table id, SVG ids and polylines, and all text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.svgs: list[str] = []
        self.polylines: list[dict] = []
        self.text: list[str] = []
        self.external: list[str] = []
        self._table = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href"):
            if (a.get(key) or "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "svg":
            self.svgs.append(a.get("id") or "")
        elif tag == "polyline":
            self.polylines.append({**a, "svg": self.svgs[-1]})

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_summary_numbers_are_the_known_values(tmp_path):
    """Every number in ``summary_numbers`` matches what the synthetic run put in."""
    path = tmp_path / "run.mcap"
    write_synthetic(path)
    nums = summary_numbers(read_runlog(path))
    assert nums["complete"] is True
    assert nums["duration_s"] == pytest.approx((N - 1) * DT)
    assert nums["control_rate_hz"] == pytest.approx(1 / DT)
    assert nums["final_J"] == pytest.approx(1e-3 * (N - 1))
    assert nums["max_rms"] == pytest.approx(0.5)
    assert nums["alarms"] == 1 and nums["alarm_time_fraction"] == pytest.approx(20 / N)
    assert nums["safety_events"] == {"clamp": 3, "estop": 1, "watchdog_expired": 2}
    assert nums["safety_events_total"] == 6 and nums["watchdog_events"] == 2 and nums["estop_events"] == 1
    assert nums["clock_offset_s"] == OFFSET and nums["clock_skew_ppm"] == 0.0 and nums["clock_samples"] == 12
    assert nums["latency_p50_ms"] == pytest.approx(LATENCY * 1e3, abs=1e-6)
    assert nums["latency_p99_ms"] == pytest.approx(LATENCY * 1e3, abs=1e-6)
    assert nums["estimated_latency_s"] == LATENCY
    assert nums["policy_latency_p50_ms"] == pytest.approx(12.0)
    assert nums["tracking_rms_twin"] == pytest.approx(1e-3, rel=0.02)
    assert nums["tracking_rms_estimate"] == pytest.approx(0.0, abs=1e-4)
    assert nums["commands_scheduled"] == N // 2 and nums["command_lead_ms"] == pytest.approx(140.0)
    assert (nums["commands_lost"], nums["commands_late"], nums["commands_recovered"]) == (3, 1, 2)
    lines = format_summary(nums)
    assert "final_J: 0.299" in lines and any(line.startswith("safety_events: clamp=3") for line in lines)


def test_to_host_inverts_offset_and_skew():
    """``to_host`` undoes robot = host + offset + skew * (host - ref)."""
    host = np.array([0.0, 10.0, 1000.0])
    clock = {"offset_s": -4.0, "skew_ppm": 50.0, "ref_s": 10.0}
    robot = host + clock["offset_s"] + 50e-6 * (host - clock["ref_s"])
    np.testing.assert_allclose(to_host(robot, clock), host, atol=1e-12)
    np.testing.assert_allclose(to_host(robot, None), robot)


def test_html_shows_numbers_plots_and_escaped_events(tmp_path):
    """The page parses, is self-contained, carries the known numbers, one robot polyline per joint and escapes events."""
    path = tmp_path / "run.mcap"
    write_synthetic(path)
    out = write_twin_summary(path, tmp_path / "out" / "summary.html")
    assert out == tmp_path / "out" / "summary.html" and out.is_file()
    page = _parse(out)
    assert "script" not in page.tags and not page.external
    assert "configs/twin/panda.yaml" in "".join(page.text)
    summary = {row[0]: row[1] for row in page.tables["summary"] if len(row) == 2}
    assert summary["Final J (∫‖x_phys − x_twin‖² dt)"] == "0.299000"
    assert summary["Max windowed RMS divergence"] == "0.500000"
    assert summary["Divergence alarms"] == "1"
    assert summary["Scheduled commands (lead, ms)"] == f"{N // 2} (140.0)"
    assert summary["Commands lost / recovered / late (robot's count)"] == "3 / 2 / 1"
    assert summary["Measured latency p50 (ms)"] == "20.00"
    assert summary["Clock offset (s)"] == "2.500000"
    assert summary["Watchdog events"] == "2" and summary["E-stop events"] == "1"
    assert {row[0]: row[1] for row in page.tables["safety-kinds"][1:]} == {
        "clamp": "3",
        "estop": "1",
        "watchdog_expired": "2",
    }
    for j in range(DOF):
        lines = [p for p in page.polylines if p["svg"] == f"joint-{j}"]
        assert [p["class"] for p in lines] == ["robot", "twin", "estimate"]
        assert all(p["data-joint"] == str(j) for p in lines)
        assert len(lines[0]["points"].split()) == N
    assert "joint-7" not in page.svgs
    assert {"divergence-J", "divergence-rms"} <= set(page.svgs)
    assert [p["class"] for p in page.polylines if p["svg"].startswith("divergence")] == ["J", "rms"]
    events = page.tables["events"]
    assert any(EVIL in cell for row in events for cell in row)
    assert "&lt;script&gt;" in out.read_text(encoding="utf-8")
    assert sum(1 for row in events[1:] if row[1] == "safety") == 6


_KILLED = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, sys.argv[2])
    from test_twin_report import write_synthetic
    write_synthetic(sys.argv[1], close=False)
    os._exit(0)
    """
)


def test_summary_of_a_killed_run(tmp_path):
    """A log whose writer was killed still gets a summary, flagged as not closed cleanly."""
    path = tmp_path / "killed.mcap"
    subprocess.run([sys.executable, "-c", _KILLED, str(path), os.path.dirname(__file__)], check=True, timeout=120)
    data = read_runlog(path)
    assert not data.complete and data.topics.get("/robot/state", 0) >= N - 50 - 1
    nums = summary_numbers(data)
    assert nums["complete"] is False and nums["max_rms"] == pytest.approx(0.5)
    page = _parse(write_twin_summary(path, tmp_path / "summary.html"))
    assert any("not closed cleanly" in text for text in page.text)
    assert len([p for p in page.polylines if p.get("class") == "robot"]) == DOF
