"""Serve any vlatwin :class:`~vlatwin.policy.base.Policy` over openpi's websocket protocol or OpenVLA's REST API.

``vlatwin serve`` wraps this, so a model that needs its own environment (OpenVLA on transformers 4.40,
LeRobot on transformers < 5, openpi on JAX) runs there and the twin evaluates it from here.

**openpi protocol** (wire-compatible with ``openpi_client.WebsocketClientPolicy``): a websocket server,
``compression=None``; ``GET /healthz`` answers 200 ``OK``; with an API key, the handshake needs the header
``Authorization: Api-Key <key>`` (else HTTP 401). On connect the server sends ``packb(metadata)`` first,
``{"vlatwin": policy.info.to_dict(), "vlatwin/protocol": 1, "action_horizon": H}``. Then each binary frame
is one observation (the vlatwin layout of :mod:`vlatwin.policy.wire.observation`, or any other dict, passed
through best effort: images become sensor data, ``prompt`` the instruction) and is answered with
``{"actions": (H, D) float64, "policy_timing": {"infer_ms"}, "server_timing": {"infer_ms", "prev_total_ms"}}``.

* One policy object serves every connection, one call at a time (openpi's model); with ``policy_factory``
  each connection gets its own (stateful policies such as the expert with ``vlatwin eval --workers K``).
* A **new connection resets the policy** (``policy.reset()``); ``{"vlatwin/reset": episode}`` resets it with
  that episode index and is answered ``{"vlatwin/reset": "ok"}`` (what :class:`~vlatwin.policy.openpi.OpenpiPolicy`
  sends per episode). openpi's ``{"__ctrl__": "episode_start", "__episode_id__": i}`` does the same and is
  answered ``{"__ack__": "episode_start"}``; other ``__ctrl__`` messages are acknowledged and ignored.
* A **malformed frame** (not msgpack, a text frame, bad arrays, not a map, a bad vlatwin observation) is
  answered with a one-line **text** frame ``bad request: ...`` and the connection **stays open** (openpi
  would close it; its client raises on any text frame either way).
* A **policy exception** is answered with a one-line text frame ``policy error: ...`` and the connection is
  closed with code 1011, as openpi does (openpi sends the whole traceback; the log here has it).
* Frames above ``max_size`` (64 MiB) close that connection with 1009. Nothing a client sends stops the server.

**openvla protocol** (``vla-scripts/deploy.py``): ``POST /act`` with JSON ``{"image": json-numpy array,
"instruction": str, "unnorm_key": optional}`` (or ``{"encoded": "<json-numpy text>"}``) answers the action as
a json-numpy array ((D,) for a one-step policy, else (H, D)); ``GET /healthz`` answers ``OK``; ``GET /info``
answers the metadata above as JSON; ``POST /reset`` with ``{"episode": i}`` resets the policy. Malformed
requests get a 4xx JSON ``{"error": "..."}`` and a policy exception a 500 (deploy.py answers 200 ``"error"``).
The image is given to the policy as sensor data ``{"rgb": image}`` of camera ``camera``.

Policy calls are serialized (one at a time), in a worker thread, so health checks and other connections
are answered while a model runs (a policy that answers within 2 ms runs on the event loop itself). Servers bind 127.0.0.1 unless told otherwise; any other address needs an
API key.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.policy.base import as_chunk
from vlatwin.policy.wire import WireError

logger = logging.getLogger(__name__)

PROTOCOLS = ("openpi", "openvla")
#: Largest websocket frame / HTTP body accepted [bytes].
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Policies whose last call took less than this [ms] run on the event loop thread (see ``_act_async``).
INLINE_MAX_MS = 2.0
#: Seconds an HTTP client may take to send its request.
HTTP_READ_TIMEOUT = 10.0


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (what error frames carry)."""
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    if isinstance(exc, VlatwinError):
        return detail or type(exc).__name__
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def server_metadata(policy, extra: dict | None = None) -> dict:
    """What the server sends first: ``{"vlatwin": info dict, "vlatwin/protocol": 1, "action_horizon": H}``."""
    info = getattr(policy, "info", None)
    meta: dict[str, Any] = {"vlatwin": info.to_dict() if info is not None else None, "vlatwin/protocol": 1}
    if info is not None:
        meta["action_horizon"] = int(info.chunk_size)
    meta.update(extra or {})
    return meta


class PolicyServer:
    """A policy behind a socket, in a background thread (:meth:`start`) or in the foreground (:meth:`serve_forever`).

    Args:
        policy: any object with ``act(observation)`` and ``reset()`` (a :class:`~vlatwin.policy.base.Policy`).
        host: address to bind; anything but loopback requires ``api_key``.
        port: TCP port; 0 picks a free one (:meth:`start` returns it).
        protocol: ``openpi`` (websocket + msgpack) or ``openvla`` (REST + json-numpy).
        api_key: required ``Authorization: Api-Key <key>`` value (None: no authentication).
        metadata: extra entries for the openpi metadata message.
        camera: sensor name the openvla ``image`` is given to the policy under (default: the policy's first
            ``info.image_keys`` entry, else ``image``).
        max_size: largest frame / body accepted [bytes].
        policy_factory: openpi only: builds a separate policy for each connection (closed when it ends), for
            stateful policies served to several clients at once (``vlatwin eval --workers K``); ``policy``
            still supplies the metadata. None: ``policy`` serves every connection, one call at a time.
    """

    def __init__(
        self,
        policy,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        protocol: str = "openpi",
        api_key: str | None = None,
        metadata: dict | None = None,
        camera: str | None = None,
        max_size: int = MAX_MESSAGE_BYTES,
        policy_factory: Callable[[], Any] | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise VlatwinError(f"unknown protocol {protocol!r}; use one of: {', '.join(PROTOCOLS)}")
        if not is_loopback(host) and not api_key:
            raise VlatwinError(
                f"refusing to serve on {host} without an API key; pass --api-key KEY (or set VLATWIN_API_KEY), "
                "or bind 127.0.0.1 and tunnel (ssh -L)"
            )
        if not (0 <= int(port) <= 65535):
            raise VlatwinError(f"port must be 0..65535, got {port}")
        self.policy = policy
        self.policy_factory = policy_factory
        self.host = host
        self.port = int(port)
        self.protocol = protocol
        self.api_key = api_key or None
        self.metadata = server_metadata(policy, metadata)
        info = getattr(policy, "info", None)
        self.camera = camera or (info.image_keys[0] if info is not None and info.image_keys else "image")
        self.max_size = int(max_size)
        self.stats = {"requests": 0, "bad_requests": 0, "policy_errors": 0, "connections": 0}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._inline = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_async: asyncio.Event | None = None
        self._http = None

    # ------------------------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        scheme = "ws" if self.protocol == "openpi" else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> int:
        """Serve in a background thread; returns the bound port once it accepts connections."""
        if self._thread is not None:
            return self.port
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlatwin-policy")
        target = self._run_openpi if self.protocol == "openpi" else self._run_openvla
        self._thread = threading.Thread(target=target, name=f"vlatwin-serve-{self.protocol}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            exc = self._start_error
            reason = str(getattr(exc, "strerror", None) or exc)
            hint = "; another server holds that port? pick another --port (0 = any free one)" if "in use" in reason.lower() else ""
            raise VlatwinError(f"cannot serve on {self.host}:{self.port}: {reason}{hint}") from None
        return self.port

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` (from another thread) or Ctrl-C."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.2)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop accepting, close connections, wait for the serving thread."""
        thread = self._thread
        if thread is None:
            return
        if self._loop is not None and self._stop_async is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop_async.set)
            except RuntimeError:  # loop already closed
                pass
        if self._http is not None:
            self._http.shutdown()
        thread.join(15.0)
        self._thread = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------- policy calls
    def _reset(self, episode: int | None, policy=None) -> None:
        from vlatwin.loop.control_loop import reset_policy

        with self._lock:
            reset_policy(policy or self.policy, episode)

    def _act(self, observation, policy=None):
        with self._lock:
            return self._act_locked(observation, policy)

    def _act_locked(self, observation, policy=None):
        t0 = time.perf_counter()
        chunk = as_chunk((policy or self.policy).act(observation))
        infer_ms = (time.perf_counter() - t0) * 1000.0
        self._inline = infer_ms < INLINE_MAX_MS
        return chunk, infer_ms

    async def _act_async(self, loop, observation, policy=None):
        # A policy that answered within INLINE_MAX_MS last time runs right here on the event loop: the hop
        # to the worker thread and back costs ~80 us, a third of a loopback round trip of a 224x224 frame.
        # Slow ones (models) run in the worker, so health checks and pings are answered meanwhile.
        if self._inline and self._lock.acquire(blocking=False):
            try:
                return self._act_locked(observation, policy)
            finally:
                self._lock.release()
        return await loop.run_in_executor(self._executor, self._act, observation, policy)

    # ----------------------------------------------------------------------------------- openpi
    def _run_openpi(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._openpi_main())
        except BaseException as exc:
            if not self._ready.is_set():
                self._start_error = exc
            else:
                logger.exception("openpi server stopped")
        finally:
            self._ready.set()
            loop.close()

    async def _openpi_main(self) -> None:
        from vlatwin._deps import require

        require("websockets", extra="serve")
        from websockets.asyncio.server import serve

        self._stop_async = asyncio.Event()
        async with serve(
            self._ws_handler,
            self.host,
            self.port,
            compression=None,
            max_size=self.max_size,
            process_request=self._process_request,
            open_timeout=10,
            close_timeout=2,
            logger=logging.getLogger("vlatwin.serve.websockets"),
        ) as server:
            self.port = int(next(iter(server.sockets)).getsockname()[1])
            self._ready.set()
            await self._stop_async.wait()

    def _process_request(self, connection, request):
        from http import HTTPStatus

        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "OK\n")
        if self.api_key is not None:
            got = request.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode("utf-8", "replace"), f"Api-Key {self.api_key}".encode()):
                return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong API key (send the header 'Authorization: Api-Key <key>')\n")
        return None

    async def _ws_handler(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        from vlatwin.policy.wire.msgpack_numpy import packb, unpackb
        from vlatwin.policy.wire.observation import generic_to_observation, is_vlatwin_wire, wire_to_observation

        loop = asyncio.get_running_loop()
        self.stats["connections"] += 1
        policy = None
        try:
            try:
                if self.policy_factory is not None:
                    policy = await loop.run_in_executor(self._executor, self.policy_factory)
                await loop.run_in_executor(self._executor, self._reset, None, policy)
            except Exception as exc:  # noqa: BLE001 - a failing reset is the policy's error
                await self._fail(ws, exc)
                return
            await ws.send(packb(self.metadata))
            prev_total_ms = None
            while True:
                message = await ws.recv()
                start = time.monotonic()
                try:
                    obs = unpackb(message)
                    if not isinstance(obs, dict):
                        raise WireError(f"observation must be a map, got {type(obs).__name__}")
                    if "vlatwin/reset" in obs or "__ctrl__" in obs:
                        try:
                            ack = await self._control(loop, obs, policy)
                        except _PolicyFailure as exc:
                            await self._fail(ws, exc.exc)
                            return
                        await ws.send(packb(ack))
                        continue
                    observation = wire_to_observation(obs) if is_vlatwin_wire(obs) else generic_to_observation(obs)
                except WireError as exc:
                    self.stats["bad_requests"] += 1
                    await ws.send(f"bad request: {exc}")
                    continue
                try:
                    chunk, infer_ms = await self._act_async(loop, observation, policy)
                except Exception as exc:  # noqa: BLE001 - any policy failure goes back to the client
                    await self._fail(ws, exc)
                    return
                self.stats["requests"] += 1
                server_timing = {"infer_ms": infer_ms}
                if prev_total_ms is not None:
                    server_timing["prev_total_ms"] = prev_total_ms
                reply = {
                    "actions": chunk.actions,
                    "policy_timing": {**{k: float(v) for k, v in chunk.timing.items()}, "infer_ms": infer_ms},
                    "server_timing": server_timing,
                }
                if chunk.action_space is not None:
                    reply["vlatwin/action_space"] = chunk.action_space
                await ws.send(packb(reply))
                prev_total_ms = (time.monotonic() - start) * 1000.0
        except ConnectionClosed:
            return
        except Exception:
            logger.exception("openpi connection failed")
        finally:
            if policy is not None and hasattr(policy, "close"):
                try:
                    await loop.run_in_executor(self._executor, policy.close)
                except Exception:
                    logger.exception("closing a per-connection policy failed")

    async def _control(self, loop, obs: dict, policy=None) -> dict:
        if "vlatwin/reset" in obs:
            episode = obs["vlatwin/reset"]
            if episode is not None and (isinstance(episode, bool) or not isinstance(episode, int)):
                raise WireError(f"'vlatwin/reset' must be an episode index or nil, got {type(episode).__name__}")
            await self._call_reset(loop, None if episode is None or episode < 0 else episode, policy)
            return {"vlatwin/reset": "ok"}
        ctrl = obs["__ctrl__"]
        if ctrl == "episode_start":
            episode = obs.get("__episode_id__", -1)
            valid = isinstance(episode, int) and not isinstance(episode, bool) and episode >= 0
            await self._call_reset(loop, episode if valid else None, policy)
            return {"__ack__": "episode_start"}
        if ctrl == "episode_end":
            return {"__ack__": "episode_end"}
        return {"__ack__": "ignored"}

    async def _call_reset(self, loop, episode: int | None, policy=None) -> None:
        try:
            await loop.run_in_executor(self._executor, self._reset, episode, policy)
        except Exception as exc:
            raise _PolicyFailure(exc) from exc

    async def _fail(self, ws, exc: BaseException) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.frames import CloseCode

        self.stats["policy_errors"] += 1
        logger.warning("policy error: %s", one_line(exc), exc_info=exc)
        try:
            await ws.send(f"policy error: {one_line(exc)}")
            await ws.close(code=CloseCode.INTERNAL_ERROR, reason="policy error (message in the previous frame)")
        except ConnectionClosed:
            pass

    # ----------------------------------------------------------------------------------- openvla
    def _run_openvla(self) -> None:
        try:
            self._http = _make_http_server(self)
            self.port = int(self._http.server_address[1])
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._http.serve_forever(poll_interval=0.2)
        finally:
            self._http.server_close()

    def handle_act(self, payload: Any) -> tuple[int, str]:
        """One ``POST /act`` body (already JSON-decoded) -> (HTTP status, JSON text)."""
        from vlatwin.loop.control_loop import Observation
        from vlatwin.policy.wire.json_numpy import dumps, loads
        from vlatwin.sim.types import SimState

        double = False
        if isinstance(payload, dict) and "encoded" in payload:
            if len(payload) != 1 or not isinstance(payload["encoded"], str):
                raise WireError("'encoded' must be the only key and a string")
            payload, double = loads(payload["encoded"]), True
        if not isinstance(payload, dict):
            raise WireError(f"body must be a JSON object, got {type(payload).__name__}")
        image, instruction = payload.get("image"), payload.get("instruction")
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
            raise WireError("'image' must be an (H, W, 3) uint8 json-numpy array")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise WireError("'image' is empty")
        if not isinstance(instruction, str):
            raise WireError("'instruction' must be a string")
        key = payload.get("unnorm_key")
        if key is not None and not isinstance(key, str):
            raise WireError("'unnorm_key' must be a string or null")
        state = SimState(time=0.0, step=0, joint_q=np.zeros(0), joint_qd=np.zeros(0), body_pose_w=np.zeros((0, 7)), body_vel_w=np.zeros((0, 6)))
        rgb = np.array(image[..., :3])
        observation = Observation(time=0.0, step=0, state=state, sensors={self.camera: {"rgb": rgb}}, instruction=instruction)
        try:
            chunk, _ = self._act(observation)
        except Exception as exc:
            raise _PolicyFailure(exc) from exc
        self.stats["requests"] += 1
        action = chunk.actions[0] if chunk.horizon == 1 else chunk.actions
        text = dumps(action)
        return 200, (json.dumps(text) if double else text)


class _PolicyFailure(Exception):
    """A policy call failed (reported as a policy error, not a bad request)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(one_line(exc))
        self.exc = exc


def _make_http_server(server: PolicyServer):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = HTTP_READ_TIMEOUT
        server_version = "vlatwin-serve"

        def log_message(self, format, *args):
            logger.debug("%s - " + format, self.address_string(), *args)

        def _reply(self, status: int, body: str, content_type: str = "application/json") -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            if status >= 400 and status != 500:
                server.stats["bad_requests"] += 1
            self._reply(status, json.dumps({"error": message}))

        def _authorized(self) -> bool:
            if server.api_key is None:
                return True
            got = self.headers.get("Authorization", "")
            if hmac.compare_digest(got.encode("utf-8", "replace"), f"Api-Key {server.api_key}".encode()):
                return True
            self._error(401, "missing or wrong API key (send the header 'Authorization: Api-Key <key>')")
            return False

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._reply(200, "OK\n", "text/plain")
            elif path == "/info":
                if self._authorized():
                    self._reply(200, json.dumps(server.metadata, default=_json_default))
            else:
                self._error(404, f"no such endpoint GET {path[:80]}; use POST /act, GET /healthz or GET /info")

        def _body(self) -> bytes | None:
            length = self.headers.get("Content-Length")
            if length is None:
                self.close_connection = True
                self._error(411, "Content-Length is required")
                return None
            try:
                n = int(length)
                if n < 0:
                    raise ValueError
            except ValueError:
                self.close_connection = True
                self._error(400, "bad Content-Length")
                return None
            if n > server.max_size:
                self.close_connection = True
                self._error(413, f"body of {n} bytes is over the {server.max_size}-byte limit")
                return None
            data = self.rfile.read(n)
            if len(data) != n:
                self.close_connection = True
                self._error(400, "body shorter than Content-Length")
                return None
            return data

        def do_POST(self) -> None:
            from vlatwin.policy.wire.json_numpy import loads

            path = self.path.split("?", 1)[0]
            if path not in ("/act", "/reset"):
                self.close_connection = True
                self._error(404, f"no such endpoint POST {path[:80]}; use POST /act")
                return
            if not self._authorized():
                self.close_connection = True
                return
            body = self._body()
            if body is None:
                return
            try:
                payload = loads(body)
                if path == "/reset":
                    episode = payload.get("episode") if isinstance(payload, dict) else None
                    if episode is not None and (isinstance(episode, bool) or not isinstance(episode, int)):
                        raise WireError("'episode' must be an int or null")
                    try:
                        server._reset(episode)
                    except Exception as exc:
                        raise _PolicyFailure(exc) from exc
                    self._reply(200, json.dumps({"reset": "ok"}))
                    return
                status, text = server.handle_act(payload)
                self._reply(status, text)
            except WireError as exc:
                self._error(400, f"bad request: {exc}")
            except _PolicyFailure as exc:
                server.stats["policy_errors"] += 1
                logger.warning("policy error: %s", exc, exc_info=exc.exc)
                self._error(500, f"policy error: {exc}")

        def do_PUT(self) -> None:
            self.close_connection = True
            self._error(405, "use POST /act")

        do_DELETE = do_PATCH = do_PUT

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request, client_address) -> None:
            logger.debug("HTTP connection from %s failed", client_address, exc_info=True)  # noqa: LOG014 - called from the handler's except

    host = server.host.strip("[]")
    if ":" in host:
        import socket

        Server.address_family = socket.AF_INET6
    return Server((host, server.port), Handler)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


__all__ = ["MAX_MESSAGE_BYTES", "PROTOCOLS", "PolicyServer", "is_loopback", "one_line", "server_metadata"]
