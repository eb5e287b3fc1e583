"""Normalization statistics: the maths per mode and the loaders on files in each model family's real format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from vlatwin.errors import VlatwinError
from vlatwin.policy.normalization import (
    NormMode,
    NormStats,
    load_lerobot_stats,
    load_openpi_stats,
    load_openvla_stats,
    parse_mode,
    stats_for,
)

# A 7-D OpenVLA-style action: delta xyz, delta rpy, gripper (not normalized), one flat dim (q01 == q99).
STATS = {
    "mean": [0.0, 0.1, -0.1, 0.0, 0.0, 0.0, 0.5],
    "std": [0.01, 0.02, 0.03, 0.1, 0.1, 0.1, 0.5],
    "min": [-0.05, -0.1, -0.2, -0.5, -0.5, 0.0, 0.0],
    "max": [0.05, 0.3, 0.0, 0.5, 0.5, 0.0, 1.0],
    "q01": [-0.04, -0.08, -0.15, -0.4, -0.4, 0.0, 0.0],
    "q99": [0.04, 0.28, -0.01, 0.4, 0.4, 0.0, 1.0],
    "mask": [True, True, True, True, True, True, False],
}


def test_known_values_per_mode():
    s = NormStats.from_dict(STATS)
    x = np.array([0.02, 0.1, -0.08, 0.4, -0.8, 0.3, 0.7])
    q = s.normalize(x, "q01_q99")
    np.testing.assert_allclose(q, [0.5, 0.0, 0.0, 1.0, -1.0, 0.0, 0.7], atol=1e-12)  # clipped; flat dim -> 0; gripper passes
    m = s.normalize(x, "min_max")
    np.testing.assert_allclose(m[:5], [0.4, 0.0, 0.2, 0.8, -1.6], atol=1e-12)  # min_max does not clip by default
    assert m[5] == 0.0 and m[6] == 0.7
    z = s.normalize(x, NormMode.MEAN_STD)
    np.testing.assert_allclose(z[:3], [2.0, 0.0, (-0.08 + 0.1) / 0.03], rtol=1e-6)
    np.testing.assert_array_equal(s.normalize(x, "identity"), x)
    # OpenVLA's un-normalization of bin centres: 0.5 * (a + 1) * (q99 - q01) + q01, gripper raw.
    a = np.array([-1.0, 0.0, 1.0, 0.5, -0.5, 0.3, 0.9])
    np.testing.assert_allclose(s.unnormalize(a, "q01_q99"), [-0.04, 0.1, -0.01, 0.2, -0.2, 0.0, 0.9], atol=1e-12)


@pytest.mark.parametrize("mode", ["mean_std", "min_max", "q01_q99", "identity"])
def test_round_trips(mode):
    s = NormStats.from_dict({k: v for k, v in STATS.items() if k != "mask"} | {"min": [-1] * 7, "max": [1, 1, 1, 1, 1, 2, 1],
                                                                                "q01": [-1] * 7, "q99": [1] * 7})
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.9, 0.9, size=(5, 7))  # inside every bound, so clipping does not bite
    # mean_std is not exactly invertible: LeRobot divides by std + 1e-8 but multiplies back by std.
    np.testing.assert_allclose(s.unnormalize(s.normalize(x, mode), mode), x, rtol=1e-6, atol=1e-9)


def test_mode_names_and_errors():
    assert parse_mode("QUANTILES") is NormMode.Q01_Q99 and parse_mode("MEAN_STD") is NormMode.MEAN_STD
    assert parse_mode("bounds_q99") is NormMode.Q01_Q99
    with pytest.raises(VlatwinError, match="unknown normalization mode 'zscore'"):
        parse_mode("zscore")
    only_mean = NormStats(mean=np.zeros(3), std=np.ones(3))
    with pytest.raises(VlatwinError, match="q01_q99 needs q01 and q99; the stats have mean, std"):
        only_mean.normalize(np.zeros(3), "q01_q99")
    with pytest.raises(VlatwinError, match="3 dimensions, the vector has shape \\(4,\\)"):
        only_mean.normalize(np.zeros(4), "mean_std")
    with pytest.raises(VlatwinError, match="disagree"):
        NormStats(mean=np.zeros(3), std=np.ones(4))
    with pytest.raises(VlatwinError, match="non-finite"):
        NormStats(mean=[0.0, np.nan])
    with pytest.raises(VlatwinError, match="no statistics for 'state'; have: actions"):
        stats_for({"actions": only_mean}, "state")


def test_openvla_loaders(tmp_path):
    entry = {"action": STATS, "proprio": {k: [0.0] * 7 for k in ("mean", "std", "min", "max", "q01", "q99")},
             "num_transitions": 10, "num_trajectories": 2}
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({"model_type": "openvla", "n_action_bins": 256,
                                                               "norm_stats": {"bridge_orig": entry, "fractal20220817_data": entry}}))
    with pytest.raises(VlatwinError, match="cover 2 datasets; pick one with unnorm_key= \\(bridge_orig, fractal20220817_data\\)"):
        load_openvla_stats(tmp_path / "ckpt")
    stats = load_openvla_stats(tmp_path / "ckpt", "bridge_orig")
    np.testing.assert_array_equal(stats["action"].mask, STATS["mask"])
    np.testing.assert_allclose(stats["action"].q99, STATS["q99"])
    assert set(stats) == {"action", "proprio"}
    with pytest.raises(VlatwinError, match="unnorm_key 'libero' is not in"):
        load_openvla_stats(tmp_path / "ckpt", "libero")
    # A fine-tuning run's dataset_statistics.json (one dataset) wins over config.json; no key needed.
    (tmp_path / "ckpt" / "dataset_statistics.json").write_text(json.dumps({"my_twin": {"action": STATS}}))
    assert set(load_openvla_stats(tmp_path / "ckpt")) == {"action"}
    with pytest.raises(VlatwinError, match="neither dataset_statistics.json nor config.json"):
        load_openvla_stats(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(VlatwinError, match="cannot read .*bad.json as JSON"):
        load_openvla_stats(tmp_path / "bad.json")


def test_openpi_loader(tmp_path):
    # openpi.shared.normalize.serialize_json: {"norm_stats": {key: {mean, std, q01, q99}}}, q01/q99 may be null.
    payload = {"norm_stats": {
        "state": {"mean": [0.1] * 8, "std": [0.2] * 8, "q01": [-1.0] * 8, "q99": [1.0] * 8},
        "actions": {"mean": [0.0] * 7, "std": [1.0] * 7, "q01": None, "q99": None},
    }}
    asset = tmp_path / "ckpt" / "assets" / "physical-intelligence" / "libero"
    asset.parent.mkdir(parents=True)
    (tmp_path / "ckpt" / "assets" / "trossen").mkdir()
    (tmp_path / "ckpt" / "assets" / "trossen" / "norm_stats.json").write_text(json.dumps(payload))
    stats = load_openpi_stats(tmp_path / "ckpt")
    assert set(stats) == {"state", "actions"} and stats["actions"].q01 is None
    np.testing.assert_allclose(stats["state"].normalize(np.full(8, 0.5), "q01_q99"), np.full(8, 0.5))
    assert set(load_openpi_stats(tmp_path / "ckpt" / "assets" / "trossen" / "norm_stats.json")) == {"state", "actions"}
    (tmp_path / "ckpt" / "assets" / "other").mkdir()
    (tmp_path / "ckpt" / "assets" / "other" / "norm_stats.json").write_text(json.dumps(payload))
    with pytest.raises(VlatwinError, match="several assets; pick one with asset_id= \\(other, trossen\\)"):
        load_openpi_stats(tmp_path / "ckpt")
    assert set(load_openpi_stats(tmp_path / "ckpt", "other")) == {"state", "actions"}
    (tmp_path / "flat.json").write_text(json.dumps(payload["norm_stats"]))
    with pytest.raises(VlatwinError, match="has no 'norm_stats' mapping"):
        load_openpi_stats(tmp_path / "flat.json")
    with pytest.raises(VlatwinError, match="no norm_stats.json in"):
        load_openpi_stats(tmp_path / "ckpt" / "assets" / "physical-intelligence")


def test_lerobot_dataset_stats(tmp_path):
    # meta/stats.json as LeRobot (and `vlatwin record`) writes it; images are (C, 1, 1) in [0, 1].
    stats = {
        "observation.state": {"min": [0.0, -1.0], "max": [1.0, 1.0], "mean": [0.5, 0.0], "std": [0.1, 0.5], "count": [100],
                              "q01": [0.01, -0.9], "q10": [0.1, -0.5], "q50": [0.5, 0.0], "q90": [0.9, 0.5], "q99": [0.99, 0.9]},
        "observation.images.front": {k: [[[0.5]], [[0.4]], [[0.3]]] for k in ("min", "max", "mean", "std", "q01", "q99")},
    }
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "stats.json").write_text(json.dumps(stats))
    out = load_lerobot_stats(tmp_path)
    assert set(out) == {"observation.state", "observation.images.front"}
    np.testing.assert_allclose(out["observation.state"].q99, [0.99, 0.9])
    np.testing.assert_allclose(out["observation.images.front"].mean, [0.5, 0.4, 0.3])
    with pytest.raises(VlatwinError, match="has no meta/stats.json, stats.json or policy_preprocessor.json"):
        load_lerobot_stats(_empty(tmp_path))


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def test_lerobot_policy_folder_stats(tmp_path):
    # LeRobot >= 0.4 saves the normalizer's stats next to policy_preprocessor.json as <feature>.<stat> tensors.
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    state_file = "policy_preprocessor_step_3_normalizer_processor.safetensors"
    config = {"name": "policy_preprocessor", "steps": [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "to_batch_processor", "config": {}},
        {"registry_name": "device_processor", "config": {"device": "cpu"}},
        {"registry_name": "normalizer_processor", "config": {"eps": 1e-8}, "state_file": state_file},
    ]}
    (tmp_path / "policy_preprocessor.json").write_text(json.dumps(config))
    safetensors_numpy.save_file({
        "observation.state.mean": np.array([1.0, 2.0], np.float32), "observation.state.std": np.array([0.5, 0.5], np.float32),
        "action.min": np.array([-1.0], np.float32), "action.max": np.array([3.0], np.float32),
        "observation.images.front.mean": np.full((3, 1, 1), 0.5, np.float32),
    }, str(tmp_path / state_file))
    out = load_lerobot_stats(tmp_path)
    np.testing.assert_allclose(out["observation.state"].normalize([2.0, 2.0], "mean_std"), [2.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out["action"].unnormalize([0.0], "min_max"), [1.0])
    assert out["observation.images.front"].mean.shape == (3,)
    (tmp_path / state_file).unlink()
    with pytest.raises(VlatwinError, match="no such file"):
        load_lerobot_stats(tmp_path)
