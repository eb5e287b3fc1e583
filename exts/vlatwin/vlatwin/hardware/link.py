"""One direction of a network link: latency with jitter, packet loss, latency spikes and blackouts.

A packet sent at ``t_send`` is delivered ``delay(t_send)`` seconds later, or lost (None). The delay is
``latency_s + jitter_s * z`` with ``z`` a standard normal, truncated to non-negative delays by redrawing
(so ``latency_s`` is the centre and ``jitter_s`` the standard deviation of the delay as long as
``latency_s >= 2 * jitter_s``; with ``latency_s = 0`` the delay is half-normal), plus the extra delay of
every spike whose window contains ``t_send``. Loss is Bernoulli(``loss``); during a blackout every packet
is lost. Each packet's delay is drawn independently, so a packet may overtake an earlier one: receivers
keep the newest by sequence number, not the latest to arrive.

Deterministic for a seed: the model owns its numpy ``Generator`` and draws the same numbers per packet
whatever the outcome (a blackout or a loss does not shift the draws of later packets).
"""

from __future__ import annotations

import math

import numpy as np

from vlatwin.errors import VlatwinError

__all__ = ["LinkModel"]

_MAX_REDRAWS = 64
_FORMS = {2: "t_start, t_end", 3: "t_start, t_end, extra_s"}


def _windows(value, width: int, what: str) -> tuple[tuple[float, ...], ...]:
    """Validated ``[(t_start, t_end[, extra_s]), ...]`` as a tuple of float tuples."""
    out = []
    for item in value or ():
        try:
            window = tuple(float(v) for v in item)
        except (TypeError, ValueError):
            raise VlatwinError(
                f"{what}: expected ({_FORMS[width]}) per entry, got {item!r}"
            ) from None
        if len(window) != width or not all(math.isfinite(v) for v in window):
            raise VlatwinError(f"{what}: expected {width} finite numbers per entry, got {item!r}")
        if window[1] < window[0]:
            raise VlatwinError(f"{what}: window ends before it starts: {item!r}")
        if width == 3 and window[2] < 0:
            raise VlatwinError(f"{what}: extra delay must be >= 0 s, got {item!r}")
        out.append(window)
    return tuple(out)


class LinkModel:
    """One direction of a link (see the module docstring for the delay distribution).

    Args:
        latency_s: centre of the one-way delay [s].
        jitter_s: standard deviation of the delay [s] (before truncation at 0).
        loss: probability that a packet is lost, in [0, 1].
        seed: seed of this link's own random generator.
        spikes: ``[(t_start, t_end, extra_s), ...]``: packets sent in ``[t_start, t_end)`` take ``extra_s`` longer [s].
        blackouts: ``[(t_start, t_end), ...]``: packets sent in ``[t_start, t_end)`` are all lost [s].
    """

    def __init__(
        self,
        latency_s: float = 0.0,
        jitter_s: float = 0.0,
        loss: float = 0.0,
        *,
        seed: int = 0,
        spikes=(),
        blackouts=(),
    ):
        for name, value in (("latency_s", latency_s), ("jitter_s", jitter_s)):
            if not math.isfinite(float(value)) or float(value) < 0:
                raise VlatwinError(f"LinkModel: {name} must be a finite number >= 0 [s], got {value!r}")
        if not 0.0 <= float(loss) <= 1.0:
            raise VlatwinError(f"LinkModel: loss must be a probability in [0, 1], got {loss!r}")
        self.latency_s = float(latency_s)
        self.jitter_s = float(jitter_s)
        self.loss = float(loss)
        self.seed = int(seed)
        self.spikes = _windows(spikes, 3, "LinkModel spikes")
        self.blackouts = _windows(blackouts, 2, "LinkModel blackouts")
        self._rng = np.random.default_rng(self.seed)
        self.sent = 0
        """Packets offered to the link."""
        self.lost = 0
        """Packets the link dropped (loss and blackouts)."""

    def delay(self, t_send: float) -> float | None:
        """Seconds until a packet sent at ``t_send`` [s] arrives, or None when it is lost."""
        rng = self._rng
        dropped = rng.random() < self.loss
        base = self.latency_s
        if self.jitter_s > 0.0:
            for _ in range(_MAX_REDRAWS):
                base = self.latency_s + self.jitter_s * rng.standard_normal()
                if base >= 0.0:
                    break
            else:
                base = self.latency_s
        self.sent += 1
        if dropped or any(start <= t_send < end for start, end in self.blackouts):
            self.lost += 1
            return None
        return base + sum(extra for start, end, extra in self.spikes if start <= t_send < end)

    def __repr__(self) -> str:
        return (
            f"LinkModel(latency_s={self.latency_s}, jitter_s={self.jitter_s}, loss={self.loss}, seed={self.seed}, "
            f"spikes={list(self.spikes)}, blackouts={list(self.blackouts)})"
        )
