"""The loop's clock: sensor samples happen at their scheduled physics steps, physics is only stepped by
the loop, control decimation is exact, and rates that do not divide are refused. A small clock-only
simulator stands in for an engine here (the integration tests run the same loop on Newton)."""

import numpy as np
import pytest

from vlatwin.errors import VlatwinError
from vlatwin.loop import capture
from vlatwin.loop.control_loop import ControlLoop
from vlatwin.sensors.base import Sensor
from vlatwin.sim.types import JointCommand, SimState


class ClockSim:
    """Counts physics steps and remembers every advance; joint_q integrates towards the target."""

    physics_dt = 1.0 / 600.0

    def __init__(self):
        self.current_step = 0
        self.advances = []
        self.target = np.zeros(1)
        self.q = np.zeros(1)
        self.refits = []

    def reset(self, *, seed=None):
        self.current_step, self.q, self.target = 0, np.zeros(1), np.zeros(1)
        return self.get_state()

    def advance(self, n):
        assert n > 0
        self.advances.append(n)
        self.current_step += n
        self.q = self.q + 0.5 * (self.target - self.q)

    def set_command(self, command: JointCommand):
        self.target = np.asarray(command.target_q, dtype=float)

    def get_state(self):
        return SimState(time=self.current_step * self.physics_dt, step=self.current_step, joint_q=self.q.copy(),
                        joint_qd=np.zeros(1), body_pose_w=np.zeros((0, 7)), body_vel_w=np.zeros((0, 6)))

    def refit_render_scene(self):
        self.refits.append(self.current_step)


class Probe(Sensor):
    """Records the physics step of every sample; returns them as its data."""

    def __init__(self, name, offsets, duration=None, rate_hz=None, sim=None):
        self.name, self._offsets, self._duration, self.rate_hz, self.sim = name, tuple(offsets), duration, rate_hz, sim
        self.log = []

    def schedule(self, physics_dt, index=0):
        return self._offsets

    def duration_steps(self, physics_dt, index=0):
        return self._duration if self._duration is not None else self._offsets[-1]

    def begin(self, context):
        self.log.append(("begin", context.start_step))
        self._steps = []

    def sample(self, k):
        self._steps.append(self.sim.current_step)

    def finish(self):
        self.log.append(("finish", self.sim.current_step))
        return list(self._steps)


def test_capture_steps_physics_to_each_sample_and_to_the_end_of_the_span():
    sim = ClockSim()
    sim.current_step = 100
    camera = Probe("cam", [0, 4, 8], sim=sim)
    lidar = Probe("lidar", [2, 10, 18], duration=60, sim=sim)
    data = capture(sim, [camera, lidar], refit=sim.refit_render_scene)
    assert data == {"cam": [100, 104, 108], "lidar": [102, 110, 118]}
    assert sim.current_step == 160  # the full lidar span
    assert sum(sim.advances) == 60
    assert sim.refits == [100, 102, 104, 108, 110, 118]  # once per step with samples
    # begin right before a sensor's first sample, finish right after its last one
    assert camera.log == [("begin", 100), ("finish", 108)] and lidar.log == [("begin", 100), ("finish", 118)]


def test_schedule_must_be_non_decreasing():
    sim = ClockSim()
    with pytest.raises(ValueError, match="non-decreasing"):
        capture(sim, [Probe("bad", [5, 2], sim=sim)])


def test_control_loop_decimation_rates_and_hooks():
    sim = ClockSim()
    camera = Probe("cam", [0], sim=sim)  # every control step
    slow = Probe("slow", [0, 30], duration=60, rate_hz=5.0, sim=sim)  # every 4th control step, spans 0.1 s
    seen = []

    class Policy:
        def reset(self):
            self.calls = 0

        def act(self, obs):
            self.calls += 1
            return np.array([[1.0], [2.0]])  # a chunk of two actions, executed open loop

    def gate(action, obs):
        return np.minimum(action, 1.5), (["clipped"] if action[0] > 1.5 else [])

    policy = Policy()
    loop = ControlLoop(sim, control_hz=20.0, sensors=[camera, slow], policy=policy, safety=gate, recorders=[seen.append])
    assert loop.decimation == 30
    steps = loop.run(8, seed=1)
    assert sim.current_step == 8 * 30
    assert policy.calls == 4  # one call per 2-action chunk
    assert [s.raw_action[0] for s in steps] == [1.0, 2.0] * 4
    assert [s.action[0] for s in steps] == [1.0, 1.5] * 4
    assert [bool(s.events) for s in steps] == [False, True] * 4
    assert len(seen) == 8 and seen[0] is steps[0]
    # The slow sensor started at control steps 0, 4, 8 and finished 30 physics steps later.
    assert [e for e in slow.log if e[0] == "begin"] == [("begin", 0), ("begin", 120), ("begin", 240)]
    assert ("finish", 30) in slow.log and ("finish", 150) in slow.log
    # Its data reaches the observation at the first control step after it finished, with its start time.
    assert "slow" not in steps[0].observation.sensors
    assert steps[1].observation.sensors["slow"] == [0, 30]
    assert steps[1].observation.sensor_times["slow"] == 0.0
    assert steps[5].observation.sensors["slow"] == [120, 150]
    assert all(s.observation.sensors["cam"] == [s.observation.state.step] for s in steps)


def test_rates_that_do_not_divide_are_refused():
    with pytest.raises(VlatwinError, match="whole steps"):
        ControlLoop(ClockSim(), control_hz=7.0)
    with pytest.raises(VlatwinError, match="must divide"):
        ControlLoop(ClockSim(), control_hz=20.0, sensors=[Probe("s", [0], rate_hz=3.0)])


def test_same_seed_same_run():
    def run():
        sim = ClockSim()
        loop = ControlLoop(sim, control_hz=60.0)
        obs = loop.reset(seed=3)
        out = []
        rng = np.random.default_rng(3)
        for _ in range(10):
            record, obs = loop.step(obs, rng.uniform(-1, 1, 1))
            out.append(record.next_state.joint_q.copy())
        return np.array(out)

    np.testing.assert_array_equal(run(), run())


def test_a_busy_sensor_is_not_restarted():
    """A 0.1 s scan due at every 20 Hz control step: the next scan starts only after the last one finished,
    so no two captures of one sensor ever overlap (their buffers would mix)."""
    sim = ClockSim()
    lidar = Probe("lidar", [0, 20, 40, 59], duration=60, sim=sim)  # due every control step (no rate)
    loop = ControlLoop(sim, control_hz=20.0, sensors=[lidar])
    loop.run(8, seed=0)
    begins = [step for kind, step in lidar.log if kind == "begin"]
    finishes = [step for kind, step in lidar.log if kind == "finish"]
    assert begins == [0, 60, 120, 180, 240] and finishes == [59, 119, 179, 239]
    assert all(b > f for b, f in zip(begins[1:], finishes))


def test_policies_are_reset_with_their_episode():
    """Seeded policies get the episode (work item) index, so an episode rerun alone draws the same actions."""
    from vlatwin.loop.control_loop import reset_policy

    seen = []

    class Seeded:
        def reset(self, episode=None):
            seen.append(episode)

    class Plain:
        def reset(self):
            seen.append("plain")

    reset_policy(Seeded(), 7)
    reset_policy(Plain(), 7)
    sim = ClockSim()
    policy = Seeded()
    policy.act = lambda obs: np.zeros(1)
    ControlLoop(sim, control_hz=60.0, policy=policy).reset(seed=0, episode=5)
    assert seen == [7, "plain", 5]
