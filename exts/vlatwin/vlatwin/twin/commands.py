"""When each command really drove the robot, as far as the twin can know it.

The twin applies a command at its send time plus an estimated downlink delay: a guess. The robot's state
stream says what really happened: every state carries the target its servo tracked (``joint_q_desired``,
libfranka's ``q_d``), the robot time that target took effect (``status.target_time``) and the newest command
it accepted (``status.last_command_seq``). :class:`CommandTimeline` keeps both sides and answers two questions:

* the replay schedule for a re-simulation from ``t0`` to now: the robot's own targets at their real times up
  to ``t_ack`` (the newest robot state), then the twin's guesses for the commands the robot has not reported
  yet. A command the robot skipped (lost on the link, or overtaken) is gone from the past; jitter is gone too.
* the downlink delay: the median of (host time the robot applied a command - host time it was sent) over
  recent commands. Half the smallest round trip (what clock sync gives) is the delay's lower bound; a twin
  that applies every command that early leads the robot by the jitter.

Robots that report neither ``joint_q_desired`` nor ``target_time`` leave the timeline empty, and the twin
replays its own guesses (the schedule then equals :meth:`applied` as it was).

A robot with an interpolating servo (:mod:`vlatwin.hardware.servo`) reports its events instead: the goal
(``status.target_q``) and the ramp's duration (``status.target_ramp_s``) from ``target_time``; ``joint_q_desired``
is then a point on the ramp. :meth:`schedule` with ``ramps=True`` gives each event's ramp (None for the twin's own
guesses: the servo's own ramp).

Times: ``t``/``send_time`` are host times [s]; robot times are converted with the caller's ``to_host``, so
a better clock estimate moves the whole timeline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

__all__ = ["CommandTimeline"]


class CommandTimeline:
    """Commands as sent, as guessed applied in the twin, and as the robot reported applying them.

    Args:
        horizon_s: robot-reported targets older than this [s] (robot time, behind the newest) are dropped.
        delay_window: recent per-command delays the median is taken over.
        min_delay_samples: below this many, :meth:`downlink_delay` returns None (the caller falls back).
    """

    def __init__(self, horizon_s: float = 4.0, delay_window: int = 64, min_delay_samples: int = 5):
        self.horizon_s = float(horizon_s)
        self.min_delay_samples = int(min_delay_samples)
        self._sent: dict[int, tuple[float, np.ndarray]] = {}
        self._expires: dict[int, float] = {}
        self._twin: deque[tuple[float, np.ndarray, int | None]] = deque(maxlen=512)
        self._robot: dict[float, tuple[np.ndarray, int | None, float]] = {}  # robot time -> (goal, seq, ramp [s])
        self._newest_robot_time = float("-inf")
        self._delays: deque[float] = deque(maxlen=int(delay_window))
        self._delay_seen: set[int] = set()
        self.acked_seq = -1
        """Highest command seq the robot reported as applied (-1: none)."""

    def reset_robot(self) -> None:
        """A restarted robot: its old reports are on another clock, forget them."""
        self._robot.clear()
        self._newest_robot_time = float("-inf")
        self._delay_seen.clear()
        self.acked_seq = -1

    # ------------------------------------------------------------------ input
    def sent(self, seq: int, send_time: float, target: np.ndarray, expires_at: float | None = None) -> None:
        """Command ``seq`` left for the robot at host time ``send_time`` [s]; the robot drops it after host time
        ``expires_at`` [s] (None: never)."""
        self._sent[int(seq)] = (float(send_time), np.asarray(target, float).copy())
        self._expires[int(seq)] = float("inf") if expires_at is None else float(expires_at)
        if len(self._sent) > 512:
            for old in sorted(self._sent)[: len(self._sent) - 512]:
                del self._sent[old]
                self._expires.pop(old, None)

    def applied_in_twin(self, t: float, target: np.ndarray, seq: int | None) -> None:
        """The twin set ``target`` at host time ``t`` (``seq`` None: not a sent command, e.g. a mirrored hold)."""
        self._twin.append((float(t), np.asarray(target, float), None if seq is None else int(seq)))

    def robot_report(self, target_time: float | None, q_desired, seq: int | None, to_host: Callable[[float], float] | None,
                     ramp_s: float = 0.0) -> None:
        """One robot state's servo target: ``q_desired`` (twin joint order; an interpolating servo's goal) in effect
        since robot time ``target_time`` [s] (reached over ``ramp_s`` [s]), the newest command ``seq``. ``to_host``
        (None: clock not synced yet) is only used for the delay estimate."""
        if target_time is None or q_desired is None:
            return
        rt = float(target_time)
        if not np.isfinite(rt):
            return
        q = np.asarray(q_desired, float)
        if not np.all(np.isfinite(q)):
            return
        known = self._robot.get(rt)
        # A command that lands at the same instant as the previous change (no latency, or at connect) shares its
        # target_time: the report with the newer command wins.
        if known is None or (seq is not None and (known[1] is None or int(seq) > known[1])):
            ramp = float(ramp_s) if ramp_s is not None and np.isfinite(ramp_s) and ramp_s > 0 else 0.0
            self._robot[rt] = (q.copy(), None if seq is None else int(seq), ramp)
            if rt > self._newest_robot_time:
                self._newest_robot_time = rt
                cut = rt - self.horizon_s
                for old in [k for k in self._robot if k < cut]:
                    del self._robot[old]
        if seq is None:
            return
        seq = int(seq)
        self.acked_seq = max(self.acked_seq, seq)
        if seq in self._delay_seen or to_host is None or seq not in self._sent:
            return
        send_time, target = self._sent[seq]
        # Only the report that shows this command's own target at a time after it was sent dates its arrival
        # (a command equal to the previous target leaves target_time where it was).
        t_apply = float(to_host(rt))
        if t_apply >= send_time and q.shape == target.shape and np.allclose(q, target, rtol=0.0, atol=1e-9):
            self._delay_seen.add(seq)
            self._delays.append(t_apply - send_time)

    # ----------------------------------------------------------------- output
    @property
    def has_robot_reports(self) -> bool:
        return bool(self._robot)

    def downlink_delay(self) -> float | None:
        """Median measured command delay [s], host send to robot apply (None: too few samples)."""
        if len(self._delays) < self.min_delay_samples:
            return None
        return float(np.median(np.fromiter(self._delays, float)))

    def delay_quantiles(self, count: int) -> np.ndarray | None:
        """``count`` delays [s] at the quantiles (j + 0.5) / count of the measured ones (None: too few samples)."""
        if len(self._delays) < self.min_delay_samples or count < 1:
            return None
        return np.quantile(np.fromiter(self._delays, float), (np.arange(count) + 0.5) / count)

    @property
    def delay_samples(self) -> int:
        return len(self._delays)

    def applied(self) -> list[tuple[float, np.ndarray]]:
        """The twin's own command history (host time, target)."""
        return [(t, target) for t, target, _ in self._twin]

    def schedule(self, t0: float, t_ack: float, to_host: Callable[[float], float] | None, *, ramps: bool = False) -> list[tuple]:
        """Targets to set while re-simulating from host time ``t0`` [s], sorted by time: ``(t, target)`` pairs, or
        with ``ramps`` ``(t, target, ramp_s)`` with the robot's ramp (None: the twin's guess, the servo's own ramp)
        and the target in effect at ``t0`` at its real time (a ramp under way at ``t0`` keeps its start).

        Up to ``t_ack`` (host time of the newest robot state) the robot's reported targets at their real times,
        starting with the one in effect at ``t0``; after it, the twin's own applications of the commands newer
        than any the robot reported (moved to ``t_ack`` if the twin applied them earlier: the robot had not yet),
        except those that expired before ``t_ack``: the robot dropped them (lost before a blackout, refused
        after an e-stop), and replaying them at every re-simulation would pull the twin towards a target the
        robot never saw. Without robot reports (or a clock): the twin's own history.
        """
        if not self._robot or to_host is None:
            # A twin entry without a seq is a hold the twin set itself (a mirrored stop): a step, not a ramp.
            out = [(t, q, 0.0 if seq is None else None) for t, q, seq in self._twin if t >= t0 - 1e-12]
        else:
            out = []
            before: tuple[float, np.ndarray, float] | None = None
            for rt, (q, _, ramp) in self._robot.items():
                th = float(to_host(rt))
                if th <= t0:
                    if before is None or th > before[0]:
                        before = (th, q, ramp)
                elif th <= t_ack:
                    out.append((th, q, ramp))
            if before is not None:
                out.append((before[0] if ramps else t0, before[1], before[2]))
            for t, q, seq in self._twin:
                if seq is None:
                    if t >= t0 - 1e-12:
                        out.append((t, q, 0.0))
                elif seq > self.acked_seq and self._expires.get(seq, float("inf")) >= t_ack:
                    out.append((max(t, t_ack), q, None))
        out.sort(key=lambda e: e[0])
        return out if ramps else [(t, q) for t, q, _ in out]
