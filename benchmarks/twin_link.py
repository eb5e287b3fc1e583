"""The robot link's added latency: the state stream at 1 kHz through ``vlatwin agent`` vs a raw ZMQ PUB/SUB.

Both senders run in their own process on loopback and stamp each message with ``time.monotonic()`` (one
clock for every process on a Linux host), so one-way latency is measured directly:

* **agent**: a :class:`RobotAgent` at ``rate_hz`` over a driver that samples its state on demand
  (``robot_time`` = the monotonic time it was read); received by :class:`RemoteRobot` (decode, validation,
  newest-state bookkeeping included). Latency = host receive time - ``robot_time``.
* **raw**: a bare PUB sending frames of the same byte length at the same rate (the stamp in the first 8
  bytes), received by a bare SUB. Latency = receive time - stamp.

``run()`` returns p50/p99 [ms] of both, and ``p99_ratio`` = agent p99 / raw p99 (goal: <= 2). On a shared
2-core VM the tails are dominated by OS scheduling, so run it on an idle machine for numbers to quote.

    python benchmarks/twin_link.py --n 2000
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np

AGENT_SRC = textwrap.dedent(
    """
    import signal, sys, time
    import numpy as np
    from vlatwin.hardware.agent import RobotAgent
    from vlatwin.hardware.base import Robot, RobotObservation

    class Sampled(Robot):
        name = "bench"
        joint_names = tuple(f"j{i}" for i in range(7))
        def __init__(self):
            self.seq = 0
            self.up = False
        @property
        def is_connected(self):
            return self.up
        def connect(self):
            self.up = True
        def disconnect(self):
            self.up = False
        def get_observation(self):
            t = time.monotonic()
            self.seq += 1
            q = np.sin(t + np.arange(7.0))
            return RobotObservation(seq=self.seq, robot_time=t, host_time=t, joint_q=q, joint_qd=np.cos(t + np.arange(7.0)),
                                    status={"mode": "running"})
        def send_action(self, action):
            return action
        def sync_sample(self):
            t = time.monotonic()
            return (t, t, t, t)

    agent = RobotAgent(Sampled(), bind=sys.argv[1], state_rate_hz=float(sys.argv[2]))
    signal.signal(signal.SIGTERM, lambda *a: agent.stop())
    agent.bind()
    print("ready", flush=True)
    agent.serve_forever()
    """
)

RAW_SRC = textwrap.dedent(
    """
    import signal, struct, sys, time
    import zmq
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 64)
    pub.bind(sys.argv[1])
    size, period = int(sys.argv[2]), 1.0 / float(sys.argv[3])
    pad = bytes(size - 8)
    running = [True]
    signal.signal(signal.SIGTERM, lambda *a: running.__setitem__(0, False))
    print("ready", flush=True)
    nxt = time.monotonic()
    while running[0]:
        now = time.monotonic()
        if now >= nxt:
            pub.send(struct.pack("<d", time.monotonic()) + pad)
            nxt += period
            if nxt < now:
                nxt = now + period
        rest = nxt - time.monotonic()
        if rest > 0:
            time.sleep(rest)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_base_port() -> int:
    """A port P with P, P+1, P+2 free (the agent's control, command and state ports)."""
    for _ in range(50):
        base = _free_port()
        if base > 65000:
            continue
        socks = [socket.socket() for _ in range(3)]
        try:
            for offset, sock in enumerate(socks):
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no three consecutive free ports")


def _spawn(src: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", src, *args], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"benchmark sender failed to start: {line!r}")
    return proc


def _stats(lat_s: list[float]) -> dict[str, float]:
    ms = np.asarray(lat_s) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "count": int(ms.size)}


def _agent_latencies(n: int, rate_hz: float) -> tuple[list[float], int]:
    from vlatwin.hardware.remote import RemoteRobot

    class Recording(RemoteRobot):
        lat: list[float]

        def _on_state(self, raw, host_time):
            super()._on_state(raw, host_time)
            obs = self._latest
            if obs is not None and obs.host_time == host_time:
                self.lat.append(host_time - obs.robot_time)

    address = f"tcp://127.0.0.1:{_free_base_port()}"
    proc = _spawn(AGENT_SRC, address, str(rate_hz))
    try:
        robot = Recording(address, timeout_s=5.0)
        robot.lat = []
        robot.connect()
        try:
            time.sleep(0.2)  # let the SUB join
            robot.lat.clear()
            deadline = time.monotonic() + 10.0 + 3.0 * n / rate_hz
            while len(robot.lat) < n and time.monotonic() < deadline:
                time.sleep(0.05)
            size = len(_sample_state_bytes())
            return list(robot.lat[:n]), size
        finally:
            robot.disconnect()
    finally:
        proc.terminate()
        proc.wait(10)


def _sample_state_bytes() -> bytes:
    from vlatwin.hardware import wire

    t = time.monotonic()
    return wire.encode(
        wire.message("state", seq=123456, t_send=t, robot_seq=123456, robot_time=t, joint_q=np.sin(t + np.arange(7.0)),
                     joint_qd=np.cos(t + np.arange(7.0)), status={"mode": "running", "estop": False, "last_command_seq": -1},
                     session=1234567890)
    )


def _raw_latencies(n: int, rate_hz: float, size: int) -> list[float]:
    import zmq

    port = _free_port()
    proc = _spawn(RAW_SRC, f"tcp://127.0.0.1:{port}", str(size), str(rate_hz))
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://127.0.0.1:{port}")
    lat: list[float] = []
    try:
        time.sleep(0.2)
        while sub.poll(0):
            sub.recv()
        deadline = time.monotonic() + 10.0 + 3.0 * n / rate_hz
        while len(lat) < n and time.monotonic() < deadline:
            if sub.poll(100):
                raw = sub.recv()
                lat.append(time.monotonic() - struct.unpack_from("<d", raw)[0])
        return lat
    finally:
        sub.close(0)
        ctx.term()
        proc.terminate()
        proc.wait(10)


def run(n: int = 2000, rate_hz: float = 1000.0) -> dict:
    """Added latency of the state stream through the agent vs raw ZMQ PUB/SUB of equal-size frames (ms)."""
    agent_lat, size = _agent_latencies(n, rate_hz)
    raw_lat = _raw_latencies(n, rate_hz, size)
    agent, raw = _stats(agent_lat), _stats(raw_lat)
    return {
        "rate_hz": rate_hz, "frame_bytes": size, "agent": agent, "raw": raw,
        "p99_ratio": agent["p99_ms"] / raw["p99_ms"] if raw["p99_ms"] > 0 else float("inf"),
        "p50_added_ms": agent["p50_ms"] - raw["p50_ms"], "goal_p99_ratio": 2.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="states measured per path (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=1000.0, help="stream rate [Hz] (default: %(default)s)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.n, args.rate), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
