"""benchmarks/physics.py compares like with like: its raw Newton loop and the vlatwin loop simulate the same motion.

The ratio it prints means something only if both loops do the same work. They once did not: after the backend
began re-framing revolute joints (newton_assets.align_revolute_axes_with_twist), the raw loop kept Newton's
import as is and the same targets moved the arm up to 12 cm differently within 600 steps.
"""

import importlib.util
from pathlib import Path

import numpy as np

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "physics.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("physics_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_raw_and_vlatwin_loops_end_in_the_same_state(tabletop_usda, tabletop_config):
    bench = _load_benchmark()
    dt, iterations = tabletop_config.scene.physics.dt, tabletop_config.scene.physics.iterations
    run_vlatwin, capacity, targets, vlatwin_body_q = bench.vlatwin_loop(tabletop_usda, 300, dt, iterations)
    run_raw = bench.raw_newton_loop(tabletop_usda, targets, dt, iterations, capacity)
    start = vlatwin_body_q()
    for _ in range(2):  # the second round starts from each loop's reset: the loops must restart alike too
        run_vlatwin()
        run_raw()
        assert run_raw.sane()
        end = vlatwin_body_q()
        # The arm really moved (a loop that did nothing would match a loop that did nothing).
        assert np.abs(end[:, :3] - start[:, :3]).max() > 0.01
        np.testing.assert_array_equal(run_raw.body_q(), end)
