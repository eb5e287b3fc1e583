"""Joint-state Kalman filter whose process model is the twin itself.

Each joint has the state ``x = [q, qd]`` ([rad], [rad/s]; [m], [m/s] for prismatic joints) and its own
2x2 covariance; joints are independent, and everything is vectorized over them. The twin (physics with
the commanded action) is a better process model than any kinematic one, so :meth:`JointKalman.predict`
takes the twin's predicted state as the new mean and only propagates the covariance with the
constant-velocity Jacobian ``F = [[1, dt], [0, 1]]`` plus process noise

    Q = process_qd_std**2 * [[dt**3/3, dt**2/2], [dt**2/2, dt]]     white acceleration
      + process_q_std**2  * [[dt,      0      ], [0,       0 ]]     position random walk

Both terms are continuous-time densities, so the filter behaves the same at any step rate:
``process_qd_std`` [rad/s/sqrt(s)] is how fast the twin's velocity error grows (unmodelled forces),
``process_q_std`` [rad/sqrt(s)] how fast its position error grows by itself (e.g. backlash, encoder
slip). :meth:`JointKalman.update` corrects with measured positions (and velocities, when given, with
their own noise) in Joseph form, which keeps ``P`` symmetric positive definite under rounding.

For the twin to benefit from the correction, re-synchronize it from :attr:`JointKalman.q` /
:attr:`JointKalman.qd` before the next prediction; otherwise the next ``predict`` overwrites the
correction with the twin's own (uncorrected) state.
"""

from __future__ import annotations

import numpy as np

from vlatwin.errors import VlatwinError

__all__ = ["JointKalman"]


def _std(name: str, value, n: int, *, allow_zero: bool = False) -> np.ndarray:
    """A per-joint standard deviation: scalar or (n,), finite, positive (or zero when allowed)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise VlatwinError(f"JointKalman: {name} must be a scalar or shape ({n},), got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | ((arr == 0) & (not allow_zero))
    if bad.any():
        need = ">= 0" if allow_zero else "> 0"
        raise VlatwinError(f"JointKalman: {name} must be finite and {need}, got {arr.tolist()}")
    return arr


def _vec(name: str, value, n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (n,):
        raise VlatwinError(f"JointKalman: {name} must have shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise VlatwinError(f"JointKalman: {name} has NaN/Inf at joints {np.flatnonzero(~np.isfinite(arr)).tolist()}")
    return arr


class JointKalman:
    """Per-joint [q, qd] Kalman filter with the twin's prediction as process model.

    Args:
        num_joints: Number of joints ``n``.
        process_q_std: Position random-walk density [rad/sqrt(s)], scalar or (n,); may be 0.
        process_qd_std: White-acceleration density [rad/s/sqrt(s)], scalar or (n,); may be 0.
        meas_q_std: Position measurement noise [rad], scalar or (n,); > 0.
        meas_qd_std: Velocity measurement noise [rad/s], scalar or (n,); > 0. None: velocity measurements
            are not accepted by :meth:`update`.
    """

    def __init__(self, num_joints: int, *, process_q_std, process_qd_std, meas_q_std, meas_qd_std=None):
        if int(num_joints) != num_joints or num_joints < 1:
            raise VlatwinError(f"JointKalman: num_joints must be a positive integer, got {num_joints}")
        n = self.num_joints = int(num_joints)
        self.process_q_std = _std("process_q_std", process_q_std, n, allow_zero=True)
        self.process_qd_std = _std("process_qd_std", process_qd_std, n, allow_zero=True)
        self.meas_q_std = _std("meas_q_std", meas_q_std, n)
        self.meas_qd_std = None if meas_qd_std is None else _std("meas_qd_std", meas_qd_std, n)
        self._x = np.zeros((n, 2))
        self._P = np.zeros((n, 2, 2))
        self._initialized = False
        self._nis = np.zeros(n)
        self._innovation_qd: np.ndarray | None = None

    def reset(self, q, qd, q_std=None, qd_std=None) -> None:
        """Set the estimate to ``q`` [rad], ``qd`` [rad/s] (each (n,)) with independent uncertainty.

        Args:
            q_std: Position std [rad], scalar or (n,); None: ``meas_q_std``.
            qd_std: Velocity std [rad/s], scalar or (n,); None: ``meas_qd_std`` when set, else 1 rad/s
                (an unknown velocity that the first position updates pin down).
        """
        n = self.num_joints
        q, qd = _vec("q", q, n), _vec("qd", qd, n)
        sq = self.meas_q_std if q_std is None else _std("q_std", q_std, n, allow_zero=True)
        if qd_std is None:
            sqd = self.meas_qd_std if self.meas_qd_std is not None else np.ones(n)
        else:
            sqd = _std("qd_std", qd_std, n, allow_zero=True)
        self._x = np.stack([q, qd], axis=1)
        self._P = np.zeros((n, 2, 2))
        self._P[:, 0, 0] = sq**2
        self._P[:, 1, 1] = sqd**2
        self._nis = np.zeros(n)
        self._innovation_qd = None
        self._initialized = True

    def predict(self, q_pred, qd_pred, dt: float) -> None:
        """Take the twin's predicted state ``q_pred`` [rad], ``qd_pred`` [rad/s] ((n,) each) after ``dt`` [s]
        as the new mean and grow the covariance accordingly."""
        if not self._initialized:
            raise VlatwinError("JointKalman: predict() before the first reset() or update(); nothing to propagate")
        dt = float(dt)
        if not np.isfinite(dt) or dt < 0:
            raise VlatwinError(f"JointKalman: dt must be finite and >= 0 [s], got {dt}")
        n = self.num_joints
        q_pred, qd_pred = _vec("q_pred", q_pred, n), _vec("qd_pred", qd_pred, n)
        self._x = np.stack([q_pred, qd_pred], axis=1)
        P = self._P
        # F P F^T written out for F = [[1, dt], [0, 1]] (vectorized over joints).
        p00, p01, p11 = P[:, 0, 0], P[:, 0, 1], P[:, 1, 1]
        a2 = self.process_qd_std**2
        new = np.empty_like(P)
        new[:, 0, 0] = p00 + 2 * dt * p01 + dt * dt * p11 + a2 * dt**3 / 3 + self.process_q_std**2 * dt
        new[:, 0, 1] = new[:, 1, 0] = p01 + dt * p11 + a2 * dt**2 / 2
        new[:, 1, 1] = p11 + a2 * dt
        self._P = new

    def update(self, z_q, z_qd=None) -> np.ndarray:
        """Correct with measured positions ``z_q`` [rad] (n,) and optionally velocities ``z_qd`` [rad/s] (n,).

        Before any :meth:`reset`, the first update initializes the estimate from the measurement instead
        (innovation 0). NaN/Inf measurements raise :class:`~vlatwin.errors.VlatwinError`; the caller
        drops such a frame instead of letting it poison the estimate.

        Returns:
            The position innovation ``z_q - q_prior`` [rad], shape (n,).
        """
        n = self.num_joints
        z_q = _vec("z_q", z_q, n)
        if z_qd is not None:
            if self.meas_qd_std is None:
                raise VlatwinError(
                    "JointKalman: z_qd given but meas_qd_std is None; set meas_qd_std to fuse velocities"
                )
            z_qd = _vec("z_qd", z_qd, n)
        if not self._initialized:
            self.reset(z_q, np.zeros(n) if z_qd is None else z_qd)
            return np.zeros(n)
        x, P = self._x, self._P
        if z_qd is None:
            # Scalar measurement per joint (H = [1, 0]): closed form, no batched inverse needed.
            r = self.meas_q_std**2
            y = z_q - x[:, 0]
            s = P[:, 0, 0] + r
            k = P[:, :, 0] / s[:, None]  # (n, 2)
            self._x = x + k * y[:, None]
            ikh = np.broadcast_to(np.eye(2), P.shape).copy()
            ikh[:, :, 0] -= k
            kr = k[:, :, None] * k[:, None, :] * r[:, None, None]
            self._nis = y * y / s
            self._innovation_qd = None
        else:
            # Full state measured (H = I): K = P S^-1 with S = P + R.
            R = np.zeros_like(P)
            R[:, 0, 0] = self.meas_q_std**2
            R[:, 1, 1] = self.meas_qd_std**2
            y2 = np.stack([z_q - x[:, 0], z_qd - x[:, 1]], axis=1)
            S = P + R
            s_inv = np.linalg.inv(S)
            k = P @ s_inv
            self._x = x + np.einsum("nij,nj->ni", k, y2)
            ikh = np.eye(2) - k
            kr = k @ R @ np.swapaxes(k, 1, 2)
            self._nis = np.einsum("ni,nij,nj->n", y2, s_inv, y2)
            y = y2[:, 0]
            self._innovation_qd = y2[:, 1].copy()
        # Joseph form: (I - KH) P (I - KH)^T + K R K^T stays PSD even with a slightly wrong gain.
        newP = ikh @ P @ np.swapaxes(ikh, 1, 2) + kr
        self._P = 0.5 * (newP + np.swapaxes(newP, 1, 2))
        return y.copy()

    """Properties."""

    @property
    def initialized(self) -> bool:
        """True after :meth:`reset` or the first :meth:`update`."""
        return self._initialized

    @property
    def q(self) -> np.ndarray:
        """Estimated joint positions [rad], (n,)."""
        return self._x[:, 0].copy()

    @property
    def qd(self) -> np.ndarray:
        """Estimated joint velocities [rad/s], (n,)."""
        return self._x[:, 1].copy()

    @property
    def P(self) -> np.ndarray:
        """State covariance per joint, (n, 2, 2), over [q [rad], qd [rad/s]]."""
        return self._P.copy()

    @property
    def std_q(self) -> np.ndarray:
        """Position standard deviation [rad], (n,)."""
        return np.sqrt(self._P[:, 0, 0])

    @property
    def std_qd(self) -> np.ndarray:
        """Velocity standard deviation [rad/s], (n,)."""
        return np.sqrt(self._P[:, 1, 1])

    @property
    def nis(self) -> np.ndarray:
        """Normalized innovation squared of the last update per joint, (n,) (0 before any update).

        For a consistent filter each entry is chi-square with :attr:`nis_dof` degrees of freedom
        (mean 1 or 2; above 6.63 or 9.21 only 1 % of the time).
        """
        return self._nis.copy()

    @property
    def nis_dof(self) -> int:
        """Degrees of freedom of :attr:`nis`: 1 (positions measured) or 2 (positions and velocities)."""
        return 1 if self._innovation_qd is None else 2

    @property
    def innovation_qd(self) -> np.ndarray | None:
        """Velocity innovation [rad/s] (n,) of the last update, None when it measured positions only."""
        return None if self._innovation_qd is None else self._innovation_qd.copy()
