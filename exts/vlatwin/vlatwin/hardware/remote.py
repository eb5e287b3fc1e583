"""A robot behind a ``vlatwin agent``, over the network (the twin side of :mod:`vlatwin.hardware.agent`).

:class:`RemoteRobot` connects with a ``hello`` (the ``welcome`` names the robot, its joints and the command
and state ports), then keeps a background thread that receives the state stream and holds the newest
state (by robot sequence number). Commands go out latest-value (a ZMQ PUSH with ``CONFLATE``; the agent's
PULL conflates too). Control requests (``ping``, ``estop``) are request/reply on a DEALER with a timeout;
a DEALER that timed out is replaced, so nothing queued for a dead agent is delivered to its successor.

Reconnection: when no state arrives for ``timeout_s`` or the states come from a new agent session
(the agent restarted), the thread says ``hello`` again, every ``timeout_s`` until the agent answers; ZMQ
re-establishes the TCP connections by itself, so the twin keeps running and observations resume without
rebuilding this object. The agent accepts commands only after that hello.

Camera frames and LIDAR clouds (``sensor`` frames) arrive on the state socket just before the state of the same
instant and are attached to it (``RobotObservation.images`` / ``point_clouds``); a frame whose state never
comes is dropped.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

import numpy as np

from vlatwin._deps import require
from vlatwin.errors import VlatwinError
from vlatwin.hardware import wire
from vlatwin.hardware.agent import DEFAULT_ADDRESS, _endpoint, parse_tcp_address
from vlatwin.hardware.base import Robot, RobotAction, RobotObservation
from vlatwin.hardware.clock import Clock, WallClock

logger = logging.getLogger(__name__)


class RemoteRobot(Robot):
    """A :class:`Robot` served by ``vlatwin agent`` at ``address``.

    Args:
        address: the agent's control endpoint ``tcp://HOST:PORT``.
        token: the agent's shared secret (when it has one).
        clock: the host clock (default :class:`WallClock`; a virtual clock cannot pace a real link).
        timeout_s: hello / request timeout, and how long without states counts as a lost link [s].
    """

    name = "remote"

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        token: str | None = None,
        clock: Clock | None = None,
        timeout_s: float = 1.0,
        client: str = "vlatwin",
    ) -> None:
        self.host, self.port = parse_tcp_address(address)
        self.address = _endpoint(self.host, self.port)
        self.clock = clock or WallClock()
        if self.clock.is_virtual:
            raise VlatwinError("RemoteRobot needs a wall clock (a real network link cannot follow a virtual clock)")
        if not (np.isfinite(timeout_s) and timeout_s > 0):
            raise VlatwinError(f"timeout must be > 0 s, got {timeout_s}")
        self.token = token or None
        self.timeout_s = float(timeout_s)
        self.sync_timeout_s = 0.05
        """How long :meth:`sync_sample` waits for a pong [s] (a late pong is dropped, not waited for)."""
        self.client = client
        self.joint_names: tuple[str, ...] = ()
        self.robot_name = ""
        self.state_rate_hz = 0.0
        self.session: int | None = None
        self.stats: collections.Counter = collections.Counter()
        self._zmq = None
        self._ctx = None
        self._dealer = None
        self._sub = None
        self._push = None
        self._ports: tuple[int, int] | None = None
        self._ctl_lock = threading.Lock()
        self._cmd_lock = threading.Lock()
        self._seq = {"control": 0}
        self._cmd_seq = 0
        self._wire_seq: dict[int, int] = {}  # the last command: caller seq -> the seq it went out with
        self._latest: RobotObservation | None = None
        # Every accepted state since the last poll (the run log keeps the full stream, not only the newest).
        self._inbox: collections.deque[RobotObservation] = collections.deque(maxlen=20000)
        self._latest_key: tuple[int, int] | None = None
        # Sensor frames waiting for their state: (session, robot_seq) -> {"images": {...}, "point_clouds": {...}}.
        self._pending_sensors: collections.OrderedDict[tuple[int, int], dict] = collections.OrderedDict()
        self._last_agent_seq: int | None = None
        self._last_rx = 0.0
        self._rehello = False
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def link_up(self) -> bool:
        """A state arrived within the last ``timeout_s``."""
        return self.is_connected and time.monotonic() - self._last_rx <= self.timeout_s

    def connect(self) -> None:
        if self.is_connected:
            return
        self._zmq = require("zmq", extra="twin")
        require("msgpack", extra="twin")
        self._ctx = self._zmq.Context()
        self._dealer = self._new_dealer()
        reply = self._hello(self.timeout_s)
        if reply is None or reply["type"] != "welcome":
            self._close()
            if reply is not None:
                raise VlatwinError(f"robot agent at {self.address} refused the connection: {reply['message']}")
            hint = " with the same --token" if self.token else ""
            raise VlatwinError(
                f"cannot reach robot agent at {self.address} within {self.timeout_s:g} s: start it with "
                f"`vlatwin agent --driver emulated|lerobot|franka --bind {self.address}`{hint} next to the robot"
            )
        self._apply_welcome(reply)
        self._last_rx = time.monotonic()
        self._running.set()
        self._thread = threading.Thread(target=self._rx_loop, name="vlatwin-remote-robot", daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self._close()

    def _close(self) -> None:
        for sock in (self._dealer, self._sub, self._push):
            if sock is not None:
                sock.close(0)
        self._dealer = self._sub = self._push = None
        self._ports = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def _new_dealer(self):
        zmq = self._zmq
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 16)
        if ":" in self.host:
            sock.setsockopt(zmq.IPV6, 1)
        sock.connect(self.address)
        return sock

    def _apply_welcome(self, msg: dict) -> None:
        zmq = self._zmq
        self.joint_names = tuple(msg["joint_names"])
        self.robot_name = self.name = msg["robot"]
        self.state_rate_hz = msg["state_rate_hz"]
        if msg["session"] != self.session:
            self.session = msg["session"]
            self._latest_key = None
            self._last_agent_seq = None
        ports = (msg["command_port"], msg["state_port"])
        if ports == self._ports:
            return
        # Only the receive thread touches the SUB socket once it runs, and it is the one calling us then.
        with self._cmd_lock:
            for sock in (self._sub, self._push):
                if sock is not None:
                    sock.close(0)
            self._push = self._ctx.socket(zmq.PUSH)
            self._push.setsockopt(zmq.CONFLATE, 1)
            self._push.setsockopt(zmq.LINGER, 0)
            self._sub = self._ctx.socket(zmq.SUB)
            self._sub.setsockopt(zmq.SUBSCRIBE, b"")
            self._sub.setsockopt(zmq.LINGER, 0)
            for sock in (self._push, self._sub):
                if ":" in self.host:
                    sock.setsockopt(zmq.IPV6, 1)
            self._push.connect(_endpoint(self.host, ports[0]))
            self._sub.connect(_endpoint(self.host, ports[1]))
            self._ports = ports

    # ------------------------------------------------------------------ requests

    def _request(self, kind: str, timeout: float, **fields) -> tuple[dict | None, float, float]:
        """Send one control request; (reply or None, host send time, host receive time)."""
        zmq = self._zmq
        with self._ctl_lock:
            if self._dealer is None:
                return None, 0.0, 0.0
            self._seq["control"] += 1
            seq = self._seq["control"]
            t1 = self.clock.now()
            if kind == "ping":
                fields["t1"] = t1
            data = wire.encode(wire.message(kind, seq=seq, t_send=t1, token=self.token, **fields))
            try:
                self._dealer.send(data, zmq.NOBLOCK)
            except zmq.Again:
                self._reset_dealer()
                return None, t1, 0.0
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not self._dealer.poll(max(1, int(left * 1000)), zmq.POLLIN):
                    self._reset_dealer()  # lazy pirate: drop whatever is queued for a dead agent
                    return None, t1, 0.0
                raw = self._dealer.recv()
                t4 = self.clock.now()
                try:
                    reply = wire.decode(raw)
                except wire.WireError as exc:
                    self.stats["malformed_replies"] += 1
                    logger.warning("robot agent %s sent a malformed reply: %s", self.address, exc)
                    continue
                if reply.get("ref") == seq or (reply["type"] == "error" and reply.get("ref") is None):
                    return reply, t1, t4
                self.stats["late_replies"] += 1

    def _reset_dealer(self) -> None:
        if self._dealer is not None:
            self._dealer.close(0)
        self._dealer = self._new_dealer()

    def _hello(self, timeout: float) -> dict | None:
        reply, _, _ = self._request("hello", timeout, client=self.client)
        return reply

    # ------------------------------------------------------------------ receive thread

    def _rx_loop(self) -> None:
        zmq = self._zmq
        next_hello = 0.0
        while self._running.is_set():
            sub = self._sub
            try:
                if sub.poll(50, zmq.POLLIN):
                    for _ in range(1024):
                        try:
                            raw = sub.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._on_state(raw, self.clock.now())
            except zmq.ZMQError as exc:  # the socket was swapped under us by a welcome with new ports
                if self._running.is_set():
                    logger.debug("state socket error: %s", exc)
                continue
            now = time.monotonic()
            lost = now - self._last_rx > self.timeout_s
            if (lost or self._rehello) and now >= next_hello:
                next_hello = now + self.timeout_s
                if lost:
                    self.stats["link_lost"] += 1
                    logger.warning("robot agent %s: no state for %.2f s, saying hello again", self.address, now - self._last_rx)
                try:
                    reply = self._hello(min(self.timeout_s, 0.5))
                except Exception as exc:  # noqa: BLE001 - keep the thread alive; retry later
                    logger.warning("robot agent %s: hello failed: %s", self.address, exc)
                    reply = None
                if reply is not None and reply["type"] == "welcome":
                    self._apply_welcome(reply)
                    self._rehello = False
                    self.stats["reconnects"] += 1
                    logger.info("robot agent %s: session %d", self.address, self.session)
                    if lost:
                        self._last_rx = time.monotonic()  # give the stream a full timeout to resume
                elif reply is not None:
                    logger.error("robot agent %s refused hello: %s", self.address, reply.get("message"))

    def _on_state(self, raw: bytes, host_time: float) -> None:
        try:
            msg = wire.decode(raw, max_bytes=wire.MAX_SENSOR_FRAME_BYTES)
        except wire.WireError as exc:
            self.stats["malformed_states"] += 1
            logger.debug("dropped a malformed state: %s", exc)
            return
        if msg["type"] == "sensor":
            self._on_sensor(msg)
            return
        if msg["type"] != "state":
            self.stats["malformed_states"] += 1
            return
        self._last_rx = time.monotonic()
        if msg["session"] != self.session:
            # A restarted agent: accept its stream right away (sequence numbers start over) and re-hello so it
            # accepts our commands again.
            self.session = msg["session"]
            self._latest_key = None
            self._last_agent_seq = None
            self._rehello = True
        if self._last_agent_seq is not None and msg["seq"] > self._last_agent_seq + 1:
            self.stats["state_gaps"] += msg["seq"] - self._last_agent_seq - 1
        self._last_agent_seq = max(msg["seq"], self._last_agent_seq or 0)
        key = (msg["session"], msg["robot_seq"])
        if self._latest_key is not None and key[1] <= self._latest_key[1]:
            self.stats["old_states"] += 1
            return
        self._latest_key = key
        self.stats["states"] += 1
        status = dict(msg["status"])
        status.update(agent_seq=msg["seq"], agent_time=msg["t_send"], session=msg["session"])
        sensors = self._pending_sensors.pop(key, {})
        for stale in [k for k in self._pending_sensors if k[0] != key[0] or k[1] < key[1]]:
            del self._pending_sensors[stale]  # their state was lost (or belonged to an agent that restarted)
            self.stats["sensors_orphaned"] += 1
        self._latest = RobotObservation(
            seq=msg["robot_seq"], robot_time=msg["robot_time"], host_time=host_time, joint_q=msg["joint_q"],
            joint_qd=msg["joint_qd"], joint_effort=msg["joint_effort"], joint_q_desired=msg.get("joint_q_desired"),
            joint_q_goal=msg.get("joint_q_goal"), status=status, images=sensors.get("images") or None, point_clouds=sensors.get("point_clouds") or None,
        )
        self._inbox.append(self._latest)

    def _on_sensor(self, msg: dict) -> None:
        # A restarted agent's first frames come before the state that announces its session: dropped, like
        # frames of states already delivered.
        if msg["session"] != self.session or (self._latest_key is not None and msg["robot_seq"] <= self._latest_key[1]):
            self.stats["sensors_orphaned"] += 1
            return
        # Sensor frames share the state channel's sequence numbers: count them, or every frame looks like a gap.
        if self._last_agent_seq is not None and msg["seq"] > self._last_agent_seq + 1:
            self.stats["state_gaps"] += msg["seq"] - self._last_agent_seq - 1
        self._last_agent_seq = max(msg["seq"], self._last_agent_seq or 0)
        try:
            array = wire.sensor_array(msg)
        except wire.WireError as exc:
            self.stats["malformed_sensors"] += 1
            logger.debug("dropped a malformed sensor frame: %s", exc)
            return
        slot = self._pending_sensors.setdefault((msg["session"], msg["robot_seq"]), {"images": {}, "point_clouds": {}})
        slot["images" if msg["kind"] == "image" else "point_clouds"][msg["name"]] = array
        self.stats["sensors"] += 1
        while len(self._pending_sensors) > 8:
            self._pending_sensors.popitem(last=False)
            self.stats["sensors_orphaned"] += 1

    # ------------------------------------------------------------------ Robot API

    def get_observation(self) -> RobotObservation | None:
        return self._latest

    def poll_observations(self) -> list[RobotObservation]:
        """Every state accepted since the previous poll, in arrival order (the newest 20000)."""
        out = []
        while self._inbox:  # popleft, not list + clear: the receive thread may append in between
            out.append(self._inbox.popleft())
        return out

    def send_action(self, action: RobotAction) -> RobotAction:
        if not self.is_connected:
            raise VlatwinError(f"robot agent {self.address}: send_action before connect()")
        target = np.asarray(action.target_q, dtype=np.float64).reshape(-1)
        if self.joint_names and target.size != len(self.joint_names):
            raise VlatwinError(f"action has {target.size} joint targets, robot {self.robot_name!r} has {len(self.joint_names)}")
        t = self.clock.now()
        ttl = None
        if action.expires_at is not None:
            ttl = action.expires_at - (action.send_time or t)
        with self._cmd_lock:
            seq = max(int(action.seq), self._cmd_seq + 1)
            self._cmd_seq = seq
            sent = RobotAction(
                target_q=target.copy(), seq=seq, send_time=t, expires_at=None if ttl is None else t + ttl, apply_at=action.apply_at,
            )
            if ttl is not None and ttl <= 0:
                self.stats["expired_before_send"] += 1
                return sent
            extra = {} if action.apply_at is None else {"apply_at": float(action.apply_at)}
            prev = action.previous
            # The repeat names the previous command by the sequence number it went out with (this client may
            # have renumbered it).
            prev_wire_seq = self._wire_seq.get(None if prev is None else int(prev.seq))
            self._wire_seq = {int(action.seq): seq}
            if action.apply_at is not None and prev is not None and prev.apply_at is not None and prev_wire_seq is not None:
                prev_target = np.asarray(prev.target_q, dtype=np.float64).reshape(-1)
                prev_ttl = None if prev.expires_at is None else prev.expires_at - (action.send_time or t)
                if prev_target.size == target.size and (prev_ttl is None or prev_ttl > 0):
                    extra.update(prev_seq=prev_wire_seq, prev_target_q=prev_target, prev_apply_at=float(prev.apply_at))
                    if prev_ttl is not None:
                        extra["prev_ttl_s"] = float(prev_ttl)
            data = wire.encode(wire.message(
                "command", seq=seq, t_send=t, token=self.token, target_q=target, ttl_s=ttl, mode="joint_pos", **extra,
            ))
            try:
                self._push.send(data, self._zmq.NOBLOCK)
                self.stats["commands"] += 1
            except self._zmq.Again:
                self.stats["commands_dropped"] += 1
        return sent

    def sync_sample(self) -> tuple[float, float, float, float] | None:
        if not self.is_connected:
            return None
        # Short: a ping that takes longer than this is useless for clock sync anyway (min-delay filtering
        # keeps the fast ones), and the caller's control loop must not stall on a dead link.
        reply, t1, t4 = self._request("ping", min(self.timeout_s, self.sync_timeout_s))
        if reply is None or reply["type"] != "pong" or reply["t1"] != t1:
            return None
        return (t1, reply["t2"], reply["t3"], t4)

    def estop(self, reason: str = "requested") -> bool:
        """Latch the agent's (and driver's) stop; True when the agent acknowledged it."""
        return self._control("estop", reason)

    def reset_estop(self, reason: str = "requested") -> bool:
        """Clear the latched stop; True when the agent acknowledged it."""
        return self._control("reset_estop", reason)

    def _control(self, kind: str, reason: str) -> bool:
        if self._ctx is None:
            logger.error("robot agent %s: %s while disconnected", self.address, kind)
            return False
        reply, _, _ = self._request(kind, self.timeout_s, reason=reason)
        if reply is not None and reply["type"] == "ack" and reply["of"] == kind:
            return True
        detail = reply.get("message") if reply is not None else f"no answer within {self.timeout_s:g} s"
        logger.error("robot agent %s did not acknowledge %s: %s", self.address, kind, detail)
        return False

    @property
    def link_status(self) -> dict[str, Any]:
        """Counters of the link (states, gaps, malformed frames, reconnects ...) and whether it is up."""
        return {"link_up": self.link_up, "session": self.session, **self.stats}


__all__ = ["RemoteRobot"]
