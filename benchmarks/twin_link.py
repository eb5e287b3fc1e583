"""The robot link's added latency: the state stream at 1 kHz through ``vlatwin agent`` vs a raw ZMQ PUB/SUB.

Both senders run in their own process on loopback and stamp each message with ``time.monotonic()`` (one
clock for every process on a Linux host), so one-way latency is measured directly:

* **agent**: a :class:`RobotAgent` at ``rate_hz`` over a driver that samples its state on demand
  (``robot_time`` = the monotonic time the reading was stamped, just before the driver hands it over: what the
  agent adds is the status, validation, msgpack and the send); received by :class:`RemoteRobot`, which stamps the
  host time as the frame comes off the socket (its decode, validation and bookkeeping follow).
  Latency = host receive time - ``robot_time``.
* **raw**: a bare PUB sending frames of the same byte length at the same rate (the stamp in the first 8
  bytes), received by a bare SUB. Latency = receive time - stamp.

``run()`` returns p50/p99 [ms] of both, and ``p99_ratio`` = agent p99 / raw p99 (goal: <= 2). On a shared
2-core VM the tails are dominated by OS scheduling, so run it on an idle machine for numbers to quote.

    python benchmarks/twin_link.py --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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
            # A driver's reading exists before it is stamped (a real one stamps the packet it just received), so
            # the arrays are made first: the clock starts when the observation is the agent's to send.
            phase = time.monotonic() + np.arange(7.0)
            q, qd = np.sin(phase), np.cos(phase)
            self.seq += 1
            t = time.monotonic()
            return RobotObservation(seq=self.seq, robot_time=t, host_time=t, joint_q=q, joint_qd=qd, status={"mode": "running"})
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


class _Paused:
    """Holds a sender process stopped (SIGSTOP) outside its rounds, so each path is timed with the other idle."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.pause()

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        self.resume()
        self.proc.terminate()
        self.proc.wait(10)


def _sample_state_bytes() -> bytes:
    from vlatwin.hardware import wire

    t = time.monotonic()
    return wire.encode(
        wire.message("state", seq=123456, t_send=t, robot_seq=123456, robot_time=t, joint_q=np.sin(t + np.arange(7.0)),
                     joint_qd=np.cos(t + np.arange(7.0)), status={"mode": "running", "estop": False, "last_command_seq": -1},
                     session=1234567890)
    )


def run(n: int = 2000, rate_hz: float = 1000.0, rounds: int = 8) -> dict:
    """Added latency of the state stream through the agent vs raw ZMQ PUB/SUB of equal-size frames (ms).

    Both senders start once; the paths then take turns (``rounds`` rounds, the order flipped every round, n /
    rounds states each) with the other sender stopped, so a noisy neighbour on a shared machine hits both
    alike instead of whichever path happened to run during it."""
    import zmq

    from vlatwin.hardware.remote import RemoteRobot

    class Recording(RemoteRobot):
        lat: list[float]

        def _on_state(self, raw, host_time):
            super()._on_state(raw, host_time)
            obs = self._latest
            if obs is not None and obs.host_time == host_time:
                self.lat.append(host_time - obs.robot_time)

    size = len(_sample_state_bytes())
    per_round = max(1, -(-n // rounds))
    settle_s = 0.05  # after a resume: let a frame queued before the pause go by
    deadline_s = 10.0 + 3.0 * per_round / rate_hz
    address = f"tcp://127.0.0.1:{_free_base_port()}"
    agent = _Paused(_spawn(AGENT_SRC, address, str(rate_hz)))
    raw_port = _free_port()
    raw = _Paused(_spawn(RAW_SRC, f"tcp://127.0.0.1:{raw_port}", str(size), str(rate_hz)))
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://127.0.0.1:{raw_port}")
    robot = Recording(address, timeout_s=30.0)  # longer than a paused round: no re-hello in the middle
    robot.lat = []
    lat: dict[str, list[float]] = {"agent": [], "raw": []}
    ratios: list[float] = []

    def agent_round() -> list[float]:
        agent.resume()
        try:
            time.sleep(settle_s)
            robot.lat.clear()
            end = time.monotonic() + deadline_s
            while len(robot.lat) < per_round and time.monotonic() < end:
                time.sleep(0.01)
            return list(robot.lat[:per_round])
        finally:
            agent.pause()

    def raw_round() -> list[float]:
        raw.resume()
        try:
            time.sleep(settle_s)
            while sub.poll(0):
                sub.recv()
            got: list[float] = []
            end = time.monotonic() + deadline_s
            while len(got) < per_round and time.monotonic() < end:
                if sub.poll(100):
                    frame = sub.recv()
                    got.append(time.monotonic() - struct.unpack_from("<d", frame)[0])
            return got
        finally:
            raw.pause()

    try:
        agent.resume()  # connect needs the agent's welcome
        robot.connect()
        time.sleep(0.2)  # let the SUBs join
        agent.pause()
        for r in range(rounds):
            got = {}
            for name in (("agent", "raw") if r % 2 == 0 else ("raw", "agent")):
                got[name] = agent_round() if name == "agent" else raw_round()
                lat[name] += got[name]
            if got["agent"] and got["raw"]:
                ratios.append(float(np.percentile(got["agent"], 99) / max(np.percentile(got["raw"], 99), 1e-9)))
    finally:
        robot.disconnect()
        sub.close(0)
        ctx.term()
        agent.close()
        raw.close()
    agent_stats, raw_stats = _stats(lat["agent"]), _stats(lat["raw"])
    return {
        "rate_hz": rate_hz, "frame_bytes": size, "rounds": rounds, "agent": agent_stats, "raw": raw_stats,
        "p99_ratio": agent_stats["p99_ms"] / raw_stats["p99_ms"] if raw_stats["p99_ms"] > 0 else float("inf"),
        "p99_ratio_per_round": {"min": min(ratios), "median": float(np.median(ratios)), "max": max(ratios)} if ratios else None,
        "p50_added_ms": agent_stats["p50_ms"] - raw_stats["p50_ms"], "goal_p99_ratio": 2.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="states measured per path (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=1000.0, help="stream rate [Hz] (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=8, help="turns each path takes, alternating (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or not 0 < args.rate <= 1000:
        parser.error("--n and --rounds must be >= 1 and --rate in (0, 1000] Hz (the agent's limit)")
    print(json.dumps(run(args.n, args.rate, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
