"""Evaluation statistics: success-rate intervals, sim-vs-real agreement, latency and length summaries.

Pure numpy. ``mean_maximum_rank_violation`` and ``pearson`` follow SimplerEnv's
``simpler_env/utils/metrics.py`` (``mean_maximum_rank_violation(perf_sim, perf_real)``, ``pearson_correlation``)
and reproduce its numbers on its own ``SIMPLER_PERF``/``REAL_PERF`` tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vlatwin.errors import VlatwinError

#: Two-sided 95 % normal quantile.
Z95 = 1.959964


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    Args:
        successes: Number of successful episodes, ``0 <= successes <= n``.
        n: Number of episodes. ``n == 0`` gives the uninformative ``(0.0, 1.0)``.
        z: Normal quantile of the two-sided level (1.959964 for 95 %).

    Returns:
        ``(lo, hi)`` in [0, 1].
    """
    successes, n = int(successes), int(n)
    if n < 0 or successes < 0 or successes > n:
        raise VlatwinError(f"wilson_interval: need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # Exact ends: 0 successes -> lo is 0, all successes -> hi is 1 (no rounding residue).
    if successes == 0:
        lo = 0.0
    if successes == n:
        hi = 1.0
    return (lo, hi)


def _paired(a: Sequence[float], b: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise VlatwinError(
            f"{what}: the two lists differ in length ({x.size} vs {y.size}); give one value per policy in each"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise VlatwinError(f"{what}: values must be finite numbers")
    return x, y


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation coefficient r of two equally long sequences.

    Raises:
        VlatwinError: fewer than 2 points, or one sequence has zero variance (r undefined).
    """
    x, y = _paired(a, b, "pearson")
    if x.size < 2:
        raise VlatwinError(f"pearson: need at least 2 policies, got {x.size}")
    x = x - x.mean()
    y = y - y.mean()
    sxx, syy = float(np.sum(x * x)), float(np.sum(y * y))
    if sxx == 0.0 or syy == 0.0:
        side = "first" if sxx == 0.0 else "second"
        raise VlatwinError(f"pearson: all values of the {side} table are equal, so r is undefined")
    r = float(np.sum(x * y)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def mean_maximum_rank_violation(perf_sim: Sequence[float], perf_real: Sequence[float]) -> float:
    """Mean Maximum Rank Violation (MMRV) of simulated against real success rates, as SimplerEnv.

    For each policy i: the largest real-performance gap ``|real_i - real_j|`` over the policies j whose
    order in sim (``sim_i > sim_j``) disagrees with their order on the real robot (``real_i > real_j``);
    MMRV is the mean of these over i. 0 means sim ranks the policies as the real robot does. It is
    asymmetric: the violations are weighed with the *real* gaps, so ``perf_sim`` comes first.

    Args:
        perf_sim: Success rate of each policy in simulation.
        perf_real: Success rate of the same policies (same order) on the real robot.
    """
    sim, real = _paired(perf_sim, perf_real, "mean_maximum_rank_violation")
    if sim.size == 0:
        raise VlatwinError("mean_maximum_rank_violation: no policies given")
    violations = []
    for i in range(sim.size):
        worst = 0.0
        for j in range(sim.size):
            if (sim[i] > sim[j]) != (real[i] > real[j]):
                worst = max(worst, float(np.abs(real[i] - real[j])))
        violations.append(worst)
    return float(np.mean(violations))


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def latency_summary(ms: Sequence[float]) -> dict[str, float | int | None]:
    """``{"p50", "p99", "mean", "max", "n"}`` of latencies in ms (linear-interpolated percentiles).

    An empty list gives ``None`` for every statistic and ``n = 0``.
    """
    values = np.asarray(list(ms), dtype=np.float64).ravel()
    if values.size == 0:
        return {"p50": None, "p99": None, "mean": None, "max": None, "n": 0}
    return {
        "p50": _percentile(values, 50),
        "p99": _percentile(values, 99),
        "mean": float(values.mean()),
        "max": float(values.max()),
        "n": int(values.size),
    }


def length_summary(steps: Sequence[int]) -> dict[str, float | int | None]:
    """``{"mean", "median", "min", "max"}`` of episode lengths in steps (``None`` each when empty)."""
    values = np.asarray(list(steps), dtype=np.float64).ravel()
    if values.size == 0:
        return {"mean": None, "median": None, "min": None, "max": None}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "min": int(values.min()),
        "max": int(values.max()),
    }


def summarize_episodes(episodes: Sequence[dict], latencies_ms: Sequence[float] | None = None) -> dict:
    """The ``results.json`` summary block (per task or overall) of a list of episode records.

    Args:
        episodes: Episode dicts with ``success`` (bool), ``steps`` (int) and optionally
            ``rejected_actions`` (int) and ``failure`` (str | None).
        latencies_ms: Every policy call's latency [ms] across these episodes (empty/None -> ``None`` stats).

    Returns:
        ``{"episodes", "successes", "success_rate", "ci95", "length", "latency_ms", "rejected_actions", "failures"}``.
    """
    n = len(episodes)
    successes = sum(1 for ep in episodes if ep.get("success"))
    lo, hi = wilson_interval(successes, n)
    return {
        "episodes": n,
        "successes": successes,
        "success_rate": successes / n if n else 0.0,
        "ci95": [lo, hi],
        "length": length_summary([int(ep.get("steps") or 0) for ep in episodes]),
        "latency_ms": latency_summary(latencies_ms or []),
        "rejected_actions": sum(int(ep.get("rejected_actions") or 0) for ep in episodes),
        "failures": sum(1 for ep in episodes if ep.get("failure")),
    }


__all__ = [
    "Z95",
    "latency_summary",
    "length_summary",
    "mean_maximum_rank_violation",
    "pearson",
    "summarize_episodes",
    "wilson_interval",
]
