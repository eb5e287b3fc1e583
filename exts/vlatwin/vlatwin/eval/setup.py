"""Load one task config into a simulator and a :class:`~vlatwin.policy.factory.PolicyContext`.

Shared by ``vlatwin eval`` (one per task and worker) and ``vlatwin serve --config`` (a policy that needs
the scene, such as the scripted expert or the random baseline's action bounds).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vlatwin.errors import VlatwinError
from vlatwin.policy.factory import PolicyContext


@dataclass
class TaskSetup:
    """A task config loaded: its scene on a loaded Newton backend, and the context policies are built in."""

    config_path: Path
    config: object
    task: object
    stage_path: Path
    sim: object
    chain: object
    physics: dict
    context: PolicyContext
    _tmp: Path | None = None

    def close(self) -> None:
        close = getattr(self.sim, "close", None)
        if close is not None:
            close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def load_task_setup(config_path: str | Path, *, seed: int = 0, task: str | None = None, stage_path: Path | None = None) -> TaskSetup:
    """Build the config's scene (to ``stage_path``, or a temporary file), load it on Newton, resolve the task.

    ``stage_path`` may name an existing stage written earlier by this function (resumed runs reuse it).
    """
    from vlatwin.config.loader import load_config
    from vlatwin.control.factory import make_controller
    from vlatwin.record.recorder import load_sim, panda_chain, resolve_task
    from vlatwin.usd.check import open_stage
    from vlatwin.usd.scene_builder import write_scene

    config_path = Path(config_path)
    if config_path.suffix in (".usd", ".usda", ".usdc"):
        raise VlatwinError(f"{config_path}: eval needs a YAML config with a task: section (a stage has no task)")
    config = load_config(config_path)
    the_task = resolve_task(config, config_path, task)
    tmp = None
    if stage_path is None:
        tmp = Path(tempfile.mkdtemp(prefix="vlatwin-eval-"))
        stage_path = tmp / "scene.usda"
    if not stage_path.is_file():
        stage_path.parent.mkdir(parents=True, exist_ok=True)
        partial = stage_path.with_name(f".{stage_path.name}.tmp.usda")
        write_scene(config.scene, partial, source=config_path)
        partial.replace(stage_path)
    physics = {"dt": config.scene.physics.dt, "iterations": config.scene.physics.iterations, "solver": config.scene.physics.solver}
    sim = load_sim(stage_path, physics)
    chain = panda_chain(open_stage(stage_path))
    control_dt = 1.0 / the_task.control_hz

    def make_spec(action_space: str, **options):
        return make_controller(action_space, info=sim.info, chain=chain, control_dt=control_dt, **options).spec

    context = PolicyContext(
        task=the_task, info=sim.info, chain=chain, seed=int(seed), control_hz=the_task.control_hz,
        cameras=tuple(c.name for c in config.scene.cameras), make_spec=make_spec,
    )
    return TaskSetup(
        config_path=config_path, config=config, task=the_task, stage_path=stage_path, sim=sim, chain=chain,
        physics=physics, context=context, _tmp=tmp,
    )


def policy_context(config_path: str | Path, *, seed: int = 0) -> tuple[PolicyContext, callable]:
    """(context, close) for building a policy against a task config without running it (``vlatwin serve``)."""
    setup = load_task_setup(config_path, seed=seed)
    return setup.context, setup.close
