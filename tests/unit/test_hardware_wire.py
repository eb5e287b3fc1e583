"""The robot link's wire codec (schema v1): round trips, and every malformed frame is a WireError."""

from __future__ import annotations

import numpy as np
import pytest

msgpack = pytest.importorskip("msgpack")

from vlatwin.errors import VlatwinError
from vlatwin.hardware import wire
from vlatwin.hardware.agent import check_token, parse_tcp_address
from vlatwin.hardware.factory import make_robot
from vlatwin.hardware.wire import WireError, decode, encode, message

pytestmark = pytest.mark.unit

MESSAGES = {
    "state": {"robot_seq": 7, "robot_time": 12.5, "joint_q": np.arange(7.0), "joint_qd": np.zeros(7), "joint_effort": np.ones(7),
                  "status": {"estop": False, "mode": "running", "last_command_seq": 3, "rate": 0.98, "note": None}, "session": 42},
    "command": {"target_q": [0.1, -0.2, 0.3], "ttl_s": 0.2, "mode": "joint_pos"},
    "ping": {"t1": 1.25},
    "pong": {"ref": 3, "t1": 1.25, "t2": 101.3, "t3": 101.31},
    "hello": {"client": "twin"},
    "welcome": {"ref": 1, "joint_names": ["a", "b"], "robot": "so101", "state_rate_hz": 500.0, "schema": 1, "session": 9, "command_port": 5556, "state_port": 5557},
    "estop": {"reason": "operator"},
    "reset_estop": {},
    "ack": {"ref": 4, "of": "estop"},
    "error": {"code": "unauthorized", "message": "wrong token", "ref": 2},
}


def _frame(**overrides) -> bytes:
    msg = {"v": 1, "type": "command", "seq": 5, "t_send": 1.0, "target_q": [0.0, 1.0], "ttl_s": 0.1, "mode": "joint_pos"}
    msg.update(overrides)
    return msgpack.packb({k: v for k, v in msg.items() if v is not ...}, use_bin_type=True)


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_round_trip(kind):
    """Every message type survives encode -> decode with its values (vectors as float64 arrays)."""
    msg = message(kind, seq=11, t_send=3.5, token="tok", **MESSAGES[kind])
    out = decode(encode(msg))
    assert out["v"] == wire.SCHEMA_VERSION and out["type"] == kind and out["seq"] == 11 and out["token"] == "tok"
    for key, value in MESSAGES[kind].items():
        if isinstance(value, np.ndarray) or (isinstance(value, list) and value and isinstance(value[0], float)):
            assert out[key].dtype == np.float64 and np.array_equal(out[key], np.asarray(value, dtype=float))
        elif isinstance(value, list):
            assert list(out[key]) == value
        else:
            assert out[key] == value


def test_optional_fields_absent():
    """Optional fields may be left out (token, ttl_s, joint_effort) and decode to None."""
    out = decode(encode(message("command", seq=1, t_send=0.0, target_q=np.zeros(2), mode="joint_pos")))
    assert out["ttl_s"] is None and out["token"] is None and out["apply_at"] is None


def test_scheduled_command_time_round_trips_and_must_be_finite():
    out = decode(encode(message("command", seq=1, t_send=0.0, target_q=np.zeros(2), mode="joint_pos", apply_at=1234.5678)))
    assert out["apply_at"] == 1234.5678
    with pytest.raises(WireError, match="apply_at"):
        encode(message("command", seq=1, t_send=0.0, target_q=np.zeros(2), mode="joint_pos", apply_at=float("inf")))


BAD_FRAMES = {
    "not msgpack": b"\xc1\xc1",
    "empty": b"",
    "truncated": _frame()[:-3],
    "trailing bytes": _frame() + b"\x00",
    "not a map": msgpack.packb([1, 2, 3]),
    "ext type": msgpack.packb({"v": msgpack.ExtType(1, b"x")}),
    "no version": _frame(v=...),
    "version 2": _frame(v=2),
    "version bool": _frame(v=True),
    "unknown type": _frame(type="teleport"),
    "unknown field": _frame(extra=1),
    "missing field": _frame(target_q=...),
    "seq negative": _frame(seq=-1),
    "seq float": _frame(seq=1.5),
    "seq bool": _frame(seq=True),
    "seq huge": _frame(seq=2**64 - 1),
    "t_send string": _frame(t_send="now"),
    "t_send nan": _frame(t_send=float("nan")),
    "t_send inf": _frame(t_send=float("inf")),
    "target nan": _frame(target_q=[0.0, float("nan")]),
    "target inf": _frame(target_q=[float("-inf"), 0.0]),
    "target empty": _frame(target_q=[]),
    "target nested": _frame(target_q=[[0.0], [1.0]]),
    "target strings": _frame(target_q=["a", "b"]),
    "target bools": _frame(target_q=[True, False]),
    "target too long": _frame(target_q=[0.0] * 65),
    "ttl zero": _frame(ttl_s=0.0),
    "ttl negative": _frame(ttl_s=-0.1),
    "mode unknown": _frame(mode="ee_delta"),
    "token int": _frame(token=5),
    "bytes keys": msgpack.packb({b"v": 1}, use_bin_type=True),
    "oversized": b"\x00" * (wire.MAX_FRAME_BYTES + 1),
    "state qd length": msgpack.packb({"v": 1, "type": "state", "seq": 1, "t_send": 0.0, "robot_seq": 1, "robot_time": 0.0,
                                      "joint_q": [0.0, 0.0], "joint_qd": [0.0], "status": {}, "session": 1}),
    "state status nested": msgpack.packb({"v": 1, "type": "state", "seq": 1, "t_send": 0.0, "robot_seq": 1, "robot_time": 0.0,
                                          "joint_q": [0.0], "joint_qd": [0.0], "status": {"a": [1]}, "session": 1}),
    "welcome port": msgpack.packb({"v": 1, "type": "welcome", "seq": 1, "t_send": 0.0, "ref": 1, "joint_names": ["a"], "robot": "r",
                                   "state_rate_hz": 1.0, "schema": 1, "session": 1, "command_port": 70000, "state_port": 1}),
    "welcome rate zero": msgpack.packb({"v": 1, "type": "welcome", "seq": 1, "t_send": 0.0, "ref": 1, "joint_names": ["a"], "robot": "r",
                                        "state_rate_hz": 0.0, "schema": 1, "session": 1, "command_port": 1, "state_port": 1}),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_malformed_frames_are_wire_errors(name):
    """Each malformed frame raises WireError (a one-line VlatwinError), never anything else."""
    with pytest.raises(WireError) as info:
        decode(BAD_FRAMES[name])
    assert isinstance(info.value, VlatwinError) and "\n" not in str(info.value)


def test_encode_refuses_what_decode_would():
    """The sender runs the same checks: NaN targets and wrong shapes never leave."""
    with pytest.raises(WireError, match="NaN"):
        encode(message("command", seq=1, t_send=0.0, target_q=np.array([0.0, np.nan]), mode="joint_pos"))
    with pytest.raises(WireError, match="1-D"):
        encode(message("command", seq=1, t_send=0.0, target_q=np.zeros((2, 2)), mode="joint_pos"))
    with pytest.raises(WireError, match="version"):
        encode({"v": 2, "type": "ping", "seq": 1, "t_send": 0.0, "t1": 0.0})


@pytest.mark.parametrize("target", [
    np.array([1, -2, 3], dtype=np.int32), np.array([1, 2, 3], dtype=np.uint8), np.array([1.0, -2.0, 3.0], dtype=np.float32),
    [1, -2, 3], (1.0, -2.0, 3.0), [np.float32(1.0), np.int64(-2), 3.0],
])
def test_vectors_of_any_numeric_kind_travel_as_floats(target):
    """Integer and float32 arrays, tuples and numpy scalars are packed as msgpack floats and decode to float64."""
    data = encode(message("command", seq=1, t_send=0.0, target_q=target, mode="joint_pos"))
    packed = msgpack.unpackb(data)["target_q"]
    assert [type(x) for x in packed] == [float, float, float]
    assert np.array_equal(decode(data)["target_q"], np.asarray(target, dtype=np.float64))


@pytest.mark.parametrize("target, match", [([1, 10**400], "too large"), (np.array([1.0, np.inf], dtype=np.float32), "NaN or Inf"),
                                           ([1.0, True], "numbers only"), (np.array([1 + 2j]), "numeric"), (np.zeros(65), "1..64")])
def test_encode_refuses_vectors_that_are_not_finite_floats(target, match):
    with pytest.raises(WireError, match=match):
        encode(message("command", seq=1, t_send=0.0, target_q=target, mode="joint_pos"))


def test_encode_refuses_a_time_too_large_for_a_float():
    with pytest.raises(WireError, match="t_send.*too large"):
        encode(message("ping", seq=1, t_send=10**400, t1=0.0))


def test_addresses_tokens_and_robot_specs():
    """Address parsing, constant-time token check, and --robot spec errors are one line."""
    assert parse_tcp_address("tcp://127.0.0.1:5555") == ("127.0.0.1", 5555)
    for bad in ("127.0.0.1:5555", "udp://h:1", "tcp://host", "tcp://h:99999", "tcp://h:1/x"):
        with pytest.raises(VlatwinError, match="tcp://HOST:PORT"):
            parse_tcp_address(bad)
    assert check_token(None, None) and check_token("a", "a") and not check_token("a", None) and not check_token("a", "b")
    with pytest.raises(VlatwinError, match="unknown robot 'ur5'.*emulated.*tcp://"):
        make_robot("ur5")
    with pytest.raises(VlatwinError, match="unknown option 'port'"):
        make_robot("tcp://127.0.0.1:5555?port=1")
    with pytest.raises(VlatwinError, match="stage"):
        make_robot("emulated?latency_ms=5")
    robot = make_robot("tcp://127.0.0.1:5555?token=abc&timeout=0.5")
    assert robot.token == "abc" and robot.timeout_s == 0.5 and not robot.is_connected


def _sensor_frame(**overrides) -> bytes:
    msg = {"v": 1, "type": "sensor", "seq": 3, "t_send": 1.0, "robot_seq": 9, "robot_time": 2.0, "session": 4, "name": "front",
           "kind": "points", "encoding": "f32le", "shape": [2, 3], "data": np.zeros(6, "<f4").tobytes()}
    msg.update(overrides)
    return msgpack.packb({k: v for k, v in msg.items() if v is not ...}, use_bin_type=True)


def test_sensor_frames_round_trip_bit_exact():
    """Camera frames (PNG and raw) and LIDAR clouds come back exactly; a frame over the 64 KiB state limit is fine on
    the state socket (``max_bytes``) but not elsewhere, and no other type may be that big."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)  # noise: PNG cannot shrink it below 64 KiB
    points = rng.normal(size=(5000, 3)).astype(np.float32)
    for kind, array, encoding in (("image", image, None), ("image", image[:7, :5], "rgb8"), ("points", points, None)):
        msg = wire.sensor_message(kind, array, name="cam0", robot_seq=12, robot_time=3.25, session=7, seq=2, t_send=1.0,
                                  encoding=encoding)
        data = encode(msg)
        out = decode(data, max_bytes=wire.MAX_SENSOR_FRAME_BYTES)
        assert out["kind"] == kind and out["name"] == "cam0" and out["robot_seq"] == 12 and out["shape"] == array.shape
        back = wire.sensor_array(out)
        assert back.dtype == array.dtype and np.array_equal(back, array)
    assert len(encode(wire.sensor_message("image", image, name="c", robot_seq=1, robot_time=0.0, session=1, seq=1,
                                          t_send=0.0))) > wire.MAX_FRAME_BYTES
    with pytest.raises(WireError, match="limit"):
        decode(encode(wire.sensor_message("image", image, name="c", robot_seq=1, robot_time=0.0, session=1, seq=1, t_send=0.0)))
    big_state = msgpack.packb({"v": 1, "type": "state", "seq": 1, "t_send": 0.0, "robot_seq": 1, "robot_time": 0.0,
                               "joint_q": [0.0], "joint_qd": [0.0], "status": {"s": "x" * 4000, **{f"k{i}": "y" * 4000 for i in range(20)}},
                               "session": 1})
    with pytest.raises(WireError, match="state frame .* over"):
        decode(big_state, max_bytes=wire.MAX_SENSOR_FRAME_BYTES)


BAD_SENSOR_FRAMES = {
    "kind unknown": _sensor_frame(kind="radar"),
    "encoding wrong for kind": _sensor_frame(encoding="png"),
    "points shape 4 columns": _sensor_frame(shape=[2, 4], data=np.zeros(8, "<f4").tobytes()),
    "data length": _sensor_frame(data=b"\x00" * 20),
    "data not bytes": _sensor_frame(data="abc"),
    "shape zero": _sensor_frame(shape=[0, 3], data=b""),
    "shape huge": _sensor_frame(shape=[10**6, 3]),
    "image shape 2d": _sensor_frame(kind="image", encoding="rgb8", shape=[2, 3], data=b"\x00" * 6),
    "no name": _sensor_frame(name=...),
}


@pytest.mark.parametrize("name", sorted(BAD_SENSOR_FRAMES))
def test_malformed_sensor_frames_are_wire_errors(name):
    with pytest.raises(WireError) as info:
        decode(BAD_SENSOR_FRAMES[name], max_bytes=wire.MAX_SENSOR_FRAME_BYTES)
    assert "\n" not in str(info.value)


def test_sensor_payloads_that_lie_about_their_shape():
    """A PNG whose size differs from the message's shape, a broken PNG, a NaN cloud: WireError from sensor_array."""
    from vlatwin.writers.encoding import png_bytes

    png = png_bytes(np.zeros((4, 6, 3), np.uint8))
    for frame, match in (
        (_sensor_frame(kind="image", encoding="png", shape=[6, 4, 3], data=png), "PNG is 6x4"),
        (_sensor_frame(kind="image", encoding="png", shape=[4, 6, 3], data=png[:30]), "not a readable PNG"),
        (_sensor_frame(data=np.array([0, 0, np.nan, 0, 0, 0], "<f4").tobytes()), "NaN"),
    ):
        with pytest.raises(WireError, match=match):
            wire.sensor_array(decode(frame, max_bytes=wire.MAX_SENSOR_FRAME_BYTES))
    with pytest.raises(WireError, match="uint8"):
        wire.sensor_message("image", np.zeros((4, 4, 3)), name="c", robot_seq=1, robot_time=0.0, session=1, seq=1, t_send=0.0)
    with pytest.raises(WireError, match="empty"):
        wire.sensor_message("points", np.zeros((0, 3)), name="l", robot_seq=1, robot_time=0.0, session=1, seq=1, t_send=0.0)
