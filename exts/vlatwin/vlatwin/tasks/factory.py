"""Task type string -> implementation (config never imports an implementation)."""

from __future__ import annotations

from vlatwin.tasks.base import Task
from vlatwin.tasks.builtin import GripperTask, PickLiftTask, PlaceOnTask, PushToRegionTask, ReachTask, StackTask

#: ``task.type`` -> class; the keys equal :data:`vlatwin.config.task_cfg.BUILTIN_TASK_TYPES`.
TASK_TYPES: dict[str, type[Task]] = {
    "reach": ReachTask,
    "pick_lift": PickLiftTask,
    "place_on": PlaceOnTask,
    "push_to_region": PushToRegionTask,
    "stack": StackTask,
    "gripper": GripperTask,
}


def make_task(task_cfg, scene_cfg) -> Task:
    """The :class:`Task` for a validated ``task:`` section (:class:`TaskCfg`) on its scene (:class:`SceneCfg`)."""
    try:
        cls = TASK_TYPES[task_cfg.type]
    except KeyError:
        raise ValueError(f"unknown task type {task_cfg.type!r}; known: {', '.join(TASK_TYPES)}") from None
    return cls(task_cfg, scene_cfg)


def task_from_config(config) -> Task:
    """The task of a loaded :class:`VlatwinConfig` (``config.task`` must be set)."""
    from vlatwin.errors import ConfigError

    if config.task is None:
        raise ConfigError("the config has no 'task:' section")
    return make_task(config.task, config.scene)
