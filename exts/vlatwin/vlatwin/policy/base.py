"""The policy seam: a policy maps an observation to an action chunk in a declared action space.

Everything that acts in the loop is a policy: the scripted expert, a random baseline, a VLA adapter
(Hugging Face in-process, openpi websocket, OpenVLA REST, LeRobot). The loop
(:class:`vlatwin.loop.control_loop.ControlLoop`) calls :meth:`Policy.reset` at the start of an episode and
:meth:`Policy.act` whenever its current chunk is used up (see :mod:`vlatwin.policy.chunking` for replan
intervals, temporal ensembling and real-time execution).

Static description (:class:`PolicyInfo`), the input (:class:`~vlatwin.loop.control_loop.Observation`) and
the output (:class:`ActionChunk`) are separate types.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlatwin.errors import VlatwinError


@dataclass(frozen=True, kw_only=True)
class PolicyInfo:
    """What a policy declares about itself (the loop, datasets, evaluation and ``vlatwin serve`` read it)."""

    name: str
    action_space: str
    """Controller kind the actions are for (``joint_pos``, ``ee_delta_pose``, ... see :mod:`vlatwin.control`)."""
    chunk_size: int = 1
    """Actions returned per :meth:`Policy.act` call (horizon H)."""
    action_dim: int | None = None
    """Action dimensions D (None: whatever the action space's controller takes)."""
    control_hz: float | None = None
    """Rate the policy was made for [Hz] (None: any)."""
    image_keys: tuple[str, ...] = ()
    """Scene camera names it reads, in the order the model expects them."""
    image_size: tuple[int, int] | None = None
    """(height, width) [px] its images are resized (with padding) to; None: as rendered."""
    state_layout: str | None = None
    """Proprioceptive layout it reads (see :mod:`vlatwin.policy.observation`), None: none."""
    prompt_template: str | None = None
    """Python format string with ``{instruction}`` turning the task instruction into the model's prompt."""
    gripper_convention: str = "close_0_1"
    """See :mod:`vlatwin.control.gripper`."""
    controller_options: dict[str, Any] = field(default_factory=dict)
    """Extra options for the action space's controller (e.g. ``{"rotation": "axis_angle"}``)."""

    def to_dict(self) -> dict:
        """JSON-ready (``vlatwin serve`` sends it as the server metadata; results.json stores it)."""
        return {
            "name": self.name,
            "action_space": self.action_space,
            "chunk_size": int(self.chunk_size),
            "action_dim": self.action_dim,
            "control_hz": self.control_hz,
            "image_keys": list(self.image_keys),
            "image_size": None if self.image_size is None else list(self.image_size),
            "state_layout": self.state_layout,
            "prompt_template": self.prompt_template,
            "gripper_convention": self.gripper_convention,
            "controller_options": dict(self.controller_options),
        }

    @classmethod
    def from_dict(cls, data: dict) -> PolicyInfo:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("image_keys",):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if kwargs.get("image_size") is not None:
            kwargs["image_size"] = tuple(int(v) for v in kwargs["image_size"])
        kwargs["controller_options"] = dict(kwargs.get("controller_options") or {})
        return cls(**kwargs)


@dataclass(frozen=True)
class ActionChunk:
    """H actions of D dimensions, oldest first, in ``action_space`` (float64 (H, D))."""

    actions: np.ndarray
    action_space: str | None = None
    """None: the policy's declared action space."""
    timing: dict[str, float] = field(default_factory=dict)
    """Optional latency breakdown [ms] (``infer_ms``, ``server_ms``, ``round_trip_ms``...)."""

    def __post_init__(self) -> None:
        arr = np.asarray(self.actions, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise VlatwinError(f"action chunk must be (horizon, dims) with both >= 1, got shape {np.shape(self.actions)}")
        object.__setattr__(self, "actions", arr)

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    @property
    def dim(self) -> int:
        return int(self.actions.shape[1])

    def __len__(self) -> int:
        return self.horizon


def as_chunk(output) -> ActionChunk:
    """What :meth:`Policy.act` returned (an :class:`ActionChunk`, an (D,) action or an (H, D) chunk) as a chunk."""
    if isinstance(output, ActionChunk):
        return output
    return ActionChunk(np.asarray(output, dtype=np.float64))


class Policy(abc.ABC):
    """Observation -> :class:`ActionChunk` (or a plain (D,) action / (H, D) array, which the loop wraps)."""

    info: PolicyInfo

    def reset(self, episode: int | None = None) -> None:  # noqa: B027 - stateless policies need nothing
        """Start of an episode (clear queues, re-plan). ``episode`` is the work item's index: policies that
        draw random numbers seed from it, so any episode can be rerun alone with the same draws."""

    @abc.abstractmethod
    def act(self, observation) -> ActionChunk | np.ndarray:
        """The next actions for :class:`~vlatwin.loop.control_loop.Observation`."""

    def close(self) -> None:  # noqa: B027 - in-process policies hold nothing
        """Release connections, servers, models."""
