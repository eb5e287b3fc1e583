"""The policy seam: a policy maps an observation to an action (or an action chunk) in a declared action space.

Everything that acts in the loop is a policy: the scripted expert, a random baseline, a VLA adapter.
The loop (:class:`vlatwin.loop.control_loop.ControlLoop`) calls :meth:`Policy.reset` at the start of an
episode and :meth:`Policy.act` whenever its current chunk is used up.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class PolicyInfo:
    """What a policy declares about itself (datasets and evaluation read it)."""

    name: str
    action_space: str
    """Controller kind the actions are for (``joint_pos``, ``ee_delta_pose``, ... see :mod:`vlatwin.control`)."""
    chunk_size: int = 1
    """Actions returned per :meth:`Policy.act` call (executed open loop)."""
    control_hz: float | None = None
    """Rate the policy was made for (None: any)."""
    image_keys: tuple[str, ...] = ()
    """Camera names it reads."""
    gripper_convention: str = "close_0_1"
    """See :mod:`vlatwin.control.gripper`."""


class Policy(abc.ABC):
    """Observation -> action (D,) or chunk (H, D)."""

    info: PolicyInfo

    def reset(self, episode: int | None = None) -> None:  # noqa: B027 - stateless policies need nothing
        """Start of an episode (clear queues, re-plan). ``episode`` is the work item's index: policies that
        draw random numbers seed from it, so any episode can be rerun alone with the same draws."""

    @abc.abstractmethod
    def act(self, observation) -> np.ndarray:
        """An action (D,) or an action chunk (H, D) for :class:`~vlatwin.loop.control_loop.Observation`."""
