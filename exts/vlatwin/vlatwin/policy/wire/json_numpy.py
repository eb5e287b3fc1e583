"""The ``json-numpy`` package's JSON encoding of numpy arrays (what OpenVLA's ``vla-scripts/deploy.py`` speaks).

OpenVLA's REST server calls ``json_numpy.patch()``, so arrays in its requests and replies are JSON objects
(json-numpy 2.1.0, ``json_numpy.default`` / ``object_hook``)::

    {"__numpy__": base64(C-order bytes), "dtype": numpy.lib.format.dtype_to_descr(dtype), "shape": [..]}

A shape of ``[]`` decodes to a numpy scalar (``arr[0]``), as json-numpy does. For plain dtypes
``dtype_to_descr`` is ``dtype.str`` (``'<f4'``, ``'|u1'``); structured and object dtypes are refused here.

:func:`loads` validates what it decodes (base64, dtype, byte count vs shape) and raises
:class:`~vlatwin.policy.wire.WireError` with one line on anything malformed.
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode, b64encode
from typing import Any

import numpy as np

from vlatwin.policy.wire import WireError
from vlatwin.policy.wire.msgpack_numpy import MAX_NDIM, check_dtype


def default(obj: Any) -> dict:
    """``json.dumps(..., default=default)`` hook: a numpy array or scalar as json-numpy's object."""
    if isinstance(obj, (np.ndarray, np.generic)):
        if obj.dtype.kind in ("V", "O") or obj.dtype.fields is not None:
            raise WireError(f"cannot send numpy dtype {obj.dtype} as JSON (object and structured dtypes are refused)")
        data = obj.data if obj.flags["C_CONTIGUOUS"] else obj.tobytes()
        return {"__numpy__": b64encode(data).decode(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def object_hook(dct: dict) -> Any:
    """``json.loads(..., object_hook=object_hook)`` hook: json-numpy objects back to arrays (validated)."""
    if "__numpy__" not in dct:
        return dct
    text = dct["__numpy__"]
    if not isinstance(text, str):
        raise WireError(f"json-numpy: '__numpy__' must be a base64 string, got {type(text).__name__}")
    dt = check_dtype(dct.get("dtype"), "json-numpy array")
    shape = dct.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or any(type(n) is not int or n < 0 for n in shape):
        raise WireError(f"json-numpy array: shape must be a list of ints >= 0, got {str(shape)[:60]}")
    try:
        raw = b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WireError("json-numpy array: '__numpy__' is not valid base64") from None
    count = 1
    for n in shape:
        count *= n
    if shape == []:
        count = 1
    if count * dt.itemsize != len(raw):
        raise WireError(f"json-numpy array: {len(raw)} bytes do not match shape {shape} of dtype {dt.str!r}")
    arr = np.frombuffer(raw, dtype=dt)
    return arr.reshape(shape) if shape else arr[0]


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` with numpy arrays encoded as json-numpy does."""
    try:
        return json.dumps(obj, default=default, **kwargs)
    except WireError:
        raise
    except (TypeError, ValueError) as exc:
        raise WireError(f"cannot encode as JSON: {exc}") from None


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` with json-numpy objects decoded to numpy arrays.

    Raises:
        WireError: not JSON, or a malformed json-numpy object.
    """
    try:
        return json.loads(text, object_hook=object_hook, **kwargs)
    except WireError:
        raise
    except RecursionError:
        raise WireError("malformed JSON: nesting too deep") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WireError(f"malformed JSON: {detail[:120]}") from None


__all__ = ["default", "dumps", "loads", "object_hook"]
