"""Robots from outside: a referenced USD asset and a URDF imported by Newton."""

import numpy as np
import pytest

from vlatwin.config.loader import config_from_dict
from vlatwin.sim.newton import SimBackendNewton
from vlatwin.sim.types import JointCommand
from vlatwin.usd.scene_builder import write_scene
from vlatwin.utils.transforms import quat_wxyz_to_matrix, rot_z


def test_referenced_usd_robot_is_welded_where_placed(tmp_path, repo_root):
    """A robot referenced from usd_assets/panda.usda stands at the configured pose and tracks targets."""
    cfg = config_from_dict(
        {"scene": {"robot": {"source": "usd", "path": "usd_assets/panda.usda", "position": [0.1, -0.2, 0.75], "yaw_deg": 30}}},
        base_dir=repo_root,
    )
    stage = write_scene(cfg.scene, tmp_path / "ref.usda")
    sim = SimBackendNewton(device="cpu")
    info = sim.load(stage)
    assert info.articulation_root == "/World/Robot"
    state = sim.get_state()
    base = state.body_pose_w[info.body_index("/World/Robot/panda_link0")]
    np.testing.assert_allclose(base[:3], [0.1, -0.2, 0.75], atol=1e-5)
    np.testing.assert_allclose(quat_wxyz_to_matrix(base[3:]), rot_z(np.deg2rad(30)), atol=1e-5)
    target = state.joint_q.copy()
    target[:7] += [0.3, 0.2, -0.2, 0.3, 0.2, -0.3, 0.2]
    sim.step(JointCommand(target_q=target), num_steps=1200)
    final = sim.get_state()
    assert np.abs(final.joint_q - target)[:7].max() < 1e-2
    base_after = final.body_pose_w[info.body_index("/World/Robot/panda_link0")]
    np.testing.assert_allclose(base_after[:3], base[:3], atol=1e-3)


@pytest.mark.parametrize(("source", "file_name"), [("urdf", "two_link_arm.urdf"), ("mjcf", "two_link_arm.xml")])
def test_urdf_mjcf_robot_imports_and_tracks(tmp_path, repo_root, source, file_name):
    """A URDF/MJCF robot is imported by Newton at the placeholder's pose; its joints follow targets."""
    robot_file = repo_root / "tests" / "data" / file_name
    cfg = config_from_dict({"scene": {"robot": {"source": source, "path": str(robot_file), "position": [0.2, 0.0, 0.75]}}})
    stage = write_scene(cfg.scene, tmp_path / f"{source}.usda")
    sim = SimBackendNewton(device="cpu")
    info = sim.load(stage)
    assert [n.rsplit("/", 1)[-1] for n in info.joint_names] == ["shoulder", "elbow"]
    np.testing.assert_allclose(info.joint_lower, [-1.5, -2.0])
    state = sim.get_state()
    np.testing.assert_allclose(state.body_pose_w[0, :3], [0.2, 0.0, 0.75], atol=1e-6)
    target = np.array([0.4, -0.6])
    sim.step(JointCommand(target_q=target), num_steps=1200)
    assert np.abs(sim.get_state().joint_q - target).max() < 1e-2


def test_broken_urdf_is_one_line_error(tmp_path):
    """A URDF that is not XML fails with the file named, no traceback."""
    from vlatwin.errors import StageError

    bad = tmp_path / "bad.urdf"
    bad.write_text("<robot name='x'><link name='a'>")
    cfg = config_from_dict({"scene": {"robot": {"source": "urdf", "path": str(bad)}}})
    stage = write_scene(cfg.scene, tmp_path / "bad.usda")
    with pytest.raises(StageError, match="bad.urdf: Newton could not import this URDF file") as info:
        SimBackendNewton(device="cpu").load(stage)
    assert "\n" not in str(info.value)
