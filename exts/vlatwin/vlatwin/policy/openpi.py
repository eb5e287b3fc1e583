"""An openpi-compatible websocket policy client (``openpi://HOST:PORT`` / ``ws://HOST:PORT``).

Speaks exactly openpi's protocol (``openpi_client.WebsocketClientPolicy``): binary msgpack frames
(:mod:`vlatwin.policy.wire.msgpack_numpy`), ``compression=None``, the server's metadata as the first frame,
an optional ``Authorization: Api-Key <key>`` header, and any **text** frame from the server is an error.
Unlike openpi's client it gives up after ``retries`` connection attempts with exponential backoff (one-line
error), and bounds every request by ``request_timeout``.

:class:`OpenpiPolicy` adapts it to the loop: the observation goes out in a layout (``vlatwin`` by default,
see :mod:`vlatwin.policy.wire.observation`; or ``libero``/``droid``/``aloha``/``lerobot`` via
:func:`vlatwin.policy.observation.layout_inputs`), the reply's ``actions`` (H, D) become an
:class:`~vlatwin.policy.base.ActionChunk`. A server started with ``vlatwin serve`` declares its
:class:`~vlatwin.policy.base.PolicyInfo` in the metadata (``{"vlatwin": {...}}``); the client adopts its
action space, gripper convention, chunk size and control rate, and resets the remote policy each episode.

Spec options: ``layout`` (vlatwin), ``cameras`` (comma-separated scene cameras), ``image_size`` (``224`` or
``224x224``, non-vlatwin layouts), ``flip`` (1: rotate images 180 degrees, non-vlatwin layouts), ``api_key`` (default: env ``VLATWIN_API_KEY``), ``timeout`` (request
timeout [s], 30), ``connect_timeout`` [s] (5), ``retries`` (connection attempts, 3), ``action_space``
(default: the server's, else ``joint_pos`` as pi0 models), ``gripper`` (default: the server's, else
``close_0_1``), ``chunk`` (use the first K actions of each reply; 0 = all).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Self

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.policy.base import ActionChunk, Policy, PolicyInfo

LAYOUTS = ("vlatwin", "libero", "droid", "aloha", "lerobot")
#: Largest reply accepted [bytes].
MAX_REPLY_BYTES = 256 * 1024 * 1024


def server_error_line(text: str) -> str:
    """The line of a server's text error frame worth showing: the first line, or for a Python traceback
    (what openpi's server sends) its last non-empty line (the exception)."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    if not lines:
        return "(empty error message)"
    if lines[0].startswith("Traceback"):
        return lines[-1][:300]
    return lines[0][:300]


class OpenpiClient:
    """A websocket connection to an openpi policy server (synchronous).

    Args:
        host: host name or address, or a whole ``ws://``/``wss://`` URI (then ``port`` may be None).
        port: TCP port.
        api_key: sent as ``Authorization: Api-Key <key>`` (None: no header).
        connect_timeout: seconds for one connection attempt, including the metadata frame.
        request_timeout: seconds to wait for each reply.
        retries: connection attempts before giving up (>= 1).
        backoff: seconds before the second attempt; doubles after each failure.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = 8000,
        *,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        from vlatwin._deps import require

        require("websockets", extra="serve")
        require("msgpack", extra="serve")
        if host.startswith(("ws://", "wss://")):
            self.uri = host.rstrip("/") + (f":{port}" if port is not None and host.count(":") < 2 else "")
        else:
            hostpart = f"[{host}]" if ":" in host and not host.startswith("[") else host
            self.uri = f"ws://{hostpart}" + (f":{port}" if port is not None else "")
        self.api_key = api_key or None
        self.connect_timeout = float(connect_timeout)
        self.request_timeout = float(request_timeout)
        self.retries = max(1, int(retries))
        self.backoff = float(backoff)
        self._ws = None
        self._metadata: dict = {}
        self._connect()

    # --------------------------------------------------------------------------------------- public
    @property
    def metadata(self) -> dict:
        """What the server sent on connect (openpi: ``policy_metadata``; vlatwin: ``{"vlatwin": info...}``)."""
        return self._metadata

    def infer(self, obs: dict) -> dict:
        """Send one observation dict, return the server's reply dict.

        A closed connection is reopened first (a new connection resets a vlatwin server's policy). After
        an error or a timeout the connection is dropped, so a late reply cannot answer the next request.

        Raises:
            VlatwinError: server error frame, timeout, lost connection, or a reply that is not a map.
        """
        from websockets.exceptions import ConnectionClosed

        from vlatwin.policy.wire.msgpack_numpy import packb, unpackb

        if self._ws is None:
            self._connect()
        data = packb(obs)
        try:
            self._ws.send(data)
            reply = self._ws.recv(timeout=self.request_timeout)
        except TimeoutError:
            self._drop()
            raise VlatwinError(
                f"openpi server at {self.uri} did not answer within {self.request_timeout:g} s "
                "(raise the request timeout, e.g. ?timeout=120, for slow models)"
            ) from None
        except ConnectionClosed as exc:
            self._drop()
            raise VlatwinError(f"openpi server at {self.uri} closed the connection ({_close_text(exc)})") from None
        except OSError as exc:
            self._drop()
            raise VlatwinError(f"openpi server at {self.uri}: connection lost ({exc})") from None
        if isinstance(reply, str):
            self._drop()
            raise VlatwinError(f"openpi server at {self.uri} reported an error: {server_error_line(reply)}")
        try:
            out = unpackb(reply)
        except VlatwinError as exc:
            self._drop()
            raise VlatwinError(f"openpi server at {self.uri} sent a bad reply: {exc}") from None
        if not isinstance(out, dict):
            raise VlatwinError(f"openpi server at {self.uri} replied with a {type(out).__name__}, not a map")
        return out

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------- helpers
    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):  # closing a broken socket
                ws.close()

    def _connect(self) -> None:
        from websockets.exceptions import InvalidStatus, InvalidURI
        from websockets.sync.client import connect

        from vlatwin.policy.wire.msgpack_numpy import unpackb

        headers = {"Authorization": f"Api-Key {self.api_key}"} if self.api_key else None
        reason = "unknown error"
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            ws = None
            try:
                ws = connect(
                    self.uri, compression=None, max_size=MAX_REPLY_BYTES, additional_headers=headers,
                    open_timeout=self.connect_timeout, close_timeout=2, **_connect_extras(connect),
                )
                first = ws.recv(timeout=self.connect_timeout)
                if isinstance(first, str):
                    ws.close()
                    raise VlatwinError(f"openpi server at {self.uri} reported an error on connect: {server_error_line(first)}")
                self._metadata = unpackb(first)
                if not isinstance(self._metadata, dict):
                    self._metadata = {"metadata": self._metadata}
                self._ws = ws
                return
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 401:
                    what = "refused the API key" if self.api_key else "requires an API key"
                    raise VlatwinError(
                        f"openpi server at {self.uri} {what} (HTTP 401); pass ?api_key=KEY or set VLATWIN_API_KEY"
                    ) from None
                reason = f"HTTP {status} on the websocket handshake"
            except InvalidURI:
                raise VlatwinError(f"bad openpi server address {self.uri!r}; use host:port") from None
            except VlatwinError:
                raise
            except ConnectionRefusedError:
                reason = "connection refused"
            except TimeoutError:
                reason = f"no answer within {self.connect_timeout:g} s"
            except OSError as exc:
                reason = exc.strerror or str(exc) or type(exc).__name__
            except Exception as exc:  # noqa: BLE001 - handshake errors, closed during handshake...
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if ws is not None:
                with contextlib.suppress(Exception):
                    ws.close()
        tries = "try" if self.retries == 1 else "tries"
        raise VlatwinError(
            f"cannot reach openpi server at {self.uri} after {self.retries} {tries}: {reason}; "
            "start it with `vlatwin serve --policy SPEC` (or openpi's serve_policy.py)"
        )


def _connect_extras(connect) -> dict:
    """Keywords newer websockets versions take: no proxy (``proxy`` since 15), a plain connection (``legacy``, 17)."""
    import inspect

    params = inspect.signature(connect).parameters
    extras: dict[str, Any] = {}
    if "proxy" in params:
        extras["proxy"] = None
    if "legacy" in params:
        extras["legacy"] = True
    return extras


def _close_text(exc) -> str:
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is None:
        return "no close frame"
    return f"code {int(rcvd.code)}" + (f": {rcvd.reason}" if rcvd.reason else "")


class OpenpiPolicy(Policy):
    """A remote openpi (or ``vlatwin serve``) policy as a vlatwin :class:`~vlatwin.policy.base.Policy`.

    Args:
        client: a connected :class:`OpenpiClient` (closed by :meth:`close`).
        layout: observation layout sent: ``vlatwin`` or one of ``libero``, ``droid``, ``aloha``, ``lerobot``.
        cameras: scene cameras to send (empty: the server's ``image_keys``, else every camera).
        image_size: (height, width) images are resized to in the non-vlatwin layouts (None: the layout's).
        flip: rotate images by 180 degrees in the non-vlatwin layouts (LIBERO's agent view).
        action_space, gripper, chunk: override what the server declares (see the module docstring).
        context: the :class:`~vlatwin.policy.factory.PolicyContext` (layouts and action checks use it).
    """

    def __init__(
        self,
        client: OpenpiClient,
        *,
        layout: str = "vlatwin",
        cameras: tuple[str, ...] | list[str] = (),
        image_size: tuple[int, int] | None = None,
        action_space: str | None = None,
        gripper: str | None = None,
        chunk: int = 0,
        flip: bool = False,
        context=None,
    ) -> None:
        if layout not in LAYOUTS:
            raise VlatwinError(f"openpi policy: unknown layout {layout!r}; use one of: {', '.join(LAYOUTS)}")
        if chunk < 0:
            raise VlatwinError(f"openpi policy: chunk must be >= 0, got {chunk}")
        self.client = client
        self.layout = layout
        self.image_size = image_size
        self.context = context
        self.chunk = int(chunk)
        self.flip = bool(flip)
        meta = client.metadata
        self.remote_is_vlatwin = "vlatwin/protocol" in meta or isinstance(meta.get("vlatwin"), dict)
        remote = meta.get("vlatwin") if isinstance(meta.get("vlatwin"), dict) else None
        name = client.uri.replace("ws://", "openpi://", 1)
        if remote is not None:
            try:
                base = PolicyInfo.from_dict(remote)
            except Exception as exc:  # noqa: BLE001 - a malformed metadata entry from the server
                raise VlatwinError(f"openpi server at {client.uri} sent bad vlatwin metadata: {exc}") from None
            horizon = base.chunk_size
        else:
            horizon = meta.get("action_horizon") if isinstance(meta.get("action_horizon"), int) else 1
            base = PolicyInfo(name=name, action_space="joint_pos", gripper_convention="close_0_1", chunk_size=max(1, horizon))
        self.cameras = tuple(cameras) or tuple(base.image_keys)
        overrides: dict[str, Any] = {"name": f"{name} ({base.name})" if remote is not None else name}
        if action_space:
            overrides["action_space"] = action_space
        if gripper:
            from vlatwin.control.gripper import GripperConvention

            try:
                overrides["gripper_convention"] = str(GripperConvention(gripper))
            except ValueError:
                known = ", ".join(c.value for c in GripperConvention)
                raise VlatwinError(f"openpi policy: unknown gripper convention {gripper!r}; known: {known}") from None
        if self.chunk:
            overrides["chunk_size"] = self.chunk if remote is None else min(self.chunk, max(1, horizon))
        if action_space and action_space != base.action_space:
            overrides["action_dim"] = None
        data = base.to_dict() | overrides
        if context is not None and data.get("control_hz") is None:
            data["control_hz"] = getattr(context, "control_hz", None)
        data["image_keys"] = list(self.cameras)
        self.info = PolicyInfo.from_dict(data)
        self._expected_dim = self._action_dim()
        self._rejected = 0

    def _action_dim(self) -> int | None:
        if self.info.action_dim is not None:
            return int(self.info.action_dim)
        make_spec = getattr(self.context, "make_spec", None)
        if make_spec is None:
            return None
        try:
            return len(make_spec(self.info.action_space, **self.info.controller_options).names)
        except Exception:  # noqa: BLE001 - an action space this scene cannot build: the loop reports it
            return None

    # ------------------------------------------------------------------------------------- Policy
    def reset(self, episode: int | None = None) -> None:
        """Tell a vlatwin server to reset its policy for ``episode`` (openpi servers keep no episode state)."""
        if not self.remote_is_vlatwin:
            return
        reply = self.client.infer({"vlatwin/reset": -1 if episode is None else int(episode)})
        if reply.get("vlatwin/reset") != "ok":
            raise VlatwinError(f"openpi server at {self.client.uri} did not acknowledge the reset (got {sorted(reply)})")

    def inputs(self, observation) -> dict:
        """The dict sent for ``observation`` in this policy's layout."""
        if self.layout == "vlatwin":
            from vlatwin.policy.wire.observation import observation_to_wire

            return observation_to_wire(observation, cameras=list(self.cameras) if self.cameras else None)
        from vlatwin.policy.observation import layout_inputs

        kwargs: dict[str, Any] = {"cameras": tuple(self.cameras), "context": self.context, "flip": self.flip}
        if self.image_size is not None:  # else the layout's default (224x224 for openpi's)
            kwargs["image_size"] = self.image_size
        return layout_inputs(self.layout, observation, **kwargs)

    def act(self, observation) -> ActionChunk:
        obs = self.inputs(observation)
        t0 = time.perf_counter()
        reply = self.client.infer(obs)
        round_trip_ms = (time.perf_counter() - t0) * 1000.0
        actions = self.check_actions(reply)
        if self.chunk:
            actions = actions[: self.chunk]
        timing = {"round_trip_ms": round_trip_ms}
        policy_timing, server_timing = reply.get("policy_timing"), reply.get("server_timing")
        if isinstance(server_timing, dict) and _is_number(server_timing.get("infer_ms")):
            timing["server_ms"] = float(server_timing["infer_ms"])
            timing["infer_ms"] = float(server_timing["infer_ms"])
        if isinstance(policy_timing, dict) and _is_number(policy_timing.get("infer_ms")):
            timing["infer_ms"] = float(policy_timing["infer_ms"])
        space = reply.get("vlatwin/action_space")
        return ActionChunk(actions, action_space=space if isinstance(space, str) else None, timing=timing)

    def check_actions(self, reply: dict) -> np.ndarray:
        """The reply's ``actions`` as float64 (H, D), or a one-line error (missing, wrong shape, NaN/Inf)."""
        where = f"openpi server at {self.client.uri}"
        if "actions" not in reply:
            raise VlatwinError(f"{where} replied without 'actions' (keys: {', '.join(map(str, sorted(reply, key=str)))[:200]})")
        raw = reply["actions"]
        try:
            actions = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise VlatwinError(f"{where} sent non-numeric 'actions' ({type(raw).__name__})") from None
        if actions.ndim == 1:
            actions = actions[None, :]
        if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] < 1:
            raise VlatwinError(f"{where} sent actions of shape {list(np.shape(raw))}; expected (horizon, dims)")
        if self._expected_dim is not None and actions.shape[1] != self._expected_dim:
            raise VlatwinError(
                f"{where} sent actions of shape {list(actions.shape)}; {self.info.action_space} takes "
                f"{self._expected_dim} dims (set ?action_space=... to match the model)"
            )
        bad = ~np.isfinite(actions)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise VlatwinError(f"{where} sent a non-finite action ({actions[i, j]} at step {i}, dim {j}); rejected")
        return actions

    def close(self) -> None:
        self.client.close()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def parse_image_size(text: str, where: str) -> tuple[int, int] | None:
    """``""``/``0`` -> None, ``224`` -> (224, 224), ``224x256`` -> (224, 256)."""
    text = text.strip().lower()
    if text in ("", "0", "none"):
        return None
    try:
        parts = [int(p) for p in text.split("x")]
        if len(parts) == 1:
            parts *= 2
        if len(parts) != 2 or min(parts) < 1 or max(parts) > 8192:
            raise ValueError
    except ValueError:
        raise VlatwinError(f"{where}: image_size must be N or HxW (pixels), got {text!r}") from None
    return parts[0], parts[1]


def split_host_port(target: str, where: str, default_port: int = 8000) -> tuple[str, int]:
    """``host:port`` (``[::1]:8000``, ``host``) -> (host, port); one-line error when malformed."""
    from urllib.parse import urlsplit

    target = target.strip().rstrip("/")
    try:
        parts = urlsplit("//" + target)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise VlatwinError(f"{where}: bad address {target!r}; use host:port") from None
    if not host or parts.path not in ("", "/"):
        raise VlatwinError(f"{where}: bad address {target!r}; use host:port")
    return host, default_port if port is None else port


def from_spec(target: str, options: dict, context) -> OpenpiPolicy:
    """``openpi://HOST:PORT?...`` / ``ws://HOST:PORT?...`` (see the module docstring for the options)."""
    from vlatwin.policy.factory import take_options

    where = f"--policy openpi://{target}"
    opts = take_options(
        options,
        {
            "layout": "vlatwin", "cameras": (), "image_size": "", "api_key": "", "timeout": 30.0, "connect_timeout": 5.0,
            "retries": 3, "action_space": "", "gripper": "", "chunk": 0, "flip": False,
        },
        where,
    )
    host, port = split_host_port(target, where)
    if opts["timeout"] <= 0 or opts["connect_timeout"] <= 0 or opts["retries"] < 1:
        raise VlatwinError(f"{where}: timeout and connect_timeout must be > 0 and retries >= 1")
    client = OpenpiClient(
        host, port, api_key=opts["api_key"] or os.environ.get("VLATWIN_API_KEY") or None,
        connect_timeout=opts["connect_timeout"], request_timeout=opts["timeout"], retries=opts["retries"],
    )
    try:
        return OpenpiPolicy(
            client, layout=opts["layout"], cameras=opts["cameras"], image_size=parse_image_size(opts["image_size"], where),
            action_space=opts["action_space"] or None, gripper=opts["gripper"] or None, chunk=opts["chunk"],
            flip=opts["flip"], context=context,
        )
    except BaseException:
        client.close()
        raise


__all__ = ["LAYOUTS", "OpenpiClient", "OpenpiPolicy", "from_spec", "parse_image_size", "server_error_line", "split_host_port"]
