"""Wire formats of remote policies (no pickle anywhere).

* :mod:`~vlatwin.policy.wire.msgpack_numpy`: openpi's msgpack encoding of numpy arrays (websocket frames).
* :mod:`~vlatwin.policy.wire.json_numpy`: the ``json-numpy`` package's JSON encoding (OpenVLA's REST server).
* :mod:`~vlatwin.policy.wire.observation`: the "vlatwin" observation layout carried in those frames.

Decoders raise :class:`WireError` (one line) on any malformed input; servers answer it with an error
frame or a 4xx and keep serving.
"""

from __future__ import annotations

from vlatwin.errors import VlatwinError


class WireError(VlatwinError):
    """Malformed or unsupported data on a policy wire (bad msgpack/JSON, bad dtype, size mismatch...)."""


__all__ = ["WireError"]
