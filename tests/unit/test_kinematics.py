"""The built-in arm follows the Franka Panda's published DH kinematics and limits."""

import numpy as np
import pytest

from vlatwin.robots import get_builtin_robot
from vlatwin.robots.panda import PANDA_FLANGE_D, PANDA_HOME, PANDA_LIMITS, panda_flange_pose


@pytest.fixture(scope="module")
def panda():
    return get_builtin_robot("panda")


def test_flange_at_zero_pose():
    """At q = 0 the flange sits at (a7, 0, d1 + d3 + d5 - d_F) and points down."""
    tf = panda_flange_pose(np.zeros(7))
    np.testing.assert_allclose(tf[:3, 3], [0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107], atol=1e-9)
    np.testing.assert_allclose(tf[:3, 2], [0.0, 0.0, -1.0], atol=1e-9)


def test_flange_at_ready_pose():
    """The usual ready pose puts the flange at ~(0.307, 0, 0.590) m pointing down (Franka's well-known value)."""
    tf = panda_flange_pose(np.array(PANDA_HOME))
    np.testing.assert_allclose(tf[:3, 3], [0.3069, 0.0, 0.5903], atol=5e-4)
    np.testing.assert_allclose(tf[:3, 2], [0.0, 0.0, -1.0], atol=1e-9)


def test_description_matches_dh_chain(panda):
    """The joint-tree FK used for USD authoring equals the direct DH product at random poses."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        q_arm = np.array([rng.uniform(lo, hi) for lo, hi in PANDA_LIMITS])
        q = np.concatenate([q_arm, [0.02, 0.02]])
        frames = panda.forward_kinematics(q)
        flange = frames["panda_link7"] @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, PANDA_FLANGE_D], [0, 0, 0, 1]])
        np.testing.assert_allclose(flange, panda_flange_pose(q_arm), atol=1e-9)


def test_joint_limits_and_gripper(panda):
    """Seven revolute joints with the spec limits, two prismatic fingers opening 0..40 mm."""
    revolute = [j for j in panda.joints if j.kind == "revolute"]
    prismatic = [j for j in panda.joints if j.kind == "prismatic"]
    assert [(j.lower, j.upper) for j in revolute] == list(PANDA_LIMITS)
    assert len(prismatic) == 2 and all((j.lower, j.upper) == (0.0, 0.04) for j in prismatic)
    for j in panda.joints:
        assert j.lower <= j.home <= j.upper


def test_fingers_open_symmetrically(panda):
    """Opening both fingers by d moves them 2d apart along the hand's Y axis."""
    q = np.concatenate([np.array(PANDA_HOME), [0.0, 0.0]])
    closed = panda.forward_kinematics(q)
    q[7:] = 0.03
    opened = panda.forward_kinematics(q)
    gap_closed = np.linalg.norm(closed["panda_leftfinger"][:3, 3] - closed["panda_rightfinger"][:3, 3])
    gap_open = np.linalg.norm(opened["panda_leftfinger"][:3, 3] - opened["panda_rightfinger"][:3, 3])
    assert gap_closed == pytest.approx(0.0, abs=1e-9)
    assert gap_open == pytest.approx(0.06, abs=1e-9)


def test_with_home_rejects_unknown_joint(panda):
    """Overriding the home pose of a joint that does not exist names the known joints."""
    with pytest.raises(KeyError, match="panda_joint1"):
        panda.with_home({"elbow": 0.1})
