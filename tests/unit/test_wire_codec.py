"""Wire codecs: openpi's msgpack-numpy, json-numpy, and the vlatwin observation layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

msgpack = pytest.importorskip("msgpack")

from vlatwin.errors import VlatwinError
from vlatwin.policy.wire import WireError
from vlatwin.policy.wire import json_numpy as jn
from vlatwin.policy.wire.msgpack_numpy import Packer, packb, unpackb


def _nd(data: bytes, dtype, shape) -> bytes:
    return msgpack.packb({b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape})


# ------------------------------------------------------------------------------------ msgpack-numpy
def test_ndarray_map_layout_is_openpis():
    """An ndarray is a plain map with bytes keys __ndarray__/data/dtype/shape (no ExtType)."""
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = msgpack.unpackb(packb({"a": arr}), raw=False)
    assert raw == {"a": {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": "<f4", b"shape": [2, 3]}}
    scalar = msgpack.unpackb(packb(np.int64(7)))
    assert scalar == {b"__npgeneric__": True, b"data": 7, b"dtype": "<i8"}


def test_round_trip_dtypes_and_nesting():
    """Arrays of every plain dtype, scalars, strings and nested containers come back equal (arrays read-only)."""
    obj = {
        "img": np.arange(24, dtype=np.uint8).reshape(2, 4, 3),
        "f64": np.linspace(0, 1, 5),
        "bool": np.array([True, False]),
        "i16": np.array([-3, 4], dtype=">i2"),
        "empty": np.zeros((0, 7)),
        "strided": np.arange(10.0)[::2],
        "s": np.float32(1.5),
        "nested": {"list": [1, "two", np.uint8(3)], "none": None, "bytes": b"\x00\x01"},
        "prompt": "pick up the cube",
    }
    out = Packer().pack(obj)
    back = unpackb(out)
    for key in ("img", "f64", "bool", "i16", "empty", "strided"):
        np.testing.assert_array_equal(back[key], obj[key])
        assert back[key].dtype == obj[key].dtype
    assert back["img"].flags.writeable is False
    assert back["s"] == np.float32(1.5) and back["s"].dtype == np.float32
    assert back["nested"] == {"list": [1, "two", 3], "none": None, "bytes": b"\x00\x01"}
    assert back["prompt"] == "pick up the cube"


@pytest.mark.parametrize("value", [np.array([1 + 2j]), np.array([object()], dtype=object), np.zeros(2, dtype="i4,f4")])
def test_pack_refuses_complex_object_void(value):
    """dtype kinds c/O/V are refused on the way out."""
    with pytest.raises(WireError, match="dtype"):
        packb({"x": value})


def test_pack_refuses_unknown_types():
    """Arbitrary Python objects are not sent (no pickle)."""
    with pytest.raises(WireError, match="cannot send"):
        packb({"x": object()})


BAD_FRAMES = {
    "empty": b"",
    "reserved byte": b"\xc1",
    "truncated": packb({"a": np.zeros(10)})[:-5],
    "trailing bytes": packb(1) + b"\x00",
    "nesting bomb": b"\x91" * 100_000 + b"\xc0",
    "ext type": msgpack.packb(msgpack.ExtType(3, b"abc")),
    "list as map key": b"\x81\x91\x01\x02",
    "huge declared array": b"\xdd\xff\xff\xff\xff",
    "huge declared bin": b"\xc6\xff\xff\xff\xff",
    "object dtype": _nd(b"\x00" * 8, "|O", [1]),
    "void dtype": _nd(b"\x00" * 8, "|V8", [1]),
    "complex dtype": _nd(b"\x00" * 16, "<c16", [1]),
    "structured dtype": _nd(b"\x00" * 8, "i4,f4", [1]),
    "subarray dtype": _nd(b"\x00" * 8, "(2,)f4", [1]),
    "unknown dtype": _nd(b"\x00" * 8, "<q9", [1]),
    "dtype not a string": _nd(b"\x00" * 8, 5, [1]),
    "zero itemsize": _nd(b"", "S0", [10**9]),
    "size mismatch": _nd(b"\x00" * 7, "<f8", [1]),
    "absurd shape": _nd(b"", "<f8", [10**12, 10**12]),
    "negative dim": _nd(b"", "<f8", [-1]),
    "bool dim": _nd(b"\x00" * 8, "<f8", [True]),
    "too many dims": _nd(b"\x00" * 8, "<f8", [1] * 40),
    "shape not a list": _nd(b"\x00" * 8, "<f8", 1),
    "data not bytes": _nd("abcdefgh", "<f8", [1]),
    "scalar overflow": msgpack.packb({b"__npgeneric__": True, b"data": 2**40, b"dtype": "<i4"}),
    "scalar bad data": msgpack.packb({b"__npgeneric__": True, b"data": [1], b"dtype": "<i4"}),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_malformed_frames_raise_wire_error(name):
    """Every malformed frame raises WireError (a VlatwinError) with one line, nothing else."""
    with pytest.raises(WireError) as info:
        unpackb(BAD_FRAMES[name])
    assert isinstance(info.value, VlatwinError)
    assert "\n" not in str(info.value) and str(info.value)


def test_text_frame_is_not_msgpack():
    """A str (websocket text frame) is refused."""
    with pytest.raises(WireError, match="text"):
        unpackb("hello")


def test_random_bytes_never_escape_wire_error():
    """2,000 random and bit-flipped frames: decoded or WireError, never another exception."""
    rng = np.random.default_rng(0)
    good = packb({"observation/image": np.zeros((4, 4, 3), np.uint8), "state": np.arange(9.0), "prompt": "x"})
    for i in range(2000):
        if i % 2:
            frame = rng.integers(0, 256, size=int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
        else:
            buf = bytearray(good)
            for _ in range(int(rng.integers(1, 4))):
                buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
            frame = bytes(buf[: int(rng.integers(1, len(buf) + 1))])
        try:
            unpackb(frame)
        except WireError:
            pass


# ------------------------------------------------------------------------------------------ json-numpy
def test_json_numpy_golden_encoding():
    """Same text as json-numpy 2.1.0 (json_numpy.dumps(np.arange(3, dtype='<f4')), checked with the package)."""
    text = jn.dumps(np.arange(3, dtype="<f4"))
    assert json.loads(text) == {"__numpy__": "AAAAAAAAgD8AAABA", "dtype": "<f4", "shape": [3]}
    img = jn.dumps({"image": np.zeros((2, 2, 3), np.uint8), "instruction": "go"})
    assert json.loads(img)["image"] == {"__numpy__": "AAAAAAAAAAAAAAAA", "dtype": "|u1", "shape": [2, 2, 3]}


def test_json_numpy_round_trip_and_scalar():
    """Arrays round-trip; a shape of [] is a numpy scalar as in json-numpy; non-contiguous arrays encode in C order."""
    arr = np.arange(12.0).reshape(3, 4).T
    back = jn.loads(jn.dumps({"a": arr, "s": np.float32(2.5)}))  # np.float64 is a float: plain JSON number
    np.testing.assert_array_equal(back["a"], arr)
    assert back["s"] == 2.5 and isinstance(back["s"], np.float32)


@pytest.mark.parametrize(
    "text",
    [
        "{", "[1,", '{"__numpy__": 5, "dtype": "<f8", "shape": [1]}',
        '{"__numpy__": "!!!", "dtype": "<f8", "shape": [1]}',
        '{"__numpy__": "AAAA", "dtype": "<f8", "shape": [1]}',
        '{"__numpy__": "AAAAAAAAAAA=", "dtype": "|O", "shape": [1]}',
        '{"__numpy__": "", "dtype": "<f8", "shape": [1000000000000]}',
        '{"__numpy__": "", "dtype": "<f8", "shape": "x"}',
        '{"__numpy__": "", "dtype": [["a", "<f8"]], "shape": [0]}',
        "[" * 100_000,
    ],
)
def test_json_numpy_malformed(text):
    """Malformed JSON / json-numpy objects raise WireError."""
    with pytest.raises(WireError):
        jn.loads(text)


# ------------------------------------------------------------------------------- observation layout
def _observation():
    from vlatwin.loop.control_loop import Observation
    from vlatwin.sim.types import SimState

    rng = np.random.default_rng(1)
    state = SimState(
        time=1.25, step=250, joint_q=rng.normal(size=9), joint_qd=rng.normal(size=9),
        body_pose_w=rng.normal(size=(14, 7)), body_vel_w=rng.normal(size=(14, 6)), joint_effort=rng.normal(size=9),
    )
    sensors = {
        "front": {"rgb": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "depth": np.ones((48, 64), np.float32)},
        "wrist": {"rgb": rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)},
        "imu": {"acc": np.zeros(3)},
    }
    return Observation(time=1.2, step=24, state=state, sensors=sensors, sensor_times={"front": 1.15}, instruction="pick the red cube")


def test_observation_round_trip_is_exact():
    """Observation -> vlatwin wire dict -> msgpack -> Observation keeps state bit for bit and the RGB frames."""
    from vlatwin.policy.wire.observation import observation_to_wire, wire_to_observation

    obs = _observation()
    wire = observation_to_wire(obs)
    assert wire["prompt"] == "pick the red cube"
    assert sorted(k for k in wire if k.startswith("observation/images/")) == ["observation/images/front", "observation/images/wrist"]
    back = wire_to_observation(unpackb(packb(wire)))
    assert (back.time, back.step, back.instruction) == (obs.time, obs.step, obs.instruction)
    for name in ("joint_q", "joint_qd", "body_pose_w", "body_vel_w", "joint_effort"):
        np.testing.assert_array_equal(getattr(back.state, name), getattr(obs.state, name))
        assert getattr(back.state, name).flags.writeable
    assert (back.state.time, back.state.step) == (obs.state.time, obs.state.step)
    np.testing.assert_array_equal(back.sensors["front"]["rgb"], obs.sensors["front"]["rgb"])
    np.testing.assert_array_equal(back.sensors["wrist"]["rgb"], obs.sensors["wrist"]["rgb"][..., :3])
    assert back.sensor_times == {"front": 1.15}


def test_observation_camera_selection():
    """cameras= picks frames; an unknown camera is a one-line error."""
    from vlatwin.policy.wire.observation import observation_to_wire

    wire = observation_to_wire(_observation(), cameras=["wrist"])
    assert [k for k in wire if k.startswith("observation/images/")] == ["observation/images/wrist"]
    with pytest.raises(VlatwinError, match="'side'"):
        observation_to_wire(_observation(), cameras=["side"])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("vlatwin/state/joint_q"),
        lambda d: d.__setitem__("vlatwin/state/body_pose_w", np.zeros((3, 5))),
        lambda d: d.__setitem__("vlatwin/state/joint_q", "x"),
        lambda d: d.__setitem__("vlatwin/step", 1.5),
        lambda d: d.__setitem__("vlatwin/layout", 99),
        lambda d: d.__setitem__("observation/images/front", np.zeros((4, 4), np.uint8)),
        lambda d: d.__setitem__("prompt", 3),
    ],
)
def test_bad_vlatwin_observation(mutate):
    """Wrong or missing vlatwin keys raise WireError."""
    from vlatwin.policy.wire.observation import observation_to_wire, wire_to_observation

    wire = observation_to_wire(_observation())
    mutate(wire)
    with pytest.raises(WireError):
        wire_to_observation(unpackb(packb(wire)))


def test_generic_observation_best_effort():
    """A LIBERO/ALOHA-style dict passes images (HWC or CHW) and the state vector through."""
    from vlatwin.policy.wire.observation import generic_to_observation

    obs = generic_to_observation({
        "observation/image": np.zeros((8, 8, 3), np.uint8),
        "images": {"cam_high": np.zeros((3, 6, 5), np.uint8)},
        "observation/state": np.arange(8.0),
        "prompt": "do it",
    })
    assert sorted(obs.sensors) == ["cam_high", "image"]
    assert obs.sensors["cam_high"]["rgb"].shape == (6, 5, 3)
    np.testing.assert_array_equal(obs.state.joint_q, np.arange(8.0))
    assert obs.instruction == "do it"
