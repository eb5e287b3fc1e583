"""Joint Kalman filter with the twin as process model: accuracy, covariance consistency, bias correction."""

import math

import numpy as np
import pytest
from vlatwin.errors import VlatwinError
from vlatwin.twin.estimator import JointKalman

DT = 0.01  # 100 Hz robot state stream [s]
MEAS_STD = 0.01  # [rad]


def run_constant_velocity(seed, *, steps=1000, velocity_meas=False, twin_bias=0.0, update=True):
    """Truth q = q0 + v t per joint; a constant-velocity twin re-synchronized from the estimate each step
    (plus ``twin_bias`` [rad/s] of modelling error) is the process model. Returns per-step errors, stds,
    NIS values and the filter."""
    rng = np.random.default_rng(seed)
    n = 4
    q0, v = rng.uniform(-1, 1, n), rng.uniform(-0.5, 0.5, n)
    kf = JointKalman(
        n, process_q_std=1e-3, process_qd_std=0.05, meas_q_std=MEAS_STD, meas_qd_std=0.05 if velocity_meas else None
    )
    kf.reset(q0 + rng.normal(0, MEAS_STD, n), np.zeros(n), qd_std=1.0)
    err_q, err_qd, std_q, std_qd, nis = [], [], [], [], []
    for k in range(1, steps + 1):
        t = k * DT
        kf.predict(kf.q + (kf.qd + twin_bias) * DT, kf.qd, DT)
        truth_q, truth_qd = q0 + v * t, v
        if update:
            z_qd = truth_qd + rng.normal(0, 0.05, n) if velocity_meas else None
            kf.update(truth_q + rng.normal(0, MEAS_STD, n), z_qd)
            nis.append(kf.nis)
        err_q.append(kf.q - truth_q)
        err_qd.append(kf.qd - truth_qd)
        std_q.append(kf.std_q)
        std_qd.append(kf.std_qd)
    return np.array(err_q), np.array(err_qd), np.array(std_q), np.array(std_qd), np.array(nis), kf


@pytest.mark.parametrize("seed", range(3))
def test_constant_velocity_accuracy_and_consistency(seed):
    """Estimate error is below the measurement noise and inside +-3 sigma of its own covariance ~99 % of the time."""
    err_q, err_qd, std_q, std_qd, nis, kf = run_constant_velocity(seed)
    settled = slice(100, None)  # after 1 s the initial velocity uncertainty (1 rad/s) is gone
    rms_q = float(np.sqrt(np.mean(err_q[settled] ** 2)))
    assert rms_q < 0.5 * MEAS_STD
    assert float(np.sqrt(np.mean(err_qd[settled] ** 2))) < 0.05
    inside_q = np.mean(np.abs(err_q[settled]) <= 3 * std_q[settled])
    inside_qd = np.mean(np.abs(err_qd[settled]) <= 3 * std_qd[settled])
    assert inside_q >= 0.98 and inside_qd >= 0.98
    # Truth stays within the model (no unmodelled forces), so the filter is, if anything, conservative:
    # NIS (chi-square with 1 dof) averages at most about 1.
    assert kf.nis_dof == 1
    assert 0.5 < float(np.mean(nis[settled])) < 1.2


def test_velocity_measurements_are_fused():
    """With velocity measurements (their own noise) the velocity error drops and NIS has 2 dof."""
    _, err_qd_pos, *_ = run_constant_velocity(7, steps=300)
    _, err_qd, _, std_qd, nis, kf = run_constant_velocity(7, steps=300, velocity_meas=True)
    early = slice(5, 100)
    assert np.sqrt(np.mean(err_qd[early] ** 2)) < 0.5 * np.sqrt(np.mean(err_qd_pos[early] ** 2))
    assert kf.nis_dof == 2 and kf.innovation_qd.shape == (4,)
    assert np.mean(np.abs(err_qd[50:]) <= 3 * std_qd[50:]) >= 0.98
    assert 1.0 < float(np.mean(nis[50:])) < 2.4


def test_biased_twin_is_corrected_by_measurements():
    """A twin with a 0.05 rad/s velocity bias (and no idea of the initial velocity) drifts > 0.4 rad open loop
    in 10 s; with measurements the estimate stays within the measurement noise of the truth."""
    err_open, *_ = run_constant_velocity(1, twin_bias=0.05, update=False)
    err_q, *_ = run_constant_velocity(1, twin_bias=0.05)
    assert np.abs(err_open[-1]).max() > 0.4
    final = np.sqrt(np.mean(err_q[-200:] ** 2))
    assert final < MEAS_STD
    assert final < 0.02 * np.abs(err_open[-1]).max()


def test_innovation_is_measurement_minus_prediction():
    """update() returns z - q_prior, and one update pulls the estimate toward z by the Kalman gain."""
    kf = JointKalman(2, process_q_std=0.0, process_qd_std=0.0, meas_q_std=0.1)
    kf.reset([0.0, 1.0], [0.0, 0.0], q_std=0.1, qd_std=0.0)
    innovation = kf.update([0.2, 0.8])
    np.testing.assert_allclose(innovation, [0.2, -0.2])
    # Equal prior and measurement variance: gain 1/2, posterior variance halves.
    np.testing.assert_allclose(kf.q, [0.1, 0.9])
    np.testing.assert_allclose(kf.std_q, [0.1 / math.sqrt(2)] * 2)
    np.testing.assert_allclose(kf.nis, [0.2**2 / 0.02] * 2)


def test_predict_covariance_matches_white_acceleration_model():
    """One predict from zero covariance gives exactly Q = sa^2 [[dt^3/3, dt^2/2], [dt^2/2, dt]] + sq^2 [[dt, 0], [0, 0]]."""
    sa, sq, dt = 0.3, 0.02, 0.05
    kf = JointKalman(1, process_q_std=sq, process_qd_std=sa, meas_q_std=0.01)
    kf.reset([0.0], [0.0], q_std=0.0, qd_std=0.0)
    kf.predict([0.5], [1.0], dt)
    want = sa**2 * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]) + sq**2 * np.array([[dt, 0], [0, 0]])
    np.testing.assert_allclose(kf.P[0], want)
    np.testing.assert_allclose([kf.q[0], kf.qd[0]], [0.5, 1.0])  # the mean is the twin's prediction


def test_covariance_stays_symmetric_positive_definite():
    """Over many predict/update cycles with mixed dt (0 included) and tiny noise, P stays symmetric PD."""
    rng = np.random.default_rng(0)
    kf = JointKalman(
        3,
        process_q_std=[0.0, 1e-6, 1e-2],
        process_qd_std=[1e-6, 0.0, 1.0],
        meas_q_std=[1e-6, 1e-3, 1.0],
        meas_qd_std=1e-3,
    )
    kf.reset(np.zeros(3), np.zeros(3), q_std=[1e3, 1e-9, 1.0], qd_std=[1e3, 1.0, 0.0])
    for k in range(2000):
        dt = [0.0, 1e-3, 0.1, 2.0][k % 4]
        kf.predict(kf.q + kf.qd * dt, kf.qd, dt)
        kf.update(rng.normal(size=3), rng.normal(size=3) if k % 3 == 0 else None)
        P = kf.P
        np.testing.assert_array_equal(P, np.swapaxes(P, 1, 2))
        # Definite once every joint has had process noise (joint 2 starts with zero velocity variance).
        assert (np.linalg.eigvalsh(P) > 0).all() if k >= 4 else (np.linalg.eigvalsh(P) >= 0).all()


def test_first_update_initializes():
    """Without reset(), the first update takes the measurement as the estimate (innovation 0)."""
    kf = JointKalman(2, process_q_std=0.0, process_qd_std=0.1, meas_q_std=0.01)
    assert not kf.initialized
    np.testing.assert_array_equal(kf.update([0.3, -0.4]), [0.0, 0.0])
    assert kf.initialized
    np.testing.assert_array_equal(kf.q, [0.3, -0.4])
    np.testing.assert_array_equal(kf.qd, [0.0, 0.0])
    np.testing.assert_allclose(kf.std_q, [0.01, 0.01])


def test_bad_inputs_raise_clearly():
    """NaN measurements, wrong shapes, negative dt, predict before init and bad stds raise VlatwinError."""
    kf = JointKalman(2, process_q_std=0.0, process_qd_std=0.1, meas_q_std=0.01)
    with pytest.raises(VlatwinError, match="before the first reset"):
        kf.predict([0, 0], [0, 0], 0.01)
    kf.reset([0, 0], [0, 0])
    q_before = kf.q
    with pytest.raises(VlatwinError, match=r"z_q has NaN/Inf at joints \[1\]"):
        kf.update([0.0, math.nan])
    np.testing.assert_array_equal(kf.q, q_before)  # a rejected measurement leaves the estimate alone
    with pytest.raises(VlatwinError, match="shape"):
        kf.update([0.0, 0.0, 0.0])
    with pytest.raises(VlatwinError, match="meas_qd_std is None"):
        kf.update([0.0, 0.0], [0.0, 0.0])
    with pytest.raises(VlatwinError, match="dt"):
        kf.predict([0, 0], [0, 0], -0.01)
    with pytest.raises(VlatwinError, match="q_pred"):
        kf.predict([0, math.inf], [0, 0], 0.01)
    for kwargs in (
        {"meas_q_std": -0.01},
        {"meas_q_std": 0.0},
        {"meas_q_std": math.nan},
        {"process_qd_std": -1.0},
        {"meas_q_std": [0.1, 0.1, 0.1]},
    ):
        args = {"process_q_std": 0.0, "process_qd_std": 0.1, "meas_q_std": 0.01} | kwargs
        with pytest.raises(VlatwinError, match="JointKalman"):
            JointKalman(2, **args)
    with pytest.raises(VlatwinError, match="num_joints"):
        JointKalman(0, process_q_std=0.0, process_qd_std=0.1, meas_q_std=0.01)
