"""LeRobot policies: ``select_action`` / ``reset`` with LeRobot's pre- and post-processors, as a vlatwin policy.

:class:`LeRobotPolicyAdapter` wraps any object with LeRobot's ``PreTrainedPolicy`` inference interface
(``reset()``, ``select_action(batch) -> Tensor (B, D)``, which keeps its own action queue) and runs one
step the way ``lerobot-eval`` does (LeRobot v0.4.4 ``scripts/lerobot_eval.py``)::

    batch = preprocessor(batch)                 # rename -> batch -> device -> normalize (-> tokenize)
    with torch.inference_mode():
        action = policy.select_action(batch)    # (B, D), normalized
    action = postprocessor(action)              # unnormalize -> cpu

The batch is what ``lerobot-eval``'s ``preprocess_observation`` + ``add_envs_task`` hand the preprocessor,
with the keys ``vlatwin record`` writes (:func:`vlatwin.policy.observation.layout_inputs` ``lerobot``):

- ``observation.state``: (1, J) float32, every joint of the scene;
- ``observation.images.<cam>``: (1, 3, H, W) float32 in [0, 1], as rendered;
- ``observation.environment_state``: (1, 7 per object) float32, only when the policy reads it;
- ``task``: ``[instruction]``.

``lerobot://FOLDER`` (:func:`from_spec`) loads a saved policy in this process when ``lerobot`` imports;
LeRobot 0.4.x needs ``transformers < 5``, so usually it runs in its own environment behind ``vlatwin serve``.
Torch is imported only when a policy is built or run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.policy.base import ActionChunk, Policy, PolicyInfo
from vlatwin.policy.observation import layout_inputs

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"

NOT_IMPORTABLE = (
    "lerobot is not importable in this Python (LeRobot 0.4.4 needs transformers<5); run `vlatwin serve --policy "
    "lerobot://{folder}` in a LeRobot environment and use --policy openpi://HOST:PORT here"
)


class LeRobotPolicyAdapter(Policy):
    """A LeRobot-interface policy object as a vlatwin :class:`~vlatwin.policy.base.Policy`.

    Args:
        policy: object with ``reset()`` and ``select_action(batch) -> Tensor (B, D)`` (a LeRobot
            ``PreTrainedPolicy`` or anything following it).
        preprocessor: ``batch dict -> batch dict`` (LeRobot's ``PolicyProcessorPipeline``); None: none.
        postprocessor: ``action Tensor -> action Tensor``; None: none.
        cameras: scene camera names to feed, in order; empty: every camera in the observation.
        rename_map: batch key -> key the policy reads, applied before the preprocessor (like LeRobot's
            ``rename_map``), e.g. ``{"observation.images.front": "observation.images.image"}``.
        action_space: what the actions are for (``joint_pos`` as ``vlatwin record`` writes them by default).
        device: torch device the batch is put on.
        environment_state: ``Observation -> (N,) array`` for ``observation.environment_state``; None: not sent.
        name, control_hz, gripper_convention, action_dim: :class:`PolicyInfo` fields.
    """

    def __init__(
        self,
        policy,
        *,
        preprocessor: Callable[[dict], dict] | None = None,
        postprocessor: Callable[[Any], Any] | None = None,
        cameras=(),
        rename_map: dict[str, str] | None = None,
        action_space: str = "joint_pos",
        device: str = "cpu",
        environment_state: Callable[[Any], np.ndarray] | None = None,
        name: str = "lerobot",
        control_hz: float | None = None,
        gripper_convention: str = "close_0_1",
        action_dim: int | None = None,
    ) -> None:
        for method in ("reset", "select_action"):
            if not callable(getattr(policy, method, None)):
                raise VlatwinError(f"LeRobot adapter: {type(policy).__name__} has no {method}() (not a LeRobot policy)")
        self.policy = policy
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.cameras = tuple(cameras)
        self.rename_map = dict(rename_map or {})
        self.device = str(device)
        self.environment_state = environment_state
        self.info = PolicyInfo(
            name=name, action_space=action_space, chunk_size=1, action_dim=action_dim, control_hz=control_hz,
            image_keys=self.cameras, state_layout="lerobot", gripper_convention=gripper_convention,
        )

    def reset(self, episode: int | None = None) -> None:
        """Clear the policy's action queue (and any stateful processor step)."""
        self.policy.reset()
        for pipeline in (self.preprocessor, self.postprocessor):
            reset = getattr(pipeline, "reset", None)
            if callable(reset):
                reset()

    def batch(self, observation) -> dict:
        """The batch ``select_action`` gets before preprocessing (see the module docstring)."""
        import torch

        inputs = layout_inputs("lerobot", observation, cameras=self.cameras)
        batch: dict[str, Any] = {}
        for key, value in inputs.items():
            if key == "task":
                continue
            tensor = torch.from_numpy(np.ascontiguousarray(value))
            if key.startswith(IMAGE_PREFIX):
                tensor = tensor.permute(2, 0, 1).to(torch.float32).div_(255.0)  # HWC uint8 -> CHW [0, 1]
            batch[key] = tensor.unsqueeze(0).to(self.device)
        if self.environment_state is not None:
            env = np.asarray(self.environment_state(observation), dtype=np.float32).reshape(1, -1)
            batch[ENV_STATE_KEY] = torch.from_numpy(env).to(self.device)
        batch["task"] = [inputs["task"]]
        return {self.rename_map.get(k, k): v for k, v in batch.items()}

    def act(self, observation) -> ActionChunk:
        import torch

        batch = self.batch(observation)
        start = time.perf_counter()
        if self.preprocessor is not None:
            batch = self.preprocessor(batch)
        with torch.inference_mode():
            action = self.policy.select_action(batch)
        if self.postprocessor is not None:
            action = self.postprocessor(action)
        infer_ms = (time.perf_counter() - start) * 1e3
        if isinstance(action, dict):  # a post-processor returning a transition-like dict
            action = action.get("action", action)
        if not isinstance(action, torch.Tensor | np.ndarray):
            raise VlatwinError(f"LeRobot policy returned {type(action).__name__}, not an action tensor")
        arr = action.detach().to("cpu", torch.float64).numpy() if isinstance(action, torch.Tensor) else np.asarray(action, np.float64)
        if arr.ndim == 2:
            if arr.shape[0] != 1:
                raise VlatwinError(f"LeRobot policy returned a batch of {arr.shape[0]} actions for one observation")
        elif arr.ndim != 1:
            raise VlatwinError(f"LeRobot policy returned an action of shape {arr.shape}; expected (1, D) or (D,)")
        return ActionChunk(arr.reshape(1, -1), timing={"infer_ms": infer_ms})


# ------------------------------------------------------------------------------------------ spec
def _parse_rename(pairs: tuple[str, ...]) -> dict[str, str]:
    """``front:image`` (camera names) or ``observation.images.front:observation.images.image`` (keys)."""
    out = {}
    for pair in pairs:
        src, sep, dst = pair.partition(":")
        if not sep or not src or not dst:
            raise VlatwinError(f"--policy lerobot: rename entry {pair!r} is not FROM:TO (e.g. rename=front:image,wrist:image2)")
        out[_image_key(src)] = _image_key(dst)
    return out


def _image_key(name: str) -> str:
    return name if "." in name else IMAGE_PREFIX + name


def _environment_state_fn(context):
    info = getattr(context, "info", None)
    if info is None:
        raise VlatwinError("--policy lerobot: the policy reads observation.environment_state, which needs the scene (context.info)")
    from vlatwin.record.recorder import object_bodies

    idx = [info.body_paths.index(p) for p in object_bodies(info)]
    if not idx:
        raise VlatwinError("--policy lerobot: the policy reads observation.environment_state but the scene has no objects under /World/Objects")
    return lambda observation: np.asarray(observation.state.body_pose_w, dtype=np.float32)[idx].reshape(-1)


def from_spec(target: str, options: dict, context):
    """``lerobot://FOLDER?cameras=front,wrist&action_space=joint_pos&device=cpu&rename=front:image&gripper=close_0_1``.

    FOLDER is a ``save_pretrained`` policy folder (``config.json``, ``model.safetensors``,
    ``policy_preprocessor.json`` / ``policy_postprocessor.json``). Cameras default to the policy's image
    features (``observation.images.<cam>``, after ``rename`` backwards), else the scene's cameras.
    """
    from vlatwin.control.gripper import parse_convention
    from vlatwin.policy.factory import take_options

    where = f"--policy lerobot://{target}"
    opts = take_options(
        options, {"cameras": (), "action_space": "joint_pos", "device": "cpu", "rename": (), "gripper": "close_0_1"}, where
    )
    parse_convention(opts["gripper"])
    rename = _parse_rename(opts["rename"])
    folder = Path(target).expanduser()
    if not (folder / "config.json").is_file():
        raise VlatwinError(f"{where}: {folder} is not a saved LeRobot policy (no config.json)")
    try:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except Exception as exc:  # noqa: BLE001 - ImportError, or a dependency that breaks at import (transformers 5)
        raise VlatwinError(NOT_IMPORTABLE.format(folder=target) + f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not (folder / "policy_preprocessor.json").is_file():
        raise VlatwinError(
            f"{where}: no policy_preprocessor.json in {folder} (saved by LeRobot < 0.4?); convert it with "
            "`python -m lerobot.processor.migrate_policy_normalization --pretrained-path FOLDER`"
        )
    try:
        cfg = PreTrainedConfig.from_pretrained(str(folder))
        cfg.pretrained_path = folder
        cfg.device = opts["device"]
        policy = get_policy_class(cfg.type).from_pretrained(str(folder), config=cfg)
        policy.eval()
        preprocessor, postprocessor = make_pre_post_processors(
            cfg, pretrained_path=str(folder), preprocessor_overrides={"device_processor": {"device": opts["device"]}}
        )
    except VlatwinError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever LeRobot raises on a bad folder becomes one line
        raise VlatwinError(f"{where}: LeRobot could not load it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    inputs = dict(getattr(cfg, "input_features", {}) or {})
    outputs = dict(getattr(cfg, "output_features", {}) or {})
    cameras = opts["cameras"]
    if not cameras:
        back = {v: k for k, v in rename.items()}
        wanted = [back.get(k, k) for k in inputs if k.startswith(IMAGE_PREFIX)]
        cameras = tuple(k[len(IMAGE_PREFIX):] for k in wanted) or tuple(getattr(context, "cameras", ()) or ())
    action_feature = outputs.get("action")
    action_dim = int(action_feature.shape[0]) if action_feature is not None and getattr(action_feature, "shape", None) else None
    return LeRobotPolicyAdapter(
        policy, preprocessor=preprocessor, postprocessor=postprocessor, cameras=cameras, rename_map=rename,
        action_space=opts["action_space"], device=opts["device"],
        environment_state=_environment_state_fn(context) if ENV_STATE_KEY in inputs else None,
        name=f"lerobot/{cfg.type}", control_hz=getattr(context, "control_hz", None), gripper_convention=opts["gripper"],
        action_dim=action_dim,
    )


__all__ = ["LeRobotPolicyAdapter", "from_spec"]
