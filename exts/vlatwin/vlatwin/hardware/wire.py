"""The robot link's wire format (schema version 1): msgpack maps, validated field by field, no pickle.

Every message is one msgpack map with the common fields

``v``        schema version (:data:`SCHEMA_VERSION`); any other value is refused with a one-line error
``type``     one of :data:`MESSAGE_TYPES`
``seq``      the sender's sequence number for this channel (increases by one per message)
``t_send``   the sender's monotonic clock when it sent the message [s]
``token``    the shared secret (optional; required by an agent started with a token)

and the fields of its type (``?`` = optional, may be absent or nil)::

    state        robot_seq, robot_time [s, robot clock], joint_q [rad|m], joint_qd, joint_effort?, joint_q_desired?, joint_q_goal?, status, session
    sensor       robot_seq, robot_time, session, name, kind ("image" | "points"), encoding, shape, data (bytes):
                 one camera frame or LIDAR cloud taken at the instant of the state with the same robot_seq,
                 sent just before that state on the same socket (so it arrives first)
    command      target_q [rad|m], ttl_s? [s] (expires_at - send_time; nil = never expires), mode ("joint_pos"),
                 apply_at? [s, robot clock] (when the target takes effect; nil = on arrival),
                 prev_seq?, prev_target_q?, prev_apply_at?, prev_ttl_s? (the scheduled command sent before this one,
                 repeated; its TTL counted from this message's send)
    ping         t1 [s] (host send)
    pong         ref (the ping's seq), t1 (echoed), t2 (agent receive), t3 (agent reply) [s, robot clock]
    hello        client? (a name for the agent's log)
    welcome      ref, joint_names, robot, state_rate_hz, schema, session, command_port, state_port
    estop        reason?
    reset_estop  reason?
    ack          ref, of (the acknowledged type)
    error        code, message, ref?

Sensor payloads (:func:`sensor_message` / :func:`sensor_array`): ``image`` frames are uint8 RGB, ``shape``
[H, W, 3], ``encoding`` ``png`` (lossless, what the agent sends) or ``rgb8`` (raw rows); ``points`` clouds are
``shape`` [N, 3] positions [m] in the sensor's frame, ``encoding`` ``f32le`` (little-endian float32 rows). A
sensor frame may be up to :data:`MAX_SENSOR_FRAME_BYTES` (other frames: :data:`MAX_FRAME_BYTES`); a receiver
that does not know the type drops the frame like any malformed one.

Vectors travel as msgpack arrays of floats (cross-language, no ExtType) and decode to float64 numpy
arrays; ``status`` is a flat map of scalars. :func:`decode` rejects anything else (wrong types, bools where
numbers belong, NaN/Inf, vectors of different lengths, unknown fields, trailing bytes, frames over
:data:`MAX_FRAME_BYTES`) with :class:`WireError`; :func:`encode` runs the same checks before packing, so
nothing invalid is ever sent. Freshness is the receiver's call (see :class:`~vlatwin.hardware.agent.RobotAgent`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from vlatwin._deps import require
from vlatwin.errors import VlatwinError

SCHEMA_VERSION = 1
MAX_FRAME_BYTES = 65536
MAX_SENSOR_FRAME_BYTES = 64 * 2**20
"""Largest sensor frame [bytes] (a 4k RGB frame raw is 25 MB); only the state socket accepts frames this big."""
MAX_SENSOR_DIM = 16384
MAX_JOINTS = 64
MAX_SEQ = 2**63 - 1
MAX_STR = 4096
MAX_STATUS_KEYS = 64

MESSAGE_TYPES = ("state", "sensor", "command", "ping", "pong", "hello", "welcome", "estop", "reset_estop", "ack", "error")
COMMAND_MODES = ("joint_pos",)
SENSOR_ENCODINGS = {"image": ("png", "rgb8"), "points": ("f32le",)}


class WireError(VlatwinError):
    """A malformed, unsupported or stale frame on the robot link (the receiver logs it and drops it)."""


# field kinds: "int" (0..2^63-1), "float" (finite), "pos" (finite, > 0), "str", "vec", "strlist", "status", "port",
# "bin" (bytes), "shape" (1..4 integers in 1..MAX_SENSOR_DIM)
_COMMON = {"v": ("int", True), "type": ("str", True), "seq": ("int", True), "t_send": ("float", True), "token": ("str", False)}
_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "state": {
        "robot_seq": ("int", True), "robot_time": ("float", True), "joint_q": ("vec", True), "joint_qd": ("vec", True),
        "joint_effort": ("vec", False), "joint_q_desired": ("vec", False), "joint_q_goal": ("vec", False),
        "status": ("status", True), "session": ("int", True),
    },
    "sensor": {
        "robot_seq": ("int", True), "robot_time": ("float", True), "session": ("int", True), "name": ("str", True),
        "kind": ("str", True), "encoding": ("str", True), "shape": ("shape", True), "data": ("bin", True),
    },
    "command": {
        "target_q": ("vec", True), "ttl_s": ("pos", False), "mode": ("str", True), "apply_at": ("float", False),
        "prev_seq": ("int", False), "prev_target_q": ("vec", False), "prev_apply_at": ("float", False), "prev_ttl_s": ("pos", False),
    },
    "ping": {"t1": ("float", True)},
    "pong": {"ref": ("int", True), "t1": ("float", True), "t2": ("float", True), "t3": ("float", True)},
    "hello": {"client": ("str", False)},
    "welcome": {
        "ref": ("int", True), "joint_names": ("strlist", True), "robot": ("str", True), "state_rate_hz": ("pos", True),
        "schema": ("int", True), "session": ("int", True), "command_port": ("port", True), "state_port": ("port", True),
    },
    "estop": {"reason": ("str", False)},
    "reset_estop": {"reason": ("str", False)},
    "ack": {"ref": ("int", True), "of": ("str", True)},
    "error": {"code": ("str", True), "message": ("str", True), "ref": ("int", False)},
}


@functools.cache
def _msgpack():
    return require("msgpack", extra="twin")


def _ext_hook(code, data):
    raise WireError(f"msgpack ExtType {code} is not part of the robot wire")


def _check_int(name: str, value: Any, hi: int = MAX_SEQ) -> int:
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        raise WireError(f"field {name!r} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not 0 <= value <= hi:
        raise WireError(f"field {name!r} = {value} is out of range 0..{hi}")
    return value


def _check_port(name: str, value: Any) -> int:
    return _check_int(name, value, 65535)


def _check_float(name: str, value: Any) -> float:
    if type(value) is not float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise WireError(f"field {name!r} must be a number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:
            raise WireError(f"field {name!r} is too large for a float") from None
    if not math.isfinite(value):
        raise WireError(f"field {name!r} is not finite ({value})")
    return value


def _check_pos(name: str, value: Any) -> float:
    value = _check_float(name, value)
    if value <= 0:
        raise WireError(f"field {name!r} must be > 0, got {value}")
    return value


def _check_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise WireError(f"field {name!r} must be a string, got {type(value).__name__}")
    if len(value) > MAX_STR:
        raise WireError(f"field {name!r} is longer than {MAX_STR} characters")
    return value


_NUMBER = (int, float, np.integer, np.floating)


def _vec_list(name: str, value: Any) -> list[float]:
    """A vector field as a list of finite Python floats (what msgpack packs; no numpy call per element)."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "fiu":
            raise WireError(f"field {name!r} must be a 1-D numeric array, got shape {value.shape} dtype {value.dtype}")
        items = value.tolist()
        exact = value.dtype.kind == "f"
    else:
        if not isinstance(value, (list, tuple)):
            raise WireError(f"field {name!r} must be a list of numbers, got {type(value).__name__}")
        # Decoded vectors are lists of Python floats: test the exact type first, the slow isinstance only otherwise.
        exact = True
        for x in value:
            if type(x) is not float:
                if isinstance(x, bool) or not isinstance(x, _NUMBER):
                    raise WireError(f"field {name!r} must contain numbers only")
                exact = False
        items = value if exact and type(value) is list else list(value)
    if not 1 <= len(items) <= MAX_JOINTS:
        raise WireError(f"field {name!r} must have 1..{MAX_JOINTS} entries, got {len(items)}")
    if not exact:
        try:
            items = [float(x) for x in items]
        except OverflowError:
            raise WireError(f"field {name!r} contains a number too large for a float") from None
    if not all(map(math.isfinite, items)):
        raise WireError(f"field {name!r} contains NaN or Inf")
    return items


def _check_vec(name: str, value: Any) -> np.ndarray:
    return np.array(_vec_list(name, value), dtype=np.float64)


def _check_bin(name: str, value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise WireError(f"field {name!r} must be bytes (msgpack bin), got {type(value).__name__}")
    return bytes(value)


def _check_shape(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 4:
        raise WireError(f"field {name!r} must be a list of 1..4 integers")
    dims = tuple(_check_int(name, x) for x in value)
    if not all(1 <= d <= MAX_SENSOR_DIM for d in dims):
        raise WireError(f"field {name!r} = {list(dims)} has a dimension outside 1..{MAX_SENSOR_DIM}")
    return dims


def _check_strlist(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_JOINTS:
        raise WireError(f"field {name!r} must be a list of 1..{MAX_JOINTS} strings")
    return tuple(_check_str(name, x) for x in value)


def _check_status(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) > MAX_STATUS_KEYS:
        raise WireError(f"field {name!r} must be a map of at most {MAX_STATUS_KEYS} entries")
    out = {}
    for key, item in value.items():
        _check_str(f"{name}.key", key)
        if item is None or isinstance(item, bool):
            out[key] = item
        elif isinstance(item, str):
            out[key] = _check_str(f"{name}.{key}", item)
        elif isinstance(item, (int, np.integer)):
            out[key] = int(item)
        elif isinstance(item, (float, np.floating)):
            out[key] = _check_float(f"{name}.{key}", item)
        else:
            raise WireError(f"field {name}.{key} must be a scalar (bool, number, string, nil), got {type(item).__name__}")
    return out


_CHECKS = {
    "int": _check_int, "port": _check_port, "float": _check_float, "pos": _check_pos, "str": _check_str, "vec": _check_vec,
    "bin": _check_bin, "shape": _check_shape, "strlist": _check_strlist, "status": _check_status,
}


def _specs(checks: dict[str, Any]) -> dict[str, tuple]:
    """Per message type: (field name, checker, required), common fields first (built once: states run at 1 kHz)."""
    return {
        kind: tuple((name, checks[field_kind], required) for name, (field_kind, required) in {**_COMMON, **fields}.items())
        for kind, fields in _FIELDS.items()
    }


_SPECS = _specs(_CHECKS)
_SPECS_OUT = _specs({**_CHECKS, "vec": _vec_list})  # encode: vectors stay lists of floats, ready to pack
_SPEC_NAMES = {kind: frozenset(name for name, _, _ in spec) for kind, spec in _SPECS.items()}


def validate(msg: Any) -> dict[str, Any]:
    """The message with every field checked and normalized (vectors -> float64 arrays); raises :class:`WireError`."""
    return _validate(msg, _SPECS)


def _validate(msg: Any, specs: dict[str, tuple]) -> dict[str, Any]:
    if not isinstance(msg, dict):
        raise WireError(f"a robot-wire message is a map, got {type(msg).__name__}")
    if "v" not in msg:
        raise WireError("message has no schema version field 'v'")
    version = msg["v"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise WireError(f"schema version {version!r} is not supported (this side speaks {SCHEMA_VERSION}); update vlatwin on both ends")
    kind = msg.get("type")
    if kind not in MESSAGE_TYPES:
        raise WireError(f"unknown message type {kind!r}; known: {', '.join(MESSAGE_TYPES)}")
    names = _SPEC_NAMES[kind]
    unknown = sorted(str(k) for k in msg if k not in names)
    if unknown:
        raise WireError(f"{kind} message has unknown field {unknown[0]!r}")
    out: dict[str, Any] = {}
    for name, check, required in specs[kind]:
        value = msg.get(name)
        if value is None:
            if required:
                raise WireError(f"{kind} message lacks field {name!r}")
            out[name] = None
            continue
        out[name] = check(name, value)
    if kind == "state":
        n = len(out["joint_q"])
        for name in ("joint_qd", "joint_effort", "joint_q_desired", "joint_q_goal"):
            if out[name] is not None and len(out[name]) != n:
                raise WireError(f"state field {name!r} has {len(out[name])} entries, joint_q has {n}")
    elif kind == "sensor":
        encodings = SENSOR_ENCODINGS.get(out["kind"])
        if encodings is None:
            raise WireError(f"sensor kind {out['kind']!r} is not supported; known: {', '.join(SENSOR_ENCODINGS)}")
        if out["encoding"] not in encodings:
            raise WireError(f"sensor {out['kind']} encoding {out['encoding']!r} is not supported; known: {', '.join(encodings)}")
        want = 3 if out["kind"] == "image" else 2
        if len(out["shape"]) != want or out["shape"][-1] != 3:
            layout = "[H, W, 3]" if out["kind"] == "image" else "[N, 3]"
            raise WireError(f"sensor {out['kind']} shape {list(out['shape'])} must be {layout}")
        raw = {"rgb8": 1, "f32le": 4}.get(out["encoding"])
        if raw is not None and len(out["data"]) != raw * math.prod(out["shape"]):
            raise WireError(
                f"sensor {out['name']!r}: {len(out['data'])} data bytes do not match shape {list(out['shape'])} ({out['encoding']})"
            )
    elif kind == "command" and out["mode"] not in COMMAND_MODES:
        raise WireError(f"command mode {out['mode']!r} is not supported; known: {', '.join(COMMAND_MODES)}")
    return out


def message(kind: str, *, seq: int, t_send: float, token: str | None = None, **fields: Any) -> dict[str, Any]:
    """A message map with the common fields filled in (not yet validated: :func:`encode` does that)."""
    msg = {"v": SCHEMA_VERSION, "type": kind, "seq": seq, "t_send": t_send, **fields}
    if token is not None:
        msg["token"] = token
    return msg


def sensor_message(kind: str, array: np.ndarray, *, name: str, robot_seq: int, robot_time: float, session: int, seq: int,
                   t_send: float, token: str | None = None, encoding: str | None = None) -> dict[str, Any]:
    """A ``sensor`` message for one camera frame (``kind="image"``, uint8 (H, W, 3); PNG unless ``encoding="rgb8"``)
    or LIDAR cloud (``kind="points"``, (N, 3) [m], sent as little-endian float32)."""
    array = np.asarray(array)
    if kind == "image":
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise WireError(f"camera {name!r}: a frame must be uint8 (H, W, 3), got {array.dtype} {array.shape}")
        encoding = encoding or "png"
        if encoding == "png":
            from vlatwin.writers.encoding import png_bytes

            data = png_bytes(array)
        else:
            data = np.ascontiguousarray(array).tobytes()
    elif kind == "points":
        if array.ndim != 2 or array.shape[1] != 3 or array.dtype.kind not in "fiu":
            raise WireError(f"LIDAR {name!r}: a cloud must be numeric (N, 3), got {array.dtype} {array.shape}")
        if array.shape[0] == 0:
            raise WireError(f"LIDAR {name!r}: an empty cloud is not sent")
        encoding = encoding or "f32le"
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    else:
        raise WireError(f"sensor kind {kind!r} is not supported; known: {', '.join(SENSOR_ENCODINGS)}")
    msg = message("sensor", seq=seq, t_send=t_send, token=token, robot_seq=robot_seq, robot_time=robot_time, session=session,
                  name=name, encoding=encoding, shape=list(array.shape), data=data)
    msg["kind"] = kind  # not a keyword above: message()'s first parameter is the message type
    return msg


def sensor_array(msg: dict[str, Any]) -> np.ndarray:
    """The frame (uint8 (H, W, 3)) or cloud (float32 (N, 3)) of a decoded ``sensor`` message; :class:`WireError` when
    the payload does not decode to its stated shape."""
    shape, data = tuple(msg["shape"]), msg["data"]
    if msg["encoding"] == "f32le":
        points = np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)
        if not np.all(np.isfinite(points)):
            raise WireError(f"sensor {msg['name']!r}: the cloud contains NaN or Inf")
        return points
    if msg["encoding"] == "rgb8":
        return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()
    Image = require("PIL.Image", extra="twin")
    import io

    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
            if (img.height, img.width) != shape[:2]:  # checked before decoding: no decompression bombs
                raise WireError(f"sensor {msg['name']!r}: PNG is {img.width}x{img.height}, the message says {shape[1]}x{shape[0]}")
            image = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
        raise WireError(f"sensor {msg['name']!r}: data is not a readable PNG ({type(exc).__name__})") from None
    return image


def encode(msg: dict[str, Any]) -> bytes:
    """One validated message as msgpack bytes; raises :class:`WireError` on anything :func:`decode` would refuse."""
    checked = _validate(msg, _SPECS_OUT)
    data = _msgpack().packb({k: v for k, v in checked.items() if v is not None}, use_bin_type=True)
    limit = MAX_SENSOR_FRAME_BYTES if checked["type"] == "sensor" else MAX_FRAME_BYTES
    if len(data) > limit:
        raise WireError(f"message is {len(data)} bytes, over the {limit}-byte frame limit")
    return data


def decode(data: bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> dict[str, Any]:
    """Bytes from the link -> a validated message; raises :class:`WireError` (one line) on any malformed frame.

    ``max_bytes``: the largest frame accepted (the state socket passes :data:`MAX_SENSOR_FRAME_BYTES`, and then
    only ``sensor`` frames may exceed :data:`MAX_FRAME_BYTES`)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"a frame is bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise WireError(f"frame is {len(data)} bytes, over the {max_bytes}-byte limit")
    msgpack = _msgpack()
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, ext_hook=_ext_hook)
    except WireError:
        raise
    except msgpack.ExtraData:
        raise WireError("frame has trailing bytes after the message") from None
    except Exception as exc:  # noqa: BLE001 - msgpack raises ValueError / UnpackValueError / TypeError / UnicodeDecodeError ...
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WireError(f"frame is not valid msgpack ({detail})") from None
    msg = validate(obj)
    if len(data) > MAX_FRAME_BYTES and msg["type"] != "sensor":
        raise WireError(f"{msg['type']} frame is {len(data)} bytes, over the {MAX_FRAME_BYTES}-byte limit")
    return msg


__all__ = [
    "COMMAND_MODES", "MAX_FRAME_BYTES", "MAX_SENSOR_FRAME_BYTES", "MESSAGE_TYPES", "SCHEMA_VERSION", "SENSOR_ENCODINGS", "WireError",
    "decode", "encode", "message", "sensor_array", "sensor_message", "validate",
]
