"""OpenVLA action tokens (numpy only): decode against hand-computed values, encode round trip, BOUNDS_Q99."""

from __future__ import annotations

import numpy as np
import pytest
from vlatwin.errors import VlatwinError
from vlatwin.policy.action_tokens import (
    ActionStats,
    action_vocab_size,
    bin_width,
    bins_and_centers,
    decode,
    encode,
    normalize,
    select_unnorm_key,
    stats_for_key,
    token_ids_to_normalized,
    unnormalize,
)

# OpenVLA-7B: text vocab 32064 padded by 64 -> 32000; action tokens 31744..31999.
VOCAB = action_vocab_size(32064, 64)
STATS = ActionStats(
    q01=np.array([-0.02, -0.04, -0.01, -0.1, -0.2, -0.3, 0.0]),
    q99=np.array([0.02, 0.04, 0.03, 0.1, 0.2, 0.3, 1.0]),
    mask=np.array([True] * 6 + [False]),
)


def test_vocab_size_is_text_vocab_minus_padding():
    """32064 - 64 = 32000, as predict_action computes it; too small a vocabulary is an error."""
    assert VOCAB == 32000
    with pytest.raises(VlatwinError, match="too small"):
        action_vocab_size(300, 64)


def test_bins_and_centers_match_linspace_midpoints():
    """256 bin edges in [-1, 1] and 255 centres; one bin is 2/255 wide."""
    bins, centers = bins_and_centers(256)
    assert bins.shape == (256,) and centers.shape == (255,)
    assert centers[0] == pytest.approx(-1 + 1 / 255)
    assert centers[-1] == pytest.approx(1 - 1 / 255)
    assert bin_width() == pytest.approx(2 / 255)


def test_decode_hand_computed_ids():
    """id 31999 -> disc 0 -> centre -1+1/255; id 31744 -> disc 255 clipped to 254 -> 1-1/255; ids outside clip."""
    lo, hi = -1 + 1 / 255, 1 - 1 / 255
    norm = token_ids_to_normalized([31999, 31744, 31745, 31872, 100, 32050], VOCAB)
    # 31872: disc = 32000 - 31872 - 1 = 127 -> centre -1 + 127.5 * 2/255 = 0; 100 -> disc 31899 -> 254;
    # 32050 (a padding row) -> disc -51 -> 0.
    np.testing.assert_allclose(norm, [lo, hi, hi, 0.0, hi, lo], atol=1e-12)


def test_unnormalize_masked_dims_and_raw_gripper():
    """0.5*(a+1)*(q99-q01)+q01 on masked dims; the unmasked gripper keeps the raw bin centre."""
    a = np.array([-1.0, 1.0, 0.0, 0.5, -0.5, 0.0, 0.25])
    out = unnormalize(a, STATS)
    expected = [-0.02, 0.04, 0.01, 0.05, -0.1, 0.0, 0.25]
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_decode_takes_last_dim_ids():
    """decode keeps the last D ids (predict_action's generated_ids[0, -D:])."""
    ids = [5, 6, 31999, 31999, 31999, 31999, 31999, 31999, 31744]
    out = decode(ids, STATS, VOCAB)
    lo, hi = -1 + 1 / 255, 1 - 1 / 255
    expected = unnormalize(np.array([lo] * 6 + [hi]), STATS)
    np.testing.assert_allclose(out, expected)
    with pytest.raises(VlatwinError, match="need 7 action tokens"):
        decode(ids[:3], STATS, VOCAB)


def test_encode_is_vocab_minus_digitized_bin():
    """ActionTokenizer: clip, digitize into 1..256, token = vocab_size - bin."""
    ids = encode(np.array([-1.0, 1.0, 0.0, -5.0]), None, VOCAB)
    np.testing.assert_array_equal(ids, [32000 - 1, 32000 - 256, 32000 - 128, 32000 - 1])


def test_encode_decode_round_trip_within_one_bin():
    """Random actions inside [q01, q99] come back within one bin width (in action units); the gripper too."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(STATS.q01, STATS.q99, size=(500, 7))
    actions[:, 6] = rng.uniform(-1, 1, size=500)
    ids = encode(actions, STATS, VOCAB)
    assert ids.min() >= VOCAB - 256 and ids.max() <= VOCAB - 1
    back = np.stack([decode(row, STATS, VOCAB) for row in ids])
    width = bin_width() * np.where(STATS.mask, (STATS.q99 - STATS.q01) / 2, 1.0)
    assert np.all(np.abs(back - actions) <= width + 1e-12)


def test_normalize_bounds_q99_clips_and_zeroes_constant_dims():
    """BOUNDS_Q99 maps [q01, q99] to [-1, 1], clips outside, gives 0 where q01 == q99, skips unmasked dims."""
    stats = ActionStats(
        q01=np.array([0.0, 1.0, -1.0]), q99=np.array([2.0, 1.0, 1.0]), mask=np.array([True, True, False])
    )
    out = normalize(np.array([[0.5, 7.0, 0.3], [5.0, 1.0, -4.0]]), stats)
    np.testing.assert_allclose(out, [[-0.5, 0.0, 0.3], [1.0, 0.0, -4.0]])


def test_select_unnorm_key_like_check_unnorm_key():
    """One dataset: the key may be omitted; several: it must be given; an unknown key lists the keys."""
    one = {"bridge_orig": {}}
    assert select_unnorm_key(one, None) == "bridge_orig"
    two = {"bridge_orig": {}, "fractal": {}}
    with pytest.raises(VlatwinError, match="bridge_orig, fractal") as err:
        select_unnorm_key(two, None)
    assert "\n" not in str(err.value)
    with pytest.raises(VlatwinError, match="not in the model's norm_stats"):
        select_unnorm_key(two, "libero")
    with pytest.raises(VlatwinError, match="no norm_stats"):
        select_unnorm_key({}, None)


def test_stats_for_key_reads_openvla_layout():
    """norm_stats[key]['action'] with q01/q99/mask; mask defaults to all True; bad lengths are an error."""
    ns = {"k": {"action": {"q01": [0, 0], "q99": [1, 2]}}}
    key, stats = stats_for_key(ns, None)
    assert key == "k" and stats.dim == 2 and stats.mask.all()
    with pytest.raises(VlatwinError, match="same length"):
        stats_for_key({"k": {"action": {"q01": [0], "q99": [1, 2]}}}, "k")
    with pytest.raises(VlatwinError, match="no 'action'"):
        stats_for_key({"k": {"proprio": {}}}, "k")
