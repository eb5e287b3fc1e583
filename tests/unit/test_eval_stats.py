"""Evaluation statistics and `eval compare`: Wilson intervals, Pearson r and MMRV against hand-computed values
and against SimplerEnv's published sim/real tables (numbers from simpler_env/utils/metrics.py @4ab7178)."""

import json
import math

import pytest
from vlatwin.errors import VlatwinError
from vlatwin.eval.compare import compare, compare_paths, format_compare, load_table
from vlatwin.eval.stats import (
    latency_summary,
    length_summary,
    mean_maximum_rank_violation,
    pearson,
    summarize_episodes,
    wilson_interval,
)

# SimplerEnv's SIMPLER_PERF (sim) and REAL_PERF (real), same policy order; expected values are what
# SimplerEnv's own mean_maximum_rank_violation(sim, real) / (real, sim) and pearson_correlation(sim, real) return.
SIMPLER = {
    "google_robot_pick_coke_can": (
        [0.787, 0.857, 0.710, 0.567, 0.027, 0.170],
        [0.907, 0.853, 0.920, 0.760, 0.133, 0.293],
        0.03133333333333336, 0.06183333333333335, 0.9754339621228817,
    ),
    "google_robot_move_near": (
        [0.779, 0.442, 0.354, 0.317, 0.050, 0.042],
        [0.733, 0.633, 0.583, 0.450, 0.017, 0.350],
        0.11099999999999999, 0.0026666666666666666, 0.8560966643118902,
    ),
    "google_robot_open_drawer": (
        [0.157, 0.601, 0.463, 0.296, 0.000, 0.009],
        [0.333, 0.815, 0.704, 0.519, 0.000, 0.148],
        0.0, 0.0, 0.9831664917316731,
    ),
    "google_robot_close_drawer": (
        [0.343, 0.861, 0.667, 0.891, 0.278, 0.444],
        [0.630, 0.926, 0.889, 0.741, 0.000, 0.519],
        0.12333333333333335, 0.11333333333333333, 0.7712328181593621,
    ),
    "google_robot_place_apple_in_closed_top_drawer": (
        [0.037, 0.065, 0.130, 0.213, 0.000, 0.000],
        [0.074, 0.185, 0.185, 0.407, 0.000, 0.000],
        0.0, 0.010833333333333334, 0.96917180614324,
    ),
    "widowx_carrot_on_plate": (
        [0.042, 0.083, 0.097],
        [0.000, 0.250, 0.083],
        0.11133333333333333, 0.009333333333333332, 0.571367598454572,
    ),
    "widowx_put_eggplant_in_basket": (
        [0.000, 0.431, 0.569],
        [0.000, 0.250, 0.400],
        0.0, 0.0, 0.9894145664016768,
    ),
}  # fmt: skip


@pytest.mark.parametrize("task", sorted(SIMPLER))
def test_mmrv_and_pearson_match_simplerenv(task):
    """Same numbers as SimplerEnv on its own tables, in both argument orders (MMRV is asymmetric)."""
    sim, real, mmrv_sim_real, mmrv_real_sim, r = SIMPLER[task]
    assert mean_maximum_rank_violation(sim, real) == pytest.approx(mmrv_sim_real, abs=1e-12)
    assert mean_maximum_rank_violation(real, sim) == pytest.approx(mmrv_real_sim, abs=1e-12)
    # SimplerEnv adds 1e-8 to the denominator; we do not, hence the small tolerance.
    assert pearson(sim, real) == pytest.approx(r, abs=1e-6)


def test_mmrv_hand_computed():
    """sim ranks policies 1 and 2 the wrong way round: both get violation |0.8 - 0.6| = 0.2, policy 0 none."""
    assert mean_maximum_rank_violation([0.1, 0.5, 0.9], [0.2, 0.8, 0.6]) == pytest.approx(0.4 / 3)
    assert mean_maximum_rank_violation([0.1, 0.5, 0.9], [0.2, 0.6, 0.8]) == 0.0
    # Asymmetric: the gap is measured in the second (real) argument.
    assert mean_maximum_rank_violation([0.2, 0.8, 0.6], [0.1, 0.5, 0.9]) == pytest.approx(0.8 / 3)
    # A tie in sim but not in real: only the policy that is better on the real robot counts it
    # (SimplerEnv's strict '>' on both sides): (0 + 0.4) / 2.
    assert mean_maximum_rank_violation([0.5, 0.5], [0.3, 0.7]) == pytest.approx(0.2)
    with pytest.raises(VlatwinError, match="length"):
        mean_maximum_rank_violation([0.1, 0.2], [0.1])


def test_pearson_hand_computed_and_errors():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # x = [1,2,3,4], y = [1,3,2,4]: centred dot 4, |x|^2 = |y|^2 = 5 -> r = 0.8
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    with pytest.raises(VlatwinError, match="at least 2"):
        pearson([0.5], [0.5])
    with pytest.raises(VlatwinError, match="equal"):
        pearson([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])


def test_wilson_interval_known_values():
    """Textbook values: 8/10 -> [0.4902, 0.9433]; 0/10 -> [0, 0.2775]; 10/10 -> [0.7225, 1]."""
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == (pytest.approx(0.49016, abs=5e-5), pytest.approx(0.94332, abs=5e-5))
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.27754, abs=5e-5))
    assert wilson_interval(10, 10) == (pytest.approx(0.72246, abs=5e-5), 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # Symmetric in successes <-> failures, and narrows with n.
    lo3, hi3 = wilson_interval(3, 10)
    lo7, hi7 = wilson_interval(7, 10)
    assert lo3 == pytest.approx(1 - hi7) and hi3 == pytest.approx(1 - lo7)
    assert wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0] < hi3 - lo3
    with pytest.raises(VlatwinError):
        wilson_interval(11, 10)


def test_latency_and_length_summaries():
    lat = latency_summary([10.0, 20.0, 30.0, 40.0, 1000.0])
    assert lat["p50"] == 30.0 and lat["n"] == 5 and lat["max"] == 1000.0 and lat["mean"] == 220.0
    assert lat["p99"] == pytest.approx(40.0 + 0.96 * 960.0)  # linear interpolation at rank 3.96
    assert latency_summary([]) == {"p50": None, "p99": None, "mean": None, "max": None, "n": 0}
    assert length_summary([57, 10, 20, 33]) == {"mean": 30.0, "median": 26.5, "min": 10, "max": 57}
    assert length_summary([]) == {"mean": None, "median": None, "min": None, "max": None}


def test_summarize_episodes():
    eps = [
        {"success": True, "steps": 10},
        {"success": False, "steps": 30, "failure": "NaN action", "rejected_actions": 2},
    ]
    block = summarize_episodes(eps, [5.0, 7.0])
    assert block["episodes"] == 2 and block["successes"] == 1 and block["success_rate"] == 0.5
    assert block["ci95"] == list(wilson_interval(1, 2)) and block["failures"] == 1 and block["rejected_actions"] == 2
    assert block["length"]["mean"] == 20.0 and block["latency_ms"]["p50"] == 6.0


# ------------------------------------------------------------------------------------------ compare
def test_compare_perfect_ranking_and_one_swap():
    sim = {"expert": 0.95, "noisy_0.1": 0.7, "noisy_0.3": 0.4, "random": 0.05}
    real = {"expert": 0.9, "noisy_0.1": 0.65, "noisy_0.3": 0.35, "random": 0.0}  # sim - 0.05
    same = compare(sim, real)
    assert same.mmrv == 0.0 and same.pearson == pytest.approx(1.0, abs=1e-12)
    assert same.policies == list(sim)

    swapped = dict(real, **{"noisy_0.1": 0.35, "noisy_0.3": 0.65})  # sim ranks the middle two the wrong way
    res = compare(sim, swapped)
    # noisy_0.1 and noisy_0.3 each violate by |0.65 - 0.35| = 0.3; expert and random none -> 0.6 / 4
    assert res.mmrv == pytest.approx(0.15)
    assert 0 < res.pearson < 1
    text = format_compare(res)
    assert "MMRV      0.1500" in text and "Pearson r" in text and "noisy_0.3" in text


def test_compare_needs_two_shared_and_reports_extras():
    with pytest.raises(VlatwinError, match="at least 2"):
        compare({"a": 0.1, "b": 0.2}, {"a": 0.3, "c": 0.4})
    res = compare({"a": 0.1, "b": 0.2, "x": 0.5}, {"b": 0.5, "a": 0.3, "y": 0.1})
    assert res.policies == ["a", "b"] and res.only_a == ["x"] and res.only_b == ["y"]
    flat = compare({"a": 0.5, "b": 0.5}, {"a": 0.1, "b": 0.9})
    assert flat.pearson is None and "undefined" in format_compare(flat)


def _results(label: str, rate: float, task_rate: float | None = None) -> dict:
    return {
        "label": label,
        "policy": {"spec": f"expert:{label}"},
        "tasks": {"reach": {"episodes": 10, "successes": round(10 * (task_rate if task_rate is not None else rate)),
                            "success_rate": task_rate if task_rate is not None else rate}},
        "overall": {"episodes": 10, "successes": round(10 * rate), "success_rate": rate},
        "episodes": [],
    }  # fmt: skip


def test_load_table_from_every_source(tmp_path):
    rates = {"expert": 0.9, "noisy": 0.5, "random": 0.1}
    runs = tmp_path / "runs"
    for label, rate in rates.items():
        (runs / label).mkdir(parents=True)
        (runs / label / "results.json").write_text(json.dumps(_results(label, rate, task_rate=rate / 2)))
    assert load_table(runs) == rates
    assert load_table(runs / "noisy") == {"noisy": 0.5}
    assert load_table(runs / "noisy" / "results.json") == {"noisy": 0.5}
    assert load_table(runs, task="reach") == {k: v / 2 for k, v in rates.items()}

    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(["runs/expert/results.json", "runs/random"]))
    assert load_table(listing) == {"expert": 0.9, "random": 0.1}

    plain = tmp_path / "real.json"
    plain.write_text(json.dumps({"expert": 0.8, "noisy": 0.6, "random": 0.0}))
    assert load_table(plain)["noisy"] == 0.6

    table_csv = tmp_path / "real.csv"
    table_csv.write_text("policy,success_rate\nexpert,0.8\nnoisy,0.6\n\nrandom,0.0\n")
    assert load_table(table_csv) == {"expert": 0.8, "noisy": 0.6, "random": 0.0}

    res = compare_paths(runs, table_csv)
    assert (
        res.mmrv == 0.0
        and res.name_a == str(runs)
        and math.isclose(res.pearson, pearson([0.9, 0.5, 0.1], [0.8, 0.6, 0.0]))
    )


def test_load_table_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("policy,success_rate\nexpert,85\n")
    with pytest.raises(VlatwinError, match=r"\[0, 1\]"):
        load_table(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("a,0.1\na,0.2\n")
    with pytest.raises(VlatwinError, match="twice"):
        load_table(dup)
    with pytest.raises(VlatwinError, match="no such"):
        load_table(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VlatwinError, match="results.json"):
        load_table(empty)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(VlatwinError, match="not valid JSON") as info:
        load_table(broken)
    assert "\n" not in str(info.value)
