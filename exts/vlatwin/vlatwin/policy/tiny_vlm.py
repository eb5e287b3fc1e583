"""Tiny random vision-language models with an OpenVLA-style action head, built offline for tests and demos.

``make_tiny_vla(folder, family)`` writes a Hugging Face model folder (config, weights, processor) that
``hf://FOLDER`` loads with no network: a ~0.1M-parameter Llava, PaliGemma or Idefics3 with random weights,
a word-level tokenizer that holds the OpenVLA prompt's words, and OpenVLA-style ``norm_stats``. Its
vocabulary reserves the last 256 ids (before ``pad_to_multiple_of`` padding rows) as action bins and its
output head only scores those ids, so greedy decoding always yields action tokens, and the image changes
them. The actions mean nothing, but they are small and safe (see :data:`TINY_ACTION_STATS`).

Command line::

    python -m vlatwin.policy.tiny_vlm /tmp/tiny_vla --family llava
    vlatwin eval CONFIG --policy hf:///tmp/tiny_vla
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vlatwin._deps import require
from vlatwin.errors import VlatwinError
from vlatwin.policy.action_tokens import N_BINS

FAMILIES = ("llava", "paligemma", "idefics3")

#: The dataset key of the tiny models' norm stats.
TINY_UNNORM_KEY = "vlatwin_panda"

#: q01/q99/mask of the tiny models' ee_delta_pose actions: translation within +-0.01 m, rotation within
#: +-0.05 rad per step, gripper in [0, 1] (open_0_1). The gripper is normalized too (mask True), so that a
#: random model cannot leave [0, 1]; OpenVLA's own datasets leave it unnormalized (mask False).
TINY_ACTION_STATS = {
    "q01": [-0.01, -0.01, -0.01, -0.05, -0.05, -0.05, 0.0],
    "q99": [0.01, 0.01, 0.01, 0.05, 0.05, 0.05, 1.0],
    "mask": [True] * 7,
}

#: Rows of padding after the action bins (OpenVLA-7B pads its 32000 ids to 32064).
PAD_TO_MULTIPLE_OF = 64
IMAGE_SIZE = 32
PATCH_SIZE = 8
HIDDEN = 32

_SPECIAL = [
    "<pad>",
    "<unk>",
    "<bos>",
    "<eos>",
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    "<end_of_utterance>",
]
_IDEFICS_TILES = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]


def _split(text: str) -> list[str]:
    return text.split()


_PROMPT_WORDS = _split("In : What action should the robot take to ? Out USER ASSISTANT")
#: Words of the built-in tasks' instructions (vlatwin.tasks), so their prompts tokenize without unknowns.
_TASK_WORDS = _split(
    "a an the and of on in into onto to from with by up down left right top bottom front back near far over "
    "around off it your pick place put set lift raise move push pushing pull slide reach touch grasp grab "
    "open close stack drop turn rotate go hover make build tower hand fingers gripper arm cube block box "
    "bowl plate cup mug can bottle ball sphere cylinder drawer door target goal table object region area "
    "zone square marked red green blue yellow black white orange purple small big"
)
_NUMBER_WORDS = _split("[ ] ( ) , . = - 0 1 0.0 0.01 -0.01 0.02 -0.02 0.05 -0.05 0.5 1.0 dx dy dz droll dpitch dyaw")


def tiny_vocabulary() -> list[str]:
    """The word-level vocabulary (words first, then 256 action bins, then padding rows)."""
    words: list[str] = []
    for w in _SPECIAL + _IDEFICS_TILES + _PROMPT_WORDS + _TASK_WORDS + _NUMBER_WORDS:
        if w not in words:
            words.append(w)
    vocab = words + [f"<act_{i}>" for i in range(N_BINS)]
    vocab += [f"<padrow_{i}>" for i in range(PAD_TO_MULTIPLE_OF)]
    return vocab


def _tokenizer(vocab: list[str]):
    tokenizers = require("tokenizers", extra="hf")
    transformers = require("transformers", extra="hf")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    # Whitespace = \w+|[^\w\s]+ : "In:" -> "In", ":"; "cube?" -> "cube", "?".
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.decoder = tokenizers.decoders.WordPiece(prefix="##", cleanup=False)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )
    fast.add_tokens(
        ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", *_IDEFICS_TILES],
        special_tokens=True,
    )
    return fast


def _text_config(vocab_size: int, family: str, ids: dict) -> dict:
    common = {
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "max_position_embeddings": 256,
        "tie_word_embeddings": False,
        "pad_token_id": ids["<pad>"],
        "bos_token_id": ids["<bos>"],
        "eos_token_id": ids["<eos>"],
    }
    common["model_type"] = "gemma" if family == "paligemma" else "llama"
    return common


def _build(family: str, vocab: list[str]):
    transformers = require("transformers", extra="hf")
    ids = {w: i for i, w in enumerate(vocab)}
    text = _text_config(len(vocab), family, ids)
    tokenizer = _tokenizer(vocab)
    n_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
    vision = {
        "hidden_size": HIDDEN,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
    }
    if family == "llava":
        config = transformers.LlavaConfig(
            vision_config=transformers.CLIPVisionConfig(**vision),
            text_config=transformers.LlamaConfig(**{k: v for k, v in text.items() if k != "model_type"}),
            image_token_id=ids["<image>"],
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
            projector_hidden_act="gelu",
            tie_word_embeddings=False,
        )
        image_processor = _image_processor(
            "CLIPImageProcessor",
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        )
        processor = transformers.LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=PATCH_SIZE,
            vision_feature_select_strategy="default",
            image_token="<image>",
            num_additional_image_tokens=1,
        )
    elif family == "paligemma":
        config = transformers.PaliGemmaConfig(
            vision_config=transformers.SiglipVisionConfig(**vision),
            text_config=transformers.GemmaConfig(**{k: v for k, v in text.items() if k != "model_type"}),
            image_token_id=ids["<image>"],
            projection_dim=HIDDEN,
            tie_word_embeddings=False,
        )
        image_processor = _image_processor("SiglipImageProcessor", size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        image_processor.image_seq_length = n_patches
        tokenizer.image_token = "<image>"
        tokenizer.image_token_id = ids["<image>"]
        processor = transformers.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    elif family == "idefics3":
        config = transformers.Idefics3Config(
            vision_config=dict(vision, model_type="idefics3_vision"),
            text_config=text,
            image_token_id=ids["<image>"],
            scale_factor=2,
            tie_word_embeddings=False,
            pad_token_id=ids["<pad>"],
        )
        image_processor = _image_processor(
            "Idefics3ImageProcessor",
            do_image_splitting=False,
            size={"longest_edge": IMAGE_SIZE},
            max_image_size={"longest_edge": IMAGE_SIZE},
        )
        processor = transformers.Idefics3Processor(
            image_processor=image_processor, tokenizer=tokenizer, image_seq_len=n_patches // 4
        )
    else:
        raise VlatwinError(f"unknown tiny model family {family!r}; known: {', '.join(FAMILIES)}")
    return config, processor


#: Gain on the random multimodal projector per family, so that a black and a white image decode differently.
_PROJECTOR_GAIN = {"llava": 3.0, "paligemma": 30.0, "idefics3": 1.0}
#: Gain on the word embeddings, so they do not drown the image (Gemma also multiplies them by sqrt(hidden)).
#: Checked over seeds 0-5 and two instructions: black and white images differ in >= 6 of the 7 action tokens.
_EMBEDDING_GAIN = {"llava": 0.3, "paligemma": 0.1, "idefics3": 0.3}


def _projector(model):
    for name, module in model.named_modules():
        if name.endswith(("multi_modal_projector", "connector")):
            return module
    raise VlatwinError(f"{type(model).__name__} has no multimodal projector")


def _image_processor(name: str, **kwargs):
    """The PIL backend when torchvision is absent (transformers 5 falls back to it with a warning otherwise)."""
    transformers = require("transformers", extra="hf")
    from vlatwin._deps import is_available

    cls = (
        getattr(transformers, name)
        if is_available("torchvision")
        else getattr(transformers, name + "Pil", None) or getattr(transformers, name)
    )
    return cls(**kwargs)


def make_tiny_vla(
    folder, family: str = "llava", *, seed: int = 0, action_stats: dict | None = None, unnorm_key: str = TINY_UNNORM_KEY
) -> Path:
    """Write a tiny random image-text-to-text model with an OpenVLA action head to ``folder``.

    Args:
        folder: output folder (created; existing model files are overwritten).
        family: ``llava``, ``paligemma`` or ``idefics3``.
        seed: torch seed of the random weights (same seed, same model).
        action_stats: ``norm_stats[unnorm_key]["action"]`` (q01, q99, mask); default :data:`TINY_ACTION_STATS`.
        unnorm_key: the dataset key of the norm stats.

    Returns:
        The folder, loadable with ``hf://FOLDER`` (no network).
    """
    if family not in FAMILIES:
        raise VlatwinError(f"unknown tiny model family {family!r}; known: {', '.join(FAMILIES)}")
    torch = require("torch", extra="hf")
    transformers = require("transformers", extra="hf")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocabulary()
    config, processor = _build(family, vocab)
    stats = dict(TINY_ACTION_STATS if action_stats is None else action_stats)
    q01 = np.asarray(stats["q01"], dtype=np.float64)
    q99 = np.asarray(stats["q99"], dtype=np.float64)
    stats.setdefault("mask", [True] * len(q01))
    stats.setdefault("min", list(q01))
    stats.setdefault("max", list(q99))
    stats.setdefault("mean", list((q01 + q99) / 2))
    stats.setdefault("std", list((q99 - q01) / 4))
    norm_stats = {
        unnorm_key: {
            "action": {k: [bool(x) if k == "mask" else float(x) for x in v] for k, v in stats.items()},
            "num_transitions": 0,
            "num_trajectories": 0,
        }
    }
    # OpenVLA-style head metadata, read by vlatwin.policy.hf.
    config.norm_stats = norm_stats
    config.n_action_bins = N_BINS
    config.pad_to_multiple_of = PAD_TO_MULTIPLE_OF
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = transformers.AutoModelForImageTextToText.from_config(config)
        head = model.get_output_embeddings()
        n_text = len(vocab)
        first_action = n_text - PAD_TO_MULTIPLE_OF - N_BINS
        with torch.no_grad():
            weight = head.weight
            weight[:first_action] = 0.0
            weight[n_text - PAD_TO_MULTIPLE_OF :] = 0.0
            weight[first_action : n_text - PAD_TO_MULTIPLE_OF] = torch.randn(N_BINS, weight.shape[1]) * 2.0
            # Make the image matter as much as the prompt (PaliGemma divides image features by sqrt(hidden)
            # and scales word embeddings up by it).
            for param in _projector(model).parameters():
                param.mul_(_PROJECTOR_GAIN[family])
            model.get_input_embeddings().weight.mul_(_EMBEDDING_GAIN[family])
    model.eval()
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards" bar for an 80k-parameter model is noise
    try:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    (folder / "dataset_statistics.json").write_text(json.dumps(norm_stats, indent=2))
    (folder / "README.md").write_text(
        f"# tiny {family} VLA (random weights)\n\nMade by `python -m vlatwin.policy.tiny_vlm` (seed {seed}). "
        "Its actions mean nothing; it exercises the Hugging Face adapter end to end: "
        f"`--policy hf://{folder}`.\n"
    )
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vlatwin.policy.tiny_vlm",
        description="Write a tiny random vision-language model with an OpenVLA-style action head "
        "(loads with --policy hf://OUT_FOLDER, no network).",
    )
    parser.add_argument("out_folder", help="folder to write the model and processor to")
    parser.add_argument("--family", choices=FAMILIES, default="llava", help="model class (default: llava)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    args = parser.parse_args(argv)
    try:
        folder = make_tiny_vla(args.out_folder, args.family, seed=args.seed)
    except VlatwinError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"wrote a tiny {args.family} VLA to {folder}; use it with --policy hf://{folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
