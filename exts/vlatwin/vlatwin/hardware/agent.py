"""``vlatwin agent``: a network robot agent that runs next to the robot and wraps a driver (:class:`Robot`).

Ports (one ``bind`` address ``tcp://HOST:PORT``; ``PORT`` 0 picks three free ports, which ``welcome`` names):

========  ==========  ======  ==========================================================================
port      ZMQ socket  dir.    carries
========  ==========  ======  ==========================================================================
PORT      ROUTER      both    ``hello``/``welcome``, ``ping``/``pong``, ``estop``/``reset_estop``/``ack``, ``error``
PORT + 1  PULL        in      ``command`` with ``CONFLATE`` (latest value wins; nothing queues up)
PORT + 2  PUB         out     ``state`` at up to ``state_rate_hz`` (each new driver observation, once), each
                              preceded by a ``sensor`` frame per camera image / LIDAR cloud the observation carries
========  ==========  ======  ==========================================================================

Sensor frames share the state socket so each arrives before its state (the twin renders its own frame of
that instant in the re-simulation the state triggers). A frame delays the states behind it by its transfer
time (a 224x224 PNG on loopback: well under a millisecond; 1 MB on 1 Gbit/s: 8 ms): on a slow link lower the
driver's camera rate or resolution, or the agent's ``--sensor-hz`` (frames per sensor per second; 0: none).

Rules the agent enforces (every refused frame is logged, rate-limited, and dropped; the agent never stops
for a bad frame or a failing driver call):

* schema version, field types, shapes and finiteness (:func:`vlatwin.hardware.wire.decode`);
* the token on every inbound message when the agent has one (and a token is required for any
  non-loopback bind); states are not authenticated or encrypted: bind to a trusted network or tunnel;
* commands only after a ``hello`` of the current agent session (the hello also resets the command
  sequence, so a restarted twin is accepted), of the right length, with a sequence number above the last
  applied one, while no e-stop is latched;
* command expiry from the agent's receive time: the frame's age is its transit time beyond the fastest
  transit seen since the hello (a min-delay filter, allowed to creep by :data:`TRANSIT_DRIFT` to follow
  clock drift), so no shared clock is needed; a frame older than its ``ttl_s`` is stale and dropped, a fresh
  one reaches the driver with ``expires_at = receive time + the TTL left``;
* scheduled commands (``apply_at``, robot clock): the agent holds each until its robot time comes (on its own
  clock through its robot-clock offset estimate) and hands it to the driver then; one whose time has passed
  goes at once and is counted late. An e-stop or a new hello drops the held ones. A scheduled command may
  repeat the one before it (``prev_*``): when that sequence number never arrived, the repeat is taken in its
  place (``commands_recovered``), and the original arriving later is a silent duplicate.

``pong`` times ``t2``/``t3`` are on the robot clock (the clock of ``state.robot_time``): the agent's
clock plus the agent's own estimate of the robot-clock offset (min-delay filter over the driver's
``sync_sample``; drivers that answer None fall back to ``max(robot_time - host_time)`` over recent states).
The agent streams states whether commands arrive or not: the hold/decelerate watchdog is the driver's.
"""

from __future__ import annotations

import collections
import heapq
import hmac
import logging
import math
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from vlatwin._deps import require
from vlatwin.errors import VlatwinError
from vlatwin.hardware import wire
from vlatwin.hardware.base import Robot, RobotAction
from vlatwin.hardware.clock import Clock, WallClock

logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
TRANSIT_DRIFT = 2e-4
"""How fast the min-transit baseline may rise [s/s] (covers clock drift between twin host and agent)."""
SYNC_PERIOD_S = 0.25
"""How often the agent samples the driver's clock (``sync_sample``)."""


def parse_tcp_address(address: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` -> (host, port); one-line error otherwise."""
    parts = urlsplit(str(address))
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in ("", "/") or parts.query:
        raise VlatwinError(f"robot agent address {address!r} must look like tcp://HOST:PORT (e.g. {DEFAULT_ADDRESS})")
    return parts.hostname, port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    from vlatwin.policy.serve import is_loopback as _is_loopback

    return _is_loopback(host)


def _endpoint(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def check_token(expected: str | None, given: str | None) -> bool:
    """Constant-time token check (no token expected: everything passes)."""
    if not expected:
        return True
    return given is not None and hmac.compare_digest(str(given).encode(), expected.encode())


class _OffsetFilter:
    """Robot-clock offset (robot - agent) [s]: min-delay NTP samples, else the largest (robot_time - host_time)."""

    def __init__(self, window: int = 16):
        self._samples: collections.deque = collections.deque(maxlen=window)
        self._state_bound: collections.deque = collections.deque(maxlen=256)
        self._lock = threading.Lock()  # the clock thread adds samples while the loop reads the offset

    def add_sync(self, t1: float, t2: float, t3: float, t4: float) -> None:
        delay = (t4 - t1) - (t3 - t2)
        offset = ((t2 - t1) + (t3 - t4)) / 2.0
        if np.isfinite(delay) and np.isfinite(offset):
            with self._lock:
                self._samples.append((delay, offset))

    def add_state(self, robot_time: float, host_time: float) -> None:
        with self._lock:
            self._state_bound.append(robot_time - host_time)

    @property
    def offset(self) -> float:
        with self._lock:
            if self._samples:
                return min(self._samples)[1]
            if self._state_bound:
                return max(self._state_bound)
            return 0.0


class _LogLimiter:
    """At most one warning per reason per ``period`` seconds, with a count of the ones held back."""

    def __init__(self, period: float = 1.0):
        self.period = period
        self._last: dict[str, float] = {}
        self._held: collections.Counter = collections.Counter()

    def warn(self, reason: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last.get(reason, -1e9) >= self.period:
            held = self._held.pop(reason, 0)
            logger.warning("%s%s", text, f" (+{held} more since the last report)" if held else "")
            self._last[reason] = now
        else:
            self._held[reason] += 1


class RobotAgent:
    """Serve one driver over ZMQ: states out, commands in, control requests answered.

    Args:
        driver: the robot (any :class:`Robot`; connected by :meth:`start` if it is not yet).
        bind: ``tcp://HOST:PORT`` (control port; commands on PORT+1, states on PORT+2; PORT 0: any free ones).
        token: shared secret every inbound message must carry (required unless HOST is loopback).
        state_rate_hz: how often the driver is polled for a new observation [Hz] (≤ 1000).
        clock: the agent's clock (the driver's host clock; default :class:`WallClock`).
        sensor_hz: forward the camera frames and LIDAR clouds the driver's observations carry, at most this many per
            sensor per second of robot time [Hz] (a LeRobot robot has frames on every observation; 0: none).
    """

    def __init__(
        self,
        driver: Robot,
        *,
        bind: str = DEFAULT_ADDRESS,
        token: str | None = None,
        state_rate_hz: float = 500.0,
        clock: Clock | None = None,
        sensor_hz: float = 10.0,
    ) -> None:
        host, port = parse_tcp_address(bind)
        token = token or None
        if not is_loopback(host) and not token:
            raise VlatwinError(
                f"refusing to bind the robot agent to {host} without a token; pass --token SECRET (or set VLATWIN_AGENT_TOKEN), "
                "or bind 127.0.0.1 and tunnel (ssh -L)"
            )
        if not (np.isfinite(state_rate_hz) and 0 < state_rate_hz <= 1000):
            raise VlatwinError(f"state rate must be in (0, 1000] Hz, got {state_rate_hz}")
        self.driver = driver
        self.host, self.port = host, port
        self.token = token
        self.state_rate_hz = float(state_rate_hz)
        if not (np.isfinite(sensor_hz) and sensor_hz >= 0):
            raise VlatwinError(f"sensor rate must be >= 0 Hz, got {sensor_hz}")
        self.sensor_hz = float(sensor_hz)
        self._sensor_sent: dict[tuple[str, str], float] = {}
        self.clock = clock or WallClock()
        self.session = random.SystemRandom().randrange(1, 2**31)
        self.stats: collections.Counter = collections.Counter()
        self._zmq = None
        self._ctx = None
        self._sockets: dict[str, Any] = {}
        self.ports: dict[str, int] = {}
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected_driver = False
        self._log = _LogLimiter()
        self._seq = {"state": 0, "control": 0}
        self._last_obs_key = None
        self._last_cmd_seq = -1
        self._dispatched_seq = -1
        self._scheduled: list = []  # (due agent time [s], seq, RobotAction)
        self._recovered: collections.deque[int] = collections.deque(maxlen=64)  # seqs taken from a repeat
        self._hello_seen = False
        self._transit_min: float | None = None
        self._transit_at = 0.0
        self._estop = False
        self._offset = _OffsetFilter()
        self._sync_wake = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> str:
        """The control endpoint clients connect to (``tcp://HOST:PORT`` with the bound port)."""
        return _endpoint(self.host, self.ports.get("control", self.port))

    def bind(self) -> str:
        """Open the three sockets and connect the driver; returns :attr:`address`. Idempotent."""
        if self._ctx is not None:
            return self.address
        zmq = self._zmq = require("zmq", extra="twin")
        require("msgpack", extra="twin")
        self._ctx = zmq.Context()
        try:
            control = self._ctx.socket(zmq.ROUTER)
            command = self._ctx.socket(zmq.PULL)
            command.setsockopt(zmq.CONFLATE, 1)  # before bind: only the newest command is kept
            state = self._ctx.socket(zmq.PUB)
            state.setsockopt(zmq.SNDHWM, 64)
            for sock in (control, command, state):
                sock.setsockopt(zmq.LINGER, 0)
                if ":" in self.host:
                    sock.setsockopt(zmq.IPV6, 1)
            self._sockets = {"control": control, "command": command, "state": state}
            for offset, name in enumerate(("control", "command", "state")):
                sock = self._sockets[name]
                if self.port == 0:
                    self.ports[name] = sock.bind_to_random_port(_endpoint(self.host, 0).rsplit(":", 1)[0])
                else:
                    sock.bind(_endpoint(self.host, self.port + offset))
                    self.ports[name] = self.port + offset
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise VlatwinError(
                f"cannot bind the robot agent on {self.host} ports {self.port}..{self.port + 2}: {exc} "
                "(another agent running? pick another --bind port)"
            ) from None
        if not self.driver.is_connected:
            self.driver.connect()
            self._connected_driver = True
        logger.info("robot agent %s (session %d) serving %s on %s", self.driver.name, self.session, self.ports, self.host)
        return self.address

    def serve_forever(self) -> None:
        """Run the agent loop in this thread until :meth:`stop` (binds first if needed)."""
        self.bind()
        self._running.set()
        self._stopped.clear()
        self._sync_wake.clear()
        sync = threading.Thread(target=self._sync_loop, name="vlatwin-agent-clock", daemon=True)
        sync.start()
        try:
            self._loop()
        finally:
            self._running.clear()
            self._sync_wake.set()
            sync.join(2.0)
            self._close_sockets()
            if self._connected_driver:
                try:
                    self.driver.disconnect()
                except Exception as exc:  # noqa: BLE001 - shutting down anyway
                    logger.warning("driver disconnect failed: %s", exc)
                self._connected_driver = False
            self._stopped.set()

    def start_thread(self) -> str:
        """Bind, then serve on a daemon thread (tests, embedding); returns :attr:`address`."""
        address = self.bind()
        self._running.set()
        self._thread = threading.Thread(target=self.serve_forever, name="vlatwin-robot-agent", daemon=True)
        self._thread.start()
        return address

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the loop to end; with a thread, wait for it."""
        self._running.clear()
        self._sync_wake.set()
        if self._thread is not None:  # else serve_forever (in another frame of this thread) cleans up as it returns
            self._thread.join(timeout)
            self._thread = None

    def _close_sockets(self) -> None:
        for sock in self._sockets.values():
            sock.close(0)
        self._sockets = {}
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    # ------------------------------------------------------------------ loop

    def _loop(self) -> None:
        zmq = self._zmq
        poller = zmq.Poller()
        poller.register(self._sockets["control"], zmq.POLLIN)
        poller.register(self._sockets["command"], zmq.POLLIN)
        period = 1.0 / self.state_rate_hz
        next_tick = time.monotonic()
        while self._running.is_set():
            now = time.monotonic()
            if now >= next_tick:
                self._publish_state()
                next_tick += period
                if next_tick < now:  # fell behind (scheduler hiccup): skip, do not burst
                    next_tick = now + period
            self._dispatch_due()
            remaining = next_tick - time.monotonic()
            if self._scheduled:
                remaining = min(remaining, self._scheduled[0][0] - self.clock.now())
            ms = int(remaining * 1000.0)
            events = dict(poller.poll(ms if ms >= 1 else 0))
            if not events and 0 < remaining < 0.001:
                time.sleep(remaining)
            if self._sockets["control"] in events:
                self._drain(self._sockets["control"], self._on_control)
            if self._sockets["command"] in events:
                self._drain(self._sockets["command"], self._on_command)

    def _drain(self, sock, handler) -> None:
        zmq = self._zmq
        for _ in range(256):  # bounded: a flood cannot starve the state stream
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            t_recv = self.clock.now()
            try:
                handler(frames, t_recv)
            except Exception as exc:  # noqa: BLE001 - the agent must outlive any single frame or driver call
                self.stats["handler_errors"] += 1
                self._log.warn("handler", f"robot agent: error while handling a frame: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ states and clock

    def _publish_state(self) -> None:
        try:
            # A driver with a stream (the emulated robot's poll_observations) gets every state published, so
            # its gaps stay link losses; others are sampled at the state rate, each new state sent once.
            poll = getattr(self.driver, "poll_observations", None)
            observations = poll() if callable(poll) else [self.driver.get_observation()]
        except Exception as exc:  # noqa: BLE001
            self.stats["driver_errors"] += 1
            self._log.warn("observe", f"robot agent: reading the driver failed: {type(exc).__name__}: {exc}")
            return
        for obs in observations:
            if obs is not None:
                self._send_state(obs)

    def _send_state(self, obs) -> None:
        key = (obs.seq, obs.robot_time)
        if key == self._last_obs_key:
            return
        self._last_obs_key = key
        status = {k: v for k, v in (obs.status or {}).items() if isinstance(k, str) and _is_scalar(v)}
        status["estop"] = bool(self._estop or status.get("estop", False))
        status["agent_command_seq"] = int(self._dispatched_seq)  # forwarded to the driver (the driver's own may lag)
        status.setdefault("last_command_seq", int(self._dispatched_seq))
        if self._scheduled:
            status["commands_scheduled"] = len(self._scheduled)
        # The agent schedules for its driver, so lateness and repeats are counted here, on top of the driver's own.
        for key in ("commands_late", "commands_recovered"):
            if self.stats[key]:
                own = status.get(key)
                status[key] = (own if isinstance(own, int) and not isinstance(own, bool) else 0) + int(self.stats[key])
        if self.sensor_hz > 0:
            self._send_sensors(obs)
        self._publish("state", lambda seq, t: wire.message(
            "state", seq=seq, t_send=t, robot_seq=int(obs.seq), robot_time=float(obs.robot_time), joint_q=obs.joint_q,
            joint_qd=obs.joint_qd, joint_effort=obs.joint_effort, joint_q_desired=obs.joint_q_desired,
            joint_q_goal=getattr(obs, "joint_q_goal", None), status=status,
            session=self.session,
        ))
        self._offset.add_state(obs.robot_time, obs.host_time)  # after the send: bookkeeping adds no latency

    def _send_sensors(self, obs) -> None:
        """One ``sensor`` frame per camera image and LIDAR cloud of ``obs``, before its state."""
        frames = [("image", n, a) for n, a in (getattr(obs, "images", None) or {}).items()]
        frames += [("points", n, a) for n, a in (getattr(obs, "point_clouds", None) or {}).items()]
        for kind, name, array in frames:
            last = self._sensor_sent.get((kind, name))
            # 1 % slack: a driver whose frames come exactly at the rate is not thinned to half of it.
            if last is not None and 0 <= obs.robot_time - last < 0.99 / self.sensor_hz:
                self.stats["sensors_skipped"] += 1
                continue
            self._sensor_sent[(kind, name)] = float(obs.robot_time)
            self._publish("sensor", lambda seq, t, kind=kind, name=name, array=array: wire.sensor_message(
                kind, array, name=str(name), robot_seq=int(obs.seq), robot_time=float(obs.robot_time), session=self.session,
                seq=seq, t_send=t,
            ))

    def _publish(self, what: str, build) -> None:
        """Encode ``build(seq, t_send)`` and send it on the state socket. A message that does not encode is logged
        and takes no sequence number (the twin would count it as a lost state)."""
        seq = self._seq["state"] + 1
        try:
            data = wire.encode(build(seq, self.clock.now()))
        except wire.WireError as exc:
            self.stats[f"bad_{what}s"] += 1
            self._log.warn(f"bad_{what}", f"robot agent: {what} not sent: {exc}")
            return
        self._seq["state"] = seq
        try:
            self._sockets["state"].send(data, self._zmq.NOBLOCK)
            self.stats[f"{what}s_sent"] += 1
        except self._zmq.Again:
            self.stats[f"{what}s_dropped"] += 1

    def _sync_loop(self) -> None:
        """Sample the driver's clock off the stream's thread (an exchange may block for the link's delay)."""
        while self._running.is_set():
            try:
                sample = self.driver.sync_sample()
            except Exception as exc:  # noqa: BLE001
                self._log.warn("sync", f"robot agent: driver.sync_sample failed: {type(exc).__name__}: {exc}")
                sample = None
            if sample is not None:
                self._offset.add_sync(*sample)
            self._sync_wake.wait(SYNC_PERIOD_S)

    def robot_time(self, t_agent: float) -> float:
        """An agent-clock time mapped onto the robot clock [s] (the agent's current offset estimate)."""
        return t_agent + self._offset.offset

    def _next(self, channel: str) -> int:
        self._seq[channel] += 1
        return self._seq[channel]

    # ------------------------------------------------------------------ inbound

    def _refuse(self, reason: str, text: str) -> None:
        self.stats[f"dropped_{reason}"] += 1
        self._log.warn(reason, f"robot agent: dropped a frame: {text}")

    def _authentic(self, msg: dict) -> bool:
        return check_token(self.token, msg.get("token"))

    def _note_transit(self, msg: dict, t_recv: float) -> float:
        """The frame's age beyond the fastest transit seen since the hello [s] (updates the baseline)."""
        transit = t_recv - msg["t_send"]
        if self._transit_min is None:
            self._transit_min = transit
        else:
            self._transit_min = min(transit, self._transit_min + TRANSIT_DRIFT * max(0.0, t_recv - self._transit_at))
        self._transit_at = t_recv
        return max(0.0, transit - self._transit_min)

    def _reply(self, identity: bytes, kind: str, **fields) -> None:
        msg = wire.message(kind, seq=self._next("control"), t_send=self.clock.now(), **fields)
        if kind == "pong":
            msg["t3"] = self.robot_time(self.clock.now())
        try:
            self._sockets["control"].send_multipart([identity, wire.encode(msg)], self._zmq.NOBLOCK)
        except self._zmq.Again:
            self.stats["replies_dropped"] += 1

    def _on_control(self, frames: list[bytes], t_recv: float) -> None:
        if len(frames) != 2:
            self._refuse("malformed", f"control frame with {len(frames)} parts (send one msgpack frame from a DEALER)")
            return
        identity, payload = frames
        try:
            msg = wire.decode(payload)
        except wire.WireError as exc:
            self._refuse("malformed", str(exc))
            self._reply(identity, "error", code="malformed", message=str(exc))
            return
        if not self._authentic(msg):
            self._refuse("unauthorized", f"{msg['type']} with a wrong or missing token")
            self._reply(identity, "error", code="unauthorized", message="wrong or missing token", ref=msg["seq"])
            return
        kind = msg["type"]
        if kind == "hello":
            self._hello_seen = True
            self._last_cmd_seq = -1
            self._dispatched_seq = -1
            self._scheduled.clear()
            self._recovered.clear()
            self._transit_min = None
            self._note_transit(msg, t_recv)
            self.stats["hellos"] += 1
            logger.info("robot agent: hello from %s", msg.get("client") or "a client")
            self._reply(
                identity, "welcome", ref=msg["seq"], joint_names=tuple(self.driver.joint_names), robot=str(self.driver.name),
                state_rate_hz=self.state_rate_hz, schema=wire.SCHEMA_VERSION, session=self.session,
                command_port=self.ports["command"], state_port=self.ports["state"],
            )
        elif kind == "ping":
            if self._hello_seen:
                self._note_transit(msg, t_recv)
            self._reply(identity, "pong", ref=msg["seq"], t1=msg["t1"], t2=self.robot_time(t_recv), t3=0.0)
        elif kind == "estop":
            self._estop = True
            self.stats["estops"] += 1
            self.stats["commands_dropped_by_estop"] += len(self._scheduled)
            self._scheduled.clear()
            logger.warning("robot agent: E-STOP (%s)", msg.get("reason") or "requested")
            try:
                self.driver.estop()
            finally:
                self._reply(identity, "ack", ref=msg["seq"], of="estop")
        elif kind == "reset_estop":
            self.driver.reset_estop()
            self._estop = False
            logger.warning("robot agent: e-stop reset (%s)", msg.get("reason") or "requested")
            self._reply(identity, "ack", ref=msg["seq"], of="reset_estop")
        else:
            self._refuse("unexpected", f"{kind} is not a control request")
            self._reply(identity, "error", code="unexpected", message=f"{kind} is not a control request", ref=msg["seq"])

    def _on_command(self, frames: list[bytes], t_recv: float) -> None:
        if len(frames) != 1:
            self._refuse("malformed", f"command frame with {len(frames)} parts")
            return
        try:
            msg = wire.decode(frames[0])
        except wire.WireError as exc:
            self._refuse("malformed", str(exc))
            return
        if not self._authentic(msg):
            self._refuse("unauthorized", "command with a wrong or missing token")
            return
        if msg["type"] != "command":
            self._refuse("unexpected", f"{msg['type']} on the command port")
            return
        if not self._hello_seen:
            self._refuse("no_hello", "command before a hello to this agent session (the client re-sends hello)")
            return
        n = len(self.driver.joint_names)
        if n and msg["target_q"].size != n:
            self._refuse("shape", f"command has {msg['target_q'].size} joints, the robot has {n}")
            return
        if msg["seq"] in self._recovered:
            self.stats["commands_duplicate"] += 1  # overtaken by the next packet, which repeated it
            return
        if msg["seq"] <= self._last_cmd_seq:
            self._refuse("old", f"command seq {msg['seq']} is not newer than the applied {self._last_cmd_seq}")
            return
        age = self._note_transit(msg, t_recv)
        prev_seq = msg.get("prev_seq")
        if (prev_seq is not None and msg.get("prev_target_q") is not None and msg.get("prev_apply_at") is not None
                and self._last_cmd_seq < prev_seq < msg["seq"] and not self._estop
                and (msg.get("prev_ttl_s") is None or age < msg["prev_ttl_s"])):
            # The scheduled command before this one, repeated: its own packet was lost (or is still on the way).
            self.stats["commands_recovered"] += 1
            self._recovered.append(prev_seq)
            self._accept(prev_seq, msg["prev_target_q"], msg.get("prev_ttl_s"), msg["prev_apply_at"], t_recv, age)
        ttl = msg["ttl_s"]
        if ttl is not None and age >= ttl:
            self._refuse("stale", f"command seq {msg['seq']} is {age * 1e3:.1f} ms old, its TTL is {ttl * 1e3:.1f} ms")
            return
        if self._estop:
            self._refuse("estop", f"command seq {msg['seq']} while the e-stop is latched (send reset_estop)")
            return
        self._accept(msg["seq"], msg["target_q"], ttl, msg.get("apply_at"), t_recv, age)

    def _accept(self, seq: int, target_q, ttl: float | None, apply_at: float | None, t_recv: float, age: float) -> None:
        """A command that passed the checks: held until its ``apply_at`` or handed to the driver now."""
        action = RobotAction(
            target_q=target_q, seq=seq, send_time=t_recv, expires_at=None if ttl is None else t_recv + (ttl - age),
        )
        self._last_cmd_seq = seq
        if apply_at is not None:
            due = float(apply_at) - self._offset.offset  # robot clock -> agent clock
            if due > t_recv:
                heapq.heappush(self._scheduled, (due, seq, action))
                self.stats["commands_scheduled"] += 1
                return
            self.stats["commands_late"] += 1
        self._dispatch(action)

    def _dispatch(self, action: RobotAction) -> None:
        self._dispatched_seq = action.seq
        self.stats["commands_applied"] += 1
        self.driver.send_action(action)

    def _dispatch_due(self) -> None:
        """Hand the scheduled commands whose time has come to the driver, oldest first."""
        now = self.clock.now()
        while self._scheduled and self._scheduled[0][0] <= now:
            _, _, action = heapq.heappop(self._scheduled)
            if self._estop:
                continue
            try:
                self._dispatch(action)
            except Exception as exc:  # noqa: BLE001 - the agent must outlive any single driver call
                self.stats["handler_errors"] += 1
                self._log.warn("handler", f"robot agent: the driver refused command seq {action.seq}: {type(exc).__name__}: {exc}")


def _is_scalar(value: Any) -> bool:
    if value is None or isinstance(value, (bool, str, int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(value)  # math, not numpy: runs per state


__all__ = ["DEFAULT_ADDRESS", "RobotAgent", "check_token", "is_loopback", "parse_tcp_address"]
