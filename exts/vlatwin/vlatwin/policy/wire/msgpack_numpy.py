"""openpi's msgpack encoding of numpy arrays, compatible with ``openpi_client.msgpack_numpy`` (numpy 2 too).

No msgpack ExtType and no pickle: an ndarray travels as a map with bytes keys::

    {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": arr.dtype.str, b"shape": arr.shape}

and a numpy scalar as ``{b"__npgeneric__": True, b"data": scalar.item(), b"dtype": scalar.dtype.str}``.
Object (``O``), void/structured (``V``) and complex (``c``) dtypes are refused, as openpi's packer does.
Decoded arrays are read-only views of the received bytes (as with openpi).

Unlike openpi's decoder, :func:`unpackb` validates everything it reads: any malformed input (not
msgpack, trailing bytes, ExtType, a bad dtype string, ``data`` whose size does not match ``shape``, absurd
shapes, nesting deeper than msgpack's stack) raises :class:`~vlatwin.policy.wire.WireError` with one
line; it never allocates more than the input's size.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from vlatwin.policy.wire import WireError

#: dtype kinds accepted on the wire: bool, ints, floats, bytes/str, datetimes.
ALLOWED_KINDS = frozenset("biufSUmM")
#: Most dimensions an array may declare (numpy's own limit is 64).
MAX_NDIM = 32
_MAX_DTYPE_LEN = 32


def _msgpack():
    from vlatwin._deps import require

    return require("msgpack", extra="serve")


_DTYPES: dict[str, np.dtype] = {}
"""Validated dtype strings (a frame holds a handful of arrays; parsing each dtype string costs ~2 us)."""


def check_dtype(dtype: Any, where: str = "array") -> np.dtype:
    """A plain dtype (no object/void/complex/sub-array, itemsize > 0) from a dtype string like ``'<f4'``."""
    if type(dtype) is str and dtype in _DTYPES:
        return _DTYPES[dtype]
    if isinstance(dtype, bytes):
        dtype = dtype.decode("ascii", "replace")
    if not isinstance(dtype, str) or not dtype or len(dtype) > _MAX_DTYPE_LEN:
        raise WireError(f"{where}: dtype must be a short string like '<f4', got {_short(dtype)}")
    try:
        dt = np.dtype(dtype)
    except Exception:  # noqa: BLE001 - numpy raises TypeError/ValueError/SyntaxError... on odd strings
        raise WireError(f"{where}: unknown dtype {_short(dtype)}") from None
    if dt.kind not in ALLOWED_KINDS or dt.fields is not None or dt.subdtype is not None or dt.itemsize == 0:
        raise WireError(f"{where}: unsupported dtype {dt.str!r} (kind {dt.kind!r}); object, void, complex and empty dtypes are refused")
    if len(_DTYPES) < 256:
        _DTYPES[dtype] = dt
    return dt


def _check_shape(shape: Any, where: str) -> tuple[int, ...]:
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
        raise WireError(f"{where}: shape must be a list of at most {MAX_NDIM} ints, got {_short(shape)}")
    out = []
    for n in shape:
        if type(n) is not int or n < 0:  # bool is an int subclass: refuse it too
            raise WireError(f"{where}: shape must hold ints >= 0, got {_short(shape)}")
        out.append(n)
    return tuple(out)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------- pack
def _pack_default(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in ("V", "O", "c"):
        raise WireError(f"cannot send numpy dtype {obj.dtype} (object, void and complex dtypes are refused)")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise WireError(f"cannot send a {type(obj).__name__} over msgpack (send numbers, strings, lists, dicts, numpy arrays)")


_local = threading.local()


def packb(obj: Any) -> bytes:
    """``obj`` (dicts, lists, str, numbers, bytes, numpy arrays/scalars) as one msgpack message."""
    # One Packer per thread: its buffer stays sized for the last message (msgpack.packb builds a new
    # Packer each call and regrows the buffer, ~10x slower for a 150 kB image frame).
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = Packer()
    return packer.pack(obj)


class Packer:
    """A reusable packer (``Packer().pack(obj)``), like ``openpi_client.msgpack_numpy.Packer``."""

    def __init__(self) -> None:
        self._packer = _msgpack().Packer(default=_pack_default, use_bin_type=True)

    def pack(self, obj: Any) -> bytes:
        try:
            return self._packer.pack(obj)
        except WireError:
            self._packer.reset()
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            self._packer.reset()
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WireError(f"cannot encode message as msgpack: {detail}") from None


# -------------------------------------------------------------------------------------------- unpack
def _unpack_hook(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        data = obj.get(b"data")
        if not isinstance(data, (bytes, bytearray)):
            raise WireError(f"ndarray: 'data' must be bytes, got {type(data).__name__}")
        dt = check_dtype(obj.get(b"dtype"), "ndarray")
        shape = _check_shape(obj.get(b"shape"), "ndarray")
        count = 1
        for n in shape:
            count *= n
        if count * dt.itemsize != len(data):
            raise WireError(
                f"ndarray: {len(data)} data bytes do not match shape {list(shape)} of dtype {dt.str!r} "
                f"({count * dt.itemsize} bytes)"
            )
        return np.ndarray(buffer=data, dtype=dt, shape=shape)
    if b"__npgeneric__" in obj:
        dt = check_dtype(obj.get(b"dtype"), "numpy scalar")
        data = obj.get(b"data")
        if not isinstance(data, (bool, int, float, str, bytes)):
            raise WireError(f"numpy scalar: 'data' must be a number or string, got {type(data).__name__}")
        if isinstance(data, int) and not isinstance(data, bool) and dt.kind in "iu":
            info = np.iinfo(dt)
            if not info.min <= data <= info.max:  # numpy 1.x wraps around silently where 2.x raises
                raise WireError(f"numpy scalar: {_short(data)} is out of range for {dt.str!r}")
        try:
            return dt.type(data)
        except Exception as exc:  # noqa: BLE001 - overflow, bad literal...
            raise WireError(f"numpy scalar: cannot make a {dt.str!r} from {_short(data)} ({type(exc).__name__})") from None
    return obj


def _refuse_ext(code: int, data: bytes) -> Any:
    raise WireError(f"msgpack ExtType {code} is not used on this wire")


def unpackb(data: bytes | bytearray | memoryview) -> Any:
    """One msgpack message (as :func:`packb` / openpi write it) back to Python and numpy objects.

    Raises:
        WireError: for anything that is not exactly one well-formed message of supported types.
    """
    if isinstance(data, str):
        raise WireError("expected a binary msgpack frame, got text")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"expected bytes, got {type(data).__name__}")
    msgpack = _msgpack()
    try:
        # Buffer limits default to len(data), so no declared length can allocate more than the input.
        return msgpack.unpackb(data, object_hook=_unpack_hook, ext_hook=_refuse_ext, raw=False, strict_map_key=True, timestamp=0)
    except WireError:
        raise
    except msgpack.exceptions.ExtraData:
        raise WireError("malformed msgpack: extra bytes after the message") from None
    except msgpack.exceptions.StackError:
        raise WireError("malformed msgpack: nesting too deep") from None
    except RecursionError:
        raise WireError("malformed msgpack: nesting too deep") from None
    except Exception as exc:  # noqa: BLE001 - msgpack raises ValueError/TypeError/UnicodeDecodeError/... on garbage
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WireError(f"malformed msgpack: {detail[:120]}") from None


__all__ = ["ALLOWED_KINDS", "MAX_NDIM", "Packer", "check_dtype", "packb", "unpackb"]
