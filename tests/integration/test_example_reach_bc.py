"""``examples/reach_bc`` smoke test: record 2 expert episodes, train 1 epoch, load the checkpoint through the
policy factory (``path/to/policy.py:make_policy?checkpoint=...``) and let it drive the control loop a few steps.

Small on purpose (a 112 x 112 front camera, 15-step episodes); the real run is ``examples/reach_bc/run.sh``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pyarrow")
pytest.importorskip("av")

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "reach_bc"


def _train_module():
    spec = importlib.util.spec_from_file_location("reach_bc_train", EXAMPLE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def task_config(tmp_path_factory) -> Path:
    """configs/tasks/reach_ball.yaml with only the front camera, at 112 x 112 (fast)."""
    text = (REPO / "configs" / "tasks" / "reach_ball.yaml").read_text()
    text = text.replace("resolution: [224, 224]}", "resolution: [112, 112]}")
    text = "\n".join(line for line in text.splitlines() if "{name: top," not in line) + "\n"
    path = tmp_path_factory.mktemp("cfg") / "reach.yaml"
    path.write_text(text)
    return path


def test_record_train_and_act(task_config, tmp_path):
    """The trained checkpoint loads by spec string and returns finite (7,) ee_delta_pose actions in the loop."""
    from vlatwin.config.loader import load_config
    from vlatwin.policy.factory import PolicyContext, make_policy_from_spec
    from vlatwin.record import record
    from vlatwin.record.recorder import SCENE_FILE, build_rig, resolve_task

    torch.set_num_threads(1)
    demos = tmp_path / "demos"
    result = record(task_config, demos, episodes=2, seed=1000, max_steps=15, keep_failed=True, cameras=["front"], progress=False)
    assert result.kept == 2

    checkpoint = tmp_path / "model.pt"
    assert _train_module().main([str(demos), "--out", str(checkpoint), "--epochs", "1", "--threads", "1"]) == 0
    assert checkpoint.is_file()

    config = load_config(task_config)
    task = resolve_task(config, task_config, None)
    spec = f"{EXAMPLE / 'policy.py'}:make_policy?checkpoint={checkpoint}"
    physics = {"dt": config.scene.physics.dt, "iterations": config.scene.physics.iterations, "solver": config.scene.physics.solver}
    policies = []

    def policy_factory(sim, chain, controller):
        context = PolicyContext(task=task, info=sim.info, chain=chain, control_hz=task.control_hz, cameras=("front",))
        policies.append(make_policy_from_spec(spec, context))
        return policies[0]

    rig = build_rig(demos / SCENE_FILE, physics, list(config.scene.cameras), "ee_delta_pose", task.control_hz, ["rgb"],
                    policy_factory=policy_factory)
    try:
        info = policies[0].info
        assert info.action_space == "ee_delta_pose" and info.image_keys == ("front",) and info.control_hz == 20.0
        obs = rig.loop.reset(seed=0, episode=0, instruction=task.instructions[0])
        q0 = np.array(obs.state.joint_q)
        for _ in range(3):
            step, obs = rig.loop.step(obs)
            assert step.action.shape == (7,) and np.all(np.isfinite(step.action))
        assert not np.allclose(np.array(obs.state.joint_q), q0)  # the actions moved the arm
    finally:
        rig.sim.close()


def test_factory_needs_checkpoint():
    """A spec without ?checkpoint= fails with a one-line hint, not a traceback from torch."""
    from vlatwin.errors import VlatwinError
    from vlatwin.policy.factory import PolicyContext, make_policy_from_spec

    with pytest.raises(VlatwinError, match="checkpoint"):
        make_policy_from_spec(f"{EXAMPLE / 'policy.py'}:make_policy", PolicyContext())
    with pytest.raises(VlatwinError, match="no checkpoint"):
        make_policy_from_spec(f"{EXAMPLE / 'policy.py'}:make_policy?checkpoint=/nonexistent/model.pt", PolicyContext())
