"""Policy round trip over ``vlatwin serve`` (openpi protocol) against a raw websocket echo of the same bytes.

Served: :class:`~vlatwin.policy.openpi.OpenpiPolicy` ``.act(observation)`` with one 224x224x3 uint8 camera
frame and a 9-joint state (vlatwin wire layout, msgpack) -> :class:`~vlatwin.policy.serve.PolicyServer` ->
a trivial policy -> a (1, 7) action chunk back. Echo: a bare ``websockets`` server that sends each binary
frame back, fed the very bytes the served client sends. Both servers share one child process (as
``vlatwin serve`` runs in its own); loopback, one run, the two kinds interleaved in blocks of 20.
Goal: served rate >= 0.8x the echo rate. Prints p50/p99 latency [ms] and the rate ratio; speed is never
asserted in tests (this machine is shared and noisy: compare numbers of one run).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Self

import numpy as np


class _Trivial:
    """Returns a constant (1, 7) action; the benchmark measures the wire, not a model."""

    def __init__(self) -> None:
        from vlatwin.policy.base import PolicyInfo

        self.info = PolicyInfo(name="trivial", action_space="ee_delta_pose", action_dim=7)
        self._action = np.zeros((1, 7))

    def reset(self, episode=None) -> None:
        pass

    def act(self, observation):
        return self._action


def _observation():
    from vlatwin.loop.control_loop import Observation
    from vlatwin.sim.types import SimState

    rng = np.random.default_rng(0)
    q = rng.normal(size=9)
    state = SimState(time=0.0, step=0, joint_q=q, joint_qd=np.zeros(9), body_pose_w=np.zeros((0, 7)), body_vel_w=np.zeros((0, 6)))
    rgb = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    return Observation(time=0.0, step=0, state=state, sensors={"cam": {"rgb": rgb}}, instruction="pick up the red cube")


class _EchoServer:
    """A bare websockets server that returns every frame (in a background thread)."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from websockets.asyncio.server import serve

        async def echo(ws) -> None:
            async for message in ws:
                await ws.send(message)

        async def run() -> None:
            self._stop = asyncio.Event()
            async with serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
                self.port = next(iter(server.sockets)).getsockname()[1]
                self._ready.set()
                await self._stop.wait()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(run())
        self._loop.close()

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _stats(times_s: list[float]) -> dict:
    ms = np.asarray(times_s) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "rate_hz": float(len(ms) / (ms.sum() / 1000.0))}


def _serve_both() -> None:
    """Child process: the PolicyServer and the echo server, ports on stdout, until stdin closes."""
    import sys

    from vlatwin.policy.serve import PolicyServer

    with PolicyServer(_Trivial(), port=0) as server, _EchoServer() as echo:
        print(server.port, echo.port, flush=True)
        sys.stdin.read()


def run_round_trip(n: int = 200, warmup: int = 20) -> dict:
    """Measure both round trips ``n`` times each (after ``warmup``), interleaved in blocks to share the noise.

    Both servers run in one child process (as ``vlatwin serve`` would: its own interpreter and GIL); the
    clients run here.

    Returns:
        ``{"served", "echo", "served_plain", "echo_plain": {p50_ms, p99_ms, rate_hz}, "ratio": served rate /
        echo rate (vlatwin layout via OpenpiPolicy.act), "ratio_plain": the same for a plain openpi-style dict via
        OpenpiClient.infer, "frame_bytes", "plain_frame_bytes", "n"}``.
    """
    import subprocess
    import sys

    from vlatwin.policy.openpi import OpenpiClient, OpenpiPolicy, _connect_extras
    from vlatwin.policy.wire.msgpack_numpy import packb
    from vlatwin.policy.wire.observation import observation_to_wire
    from websockets.sync.client import connect

    obs = _observation()
    frame = packb(observation_to_wire(obs))
    plain = {"observation/image": obs.sensors["cam"]["rgb"], "observation/state": obs.state.joint_q.astype(np.float32), "prompt": obs.instruction}
    plain_frame = packb(plain)
    times: dict[str, list[float]] = {"served": [], "echo": [], "served_plain": [], "echo_plain": []}
    child = subprocess.Popen([sys.executable, __file__, "--serve-both"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        served_port, echo_port = (int(p) for p in child.stdout.readline().split())
        policy = OpenpiPolicy(OpenpiClient("127.0.0.1", served_port))
        ws = connect(f"ws://127.0.0.1:{echo_port}", compression=None, max_size=None, **_connect_extras(connect))
        try:
            calls = {
                "served": lambda: policy.act(obs),
                "echo": lambda: (ws.send(frame), ws.recv()),
                "served_plain": lambda: policy.client.infer(plain),
                "echo_plain": lambda: (ws.send(plain_frame), ws.recv()),
            }
            for call in calls.values():
                for _ in range(warmup):
                    call()
            block = 20
            for start in range(0, n, block):
                for key, call in calls.items():
                    for _ in range(min(block, n - start)):
                        t0 = time.perf_counter()
                        call()
                        times[key].append(time.perf_counter() - t0)
        finally:
            ws.close()
            policy.close()
    finally:
        child.stdin.close()
        child.wait(15)
    out: dict = {key: _stats(t) for key, t in times.items()}
    out["ratio"] = out["served"]["rate_hz"] / out["echo"]["rate_hz"]
    out["ratio_plain"] = out["served_plain"]["rate_hz"] / out["echo_plain"]["rate_hz"]
    out.update(frame_bytes=len(frame), plain_frame_bytes=len(plain_frame), n=n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="round trips of each kind (default: %(default)s)")
    parser.add_argument("--serve-both", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_both:
        _serve_both()
        return
    r = run_round_trip(args.n)
    print(f"n={r['n']} each; vlatwin layout frame {r['frame_bytes']} B (224x224x3 uint8 + whole 9-joint SimState), "
          f"plain openpi-style frame {r['plain_frame_bytes']} B (image + 9 float32 + prompt)")
    for key, label in (("served", "OpenpiPolicy.act, vlatwin layout"), ("echo", "echo of those bytes"),
                       ("served_plain", "OpenpiClient.infer, plain dict"), ("echo_plain", "echo of those bytes")):
        s = r[key]
        print(f"{label:>34}: p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms  {s['rate_hz']:.0f} round trips/s")
    for key, label in (("ratio", "vlatwin layout"), ("ratio_plain", "plain dict")):
        verdict = "meets" if r[key] >= 0.8 else "misses"
        print(f"served / echo rate, {label}: {r[key]:.2f}x ({verdict} the >= 0.8x goal)")


if __name__ == "__main__":
    main()
