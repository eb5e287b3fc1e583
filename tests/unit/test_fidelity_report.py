"""The sysid fidelity report: verdict numbers, escaping, no script, parameter marking, shape errors, empty sections."""

import dataclasses
import math
from html.parser import HTMLParser

import numpy as np
import pytest

pytest.importorskip("scipy")

from vlatwin.errors import VlatwinError
from vlatwin.report.fidelity_report import (
    FidelityReportData,
    ParamRow,
    fidelity_summary,
    render_fidelity_report,
    write_fidelity_report,
)

N, J = 400, 3
EVIL = "<b>mass</b>[link & co]"
NOISE = 0.004


def make_data(**overrides) -> FidelityReportData:
    """3 joints, 400 samples of sines + noise; the identified twin is close, the nominal one is 8 % off."""
    rng = np.random.default_rng(0)
    t = 50.0 + 0.02 * np.arange(N)
    truth = np.stack([0.5 * np.sin(1.3 * (t - 50.0) + k) for k in range(J)], axis=1)
    measured = truth + rng.normal(0.0, NOISE, truth.shape)
    identified = truth + 0.001 * np.sin(3.0 * (t[:, None] - 50.0))
    nominal = 1.08 * truth + 0.02
    half = 1.96 * math.hypot(NOISE, 0.001)
    held = np.zeros(N, bool)
    held[300:] = True
    params = [
        ParamRow("drive_stiffness[panda_joint1]", "N*m/rad", 400.0, 452.3, 6.1, True, truth=450.0),
        ParamRow("drive_damping[panda_joint1]", "N*m*s/rad", 40.0, 38.2, 0.9, True),
        ParamRow("friction[panda_joint2]", "N*m", 0.5, 0.5, None, False, note="confounded with damping[panda_joint2]"),
        ParamRow(EVIL, "kg", 1.0, 1.2, 0.05, True, truth=1.19),
    ]
    corr = np.array([[1.0, -0.97, 0.2], [-0.97, 1.0, 0.0], [0.2, 0.0, 1.0]])
    base = {
        "title": "panda sysid",
        "recording": "recordings/<panda>.mcap",
        "joint_names": ["panda_joint1", "panda_joint2", "panda_finger_joint1"],
        "t": t,
        "q_measured": measured,
        "held_out": held,
        "q_nominal": nominal,
        "q_identified": identified,
        "band_lo": identified - half,
        "band_hi": identified + half,
        "params": params,
        "correlation": corr,
        "fit": {"cost": 0.0123, "iterations": 17, "status": "<converged>"},
        "latency_s": rng.gamma(4.0, 0.002, 300),
        "clock": {"offset_s": 2.5, "skew_ppm": 12.0, "delay_s": 4e-4, "samples": 40},
        "safety_events": [{"t": 52.0, "kind": "clamp", "reason": '<script>alert("x")</script>'}],
        "events": [{"t": 50.5, "level": "info", "text": "fit & done"}],
        "images": [
            ("cam0", (rng.random((40, 50, 3)) * 255).astype(np.uint8), (rng.random((40, 50, 3)) * 255).astype(np.uint8))
        ],
        "point_clouds": [("lidar", rng.random((200, 3)), rng.random((150, 3)))],
    }
    base.update(overrides)
    return FidelityReportData(**base)


class _Checker(HTMLParser):
    """Counts tags, checks nesting of non-void elements, collects text and `data-param` rows."""

    VOID = frozenset({"meta", "img", "br", "hr", "input", "link"})  # SVG shapes must self-close or be closed

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []
        self.text: list[str] = []
        self.rows: dict[str, str] = {}  # data-param -> class
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "tr" and "data-param" in attrs:
            self.rows[attrs["data-param"]] = attrs.get("class") or ""
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert checker.stack == [], checker.stack
    return checker


def test_summary_numbers():
    data = make_data()
    s = fidelity_summary(data)
    assert s["samples"] == N and s["joints"] == J and s["held_out_samples"] == 100
    assert s["duration_s"] == pytest.approx(0.02 * (N - 1))
    held = data.held_out
    err_id = (data.q_identified - data.q_measured)[held]
    err_nom = (data.q_nominal - data.q_measured)[held]
    assert s["held_out_rms_identified"] == pytest.approx(np.sqrt(np.mean(err_id**2)))
    assert s["held_out_rms_nominal"] == pytest.approx(np.sqrt(np.mean(err_nom**2)))
    assert s["improvement"] == pytest.approx(s["held_out_rms_nominal"] / s["held_out_rms_identified"])
    assert s["improvement"] > 3.0
    inside = (data.band_lo[held] <= data.q_measured[held]) & (data.q_measured[held] <= data.band_hi[held])
    assert s["held_out_band_coverage"] == pytest.approx(inside.mean())
    assert 0.90 <= s["held_out_band_coverage"] <= 0.98
    assert s["band_calibration"] == "well-calibrated"
    assert (s["params_total"], s["params_identifiable"], s["params_not_identifiable"]) == (4, 3, 1)
    assert s["final_J_nominal"] > s["final_J_identified"] > 0


def test_band_calibration_words():
    data = make_data()
    narrow = make_data(band_lo=data.q_identified - 1e-4, band_hi=data.q_identified + 1e-4)
    wide = make_data(band_lo=data.q_identified - 1.0, band_hi=data.q_identified + 1.0)
    assert fidelity_summary(narrow)["band_calibration"] == "over-confident"
    assert fidelity_summary(wide)["band_calibration"] == "under-confident"
    assert "over-confident" in render_fidelity_report(narrow)
    assert "under-confident" in render_fidelity_report(wide)


def test_render_full_report(tmp_path):
    data = make_data()
    page = render_fidelity_report(data)
    checker = parse(page)
    assert "<script" not in page.lower()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert "<b>mass</b>" not in page and "&lt;b&gt;mass&lt;/b&gt;" in page
    assert "&lt;panda&gt;" in page and "&lt;converged&gt;" in page
    # every parameter row, the unidentifiable one marked
    assert set(checker.rows) == {p.name for p in data.params}
    assert "unident" in checker.rows["friction[panda_joint2]"]
    assert "unident" not in checker.rows["drive_stiffness[panda_joint1]"]
    text = "".join(checker.text)
    assert "not identifiable" in text and "confounded with damping[panda_joint2]" in text
    # plots: one per joint (trajectories and residuals), J(t), correlation, latency
    assert checker.counts.get("svg", 0) >= 2 * J + 3
    for needed in ("verdict", "params", "correlation", "corr-pairs", "joints", "divergence-J", "residuals",
                   "latency", "clock", "safety-events", "events", "images", "clouds"):  # fmt: skip
        assert needed in checker.ids, needed
    assert checker.counts.get("polygon", 0) >= 2 * J  # the band, on trajectories and residuals
    assert checker.counts.get("img", 0) == 3  # robot, twin, diff thumbnails
    assert "data:image/png;base64,iVBORw0KGgo" in page
    # the verdict shows the summary's numbers
    s = fidelity_summary(data)
    for key in ("held_out_rms_nominal", "held_out_rms_identified"):
        assert f"{1e3 * s[key]:.3f}" in text
    assert f"{s['improvement']:.2f}×" in text
    assert f"{100 * s['held_out_band_coverage']:.1f} %" in text and "well-calibrated" in text
    assert "3 / 1" in text
    # the confounded pair is listed
    assert "-0.970" in text
    # no raw NaN text anywhere
    assert "nan" not in text.lower().replace("nanoseconds", "")
    path = write_fidelity_report(data, tmp_path / "sub" / "fidelity.html")
    assert path.read_text(encoding="utf-8") == page


def test_nan_values_render_as_dash():
    data = make_data()
    q_id = data.q_identified.copy()
    q_id[:, 2] = np.nan
    params = [ParamRow("p", "u", math.nan, math.nan, math.nan, True)]
    page = render_fidelity_report(make_data(q_identified=q_id, params=params, correlation=np.array([[1.0]])))
    text = "".join(parse(page).text)
    assert "nan" not in text.lower()
    assert "—" in text


def test_shape_mismatch_names_the_field():
    data = make_data()
    with pytest.raises(VlatwinError, match=r"FidelityReportData\.q_nominal: expected shape \(400, 3\), got \(399, 3\)"):
        render_fidelity_report(make_data(q_nominal=data.q_nominal[:-1]))
    with pytest.raises(VlatwinError, match=r"FidelityReportData\.held_out"):
        fidelity_summary(make_data(held_out=np.zeros(N - 1, bool)))
    with pytest.raises(VlatwinError, match=r"FidelityReportData\.q_measured"):
        fidelity_summary(make_data(joint_names=["a", "b"]))
    with pytest.raises(VlatwinError, match=r"FidelityReportData\.band_hi"):
        fidelity_summary(make_data(band_hi=None))
    with pytest.raises(VlatwinError, match=r"FidelityReportData\.correlation"):
        render_fidelity_report(make_data(correlation=np.eye(4)))
    with pytest.raises(VlatwinError, match=r"FidelityReportData\.images\[0\]"):
        render_fidelity_report(make_data(images=[("cam", np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))]))
    with pytest.raises(VlatwinError, match=r"FidelityReportData\.point_clouds\[0\]"):
        render_fidelity_report(make_data(point_clouds=[("lidar", np.zeros((4, 3)), np.zeros((4, 2)))]))


def test_minimal_report_says_what_is_missing():
    full = make_data()
    data = FidelityReportData(
        title="bare",
        recording="r.mcap",
        joint_names=full.joint_names,
        t=full.t,
        q_measured=full.q_measured,
        held_out=np.zeros(N, bool),
    )
    s = fidelity_summary(data)
    assert s["held_out_rms_identified"] is None and s["improvement"] is None and s["band_calibration"] is None
    page = render_fidelity_report(data)
    checker = parse(page)
    text = "".join(checker.text)
    assert "No held-out samples" in text
    assert "no camera frames" in text and "no point clouds" in text
    assert "No correlation matrix" in text and "No parameters" in text
    assert "no latency measurements" in text and "No safety events" in text and "No events" in text
    assert checker.counts.get("svg", 0) >= J  # measured trajectories still drawn
    assert "<script" not in page.lower()


def test_many_params_and_events_stay_bounded():
    """60 identifiable params: heatmap labelled by number with a key; 500 events capped at 200 rows."""
    rng = np.random.default_rng(4)
    params = [ParamRow(f"param_{k}", "u", 1.0, 1.0 + 0.01 * k, 0.01, True) for k in range(60)]
    a = rng.normal(size=(60, 200))
    corr = np.corrcoef(a)
    corr[0, 1] = corr[1, 0] = 0.99
    events = [{"t": 50.0 + 0.01 * k, "level": "warn", "text": f"ev{k:04d}"} for k in range(500)]
    page = render_fidelity_report(make_data(params=params, correlation=corr, events=events))
    checker = parse(page)
    text = "".join(checker.text)
    assert "Parameter numbers (60)" in text
    assert "… and 300 more." in text
    assert "ev0199" in text and "ev0200" not in text
    assert checker.counts["rect"] >= 60 * 60


def test_dataclass_defaults_are_independent():
    a, b = make_data(), make_data()
    assert dataclasses.asdict(ParamRow("x", "u", 1.0, 1.0, None, False))["truth"] is None
    a.events.append({"t": 0.0, "level": "info", "text": "x"})
    assert len(b.events) == 1


def test_a_fit_far_above_its_noise_floor_is_flagged():
    """params.yaml's reduced chi^2 (squared residuals per degree of freedom, in noise-floor units): a fit of
    armature alone measured 4.6, armature + friction behind stiff drives 178 with intervals that missed the truth."""
    good = make_data(fit={"reduced_chi2": 4.6})
    bad = make_data(fit={"reduced_chi2": 178.0})
    assert fidelity_summary(good)["reduced_chi2"] == pytest.approx(4.6)
    assert fidelity_summary(make_data())["reduced_chi2"] is None
    assert "model error dominates" not in render_fidelity_report(good)
    page = render_fidelity_report(bad)
    assert "residuals are 13× the noise floor: model error dominates" in page
