"""Clock sync: NTP four-timestamp exchanges with offset, skew, asymmetric jitter and heavy-tailed outliers."""

import math

import numpy as np
import pytest
from vlatwin.errors import VlatwinError
from vlatwin.twin.clock import ClockSync

HOST0 = 5000.0  # host monotonic clocks start anywhere; a large origin checks the fit's conditioning


def exchanges(seed, *, offset=12.345e-3, skew=50e-6, rate=20.0, duration=10.0, jitter=150e-6, outliers=0.1):
    """Synthetic exchanges: robot = host + offset + skew * (host - HOST0); each direction has a 200 us base
    delay plus independent exponential jitter (so every sample is asymmetric) and, with probability
    ``outliers``, a Pareto(1.5) queuing spike of milliseconds (heavy-tailed: infinite variance)."""
    rng = np.random.default_rng(seed)

    def robot(h):
        return h + offset + skew * (h - HOST0)

    out = []
    for k in range(int(duration * rate)):
        t1 = HOST0 + k / rate + rng.uniform(0.0, 1e-3)
        up, down = 200e-6 + rng.exponential(jitter, size=2)
        up += rng.pareto(1.5) * 2e-3 if rng.random() < outliers else 0.0
        down += rng.pareto(1.5) * 2e-3 if rng.random() < outliers else 0.0
        h2 = t1 + up
        h3 = h2 + 50e-6 + rng.exponential(50e-6)  # robot turnaround
        out.append((t1, robot(h2), robot(h3), h3 + down))
    return out, robot


@pytest.mark.parametrize("seed", range(8))
def test_offset_and_skew_after_10s(seed):
    """12.345 ms offset + 50 ppm skew, heavy-tailed asymmetric delays: offset within 50 us, skew within 5 ppm."""
    ex, robot = exchanges(seed)
    sync = ClockSync()
    for e in ex:
        sync.add(*e)
    h = ex[-1][3]
    assert sync.ready and sync.samples == len(ex)
    assert abs(sync.to_robot(h) - robot(h)) < 50e-6
    mid = 0.5 * (ex[-1][0] + ex[-1][3])  # .offset is robot - host at the newest exchange's host midpoint
    assert abs(sync.offset - (robot(mid) - mid)) < 50e-6
    assert abs(sync.skew_ppm - 50.0) < 5.0
    assert sync.skew == pytest.approx(sync.skew_ppm * 1e-6)
    assert 400e-6 <= sync.delay < 1e-3  # the smallest kept round trip: base 400 us plus a little jitter


def test_min_delay_filter_beats_plain_average():
    """The outliers would bias a plain mean of the per-sample offsets by far more than the filtered estimate."""
    ex, robot = exchanges(3)
    a = np.asarray(ex)
    raw = ((a[:, 1] - a[:, 0]) + (a[:, 2] - a[:, 3])) / 2 - (
        robot(0.5 * (a[:, 0] + a[:, 3])) - 0.5 * (a[:, 0] + a[:, 3])
    )
    sync = ClockSync()
    for e in ex:
        sync.add(*e)
    h = ex[-1][3]
    assert np.max(np.abs(raw)) > 1e-3  # some single samples are off by milliseconds
    assert abs(sync.to_robot(h) - robot(h)) < np.max(np.abs(raw)) / 20


def test_zero_skew():
    """No drift: skew stays near 0 and the offset is still right."""
    ex, _ = exchanges(11, skew=0.0)
    sync = ClockSync()
    for e in ex:
        sync.add(*e)
    assert abs(sync.skew_ppm) < 5.0
    assert abs(sync.offset - 12.345e-3) < 50e-6


def test_negative_offset_and_skew():
    """Robot behind the host and running slow: signs come out right."""
    ex, robot = exchanges(5, offset=-0.25, skew=-80e-6)
    sync = ClockSync()
    for e in ex:
        sync.add(*e)
    h = ex[-1][3]
    assert abs(sync.to_robot(h) - robot(h)) < 50e-6
    assert abs(sync.skew_ppm + 80.0) < 5.0


def test_to_host_inverts_to_robot():
    """to_host(to_robot(h)) == h, including away from the fitted samples."""
    ex, _ = exchanges(1)
    sync = ClockSync()
    for e in ex:
        sync.add(*e)
    for h in (HOST0, HOST0 + 5.0, HOST0 + 100.0):
        assert sync.to_host(sync.to_robot(h)) == pytest.approx(h, abs=1e-9)


def test_offset_only_until_span_is_long_enough():
    """Kept samples spanning less than min_skew_span_s give skew 0 (offset-only fit)."""
    ex, robot = exchanges(2, rate=100.0, duration=0.5)
    sync = ClockSync()
    for e in ex:
        sync.add(*e)
    assert sync.skew == 0.0
    h = ex[-1][3]
    # 50 ppm over the 0.5 s span moves the offset by 25 us; the offset-only fit stays within that.
    assert abs(sync.to_robot(h) - robot(h)) < 50e-6


def test_ready_and_before_any_sample():
    """ready after min_samples valid exchanges; converting before any exchange is a clear error."""
    sync = ClockSync(min_samples=3)
    assert not sync.ready and sync.offset == 0.0 and math.isnan(sync.delay)
    with pytest.raises(VlatwinError, match="no valid clock exchange"):
        sync.to_host(1.0)
    ex, _ = exchanges(4, outliers=0.0)
    for k, e in enumerate(ex[:3]):
        assert not sync.ready
        sync.add(*e)
        assert sync.samples == k + 1
    assert sync.ready
    assert abs(sync.offset - 12.345e-3) < 0.5e-3  # a few exchanges already give the offset to ~delay/2


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ((math.nan, 1.0, 1.1, 1.2), "non-finite"),
        ((0.0, 1.0, 1.1, math.inf), "non-finite"),
        ((1.0, 5.0, 5.1, 0.5), "receive before send"),
        ((0.0, 5.2, 5.1, 0.5), "reply before receive"),
        ((0.0, 5.0, 5.9, 0.5), "negative round trip"),
    ],
)
def test_bad_exchanges_are_ignored_and_counted(sample, reason):
    """NaN/Inf, reversed or negative-delay exchanges are ignored (counted, reason kept), not fitted."""
    sync = ClockSync()
    ex, _ = exchanges(6, outliers=0.0)
    for e in ex[:10]:
        sync.add(*e)
    before = (sync.offset, sync.samples)
    sync.add(*sample)
    assert (sync.offset, sync.samples) == before
    assert sync.rejected == 1 and reason in sync.last_rejection


def test_reset_forgets_a_clock_jump():
    """After reset() a robot clock that jumped by 1 s is followed immediately."""
    sync = ClockSync()
    for e in exchanges(7)[0]:
        sync.add(*e)
    sync.reset()
    ex, robot = exchanges(8, offset=1.012345)
    for e in ex:
        sync.add(*e)
    assert sync.samples == len(ex) and sync.rejected == 0
    assert abs(sync.to_robot(ex[-1][3]) - robot(ex[-1][3])) < 50e-6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 0},
        {"window": 8, "keep": 9},
        {"keep": 0},
        {"min_samples": 0},
        {"min_skew_span_s": math.nan},
        {"skew_horizon_s": -1.0},
    ],
)
def test_bad_parameters(kwargs):
    """Bad constructor arguments raise a one-line VlatwinError."""
    with pytest.raises(VlatwinError, match="ClockSync"):
        ClockSync(**kwargs)


def _gaussian_link(seed, *, skew, sigma=10e-3, latency=50e-3, rate=4.0, duration=14.0, offset=0.3):
    """Exchanges over a link with Gaussian jitter on both legs (50 +- 10 ms): each offset sample is off by
    (d_down - d_up) / 2, ~7 ms, whatever its round trip."""
    rng = np.random.default_rng(seed)

    def robot(h):
        return h + offset + skew * (h - HOST0)

    out = []
    for k in range(int(duration * rate)):
        t1 = HOST0 + k / rate
        down, up = latency + sigma * rng.standard_normal(2)
        out.append((t1, robot(t1 + down), robot(t1 + down + 20e-6), t1 + down + 20e-6 + up))
    return out, robot


def test_the_skew_prior_keeps_a_jittery_link_from_inventing_drift():
    """50 +- 10 ms link, no drift, 14 s of exchanges at 4 Hz, 60 links: the plain least-squares skew reads hundreds
    of ppm and puts the clock ~2.4 ms RMS off 0.1 s after the last exchange; under the 100 ppm prior ~1.2 ms
    (keeping 8 of 64 instead of 32: ~4.3 ms)."""
    errors = {"plain": [], "prior": []}
    skews = []
    for seed in range(60):
        ex, robot = _gaussian_link(seed, skew=0.0)
        syncs = {"plain": ClockSync(keep=32, min_skew_span_s=10.0, skew_prior_ppm=math.inf),
                 "prior": ClockSync(keep=32, min_skew_span_s=10.0)}
        for e in ex:
            for sync in syncs.values():
                sync.add(*e)
        h = ex[-1][3] + 0.1
        for name, sync in syncs.items():
            errors[name].append(sync.to_robot(h) - robot(h))
        skews.append(syncs["prior"].skew_ppm)
    rms = {name: float(np.sqrt(np.mean(np.square(v)))) for name, v in errors.items()}
    assert rms["prior"] < 0.7 * rms["plain"] and rms["prior"] < 2e-3
    assert float(np.median(np.abs(skews))) < 40.0


def test_the_skew_prior_gives_way_on_a_quiet_link():
    """A 300 ppm drift (3x the prior's scale) on a quiet link is still found: the prior weighs against the data's scatter."""
    ex, robot = exchanges(1, skew=300e-6, outliers=0.0)
    sync = ClockSync()
    for e in ex:
        sync.add(*e)
    assert abs(sync.skew_ppm - 300.0) < 5.0
    with pytest.raises(VlatwinError, match="skew_prior_ppm"):
        ClockSync(skew_prior_ppm=0.0)


def test_a_zero_delay_link_is_not_a_negative_round_trip():
    """The robot on this host (no delay) at a 0.3 s clock offset: t4 - t1 and t3 - t2 are the same 20 us, but
    subtracted at different magnitudes they round a hair below zero. That is a zero round trip, not a bad
    exchange (rejecting it left a zero-latency twin without a clock estimate)."""
    sync = ClockSync()
    for k in range(8):
        t1 = 1.0 + 0.25 * k
        t2 = t1 + 0.3
        t3 = t2 + 20e-6
        sync.add(t1, t2, t3, t1 + 20e-6)
    assert sync.rejected == 0 and sync.ready and sync.delay >= 0.0
    assert sync.offset == pytest.approx(0.3, abs=1e-12)
