"""The emulated network link: delay statistics, loss rate, latency spikes, blackouts, determinism."""

import numpy as np
import pytest

from vlatwin.errors import VlatwinError
from vlatwin.hardware.link import LinkModel


def _draw(link, times):
    return [link.delay(t) for t in times]


def test_perfect_link_delivers_everything_instantly():
    """Zero latency, jitter and loss: every packet arrives after exactly 0 s."""
    link = LinkModel()
    assert _draw(link, np.arange(100) * 0.01) == [0.0] * 100
    assert link.sent == 100 and link.lost == 0


def test_delay_mean_and_spread_match_latency_and_jitter():
    """50 ms +- 10 ms: sample mean and standard deviation within a few percent, no negative delay."""
    link = LinkModel(0.050, 0.010, seed=1)
    d = np.array(_draw(link, np.arange(20000) * 1e-3))
    assert abs(d.mean() - 0.050) < 0.0005
    assert abs(d.std() - 0.010) < 0.0005
    assert d.min() >= 0.0


def test_jitter_larger_than_latency_stays_non_negative():
    """A truncated normal: redrawn until the delay is >= 0."""
    d = np.array(_draw(LinkModel(0.0, 0.02, seed=2), np.zeros(5000)))
    assert d.min() >= 0.0 and d.mean() > 0.01


def test_loss_rate_is_bernoulli():
    """10 % loss: about 10 % of 20000 packets lost (binomial std 0.2 %)."""
    link = LinkModel(0.01, loss=0.1, seed=3)
    lost = sum(d is None for d in _draw(link, np.zeros(20000)))
    assert abs(lost / 20000 - 0.1) < 0.008
    assert link.lost == lost and link.sent == 20000


def test_spikes_add_delay_only_inside_their_window():
    """A 200 ms spike over [1, 2) s: packets sent inside take 200 ms more, outside unchanged."""
    link = LinkModel(0.01, spikes=[(1.0, 2.0, 0.2)])
    assert link.delay(0.99) == pytest.approx(0.01)
    assert link.delay(1.0) == pytest.approx(0.21)
    assert link.delay(1.99) == pytest.approx(0.21)
    assert link.delay(2.0) == pytest.approx(0.01)


def test_blackouts_drop_everything_inside_their_window():
    """During [1, 1.5) s every packet is lost; before and after none is (no random loss)."""
    link = LinkModel(0.01, 0.002, blackouts=[(1.0, 1.5)], seed=4)
    times = np.arange(0.0, 3.0, 0.001)
    out = _draw(link, times)
    inside = (times >= 1.0) & (times < 1.5)
    assert all(d is None for d, i in zip(out, inside) if i)
    assert all(d is not None for d, i in zip(out, inside) if not i)


def test_same_seed_same_draws_and_blackouts_do_not_shift_them():
    """Equal seeds give equal delays; a blackout leaves the later packets' delays unchanged."""
    times = np.arange(1000) * 0.01
    a = _draw(LinkModel(0.03, 0.01, 0.05, seed=7), times)
    b = _draw(LinkModel(0.03, 0.01, 0.05, seed=7), times)
    c = _draw(LinkModel(0.03, 0.01, 0.05, seed=8), times)
    assert a == b and a != c
    d = _draw(LinkModel(0.03, 0.01, 0.05, seed=7, blackouts=[(2.0, 3.0)]), times)
    after = times >= 3.0
    assert [x for x, k in zip(a, after) if k] == [x for x, k in zip(d, after) if k]


def test_packets_can_overtake():
    """With jitter, some packet arrives before one sent 1 ms earlier (in-order delivery is not guaranteed)."""
    link = LinkModel(0.05, 0.01, seed=5)
    times = np.arange(500) * 0.001
    arrive = times + np.array(_draw(link, times))
    assert np.any(np.diff(arrive) < 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency_s": -0.1},
        {"jitter_s": float("nan")},
        {"loss": 1.5},
        {"spikes": [(2.0, 1.0, 0.1)]},
        {"spikes": [(0, 1)]},
        {"blackouts": [(0, 1, 2)]},
    ],
)
def test_bad_parameters_are_one_line_errors(kwargs):
    """Negative latency, NaN jitter, loss > 1 and malformed windows are refused with one line."""
    with pytest.raises(VlatwinError) as err:
        LinkModel(**kwargs)
    assert "\n" not in str(err.value)
