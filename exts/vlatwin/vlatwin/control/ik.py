"""Differential inverse kinematics: damped least squares (DLS) with joint-limit clamping, numpy only.

DLS (Wampler 1986; Buss, "Introduction to inverse kinematics with Jacobian transpose, pseudoinverse
and damped least squares methods", 2004) solves ``J dq = e`` as
``dq = W J^T (J W J^T + lambda^2 I)^-1 e``: near singularities the damping trades accuracy for bounded
joint steps instead of the pseudoinverse's blow-up. Joint limits are handled by clamping: a joint whose
step would cross a limit is pinned at the limit, removed from the solve, and the step is re-solved
for the remaining joints against the error left over (the "clamping loop" of Baerlocher & Boulic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlatwin.control.rotations import pose_error


@dataclass(frozen=True, kw_only=True, eq=False)
class IKResult:
    """Outcome of :func:`solve_ik`."""

    q: np.ndarray
    """Joint positions (n,) [rad | m], always within the limits given to the solver."""
    converged: bool
    """True when both errors are within tolerance."""
    position_error: float
    """Remaining EE position error [m]."""
    rotation_error: float
    """Remaining EE rotation error [rad] (0 when solving for position only)."""
    iterations: int


def dls_step(
    jacobian: np.ndarray,
    error: np.ndarray,
    damping: float = 0.05,
    *,
    joint_weights: np.ndarray | None = None,
    max_step: float | None = None,
) -> np.ndarray:
    """One damped-least-squares step ``dq`` that reduces the task ``error``.

    Args:
        jacobian: (m, n) task Jacobian, e.g. the (6, n) geometric Jacobian.
        error: (m,) task error, e.g. [dp [m]; rotvec [rad]] from :func:`~vlatwin.control.rotations.pose_error`.
        damping: lambda [same units as the Jacobian's singular values]; 0 gives the pseudoinverse.
        joint_weights: (n,) non-negative weights; a joint with weight 0 does not move, larger moves more.
        max_step: scale the whole step down so no joint moves more than this [rad | m] (keeps the
            linearisation valid far from the target).

    Returns:
        dq (n,) [rad | m].
    """
    jac = np.asarray(jacobian, dtype=float)
    weights = np.ones(jac.shape[1]) if joint_weights is None else np.asarray(joint_weights, dtype=float)
    jw = jac * weights  # J @ diag(w)
    gram = jw @ jac.T + (damping**2) * np.eye(jac.shape[0])
    dq = jw.T @ np.linalg.solve(gram, np.asarray(error, dtype=float))
    if max_step is not None:
        largest = float(np.max(np.abs(dq), initial=0.0))
        if largest > max_step:
            dq *= max_step / largest
    return dq


def clamped_dls_step(
    jacobian: np.ndarray,
    error: np.ndarray,
    q: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    damping: float = 0.05,
    *,
    max_step: float | None = None,
) -> np.ndarray:
    """A DLS step from ``q`` that keeps ``q + dq`` within [lower, upper].

    Joints whose step would cross a limit are set to land exactly on it and the others are re-solved
    for the error those pinned joints leave (at most n rounds). A joint resting on a limit and pushed
    outwards therefore stays put while the others compensate.
    """
    n = jacobian.shape[1]
    free = np.ones(n, dtype=bool)
    dq = np.zeros(n)
    for _ in range(n):
        rest = error - jacobian[:, ~free] @ dq[~free]
        dq[free] = dls_step(jacobian[:, free], rest, damping) if free.any() else 0.0
        q_new = q + dq
        over = free & ((q_new > upper) | (q_new < lower))
        if not over.any():
            break
        dq[over] = np.clip(q_new[over], lower[over], upper[over]) - q[over]
        free &= ~over
    if max_step is not None:
        largest = float(np.max(np.abs(dq), initial=0.0))
        if largest > max_step:
            dq *= max_step / largest  # uniform scaling towards q keeps every joint within its limits
    return np.clip(q + dq, lower, upper) - q


def solve_ik(
    chain,
    q0: np.ndarray,
    target: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    *,
    max_iters: int = 100,
    position_tolerance: float = 1e-5,
    rotation_tolerance: float = 1e-4,
    damping: float = 0.05,
    max_step: float = 0.2,
    rotation_weight: float = 1.0,
    position_only: bool = False,
) -> IKResult:
    """Joint positions that put the chain's EE at ``target``, by iterated clamped DLS steps from ``q0``.

    A local method: it finds the solution nearest ``q0`` in the sense of the DLS descent, so start it
    near the answer (the last joint target, in a control loop). It never returns joints outside
    [lower, upper]; a target that needs a joint beyond its limit ends with that joint on the limit and
    ``converged=False``.

    Args:
        chain: a :class:`~vlatwin.control.kinematics.KinematicChain` (or anything with ``fk_jacobian`` and
            ``lower``/``upper``).
        q0: start (n,) [rad | m]; clipped into the limits first.
        target: desired EE pose (4x4) in the chain's base frame.
        lower, upper: joint limits (n,) [rad | m]; the chain's limits by default.
        max_iters: iteration cap.
        position_tolerance: [m].
        rotation_tolerance: [rad].
        damping: largest DLS lambda; each iteration uses ``min(damping, |error|)``.
        max_step: largest joint change per iteration [rad | m].
        rotation_weight: weight of the rotation rows against the position rows [m/rad]: a larger value
            trades position accuracy for orientation accuracy while the target is out of reach.
        position_only: ignore the orientation (3-D task).
    """
    lower = chain.lower if lower is None else np.asarray(lower, dtype=float)
    upper = chain.upper if upper is None else np.asarray(upper, dtype=float)
    target = np.asarray(target, dtype=float)
    q = np.clip(np.asarray(q0, dtype=float), lower, upper)
    rows = slice(0, 3) if position_only else slice(0, 6)
    scale = np.array([1.0, 1.0, 1.0, rotation_weight, rotation_weight, rotation_weight])[rows]

    iterations = 0
    while True:
        ee, jac = chain.fk_jacobian(q)
        err = pose_error(ee, target)
        pos_err = float(np.linalg.norm(err[:3]))
        rot_err = 0.0 if position_only else float(np.linalg.norm(err[3:]))
        converged = pos_err <= position_tolerance and rot_err <= rotation_tolerance
        if converged or iterations >= max_iters:
            break
        jac = jac[rows] * scale[:, None]
        task_err = err[rows] * scale
        # Error-scaled damping (Sugihara 2011, "Solvability-unconcerned inverse kinematics by the
        # Levenberg-Marquardt method"): full damping far away, vanishing damping near the target so the
        # last iterations converge fast even close to a singular configuration.
        lam = min(damping, float(np.linalg.norm(task_err)) + 1e-4)
        dq = clamped_dls_step(jac, task_err, q, lower, upper, lam, max_step=max_step)
        iterations += 1
        if np.max(np.abs(dq), initial=0.0) < 1e-12:
            break  # stuck: on limits or at a singular configuration the target cannot pull out of
        q = q + dq
    return IKResult(q=q, converged=converged, position_error=pos_err, rotation_error=rot_err, iterations=iterations)


__all__ = ["IKResult", "clamped_dls_step", "dls_step", "solve_ik"]
