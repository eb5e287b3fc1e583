"""Observation adapters: the loop's :class:`~vlatwin.loop.control_loop.Observation` as each model family's inputs.

:func:`layout_inputs` builds the input dict of a model family (openpi LIBERO / DROID / ALOHA, LeRobot,
OpenVLA REST): camera selection and naming, resize-with-pad, 180 degree flips, state layouts and prompts.
Image helpers follow openpi's client (``resize_with_pad``: keep the aspect ratio, pad with black) and
LIBERO's evaluation (a 180 degree flip). Images are HxWx3 uint8 unless a layout says CHW.

Frames: ``_b`` is the robot base frame (the TCP chain's base link), ``_w`` the world. Quaternions are
(w, x, y, z) throughout vlatwin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlatwin.errors import VlatwinError


def camera_rgb(observation, name: str) -> np.ndarray:
    """The latest RGB frame (H, W, 3) uint8 of scene camera ``name`` in ``observation``."""
    data = observation.sensors.get(name)
    if data is None:
        have = ", ".join(sorted(observation.sensors)) or "none"
        raise VlatwinError(f"camera {name!r} has no image in the observation (sensors: {have})")
    rgb = data["rgb"] if isinstance(data, dict) else data
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise VlatwinError(f"camera {name!r}: expected an HxWx3/4 image, got shape {rgb.shape}")
    rgb = rgb[..., :3]
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.asarray(rgb, dtype=np.float64) * (255.0 if rgb.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return rgb


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize HxWx3 uint8 to (height, width) keeping the aspect ratio, centred, padded with zeros (openpi's
    ``image_tools.resize_with_pad``: bilinear, the padding split evenly with the odd pixel at the end)."""
    from PIL import Image

    image = np.asarray(image)
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image.copy()
    ratio = max(w / width, h / height)
    new_h, new_w = int(h / ratio), int(w / ratio)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample=Image.BILINEAR))
    out = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def flip180(image: np.ndarray) -> np.ndarray:
    """Rotate an HxWxC image by 180 degrees (LIBERO's agent-view camera convention)."""
    return np.ascontiguousarray(np.asarray(image)[::-1, ::-1])


# ------------------------------------------------------------------------------------------ prompts
def prompt_from_template(template: str | None, instruction: str | None) -> str:
    """The model's prompt: ``template`` with ``{instruction}`` filled in (None: the instruction itself).

    Example: ``"In: What action should the robot take to {instruction}?\\nOut:"`` (OpenVLA's README).
    A missing instruction counts as an empty string.
    """
    instruction = "" if instruction is None else str(instruction)
    if template is None:
        return instruction
    try:
        return str(template).format(instruction=instruction)
    except (KeyError, IndexError, ValueError) as exc:
        raise VlatwinError(
            f"prompt template {template!r} is not a format string with only {{instruction}} ({type(exc).__name__}: {exc}); "
            "write literal braces as {{ and }}"
        ) from None


# ---------------------------------------------------------------------------------------- TCP state
@dataclass(frozen=True, kw_only=True)
class TCPState:
    """The robot's TCP pose and fingers at one state, in the **robot base frame** (``_b``: the frame of the
    kinematic chain's base link, e.g. ``panda_link0``; x forward, z up for the built-in Panda).

    Build it with :meth:`from_state`. Poses come from forward kinematics of the measured joint angles
    (:meth:`KinematicChain.fk <vlatwin.control.kinematics.KinematicChain.fk>`), as a real robot's state
    interface reports them.
    """

    T_b: np.ndarray
    """TCP pose (4, 4) in the base frame."""
    pos_b: np.ndarray
    """TCP position (3,) [m]."""
    quat_b: np.ndarray
    """TCP orientation as a unit quaternion (4,) in **(w, x, y, z)** order with w >= 0 (robosuite/LIBERO
    use (x, y, z, w); reorder with ``quat_b[[1, 2, 3, 0]]``)."""
    rotvec_b: np.ndarray
    """TCP orientation as axis-angle (3,) [rad], angle in [0, pi]."""
    arm_q: np.ndarray
    """Arm joint positions (n,) [rad | m] in the chain's joint order."""
    finger_q: np.ndarray
    """Finger (gripper) joint positions (k,) [m | rad], scene order (empty when the scene has none)."""
    closure: float
    """Gripper closure in [0, 1] (0 fully open, 1 fully closed; see :mod:`vlatwin.control.gripper`)."""

    @classmethod
    def from_state(cls, state, chain, info=None) -> TCPState:
        """TCP state of ``state`` (:class:`~vlatwin.sim.types.SimState`) for ``chain``.

        Args:
            state: the simulator state (its ``joint_q`` in :attr:`SimModelInfo.joint_names` order).
            chain: the robot's base-to-TCP :class:`~vlatwin.control.kinematics.KinematicChain`.
            info: the scene's :class:`~vlatwin.sim.types.SimModelInfo`; joints are matched by name. Without
                it, ``joint_q`` must start with the chain's joints in chain order and has no fingers.
        """
        from vlatwin.control.rotations import matrix_to_rotvec
        from vlatwin.utils.transforms import matrix_to_quat_wxyz

        q = np.asarray(state.joint_q, dtype=float).reshape(-1)
        n = chain.num_joints
        if info is None:
            if q.size < n:
                raise VlatwinError(f"TCP state: the chain has {n} joints but the state only {q.size}")
            arm_q, fingers = q[:n].copy(), _Fingers.none()
        else:
            split = _joint_split(info, chain)
            arm_q, fingers = q[split.arm], split.fingers
        T_b = np.asarray(chain.fk(arm_q), dtype=float)
        finger_q = q[fingers.index] if fingers.index.size else np.zeros(0)
        return cls(
            T_b=T_b, pos_b=T_b[:3, 3].copy(), quat_b=matrix_to_quat_wxyz(T_b[:3, :3]),
            rotvec_b=np.asarray(matrix_to_rotvec(T_b[:3, :3]), dtype=float), arm_q=arm_q, finger_q=finger_q,
            closure=fingers.closure(q),
        )


@dataclass(frozen=True)
class _Fingers:
    index: np.ndarray
    open_q: np.ndarray
    closed_q: np.ndarray

    @classmethod
    def none(cls) -> _Fingers:
        empty = np.zeros(0)
        return cls(np.zeros(0, dtype=np.int64), empty, empty)

    def closure(self, q: np.ndarray) -> float:
        from vlatwin.control.gripper import joints_to_closure

        if not self.index.size:
            return 0.0
        return joints_to_closure(q[self.index], self.open_q, self.closed_q)


@dataclass(frozen=True)
class _JointSplit:
    arm: np.ndarray
    """Indices of the arm joints in ``joint_q`` (chain order when there is a chain, else scene order)."""
    fingers: _Fingers


def _joint_split(info, chain=None) -> _JointSplit:
    from vlatwin.control.base import match_joint_names
    from vlatwin.control.factory import robot_joints_from_info

    joints = robot_joints_from_info(info)
    arm = match_joint_names(chain.joint_names, info.joint_names) if chain is not None else np.asarray(joints.arm, dtype=np.int64)
    grip = np.asarray(joints.gripper, dtype=np.int64)
    return _JointSplit(arm, _Fingers(grip, np.asarray(joints.gripper_open_q, float), np.asarray(joints.gripper_closed_q, float)))


# -------------------------------------------------------------------------------------- layouts
#: Camera slots of each layout, in the order ``cameras`` fills them (first: main/exterior view, second:
#: wrist). ``lerobot`` takes any number (keys ``observation.images.<camera name>``).
CAMERA_SLOTS: dict[str, tuple[str, ...]] = {
    "libero": ("observation/image", "observation/wrist_image"),
    "droid": ("observation/exterior_image_1_left", "observation/wrist_image_left"),
    "aloha": ("cam_high", "cam_left_wrist", "cam_low", "cam_right_wrist"),
    "openvla": ("image",),
    "lerobot": (),
}
#: Slots that must be filled (the rest are omitted when ``cameras`` is shorter).
REQUIRED_SLOTS: dict[str, int] = {"libero": 2, "droid": 2, "aloha": 1, "openvla": 1, "lerobot": 0}
#: Length of ALOHA's state vector (two 6-joint arms + a gripper each).
ALOHA_STATE_DIM = 14
LAYOUTS = tuple(CAMERA_SLOTS)


def layout_inputs(
    layout: str,
    observation,
    *,
    cameras=(),
    image_size: tuple[int, int] | None = (224, 224),
    flip: bool = False,
    context=None,
    prompt_template: str | None = None,
) -> dict:
    """The loop's observation as one model family's input dict.

    ============ ==================================================================================
    layout       keys
    ============ ==================================================================================
    ``libero``   openpi LIBERO: ``observation/image``, ``observation/wrist_image`` (HxWx3 uint8),
                 ``observation/state`` (8 float32: TCP position [m] + axis-angle [rad] in the robot
                 base frame, then the two finger joint positions [m]), ``prompt``
    ``droid``    openpi DROID: ``observation/exterior_image_1_left``, ``observation/wrist_image_left``,
                 ``observation/joint_position`` (7 float32 [rad]), ``observation/gripper_position``
                 (1 float32 closure, 0 open .. 1 closed), ``prompt``
    ``aloha``    openpi ALOHA: ``state`` (14 float32), ``images`` {``cam_high``, ``cam_left_wrist``,
                 ``cam_low``, ``cam_right_wrist``} as 3xHxW uint8 (unfilled slots omitted), ``prompt``
    ``lerobot``  LeRobot / ``vlatwin record``: ``observation.state`` (float32, every joint of the scene
                 in :attr:`SimModelInfo.joint_names` order), ``observation.images.<cam>`` (HxWx3 uint8
                 **as rendered**: a LeRobot policy trained on recorded data expects that size), ``task``
    ``openvla``  OpenVLA REST: ``image`` (HxWx3 uint8), ``instruction`` (raw; the server builds the prompt)
    ============ ==================================================================================

    ALOHA with one 7-DoF arm: ALOHA's state is ``[left arm 6 joints, left gripper, right arm 6 joints,
    right gripper]``; a 7-DoF arm does not fit 6 joint slots, so vlatwin writes ``[arm joints (n),
    gripper closure, zeros]`` padded to 14 (Panda: 7 joints, closure at index 7). No pretrained ALOHA
    model reads that meaning; it is a fixed layout for models fine-tuned on the twin.

    Args:
        layout: one of :data:`LAYOUTS`.
        observation: :class:`~vlatwin.loop.control_loop.Observation`.
        cameras: scene camera names filling the layout's slots in order (:data:`CAMERA_SLOTS`); empty or None:
            the context's cameras (``context.cameras``), and for ``lerobot`` without those every RGB sensor.
        image_size: (height, width) [px] every image is resized to with :func:`resize_with_pad`; None: as
            rendered. Ignored by ``lerobot``.
        flip: rotate images by 180 degrees first (LIBERO's protocol: robosuite renders upside down).
        context: :class:`~vlatwin.policy.factory.PolicyContext`; ``info`` is needed by state layouts
            other than ``lerobot``, ``chain`` by ``libero`` (and orders ``droid``/``aloha`` arm joints).
        prompt_template: see :func:`prompt_from_template` (``prompt`` / ``task`` keys).
    """
    if layout not in CAMERA_SLOTS:
        raise VlatwinError(f"unknown observation layout {layout!r}; known: {', '.join(LAYOUTS)}")
    cameras = tuple(cameras or ()) or tuple(getattr(context, "cameras", ()) or ())
    prompt = prompt_from_template(prompt_template, observation.instruction)
    if layout == "lerobot":
        if not cameras:
            cameras = tuple(n for n, d in observation.sensors.items() if _has_rgb(d))
        out = {"observation.state": np.asarray(observation.state.joint_q, dtype=np.float32).reshape(-1)}
        for cam in cameras:
            out[f"observation.images.{cam}"] = _slot_image(layout, f"observation.images.{cam}", observation, cam, None, flip)
        out["task"] = prompt
        return out
    images = _slot_images(layout, observation, cameras, image_size, flip)
    if layout == "openvla":
        return {"image": images["image"], "instruction": "" if observation.instruction is None else str(observation.instruction)}
    state = observation.state
    if layout == "libero":
        tcp = TCPState.from_state(state, _need(context, "chain", layout), _need(context, "info", layout))
        fingers = np.zeros(2)
        fingers[: min(2, tcp.finger_q.size)] = tcp.finger_q[:2]
        vec = np.concatenate([tcp.pos_b, tcp.rotvec_b, fingers]).astype(np.float32)
        return {**images, "observation/state": vec, "prompt": prompt}
    split = _joint_split(_need(context, "info", layout), getattr(context, "chain", None))
    q = np.asarray(state.joint_q, dtype=float).reshape(-1)
    arm, closure = q[split.arm], split.fingers.closure(q)
    if layout == "droid":
        if arm.size != 7:
            raise VlatwinError(f"layout 'droid' needs a 7-joint arm (observation/joint_position), the scene's arm has {arm.size}")
        return {
            **images,
            "observation/joint_position": arm.astype(np.float32),
            "observation/gripper_position": np.array([closure], dtype=np.float32),
            "prompt": prompt,
        }
    # aloha
    if arm.size + 1 > ALOHA_STATE_DIM:
        raise VlatwinError(f"layout 'aloha': {arm.size} arm joints + gripper do not fit its {ALOHA_STATE_DIM}-value state")
    vec = np.zeros(ALOHA_STATE_DIM, dtype=np.float32)
    vec[: arm.size] = arm
    vec[arm.size] = closure
    chw = {slot: np.ascontiguousarray(img.transpose(2, 0, 1)) for slot, img in images.items()}
    return {"state": vec, "images": chw, "prompt": prompt}


def _has_rgb(data) -> bool:
    if isinstance(data, dict):
        return "rgb" in data
    return isinstance(data, np.ndarray) and data.ndim == 3 and data.shape[2] in (3, 4)


def _need(context, attr: str, layout: str):
    value = getattr(context, attr, None)
    if value is None:
        what = {"chain": "the robot's TCP chain (context.chain; the built-in Panda has one)", "info": "the scene's joint names (context.info)"}[attr]
        raise VlatwinError(f"observation layout {layout!r} needs {what}")
    return value


def _slot_images(layout: str, observation, cameras: tuple[str, ...], image_size, flip: bool) -> dict[str, np.ndarray]:
    slots = CAMERA_SLOTS[layout]
    need = REQUIRED_SLOTS[layout]
    if len(cameras) < need:
        missing = slots[len(cameras)]
        raise VlatwinError(
            f"observation layout {layout!r}: no camera for slot {missing!r} "
            f"(it needs {need}: {', '.join(slots[:need])}; give them in order with cameras=...)"
        )
    if len(cameras) > len(slots):
        raise VlatwinError(f"observation layout {layout!r} takes at most {len(slots)} cameras ({', '.join(slots)}), got {len(cameras)}")
    return {slot: _slot_image(layout, slot, observation, cam, image_size, flip) for slot, cam in zip(slots, cameras, strict=False)}


def _slot_image(layout: str, slot: str, observation, camera: str, image_size, flip: bool) -> np.ndarray:
    try:
        image = camera_rgb(observation, camera)
    except VlatwinError as exc:
        raise VlatwinError(f"observation layout {layout!r} slot {slot!r}: {exc}") from None
    if flip:
        image = flip180(image)
    if image_size is not None:
        image = resize_with_pad(image, int(image_size[0]), int(image_size[1]))
    return np.ascontiguousarray(image)


__all__ = [
    "ALOHA_STATE_DIM",
    "CAMERA_SLOTS",
    "LAYOUTS",
    "TCPState",
    "camera_rgb",
    "flip180",
    "layout_inputs",
    "prompt_from_template",
    "resize_with_pad",
]
