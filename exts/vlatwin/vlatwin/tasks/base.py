"""The task seam: what to do (instructions), where episodes start (seeded and fixed initial states), and
how success is judged from the simulation state.

Static description (:class:`Task`), one episode's start (:class:`InitialState`) and the running judgement
(:class:`SuccessTracker`) are separate types. Success predicates read only :class:`SimState` and the
scene's static description, so they are pure numpy and tested with hand-set states.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class InitialState:
    """Where one episode starts: object poses and robot joints (data, stored in the repo as JSON)."""

    object_poses: dict[str, tuple[float, ...]]
    """Prim path -> (x, y, z, qw, qx, qy, qz) in the world frame [m]."""
    robot_q: tuple[float, ...] | None = None
    """Commanded-joint positions [rad | m] in SimModelInfo.joint_names order; None: the stage's home pose."""
    seed: int | None = None
    """Seed it was drawn from (None for hand-made states)."""

    def to_dict(self) -> dict:
        return {
            "object_poses": {k: [float(v) for v in pose] for k, pose in self.object_poses.items()},
            "robot_q": None if self.robot_q is None else [float(v) for v in self.robot_q],
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict) -> InitialState:
        return cls(
            object_poses={k: tuple(float(x) for x in v) for k, v in data["object_poses"].items()},
            robot_q=None if data.get("robot_q") is None else tuple(float(x) for x in data["robot_q"]),
            seed=data.get("seed"),
        )


@dataclass(frozen=True, kw_only=True)
class ExpertGoal:
    """What the scripted expert must do for a task, in skill terms (the expert plans the motion).

    Positions are world-frame [m]; the expert reads object poses from the live state.
    """

    skill: str
    """``reach`` | ``pick_lift`` | ``pick_place`` | ``push`` | ``gripper``."""
    object_path: str | None = None
    """Rigid body to grasp, push or reach."""
    object_half_extents: tuple[float, float, float] | None = None
    """Half sizes of the object in its own frame [m] (grasp width and height)."""
    target_w: tuple[float, float, float] | None = None
    """Reach point, place position (object centre), or push goal (object centre) [m]."""
    lift_height: float = 0.12
    """How far to lift above the start [m] (pick skills)."""
    gripper: str | None = None
    """``open`` | ``close``: the gripper state the episode should end in."""
    target_path: str | None = None
    """Prim of the support to place on (pick_place: a rigid body) or of the push region marker (push)."""
    target_half_extents: tuple[float, float, float] | None = None
    """Half sizes of the support / region in its own frame [m] (region: z is half its thickness)."""


@dataclass
class SuccessTracker:
    """Running success of one episode: the predicate must hold ``hold_steps`` consecutive control steps."""

    hold_steps: int = 1
    streak: int = 0
    first_success_step: int | None = None
    """Control step at which the predicate first held for ``hold_steps`` steps (None: not yet)."""

    def update(self, holds: bool, step: int) -> bool:
        self.streak = self.streak + 1 if holds else 0
        if self.streak >= self.hold_steps and self.first_success_step is None:
            self.first_success_step = step
        return self.first_success_step is not None


class Task(abc.ABC):
    """A tabletop task on a scene.

    Subclasses set the class attributes and implement the predicate; objects and targets the task needs
    are authored into the USD stage (so Isaac Sim sees them too) through :meth:`scene_objects`.
    """

    name: str
    instructions: tuple[str, ...]
    """The canonical instruction first, then paraphrases."""
    max_steps: int = 200
    """Control steps before the episode ends unsuccessfully."""
    control_hz: float = 20.0
    hold_steps: int = 1
    """Consecutive control steps the predicate must hold (e.g. 5 for "lifted and held")."""

    @abc.abstractmethod
    def scene_objects(self) -> list[dict]:
        """Objects/markers to add to the scene config (``scene.objects`` entries as dicts)."""

    @abc.abstractmethod
    def sample_initial_state(self, rng: np.random.Generator, info) -> InitialState:
        """A random start (seeded); ``info`` is the loaded :class:`SimModelInfo`."""

    @abc.abstractmethod
    def success(self, state, info) -> bool:
        """Whether the goal holds in ``state`` (a :class:`SimState`) right now."""

    def reward(self, state, info) -> float:
        """Sparse: 1 when the goal holds, else 0."""
        return 1.0 if self.success(state, info) else 0.0

    def expert_goal(self, state, info) -> ExpertGoal:
        """The skill the scripted expert should run from ``state`` (see :mod:`vlatwin.policy.expert`)."""
        raise NotImplementedError(f"task {self.name} has no scripted expert")

    def tracker(self) -> SuccessTracker:
        return SuccessTracker(hold_steps=self.hold_steps)
