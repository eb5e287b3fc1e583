"""LeRobot adapter: batch layout, pre/post-processors and the action queue, with a small torch policy that
follows LeRobot's ``PreTrainedPolicy`` inference interface (no lerobot needed)."""

from __future__ import annotations

import json
import sys
import types
from collections import deque

import numpy as np
import pytest
from vlatwin.errors import VlatwinError
from vlatwin.loop.control_loop import Observation
from vlatwin.policy.base import ActionChunk
from vlatwin.policy.factory import PolicyContext, make_policy_from_spec
from vlatwin.policy.lerobot import LeRobotPolicyAdapter
from vlatwin.policy.normalization import NormStats
from vlatwin.sim.types import SimState

torch = pytest.importorskip("torch")

STATE_STATS = NormStats(mean=np.array([0.5, -0.5, 0.0]), std=np.array([2.0, 2.0, 1.0]))
ACTION_STATS = NormStats(mean=np.array([1.0, 2.0, 3.0, 0.5]), std=np.array([0.1, 0.2, 0.3, 0.5]))


class QueuePolicy(torch.nn.Module):
    """LeRobot's queue pattern (pi0 / ACT ``select_action``): a chunk of ``n_action_steps`` is predicted when
    the queue is empty and one action (B, D) popped per call. Action k of a chunk is
    ``[mean R, mean G, mean B, state[0]] + k * 0.1``: it proves the image layout and scale reach the model."""

    def __init__(self, n_action_steps: int = 3) -> None:
        super().__init__()
        self.n_action_steps = n_action_steps
        self.calls = 0
        self.seen: list[dict] = []
        self.reset()

    def reset(self) -> None:
        self._queue = deque(maxlen=self.n_action_steps)

    def predict_action_chunk(self, batch: dict) -> torch.Tensor:
        self.calls += 1
        img = batch["observation.images.front"]  # (B, 3, H, W)
        base = torch.cat([img.mean(dim=(2, 3)), batch["observation.state"][:, :1]], dim=1)  # (B, 4)
        steps = torch.arange(self.n_action_steps, dtype=torch.float32)[None, :, None] * 0.1
        return base[:, None, :] + steps  # (B, n, 4)

    @torch.no_grad()
    def select_action(self, batch: dict) -> torch.Tensor:
        self.seen.append(batch)
        if len(self._queue) == 0:
            chunk = self.predict_action_chunk(batch)[:, : self.n_action_steps]
            self._queue.extend(chunk.transpose(0, 1))  # n x (B, D)
        return self._queue.popleft()


class Normalizer:
    """A stand-in for LeRobot's policy preprocessor: normalizes ``observation.state`` (mean/std)."""

    def __init__(self) -> None:
        self.resets = 0

    def __call__(self, batch: dict) -> dict:
        out = dict(batch)
        out["observation.state"] = torch.from_numpy(STATE_STATS.normalize(batch["observation.state"].numpy(), "mean_std")).float()
        return out

    def reset(self) -> None:
        self.resets += 1


def unnormalize(action: torch.Tensor) -> torch.Tensor:
    """A stand-in for LeRobot's policy postprocessor (mean/std un-normalization)."""
    return torch.from_numpy(ACTION_STATS.unnormalize(action.numpy(), "mean_std")).float()


def _observation(color=(255, 0, 51), q=(2.5, 1.0, 0.3), instruction="push the cube"):
    img = np.zeros((6, 8, 3), dtype=np.uint8)
    img[:] = color
    img[0, 0] = (0, 0, 0)  # one odd pixel: the channel means are not just the colour
    q = np.asarray(q, dtype=float)
    state = SimState(time=0.0, step=0, joint_q=q, joint_qd=q * 0, body_pose_w=np.zeros((1, 7)), body_vel_w=np.zeros((1, 6)))
    return Observation(time=0.0, step=0, state=state, sensors={"front": {"rgb": img}, "side": {"rgb": img}}, instruction=instruction)


def _expected(obs, k: int) -> np.ndarray:
    img = obs.sensors["front"]["rgb"].astype(np.float64) / 255.0
    s0 = STATE_STATS.normalize(obs.state.joint_q, "mean_std")[0]
    normalized = np.concatenate([img.mean(axis=(0, 1)), [s0]]) + 0.1 * k
    return ACTION_STATS.unnormalize(normalized, "mean_std")


def test_batch_layout():
    adapter = LeRobotPolicyAdapter(QueuePolicy(), cameras=("front",))
    obs = _observation()
    batch = adapter.batch(obs)
    assert set(batch) == {"observation.state", "observation.images.front", "task"}
    assert batch["observation.state"].shape == (1, 3) and batch["observation.state"].dtype == torch.float32
    img = batch["observation.images.front"]
    assert img.shape == (1, 3, 6, 8) and img.dtype == torch.float32
    assert float(img.min()) == 0.0 and float(img.max()) == 1.0
    np.testing.assert_allclose(img[0, :, 3, 4].numpy(), [1.0, 0.0, 0.2], atol=1e-7)  # RGB planes, scaled to [0, 1]
    assert batch["task"] == ["push the cube"]
    renamed = LeRobotPolicyAdapter(QueuePolicy(), cameras=("side",), rename_map={"observation.images.side": "observation.images.image"})
    assert "observation.images.image" in renamed.batch(obs)


def test_processors_queue_and_reset():
    policy, pre = QueuePolicy(n_action_steps=3), Normalizer()
    adapter = LeRobotPolicyAdapter(policy, preprocessor=pre, postprocessor=unnormalize, cameras=("front",), control_hz=10.0)
    assert adapter.info.chunk_size == 1 and adapter.info.action_space == "joint_pos" and adapter.info.image_keys == ("front",)
    adapter.reset()
    obs = _observation()
    chunks = [adapter.act(obs) for _ in range(4)]
    for k, chunk in enumerate(chunks):
        assert isinstance(chunk, ActionChunk) and chunk.actions.shape == (1, 4)
        np.testing.assert_allclose(chunk.actions[0], _expected(obs, k % 3), rtol=1e-5, atol=1e-6)
    assert policy.calls == 2  # the queue of 3 ran out once
    # The policy saw the normalized state.
    np.testing.assert_allclose(policy.seen[0]["observation.state"].numpy()[0], [1.0, 0.75, 0.3], rtol=1e-6)
    adapter.act(obs)  # queue: 1 of the second chunk left
    adapter.reset()
    assert pre.resets == 2 and len(policy._queue) == 0
    other = _observation(color=(0, 255, 0))
    np.testing.assert_allclose(adapter.act(other).actions[0], _expected(other, 0), rtol=1e-5, atol=1e-6)
    assert policy.calls == 3


def test_bad_outputs_and_objects():
    with pytest.raises(VlatwinError, match=r"object has no reset\(\)"):
        LeRobotPolicyAdapter(object())
    bad = QueuePolicy()
    bad.select_action = lambda batch: torch.zeros(2, 4)
    with pytest.raises(VlatwinError, match="batch of 2 actions"):
        LeRobotPolicyAdapter(bad, cameras=("front",)).act(_observation())


def test_spec_without_lerobot(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"type": "act"}))
    monkeypatch.setitem(sys.modules, "lerobot", None)  # import lerobot -> ImportError
    with pytest.raises(VlatwinError, match=r"lerobot is not importable in this Python .*vlatwin serve --policy lerobot://") as err:
        make_policy_from_spec(f"lerobot://{tmp_path}?cameras=front", PolicyContext())
    assert "\n" not in str(err.value)
    with pytest.raises(VlatwinError, match="not a saved LeRobot policy"):
        make_policy_from_spec(f"lerobot://{tmp_path / 'nope'}", PolicyContext())
    with pytest.raises(VlatwinError, match="unknown option 'chunk'"):
        make_policy_from_spec(f"lerobot://{tmp_path}?chunk=5", PolicyContext())
    with pytest.raises(VlatwinError, match="rename entry 'front' is not FROM:TO"):
        make_policy_from_spec(f"lerobot://{tmp_path}?rename=front", PolicyContext())


def test_spec_with_a_fake_lerobot(tmp_path, monkeypatch):
    """from_spec follows LeRobot v0.4.4's loading calls (config, policy class, processors from the folder)."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "policy_preprocessor.json").write_text("{}")
    calls = {}
    feature = types.SimpleNamespace

    class Cfg:
        type = "toy"

        def __init__(self) -> None:
            self.input_features = {"observation.state": feature(shape=(3,)), "observation.images.image": feature(shape=(3, 6, 8))}
            self.output_features = {"action": feature(shape=(4,))}

        @classmethod
        def from_pretrained(cls, path):
            calls["config"] = path
            return cls()

    class Toy(QueuePolicy):
        @classmethod
        def from_pretrained(cls, path, config):
            calls["policy"] = (path, config.device, config.pretrained_path)
            return cls()

    def make_pre_post_processors(cfg, pretrained_path=None, **kwargs):
        calls["processors"] = (pretrained_path, kwargs)
        return Normalizer(), unnormalize

    modules = {
        "lerobot": types.ModuleType("lerobot"),
        "lerobot.configs": types.ModuleType("lerobot.configs"),
        "lerobot.configs.policies": types.SimpleNamespace(PreTrainedConfig=Cfg),
        "lerobot.policies": types.ModuleType("lerobot.policies"),
        "lerobot.policies.factory": types.SimpleNamespace(get_policy_class=lambda name: Toy, make_pre_post_processors=make_pre_post_processors),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    ctx = PolicyContext(cameras=("side", "front"), control_hz=15.0)
    policy = make_policy_from_spec(f"lerobot://{tmp_path}?rename=front:image&action_space=joint_pos", ctx)
    assert calls["policy"] == (str(tmp_path), "cpu", tmp_path)
    assert calls["processors"] == (str(tmp_path), {"preprocessor_overrides": {"device_processor": {"device": "cpu"}}})
    assert policy.info.image_keys == ("front",) and policy.info.action_dim == 4 and policy.info.name == "lerobot/toy"
    assert policy.info.control_hz == 15.0
    policy.reset()
    obs = _observation()
    obs.sensors["front"] = {"rgb": obs.sensors["front"]["rgb"]}
    batch = policy.batch(obs)
    assert "observation.images.image" in batch and "observation.images.front" not in batch
