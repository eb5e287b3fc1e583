"""``vlatwin agent`` + :class:`RemoteRobot` over real loopback sockets, with real agent processes."""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")
msgpack = pytest.importorskip("msgpack")

from vlatwin.errors import VlatwinError
from vlatwin.hardware import wire
from vlatwin.hardware.agent import RobotAgent
from vlatwin.hardware.base import RobotAction
from vlatwin.hardware.remote import RemoteRobot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]

TRACKER_SRC = textwrap.dedent(
    '''
    """A first-order joint tracker on the wall clock: a robot for agent tests (robot clock = host + 100 s)."""
    import time

    import numpy as np

    from vlatwin.hardware.base import Robot, RobotAction, RobotObservation


    class TrackerRobot(Robot):
        name = "tracker"

        def __init__(self, n=3, tau=0.03):
            self.joint_names = tuple(f"j{i}" for i in range(n))
            self.tau = tau
            self.q = np.zeros(n)
            self.qd = np.zeros(n)
            self.target = np.zeros(n)
            self.seq = 0
            self.t = None
            self.connected = False
            self.estopped = False
            self.applied = 0

        @property
        def is_connected(self):
            return self.connected

        def connect(self):
            self.connected = True
            self.t = time.monotonic()

        def disconnect(self):
            self.connected = False

        def get_observation(self):
            t = time.monotonic()
            dt, self.t = t - self.t, t
            new = self.q + (1.0 - np.exp(-dt / self.tau)) * (self.target - self.q)
            self.qd, self.q = (new - self.q) / max(dt, 1e-9), new
            self.seq += 1
            status = {"mode": "stopped" if self.estopped else "running", "applied": self.applied, "target0": float(self.target[0])}
            return RobotObservation(seq=self.seq, robot_time=t + 100.0, host_time=t, joint_q=self.q.copy(), joint_qd=self.qd.copy(), status=status)

        def send_action(self, action):
            if self.estopped:
                return RobotAction(target_q=self.target.copy(), seq=action.seq)
            self.target = np.asarray(action.target_q, dtype=float).copy()
            self.applied += 1
            return action

        def sync_sample(self):
            t = time.monotonic()
            return (t, t + 100.0, t + 100.0, t)

        def estop(self):
            self.estopped = True
            self.target = self.q.copy()

        def reset_estop(self):
            self.estopped = False


    def make():
        return TrackerRobot()
    '''
)


def _load_helpers():
    """tests/integration/tests_agent_helpers.py (tests/ is not on sys.path under --import-mode=importlib)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tests_agent_helpers", Path(__file__).with_name("tests_agent_helpers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _load_helpers()
_free_base_port, _start_agent, _stop = _helpers.free_base_port, _helpers.start_agent, _helpers.stop_agent


@pytest.fixture()
def tracker_file(tmp_path) -> Path:
    path = tmp_path / "tracker_driver.py"
    path.write_text(TRACKER_SRC)
    return path


def _wait(pred, timeout=5.0, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


def _command(seq: int, target, *, token=None, t_send=None, ttl=0.5, **overrides) -> dict:
    msg = {"v": 1, "type": "command", "seq": seq, "t_send": time.monotonic() if t_send is None else t_send,
           "target_q": [float(x) for x in target], "ttl_s": ttl, "mode": "joint_pos"}
    if token is not None:
        msg["token"] = token
    msg.update(overrides)
    return msg


def test_emulated_agent_streams_and_obeys():
    """`vlatwin agent --driver emulated`: hello, >= 200 states/s with increasing seq, a command moves the arm (through
    its interpolating servo, whose goal and ramp cross the wire), ping/pong."""
    base = _free_base_port()
    proc = _start_agent(["--driver", "emulated", "--config", "configs/tasks/reach_ball.yaml", "--bind", f"tcp://127.0.0.1:{base}",
                         "--emulate", "latency_ms=2&rate_hz=500&ramp_ms=50", "--rate", "500"])
    robot = RemoteRobot(f"tcp://127.0.0.1:{base}", timeout_s=2.0)
    try:
        robot.connect()
        assert len(robot.joint_names) == 9 and robot.name == "emulated"
        first = _wait(robot.get_observation)
        n0, t0 = robot.stats["states"], time.monotonic()
        seqs = []
        while time.monotonic() - t0 < 1.0:
            obs = robot.get_observation()
            if not seqs or obs.seq != seqs[-1]:
                seqs.append(obs.seq)
            time.sleep(0.002)
        rate = (robot.stats["states"] - n0) / (time.monotonic() - t0)
        assert rate >= 200, f"{rate:.0f} states/s"
        assert all(b > a for a, b in itertools.pairwise(seqs)) and seqs[0] >= first.seq
        q = robot.get_observation().joint_q.copy()
        target = q.copy()
        target[0] += 0.3
        # The open fingers sit at their 0.04 m limit and may read a few nm past it; the robot clips targets to its
        # limits, so a goal copied from that reading would come back clipped (seen once: 0.0400000066 -> 0.04).
        target[7:] = 0.035
        t = time.monotonic()
        sent = robot.send_action(RobotAction(target, send_time=t, expires_at=t + 2.0))
        assert sent.seq >= 1 and sent.expires_at - sent.send_time == pytest.approx(2.0)
        moved = _wait(lambda: abs(robot.get_observation().joint_q[0] - target[0]) < 0.05, timeout=5.0)
        assert moved, robot.get_observation().joint_q
        obs = robot.get_observation()
        np.testing.assert_allclose(obs.joint_q_goal, target, atol=1e-12)
        assert obs.status["servo_ramp_s"] == 0.05 and obs.status["target_ramp_s"] == 0.05
        sample = _wait(robot.sync_sample, timeout=3.0)
        t1, t2, t3, t4 = sample
        assert t1 <= t4 and t4 - t1 < 0.5 and t3 >= t2
        assert math.isfinite(((t2 - t1) + (t3 - t4)) / 2)
    finally:
        robot.disconnect()
        proc.send_signal(signal.SIGTERM)  # stops cleanly
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out


def test_agent_link_faults_and_restart(tracker_file):
    """Token, latest-value commands, malformed/stale frames dropped, SIGKILL + restart resumes the same RemoteRobot."""
    base = _free_base_port()
    address = f"tcp://127.0.0.1:{base}"
    args = ["--driver", f"{tracker_file}:make", "--bind", address, "--token", "s3cret", "--rate", "1000"]
    proc = _start_agent(args)
    robot = RemoteRobot(address, token="s3cret", timeout_s=0.5)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    try:
        # a wrong token is refused at the hello
        with pytest.raises(VlatwinError, match="refused"):
            RemoteRobot(address, token="wrong", timeout_s=1.0).connect()
        robot.connect()
        assert robot.joint_names == ("j0", "j1", "j2") and robot.name == "tracker"
        _wait(robot.get_observation)
        n0, t0 = robot.stats["states"], time.monotonic()
        time.sleep(1.0)
        assert (robot.stats["states"] - n0) / (time.monotonic() - t0) >= 200

        # ping/pong: the robot clock is the host clock + 100 s
        t1, t2, t3, t4 = _wait(robot.sync_sample, timeout=2.0)
        assert t1 <= t4 and t2 <= t3 and ((t2 - t1) + (t3 - t4)) / 2 == pytest.approx(100.0, abs=0.02)

        # latest value: a burst of commands ends with the last one applied
        now = time.monotonic()
        for i in range(1, 51):
            last = robot.send_action(RobotAction(np.full(3, 0.01 * i), send_time=now, expires_at=now + 1.0))
        assert _wait(lambda: robot.get_observation().status["agent_command_seq"] == last.seq)
        status = robot.get_observation().status
        assert status["target0"] == pytest.approx(0.5) and 1 <= status["applied"] <= 50

        # malformed and stale frames on the command port are dropped; the agent keeps serving
        push.connect(f"tcp://127.0.0.1:{base + 1}")
        seq = last.seq
        bad = [
            b"\xc1garbage",
            msgpack.packb(_command(seq + 1, [9, 9, 9], token="s3cret", v=2)),
            msgpack.packb(_command(seq + 2, [9, 9, float("nan")], token="s3cret")),
            msgpack.packb(_command(seq + 3, [9, 9], token="s3cret")),
            msgpack.packb(_command(seq + 4, [9, 9, 9], token="wrong")),
            msgpack.packb(_command(seq + 5, [9, 9, 9], token="s3cret", t_send=time.monotonic() - 5.0, ttl=0.1)),
            msgpack.packb(_command(seq - 10, [9, 9, 9], token="s3cret")),
        ]
        for frame in bad:
            push.send(frame)
            time.sleep(0.02)  # one at a time: the agent conflates
        time.sleep(0.1)
        status = robot.get_observation().status
        assert status["agent_command_seq"] == last.seq and status["target0"] == pytest.approx(0.5)
        dealer.connect(address)
        dealer.send(b"not msgpack")
        assert dealer.poll(2000)
        assert wire.decode(dealer.recv())["code"] == "malformed"
        seq0 = robot.stats["states"]
        time.sleep(0.2)
        assert robot.stats["states"] > seq0  # still streaming
        now = time.monotonic()
        good = robot.send_action(RobotAction(np.full(3, 0.7), send_time=now, expires_at=now + 1.0))
        assert _wait(lambda: robot.get_observation().status["agent_command_seq"] == good.seq)

        # e-stop latches on the agent: commands are refused until reset
        assert robot.estop()
        now = time.monotonic()
        refused = robot.send_action(RobotAction(np.full(3, -0.7), send_time=now, expires_at=now + 1.0))
        time.sleep(0.2)
        obs = robot.get_observation()
        assert obs.status["estop"] and obs.status["agent_command_seq"] < refused.seq
        assert robot.reset_estop()

        # SIGKILL mid-stream, restart on the same address: the same RemoteRobot resumes
        session = robot.session
        proc.kill()
        log = proc.communicate(timeout=10)[0]
        for reason in ("not valid msgpack", "TTL is 100.0 ms", "wrong or missing token", "not newer than", "e-stop is latched"):
            assert reason in log, log  # each drop was logged
        time.sleep(0.3)
        stale_seq = robot.get_observation().seq
        proc = _start_agent(args)
        assert _wait(lambda: robot.session != session and robot.get_observation().seq < stale_seq, timeout=10.0)
        assert _wait(lambda: not robot._rehello, timeout=5.0)  # the twin said hello to the new agent
        now = time.monotonic()
        again = robot.send_action(RobotAction(np.full(3, 0.2), send_time=now, expires_at=now + 1.0))
        assert _wait(lambda: robot.get_observation().status["agent_command_seq"] == again.seq, timeout=5.0)
    finally:
        push.close(0)
        dealer.close(0)
        ctx.term()
        robot.disconnect()
        _stop(proc)


def test_agent_refuses_public_bind_without_token(tracker_file):
    """A non-loopback bind without a token exits with a one-line error (CLI and class)."""
    result = subprocess.run(
        [sys.executable, "-m", "vlatwin.cli.main", "agent", "--driver", f"{tracker_file}:make", "--bind", "tcp://0.0.0.0:5999"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=dict(os.environ, VLATWIN_AGENT_TOKEN=""), check=False,
    )
    assert result.returncode == 2 and "without a token" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(VlatwinError, match="without a token"):
        RobotAgent(object(), bind="tcp://0.0.0.0:5999")  # type: ignore[arg-type]


@pytest.mark.parametrize(("flag", "value"), [("--sensor-hz", "-1"), ("--rate", "2000")])
def test_agent_refuses_bad_rates_before_loading_the_robot(tracker_file, flag, value):
    """A negative sensor rate or a state rate over 1 kHz: one line naming the flag, before the driver is made."""
    result = subprocess.run(
        [sys.executable, "-m", "vlatwin.cli.main", "agent", "--driver", f"{tracker_file}:make", flag, value],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2 and flag in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_remote_robot_cannot_reach():
    """Connecting to nothing fails within the timeout with a one-line hint to start the agent."""
    base = _free_base_port()
    t0 = time.monotonic()
    with pytest.raises(VlatwinError, match="start it with `vlatwin agent --driver"):
        RemoteRobot(f"tcp://127.0.0.1:{base}", timeout_s=0.3).connect()
    assert time.monotonic() - t0 < 2.0


class FakeSO101:
    """Follows LeRobot's Robot API exactly: '<motor>.pos' floats in degrees, gripper 0..100, clipping send_action."""

    name = "so101_follower"
    MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")

    def __init__(self, max_relative_target: float = 10.0):
        self.max_relative_target = max_relative_target
        self.present = {f"{m}.pos": 0.0 for m in self.MOTORS}
        self.present["gripper.pos"] = 50.0
        self._connected = False
        self.sent: list[dict] = []

    @property
    def observation_features(self) -> dict:
        return {**{f"{m}.pos": float for m in self.MOTORS}, "front": (4, 6, 3)}

    @property
    def action_features(self) -> dict:
        return {f"{m}.pos": float for m in self.MOTORS}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def get_observation(self) -> dict:
        return {**self.present, "front": np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)}

    def send_action(self, action: dict) -> dict:
        goal = {}
        for key, value in action.items():  # ensure_safe_goal_position
            cur = self.present[key]
            goal[key] = float(np.clip(value, cur - self.max_relative_target, cur + self.max_relative_target))
        self.present.update(goal)
        self.sent.append(goal)
        return goal

    def disconnect(self) -> None:
        self._connected = False


def test_lerobot_driver_behind_agent():
    """A LeRobot robot served by the agent: rad <-> degrees, gripper 0..100 <-> 0..1, clipped action reported back."""
    from vlatwin.hardware.drivers.lerobot import LeRobotDriver

    fake = FakeSO101()
    driver = LeRobotDriver(fake, gripper_range=(0.0, 1.0))
    assert driver.joint_names == FakeSO101.MOTORS
    applied = driver.__class__.send_action  # direct: the clip comes back in joint units
    driver.connect()
    back = applied(driver, RobotAction(np.array([np.deg2rad(30.0), 0, 0, 0, 0, 0.8])))
    assert np.rad2deg(back.target_q[0]) == pytest.approx(10.0) and back.target_q[5] == pytest.approx(0.6)
    assert fake.sent[-1]["gripper.pos"] == pytest.approx(60.0)
    obs = driver.get_observation()
    assert obs.joint_q[0] == pytest.approx(np.deg2rad(10.0)) and obs.joint_q[5] == pytest.approx(0.6)
    agent = RobotAgent(driver, bind="tcp://127.0.0.1:0", state_rate_hz=200)
    address = agent.start_thread()
    robot = RemoteRobot(address, timeout_s=2.0)
    try:
        robot.connect()
        assert robot.joint_names == FakeSO101.MOTORS
        target = np.array([np.deg2rad(15.0), 0, 0, 0, 0, 0.6])
        now = time.monotonic()
        robot.send_action(RobotAction(target, send_time=now, expires_at=now + 1.0))
        assert _wait(lambda: robot.get_observation() is not None and abs(robot.get_observation().joint_q[0] - np.deg2rad(15.0)) < 1e-9)
        assert fake.present["shoulder_pan.pos"] == pytest.approx(15.0)
        # Its camera frames come with the states (at the agent's sensor rate), exactly as the robot took them.
        framed = _wait(lambda: [o for o in robot.poll_observations() if o.images], timeout=3.0)
        assert framed and np.array_equal(framed[0].images["front"], fake.get_observation()["front"])
        assert robot.estop()
        assert _wait(lambda: robot.get_observation().status["estop"])
    finally:
        robot.disconnect()
        agent.stop()


def test_franky_driver_against_a_fake_module():
    """FrankyDriver's calls follow franky's documented API (a fake module; the real robot is untested here)."""
    from types import SimpleNamespace

    from vlatwin.hardware.drivers.franka import FrankyDriver

    calls = []

    class FakeRobot:
        def __init__(self, host):
            calls.append(("Robot", host))
            self.current_joint_state = SimpleNamespace(position=np.arange(7) * 0.1, velocity=np.zeros(7))
            self.state = SimpleNamespace(tau_J=np.ones(7))
            self.relative_dynamics_factor = 1.0

        def recover_from_errors(self):
            calls.append(("recover",))

        def move(self, motion, asynchronous=False):
            calls.append(("move", tuple(motion.q), asynchronous))

        def stop(self):
            calls.append(("stop",))

    class FakeGripper:
        def __init__(self, host):
            self.width = 0.08

        def move_async(self, width, speed):
            calls.append(("gripper", width, speed))

    fake = SimpleNamespace(Robot=FakeRobot, Gripper=FakeGripper, JointMotion=lambda q: SimpleNamespace(q=q))
    driver = FrankyDriver("172.16.0.2", franky_module=fake, dynamics_factor=0.2)
    driver.connect()
    assert driver._robot.relative_dynamics_factor == 0.2
    obs = driver.get_observation()
    assert obs.joint_q.shape == (9,) and obs.joint_q[7] == pytest.approx(0.04) and obs.joint_effort.shape == (9,)
    target = np.r_[np.zeros(7), 0.01, 0.01]
    driver.send_action(RobotAction(target, seq=1))
    assert ("move", tuple([0.0] * 7), True) in calls and ("gripper", pytest.approx(0.02), 0.05) in calls
    driver.estop()
    assert calls[-1] == ("stop",)
    held = driver.send_action(RobotAction(np.ones(9), seq=2))
    assert np.allclose(held.target_q, target)


class _SensorRobot:
    """A robot whose every 5th state carries two camera frames and a LIDAR cloud (random: nothing compresses them)."""

    name = "sensors"
    joint_names = ("j0", "j1")

    def __init__(self):
        from vlatwin.hardware.base import RobotObservation

        self._obs_type = RobotObservation
        self.rng = np.random.default_rng(3)
        self.seq = 0
        self.sent: dict[int, tuple[dict, dict]] = {}
        self.connected = False

    is_connected = property(lambda self: self.connected)

    def connect(self):
        self.connected = True

    def disconnect(self):
        self.connected = False

    def get_observation(self):
        self.seq += 1
        images = clouds = None
        if self.seq % 5 == 0:
            images = {"front": self.rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),
                      "wrist": self.rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)}
            clouds = {"os1": self.rng.normal(size=(3000, 3)).astype(np.float32)}
            self.sent[self.seq] = (images, clouds)
        t = time.monotonic()
        return self._obs_type(seq=self.seq, robot_time=t, host_time=t, joint_q=np.zeros(2), joint_qd=np.zeros(2),
                              images=images, point_clouds=clouds)

    def send_action(self, action):
        return action

    def sync_sample(self):
        return None

    def estop(self):
        pass

    def reset_estop(self):
        pass


def test_camera_frames_and_clouds_travel_with_their_state():
    """Sensor frames cross the agent bit-exact, attached to the state of their instant (never to another), thinned to
    the agent's sensor rate, without counting as gaps in the state stream; the 100 kB frames do not stop the states."""
    driver = _SensorRobot()
    agent = RobotAgent(driver, bind="tcp://127.0.0.1:0", state_rate_hz=200, sensor_hz=20)
    address = agent.start_thread()
    robot = RemoteRobot(address, timeout_s=2.0)
    received = []
    try:
        robot.connect()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            received += robot.poll_observations()
            time.sleep(0.01)
    finally:
        robot.disconnect()
        agent.stop()
    with_frames = [obs for obs in received if obs.images or obs.point_clouds]
    assert len(received) > 150, len(received)
    span = received[-1].robot_time - received[0].robot_time
    rate = len(with_frames) / span
    assert 12.0 <= rate <= 21.0, rate  # 40 Hz offered, 20 Hz allowed
    for obs in with_frames:
        images, clouds = driver.sent[obs.seq]
        assert set(obs.images) == {"front", "wrist"} and set(obs.point_clouds) == {"os1"}
        assert all(np.array_equal(obs.images[k], images[k]) for k in images)
        assert obs.point_clouds["os1"].dtype == np.float32 and np.array_equal(obs.point_clouds["os1"], clouds["os1"])
    assert robot.stats["state_gaps"] == 0 and robot.stats["malformed_states"] == 0 and robot.stats["malformed_sensors"] == 0
    assert agent.stats["sensors_skipped"] > 0 and agent.stats["sensors_sent"] >= 3 * len(with_frames)


def test_agent_holds_a_scheduled_command_until_its_robot_time():
    """``apply_at`` through a real agent (in-process, LeRobot driver): the driver gets the command at its robot
    time, not on arrival; one whose time has passed goes at once and counts late; an e-stop drops held ones."""
    from vlatwin.hardware.drivers.lerobot import LeRobotDriver

    fake = FakeSO101(max_relative_target=90.0)
    arrivals: list[tuple[float, dict]] = []
    send = fake.send_action
    fake.send_action = lambda action: (arrivals.append((time.monotonic(), dict(action))), send(action))[1]
    driver = LeRobotDriver(fake, gripper_range=(0.0, 1.0))
    agent = RobotAgent(driver, bind="tcp://127.0.0.1:0", state_rate_hz=200)
    robot = RemoteRobot(agent.start_thread(), timeout_s=2.0)
    try:
        robot.connect()
        obs = _wait(robot.get_observation)
        # The driver's clock is the agent's here: robot time now = the newest state's robot time + its age.
        robot_now = lambda: obs.robot_time + (time.monotonic() - obs.host_time)  # noqa: E731
        target = np.array([np.deg2rad(20.0), 0, 0, 0, 0, 0.5])
        t_send = time.monotonic()
        robot.send_action(RobotAction(target, send_time=t_send, expires_at=t_send + 2.0, apply_at=robot_now() + 0.4))
        time.sleep(0.2)
        assert arrivals == [] and agent.stats["commands_scheduled"] == 1
        assert _wait(lambda: arrivals, timeout=2.0)
        assert arrivals[0][0] - t_send == pytest.approx(0.4, abs=0.05)
        assert fake.present["shoulder_pan.pos"] == pytest.approx(20.0)
        late = np.array([np.deg2rad(25.0), 0, 0, 0, 0, 0.5])
        t_send = time.monotonic()
        robot.send_action(RobotAction(late, send_time=t_send, expires_at=t_send + 2.0, apply_at=robot_now() - 0.5))
        assert _wait(lambda: len(arrivals) == 2, timeout=2.0) and arrivals[1][0] - t_send < 0.1
        assert agent.stats["commands_late"] == 1
        assert _wait(lambda: robot.get_observation().status.get("commands_late") == 1)  # the twin hears of it
        # Command 100's own packet is lost; 101 repeats it: both reach the driver, each at its time, and 100
        # arriving late after all is a silent duplicate.
        ctx = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(f"tcp://127.0.0.1:{agent.ports['command']}")
        try:
            t_send, base = time.monotonic(), robot_now()
            lost = [np.deg2rad(30.0), 0, 0, 0, 0, 0.5]
            push.send(msgpack.packb(_command(101, [np.deg2rad(35.0), 0, 0, 0, 0, 0.5], apply_at=base + 0.4, prev_seq=100,
                                             prev_target_q=lost, prev_apply_at=base + 0.3, prev_ttl_s=1.0)))
            assert _wait(lambda: len(arrivals) == 4, timeout=2.0)
            assert [round(a["shoulder_pan.pos"]) for _, a in arrivals[2:]] == [30, 35]
            assert arrivals[2][0] - t_send == pytest.approx(0.3, abs=0.05) and arrivals[3][0] - t_send == pytest.approx(0.4, abs=0.05)
            push.send(msgpack.packb(_command(100, lost, apply_at=base + 0.3)))
            assert _wait(lambda: agent.stats["commands_duplicate"] == 1, timeout=1.0)
            assert agent.stats["commands_recovered"] == 1 and len(arrivals) == 4
            assert _wait(lambda: robot.get_observation().status.get("commands_recovered") == 1)
        finally:
            push.close(0)
            ctx.term()
        del arrivals[2:]
        t_send = time.monotonic()
        robot.send_action(RobotAction(target, seq=200, send_time=t_send, expires_at=t_send + 2.0, apply_at=robot_now() + 0.3))
        assert _wait(lambda: agent.stats["commands_scheduled"] == 4, timeout=1.0)
        assert robot.estop()
        time.sleep(0.5)
        # The driver's own e-stop holds the present position (35 deg); the held 20 deg command never goes out.
        assert [a["shoulder_pan.pos"] for _, a in arrivals[2:]] == [pytest.approx(35.0)]
        assert agent.stats["commands_dropped_by_estop"] == 1
    finally:
        robot.disconnect()
        agent.stop()
