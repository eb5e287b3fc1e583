"""Drive gains from the robot's reported drive efforts (sysid.fit.DriveLawRows): unbiased under encoder noise,
saturated samples left out, and the recording loader keeps what the efforts are."""

import numpy as np
import pytest

pytest.importorskip("scipy")
from scipy.optimize import least_squares

from vlatwin.sim.types import SimParams
from vlatwin.sysid.data import Recording
from vlatwin.sysid.fit import DriveLawRows, encoder_noise

KP = np.array([5.0e4, 800.0])
KD = np.array([30.0, 9.0])
LIMIT = np.array([87.0, 12.0])
NOISE = 1e-4


def servo_recording(seed=0, n=6000, limit=LIMIT, effort_noise=0.0):
    """Two joints tracking a staircase of sines: the effort is the PD law at the true (noise-free) state, clipped
    at the limit; the encoder adds NOISE. The tracking error is only a few times the noise for the stiff joint."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 600.0
    q_desired = np.stack([0.3 * np.sin(4.0 * t), 0.3 * np.sin(1.3 * t + 1.0)], axis=1)
    q_desired = q_desired[(np.arange(n) // 30) * 30]  # 20 Hz targets
    # A true state a little behind its target (what a stiff servo does), with a smooth velocity.
    lag = np.stack([6e-4 * np.sin(7.0 * t), 0.01 * np.sin(5.0 * t)], axis=1) + 3e-4 * rng.standard_normal((n, 2)).cumsum(0) / np.sqrt(n)
    q_true = q_desired - lag
    qd = np.gradient(q_true, t, axis=0)
    effort = np.clip(KP * (q_desired - q_true) - KD * qd, -limit, limit)
    q = q_true + rng.normal(0.0, NOISE, q_true.shape)
    # A current sensor reads the clipped drive output with its own noise (the noise-free output is returned).
    reading = effort + rng.normal(0.0, effort_noise, effort.shape) if effort_noise > 0 else effort
    rec = Recording(
        source="synthetic", joint_names=("j1", "j2"), t=t, q=q, qd=qd, target_t=t.copy(), target_q=q_desired,
        effort=reading, effort_kind="drive", q_desired=q_desired,
    )
    return rec, effort


def fit_gains(rows: DriveLawRows):
    def fun(x):
        return rows.residuals(SimParams(drive_stiffness=KP * x[:2], drive_damping=KD * x[2:])).ravel()

    start = np.array([0.7, 1.3, 1.4, 0.6])
    return least_squares(fun, start, bounds=(0.2, 5.0)).x


def test_gains_come_back_unbiased_under_encoder_noise():
    rec, effort = servo_recording()
    rows = DriveLawRows(rec, np.ones(len(rec.t), bool), np.array([0, 1]), np.array([0, 1]))
    assert np.allclose(rows.noise, NOISE, rtol=0.1), rows.noise
    x = fit_gains(rows)
    # Stiffness to 1 %, damping (its term is near the noise for the stiff joint) to 3 %.
    assert np.all(np.abs(x[:2] - 1.0) < 0.01) and np.all(np.abs(x[2:] - 1.0) < 0.03), x
    # The naive regression (effort on the measured tracking error) is pulled towards small gains by the noise.
    e = rec.q_desired[:, 0] - rec.q[:, 0]
    ok = rows.valid[:, 0]
    a = np.stack([e[ok], -rec.qd[ok, 0]], axis=1)
    kp_naive = np.linalg.lstsq(a, effort[ok, 0], rcond=None)[0][0]
    assert kp_naive < 0.97 * KP[0]


def test_saturated_samples_are_left_out():
    rec, effort = servo_recording(limit=np.array([20.0, 12.0]))
    rows = DriveLawRows(rec, np.ones(len(rec.t), bool), np.array([0, 1]), np.array([0, 1]))
    saturated = np.abs(effort[:, 0]) >= 20.0 - 1e-9
    assert saturated.mean() > 0.2
    assert not rows.valid[saturated, 0].any()
    assert rows.valid[np.abs(effort[:, 0]) < 0.97 * 20.0, 0].all()  # SATURATION_MARGIN
    x = fit_gains(rows)
    assert np.all(np.abs(x[:2] - 1.0) < 0.01) and np.all(np.abs(x[2:] - 1.0) < 0.03), x
    # Kept in: the clipped samples contradict the law and pull the stiff joint's gain away.
    rows.valid[:] = True
    assert abs(fit_gains(rows)[0] - 1.0) > 0.05


def test_saturation_is_found_under_effort_noise():
    """A clipped effort read with 0.1 N*m of noise scatters around the limit instead of sitting on it: the
    plateau is still found, every clipped sample left out, and the gains come back as without noise. The rule
    the fit used before (the peak itself as the plateau, within 0.1 %) kept most clipped samples, and the Panda
    fit on such a recording put six drive stiffnesses 65-83 % low."""
    from vlatwin.sysid.fit import saturated

    rec, effort = servo_recording(limit=np.array([20.0, 12.0]), effort_noise=0.1)
    rows = DriveLawRows(rec, np.ones(len(rec.t), bool), np.array([0, 1]), np.array([0, 1]))
    clipped = np.abs(effort[:, 0]) >= 20.0 - 1e-9
    assert clipped.mean() > 0.2
    assert not rows.valid[clipped, 0].any()
    assert rows.valid[np.abs(effort[:, 0]) < 0.9 * 20.0, 0].all()
    x = fit_gains(rows)
    assert np.all(np.abs(x[:2] - 1.0) < 0.01) and np.all(np.abs(x[2:] - 1.0) < 0.03), x
    reading = np.abs(rec.effort[:, 0])
    assert (clipped & (reading < (1.0 - 1e-3) * reading.max())).sum() > 0.5 * clipped.sum()
    # A joint that never saturates keeps most of its samples (the top of a smooth peak is left out).
    smooth = 5.0 * np.sin(np.linspace(0.0, 20.0, 4000))[:, None]
    assert saturated(smooth).mean() < 0.4


def test_only_the_fitted_part_counts():
    rec, _ = servo_recording()
    mask = rec.t < rec.t[-1] * 0.5
    rows = DriveLawRows(rec, mask, np.array([1]), np.array([1]))
    assert rows.error.shape == (int(mask.sum()), 1)


def test_encoder_noise_ignores_smooth_motion():
    t = np.arange(3000) / 1000.0
    q = np.stack([np.sin(3 * t), 0.5 * t**2], axis=1)
    assert np.all(encoder_noise(q) < 1e-5)  # acceleration * dt^2: 9e-6 at most here
    noisy = q + np.random.default_rng(1).normal(0, 2e-4, q.shape)
    assert np.allclose(encoder_noise(noisy), 2e-4, rtol=0.1)


def test_initial_gains_from_the_linear_regression():
    rec, _ = servo_recording(limit=np.array([20.0, 12.0]))
    rows = DriveLawRows(rec, np.ones(len(rec.t), bool), np.array([0, 1]), np.array([0, 1]))
    kp, kd = rows.initial_gains()
    assert np.allclose(kp, KP, rtol=0.01) and np.allclose(kd, KD, rtol=0.03), (kp, kd)
    rows.valid[:, 1] = False  # no usable sample: no start value
    kp, kd = rows.initial_gains()
    assert np.isfinite(kp[0]) and np.isnan(kp[1]) and np.isnan(kd[1])


def test_samples_without_a_reported_target_are_left_out():
    rec, _ = servo_recording()
    before = DriveLawRows(rec, np.ones(len(rec.t), bool), np.array([0, 1]), np.array([0, 1])).valid.copy()
    rec.q_desired[100:400, 1] = np.nan  # the robot reported no target for joint 2 there
    rows = DriveLawRows(rec, np.ones(len(rec.t), bool), np.array([0, 1]), np.array([0, 1]))
    assert not rows.valid[100:400, 1].any() and (rows.valid[:, 0] == before[:, 0]).all()
    residuals = rows.residuals(SimParams(drive_stiffness=KP, drive_damping=KD))
    assert np.isfinite(residuals).all()
    assert np.all(np.abs(fit_gains(rows)[:2] - 1.0) < 0.01)


def test_pinned_gains_uncertainty_is_carried_into_the_parameters_fitted_under_them():
    """Two-stage linear model: p from its own data (covariance C_p), then r by least squares with p held. Over many
    draws the spread of r-hat is the conditional covariance plus S C_p S^T, which is what the fit reports; the
    conditional block alone (what it reported before) is several times too narrow here."""
    from vlatwin.sysid.fit import _carry_pinned_uncertainty

    rng = np.random.default_rng(3)
    n, sigma_y = 200, 0.5
    A = rng.normal(size=(n, 2))  # response of the rows to the fitted parameters r
    B = 3.0 * A[:, :1] + rng.normal(size=(n, 1))  # ... and to the pinned one p: strongly aligned with r_1
    r_true, p_true, sigma_p = np.array([1.0, -2.0]), np.array([0.5]), 0.05
    draws = []
    for _ in range(4000):
        p_hat = p_true + sigma_p * rng.normal(size=1)
        y = A @ r_true + B @ p_true + sigma_y * rng.normal(size=n)
        draws.append(np.linalg.lstsq(A, y - B @ p_hat, rcond=None)[0])
    empirical = np.cov(np.array(draws).T)

    cov = np.zeros((3, 3))
    cov[np.ix_([1, 2], [1, 2])] = sigma_y**2 * np.linalg.inv(A.T @ A)  # conditional block (index 0: pinned)
    cov[0, 0] = sigma_p**2
    # Residuals r = A x_r + B x_p - y: the Jacobians are A and B.
    full = _carry_pinned_uncertainty(cov, A, B, pinned=[0], rest=[1, 2])
    # Tolerance: the sampling error of a covariance from 4000 draws (off-diagonal about 1e-4 here).
    np.testing.assert_allclose(full[1:, 1:], empirical, rtol=0.1, atol=3e-4)
    assert empirical[0, 0] > 3 * cov[1, 1]  # the conditional block alone misses most of it
    # The cross terms: r-hat moves against p-hat along S = -A^+ B.
    S = -np.linalg.lstsq(A, B, rcond=None)[0]
    np.testing.assert_allclose(full[1:, 0], (S * sigma_p**2).ravel())
    np.testing.assert_allclose(full, full.T)


@pytest.mark.parametrize("command", ["fit", "report"])
@pytest.mark.parametrize("share", ["1.5", "-0.1", "nan"])
def test_bad_holdout_is_refused_before_anything_is_loaded(tmp_path, capsys, command, share):
    """A held-out share outside [0, 0.9] is named in one line before the recording is read (here it does not
    exist, which would be the error otherwise) and before the fit announces itself."""
    from vlatwin.cli.main import main

    missing = str(tmp_path / "missing.mcap")
    argv = ["sysid", "fit", missing, "-o", str(tmp_path / "p.yaml")] if command == "fit" else ["report", missing, "-o", str(tmp_path / "r.html")]
    assert main([*argv, "--holdout", share]) != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: --holdout: must be in [0, 0.9], got {float(share)}"], err
    assert not (tmp_path / "p.yaml").exists() and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("count", ["0", "-3"])
def test_a_fit_without_evaluations_is_refused_in_one_line(tmp_path, capsys, count):
    """Was scipy's traceback (max_nfev must be positive) after the twin had loaded."""
    from vlatwin.cli.main import main

    argv = ["sysid", "fit", str(tmp_path / "missing.mcap"), "-o", str(tmp_path / "p.yaml"), "--max-evaluations", count]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: --max-evaluations: must be at least 1, got {count}"], err


@pytest.mark.parametrize("joints", ["", " , "])
def test_an_empty_joint_list_is_refused_in_one_line(tmp_path, capsys, joints):
    """Was numpy's IndexError traceback after the twin had loaded."""
    from vlatwin.cli.main import main

    argv = ["sysid", "fit", str(tmp_path / "missing.mcap"), "-o", str(tmp_path / "p.yaml"), "--joints", joints]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: --joints: name at least one joint (comma separated), or leave it out to fit the joints that moved"], err


def test_hypersensitive_joints_are_the_ones_far_above_the_median_and_the_noise():
    from vlatwin.sysid.fit import _hypersensitive

    # Measured on the emulated Panda (urad for a 1e-4 change of every stiffness; 13 urad of averaged encoder noise):
    # joints 1 and 3 respond 12x and 24x the median joint.
    chaos = np.array([5.71, 0.5, 10.76, 1.07, 0.31, 0.38, 0.09, 0.45, 0.35]) * 1e-6
    noise = np.full(9, 13e-6)
    assert np.flatnonzero(_hypersensitive(chaos, noise)).tolist() == [0, 2]
    # The same pattern far under the noise (a precise twin, or a coarse encoder): nothing is left out.
    assert not _hypersensitive(chaos, noise * 100).any()
    # A joint just under 5x the median stays in; too few joints to call a median: nothing is left out.
    assert not _hypersensitive(np.array([4.9, 1.0, 1.0, 1.0]) * 1e-5, np.full(4, 1e-5)).any()
    assert not _hypersensitive(np.array([9.0, 1.0]) * 1e-5, np.full(2, 1e-6)).any()


class _AnalyticProblem:
    """A stand-in for the rollouts: r(x) = A x + 0.5 * (quadratic, even in x - x0) + a rough part of XPBD's kind
    (a tiny change anywhere changes the residuals by a fixed random amount). Sizes as measured on the Panda's masses:
    a 0.5 % probe changes the residuals ~15x more than the roughness does."""

    def __init__(self, rough: float, curvature: float = 2000.0, seed: int = 0):
        from types import SimpleNamespace

        from vlatwin.sysid.fit import _Problem

        rng = np.random.default_rng(seed)
        self.n, self.p = 400, 4
        self.A = rng.normal(size=(self.n, self.p)) * 100.0
        self.H = rng.normal(size=(self.n, self.p, self.p)) * curvature
        self.rough = rough
        self.x0 = np.ones(self.p)
        problem = _Problem.__new__(_Problem)
        problem.pset = SimpleNamespace(bounds=(np.full(self.p, 0.5), np.full(self.p, 2.0)))
        problem.settings = SimpleNamespace(seed=0, fd_step=0.2)
        problem.fd_scale, problem.probing, problem._probe_calls = 1.0, False, 0
        problem.residuals_many = lambda xs: [self(x) for x in xs]
        self.problem = problem

    def __call__(self, x):
        d = np.asarray(x, float) - self.x0
        noise = np.random.default_rng(abs(hash(np.round(d, 12).tobytes())) % 2**32).normal(size=self.n)
        return self.A @ d + 0.5 * np.einsum("nij,i,j->n", self.H, d, d) + self.rough * noise


def test_probe_cloud_jacobian_sees_through_roughness_and_curvature():
    """The fit's last Jacobians come from clouds of probe pairs (sysid.fit._Problem.jac_regression). On a residual
    with strong curvature and a rough part, coordinate finite differences are off at every step size (roughness / h
    at small steps, curvature at large ones), while the pairs' regression recovers the linear part."""
    model = _AnalyticProblem(rough=0.05)
    problem = model.problem
    x = model.x0.copy()

    def error(jac):
        return np.linalg.norm(jac - model.A) / np.linalg.norm(model.A)

    coordinate = []
    for scale in (1.0, 0.05, 0.005, 0.0005):  # steps 20 %, 1 %, 0.1 %, 0.01 %
        problem.fd_scale = scale
        coordinate.append(error(problem.jac(x)))
    problem.probing = True
    cloud = problem.jac(x)
    assert error(cloud) < 0.05, error(cloud)
    assert min(coordinate) > 2 * error(cloud), (coordinate, error(cloud))
    # Deterministic: the probes come from the fit's seed and the call count, so a rerun gives the same Jacobian.
    again = _AnalyticProblem(rough=0.05).problem
    again.probing = True
    np.testing.assert_array_equal(again.jac(x), cloud)


def test_probe_pairs_stay_inside_the_bounds():
    model = _AnalyticProblem(rough=0.0, curvature=0.0)
    problem = model.problem
    problem.probing = True
    seen = []
    problem.residuals_many = lambda xs: seen.extend(xs) or [model(x) for x in xs]
    x = np.array([0.5, 2.0, 1.0, 0.501])  # on, on, inside, next to a bound
    jac = problem.jac(x)
    lo, hi = problem.pset.bounds
    assert all((lo - 1e-12 <= s).all() and (s <= hi + 1e-12).all() for s in seen)
    # At a bound the pairs are centred just inside it: every column is still measured.
    np.testing.assert_allclose(jac, model.A, rtol=1e-6, atol=1e-6)
