"""A Hugging Face image-text-to-text model as a policy, in this process (``--policy hf://FOLDER?...``).

Loads ``AutoProcessor`` + ``AutoModelForImageTextToText`` (transformers 5) from a local folder, with no
network (``local_files_only``). Each :meth:`HFPolicy.act` renders the prompt, feeds one camera image,
generates greedily and decodes the new tokens into one action, in one of two ways:

* ``decode=openvla`` (default): OpenVLA's action tokens (the last 256 ids of the vocabulary before
  ``pad_to_multiple_of``), un-normalized with the model's q01/q99 ``norm_stats`` (from ``config.json``
  as OpenVLA stores them, or ``dataset_statistics.json``); see :mod:`vlatwin.policy.action_tokens`.
* ``decode=text``: the answer's text, parsed as ``action_dim`` numbers (:mod:`vlatwin.policy.text_actions`),
  for general VLMs prompted to write actions.

OpenVLA itself (``AutoModelForVision2Seq`` remote code, transformers 4.40) does not load in a
transformers-5 process: serve it with its ``vla-scripts/deploy.py`` and use ``--policy openvla://HOST:PORT``.
Models whose config names its own code (``auto_map``) load only with ``?trust_remote_code=1``.

Options: ``decode``, ``unnorm_key``, ``camera``, ``prompt`` (format string with ``{instruction}``),
``action_space`` (``ee_delta_pose``), ``gripper`` (``open_0_1``, OpenVLA's), ``rotation`` (``rpy``),
``action_dim`` (text decode; openvla: from the norm stats), ``max_new_tokens``, ``dtype`` (``float32``),
``trust_remote_code`` (0), ``control_hz``, ``seed``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from vlatwin._deps import require
from vlatwin.errors import VlatwinError
from vlatwin.policy import action_tokens
from vlatwin.policy.base import ActionChunk, Policy, PolicyInfo
from vlatwin.policy.observation import camera_rgb, resize_with_pad
from vlatwin.policy.text_actions import parse_action_text

#: OpenVLA's prompt (README; ``vla-scripts/deploy.py:get_openvla_prompt`` lower-cases the instruction).
OPENVLA_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
#: Default prompt for ``decode=text``.
TEXT_PROMPT = (
    "In: What action should the robot take to {instruction}? Answer with {action_dim} numbers "
    "[dx, dy, dz, droll, dpitch, dyaw, gripper].\nOut:"
)
DECODERS = ("openvla", "text")
DTYPES = ("float32", "bfloat16", "float16")
_ROTATIONS = ("rpy", "axis_angle")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VlatwinError(f"{path}: cannot read JSON ({_one_line(exc)})") from None
    if not isinstance(data, dict):
        raise VlatwinError(f"{path}: expected a JSON object")
    return data


def check_model_folder(folder, *, trust_remote_code: bool = False) -> dict:
    """``config.json`` of a local model folder (one-line errors: missing, not a model, needs remote code)."""
    folder = Path(folder).expanduser()
    where = f"hf://{folder}"
    if not folder.exists():
        raise VlatwinError(f"{where}: no such folder (give a local model folder; nothing is downloaded)")
    if not folder.is_dir():
        raise VlatwinError(f"{where}: not a folder (give the folder holding config.json and the weights)")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise VlatwinError(f"{where}: not a Hugging Face model folder (no config.json)")
    config = _read_json(config_path)
    auto_map = dict(config.get("auto_map") or {})
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            try:
                extra = json.loads(path.read_text()).get("auto_map") or {}
            except (OSError, ValueError, AttributeError):
                extra = {}
            if isinstance(extra, dict):
                auto_map.update({k: v for k, v in extra.items() if k not in auto_map})
    if auto_map and not trust_remote_code:
        classes = ", ".join(sorted(auto_map))
        raise VlatwinError(
            f"{where}: the model ships its own code (auto_map: {classes}); if you trust it, add ?trust_remote_code=1"
        )
    if auto_map and "AutoModelForVision2Seq" in auto_map and "AutoModelForImageTextToText" not in auto_map:
        raise VlatwinError(
            f"{where}: written for transformers 4 (AutoModelForVision2Seq, e.g. OpenVLA); serve it from its own "
            "environment (openvla vla-scripts/deploy.py) and use --policy openvla://HOST:PORT"
        )
    return config


def load_norm_stats(folder, config: dict | None = None) -> dict:
    """OpenVLA-style ``norm_stats`` (dataset key -> {"action": {q01, q99, mask...}}): ``config.json``'s
    ``norm_stats``, else ``dataset_statistics.json`` (empty dict when neither has them)."""
    folder = Path(folder).expanduser()
    config = _read_json(folder / "config.json") if config is None else config
    stats = config.get("norm_stats")
    if isinstance(stats, dict) and stats:
        return stats
    path = folder / "dataset_statistics.json"
    if path.is_file():
        data = _read_json(path)
        if "action" in data and isinstance(data["action"], dict):
            return {"default": data}  # a single dataset's statistics, written without a key
        return data
    return {}


def _image_size(processor) -> tuple[int, int] | None:
    """(height, width) the processor's images come out as (None: not a fixed size)."""
    ip = getattr(processor, "image_processor", None)
    if ip is None:
        return None
    for attr in ("crop_size", "size") if getattr(ip, "do_center_crop", False) else ("size",):
        size = getattr(ip, attr, None)
        if size is None:
            continue
        size = dict(size) if not isinstance(size, int) else {"height": size, "width": size}
        if size.get("height") and size.get("width"):
            return int(size["height"]), int(size["width"])
        edge = size.get("shortest_edge") or size.get("longest_edge")
        if edge:
            return int(edge), int(edge)
    return None


class HFPolicy(Policy):
    """An image-text-to-text model from a local folder; one action per call (chunk size 1)."""

    def __init__(
        self,
        folder,
        *,
        decode: str = "openvla",
        unnorm_key: str | None = None,
        camera: str | None = None,
        prompt: str | None = None,
        action_space: str = "ee_delta_pose",
        gripper: str = "open_0_1",
        rotation: str = "rpy",
        action_dim: int | None = None,
        max_new_tokens: int | None = None,
        dtype: str = "float32",
        trust_remote_code: bool = False,
        control_hz: float | None = None,
        seed: int = 0,
    ) -> None:
        from vlatwin.control.gripper import GripperConvention

        self.folder = Path(folder).expanduser()
        where = f"hf://{self.folder}"
        if decode not in DECODERS:
            raise VlatwinError(f"{where}: decode={decode!r}; known: {', '.join(DECODERS)}")
        if dtype not in DTYPES:
            raise VlatwinError(f"{where}: dtype={dtype!r}; known: {', '.join(DTYPES)}")
        if rotation not in _ROTATIONS:
            raise VlatwinError(f"{where}: rotation={rotation!r}; known: {', '.join(_ROTATIONS)}")
        try:
            gripper = GripperConvention(gripper).value
        except ValueError:
            raise VlatwinError(
                f"{where}: gripper={gripper!r}; known: {', '.join(c.value for c in GripperConvention)}"
            ) from None
        config = check_model_folder(self.folder, trust_remote_code=trust_remote_code)
        self.decode_mode = decode
        self.camera = camera or None
        self.seed = int(seed)

        # Action head: norm stats (openvla) or a plain dimension count (text).
        self.unnorm_key: str | None = None
        self.stats: action_tokens.ActionStats | None = None
        if decode == "openvla":
            norm_stats = load_norm_stats(self.folder, config)
            if not norm_stats:
                raise VlatwinError(
                    f"{where}: no norm stats (config.json norm_stats or dataset_statistics.json) to decode actions with; "
                    "use decode=text for a general VLM"
                )
            self.unnorm_key, self.stats = action_tokens.stats_for_key(norm_stats, unnorm_key)
            if action_dim not in (None, 0, self.stats.dim):
                raise VlatwinError(
                    f"{where}: action_dim={action_dim} but norm_stats[{self.unnorm_key!r}] has {self.stats.dim} dims"
                )
            self.action_dim = self.stats.dim
        else:
            self.action_dim = int(action_dim or 7)
            if self.action_dim < 1:
                raise VlatwinError(f"{where}: action_dim must be >= 1, got {self.action_dim}")
        default_new = self.action_dim if decode == "openvla" else 64
        self.max_new_tokens = int(max_new_tokens or default_new)
        if decode == "openvla" and self.max_new_tokens < self.action_dim:
            raise VlatwinError(f"{where}: max_new_tokens={self.max_new_tokens} < action_dim {self.action_dim}")

        template = prompt if prompt else (OPENVLA_PROMPT if decode == "openvla" else TEXT_PROMPT)
        try:
            template.format(instruction="x", action_dim=self.action_dim)
        except (KeyError, IndexError, ValueError) as exc:
            raise VlatwinError(
                f"{where}: prompt {template!r} is not a format string with {{instruction}} ({_one_line(exc)})"
            ) from None
        self.prompt_template = template
        self.lowercase_instruction = decode == "openvla" and not prompt

        # Load (torch/transformers only now).
        torch = require("torch", extra="hf")
        transformers = require("transformers", extra="hf")
        self._torch = torch
        self.dtype = getattr(torch, dtype)
        t0 = time.perf_counter()
        hf_logging = transformers.utils.logging
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # one "Loading weights" bar per episode worker is noise
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(
                str(self.folder), local_files_only=True, trust_remote_code=trust_remote_code
            )
            self.model = transformers.AutoModelForImageTextToText.from_pretrained(
                str(self.folder), local_files_only=True, trust_remote_code=trust_remote_code, dtype=self.dtype
            )
        except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
            raise VlatwinError(f"{where}: cannot load it as an image-text-to-text model ({_one_line(exc)})") from None
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        self.model.eval()
        self.load_s = time.perf_counter() - t0

        text_config = self.model.config.get_text_config()
        self.n_bins = int(config.get("n_action_bins", action_tokens.N_BINS))
        self.pad_to_multiple_of = int(config.get("pad_to_multiple_of", 0) or 0)
        self.vocab_size = (
            action_tokens.action_vocab_size(text_config.vocab_size, self.pad_to_multiple_of)
            if decode == "openvla"
            else None
        )
        self.image_token = getattr(self.processor, "image_token", None)
        self.image_size = _image_size(self.processor)
        self.last_token_ids: np.ndarray | None = None
        """Ids generated by the latest :meth:`act` (new tokens only)."""
        self.last_text: str | None = None
        """Decoded text of the latest :meth:`act` (``decode=text``)."""
        self.info = PolicyInfo(
            name=f"hf:{self.folder.name}",
            action_space=action_space,
            chunk_size=1,
            action_dim=self.action_dim,
            control_hz=control_hz,
            image_keys=(self.camera,) if self.camera else (),
            image_size=self.image_size,
            prompt_template=self.prompt_template,
            gripper_convention=gripper,
            controller_options={"rotation": rotation} if action_space == "ee_delta_pose" else {},
        )

    # ------------------------------------------------------------------ inputs
    def prompt(self, instruction: str | None) -> str:
        """The model's prompt for a task instruction."""
        text = (instruction or "").strip()
        if self.lowercase_instruction:
            text = text.lower()
        return self.prompt_template.format(instruction=text, action_dim=self.action_dim)

    def image(self, observation) -> np.ndarray:
        """The camera's RGB (H, W, 3) uint8, resized with padding to the processor's size."""
        name = self.camera
        if name is None:
            names = [k for k, v in observation.sensors.items() if isinstance(v, dict) and "rgb" in v]
            if not names:
                raise VlatwinError(f"hf://{self.folder}: the observation has no camera image (give ?camera=NAME)")
            name = names[0]
        rgb = camera_rgb(observation, name)
        if self.image_size is not None:
            rgb = resize_with_pad(rgb, *self.image_size)
        return rgb

    def inputs(self, image: np.ndarray, prompt: str):
        """Processor outputs for one image and prompt (float tensors in the model's dtype)."""
        from PIL import Image

        text = prompt
        if self.image_token and self.image_token not in text:
            text = self.image_token + text
        batch = self.processor(text=text, images=Image.fromarray(np.ascontiguousarray(image)), return_tensors="pt")
        batch.pop("labels", None)
        return {
            k: (v.to(self.dtype) if hasattr(v, "is_floating_point") and v.is_floating_point() else v)
            for k, v in batch.items()
        }

    # ------------------------------------------------------------------ policy
    def reset(self, episode: int | None = None) -> None:
        self.last_token_ids = None
        self.last_text = None

    def generate(self, inputs) -> np.ndarray:
        """Greedy generation; the new token ids (N,)."""
        torch = self._torch
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": False, "num_beams": 1}
        if self.decode_mode == "openvla":
            kwargs["min_new_tokens"] = self.action_dim
        tok = getattr(self.processor, "tokenizer", None)
        pad = getattr(tok, "pad_token_id", None) if tok is not None else None
        if pad is not None:
            kwargs["pad_token_id"] = pad
        # Greedy: nothing is drawn; seeded anyway (in a forked generator, leaving the process's alone) so
        # any model-side randomness repeats.
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(self.seed)
            out = self.model.generate(**inputs, **kwargs)
        n_in = int(inputs["input_ids"].shape[1])
        return out[0, n_in:].detach().cpu().numpy().astype(np.int64)

    def decode(self, new_ids: np.ndarray) -> np.ndarray:
        """New token ids -> one action (D,)."""
        if self.decode_mode == "openvla":
            return action_tokens.decode(new_ids, self.stats, self.vocab_size, self.n_bins)
        text = self.processor.tokenizer.decode([int(i) for i in new_ids], skip_special_tokens=True)
        self.last_text = text
        return parse_action_text(text, self.action_dim)

    def act(self, observation) -> ActionChunk:
        t0 = time.perf_counter()
        inputs = self.inputs(self.image(observation), self.prompt(getattr(observation, "instruction", None)))
        t1 = time.perf_counter()
        new_ids = self.generate(inputs)
        t2 = time.perf_counter()
        self.last_token_ids = new_ids
        action = self.decode(new_ids)
        if not np.all(np.isfinite(action)):
            raise VlatwinError(f"hf://{self.folder}: the model's action has NaN/Inf: {action}")
        t3 = time.perf_counter()
        timing = {
            "preprocess_ms": (t1 - t0) * 1e3,
            "generate_ms": (t2 - t1) * 1e3,
            "infer_ms": (t3 - t0) * 1e3,
        }
        return ActionChunk(action[None, :], self.info.action_space, timing)

    def close(self) -> None:
        self.model = None
        self.processor = None


def from_spec(target: str, options: dict, context) -> HFPolicy:
    """``hf://FOLDER?decode=openvla|text&unnorm_key=..&camera=..&prompt=..&trust_remote_code=1...``."""
    from vlatwin.policy.factory import take_options

    opts = take_options(
        options,
        {
            "decode": "openvla",
            "unnorm_key": "",
            "camera": "",
            "prompt": "",
            "action_space": "ee_delta_pose",
            "gripper": "open_0_1",
            "rotation": "rpy",
            "action_dim": 0,
            "max_new_tokens": 0,
            "dtype": "float32",
            "trust_remote_code": False,
            "control_hz": 0.0,
            "seed": -1,
        },
        f"--policy hf://{target}",
    )
    cameras = tuple(getattr(context, "cameras", ()) or ())
    camera = opts["camera"] or (cameras[0] if cameras else None)
    if opts["camera"] and cameras and opts["camera"] not in cameras:
        raise VlatwinError(
            f"--policy hf://{target}: camera {opts['camera']!r} is not in the scene (cameras: {', '.join(cameras)})"
        )
    seed = opts["seed"] if opts["seed"] >= 0 else int(getattr(context, "seed", 0) or 0)
    return HFPolicy(
        target,
        decode=opts["decode"],
        unnorm_key=opts["unnorm_key"] or None,
        camera=camera,
        prompt=opts["prompt"] or None,
        action_space=opts["action_space"],
        gripper=opts["gripper"],
        rotation=opts["rotation"],
        action_dim=opts["action_dim"] or None,
        max_new_tokens=opts["max_new_tokens"] or None,
        dtype=opts["dtype"],
        trust_remote_code=opts["trust_remote_code"],
        control_hz=opts["control_hz"] or None,
        seed=seed,
    )


__all__ = ["OPENVLA_PROMPT", "TEXT_PROMPT", "HFPolicy", "check_model_folder", "from_spec", "load_norm_stats"]
