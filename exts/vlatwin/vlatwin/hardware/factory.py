"""``--robot SPEC`` -> a :class:`~vlatwin.hardware.base.Robot` (implementations are imported lazily).

==============================================  ===============================================================
spec                                            robot
==============================================  ===============================================================
``emulated``, ``emulated?latency_ms=20&...``    :class:`~vlatwin.hardware.emulated.EmulatedRobot` on the task's
                                                stage (options: :meth:`EmulationParams.from_options`)
``tcp://HOST:PORT[?token=T&timeout=S]``         :class:`~vlatwin.hardware.remote.RemoteRobot`: a ``vlatwin agent``
==============================================  ===============================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from vlatwin.errors import VlatwinError
from vlatwin.hardware.base import Robot
from vlatwin.hardware.clock import Clock, WallClock

ROBOT_FORMS = "emulated[?latency_ms=20&loss=0.01...] or tcp://HOST:PORT[?token=SECRET&timeout=1.0] (a `vlatwin agent`)"


def _options(spec: str, query: str) -> dict[str, str]:
    try:
        return dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True)) if query else {}
    except ValueError:
        raise VlatwinError(f"--robot {spec!r}: options after '?' must be key=value pairs joined by '&'") from None


def make_robot(
    spec: str,
    *,
    stage_path: str | Path | None = None,
    physics: dict[str, Any] | None = None,
    clock: Clock | None = None,
    seed: int = 0,
    initial_state: Any = None,
) -> Robot:
    """The robot ``spec`` names (not connected yet).

    Args:
        spec: ``emulated[?options]`` or ``tcp://HOST:PORT[?token=..&timeout=..]``.
        stage_path: the task's stage (the emulated robot loads its own copy of it).
        physics: the task's physics settings (``dt``, ``iterations``, ``solver``) for the emulated robot.
        clock: the host clock (a virtual one for deterministic emulated runs).
        seed: the emulated robot's seed (mismatch, noise, link).
        initial_state: the emulated robot's initial joint state.
    """
    text = str(spec).strip()
    head, _, query = text.partition("?")
    if head == "emulated":
        options = _options(text, query)
        if stage_path is None or physics is None:
            raise VlatwinError(f"--robot {text!r}: the emulated robot needs the task's stage and physics (run it with a task config)")
        from vlatwin.hardware.emulated import EmulatedRobot, EmulationParams  # needs Newton

        params = EmulationParams.from_options(options)
        return EmulatedRobot(
            stage_path, physics, clock=clock or WallClock(), params=params, seed=seed, initial_state=initial_state
        )
    if head.startswith("tcp://"):
        from vlatwin.hardware.remote import RemoteRobot  # needs pyzmq

        options = _options(text, urlsplit(text).query)
        unknown = sorted(set(options) - {"token", "timeout"})
        if unknown:
            raise VlatwinError(f"--robot {text!r}: unknown option {unknown[0]!r}; known: timeout, token")
        try:
            timeout = float(options.get("timeout", 1.0))
        except ValueError:
            raise VlatwinError(f"--robot {text!r}: timeout must be a number of seconds") from None
        return RemoteRobot(head, token=options.get("token") or None, clock=clock, timeout_s=timeout)
    raise VlatwinError(f"unknown robot {text!r}; use {ROBOT_FORMS}")


__all__ = ["ROBOT_FORMS", "make_robot"]
