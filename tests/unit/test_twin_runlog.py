"""The MCAP run log: JSON channels with jsonschema schemas that the plain ``mcap`` reader decodes, metadata and
attachments, numpy/NaN conversion, series stacking, and a readable prefix after the writer is killed."""

import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("mcap")

from vlatwin.twin.runlog import TOPICS, RunLog, read_runlog, to_jsonable

N = 200
DOF = 7
T0 = 50.0
DT = 0.02
META = {"config": "configs/twin/panda.yaml", "policy": "scripted:sine", "robot": "emulated", "control_hz": 50.0}
FILES = {"scene.usda": b"#usda 1.0\n", "config.yaml": b"robot: panda\n"}


def _q(i: int) -> np.ndarray:
    return 0.1 * np.arange(DOF) + 0.001 * i


def _write(path, *, close: bool = True) -> RunLog:
    log = RunLog(path, metadata=META, attachments=FILES)
    for i in range(N):
        t = T0 + DT * i
        log.log(
            "/robot/state",
            t,
            {
                "seq": np.int64(i),
                "robot_time": t + 3.0,
                "host_time": t,
                "joint_q": _q(i),
                "joint_qd": np.full(DOF, np.nan if i == 5 else 0.5, dtype=np.float32),
                "status": {"mode": "running", "estop": False},
            },
        )
        log.log("/twin/state", t, {"step": i, "time": DT * i, "joint_q": _q(i) + 1e-3, "joint_qd": np.zeros(DOF)})
        log.log(
            "/divergence", t, {"J": 1e-3 * i, "rms": np.float64(0.01), "alarm": np.bool_(i >= 150), "max_abs": [0.1]}
        )
        if i % 50 == 0:
            log.log("/events", t, {"text": f"step {i}", "level": "info"})
    if close:
        log.close()
    return log


def test_roundtrip_with_own_reader(tmp_path):
    """Metadata, attachments, topic counts and values come back as written; NaN is read as NaN."""
    path = tmp_path / "run.mcap"
    _write(path)
    data = read_runlog(path)
    assert data.complete and data.error is None and data.library == "vlatwin"
    assert data.metadata == META
    assert data.attachments == FILES
    assert data.topics == {"/robot/state": N, "/twin/state": N, "/divergence": N, "/events": N // 50}
    t, msg = data.messages("/robot/state")[7]
    assert t == pytest.approx(T0 + 7 * DT)
    assert msg["seq"] == 7 and msg["status"] == {"mode": "running", "estop": False}
    assert msg["joint_q"] == pytest.approx(_q(7).tolist())
    assert data.messages("/robot/state")[5][1]["joint_qd"] == [None] * DOF
    assert data.messages("/nope") == []
    merged = list(data.iter_messages(["/events", "/divergence"]))
    assert len(merged) == N + N // 50 and all(a[0] <= b[0] for a, b in itertools.pairwise(merged))
    assert data.duration == pytest.approx((N - 1) * DT)


def test_plain_mcap_reader_decodes_everything(tmp_path):
    """A third-party reader (``mcap.reader.make_reader`` + ``json``) sees the same messages, schemas and records."""
    from mcap.reader import make_reader

    path = tmp_path / "run.mcap"
    _write(path)
    counts: dict[str, int] = {}
    with open(path, "rb") as handle:
        reader = make_reader(handle)
        assert reader.get_header().library == "vlatwin" and reader.get_header().profile == ""
        for schema, channel, message in reader.iter_messages():
            assert channel.message_encoding == "json" and schema.encoding == "jsonschema"
            body = json.loads(message.data)
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic == "/robot/state" and body["seq"] == 3:
                assert message.log_time == message.publish_time == round((T0 + 3 * DT) * 1e9)
                assert body["joint_q"] == pytest.approx(_q(3).tolist())
                assert set(json.loads(schema.data)["properties"]) == set(TOPICS["/robot/state"])
        metadata = {m.name: m.metadata for m in reader.iter_metadata()}
        attachments = {a.name: (a.media_type, a.data) for a in reader.iter_attachments()}
        summary = reader.get_summary()
    assert counts == {"/robot/state": N, "/twin/state": N, "/divergence": N, "/events": N // 50}
    assert {k: json.loads(v) for k, v in metadata["vlatwin"].items()} == META
    assert attachments["config.yaml"] == ("application/yaml", FILES["config.yaml"])
    assert attachments["scene.usda"][1] == FILES["scene.usda"]
    assert summary.statistics.message_count == 3 * N + N // 50


def test_schemas_use_plain_types():
    """Declared schemas give every field one JSON type (Foxglove's schema parser rejects type unions)."""
    from vlatwin.twin.runlog import topic_schema

    def walk(node):
        assert isinstance(node.get("type"), str)
        for child in node.get("properties", {}).values():
            walk(child)
        if "items" in node:
            walk(node["items"])

    for topic, fields in TOPICS.items():
        walk(topic_schema(topic, fields))


def test_series_stacking(tmp_path):
    """List fields stack to (N, D), scalars to (N,), dotted paths reach nested fields, nulls become NaN."""
    path = tmp_path / "run.mcap"
    _write(path)
    data = read_runlog(path)
    t, q = data.series("/robot/state", "joint_q")
    assert t.shape == (N,) and q.shape == (N, DOF)
    np.testing.assert_allclose(q[10], _q(10))
    np.testing.assert_allclose(t, T0 + DT * np.arange(N))
    _, qd = data.series("/robot/state", "joint_qd")
    assert np.isnan(qd[5]).all() and np.isfinite(qd[6]).all()
    _, J = data.series("/divergence", "J")
    assert J.shape == (N,) and J[-1] == pytest.approx(1e-3 * (N - 1))
    _, alarm = data.series("/divergence", "alarm")
    assert alarm.sum() == N - 150
    _, mode = data.series("/robot/state", "status.mode")
    assert mode.dtype == object and mode[0] == "running"
    t_missing, missing = data.series("/robot/state", "no_such_field")
    assert t_missing.size == 0 and missing.size == 0


def test_unknown_topic_schema_is_inferred(tmp_path):
    """A topic outside ``TOPICS`` gets a schema from its first message's types."""
    path = tmp_path / "run.mcap"
    with RunLog(path, metadata={}) as log:
        log.log(
            "/custom/thing", 1.0, {"n": 3, "x": np.float32(0.5), "v": np.zeros(3), "ok": True, "s": "a", "d": {"k": 1}}
        )
    schema = read_runlog(path).schemas["/custom/thing"]["properties"]
    assert {k: v["type"] for k, v in schema.items()} == {
        "n": "integer", "x": "number", "v": "array", "ok": "boolean", "s": "string", "d": "object"
    }  # fmt: skip
    assert schema["v"]["items"]["type"] == "number" and schema["d"]["properties"]["k"]["type"] == "integer"


def test_to_jsonable_and_misuse(tmp_path):
    """numpy values become plain JSON (NaN/Inf -> null); negative times and logging after close raise."""
    value = {
        "a": np.array([1.0, np.nan, np.inf]),
        "b": np.float32(2.5),
        "c": (np.int8(1), np.bool_(False)),
        "d": float("nan"),
    }
    assert to_jsonable(value) == {"a": [1.0, None, None], "b": 2.5, "c": [1, False], "d": None}
    assert to_jsonable(np.array([[1.0, np.nan]])) == [[1.0, None]]
    log = RunLog(tmp_path / "x.mcap", metadata={})
    with pytest.raises(ValueError):
        log.log("/events", -1.0, {"text": "x", "level": "info"})
    log.close()
    log.close()
    with pytest.raises(RuntimeError):
        log.log("/events", 1.0, {"text": "x", "level": "info"})


_KILLED = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from vlatwin.twin.runlog import RunLog
    log = RunLog(sys.argv[1], metadata={"config": "killed.yaml"}, attachments={"scene.usda": b"#usda 1.0\\n"},
                 flush_interval_s=1.0)
    for i in range(1000):
        t = 10.0 + 0.01 * i
        log.log("/robot/state", t, {"seq": i, "robot_time": t, "host_time": t, "joint_q": np.full(7, float(i)),
                                    "joint_qd": np.zeros(7), "status": {}})
    os._exit(0)  # a kill: no close(), no interpreter cleanup, no buffered-file flush
    """
)


def test_killed_run_leaves_readable_prefix(tmp_path):
    """A writer killed before close() leaves metadata, attachments and all but the last second of messages."""
    path = tmp_path / "killed.mcap"
    subprocess.run([sys.executable, "-c", _KILLED, str(path)], check=True, timeout=120)
    data = read_runlog(path)
    assert not data.complete and data.error
    assert data.metadata == {"config": "killed.yaml"} and data.attachments == {"scene.usda": b"#usda 1.0\n"}
    _, seq = data.series("/robot/state", "seq")
    n = seq.size
    assert n >= 1000 - 100 - 1  # 100 messages = 1 s of logged time (flush_interval_s)
    np.testing.assert_array_equal(seq, np.arange(n))  # a contiguous prefix, nothing corrupt
    _, q = data.series("/robot/state", "joint_q")
    np.testing.assert_array_equal(q[:, 0], np.arange(n, dtype=float))

    from mcap.exceptions import McapError
    from mcap.reader import NonSeekingReader

    plain = 0
    with open(path, "rb") as handle, pytest.raises(McapError):
        for _, channel, message in NonSeekingReader(handle).iter_messages(log_time_order=False):
            assert json.loads(message.data)["seq"] == plain and channel.topic == "/robot/state"
            plain += 1
    assert plain == n


def test_truncated_at_any_byte_reads_a_prefix(tmp_path):
    """Cutting a log at arbitrary byte offsets never raises and never yields more messages than an earlier cut."""
    path = tmp_path / "run.mcap"
    log = RunLog(path, metadata=META, chunk_size=2048)
    for i in range(300):
        log.log("/divergence", 1.0 + 0.01 * i, {"J": float(i), "rms": 0.0, "alarm": False, "max_abs": [0.0]})
    log.close()
    blob = path.read_bytes()
    previous = -1
    for cut in sorted({8, 40, 200} | set(np.linspace(300, len(blob) - 1, 25).astype(int).tolist())):
        part = tmp_path / f"cut{cut}.mcap"
        part.write_bytes(blob[:cut])
        data = read_runlog(part)
        _, J = data.series("/divergence", "J")
        np.testing.assert_array_equal(J, np.arange(J.size, dtype=float))
        assert not data.complete and J.size >= previous
        previous = J.size
    assert previous > 250
