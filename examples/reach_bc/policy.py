"""A small image + joint-state behaviour-cloning policy for the reach task (model, checkpoint, vlatwin plug-in).

The network sees the front camera (cropped to the table and downsampled to ``image_size`` inside the policy,
so it takes the render as it comes) and the 9 Panda joint positions, and predicts the next ``ee_delta_pose``
action (dx, dy, dz [m], droll, dpitch, dyaw [rad], gripper close_0_1). A spatial softmax turns the conv
features into image keypoints (where things are); a small head predicts the target object's position [m]
from them (trained against the recorded object pose, so the keypoints learn to find the ball) and the
action head reads keypoints, that prediction and the joints.

Inputs and outputs are normalized with mean / std of the training set, stored in the checkpoint.

Use it in any command that takes ``--policy``::

    examples/reach_bc/policy.py:make_policy?checkpoint=/tmp/reach_bc/model.pt
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from vlatwin.errors import VlatwinError
from vlatwin.policy.base import Policy, PolicyInfo

CAMERA = "front"
CONTROL_HZ = 20.0


class SpatialSoftmax(nn.Module):
    """(B, C, H, W) feature maps -> (B, 2C) expected image coordinates in [-1, 1] of each channel's softmax."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attn = F.softmax(x.reshape(b, c, h * w), dim=-1).reshape(b, c, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        ey = (attn.sum(dim=3) * ys).sum(dim=2)
        ex = (attn.sum(dim=2) * xs).sum(dim=2)
        return torch.cat([ex, ey], dim=1)


class ReachNet(nn.Module):
    """Image (B, 3, S, S) uint8-range float + normalized state (B, J) -> normalized action (B, D), aux (B, A)."""

    def __init__(
        self, state_dim: int = 9, action_dim: int = 7, aux_dim: int = 3, image_size: int = 64, width: int = 32,
        crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    ):
        super().__init__()
        self.image_size = int(image_size)
        self.crop = tuple(float(v) for v in crop)
        """(top, left, bottom, right) of the image region the network sees, as fractions of the height / width."""
        self.conv = nn.Sequential(
            nn.Conv2d(5, width // 2, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
        )
        self.keypoints = SpatialSoftmax()
        feat = 2 * width
        self.state_mlp = nn.Sequential(nn.Linear(state_dim, 64), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(feat + aux_dim + 64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, action_dim))
        self.aux = nn.Sequential(nn.Linear(feat, 128), nn.ReLU(), nn.Linear(128, aux_dim))

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image / 127.5 - 1.0
        b, _, h, w = x.shape
        # CoordConv: the conv layers know where in the image a pixel is.
        ys = torch.linspace(-1.0, 1.0, h, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1.0, 1.0, w, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
        kp = self.keypoints(self.conv(torch.cat([x, xs, ys], dim=1)))
        aux = self.aux(kp)
        # The action head sees the keypoints, the predicted target position and the joints.
        return self.head(torch.cat([kp, aux, self.state_mlp(state)], dim=1)), aux


def resize_images(images: np.ndarray | torch.Tensor, size: int, crop=(0.0, 0.0, 1.0, 1.0)) -> torch.Tensor:
    """(N, H, W, 3|4) uint8 -> (N, 3, size, size) float32 in [0, 255]: the ``crop`` region (fractions, see
    :attr:`ReachNet.crop`), antialiased bilinear resize. Training and the policy share this function, so they
    see identical pixels."""
    t = torch.as_tensor(np.asarray(images)[..., :3]).permute(0, 3, 1, 2).float()
    h, w = t.shape[-2:]
    top, left, bottom, right = crop
    t = t[..., round(top * h):round(bottom * h), round(left * w):round(right * w)]
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t.clamp_(0.0, 255.0)


def save_checkpoint(path: str | Path, model: ReachNet, stats: dict, meta: dict) -> None:
    """``stats``: name -> {"mean", "std"} arrays (state, action, aux); ``meta``: JSON-ready facts about the run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"state_dim": model.state_mlp[0].in_features, "action_dim": model.head[-1].out_features,
              "aux_dim": model.aux[-1].out_features, "image_size": model.image_size, "width": model.conv[2].out_channels,
              "crop": list(model.crop)}
    blob = {"config": config, "state_dict": model.state_dict(), "meta": meta,
            "stats": {k: {s: torch.as_tensor(np.asarray(v[s], np.float32)) for s in ("mean", "std")} for k, v in stats.items()}}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> tuple[ReachNet, dict, dict]:
    """(model in eval mode, stats as float32 arrays, meta)."""
    path = Path(path)
    if not path.is_file():
        raise VlatwinError(f"reach_bc: no checkpoint at {path}; train one with examples/reach_bc/train.py")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = ReachNet(**blob["config"])
    model.load_state_dict(blob["state_dict"])
    model.eval()
    stats = {k: {s: v[s].numpy() for s in ("mean", "std")} for k, v in blob["stats"].items()}
    return model, stats, blob.get("meta", {})


class ReachBCPolicy(Policy):
    """The trained :class:`ReachNet` as a vlatwin policy (one action per call, closed loop at 20 Hz)."""

    def __init__(self, checkpoint: str | Path, *, camera: str = CAMERA, threads: int = 1):
        self.model, self.stats, self.meta = load_checkpoint(checkpoint)
        self.camera = camera
        self.threads = int(threads)
        self.info = PolicyInfo(
            name="reach_bc", action_space="ee_delta_pose", image_keys=(camera,), gripper_convention="close_0_1",
            control_hz=CONTROL_HZ, action_dim=self.model.head[-1].out_features, state_layout="joint_q",
        )

    def act(self, observation) -> np.ndarray:
        sensor = observation.sensors.get(self.camera)
        if sensor is None or "rgb" not in sensor:
            raise VlatwinError(f"reach_bc: the observation has no {self.camera!r} camera rgb; record/eval with --cameras {self.camera}")
        image = np.asarray(sensor["rgb"])
        q = np.asarray(observation.state.joint_q, np.float32)
        s = self.stats
        state = (q - s["state"]["mean"]) / s["state"]["std"]
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out, _ = self.model(resize_images(image[None], self.model.image_size, self.model.crop), torch.from_numpy(state[None]))
        return out[0].numpy().astype(np.float64) * s["action"]["std"] + s["action"]["mean"]


def make_policy(context) -> ReachBCPolicy:
    """Policy factory for ``--policy examples/reach_bc/policy.py:make_policy?checkpoint=PATH[&camera=front]``."""
    from vlatwin.policy.factory import take_options

    opts = take_options(dict(context.options), {"checkpoint": "", "camera": CAMERA, "threads": 1}, "reach_bc policy")
    if not opts["checkpoint"]:
        raise VlatwinError("reach_bc policy: give ?checkpoint=PATH (written by examples/reach_bc/train.py)")
    if context.cameras and opts["camera"] not in context.cameras:
        raise VlatwinError(f"reach_bc policy: the scene has no camera {opts['camera']!r} (it has {', '.join(context.cameras)})")
    return ReachBCPolicy(opts["checkpoint"], camera=opts["camera"], threads=opts["threads"])
