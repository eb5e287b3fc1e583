"""Robot clock against host clock: NTP four-timestamp exchanges, min-delay filtering, offset + skew fit.

One exchange gives four times: ``t1`` host send, ``t2`` robot receive, ``t3`` robot reply, ``t4`` host
receive [s]. With symmetric one-way delays, the robot clock at the exchange's host midpoint
``(t1 + t4) / 2`` reads ``(t2 + t3) / 2``, so

    offset = ((t2 - t1) + (t3 - t4)) / 2      robot - host [s]
    delay  = (t4 - t1) - (t3 - t2)             network round trip without the robot's turnaround [s]

An offset sample's error is at most ``delay / 2`` (all of the delay on one side), and queuing only ever
adds delay, so the exchanges with the smallest round trip are the trustworthy ones: of the last
``window`` exchanges, :class:`ClockSync` keeps the ``keep`` with the smallest delay and fits

    robot = host + offset0 + skew * (host - t_ref)

to them by least squares (``t_ref`` is the kept samples' mean host time, which decorrelates the two
parameters). The skew is fitted only when the samples span at least ``min_skew_span_s``; over a shorter span the slope is
mostly noise, so the fit is offset-only (skew 0).

One window is often short (64 exchanges at 50 Hz: 1.3 s), and the slope's error is the offset noise over
the span, so the skew comes from a longer record: every exchange that was among the ``keep`` best of a
full window is remembered (up to ``4 * window`` of them, at most ``skew_horizon_s`` old), and the skew is
the least-squares slope over those whenever they span longer than the current kept set. The offset is
then the kept samples' mean residual under that slope, so it still follows the newest window.

The slope is a MAP estimate with a zero-mean Gaussian prior of ``skew_prior_ppm`` (real oscillators drift
tens of ppm): ``Sxy / (Sxx + s^2 / prior^2)`` with ``s`` the offsets' residual scatter. On a quiet link it is
the plain least-squares slope; on a 50 +- 10 ms link (offset samples scattered by ~7 ms) the plain slope over
10-30 s read 120-980 ppm against a true 0 and put the clock off by 2-7 ms.

Bad exchanges (NaN/Inf, ``t4 < t1``, ``t3 < t2``, negative round trip) come from the network, not from
the user, so they are not errors: :meth:`ClockSync.add` ignores them, counts them in
:attr:`ClockSync.rejected` and keeps the reason in :attr:`ClockSync.last_rejection`.
"""

from __future__ import annotations

import logging
import math
from collections import deque

import numpy as np

from vlatwin.errors import VlatwinError

__all__ = ["ClockSync"]

NEGATIVE_ROUND_TRIP_TOLERANCE_S = 1e-9
"""Round trips this far below zero [s] are float rounding of a zero-delay link (two clocks subtracted at a
large offset), not bad exchanges."""

logger = logging.getLogger(__name__)


class ClockSync:
    """Offset and skew of the robot clock against the host clock from NTP-style exchanges.

    Args:
        window: Number of most recent valid exchanges the filter looks at.
        keep: Of those, how many with the smallest round trip enter the fit.
        min_samples: Valid exchanges needed before :attr:`ready` is True.
        min_skew_span_s: Host-time span [s] the samples must cover before the skew is fitted.
        skew_horizon_s: Age limit [s] of the remembered good exchanges the skew is fitted over.
        skew_prior_ppm: Standard deviation [ppm] of the skew's zero-mean prior (``inf``: plain least squares).
    """

    def __init__(
        self,
        window: int = 64,
        keep: int = 8,
        min_samples: int = 4,
        *,
        min_skew_span_s: float = 1.0,
        skew_horizon_s: float = 120.0,
        skew_prior_ppm: float = 100.0,
    ):
        if int(window) != window or window < 1:
            raise VlatwinError(f"ClockSync: window must be a positive integer, got {window}")
        if int(keep) != keep or not 1 <= keep <= window:
            raise VlatwinError(f"ClockSync: keep must be an integer in [1, window={window}], got {keep}")
        if int(min_samples) != min_samples or min_samples < 1:
            raise VlatwinError(f"ClockSync: min_samples must be a positive integer, got {min_samples}")
        if not math.isfinite(min_skew_span_s) or min_skew_span_s <= 0:
            raise VlatwinError(
                f"ClockSync: min_skew_span_s must be a positive number of seconds, got {min_skew_span_s}"
            )
        if not math.isfinite(skew_horizon_s) or skew_horizon_s <= 0:
            raise VlatwinError(f"ClockSync: skew_horizon_s must be a positive number of seconds, got {skew_horizon_s}")
        if not (skew_prior_ppm > 0):  # also refuses NaN
            raise VlatwinError(f"ClockSync: skew_prior_ppm must be > 0 (inf: no prior), got {skew_prior_ppm}")
        self.skew_prior = float(skew_prior_ppm) * 1e-6
        self.window = int(window)
        self.keep = int(keep)
        self.min_samples = int(min_samples)
        self.min_skew_span_s = float(min_skew_span_s)
        self.skew_horizon_s = float(skew_horizon_s)
        self.reset()

    def reset(self) -> None:
        """Forget every exchange (after a robot restart its clock may have jumped)."""
        # (host midpoint [s], offset robot - host [s], round trip [s], sample index) of the last `window`
        # valid exchanges
        self._buf: deque[tuple[float, float, float, int]] = deque(maxlen=self.window)
        # sample index -> (host midpoint, offset): exchanges that were among the `keep` best of a full window
        self._good: dict[int, tuple[float, float]] = {}
        self.samples = 0
        """Valid exchanges added since construction or :meth:`reset`."""
        self.rejected = 0
        """Exchanges ignored as invalid."""
        self.last_rejection: str | None = None
        """Why the last ignored exchange was ignored."""
        self._offset0 = 0.0
        self._skew = 0.0
        self._t_ref = 0.0
        self._delay = math.nan
        self._t_newest = 0.0

    def add(self, t1: float, t2: float, t3: float, t4: float) -> None:
        """Add one exchange and refit.

        Args:
            t1: Host send time [s] (host clock).
            t2: Robot receive time [s] (robot clock).
            t3: Robot reply time [s] (robot clock).
            t4: Host receive time [s] (host clock).
        """
        t1, t2, t3, t4 = float(t1), float(t2), float(t3), float(t4)
        reason = None
        if not all(math.isfinite(t) for t in (t1, t2, t3, t4)):
            reason = "non-finite timestamp"
        elif t4 < t1:
            reason = f"host receive before send (t4 - t1 = {t4 - t1:.6g} s)"
        elif t3 < t2:
            reason = f"robot reply before receive (t3 - t2 = {t3 - t2:.6g} s)"
        else:
            delay = (t4 - t1) - (t3 - t2)
            if delay < -NEGATIVE_ROUND_TRIP_TOLERANCE_S:
                # Impossible with sane clocks (the robot's turnaround cannot exceed the host's round trip).
                reason = f"negative round trip ({delay:.6g} s)"
            else:
                # A link with no delay (the robot on this host) rounds to a hair below zero: that is zero.
                delay = max(delay, 0.0)
        if reason is not None:
            self.rejected += 1
            self.last_rejection = reason
            logger.debug("clock sync: ignored exchange (%s)", reason)
            return
        offset = ((t2 - t1) + (t3 - t4)) / 2.0
        self._buf.append((0.5 * (t1 + t4), offset, delay, self.samples))
        self.samples += 1
        self._fit()

    def _fit(self) -> None:
        data = np.asarray(self._buf, dtype=np.float64)
        self._t_newest = float(data[:, 0].max())
        # Stable sort: among equal delays the older exchange wins, so refits are deterministic.
        kept = data[np.argsort(data[:, 2], kind="stable")[: self.keep]]
        host, offset = kept[:, 0], kept[:, 1]
        self._delay = float(kept[0, 2])
        self._t_ref = float(host.mean())
        # Only a full window's verdict counts as "good": before it fills, the first exchanges are kept
        # whatever their delay, and one heavy-tailed outlier would tilt the long-baseline slope.
        if len(data) == self.window:
            for h, o, _, index in kept:
                self._good[int(index)] = (float(h), float(o))
            self._prune_good()
        skew = self._slope(host, offset)
        if self._good:
            good = np.asarray(list(self._good.values()))
            if np.ptp(good[:, 0]) > np.ptp(host):
                skew = self._slope(good[:, 0], good[:, 1])
        self._skew = skew
        # Intercept of the kept samples under that slope: the offset tracks the newest window.
        self._offset0 = float(np.mean(offset - skew * (host - self._t_ref)))

    def _slope(self, host: np.ndarray, offset: np.ndarray) -> float:
        """d(offset)/d(host) under the skew prior, or 0 when too few samples or too short a span."""
        if len(host) < 3 or np.ptp(host) < self.min_skew_span_s:
            return 0.0
        dh = host - host.mean()
        do = offset - offset.mean()
        sxx, sxy = float(np.dot(dh, dh)), float(np.dot(dh, do))
        if not math.isfinite(self.skew_prior):
            return sxy / sxx
        plain = sxy / sxx
        scatter = float(np.dot(do - plain * dh, do - plain * dh)) / (len(host) - 2) if len(host) > 2 else 0.0
        return sxy / (sxx + scatter / self.skew_prior**2)

    def _prune_good(self) -> None:
        cutoff = self._t_newest - self.skew_horizon_s
        stale = [k for k, (h, _) in self._good.items() if h < cutoff]
        over = len(self._good) - len(stale) - 4 * self.window
        if over > 0:
            # Over the size cap: drop the oldest by host time as well.
            fresh = sorted((h, k) for k, (h, _) in self._good.items() if h >= cutoff)
            stale += [k for _, k in fresh[:over]]
        for k in stale:
            del self._good[k]

    """Properties."""

    @property
    def ready(self) -> bool:
        """True once ``min_samples`` valid exchanges have been added."""
        return self.samples >= self.min_samples

    @property
    def offset(self) -> float:
        """Robot - host [s] at the newest exchange's host time (0 before any exchange)."""
        if not self._buf:
            return 0.0
        return self._offset0 + self._skew * (self._t_newest - self._t_ref)

    @property
    def skew(self) -> float:
        """Robot clock rate minus host clock rate (dimensionless; 0 while the kept span is too short)."""
        return self._skew

    @property
    def skew_ppm(self) -> float:
        """:attr:`skew` in parts per million."""
        return self._skew * 1e6

    @property
    def delay(self) -> float:
        """Smallest round trip among the kept exchanges [s] (NaN before any exchange)."""
        return self._delay

    def to_robot(self, host_time: float) -> float:
        """Robot clock reading [s] at host time ``host_time`` [s]."""
        self._require_sample()
        return float(host_time) + self._offset0 + self._skew * (float(host_time) - self._t_ref)

    def to_host(self, robot_time: float) -> float:
        """Host time [s] at which the robot clock reads ``robot_time`` [s] (inverse of :meth:`to_robot`)."""
        self._require_sample()
        return (float(robot_time) - self._offset0 + self._skew * self._t_ref) / (1.0 + self._skew)

    def _require_sample(self) -> None:
        if not self._buf:
            raise VlatwinError("ClockSync: no valid clock exchange yet; add() sync samples before converting times")

    def __repr__(self) -> str:
        return (
            f"ClockSync(samples={self.samples}, offset={self.offset * 1e3:.4f} ms, skew={self.skew_ppm:.2f} ppm, "
            f"delay={self.delay * 1e3:.4f} ms, ready={self.ready})"
        )
