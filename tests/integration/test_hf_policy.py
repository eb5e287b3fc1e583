"""Hugging Face in-process policy with tiny random Llava / PaliGemma / Idefics3 models (CPU, no network).

The models are built from configs once per module (``vlatwin.policy.tiny_vlm``), saved, and loaded back
through ``hf://FOLDER`` as a user would.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from vlatwin.errors import VlatwinError
from vlatwin.loop.control_loop import Observation
from vlatwin.policy import action_tokens
from vlatwin.policy.factory import PolicyContext, make_policy_from_spec
from vlatwin.policy.tiny_vlm import FAMILIES, TINY_ACTION_STATS, TINY_UNNORM_KEY, main, make_tiny_vla
from vlatwin.sim.types import SimState

# transformers' PaliGemmaProcessor builds its labels with np.array(copy=False) semantics (numpy 2 warns).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

CONTEXT = PolicyContext(cameras=("front",))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """family -> folder of a saved tiny model (llava through the command line's main())."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        root = tmp_path_factory.mktemp("tiny_vla")
        folders = {}
        for family in FAMILIES:
            folder = root / family
            if family == "llava":
                assert main([str(folder), "--family", "llava"]) == 0
            else:
                make_tiny_vla(folder, family)
            folders[family] = folder
        yield folders


@pytest.fixture(scope="module")
def policies(models):
    """family -> HFPolicy loaded through make_policy_from_spec (built once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield {f: make_policy_from_spec(f"hf://{folder}", CONTEXT) for f, folder in models.items()}


def observation(value: int, instruction: str = "Pick up the red cube") -> Observation:
    state = SimState(
        time=0.0,
        step=0,
        joint_q=np.zeros(9),
        joint_qd=np.zeros(9),
        body_pose_w=np.zeros((1, 7)),
        body_vel_w=np.zeros((1, 6)),
    )
    rgb = np.full((224, 224, 3), value, dtype=np.uint8)
    return Observation(time=0.0, step=0, state=state, sensors={"front": {"rgb": rgb}}, instruction=instruction)


@pytest.mark.parametrize("family", FAMILIES)
def test_black_and_white_images_give_different_safe_actions(policies, family):
    """Shape (1, 7), finite, inside the q01/q99 bounds, different for a black and a white image, repeatable."""
    policy = policies[family]
    policy.reset(episode=0)
    black, white = policy.act(observation(0)), policy.act(observation(255))
    lo, hi = np.array(TINY_ACTION_STATS["q01"]), np.array(TINY_ACTION_STATS["q99"])
    for chunk in (black, white):
        assert chunk.actions.shape == (1, 7)
        assert np.all(np.isfinite(chunk.actions))
        assert np.all(chunk.actions >= lo) and np.all(chunk.actions <= hi)
        assert chunk.timing["infer_ms"] > 0
        assert np.abs(chunk.actions[0, :3]).max() <= 0.01 and np.abs(chunk.actions[0, 3:6]).max() <= 0.05
    assert not np.array_equal(black.actions, white.actions)
    np.testing.assert_array_equal(policy.act(observation(0)).actions, black.actions)


@pytest.mark.parametrize("family", FAMILIES)
def test_policy_info_declares_openvla_conventions(policies, family):
    """ee_delta_pose, OpenVLA's open_0_1 gripper and rpy rotation, the camera, the processor's image size."""
    info = policies[family].info
    assert info.action_space == "ee_delta_pose" and info.chunk_size == 1 and info.action_dim == 7
    assert info.gripper_convention == "open_0_1" and info.controller_options == {"rotation": "rpy"}
    assert info.image_keys == ("front",) and info.image_size == (32, 32)
    assert info.prompt_template.startswith("In: What action should the robot take to {instruction}?")
    assert policies[family].unnorm_key == TINY_UNNORM_KEY


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_ids_decode_like_action_tokens(policies, family):
    """Running processor + generate by hand and decoding with action_tokens gives the policy's action."""
    import torch
    from PIL import Image

    policy = policies[family]
    chunk = policy.act(observation(255, "Reach the target"))
    prompt = "In: What action should the robot take to reach the target?\nOut:"
    assert policy.prompt("Reach the target") == prompt
    processor, model = policy.processor, policy.model
    text = processor.image_token + prompt
    inputs = processor(text=text, images=Image.fromarray(np.full((32, 32, 3), 255, np.uint8)), return_tensors="pt")
    inputs.pop("labels", None)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=7, min_new_tokens=7, do_sample=False)
    ids = out[0, -7:].numpy()
    np.testing.assert_array_equal(ids, policy.last_token_ids)
    vocab = action_tokens.action_vocab_size(model.config.get_text_config().vocab_size, 64)
    assert np.all((ids >= vocab - 256) & (ids < vocab)), "the tiny head only scores action tokens"
    stats = action_tokens.ActionStats.from_dict(TINY_ACTION_STATS)
    np.testing.assert_allclose(chunk.actions[0], action_tokens.decode(ids, stats, vocab))


def test_text_decoder_parses_the_generated_answer(models, monkeypatch):
    """decode=text: the generated tokens are decoded to text and parsed (generate forced to an answer)."""
    import torch

    policy = make_policy_from_spec(f"hf://{models['llava']}?decode=text&action_dim=7", CONTEXT)
    assert "{instruction}" in policy.info.prompt_template and policy.max_new_tokens == 64
    tok = policy.processor.tokenizer
    answer = ["[", "0.01", ",", "-0.02", ",", "0.0", ",", "0", ",", "0", ",", "0", ",", "1", "]"]
    ids = torch.tensor([tok.convert_tokens_to_ids(answer)])
    assert tok.unk_token_id not in ids[0].tolist()

    def forced(**kwargs):
        return torch.cat([kwargs["input_ids"], ids], dim=1)

    monkeypatch.setattr(policy.model, "generate", forced)
    chunk = policy.act(observation(0))
    np.testing.assert_allclose(chunk.actions[0], [0.01, -0.02, 0.0, 0, 0, 0, 1])
    assert "0.01" in policy.last_text

    ids = torch.tensor([tok.convert_tokens_to_ids(["[", "0.5", "]"])])  # `forced` now answers this
    with pytest.raises(VlatwinError, match="expected 7 numbers") as err:
        policy.act(observation(0))
    assert "\n" not in str(err.value)


def test_remote_code_needs_the_flag(models, tmp_path):
    """A config with auto_map is refused without ?trust_remote_code=1 (one line naming the option)."""
    folder = tmp_path / "remote"
    shutil.copytree(models["llava"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModelForImageTextToText": "modeling_x.XModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(VlatwinError, match=r"trust_remote_code=1") as err:
        make_policy_from_spec(f"hf://{folder}", CONTEXT)
    assert "\n" not in str(err.value)
    config["auto_map"] = {"AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(VlatwinError, match="openvla://"):
        make_policy_from_spec(f"hf://{folder}?trust_remote_code=1", CONTEXT)


def test_bad_folders_and_options_are_one_line_errors(models, tmp_path):
    """Missing folder, a folder without config.json, no norm stats, unknown unnorm_key / option / camera."""
    cases = [
        (f"hf://{tmp_path / 'nope'}", "no such folder"),
        (f"hf://{tmp_path}", "not a Hugging Face model folder"),
        (f"hf://{models['llava']}?unnorm_key=bridge_orig", "vlatwin_panda"),
        (f"hf://{models['llava']}?colour=red", "unknown option 'colour'"),
        (f"hf://{models['llava']}?camera=wrist", "not in the scene"),
        (f"hf://{models['llava']}?decode=fast", "decode='fast'"),
        (f"hf://{models['llava']}?gripper=sticky", "open_0_1"),
        (f"hf://{models['llava']}?prompt=do%20{{task}}", "format string"),
    ]
    no_stats = tmp_path / "no_stats"
    shutil.copytree(models["llava"], no_stats)
    config = json.loads((no_stats / "config.json").read_text())
    del config["norm_stats"]
    (no_stats / "config.json").write_text(json.dumps(config))
    (no_stats / "dataset_statistics.json").unlink()
    cases.append((f"hf://{no_stats}", "no norm stats"))
    for spec, match in cases:
        with pytest.raises(VlatwinError, match=match) as err:
            make_policy_from_spec(spec, CONTEXT)
        assert "\n" not in str(err.value), spec


def test_dataset_statistics_json_is_read_when_config_has_none(models, tmp_path):
    """Norm stats from dataset_statistics.json (OpenVLA's fine-tuning output) when config.json has none."""
    folder = tmp_path / "ds_stats"
    shutil.copytree(models["idefics3"], folder)
    config = json.loads((folder / "config.json").read_text())
    del config["norm_stats"]
    (folder / "config.json").write_text(json.dumps(config))
    policy = make_policy_from_spec(f"hf://{folder}?unnorm_key={TINY_UNNORM_KEY}&camera=front", CONTEXT)
    assert policy.act(observation(128)).actions.shape == (1, 7)


def test_command_line_help():
    """python -m vlatwin.policy.tiny_vlm --help explains itself."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "vlatwin.policy.tiny_vlm", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert out.returncode == 0 and "--family" in out.stdout and "hf://OUT_FOLDER" in out.stdout
