"""Observation adapters (numpy + PIL only): keys, shapes and dtypes per model family, image geometry, TCP state."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from vlatwin.control.kinematics import KinematicChain
from vlatwin.errors import VlatwinError
from vlatwin.loop.control_loop import Observation
from vlatwin.policy.expert import PANDA_TCP
from vlatwin.policy.factory import PolicyContext
from vlatwin.policy.observation import (
    TCPState,
    flip180,
    layout_inputs,
    prompt_from_template,
    resize_with_pad,
)
from vlatwin.robots import get_builtin_robot
from vlatwin.sim.types import SimModelInfo, SimState
from vlatwin.utils.transforms import quat_wxyz_to_matrix

Q_ARM = np.array([0.1, -0.4, 0.2, -2.1, 0.05, 1.8, 0.7])
FINGERS = np.array([0.03, 0.01])  # opening of each finger [m]: closure = 1 - 0.02 / 0.04 = 0.5


def _panda():
    robot = get_builtin_robot("panda")
    chain = KinematicChain.from_description(robot, "panda_link7", PANDA_TCP)
    # Scene order puts the fingers first, to prove joints are matched by name, not position.
    joints = [j for j in robot.joints if "finger" in j.name] + [j for j in robot.joints if "finger" not in j.name]
    info = SimModelInfo(
        stage_path="mem", physics_dt=0.002,
        joint_names=tuple(f"/World/Robot/{j.parent}/{j.name}" for j in joints),
        joint_lower=np.array([j.lower for j in joints]), joint_upper=np.array([j.upper for j in joints]),
        body_paths=("/World/Robot/panda_link0",),
    )
    return chain, info


def _observation(info, cams=("front", "wrist"), size=(48, 64), instruction="Pick up the red cube"):
    q = np.concatenate([FINGERS, Q_ARM])
    state = SimState(time=0.0, step=0, joint_q=q, joint_qd=np.zeros_like(q), body_pose_w=np.zeros((1, 7)), body_vel_w=np.zeros((1, 6)))
    rng = np.random.default_rng(0)
    sensors = {c: {"rgb": rng.integers(0, 255, size=(*size, 4), dtype=np.uint8)} for c in cams}
    return Observation(time=0.0, step=0, state=state, sensors=sensors, instruction=instruction)


@pytest.fixture(scope="module")
def scene():
    chain, info = _panda()
    return chain, info, PolicyContext(chain=chain, info=info, cameras=("front", "wrist"))


def test_libero_layout(scene):
    chain, info, ctx = scene
    obs = _observation(info)
    out = layout_inputs("libero", obs, context=ctx, prompt_template="{instruction}.")
    assert set(out) == {"observation/image", "observation/wrist_image", "observation/state", "prompt"}
    for key in ("observation/image", "observation/wrist_image"):
        assert out[key].shape == (224, 224, 3) and out[key].dtype == np.uint8
    assert out["observation/state"].shape == (8,) and out["observation/state"].dtype == np.float32
    tcp = chain.fk(Q_ARM)
    np.testing.assert_allclose(out["observation/state"][:3], tcp[:3, 3], atol=1e-6)
    np.testing.assert_allclose(out["observation/state"][6:], FINGERS, atol=1e-7)
    assert out["prompt"] == "Pick up the red cube."


def test_droid_layout(scene):
    _, info, ctx = scene
    out = layout_inputs("droid", _observation(info), cameras=("wrist", "front"), context=ctx, image_size=(180, 320))
    assert set(out) == {"observation/exterior_image_1_left", "observation/wrist_image_left", "observation/joint_position",
                        "observation/gripper_position", "prompt"}
    assert out["observation/exterior_image_1_left"].shape == (180, 320, 3)
    np.testing.assert_allclose(out["observation/joint_position"], Q_ARM.astype(np.float32))
    assert out["observation/joint_position"].dtype == np.float32
    assert out["observation/gripper_position"].shape == (1,) and out["observation/gripper_position"][0] == pytest.approx(0.5)
    # The first camera fills the exterior slot.
    wrist = resize_with_pad(_observation(info).sensors["wrist"]["rgb"][..., :3], 180, 320)
    np.testing.assert_array_equal(out["observation/exterior_image_1_left"], wrist)


def test_aloha_layout_pads_a_7dof_arm(scene):
    _, info, ctx = scene
    out = layout_inputs("aloha", _observation(info), context=ctx)
    assert set(out) == {"state", "images", "prompt"}
    assert out["state"].shape == (14,) and out["state"].dtype == np.float32
    np.testing.assert_allclose(out["state"][:7], Q_ARM.astype(np.float32))
    assert out["state"][7] == pytest.approx(0.5) and not out["state"][8:].any()
    assert set(out["images"]) == {"cam_high", "cam_left_wrist"}  # cam_low / cam_right_wrist: no camera, omitted
    for img in out["images"].values():
        assert img.shape == (3, 224, 224) and img.dtype == np.uint8
    hwc = layout_inputs("openvla", _observation(info), cameras=("front",))["image"]
    np.testing.assert_array_equal(out["images"]["cam_high"], hwc.transpose(2, 0, 1))


def test_lerobot_layout_matches_recorded_features(scene):
    _, info, ctx = scene
    obs = _observation(info)
    out = layout_inputs("lerobot", obs, context=ctx)
    assert set(out) == {"observation.state", "observation.images.front", "observation.images.wrist", "task"}
    assert out["observation.state"].dtype == np.float32
    np.testing.assert_array_equal(out["observation.state"], obs.state.joint_q.astype(np.float32))
    assert out["observation.images.front"].shape == (48, 64, 3)  # as rendered (what `vlatwin record` writes)
    np.testing.assert_array_equal(out["observation.images.front"], obs.sensors["front"]["rgb"][..., :3])
    assert out["task"] == "Pick up the red cube"
    # No cameras anywhere: every sensor with an RGB image, in observation order.
    assert [k for k in layout_inputs("lerobot", obs) if "images" in k] == ["observation.images.front", "observation.images.wrist"]


def test_openvla_layout(scene):
    _, info, _ = scene
    out = layout_inputs("openvla", _observation(info), cameras=None, context=PolicyContext(cameras=("front",)))
    assert set(out) == {"image", "instruction"}
    assert out["image"].shape == (224, 224, 3) and out["image"].dtype == np.uint8
    assert out["instruction"] == "Pick up the red cube"


def test_flip_is_a_180_degree_rotation(scene):
    _, info, ctx = scene
    obs = _observation(info, size=(224, 224))
    img = obs.sensors["front"]["rgb"][..., :3]
    np.testing.assert_array_equal(flip180(img), np.rot90(img, 2))
    np.testing.assert_array_equal(flip180(flip180(img)), img)
    out = layout_inputs("libero", obs, context=ctx, flip=True)
    np.testing.assert_array_equal(out["observation/image"], np.rot90(img, 2))
    np.testing.assert_array_equal(out["observation/wrist_image"], np.rot90(obs.sensors["wrist"]["rgb"][..., :3], 2))


def test_resize_with_pad_keeps_aspect_ratio():
    rng = np.random.default_rng(1)
    img = rng.integers(1, 255, size=(120, 240, 3), dtype=np.uint8)  # no zero pixels: padding is recognisable
    out = resize_with_pad(img, 224, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    # 2:1 -> 224 x 112 content, 56 black rows above and below.
    assert not out[:56].any() and not out[168:].any()
    expected = np.asarray(Image.fromarray(img).resize((224, 112), resample=Image.BILINEAR))
    np.testing.assert_array_equal(out[56:168], expected)
    tall = resize_with_pad(img.transpose(1, 0, 2), 224, 224)
    assert not tall[:, :56].any() and not tall[:, 168:].any() and tall[:, 56:168].all()


def test_tcp_state_matches_forward_kinematics(scene):
    chain, info, _ = scene
    obs = _observation(info)
    tcp = TCPState.from_state(obs.state, chain, info)
    T = chain.fk(Q_ARM)
    np.testing.assert_allclose(tcp.T_b, T, atol=1e-12)
    np.testing.assert_allclose(tcp.pos_b, T[:3, 3], atol=1e-12)
    np.testing.assert_allclose(quat_wxyz_to_matrix(tcp.quat_b), T[:3, :3], atol=1e-9)
    assert tcp.quat_b[0] >= 0
    angle = np.linalg.norm(tcp.rotvec_b)
    axis = tcp.rotvec_b / angle
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    np.testing.assert_allclose(np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K, T[:3, :3], atol=1e-9)
    np.testing.assert_allclose(tcp.arm_q, Q_ARM)
    np.testing.assert_allclose(tcp.finger_q, FINGERS)
    assert tcp.closure == pytest.approx(0.5)
    # Without the scene's joint names the chain's joints come first in joint_q.
    bare = TCPState.from_state(type(obs.state)(time=0, step=0, joint_q=Q_ARM, joint_qd=Q_ARM * 0, body_pose_w=np.zeros((0, 7)),
                                               body_vel_w=np.zeros((0, 6))), chain)
    np.testing.assert_allclose(bare.T_b, T, atol=1e-12)


def test_prompt_templates():
    assert prompt_from_template(None, "open the drawer") == "open the drawer"
    tpl = "In: What action should the robot take to {instruction}?\nOut:"
    assert prompt_from_template(tpl, "open the drawer") == "In: What action should the robot take to open the drawer?\nOut:"
    assert prompt_from_template("{instruction}", None) == ""
    with pytest.raises(VlatwinError, match="format string"):
        prompt_from_template("do {task}", "x")


def test_one_line_errors(scene):
    _, info, ctx = scene
    obs = _observation(info)
    with pytest.raises(VlatwinError, match=r"'libero'.*'observation/wrist_image'"):
        layout_inputs("libero", obs, cameras=("front",), context=ctx)
    with pytest.raises(VlatwinError, match=r"'droid' slot 'observation/wrist_image_left'.*'side'"):
        layout_inputs("droid", obs, cameras=("front", "side"), context=ctx)
    with pytest.raises(VlatwinError, match="unknown observation layout 'bridge'"):
        layout_inputs("bridge", obs, context=ctx)
    with pytest.raises(VlatwinError, match="needs the robot's TCP chain"):
        layout_inputs("libero", obs, context=PolicyContext(info=info, cameras=("front", "wrist")))
    for layout in ("libero", "droid", "aloha"):
        try:
            layout_inputs(layout, obs, cameras=("nope", "wrist"), context=ctx)
        except VlatwinError as exc:
            assert "\n" not in str(exc) and layout in str(exc)
