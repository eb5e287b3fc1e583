"""Reading a robot's applied targets back from a run log (``vlatwin.sysid.data.recording_from_runlog``)."""

import numpy as np

from vlatwin.sysid.data import recording_from_runlog
from vlatwin.twin.runlog import RunLog


def _state(t, q, desired, target_time):
    return {"robot_time": t, "joint_q": q, "joint_qd": [0.0, 0.0], "joint_q_desired": desired,
            "status": {"target_time": target_time}}


def test_a_command_that_lands_at_the_first_state_replaces_the_pose_held_before(tmp_path):
    """The state sampled at the instant the first command lands reports that command's target_time with the pose
    the servo held before it; every later state reports the command. The fit must replay the command from that
    time (it replayed the old pose for one control period: a gripper closing at t = 0 then moved 50 ms late, and
    the twin missed its fingers by 12 mm at the truth)."""
    path = tmp_path / "run.mcap"
    dt = 1.0 / 600
    with RunLog(path, metadata={"joint_names": ["arm", "finger"], "physics_dt": dt}) as log:
        log.log("/robot/state", 0.0, _state(0.0, [0.1, 0.04], [0.1, 0.04], 0.0))  # before the command
        for k in range(1, 30):  # the command (finger to 0.02) took effect at t = 0
            log.log("/robot/state", k * dt, _state(k * dt, [0.1, 0.04 - 0.0005 * k], [0.1, 0.02], 0.0))
        for k in range(30, 60):  # the next one at 30 dt
            log.log("/robot/state", k * dt, _state(k * dt, [0.1, 0.025], [0.2, 0.02], 30 * dt))
    rec = recording_from_runlog(path)
    assert rec.input_source == "robot"
    np.testing.assert_allclose(rec.target_t, [0.0, 30 * dt])
    np.testing.assert_allclose(rec.target_q, [[0.1, 0.02], [0.2, 0.02]])
    np.testing.assert_allclose(rec.target_at(0.5 * dt), [0.1, 0.02])
