"""The position servo's desired trajectory between commands: a step, or a linear ramp of fixed duration.

Real arm controllers do not jump to a policy's 15-30 Hz targets: libfranka rejects discontinuous joint
commands, Deoxys / Polymetis / ros2_control's joint trajectory controller interpolate between targets at the
servo rate. A twin of such a robot must ramp as it does, or it mispredicts every target's first period (on a
20 +- 5 ms link: 22 mrad for a stepping twin against 0.8 for a ramping one). Under sysid's excitation the
Panda's drive law read beyond its 87 / 12 N*m limits 72-98 % of the time with a 50 ms ramp as with steps;
the ``newton`` backend applies (and reports) it unclipped, since XPBD does not enforce effort limits
(:attr:`~vlatwin.sim.types.Capabilities.effort_limits`).

:class:`TargetRamp` is that law, pure numpy, shared by the emulated robot (which runs it), the twin (which
must run the same law to predict the robot) and system identification (which replays it):

* a new target ``goal`` applied at time ``t_start`` [s] moves the desired position ``q_d`` linearly from where
  it was at ``t_start`` to ``goal`` over ``ramp_s`` [s], then holds it (``ramp_s = 0``: a step);
* a physics step ``[t, t + dt)`` drives towards ``q_d(t + dt)``, the ramp's value at the step's end, so a
  ramp no longer than one step is a step and the drive target reaches ``goal`` with the step that ends at
  ``t_start + ramp_s``.

The ramp is continuous in ``t_start``: a twin whose estimate of the robot's apply time is off by a fraction
of a physics step is off by that fraction of the ramp's slope, not by a whole step of the target.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["TargetRamp", "expand_ramps"]


class TargetRamp:
    """Desired joint positions ``q_d(t)`` [rad | m] under a linear ramp of ``ramp_s`` [s] to each new target.

    Args:
        q0: (J,) desired positions before any target.
        ramp_s: ramp duration [s] (0: steps).
    """

    __slots__ = ("ramp_s", "t_start", "start_q", "goal", "duration_s")

    def __init__(self, q0, ramp_s: float = 0.0):
        ramp_s = float(ramp_s)
        if not (math.isfinite(ramp_s) and ramp_s >= 0.0):
            raise ValueError(f"TargetRamp: ramp_s must be a finite duration >= 0 [s], got {ramp_s}")
        self.ramp_s = ramp_s
        q0 = np.asarray(q0, dtype=np.float64).copy()
        self.t_start = -math.inf
        self.start_q = q0
        self.goal = q0
        self.duration_s = 0.0
        """Duration [s] of the current ramp (``ramp_s`` for a command; 0 after :meth:`jump`)."""

    def copy(self) -> TargetRamp:
        out = TargetRamp.__new__(TargetRamp)
        out.ramp_s, out.t_start, out.duration_s = self.ramp_s, self.t_start, self.duration_s
        out.start_q, out.goal = self.start_q.copy(), self.goal.copy()
        return out

    def at(self, t: float) -> np.ndarray:
        """``q_d`` at time ``t`` [s]."""
        if self.duration_s <= 0.0 or t >= self.t_start + self.duration_s:
            return self.goal
        if t <= self.t_start:
            return self.start_q
        a = (t - self.t_start) / self.duration_s
        return self.start_q + a * (self.goal - self.start_q)

    def moving(self, t: float) -> bool:
        """True while ``q_d`` still changes after time ``t`` [s]."""
        return self.duration_s > 0.0 and t < self.t_start + self.duration_s

    def set(self, t_start: float, goal, ramp_s: float | None = None) -> bool:
        """A new target ``goal`` from time ``t_start`` [s]: ramp from ``q_d(t_start)`` over ``ramp_s`` (None: the
        servo's own). The current goal again restarts nothing (a ramp under way keeps its pace). True when
        ``q_d``'s course changed."""
        goal = np.asarray(goal, dtype=np.float64)
        duration = self.ramp_s if ramp_s is None else float(ramp_s)
        if np.array_equal(goal, self.goal) and (duration > 0.0 or not self.moving(t_start)):
            return False
        self.start_q = np.array(self.at(t_start), dtype=np.float64)
        self.t_start = float(t_start)
        self.goal = goal.copy()
        self.duration_s = max(0.0, duration)
        return True

    def jump(self, goal) -> None:
        """Set ``q_d`` to ``goal`` at once (a hold, a stop)."""
        self.start_q = self.goal = np.array(goal, dtype=np.float64)
        self.t_start, self.duration_s = -math.inf, 0.0

    def step_target(self, t: float, dt: float) -> np.ndarray:
        """The drive target of the physics step ``[t, t + dt)``: ``q_d(t + dt)``."""
        return self.at(t + dt)


def expand_ramps(times, goals, ramps, dt: float, q0=None) -> tuple[np.ndarray, np.ndarray]:
    """Targets as a servo applied them: each ramped event ``(times[i], goals[i])`` of duration ``ramps[i]`` [s]
    becomes the step targets of the physics steps it spans (the robot's grid: ``times[i] + j * dt``), so a
    replay that applies targets as steps at their times reproduces the robot's drive targets exactly.

    Args:
        times: (N,) event times [s], sorted.
        goals: (N, J) targets.
        ramps: (N,) ramp durations [s] (0: a step), or a scalar for all.
        dt: the servo's physics step [s].
        q0: (J,) desired positions before the first event (None: the first goal).

    Returns:
        (times (M,), targets (M, J)): step events, sorted; an event's ramp is cut short by the next event.
    """
    times = np.asarray(times, dtype=np.float64)
    goals = np.asarray(goals, dtype=np.float64)
    ramps = np.broadcast_to(np.asarray(ramps, dtype=np.float64), times.shape)
    if times.size == 0 or not np.any(ramps > 0.0):
        return times.copy(), goals.copy()
    servo = TargetRamp(goals[0] if q0 is None else q0)
    out_t: list[float] = []
    out_q: list[np.ndarray] = []
    for i, (t, goal, ramp) in enumerate(zip(times, goals, ramps)):
        servo.set(float(t), goal, float(ramp))
        t_next = float(times[i + 1]) if i + 1 < len(times) else math.inf
        steps = max(1, math.ceil(ramp / dt - 1e-9)) if ramp > 0.0 else 1
        for j in range(steps):
            tj = float(t) + j * dt
            if tj >= t_next - 1e-12:
                break
            out_t.append(tj)
            out_q.append(np.array(servo.step_target(tj, dt)))
    return np.asarray(out_t), np.stack(out_q)
