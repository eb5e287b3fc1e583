"""The twin run log: one MCAP file per ``vlatwin twin run``, and reading it back.

Every message is JSON (``message_encoding="json"``) on a channel with a ``jsonschema`` schema, so
Foxglove, the ``mcap`` CLI and ROS 2 tools show its fields without vlatwin. ``log_time`` and
``publish_time`` are the host time the runner passed to :meth:`RunLog.log` [ns] (host monotonic clock:
the origin is arbitrary, so viewers show times near 1970). Run-level information goes in one metadata
record named ``"vlatwin"`` (a string map whose values are JSON-encoded) and files such as ``scene.usda``
and ``config.yaml`` go in attachments.

Crash tolerance: messages are written in small chunks, and the writer closes the current chunk and
flushes the file every ``flush_interval_s`` of logged host time, so a run that is killed (SIGKILL, power
kept) leaves a file whose prefix is valid MCAP: header, metadata, attachments given at open, and every
chunk completed before the kill. It has no summary section or footer, so seeking readers (Foxglove's
indexed mode, ``mcap.reader.make_reader`` on a seekable file) refuse it; :func:`read_runlog` and
``mcap.reader.NonSeekingReader(f).iter_messages(log_time_order=False)`` read it front to back and stop at
the first incomplete record (the plain reader then raises ``EndOfFile`` after yielding the prefix; with
``log_time_order=True`` it yields nothing). A killed run loses at most the last ``flush_interval_s`` of
logged time or ``chunk_size`` bytes of messages, whichever comes first. ``mcap recover`` rewrites such a
file with an index.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Self

import numpy as np

from vlatwin._deps import is_available, require

#: Declared topics: field name -> JSON type (``number``, ``integer``, ``boolean``, ``string``, ``object``, an
#: array of those written ``number[]``, or a nested ``{field: type}`` dict). Topics not listed here get a schema
#: inferred from their first message. Numbers may be ``null`` in the data (NaN and Inf are written as ``null``).
TOPICS: dict[str, dict[str, Any]] = {
    "/robot/state": {
        "seq": "integer",
        "robot_time": "number",
        "host_time": "number",
        "joint_q": "number[]",
        "joint_qd": "number[]",
        "joint_q_desired": "number[]",
        "joint_q_goal": "number[]",
        "joint_effort": "number[]",
        "status": {
            "estop": "boolean",
            "target_time": "number",
            "target_ramp_s": "number",
            "servo_ramp_s": "number",
            "mode": "string",
            "last_command_seq": "integer",
            "command_success_rate": "number",
            "commands_lost": "integer",
            "commands_late": "integer",
            "commands_recovered": "integer",
            "effort": "string",
        },
    },
    "/twin/state": {"step": "integer", "time": "number", "joint_q": "number[]", "joint_qd": "number[]"},
    "/estimate": {"joint_q": "number[]", "joint_qd": "number[]", "std_q": "number[]", "latency_s": "number"},
    "/command/raw": {"seq": "integer", "target_q": "number[]"},
    "/command/safe": {"seq": "integer", "target_q": "number[]", "expires_at": "number", "apply_time": "number", "apply_at": "number"},
    "/safety/event": {"kind": "string", "reason": "string", "before": "number[]", "after": "number[]"},
    "/divergence": {"J": "number", "rms": "number", "alarm": "boolean", "max_abs": "number[]"},
    "/clock": {"offset_s": "number", "skew_ppm": "number", "delay_s": "number", "samples": "integer"},
    "/policy": {"action": "number[]", "latency_ms": "number", "queried": "boolean"},
    "/events": {"text": "string", "level": "string"},
}

#: Camera frames: ``/robot/camera/<name>`` (the robot's) and ``/twin/camera/<name>`` (the twin's, same instant),
#: as Foxglove's ``foxglove.CompressedImage`` in JSON encoding (PNG bytes as base64) so Foxglove shows them.
IMAGE_TOPIC_PREFIXES = ("/robot/camera/", "/twin/camera/")
COMPRESSED_IMAGE_SCHEMA_NAME = "foxglove.CompressedImage"
COMPRESSED_IMAGE_SCHEMA = {
    "title": COMPRESSED_IMAGE_SCHEMA_NAME,
    "type": "object",
    "properties": {
        "timestamp": {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}},
        "frame_id": {"type": "string"},
        "data": {"type": "string", "contentEncoding": "base64"},
        "format": {"type": "string"},
    },
}

#: LIDAR clouds: ``/robot/lidar/<name>`` and ``/twin/lidar/<name>`` as Foxglove's ``foxglove.PointCloud`` (JSON,
#: packed x, y, z float32 as base64, sensor frame).
CLOUD_TOPIC_PREFIXES = ("/robot/lidar/", "/twin/lidar/")
POINT_CLOUD_SCHEMA_NAME = "foxglove.PointCloud"
_VEC3 = {"type": "object", "properties": {k: {"type": "number"} for k in "xyz"}}
POINT_CLOUD_SCHEMA = {
    "title": POINT_CLOUD_SCHEMA_NAME,
    "type": "object",
    "properties": {
        "timestamp": {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}},
        "frame_id": {"type": "string"},
        "pose": {"type": "object", "properties": {
            "position": _VEC3, "orientation": {"type": "object", "properties": {k: {"type": "number"} for k in "xyzw"}},
        }},
        "point_stride": {"type": "integer"},
        "fields": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "offset": {"type": "integer"}, "type": {"type": "integer"},
        }}},
        "data": {"type": "string", "contentEncoding": "base64"},
    },
}

METADATA_NAME = "vlatwin"
LIBRARY = "vlatwin"

_MEDIA_TYPES = {
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".json": "application/json",
    ".usda": "text/plain",
    ".txt": "text/plain",
    ".html": "text/html",
}


# ------------------------------------------------------------------------------------------ encoding
def _type_schema(kind: str | Mapping[str, Any]) -> dict:
    # One plain type per field: Foxglove's schema parser rejects type unions such as ["number", "null"].
    if isinstance(kind, Mapping):
        return {"type": "object", "properties": {name: _type_schema(k) for name, k in kind.items()}}
    if kind.endswith("[]"):
        return {"type": "array", "items": _type_schema(kind[:-2])}
    if kind in ("number", "integer"):
        return {"type": kind, "description": "null where the value was NaN or infinite"}
    if kind == "object":
        return {"type": "object", "properties": {}}
    return {"type": kind}


def topic_schema(topic: str, fields: Mapping[str, Any]) -> dict:
    """The JSON Schema of a topic whose fields are ``{name: type}`` as in :data:`TOPICS`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": topic,
        "type": "object",
        "properties": {name: _type_schema(kind) for name, kind in fields.items()},
    }


def _infer_kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (int, np.integer)):
        return "integer"
    if isinstance(value, (float, np.floating)) or value is None:
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            return "array"
        return "number[]" if value.dtype.kind in "fiub" else "string[]"
    if isinstance(value, (list, tuple)):
        inner = {_infer_kind(v) for v in value}
        if not inner or inner <= {"integer", "number"}:
            return "number[]"
        if len(inner) == 1 and not next(iter(inner)).endswith("[]"):
            return f"{inner.pop()}[]"
        return "array"
    return "string"


def infer_fields(message: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: type}`` guessed from one message (for topics not in :data:`TOPICS`; nested dicts recurse)."""
    return {str(k): infer_fields(v) if isinstance(v, Mapping) else _infer_kind(v) for k, v in message.items()}


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value if math.isfinite(value) else None


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy arrays/scalars as lists/Python numbers, NaN/Inf as ``None``, tuples as lists."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iub":
            return value.tolist()
        if value.dtype.kind == "f":
            listed = value.tolist()
            return listed if np.isfinite(value).all() else _finite_or_none(listed)
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return str(value)


def _encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(to_jsonable(message), separators=(",", ":"), allow_nan=False).encode("utf-8")


def _to_ns(t: float) -> int:
    t = float(t)
    if not math.isfinite(t) or t < 0.0:
        raise ValueError(f"log time must be a finite, non-negative host time [s], got {t}")
    return round(t * 1e9)


# ------------------------------------------------------------------------------------------ writing
class RunLog:
    """An MCAP run log being written (context manager; thread-safe :meth:`log`).

    Args:
        path: The ``.mcap`` file to create (its folder is created; an existing file is replaced).
        metadata: Run-level information (config, policy, robot spec, rates ...), stored as the ``"vlatwin"``
            metadata record with JSON-encoded values.
        attachments: ``{name: bytes}`` stored as MCAP attachments (``scene.usda``, ``config.yaml`` ...).
        chunk_size: Bytes of messages per chunk before it is written [B].
        flush_interval_s: Logged host time after which the open chunk is written and the file flushed [s];
            bounds what a killed run loses.
        compression: ``"zstd"``, ``"lz4"``, ``"none"``, or ``None`` for zstd when ``zstandard`` is installed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        metadata: Mapping[str, Any],
        attachments: Mapping[str, bytes] | None = None,
        chunk_size: int = 64 * 1024,
        flush_interval_s: float = 1.0,
        compression: str | None = None,
    ):
        mcap_writer = require("mcap.writer", extra="twin")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if compression is None:
            compression = "zstd" if is_available("zstandard") else "none"
        kinds = {"zstd": "ZSTD", "lz4": "LZ4", "none": "NONE"}
        if compression not in kinds:
            raise ValueError(f"compression must be one of {sorted(kinds)}, got {compression!r}")
        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = mcap_writer.Writer(
            self._file,
            chunk_size=int(chunk_size),
            compression=getattr(mcap_writer.CompressionType, kinds[compression]),
        )
        self._writer.start(profile="", library=LIBRARY)
        self._lock = threading.Lock()
        self._channels: dict[str, int] = {}
        self._sequence: dict[str, int] = {}
        self._flush_interval = float(flush_interval_s)
        self._last_flush_t: float | None = None
        self._flushed_pos = 0
        self._closed = False
        self.message_count = 0
        self.add_metadata(METADATA_NAME, metadata)
        for name, data in (attachments or {}).items():
            self.add_attachment(name, data)

    def _channel(self, topic: str, message: Mapping[str, Any]) -> int:
        channel_id = self._channels.get(topic)
        if channel_id is None:
            if topic.startswith(IMAGE_TOPIC_PREFIXES):
                schema = json.dumps(COMPRESSED_IMAGE_SCHEMA).encode("utf-8")
                schema_name = COMPRESSED_IMAGE_SCHEMA_NAME
            elif topic.startswith(CLOUD_TOPIC_PREFIXES):
                schema = json.dumps(POINT_CLOUD_SCHEMA).encode("utf-8")
                schema_name = POINT_CLOUD_SCHEMA_NAME
            else:
                fields = TOPICS.get(topic) or infer_fields(message)
                schema = json.dumps(topic_schema(topic, fields)).encode("utf-8")
                schema_name = "vlatwin" + topic.replace("/", ".") if topic.startswith("/") else f"vlatwin.{topic}"
            schema_id = self._writer.register_schema(name=schema_name, encoding="jsonschema", data=schema)
            channel_id = self._writer.register_channel(topic=topic, message_encoding="json", schema_id=schema_id)
            self._channels[topic] = channel_id
            self._sequence[topic] = 0
        return channel_id

    def _flush_file(self) -> None:
        """Push what the writer has written (whole chunks, metadata, attachments) to the OS."""
        pos = self._file.tell()
        if pos != self._flushed_pos:
            self._file.flush()
            self._flushed_pos = pos

    def log(self, topic: str, t_host: float, message: Mapping[str, Any]) -> None:
        """Record ``message`` on ``topic`` at host time ``t_host`` [s] (numpy values and NaN are converted)."""
        data = _encode(message)
        t_ns = _to_ns(t_host)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"run log {self.path} is closed")
            channel_id = self._channel(topic, message)
            self._sequence[topic] += 1
            self._writer.add_message(
                channel_id=channel_id, log_time=t_ns, publish_time=t_ns, data=data, sequence=self._sequence[topic]
            )
            self.message_count += 1
            if self._last_flush_t is None:
                self._last_flush_t = float(t_host)
            if float(t_host) - self._last_flush_t >= self._flush_interval:
                self._writer.flush()  # closes the open chunk, so the file holds everything up to now
                self._last_flush_t = float(t_host)
                self._flushed_pos = self._file.tell()
            else:
                self._flush_file()  # a chunk the writer just completed reaches the OS at once

    def add_metadata(self, name: str, values: Mapping[str, Any]) -> None:
        """Write a metadata record ``name`` (values JSON-encoded). A later ``"vlatwin"`` record's keys win on read."""
        record = {str(k): json.dumps(to_jsonable(v), allow_nan=False) for k, v in values.items()}
        with self._lock:
            self._writer.add_metadata(name, record)
            self._flush_file()

    def add_attachment(self, name: str, data: bytes, *, media_type: str | None = None, t_host: float = 0.0) -> None:
        """Attach a file (``scene.usda``, ``config.yaml`` ...); media type guessed from the suffix."""
        if media_type is None:
            media_type = _MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
        t_ns = _to_ns(t_host)
        with self._lock:
            self._writer.add_attachment(
                create_time=t_ns, log_time=t_ns, name=str(name), media_type=media_type, data=bytes(data)
            )
            self._flush_file()

    def close(self) -> None:
        """Write the last chunk, the index and the footer, and close the file (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._writer.finish()
            finally:
                self._file.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ reading
def _get_field(message: Mapping[str, Any], field: str) -> Any:
    value: Any = message
    for part in field.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(field)
        value = value[part]
    return value


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


class RunLogData:
    """A run log read into memory: metadata, attachments and the messages of each topic in time order."""

    def __init__(
        self,
        *,
        path: Path,
        metadata: dict[str, Any],
        metadata_records: dict[str, dict[str, Any]],
        attachments: dict[str, bytes],
        messages: dict[str, list[tuple[float, dict]]],
        schemas: dict[str, dict],
        library: str,
        complete: bool,
        error: str | None,
    ):
        self.path = path
        self.metadata = metadata
        """The ``"vlatwin"`` metadata record, values JSON-decoded (later records' keys win)."""
        self.metadata_records = metadata_records
        """Every metadata record by name, values JSON-decoded where they parse."""
        self.attachments = attachments
        """``{name: bytes}``."""
        self.schemas = schemas
        """``{topic: JSON schema}`` of the topics with a ``jsonschema`` schema."""
        self.library = library
        """The writer's library string from the MCAP header."""
        self.complete = complete
        """True when the file was read to its footer and closing magic (closed cleanly); False for a killed or
        truncated run."""
        self.error = error
        """Why reading stopped early (``None`` when the file was read to its end)."""
        self._messages = messages

    @property
    def topics(self) -> dict[str, int]:
        """``{topic: message count}``."""
        return {topic: len(items) for topic, items in self._messages.items()}

    def messages(self, topic: str) -> list[tuple[float, dict]]:
        """``[(t_host [s], message)]`` of ``topic`` in log-time order (empty if the topic is absent)."""
        return list(self._messages.get(topic, ()))

    def iter_messages(self, topics: list[str] | None = None) -> Iterator[tuple[float, str, dict]]:
        """``(t_host, topic, message)`` over all (or the given) topics, merged in log-time order (for replay)."""
        items = [
            (t, topic, msg)
            for topic, msgs in self._messages.items()
            if topics is None or topic in topics
            for t, msg in msgs
        ]
        items.sort(key=lambda item: item[0])
        return iter(items)

    def series(self, topic: str, field: str) -> tuple[np.ndarray, np.ndarray]:
        """Times [s] and values of ``field`` (dotted for nested: ``status.mode``) over ``topic``.

        Messages without the field are skipped. Scalars give shape ``(N,)``, list fields ``(N, D)`` (shorter
        rows padded with NaN); ``null`` becomes NaN. Non-numeric values give an object array.
        """
        times: list[float] = []
        values: list[Any] = []
        for t, msg in self._messages.get(topic, ()):
            try:
                values.append(_get_field(msg, field))
            except KeyError:
                continue
            times.append(t)
        t_arr = np.asarray(times, dtype=float)
        if not values:
            return t_arr, np.zeros(0)
        if any(isinstance(v, list) for v in values):
            rows = [v if isinstance(v, list) else [v] for v in values]
            width = max(len(r) for r in rows)
            try:
                out = np.full((len(rows), width), np.nan)
                for i, row in enumerate(rows):
                    out[i, : len(row)] = [_as_float(v) for v in row]
                return t_arr, out
            except (TypeError, ValueError):
                obj = np.empty(len(rows), dtype=object)
                obj[:] = rows
                return t_arr, obj
        try:
            return t_arr, np.array([_as_float(v) for v in values], dtype=float)
        except (TypeError, ValueError):
            obj = np.empty(len(values), dtype=object)
            obj[:] = values
            return t_arr, obj

    @property
    def start_time(self) -> float | None:
        """Earliest message log time [s] (host clock), or None without messages."""
        firsts = [msgs[0][0] for msgs in self._messages.values() if msgs]
        return min(firsts) if firsts else None

    @property
    def end_time(self) -> float | None:
        """Latest message log time [s] (host clock), or None without messages."""
        lasts = [msgs[-1][0] for msgs in self._messages.values() if msgs]
        return max(lasts) if lasts else None

    @property
    def duration(self) -> float:
        """``end_time - start_time`` [s] (0 without messages)."""
        start, end = self.start_time, self.end_time
        return 0.0 if start is None or end is None else end - start


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def read_runlog(path: str | Path) -> RunLogData:
    """Read a run log front to back (no index needed, so a killed run's file works too).

    Reading stops at the first incomplete or corrupt record (a chunk cut by the kill fails its CRC or
    decompression and is dropped whole); what came before is returned, with ``complete=False`` and the
    reason in ``error``. Messages whose payload is not JSON are skipped.
    """
    require("mcap", extra="twin")
    from mcap.records import Attachment, Channel, Footer, Header, Message, Metadata, Schema
    from mcap.stream_reader import StreamReader

    path = Path(path)
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    messages: dict[str, list[tuple[float, dict]]] = {}
    records_meta: dict[str, dict[str, Any]] = {}
    attachments: dict[str, bytes] = {}
    topic_schemas: dict[str, dict] = {}
    library = ""
    complete = False
    error: str | None = None
    with open(path, "rb") as handle:
        reader = StreamReader(handle, validate_crcs=True)
        try:
            for record in reader.records:
                if isinstance(record, Message):
                    channel = channels.get(record.channel_id)
                    if channel is None or channel.message_encoding != "json":
                        continue
                    try:
                        msg = json.loads(record.data)
                    except ValueError:
                        continue
                    messages.setdefault(channel.topic, []).append((record.log_time * 1e-9, msg))
                elif isinstance(record, Channel):
                    channels[record.id] = record
                    schema = schemas.get(record.schema_id)
                    if schema is not None and schema.encoding == "jsonschema":
                        topic_schemas.setdefault(record.topic, _json_or_text(schema.data.decode("utf-8", "replace")))
                    messages.setdefault(record.topic, [])
                elif isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Metadata):
                    decoded = {k: _json_or_text(v) for k, v in record.metadata.items()}
                    records_meta.setdefault(record.name, {}).update(decoded)
                elif isinstance(record, Attachment):
                    attachments[record.name] = bytes(record.data)
                elif isinstance(record, Header):
                    library = record.library
                elif isinstance(record, Footer):
                    complete = True
        except Exception as exc:  # noqa: BLE001 - any failure past this point is a truncated/corrupt tail
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            complete = False  # e.g. the closing magic after the footer is cut
    for items in messages.values():
        items.sort(key=lambda item: item[0])  # stable: equal times keep their logged order
    return RunLogData(
        path=path,
        metadata=dict(records_meta.get(METADATA_NAME, {})),
        metadata_records=records_meta,
        attachments=attachments,
        messages=messages,
        schemas=topic_schemas,
        library=library,
        complete=complete,
        error=error,
    )


__all__ = [
    "METADATA_NAME",
    "TOPICS",
    "RunLog",
    "RunLogData",
    "infer_fields",
    "read_runlog",
    "to_jsonable",
    "topic_schema",
]
