"""``vlatwin serve`` and the openpi / OpenVLA REST clients, over real loopback sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("websockets")
pytest.importorskip("msgpack")

from vlatwin.errors import VlatwinError
from vlatwin.loop.control_loop import Observation
from vlatwin.policy.base import Policy, PolicyInfo
from vlatwin.policy.openpi import OpenpiClient, OpenpiPolicy
from vlatwin.policy.openvla_rest import OpenVLARestClient, OpenVLARestPolicy
from vlatwin.policy.serve import PolicyServer
from vlatwin.policy.wire.msgpack_numpy import packb, unpackb
from vlatwin.sim.types import SimState

pytestmark = pytest.mark.timeout(120)


class Deterministic(Policy):
    """Actions that depend on every part of the observation (state, image, time, prompt)."""

    info = PolicyInfo(name="det", action_space="ee_delta_pose", chunk_size=4, action_dim=7, gripper_convention="open_0_1")

    def __init__(self, horizon: int = 4) -> None:
        self.horizon = horizon
        self.resets: list = []

    def reset(self, episode: int | None = None) -> None:
        self.resets.append(episode)

    def act(self, observation):
        s = observation.state
        x = s.joint_q.sum() * 0.37 + s.body_pose_w.sum() * 0.11 + s.body_vel_w.sum() * 0.05 + observation.time
        img = sum(float(v["rgb"].astype(np.float64).mean()) for v in observation.sensors.values())
        x += len(observation.instruction or "") + img
        return np.sin(np.arange(self.horizon * 7, dtype=np.float64).reshape(self.horizon, 7) * 0.013 * x + x)


class Failing(Deterministic):
    def act(self, observation):
        raise RuntimeError("model exploded\nsecond line of detail")


class Slow(Deterministic):
    def act(self, observation):
        time.sleep(2.0)
        return super().act(observation)


def _observation(seed: int = 0, size=(48, 64)) -> Observation:
    rng = np.random.default_rng(seed)
    state = SimState(
        time=0.5 + seed, step=100 + seed, joint_q=rng.normal(size=9), joint_qd=rng.normal(size=9),
        body_pose_w=rng.normal(size=(12, 7)), body_vel_w=rng.normal(size=(12, 6)), joint_effort=rng.normal(size=9),
    )
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    return Observation(time=0.5 + seed, step=seed, state=state, sensors={"front": {"rgb": rgb}}, instruction="pick the cube")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(url: str, **kwargs):
    """A plain websockets sync connection (no proxy; no deprecation warning on websockets 17)."""
    from vlatwin.policy.openpi import _connect_extras
    from websockets.sync.client import connect as ws_connect

    return ws_connect(url, **kwargs, **_connect_extras(ws_connect))


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# ----------------------------------------------------------------------------------------- openpi
def test_round_trip_is_bit_identical_and_resets():
    """Actions over serve + OpenpiPolicy equal calling the policy directly, bit for bit; metadata is adopted."""
    policy = Deterministic()
    with PolicyServer(policy, port=0) as server:
        remote = OpenpiPolicy(OpenpiClient("127.0.0.1", server.port))
        try:
            assert remote.info.action_space == "ee_delta_pose" and remote.info.chunk_size == 4
            assert remote.info.gripper_convention == "open_0_1"
            remote.reset(episode=7)
            for seed in range(5):
                obs = _observation(seed)
                chunk = remote.act(obs)
                assert np.array_equal(chunk.actions, Deterministic().act(obs))
                assert chunk.timing["round_trip_ms"] > 0 and "infer_ms" in chunk.timing
        finally:
            remote.close()
    assert policy.resets == [None, 7]  # the connection, then the episode reset


def test_foreign_layout_passes_images_and_state_through():
    """layout=lerobot (observation.images.<cam>, observation.state, task) reaches a served policy best effort."""

    class Echo(Deterministic):
        def act(self, observation):
            img = observation.sensors["front"]["rgb"]
            return np.r_[observation.state.joint_q[:6], float(img.mean())][None, :]

    obs = _observation(2)
    with PolicyServer(Echo(), port=0) as server:
        remote = OpenpiPolicy(OpenpiClient("127.0.0.1", server.port), layout="lerobot", cameras=("front",))
        try:
            actions = remote.act(obs).actions
        finally:
            remote.close()
    want = np.r_[obs.state.joint_q[:6].astype(np.float32), obs.sensors["front"]["rgb"].mean()]
    np.testing.assert_allclose(actions[0], want, rtol=1e-6)


def test_metadata_is_the_first_frame():
    """A raw websocket client receives packb(metadata) before sending anything."""
    with PolicyServer(Deterministic(), port=0) as server, connect(f"ws://127.0.0.1:{server.port}", compression=None) as ws:
        first = ws.recv(timeout=5)
        assert isinstance(first, bytes)
        meta = unpackb(first)
        assert meta["vlatwin"]["name"] == "det" and meta["vlatwin/protocol"] == 1
        ws.send(packb({"observation/image": np.zeros((8, 8, 3), np.uint8), "observation/state": np.zeros(8), "prompt": "x"}))
        reply = unpackb(ws.recv(timeout=5))
        assert reply["actions"].shape == (4, 7) and reply["actions"].dtype == np.float64
        assert set(reply["server_timing"]) == {"infer_ms"} and "infer_ms" in reply["policy_timing"]
        ws.send(packb({"observation/state": np.zeros(8)}))
        assert "prev_total_ms" in unpackb(ws.recv(timeout=5))["server_timing"]


def test_healthz():
    """GET /healthz answers 200 OK on both protocols (without an API key)."""
    for protocol in ("openpi", "openvla"):
        with PolicyServer(Deterministic(), port=0, protocol=protocol, api_key="k") as server:
            assert _get(f"http://127.0.0.1:{server.port}/healthz") == (200, "OK\n")


def test_api_key_required():
    """With an API key the handshake needs 'Authorization: Api-Key KEY'; otherwise HTTP 401 and a one-line error."""
    from websockets.exceptions import InvalidStatus

    with PolicyServer(Deterministic(), port=0, api_key="s3cret") as server:
        with pytest.raises(InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{server.port}")
        assert info.value.response.status_code == 401
        with pytest.raises(VlatwinError, match="requires an API key"):
            OpenpiClient("127.0.0.1", server.port)
        with pytest.raises(VlatwinError, match="refused the API key"):
            OpenpiClient("127.0.0.1", server.port, api_key="wrong")
        with OpenpiClient("127.0.0.1", server.port, api_key="s3cret") as client:
            assert client.metadata["vlatwin"]["name"] == "det"


class Counter(Deterministic):
    """Stateful: returns how often it was called since its last reset."""

    closed = 0

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def reset(self, episode=None) -> None:
        self.calls = 0

    def act(self, observation):
        self.calls += 1
        return np.full((1, 7), float(self.calls))

    def close(self) -> None:
        Counter.closed += 1


def test_per_connection_policies_keep_their_own_state():
    """With policy_factory, two interleaved clients each see their own policy instance (closed on disconnect)."""
    Counter.closed = 0
    with PolicyServer(Counter(), port=0, policy_factory=Counter) as server:
        a = OpenpiPolicy(OpenpiClient("127.0.0.1", server.port))
        b = OpenpiPolicy(OpenpiClient("127.0.0.1", server.port))
        obs = _observation()
        assert [a.act(obs).actions[0, 0], b.act(obs).actions[0, 0], a.act(obs).actions[0, 0]] == [1.0, 1.0, 2.0]
        a.reset(episode=1)
        assert a.act(obs).actions[0, 0] == 1.0 and b.act(obs).actions[0, 0] == 2.0
        a.close()
        b.close()
        deadline = time.monotonic() + 5
        while Counter.closed < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert Counter.closed == 2


def test_non_loopback_needs_api_key():
    """Binding 0.0.0.0 without a key is refused."""
    with pytest.raises(VlatwinError, match="without an API key"):
        PolicyServer(Deterministic(), host="0.0.0.0", port=0)


def test_policy_exception_text_frame_and_1011():
    """A policy exception: one-line text frame, close 1011; the client raises one line; the server keeps serving."""
    from websockets.exceptions import ConnectionClosed

    with PolicyServer(Failing(), port=0) as server:
        with connect(f"ws://127.0.0.1:{server.port}", compression=None) as ws:
            ws.recv(timeout=5)
            ws.send(packb({"observation/state": np.zeros(3)}))
            text = ws.recv(timeout=5)
            assert text == "policy error: RuntimeError: model exploded"
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=5)
            assert info.value.rcvd.code == 1011
        client = OpenpiClient("127.0.0.1", server.port)
        with pytest.raises(VlatwinError) as err:
            OpenpiPolicy(client).act(_observation())
        assert "\n" not in str(err.value) and "model exploded" in str(err.value)
        assert server.stats["policy_errors"] == 2
        assert _get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200


def test_server_down_one_line_error_after_retries():
    """Nobody listening: a one-line error after the retries, quickly."""
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(VlatwinError) as info:
        OpenpiClient("127.0.0.1", port, retries=3, backoff=0.05, connect_timeout=1.0)
    assert time.monotonic() - t0 < 5.0
    msg = str(info.value)
    assert msg.startswith(f"cannot reach openpi server at ws://127.0.0.1:{port} after 3 tries: connection refused")
    assert "vlatwin serve" in msg and "\n" not in msg


def test_slow_server_request_timeout():
    """A reply slower than the request timeout is a one-line timeout error; the next call reconnects."""
    with PolicyServer(Slow(), port=0) as server:
        client = OpenpiClient("127.0.0.1", server.port, request_timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(VlatwinError, match=r"did not answer within 0.3 s"):
            OpenpiPolicy(client).act(_observation())
        assert time.monotonic() - t0 < 1.5
        client.close()


def test_wrong_shape_and_nan_actions_are_rejected():
    """Replies with the wrong action dims or NaN raise a one-line error naming the problem."""

    class Bad(Deterministic):
        def __init__(self, actions):
            super().__init__()
            self.actions = actions

        def act(self, observation):
            return self.actions

    for actions, pattern in (
        (np.zeros((3, 5)), r"shape \[3, 5\].*7 dims"),
        (np.array([[0.0] * 6 + [np.nan]]), r"non-finite action \(nan at step 0, dim 6\)"),
    ):
        with PolicyServer(Bad(actions), port=0) as server:
            remote = OpenpiPolicy(OpenpiClient("127.0.0.1", server.port))
            with pytest.raises(VlatwinError, match=pattern):
                remote.act(_observation())
            remote.close()


def _fuzz_frames(n: int, rng) -> list:
    good = packb({"observation/image": np.zeros((4, 4, 3), np.uint8), "observation/state": np.arange(8.0), "prompt": "x"})
    vlatwin_good = packb(__import__("vlatwin.policy.wire.observation", fromlist=["x"]).observation_to_wire(_observation(0, (8, 8))))
    fixed = [
        b"", b"\xc1", good[:-3], vlatwin_good[: len(vlatwin_good) // 2], b"\x91" * 50_000 + b"\xc0",
        packb(1), packb([1, 2, 3]), packb("a string"), packb(None), packb({"vlatwin/layout": 1}),
        packb({"vlatwin/layout": 1, "vlatwin/time": "x"}), packb({"vlatwin/reset": "x"}),
        __import__("msgpack").packb({b"__ndarray__": True, b"data": b"", b"dtype": "<f8", b"shape": [2**40, 2**40]}),
        __import__("msgpack").packb({b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "|O", b"shape": [1]}),
        __import__("msgpack").packb(__import__("msgpack").ExtType(1, b"x")),
        b"\xdd\xff\xff\xff\xff", "a text frame", "",
    ]
    frames = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            frames.append(fixed[(i // 4) % len(fixed)])
        elif kind == 1:
            frames.append(rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes())
        elif kind == 2:
            src = bytearray(vlatwin_good if i % 8 == 2 else good)
            for _ in range(int(rng.integers(1, 6))):
                src[int(rng.integers(0, len(src)))] = int(rng.integers(0, 256))
            frames.append(bytes(src))
        else:
            src = vlatwin_good if i % 8 == 3 else good
            frames.append(src[: int(rng.integers(0, len(src)))])
    return frames


class Robust(Deterministic):
    """Answers any observation (the fuzz must not trip the policy itself)."""

    def act(self, observation):
        return np.full((1, 7), 0.5)


def test_fuzz_10000_frames_then_a_good_request_works():
    """10,000 malformed/truncated/random frames on one connection: each answered (error text or actions), in order;
    oversized frames close only their connection; the server then serves a good request."""
    from websockets.exceptions import ConnectionClosed

    rng = np.random.default_rng(123)
    frames = _fuzz_frames(10_000, rng)
    t0 = time.monotonic()
    with PolicyServer(Robust(), port=0, max_size=1 << 20) as server:
        url = f"ws://127.0.0.1:{server.port}"
        errors = answers = 0
        with connect(url, compression=None, max_size=None) as ws:
            ws.recv(timeout=5)
            for frame in frames:
                ws.send(frame)
                reply = ws.recv(timeout=5)
                if isinstance(reply, str):
                    assert reply.startswith("bad request: ") and "\n" not in reply
                    errors += 1
                else:
                    out = unpackb(reply)
                    assert "actions" in out or "vlatwin/reset" in out
                    answers += 1
        assert errors + answers == 10_000 and errors > 8_000
        with connect(url, compression=None, max_size=None) as ws:  # over max_size: 1009 on that connection
            ws.recv(timeout=5)
            ws.send(b"\x00" * (2 << 20))
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=5)
            assert info.value.rcvd.code == 1009
        for _ in range(20):  # half-open connections that never finish the handshake
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + os.urandom(64))
            s.close()
        remote = OpenpiPolicy(OpenpiClient("127.0.0.1", server.port))
        np.testing.assert_array_equal(remote.act(_observation()).actions, np.full((1, 7), 0.5))
        remote.close()
        assert server.stats["bad_requests"] == errors
    assert time.monotonic() - t0 < 60


# ---------------------------------------------------------------------------------------- openvla
def test_openvla_rest_round_trip():
    """POST /act with a json-numpy image: the served policy's first action comes back as a (1, 7) chunk (both encodings)."""
    policy = Deterministic(horizon=1)
    with PolicyServer(policy, port=0, protocol="openvla", camera="front") as server:
        for encoded in (False, True):
            remote = OpenVLARestPolicy(OpenVLARestClient(f"http://127.0.0.1:{server.port}"), camera="front", encoded=encoded)
            assert remote.remote_is_vlatwin and remote.info.gripper_convention == "open_0_1"
            assert remote.info.action_space == "ee_delta_pose" and remote.info.controller_options == {"rotation": "rpy"}
            remote.reset(episode=2)
            obs = _observation(3)
            chunk = remote.act(obs)
            image = remote.image(obs)
            assert image.shape == (224, 224, 3)
            served = Observation(time=0.0, step=0, state=SimState(time=0.0, step=0, joint_q=np.zeros(0), joint_qd=np.zeros(0),
                                 body_pose_w=np.zeros((0, 7)), body_vel_w=np.zeros((0, 6))),
                                 sensors={"front": {"rgb": image}}, instruction=obs.instruction)
            assert chunk.actions.shape == (1, 7)
            assert np.array_equal(chunk.actions, Deterministic(1).act(served))
    assert policy.resets == [2, 2]


def test_openvla_deploy_error_string_and_down():
    """deploy.py's 200 "error" reply and a server that is down are one-line errors."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'"error"'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        remote = OpenVLARestPolicy(OpenVLARestClient(f"http://127.0.0.1:{httpd.server_address[1]}"), camera="front")
        assert not remote.remote_is_vlatwin
        with pytest.raises(VlatwinError, match="reported an error"):
            remote.act(_observation())
    finally:
        httpd.shutdown()
        httpd.server_close()
    port = _free_port()
    with pytest.raises(VlatwinError, match=rf"cannot reach OpenVLA server at http://127.0.0.1:{port} after 2 tries: connection refused"):
        OpenVLARestPolicy(OpenVLARestClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.05), camera="front")


def _raw_http(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                part = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not part:
                break
            chunks.append(part)
        return b"".join(chunks)


def test_openvla_fuzz_malformed_http_and_json():
    """Malformed HTTP and JSON get 4xx JSON errors (never a dead server); a good request then works."""
    from vlatwin.policy.wire.json_numpy import dumps

    rng = np.random.default_rng(7)
    bodies = [
        b"", b"{", b"[]", b"null", b'"x"', b'{"image": 1, "instruction": "x"}', b'{"instruction": "x"}',
        dumps({"image": np.zeros((4, 4), np.uint8), "instruction": "x"}).encode(),
        dumps({"image": np.zeros((4, 4, 3), np.float32), "instruction": "x"}).encode(),
        dumps({"image": np.zeros((4, 4, 3), np.uint8), "instruction": 5}).encode(),
        dumps({"image": np.zeros((4, 4, 3), np.uint8), "instruction": "x", "unnorm_key": 3}).encode(),
        b'{"image": {"__numpy__": "!!", "dtype": "|u1", "shape": [1, 1, 3]}, "instruction": "x"}',
        b'{"image": {"__numpy__": "", "dtype": "|u1", "shape": [100000, 100000, 3]}, "instruction": "x"}',
        b'{"encoded": 5}', b'{"encoded": "{", "x": 1}', b"[" * 50_000, b"\xff\xfe\x00garbage",
    ]
    with PolicyServer(Robust(), port=0, protocol="openvla", max_size=1 << 20) as server:
        port = server.port
        statuses = []
        for i in range(600):
            kind = i % 3
            if kind == 0:
                body = bodies[(i // 3) % len(bodies)]
                req = b"POST /act HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            elif kind == 1:
                body = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
                req = b"POST /act HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            else:
                req = [
                    b"GARBAGE\r\n\r\n", b"POST /act HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /act HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", b"POST /act HTTP/1.1\r\n\r\n",
                    b"POST /nope HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"GET /nope HTTP/1.1\r\n\r\n",
                    b"PUT /act HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"POST /act HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
                    os.urandom(100), b"\r\n\r\n",
                ][(i // 3) % 10]
            reply = _raw_http(port, req)
            if reply.startswith(b"HTTP/1."):
                statuses.append(int(reply.split(b" ", 2)[1]))
        assert statuses and all(400 <= s < 500 for s in statuses), sorted(set(statuses))
        remote = OpenVLARestPolicy(OpenVLARestClient(f"http://127.0.0.1:{port}"), camera="front")
        np.testing.assert_array_equal(remote.act(_observation()).actions, np.full((1, 7), 0.5))


# ------------------------------------------------------------------------------------------------ CLI
POLICY_FILE = '''
import numpy as np
from vlatwin.policy.base import Policy, PolicyInfo

class Const(Policy):
    info = PolicyInfo(name="const", action_space="ee_delta_pose")
    def act(self, observation):
        return np.zeros(7)

def make(context):
    return Const()
'''


def _cli(*args, env=None):
    return [sys.executable, "-m", "vlatwin.cli.main", *args]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_serve_starts_answers_and_stops_on_signal(tmp_path, sig):
    """`vlatwin serve` prints its URL, answers healthz and an openpi client, and exits 0 on SIGINT / SIGTERM."""
    factory = tmp_path / "pol.py"
    factory.write_text(POLICY_FILE)
    env = {k: v for k, v in os.environ.items() if k != "VLATWIN_API_KEY"}
    proc = subprocess.Popen(
        _cli("serve", "--policy", f"{factory}:make", "--port", "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving const over openpi on ws://127.0.0.1:") and "(Ctrl-C stops)" in line, line + proc.stderr.read()
        port = int(line.split("ws://127.0.0.1:")[1].split()[0])
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, "OK\n")
        remote = OpenpiPolicy(OpenpiClient("127.0.0.1", port))
        assert remote.act(_observation()).actions.shape == (1, 7)
        remote.close()
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serve_refuses_public_host_without_key(tmp_path):
    """`--host 0.0.0.0` without a key: exit 2 with one line."""
    env = {k: v for k, v in os.environ.items() if k != "VLATWIN_API_KEY"}
    out = subprocess.run(_cli("serve", "--policy", "random", "--host", "0.0.0.0"), capture_output=True, text=True, timeout=60, env=env, check=False)
    assert out.returncode == 2
    assert out.stderr.startswith("error: refusing to serve on 0.0.0.0 without an API key") and out.stderr.count("\n") == 1


def test_spec_strings_build_clients():
    """openpi://HOST:PORT?... and openvla://... go through the policy factory; unknown options are refused."""
    from vlatwin.policy.factory import PolicyContext, make_policy_from_spec

    with PolicyServer(Deterministic(), port=0) as server:
        policy = make_policy_from_spec(f"openpi://127.0.0.1:{server.port}?timeout=5&chunk=2", PolicyContext())
        assert policy.act(_observation()).actions.shape == (2, 7)
        policy.close()
        with pytest.raises(VlatwinError, match="unknown option 'bogus'"):
            make_policy_from_spec(f"ws://127.0.0.1:{server.port}?bogus=1", PolicyContext())
    with PolicyServer(Deterministic(horizon=1), port=0, protocol="openvla", camera="front") as server:
        policy = make_policy_from_spec(f"openvla://127.0.0.1:{server.port}?camera=front&unnorm_key=bridge_orig", PolicyContext())
        assert policy.act(_observation()).actions.shape == (1, 7)
