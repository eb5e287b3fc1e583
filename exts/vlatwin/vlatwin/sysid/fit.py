"""Fit the twin's parameters to a recording: theta = argmin sum ||q_measured - q_twin(theta)||^2.

The twin replays the targets the robot applied, from the measured start state, and the residuals are the
joint position errors at the measurement times (``sample_period_s`` apart) of the fitted part of the
recording. ``scipy.optimize.least_squares`` (trust-region reflective, box bounds, optional robust loss)
minimizes them with finite-difference Jacobians whose columns are rollouts spread over worker processes, then
goes on with Jacobians regressed over clouds of probe pairs (:meth:`_Problem.jac_regression`: the rollouts are
rough at small steps and not additive at large ones), which also give the covariance.
Why not the Warp tape: Gauss-Newton needs the Jacobian of N residuals (thousands of samples x joints) by
P parameters; reverse mode gives one row per backward pass, finite differences one column per rollout, and
P << N (:mod:`vlatwin.sysid.gradients` has the tape gradients of the scalar cost, checked against finite
differences, and ``benchmarks/sysid.py`` times both).

Drive efforts: positions alone fix drive gains and link masses only up to one common factor. When the robot
reports its drives' output, the gains of every joint with enough unsaturated samples come from the drive law
on the measured samples (:class:`DriveLawRows`, no rollouts), and the rollouts fit the other parameters under
those gains. The gains' uncertainty is carried into what the rollouts fit under them, to first order
(:func:`_carry_pinned_uncertainty`; one more rollout per gain).

Hypersensitive joints: a joint the twin moves far more than the others for the same small parameter change
(XPBD's unloaded Panda joints 1 and 3, see :func:`_hypersensitive`) keeps its drive-law gains and its held-out
error, but its position rows leave the rollout fit unless one of its own rollout-fitted parameters needs them.

Uncertainty: at the optimum, ``cov = s^2 (J^T J)^-1`` with ``s^2`` the residual variance, inflated by
``(1 + rho) / (1 - rho)`` for the residuals' lag-1 autocorrelation ``rho`` (correlated residuals carry less
information than their count says). Parameters the data cannot pin down — a near-null direction of ``J``
(two parameters that act the same, e.g. passive damping and drive damping under position-only commands) or
a 95 % interval wider than the parameter's own scale — are reported as not identifiable and held at their
nominal value, and the rest is fitted again without them: nothing is silently fitted to noise.
Prediction bands come from an ensemble of twins drawn from the parameter posterior plus the residual noise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.sim.types import SimParams
from vlatwin.sysid.data import Recording
from vlatwin.sysid.params import HOLD_FIRST, ParameterSet, build_parameter_set
from vlatwin.sysid.rollout import RolloutPool, make_windows

__all__ = ["FitSettings", "ParamEstimate", "FitResult", "fit", "predict"]


@dataclass
class FitSettings:
    groups: list[str]
    """Parameter groups (:func:`vlatwin.sysid.params.parse_groups`)."""
    joints: list[str] | None = None
    """Joints whose parameters are fitted and whose errors count (names); None: the joints that moved."""
    holdout: float = 0.25
    """Share of the recording at its end kept out of the fit (held-out test) [0, 0.9]."""
    sample_period_s: float = 0.01
    """Residual sample spacing [s] (the robot's stream is denser; neighbouring samples add little)."""
    loss: str = "linear"
    """``linear`` (Gaussian noise) or a robust loss of least_squares (``soft_l1``, ``huber``, ``cauchy``)."""
    max_evaluations: int = 40
    """Cost evaluations per fit round (each Jacobian costs one rollout per parameter on top)."""
    workers: int = 2
    """Processes that run rollouts (each loads its own twin)."""
    identifiable_rel_std: float = 0.25
    """A parameter whose standard deviation exceeds this share of its scale is not identifiable."""
    ensemble: int = 24
    """Twins drawn from the posterior for the prediction bands."""
    seed: int = 0
    fd_step: float = 0.2
    """Finite-difference step in the dimensionless parameter space (20 % of a gain or mass, 0.2 typical sizes of
    a value parameter). Chosen when XPBD's joints were rough at small steps (a Newton 1.8 swing-decomposition
    artefact the backend now avoids, see ``newton_assets.align_revolute_axes_with_twist``); the rollouts are
    linear from 1e-4 to 1e-2 since. Measured on the gains + masses recording: 1 % steps reach a lower
    cost (position RMS 35.5 against 40.2 urad) but masses 30 % off (they absorb the held gains' errors more
    fully); 20 % steps leave them 1-8 % off."""
    restarts: int = 3
    """Fresh least-squares starts from the last optimum (each up to ``max_evaluations``)."""
    window_s: float = math.inf
    """Multiple-shooting window [s]: each window restarts the twin from the measured state (inf: one rollout per
    recording segment). Keep inf on XPBD: a restart mid-motion cannot restore the bodies' hidden joint stretch,
    and the twin then rings (measured on the Panda: 5-8 mrad off 10 ms after the restart, with the true
    parameters, against 0.1 mrad for one rollout from rest)."""
    use_efforts: bool = True
    """Also fit the drive gains to the robot's reported drive efforts (when the recording has them, see
    :class:`DriveLawRows`): positions alone fix gains and masses only up to one common factor."""
    smooth_s: float = 0.1
    """Residuals compare joint positions averaged over this window [s] (0: raw samples), which removes most of
    the encoder noise (chosen when XPBD also rang at about 0.1 mrad; see :attr:`fd_step`)."""
    leave_out_hypersensitive: bool = True
    """Leave hypersensitive joints' position rows out of the rollout fit (see :func:`_hypersensitive`); False
    keeps every fitted joint's rows (``--all-position-rows``)."""


@dataclass
class ParamEstimate:
    name: str
    group: str
    unit: str
    nominal: float
    value: float
    std: float | None
    identifiable: bool
    note: str = ""

    @property
    def ci95(self) -> tuple[float, float] | None:
        return None if self.std is None else (self.value - 1.96 * self.std, self.value + 1.96 * self.std)


MODEL_ERROR_CHI2 = 10.0
"""Reduced chi^2 above which a fit is reported as dominated by model error (residuals > ~3x the noise floor)."""


@dataclass
class FitResult:
    estimates: list[ParamEstimate]
    params: SimParams
    """Identified parameters (nominal where not fitted or not identifiable)."""
    nominal: SimParams
    sensor_delay_s: float
    covariance: np.ndarray
    """(P, P) covariance of the identifiable parameters, physical units, in :attr:`identified_names` order."""
    identified_names: list[str]
    converged: bool
    message: str
    cost_initial: float
    cost_final: float
    evaluations: int
    rollouts: int
    wall_s: float
    residual_std: np.ndarray
    """(J_fit,) per-joint residual standard deviation at the optimum [rad | m]."""
    fit_joints: list[str]
    autocorrelation: float
    extra: dict = field(default_factory=dict)
    reduced_chi2: float = float("nan")
    """Sum of squared residuals in units of the noise floor per degree of freedom at the optimum: about 1 when
    the twin reproduces the recording down to its noise; far above it, model error dominates (a parameter
    outside the fitted groups, or a local minimum) and the intervals, which assume a right model, are too
    narrow."""

    @property
    def model_error_dominates(self) -> bool:
        return bool(self.reduced_chi2 > MODEL_ERROR_CHI2)

    @property
    def correlation(self) -> np.ndarray:
        std = np.sqrt(np.clip(np.diag(self.covariance), 1e-300, None))
        return self.covariance / np.outer(std, std)


def check_holdout(holdout: float) -> float:
    """``holdout`` if it is a share the fit can keep out ([0, 0.9]); a one-line error naming ``--holdout`` otherwise."""
    if not 0.0 <= holdout <= 0.9:  # NaN fails too
        raise VlatwinError(f"--holdout: must be in [0, 0.9], got {holdout}")
    return holdout


def _fit_mask(rec: Recording, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    check_holdout(holdout)
    t_split = rec.t[0] + (1.0 - holdout) * rec.duration
    fit = rec.t <= t_split
    return fit, ~fit


def _joint_selection(rec: Recording, joints: list[str] | None, sim_joint_names) -> np.ndarray:
    """(J_sim,) bool: simulator joints whose parameters are fitted."""
    from vlatwin.control.base import match_joint_names

    order = np.asarray(match_joint_names(list(rec.joint_names), list(sim_joint_names)))
    sel = np.zeros(len(sim_joint_names), dtype=bool)
    if joints is None:
        # 2 mm / 2 mrad: a gripper's fingers that only jiggle while the arm moves still count; their drives
        # shape the arm's motion (leaving their gains at nominal biases the arm's parameters).
        moving = rec.moving_joints(min_range=0.002)
        if not moving.any():
            raise VlatwinError(f"{rec.source}: no joint moved more than 2 mrad; nothing to identify (run `vlatwin sysid excite`)")
        sel[order[moving]] = True
    else:
        short = {p.rsplit("/", 1)[-1]: i for i, p in enumerate(sim_joint_names)}
        for name in joints:
            key = name.rsplit("/", 1)[-1]
            if key not in short:
                raise VlatwinError(f"--joints: unknown joint {name!r}; the twin has {', '.join(short)}")
            sel[short[key]] = True
    return sel


def encoder_noise(q: np.ndarray) -> np.ndarray:
    """(J,) white measurement noise [rad | m] of a densely sampled joint stream ((N, J)), from second differences
    (where a smooth motion contributes acceleration * dt^2, i.e. nothing)."""
    d2 = q[2:] - 2 * q[1:-1] + q[:-2]
    return np.median(np.abs(d2 - np.median(d2, axis=0)), axis=0) / 0.6745 / np.sqrt(6.0)


SATURATION_MARGIN = 0.03
"""Share of a drive's effort limit below it that still counts as saturated: a clipped effort plus sensor noise
reads a little under the limit (0.1 N*m of noise is 0.8 % of a 12 N*m limit)."""


def saturated(effort: np.ndarray) -> np.ndarray:
    """(S, J) bool: samples where a drive sat at its effort limit (the drive law does not hold there).

    A limit shows as a plateau: several samples near the peak |effort|. Its level is the median of the samples
    within 10 % of the peak (sensor noise lifts the peak itself above the limit); samples within
    :data:`SATURATION_MARGIN` of the level, widened by 5 standard deviations of the plateau's scatter (a clipped
    reading plus noise: one 3-sigma reading among thousands of clipped samples is normal, and the law is off by
    tens of N*m there), are saturated. A joint without a plateau never saturated; on one whose peak is smooth
    the top few % of its range are left out, which loses samples but biases nothing.
    """
    magnitude = np.abs(effort)
    out = np.zeros(effort.shape, dtype=bool)
    for j in range(magnitude.shape[1] if magnitude.ndim == 2 else 0):
        m = magnitude[:, j]
        peak = float(m.max()) if m.size else 0.0
        if peak <= 0:
            continue
        level = float(np.median(m[m >= 0.9 * peak]))
        top = m[m >= (1.0 - SATURATION_MARGIN) * level]
        if top.size < 3:
            continue
        spread = 1.4826 * float(np.median(np.abs(top - np.median(top))))
        out[:, j] = m >= (1.0 - SATURATION_MARGIN) * level - 5.0 * spread
    return out


class DriveLawRows:
    """Residuals of the servo's drive law on the measured samples: the tracking error the reported effort implies.

    Why: under position control ``M(q) qdd + c + g = kp (q_d - q) - kd qd``, so scaling every drive gain and
    every link mass by one factor leaves every joint trajectory unchanged: positions identify gains and masses
    only relative to each other. A robot that reports its drive's output (``joint_effort`` with
    ``status.effort == "drive"``: motor current, the emulated robot) fixes that factor. Per sample and fitted
    joint the residual is ``(q_d - q) - (effort + kd qd) / kp`` in units of the encoder noise: the measured
    tracking error against the one the effort implies. Written this way the noisy quantity (the encoder reading)
    sits on one side only, so the fit is not biased towards small gains (regressing effort on a noisy tracking
    error would be: the error is often not much larger than the noise with stiff drives). Samples where the
    effort sits at its limit (the drive saturated, the law does not hold) are left out.
    """

    def __init__(self, rec: Recording, fit_mask: np.ndarray, cols: np.ndarray, sim_index: np.ndarray):
        self.cols, self.sim_index = cols, sim_index
        self.column = {int(j): k for k, j in enumerate(sim_index)}
        """Backend joint index -> column of these rows."""
        error = rec.q_desired[fit_mask][:, cols] - rec.q[fit_mask][:, cols]
        effort = rec.effort[fit_mask][:, cols]
        # A joint the robot reported no target for (NaN in joint_q_desired) has no drive law to check there.
        finite = np.isfinite(error) & np.isfinite(effort)
        self.error, self.effort = np.where(finite, error, 0.0), np.where(finite, effort, 0.0)
        self.qd = rec.qd[fit_mask][:, cols]
        self.valid = finite & ~saturated(self.effort)
        self.noise = np.maximum(encoder_noise(rec.q[:, cols]), 1e-7)
        self.samples = self.valid.sum(axis=0)

    MIN_SAMPLES = 50
    """Valid samples a joint needs before its efforts, not the rollouts, set its gains."""

    def pinned(self, pset: ParameterSet) -> list[int]:
        """Indices (into ``pset``) of the drive gains of joints with at least :attr:`MIN_SAMPLES` valid samples."""
        column = self.column
        return [i for i, p in enumerate(pset.params) if p.field in ("drive_stiffness", "drive_damping")
                and p.index in column and self.samples[column[p.index]] >= self.MIN_SAMPLES]

    def start(self, pset: ParameterSet, pinned: list[int], x0: np.ndarray) -> np.ndarray:
        """Start values (x-space) of the ``pinned`` gains from :meth:`initial_gains` (``x0`` where it has none)."""
        kp, kd = self.initial_gains(self.MIN_SAMPLES)
        column = self.column
        lo, hi = pset.bounds
        out = []
        for i in pinned:
            p = pset.params[i]
            value = (kp if p.field == "drive_stiffness" else kd)[column[p.index]]
            out.append(float(np.clip(p.x_of(value), lo[i], hi[i])) if np.isfinite(value) else float(x0[i]))
        return np.array(out)

    def initial_gains(self, min_samples: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """(kp, kd) per fitted joint from the linear regression ``q_d - q = a effort + b qd`` (``kp = 1/a``,
        ``kd = b/a``); NaN where a joint has fewer than ``min_samples`` valid samples or no positive gain comes out.
        A start for the fit (the rollouts' cost has local minima; this one is convex)."""
        kp = np.full(len(self.cols), np.nan)
        kd = np.full(len(self.cols), np.nan)
        for k in range(len(self.cols)):
            ok = self.valid[:, k]
            if ok.sum() < min_samples:
                continue
            a = np.stack([self.effort[ok, k], self.qd[ok, k]], axis=1)
            (slope, b), *_ = np.linalg.lstsq(a, self.error[ok, k], rcond=None)
            if slope > 0 and b >= 0:
                kp[k], kd[k] = 1.0 / slope, b / slope
        return kp, kd

    def residuals(self, params: SimParams) -> np.ndarray:
        """(S, J_fit) residuals in units of the encoder noise (0 where a sample is left out)."""
        kp = np.asarray(params.drive_stiffness, float)[self.sim_index]
        kd = np.asarray(params.drive_damping, float)[self.sim_index]
        implied = (self.effort + kd[None, :] * self.qd) / np.where(kp > 0, kp, np.inf)[None, :]
        return np.where(self.valid, (self.error - implied) / self.noise[None, :], 0.0)


class _Problem:
    """Residuals and finite-difference Jacobians of one parameter set over the fitted windows."""

    def __init__(self, pool: RolloutPool, pset: ParameterSet, rec: Recording, rows: np.ndarray, cols: np.ndarray, settings: FitSettings,
                 sigma: np.ndarray | None = None, drive_rows: DriveLawRows | None = None):
        self.pool, self.pset, self.settings = pool, pset, settings
        self.rec, self.rows = rec, rows
        self.drive_rows = drive_rows
        self.cols = cols
        self.sigma = np.ones(len(cols)) if sigma is None else np.asarray(sigma, float)
        # Spacing of the samples actually used (a 20 Hz dataset is sparser than sample_period_s).
        times = rec.t[rows]
        self.spacing = max(settings.sample_period_s, float(np.median(np.diff(times))) if len(times) > 1 else 0.0)
        self.width = max(1, int(round(settings.smooth_s / self.spacing))) if settings.smooth_s > 0 else 1
        self.measured = self.smooth(rec.q[rows][:, cols])
        self.evaluations = 0
        self.fd_scale = 1.0
        self.probing = False
        """:meth:`jac` regresses over a cloud of probes (:meth:`jac_regression`) instead of coordinate steps."""
        self._probe_calls = 0
        self._cache: dict[bytes, np.ndarray] = {}

    def smooth(self, q: np.ndarray) -> np.ndarray:
        """Moving average over ``width`` samples, kept every ``width // 2`` samples (half-overlapping windows)."""
        if self.width == 1:
            return q
        from scipy.ndimage import uniform_filter1d

        return uniform_filter1d(q, self.width, axis=0, mode="nearest")[:: max(1, self.width // 2)]

    def residuals_many(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        todo = [x for x in xs if x.tobytes() not in self._cache]
        if todo:
            preds = self.pool.simulate_many([self.pset.to_sim(x) for x in todo])
            for x, pred in zip(todo, preds):
                r = ((self.smooth(pred[:, self.cols]) - self.measured) / self.sigma).ravel()
                if self.drive_rows is not None:
                    r = np.concatenate([r, self.drive_rows.residuals(self.pset.to_sim(x)[0]).ravel()])
                self._cache[x.tobytes()] = r
        out = [self._cache[x.tobytes()] for x in xs]
        if len(self._cache) > 256:
            self._cache.clear()
        return out

    def fun(self, x: np.ndarray) -> np.ndarray:
        self.evaluations += 1
        return self.residuals_many([np.asarray(x, float)])[0]

    def jac(self, x: np.ndarray) -> np.ndarray:
        if self.probing:
            return self.jac_regression(x)
        x = np.asarray(x, float)
        lo, hi = self.pset.bounds
        h = self.settings.fd_step * self.fd_scale * np.maximum(1.0, np.abs(x))
        # Step inward at an upper bound.
        h = np.where(x + h > hi, -h, h)
        xs = [x.copy()]
        for i in range(x.size):
            xi = x.copy()
            xi[i] += h[i]
            xs.append(xi)
        res = self.residuals_many(xs)
        f0 = res[0]
        return np.stack([(res[i + 1] - f0) / h[i] for i in range(x.size)], axis=1)

    def jac_regression(self, x: np.ndarray) -> np.ndarray:
        """Jacobian of the best linear model of the rollouts over a cloud of probes around ``x``: pairs
        ``x +- d_k`` (``x`` moved 3 probe sizes off a bound it sits on) with ``d_k`` normal, :data:`PROBE_SD` of
        each parameter's scale (``max(1, |x|)``), and the residuals' odd part ``(r(x + d) - r(x - d)) / 2``
        regressed on ``d`` (the pairs cancel the even terms). Deterministic: the probes come from the fit's seed
        and the call count.

        Why: the rollouts are neither smooth at small steps nor additive at large ones. Measured on the gains +
        masses recording (true gains held, 0.1 mrad encoder), along the line from the coordinate fit to the truth:
        the rollouts change linearly from 0.3 % on (a cost change of -19..0 over 3.5 %), while every coordinate
        Jacobian (steps 0.02 % to 20 %) predicts a rise of 4300 to 250000: below 0.1 % XPBD's roughness (~0.4
        noise-floor units for any change) weighs on each column, and one link's mass moved alone by 1 % or more
        leaves the valley the masses move in together (at 1 % probes the linear model misses 14x more than at
        0.5 %). A cloud of probes sees every direction at once, and its regression averages the roughness out.
        """
        x = np.asarray(x, float)
        lo, hi = self.pset.bounds
        p = x.size
        pairs = p + PROBE_EXTRA_PAIRS
        self._probe_calls += 1
        rng = np.random.default_rng([self.settings.seed, self._probe_calls])
        size = PROBE_SD * np.maximum(1.0, np.abs(x))
        d = rng.standard_normal((pairs, p)) * size
        # Pairs around a centre 3 probe sizes inside the bounds (at a bound there is no symmetric pair, and a
        # pair that crosses one is shortened, not bent, to keep its symmetry).
        centre = np.where(hi - lo > 6 * size, np.clip(x, lo + 3 * size, hi - 3 * size), 0.5 * (lo + hi))
        for k in range(pairs):
            d[k] *= min(1.0, _room(centre, d[k], lo, hi), _room(centre, -d[k], lo, hi))
        res = self.residuals_many([centre + dk for dk in d] + [centre - dk for dk in d])
        odd = np.stack([(res[k] - res[k + pairs]) / 2.0 for k in range(pairs)])
        jac_t, *_ = np.linalg.lstsq(d, odd, rcond=None)
        return jac_t.T


PROBE_SD = 0.005
"""Probe size of :meth:`_Problem.jac_regression` (x-space, per unit of a parameter's scale): 0.5 % of a gain or
mass. Measured (masses, see there): the linear model explains 99.6 % of the probes' change at 0.5 %, 98.9 % at 1 %,
91 % at 2 %."""
PROBE_EXTRA_PAIRS = 4
"""Probe pairs beyond one per parameter (a regression, not a solve: the spare pairs average the roughness)."""


def _room(x: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Largest t >= 0 with lo <= x + t v <= hi."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(v > 0, (hi - x) / v, np.where(v < 0, (lo - x) / v, np.inf))
    return float(max(0.0, np.min(t))) if t.size else 0.0


def _residual_floor(pool: RolloutPool, rec: Recording, rows: np.ndarray, cols: np.ndarray,
                    problem: _Problem) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint standard deviation [rad | m] of an averaged residual the twin cannot explain at any parameters,
    and the twin's own part of it (the response to the nudge below, [rad | m]).

    Two parts: the encoder noise left after averaging (from second differences of the raw stream, where the
    motion's share is acceleration * dt^2, i.e. nothing), and the twin's own sensitivity: two runs 1e-4 apart
    in every stiffness. Before the backend re-framed revolute joints (``align_revolute_axes_with_twist``) XPBD
    made the Panda's joints 1, 3 and 5 wander by ~0.1 mrad for that change (chaos, not parameters); now they
    differ by their linear response, 6-12 urad, which widens the floor by a few %. Residuals are divided by it:
    joints where the twin is reproducible carry the fit, and the covariance is in units of it.
    """
    noise = encoder_noise(rec.q[:, cols])
    noise_avg = noise / np.sqrt(max(1, problem.width) * max(1.0, problem.spacing * _rate(rec)))
    base = pool.description.nominal
    nudged = base.copy()
    nudged.drive_stiffness = base.drive_stiffness * (1.0 + 1e-4)
    a, b = pool.simulate_many([(base, 0.0), (nudged, 0.0)])
    chaos = np.sqrt(np.mean((problem.smooth(a[:, cols]) - problem.smooth(b[:, cols])) ** 2, axis=0))
    return np.sqrt(noise_avg**2 + chaos**2 + 1e-14), chaos


HYPERSENSITIVE_FACTOR = 5.0
"""A joint the twin moves this many times more than the median joint, for the same 1e-4 change of every drive
stiffness, is hypersensitive (see :func:`_hypersensitive`)."""

LEFT_OUT_SCALE = 1e4
"""Noise floor multiplier that takes a joint's position rows out of the fit (their weight becomes 1e-8)."""


def _hypersensitive(chaos: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """(J_fit,) bool: joints whose twin position responds to parameters far beyond what physics allows.

    Why: on XPBD at 4 iterations the Panda's joints 1 and 3 (vertical axes that gravity does not load) move
    12-24x more than the median joint for a 1e-4 change of the stiffnesses (6-11 against 0.45 urad) and up to
    46 urad for a 1e-4 change in how the mass is spread over the links, where the physical response is the
    change of a sub-mrad tracking error (~0.05 urad). A robot does not do that, and the emulated robot (the same
    solver) does it so sharply that the fitted masses land in a narrow valley 3 % off the truth: measured with
    the true gains held and a 10 urad encoder, masses +3.0..+3.4 % with these joints' rows, +0.4..+1.2 %
    without. Only joints that respond more than a quarter of their own averaged encoder noise qualify, so a
    twin that responds little everywhere leaves every joint in.
    """
    chaos = np.asarray(chaos, float)
    if chaos.size < 3:
        return np.zeros(chaos.shape, dtype=bool)
    return (chaos > HYPERSENSITIVE_FACTOR * float(np.median(chaos))) & (chaos > 0.25 * np.asarray(noise, float))


DRIVEN_RANGE = 0.02
"""A joint whose measured position spans less than this [rad | m] was not driven by the excitation (see
:func:`_not_driven`)."""
OWN_MOTION_GROUPS = ("damping", "friction", "armature")


def _joint_travel(rec: Recording, order: np.ndarray, n_joints: int) -> np.ndarray:
    """(J_sim,) measured position span of each simulator joint [rad | m]; inf for joints the recording lacks."""
    travel = np.full(n_joints, np.inf)
    travel[order] = np.ptp(rec.q, axis=0)
    return travel


def _not_driven(pset: ParameterSet, travel: np.ndarray, prismatic: np.ndarray) -> dict[int, str]:
    """Parameters of :data:`OWN_MOTION_GROUPS` on joints the excitation did not drive (``travel``, see
    :func:`_joint_travel`, under :data:`DRIVEN_RANGE`), with the reason.

    Why: passive damping, Coulomb friction and armature act through the joint's own velocity and acceleration.
    A joint that only jiggled while others moved (a gripper's fingers: 4 mm against their open limit) shows them
    only through its knocks on that limit, which the fit then explains with whatever value fits best. Measured on
    the Panda with friction 0.3 N hidden on every joint: the fingers' friction came out at 33 and 17 N, with
    intervals (+-11, +-4 N) that excluded the truth, because above ~0.2 N XPBD's friction band turns it into a
    fixed viscous damping on a 50 g finger. Such parameters are held at nominal and reported, not fitted.
    """
    out: dict[int, str] = {}
    for i, p in enumerate(pset.params):
        if p.group in OWN_MOTION_GROUPS and travel[p.index] < DRIVEN_RANGE:
            unit = "m" if prismatic[p.index] else "rad"
            out[i] = (f"the excitation did not drive this joint (it moved {1e3 * travel[p.index]:.1f} m{unit}, under "
                      f"{1e3 * DRIVEN_RANGE:.0f} m{unit}); its {p.group} shows only through its own motion")
    return out


def _rate(rec: Recording) -> float:
    """Median state rate [Hz]."""
    return 1.0 / float(np.median(np.diff(rec.t)))


def _autocorrelation(residuals: np.ndarray) -> float:
    """Mean lag-1 autocorrelation of the per-joint residual series ((S, J))."""
    r = residuals - residuals.mean(axis=0)
    num = (r[1:] * r[:-1]).sum(axis=0)
    den = (r * r).sum(axis=0)
    rho = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return float(np.clip(rho.mean(), 0.0, 0.95))


def _covariance(J: np.ndarray, r: np.ndarray, dof: int, inflate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(covariance in x-space, singular values, right singular vectors) from the Jacobian at the optimum."""
    s2 = float(r @ r) / max(dof, 1) * inflate
    _, sv, vt = np.linalg.svd(J, full_matrices=False)
    tol = sv[0] * max(J.shape) * np.finfo(float).eps * 1e3 if sv.size else 0.0
    inv = np.where(sv > tol, 1.0 / np.where(sv > tol, sv, 1.0) ** 2, np.inf)
    cov = (vt.T * np.where(np.isfinite(inv), inv, 0.0)) @ vt * s2
    return cov, sv, vt


def _unidentifiable(pset: ParameterSet, x: np.ndarray, cov: np.ndarray, sv: np.ndarray, vt: np.ndarray, rel_std: float) -> dict[int, str]:
    """Indices (into pset) of parameters the data cannot pin down, with the reason."""
    out: dict[int, str] = {}
    names = pset.names
    # Near-null directions: each gives up the parameter that loads on it most (ties: the HOLD_FIRST order).
    if sv.size and sv[0] > 0:
        for k in np.flatnonzero(sv / sv[0] < 1e-4):
            v = np.abs(vt[k])
            cands = [i for i in np.flatnonzero(v > 0.5 * v.max()) if i not in out]
            if not cands:
                continue
            cands.sort(key=lambda i: (HOLD_FIRST.index(pset.params[i].group), -v[i]))
            i = cands[0]
            partners = [names[j] for j in np.flatnonzero(v > 0.3 * v.max()) if j != i][:3]
            out[i] = "acts like " + ", ".join(partners) if partners else "no effect on the measured joints"
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    for i, p in enumerate(pset.params):
        if i in out:
            continue
        # Scale: 1 for a relative parameter; for a value parameter its typical size or its value, if larger.
        scale = 1.0 if p.kind == "scale" else max(1.0, abs(float(x[i])))
        if not np.isfinite(std[i]) or std[i] > rel_std * scale:
            rel = std[i] / scale
            out[i] = f"the data cannot pin it down (1-sigma {rel:.0%} of its scale)"
    return out


def fit(rec: Recording, settings: FitSettings, *, progress=None) -> tuple[FitResult, RolloutPool]:
    """Identify ``settings.groups`` from ``rec``. Returns the result and the open rollout pool (close it)."""
    from scipy.optimize import least_squares

    started = time.perf_counter()
    fit_mask, _ = _fit_mask(rec, settings.holdout)
    if settings.sample_period_s <= 0:
        raise VlatwinError(f"--sample-period: must be > 0 s, got {settings.sample_period_s}")
    windows = make_windows(rec.t, rec.q, rec.qd, fit_mask, window_s=settings.window_s, sample_period_s=settings.sample_period_s)
    if not windows:
        raise VlatwinError(f"{rec.source}: too few samples to fit ({int(fit_mask.sum())} in the fitted part)")
    pool = RolloutPool(rec.stage_path, rec.physics, rec.joint_names, windows, rec.target_t, rec.target_q, workers=settings.workers)
    try:
        result = _fit(rec, settings, pool, windows, started, least_squares, progress)
    except BaseException:
        pool.close()
        raise
    return result, pool


def _fit(rec, settings, pool, windows, started, least_squares, progress) -> FitResult:
    from vlatwin.control.base import match_joint_names

    d = pool.description
    if "sensor_delay" in settings.groups and rec.input_source == "robot":
        pass  # still meaningful: the measurement may lag the state
    sel = _joint_selection(rec, settings.joints, d.joint_names)
    order = np.asarray(match_joint_names(list(rec.joint_names), list(d.joint_names)))
    cols = np.array([k for k in range(len(rec.joint_names)) if sel[order[k]]])
    # Bodies: robot links downstream of a fitted joint (and that move at all).
    pset_all = build_parameter_set(
        settings.groups, nominal=d.nominal, joint_names=list(d.joint_names), body_paths=list(d.body_paths),
        prismatic=d.prismatic, fit_joints=sel, fit_bodies=d.robot_bodies,
    )
    rows = np.concatenate([w.rows for w in windows])
    sigma, chaos = _residual_floor(pool, rec, rows, cols, _Problem(pool, pset_all, rec, rows, cols, settings))
    hypersensitive = _hypersensitive(chaos, np.sqrt(np.maximum(sigma**2 - chaos**2, 0.0)))
    if not settings.leave_out_hypersensitive:
        hypersensitive[:] = False
    drive_rows = None
    gains_fitted = any(p.field in ("drive_stiffness", "drive_damping") for p in pset_all.params)
    if settings.use_efforts and gains_fitted and rec.effort is not None and rec.effort_kind == "drive" and rec.q_desired is not None:
        drive_rows = DriveLawRows(rec, _fit_mask(rec, settings.holdout)[0], cols, order[cols])
    prismatic = np.asarray(d.prismatic, bool)
    travel = _joint_travel(rec, order, len(d.joint_names))
    not_driven = _not_driven(pset_all, travel, prismatic)
    held: dict[int, str] = dict(not_driven)
    params = list(pset_all.params)
    x_full = pset_all.x0.copy()
    cost0 = None
    evaluations = 0
    message, converged = "", False
    rho, r_full, dof_full = 0.0, np.zeros(0), 1
    left_out: list[int] = []
    for round_ in range(4):
        free = [i for i in range(len(params)) if i not in held]
        if not free:
            undriven = [
                f"{d.joint_names[j].rsplit('/', 1)[-1]} ({1e3 * travel[j]:.1f} m{'m' if prismatic[j] else 'rad'})"
                for j in sorted({params[i].index for i in not_driven})
            ]
            if undriven:
                raise VlatwinError(
                    f"{rec.source}: the excitation did not drive {', '.join(undriven)}: under "
                    f"{1e3 * DRIVEN_RANGE:.0f} mrad/mm of travel, their {'/'.join(settings.groups)} cannot be fitted; "
                    "fit other joints (--joints) or record an excitation that moves these ones"
                )
            raise VlatwinError("sysid: no parameter is identifiable from this recording (excite the joints more)")
        pset = ParameterSet([params[i] for i in free], _apply_held(pset_all, x_full, free))
        pinned = [] if drive_rows is None else drive_rows.pinned(pset)
        # A hypersensitive joint's position rows leave the fit unless a rollout-fitted parameter of that joint
        # needs them (its gains from positions, its damping, friction...): masses come from the other joints.
        own = {pset.params[i].index for i in range(len(pset)) if i not in pinned and pset.params[i].field != "body_mass"}
        left_out = [k for k in np.flatnonzero(hypersensitive) if int(order[cols[k]]) not in own]
        sigma_fit = sigma.copy()
        sigma_fit[left_out] *= LEFT_OUT_SCALE
        full = _Problem(pool, pset, rec, rows, cols, settings, sigma_fit, drive_rows)
        n_left_out = len(left_out) * (full.measured.size // max(1, len(cols)))
        lo, hi = pset.bounds
        x0 = x_full[free].copy()
        # Gains the drive efforts pin down come from the drive law alone (see DriveLawRows); the rollouts fit the
        # rest under them. Fitted jointly, the position rows bend the weakly loaded joints' gains to absorb XPBD's
        # chaos (measured: joint 5's stiffness 33 % off where its efforts alone put it within 1 %; with the re-framed
        # joints single gains still go 10-30 % off, the positions fix each drive's kd/kp but hardly its scale).
        rest = [i for i in range(len(pset)) if i not in pinned]
        if round_ == 0:
            # A parameter that starts on its bound (friction 0) leaves trf a near-zero first trust region: start
            # half a typical size inside.
            x0 = np.where(x0 <= lo + 1e-9, lo + 0.5, x0)
            if pinned:
                x0[pinned] = drive_rows.start(pset, pinned, x0)
        f0 = full.fun(x0)
        if not np.isfinite(f0).all():
            raise VlatwinError(f"{rec.source}: the twin with nominal parameters does not reproduce the recording (NaN)")
        if cost0 is None:
            cost0 = 0.5 * float(f0 @ f0)
        x = x0.copy()
        blocks = []
        converged, message, nfev = True, "", 0
        if pinned:
            law = _DriveLawProblem(drive_rows, pset, x, pinned)
            res = least_squares(law.fun, x[pinned], bounds=(lo[pinned], hi[pinned]), method="trf", xtol=1e-10, ftol=1e-10)
            x[pinned] = res.x
            law.x[pinned] = res.x
            blocks.append((pinned, res.jac, law.fun(res.x), 1.0, law.samples - len(pinned), law.subset))
            converged, message, nfev = res.status > 0, res.message, res.nfev
        if rest:
            base = x.copy()
            base[rest] = pset.x0[rest]
            sub = ParameterSet([pset.params[i] for i in rest], pset.to_sim(base)[0])
            problem = _Problem(pool, sub, rec, rows, cols, settings, sigma_fit, None if pinned else drive_rows)
            res = _solve(problem, x[rest], sub.bounds, settings)
            # The shifted start must not cost a fit that was already right: never end worse than where we began.
            start_r = problem.fun(x_full[free][rest])
            if 0.5 * float(start_r @ start_r) < res.cost:
                res.x = x_full[free][rest]
            x[rest] = res.x
            converged, message, nfev = converged and res.status > 0, res.message, nfev + res.nfev
            evaluations += problem.evaluations
            r = problem.fun(res.x)
            kept = np.setdiff1d(np.arange(len(cols)), left_out)
            rho = _autocorrelation(r[: problem.measured.size].reshape(-1, len(cols))[:, kept])
            invalid = 0 if problem.drive_rows is None else int((~problem.drive_rows.valid).sum())
            blocks.append((rest, problem.jac(res.x), r, (1 + rho) / (1 - rho), r.size - len(rest) - invalid - n_left_out, sub))
        x_full[free] = x
        from_efforts = {pset.params[i].name for i in pinned}
        cov = np.zeros((len(free), len(free)))
        bad: dict[int, str] = {}
        for idx, J, r, inflate, dof, subset in blocks:
            block_cov, sv, vt = _covariance(J, r, dof, inflate)
            cov[np.ix_(idx, idx)] = block_cov
            for k, reason in _unidentifiable(subset, x[idx], block_cov, sv, vt, settings.identifiable_rel_std).items():
                bad[idx[k]] = reason
        if pinned and rest:
            cov = _carry_pinned_uncertainty(cov, blocks[-1][1], _pinned_jacobian(problem, pset, x, pinned), pinned, rest)
        r_full = full.fun(x)
        dof_full = r_full.size - len(free) - n_left_out - (0 if drive_rows is None else int((~drive_rows.valid).sum()))
        # A fit cut short (--max-evaluations) says so: its covariance is not an optimum's, and calling parameters
        # unidentifiable from it would hold them all and blame the recording.
        if not converged:
            bad = {}
        if progress is not None:
            progress(round_, pset, SimpleNamespace(nfev=nfev, cost=0.5 * float(r_full @ r_full)), bad)
        if not bad:
            break
        for i, reason in bad.items():
            held[free[i]] = reason
        x_full[[free[i] for i in bad]] = pset_all.x0[[free[i] for i in bad]]
    else:
        converged = False
        message = "parameters kept turning out unidentifiable after 4 rounds"

    free = [i for i in range(len(params)) if i not in held]
    pset = ParameterSet([params[i] for i in free], _apply_held(pset_all, x_full, free))
    identified, delay = pset_all.to_sim(x_full)
    units = np.array([params[i].unit_per_x for i in free])
    cov_phys = cov * np.outer(units, units)
    std_phys = np.sqrt(np.clip(np.diag(cov_phys), 0.0, None))
    estimates = []
    for i, p in enumerate(params):
        if i in held:
            estimates.append(ParamEstimate(p.name, p.group, p.unit, p.nominal, p.nominal, None, False,
                                           f"not identifiable: {held[i]}; held at nominal"))
        else:
            k = free.index(i)
            note = "from the drive efforts" if p.name in from_efforts else ""
            if abs(x_full[i] - p.lower) < 1e-6 or abs(x_full[i] - p.upper) < 1e-6:
                note = "at its bound: the interval is not reliable"
            estimates.append(ParamEstimate(p.name, p.group, p.unit, p.nominal, p.value(x_full[i]), float(std_phys[k]), True, note))
    cost = 0.5 * float(r_full @ r_full)
    resid = r_full[: full.measured.size].reshape(-1, len(cols))
    return FitResult(
        estimates=estimates, params=identified, nominal=d.nominal.copy(), sensor_delay_s=delay, covariance=cov_phys,
        identified_names=[params[i].name for i in free], converged=converged, message=str(message),
        cost_initial=float(cost0), cost_final=cost, evaluations=evaluations, rollouts=pool.rollouts,
        wall_s=time.perf_counter() - started, residual_std=resid.std(axis=0) * sigma_fit, fit_joints=[rec.joint_names[k] for k in cols],
        autocorrelation=rho,
        extra={"x": x_full, "free": free, "pset": pset_all, "sigma": sigma, "joints": [p for p, s in zip(d.joint_names, sel) if s],
               "left_out": {rec.joint_names[cols[k]]: float(chaos[k] / np.median(chaos)) for k in left_out},
               "effort_samples": None if drive_rows is None else dict(zip(
                   [rec.joint_names[k] for k in cols], drive_rows.samples.tolist()))},
        reduced_chi2=float(r_full @ r_full) / max(dof_full, 1),
    )


def _solve(problem: _Problem, x0: np.ndarray, bounds, settings: FitSettings):
    """least_squares with restarts on the rollouts' cost; returns the last result (``x``, ``cost``, ``status``...).

    Restarts: a trust region that shrank on the cost's small-scale roughness (XPBD) stalls far from the minimum;
    a fresh start from there often goes on. When one no longer lowers the cost by 1 %, the finite-difference step
    shrinks 4x for the last approach (a 20 % secant is blunt near the minimum). Then up to
    :data:`PROBE_ROUNDS` runs on probe-cloud Jacobians (:meth:`_Problem.jac_regression`) follow the valleys the
    coordinate steps cannot see, and leave ``problem`` probing for the covariance's Jacobian. A robust loss starts
    to discount residuals at 3 (they are in units of their noise floor).
    """
    from scipy.optimize import least_squares

    lo, hi = bounds
    x_start, res, nfev = x0, None, 0
    for _ in range(settings.restarts + 2):
        res = least_squares(
            problem.fun, x_start, jac=problem.jac, bounds=(lo, hi), method="trf", loss=settings.loss,
            f_scale=3.0 if settings.loss != "linear" else 1.0, x_scale=1.0,
            max_nfev=settings.max_evaluations, xtol=1e-6, ftol=1e-6, gtol=1e-8,
        )
        nfev += res.nfev
        previous = 0.5 * float(problem.fun(x_start) @ problem.fun(x_start))
        gain = (previous - res.cost) / max(previous, 1e-300)
        x_start = res.x
        if gain < 0.01 and res.status > 0:
            if problem.fd_scale < 1.0:
                break
            problem.fd_scale = 0.25
    # Last approach on Jacobians regressed over probe clouds (see _Problem.jac_regression); the covariance's
    # Jacobian at the optimum is then one of these too.
    problem.probing = True
    # Convergence is the coordinate runs' verdict: the probe runs refine a minimum they found (and one cut short
    # by --max-evaluations stays cut short).
    status, message = res.status, res.message
    failed = 0
    for _ in range(PROBE_ROUNDS):
        before = res.cost
        polished = least_squares(
            problem.fun, res.x, jac=problem.jac, bounds=(lo, hi), method="trf", loss=settings.loss,
            f_scale=3.0 if settings.loss != "linear" else 1.0, x_scale=1.0,
            max_nfev=min(PROBE_EVALUATIONS, settings.max_evaluations), xtol=1e-6, ftol=1e-6, gtol=1e-8,
        )
        nfev += polished.nfev
        if polished.cost >= before:
            # The next run draws another cloud: one cloud's regression can miss the way on.
            failed += 1
            if failed > PROBE_RETRIES:
                break
            continue
        res = polished
        if before - res.cost < PROBE_MIN_GAIN * before:
            break
    res.nfev, res.status, res.message = nfev, status, message
    return res


PROBE_ROUNDS = 8
"""Least-squares runs on probe-cloud Jacobians after the coordinate ones (each up to :data:`PROBE_EVALUATIONS`
cost evaluations, or ``--max-evaluations`` if fewer). Measured on the gains + masses recording (0.1 mrad encoder,
probe seed 1): with at most 3 runs, stopping under a 0.1 % gain, the masses came out all within 3.3 %; with 8
runs, stopping under 0.01 %, the cost went 18 lower and they came out within 1.1 % (seeds 0 and 2: unchanged)."""
PROBE_EVALUATIONS = 15
PROBE_MIN_GAIN = 1e-4
"""A probe run that lowers the cost by less than this share of it ends the probe runs."""
PROBE_RETRIES = 2
"""Probe runs that did not lower the cost allowed before the probe runs end (each draws another cloud)."""


class _DriveLawProblem:
    """The drive-law rows of the joints whose gains they pin, as a function of those gains alone (no rollouts)."""

    def __init__(self, rows: DriveLawRows, pset: ParameterSet, x: np.ndarray, pinned: list[int]):
        self.rows, self.pset, self.x, self.pinned = rows, pset, x.copy(), pinned
        self.columns = sorted({rows.column[pset.params[i].index] for i in pinned})
        self.samples = int(rows.valid[:, self.columns].sum())
        self.subset = ParameterSet([pset.params[i] for i in pinned], pset.nominal)

    def fun(self, xp: np.ndarray) -> np.ndarray:
        x = self.x.copy()
        x[self.pinned] = xp
        return self.rows.residuals(self.pset.to_sim(x)[0])[:, self.columns].ravel()


def _pinned_jacobian(problem: _Problem, pset: ParameterSet, x: np.ndarray, pinned: list[int]) -> np.ndarray:
    """Jacobian of ``problem``'s residuals (the rollouts' rows, fitted with the pinned gains held) with respect to
    the pinned gains, at ``x``, by the same finite differences as the fitted parameters' columns."""
    sub = ParameterSet([pset.params[i] for i in pinned], pset.to_sim(x)[0])
    held = _Problem(problem.pool, sub, problem.rec, problem.rows, problem.cols, problem.settings, problem.sigma, None)
    held.fd_scale = problem.fd_scale
    # The optimum's residuals are the same rows ``problem`` has cached for it: no rollout to repeat.
    rest = [i for i in range(len(x)) if i not in pinned]
    held._cache[x[pinned].tobytes()] = problem.residuals_many([x[rest]])[0]
    return held.jac(x[pinned])


def _carry_pinned_uncertainty(cov: np.ndarray, jac_rest: np.ndarray, jac_pinned: np.ndarray, pinned: list[int],
                              rest: list[int]) -> np.ndarray:
    """``cov`` (x-space) with the pinned gains' uncertainty carried into the parameters fitted under them.

    The rollouts fit ``rest`` with the gains held at their drive-law values, so a gain error moves them too: to
    first order ``dx_rest = S dx_pinned`` with ``S = -J_rest^+ J_pinned`` (the least-squares response of the
    optimum). Measured on the gains + masses recording (20 % hidden mismatch): the masses' errors went from
    2.6-140 to 0.4-30 standard deviations (link 5: 8 % off); the rest of their error is not linear in the gains.
    """
    S = -np.linalg.lstsq(jac_rest, jac_pinned, rcond=None)[0]
    cov_pinned = cov[np.ix_(pinned, pinned)]
    out = cov.copy()
    out[np.ix_(rest, rest)] += S @ cov_pinned @ S.T
    cross = S @ cov_pinned
    out[np.ix_(rest, pinned)] = cross
    out[np.ix_(pinned, rest)] = cross.T
    return out


def _apply_held(pset_all: ParameterSet, x_full: np.ndarray, free: list[int]) -> SimParams:
    """Nominal parameters with every non-free parameter at its current (held) value."""
    base, _ = pset_all.to_sim(np.where(np.isin(np.arange(len(x_full)), free), pset_all.x0, x_full))
    return base


def predict(pool: RolloutPool, rec: Recording, result: FitResult, *, ensemble: int = 0, seed: int = 0,
            sample_period_s: float = 0.01, holdout: float = 0.25) -> dict:
    """Nominal and identified twins (and an ensemble band) over the whole recording.

    Returns ``rows`` (recording rows predicted), ``nominal``, ``identified`` ((S, J) recording joint order)
    and, with ``ensemble > 0``, ``band_lo``/``band_hi``: the 95 % predictive band (ensemble spread plus the
    fit's residual noise per joint).
    """
    windows = make_windows(rec.t, rec.q, rec.qd, np.ones(len(rec.t), bool), window_s=math.inf, sample_period_s=sample_period_s)
    rows = np.concatenate([w.rows for w in windows])
    jobs = [(result.nominal, 0.0), (result.params, result.sensor_delay_s)]
    members = []
    if ensemble > 0 and result.identified_names:
        pset: ParameterSet = result.extra["pset"]
        free = result.extra["free"]
        x = result.extra["x"]
        units = np.array([pset.params[i].unit_per_x for i in free])
        cov_x = result.covariance / np.outer(units, units)
        rng = np.random.default_rng(seed)
        lo, hi = pset.bounds
        draws = rng.multivariate_normal(x[free], cov_x, size=ensemble, method="eigh")
        for draw in draws:
            xm = x.copy()
            xm[free] = np.clip(draw, lo[free], hi[free])
            members.append(pset.to_sim(xm))
    preds = pool.simulate_many(jobs + members, windows)
    out = {"rows": rows, "nominal": preds[0], "identified": preds[1]}
    if members:
        stack = np.stack(preds[2:])
        mean = stack.mean(axis=0)
        var = stack.var(axis=0)
        # Sample noise per joint: the identified twin's raw residual on the fitted part (encoder noise plus
        # whatever the model misses at sample level), added to the ensemble's parameter spread.
        fitted = rec.t[rows] <= rec.t[0] + (1.0 - holdout) * rec.duration
        noise = (preds[1] - rec.q[rows])[fitted].std(axis=0)
        half = 1.96 * np.sqrt(var + noise[None, :] ** 2)
        out["band_lo"], out["band_hi"] = mean - half, mean + half
    return out
