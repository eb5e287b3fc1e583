"""OpenVLA's action-token contract (pure numpy): the last ``n_bins`` vocabulary ids are action bins.

Follows openvla/openvla@c8f03f4 exactly:

* decode (``OpenVLAForActionPrediction.predict_action``, prismatic/extern/hf/modeling_prismatic.py):
  ``vocab_size = text_config.vocab_size - pad_to_multiple_of``; ``bins = linspace(-1, 1, n_bins)`` and
  ``bin_centers`` their ``n_bins - 1`` midpoints; ``disc = clip(vocab_size - ids - 1, 0, n_bins - 2)``;
  ``normalized = bin_centers[disc]``; then ``0.5 * (a + 1) * (q99 - q01) + q01`` where ``mask`` is True,
  the raw bin centre elsewhere (the gripper of EEF_POS datasets).
* encode (``ActionTokenizer``, prismatic/vla/action_tokenizer.py): clip to [-1, 1],
  ``np.digitize(a, bins)`` (1..n_bins), token id ``vocab_size - bin``.
* normalization (``BOUNDS_Q99``, prismatic/vla/datasets/rlds/utils/data_utils.py): [q01, q99] -> [-1, 1],
  clipped; dims with q01 == q99 become 0; unmasked dims pass through.

For OpenVLA-7B: text vocab 32064, ``pad_to_multiple_of`` 64, so ``vocab_size`` 32000 and the action
tokens are ids 31744..31999 (the last 256 ids of the Llama vocabulary).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlatwin.errors import VlatwinError

#: OpenVLA's number of action bins (``n_action_bins`` in its config).
N_BINS = 256


@dataclass(frozen=True)
class ActionStats:
    """The ``norm_stats[key]["action"]`` entries decode needs (OpenVLA / RLDS dataset statistics)."""

    q01: np.ndarray
    """(D,) 1st percentile per action dimension."""
    q99: np.ndarray
    """(D,) 99th percentile per action dimension."""
    mask: np.ndarray
    """(D,) bool: True where the dimension is normalized (False: raw bin centre, e.g. the gripper)."""

    @property
    def dim(self) -> int:
        return int(self.q01.shape[0])

    @classmethod
    def from_dict(cls, action: dict, *, where: str = "norm stats") -> ActionStats:
        """From ``norm_stats[key]["action"]`` (``q01``, ``q99``, optional ``mask``; default all True)."""
        if not isinstance(action, dict) or "q01" not in action or "q99" not in action:
            have = ", ".join(sorted(action)) if isinstance(action, dict) else type(action).__name__
            raise VlatwinError(f"{where}: action statistics need 'q01' and 'q99' (have: {have})")
        q01 = np.asarray(action["q01"], dtype=np.float64).reshape(-1)
        q99 = np.asarray(action["q99"], dtype=np.float64).reshape(-1)
        mask = np.asarray(action.get("mask", [True] * q01.shape[0]), dtype=bool).reshape(-1)
        if not (q01.shape == q99.shape == mask.shape) or q01.shape[0] < 1:
            raise VlatwinError(
                f"{where}: q01, q99 and mask must have the same length >= 1, got {q01.shape[0]}, {q99.shape[0]}, {mask.shape[0]}"
            )
        if not (np.all(np.isfinite(q01)) and np.all(np.isfinite(q99))):
            raise VlatwinError(f"{where}: q01/q99 must be finite")
        return cls(q01=q01, q99=q99, mask=mask)


def bins_and_centers(n_bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """``bins = linspace(-1, 1, n_bins)`` and their ``n_bins - 1`` midpoints."""
    if n_bins < 2:
        raise VlatwinError(f"n_bins must be >= 2, got {n_bins}")
    bins = np.linspace(-1.0, 1.0, n_bins)
    return bins, (bins[:-1] + bins[1:]) / 2.0


def action_vocab_size(text_vocab_size: int, pad_to_multiple_of: int = 0) -> int:
    """OpenVLA's ``vocab_size``: the text vocabulary without the padding rows (32064 - 64 = 32000)."""
    vocab = int(text_vocab_size) - int(pad_to_multiple_of or 0)
    if vocab <= N_BINS:
        raise VlatwinError(f"vocabulary of {vocab} ids is too small for action tokens (needs more than {N_BINS})")
    return vocab


def token_ids_to_normalized(ids, vocab_size: int, n_bins: int = N_BINS) -> np.ndarray:
    """Generated token ids -> normalized actions in [-1, 1] (the bin centres)."""
    _, centers = bins_and_centers(n_bins)
    ids = np.asarray(ids, dtype=np.int64)
    disc = np.clip(int(vocab_size) - ids - 1, 0, centers.shape[0] - 1)
    return centers[disc]


def unnormalize(normalized, stats: ActionStats) -> np.ndarray:
    """``0.5 * (a + 1) * (q99 - q01) + q01`` where ``stats.mask``; the value itself elsewhere."""
    a = np.asarray(normalized, dtype=np.float64)
    return np.where(stats.mask, 0.5 * (a + 1.0) * (stats.q99 - stats.q01) + stats.q01, a)


def normalize(actions, stats: ActionStats) -> np.ndarray:
    """BOUNDS_Q99: [q01, q99] -> [-1, 1] clipped where masked; 0 where q01 == q99; unmasked dims unchanged."""
    a = np.asarray(actions, dtype=np.float64)
    span = stats.q99 - stats.q01
    safe = np.where(span == 0, 1.0, span)
    scaled = np.clip(2.0 * (a - stats.q01) / safe - 1.0, -1.0, 1.0)
    scaled = np.where(span == 0, 0.0, scaled)
    return np.where(stats.mask, scaled, a)


def decode(ids, stats: ActionStats, vocab_size: int, n_bins: int = N_BINS) -> np.ndarray:
    """The last ``stats.dim`` generated ids -> one action (D,), as ``predict_action`` does."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.shape[0] < stats.dim:
        raise VlatwinError(f"need {stats.dim} action tokens, the model generated {ids.shape[0]}")
    return unnormalize(token_ids_to_normalized(ids[-stats.dim :], vocab_size, n_bins), stats)


def encode(actions, stats: ActionStats | None, vocab_size: int, n_bins: int = N_BINS) -> np.ndarray:
    """Actions (..., D) -> token ids (training side): normalize (if ``stats``), clip, digitize, ``vocab_size - bin``."""
    a = np.asarray(actions, dtype=np.float64)
    if stats is not None:
        a = normalize(a, stats)
    bins, _ = bins_and_centers(n_bins)
    return int(vocab_size) - np.digitize(np.clip(a, -1.0, 1.0), bins)


def bin_width(n_bins: int = N_BINS) -> float:
    """Width of one bin in normalized units (2 / (n_bins - 1))."""
    return 2.0 / (n_bins - 1)


def select_unnorm_key(norm_stats: dict, key: str | None) -> str:
    """The dataset key to un-normalize with (OpenVLA's ``_check_unnorm_key``): may be omitted only when there
    is exactly one."""
    if not isinstance(norm_stats, dict) or not norm_stats:
        raise VlatwinError("the model has no norm_stats (no dataset statistics to un-normalize actions with)")
    keys = ", ".join(sorted(norm_stats))
    if key is None or key == "":
        if len(norm_stats) != 1:
            raise VlatwinError(f"the model was trained on several datasets; pick one with unnorm_key= (one of: {keys})")
        return next(iter(norm_stats))
    if key not in norm_stats:
        raise VlatwinError(f"unnorm_key {key!r} is not in the model's norm_stats (have: {keys})")
    return key


def stats_for_key(norm_stats: dict, key: str | None) -> tuple[str, ActionStats]:
    """``(key, ActionStats)`` of ``norm_stats[key]["action"]``."""
    key = select_unnorm_key(norm_stats, key)
    entry = norm_stats[key]
    action = entry.get("action") if isinstance(entry, dict) else None
    if action is None:
        raise VlatwinError(f"norm_stats[{key!r}] has no 'action' statistics")
    return key, ActionStats.from_dict(action, where=f"norm_stats[{key!r}]['action']")


__all__ = [
    "N_BINS",
    "ActionStats",
    "action_vocab_size",
    "bin_width",
    "bins_and_centers",
    "decode",
    "encode",
    "normalize",
    "select_unnorm_key",
    "stats_for_key",
    "token_ids_to_normalized",
    "unnormalize",
]
