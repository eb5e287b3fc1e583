"""Gradients of a joint-tracking loss from a differentiable XPBD rollout (Warp tape), for system identification.

:class:`TapeRollout` imports the same stage as :class:`vlatwin.sim.newton.SimBackendNewton` (same importer,
schema resolvers, XPBD solver, iterations and step), but runs it eagerly on the CPU with one Newton
``State`` per physics step, one ``Control`` per target window and one contact buffer per step, so every
kernel launch can be replayed backwards by ``wp.Tape``. The loss is read from the joint coordinates that
``newton.eval_ik`` recovers from the body poses (the same call ``SimBackendNewton.get_state`` uses); the
IK kernel is differentiable and recorded on the tape.

Which gradients come from the tape (each checked against central finite differences of :meth:`TapeRollout.loss`
in ``tests/integration/test_sysid_gradients.py``; reach_ball stage, 600 Hz, XPBD 4 iterations, 150 steps with a
target step, numbers measured when this was written):

- ``drive_damping`` (per commanded joint): gradient of ``Model.joint_target_kd`` (tape -2.070e-5, 5.231e-5,
  -1.817e-5 vs FD -2.074e-5, 5.215e-5, -1.859e-5 for panda_joint2, 4, 5). Valid because the rollout's velocity
  targets are 0 (see ``drive_stiffness`` below for what a nonzero target would add).
- ``joint_damping``: the backend folds passive damping into the drive's kd, so its gradient is the same array.
- ``body_mass`` (per body, inertia scaled with the mass = constant density): the body arrays are written before
  the rollout and ``SolverXPBD.notify_model_changed(BODY_INERTIAL_PROPERTIES)`` is called *inside* the tape, so the
  solver's cached effective inverse masses are on the tape; the gradient is chained by hand from
  ``body_mass``, ``body_inv_mass``, ``body_inertia`` and ``body_inv_inertia`` (tape 1.132e-3, -3.607e-3, 8.53e-4
  vs FD 1.093e-3, -3.637e-3, 8.34e-4 for panda_link1, 3, 6).
- ``joint_armature``: ``Model.joint_armature`` is not read by XPBD (tape gradient exactly 0), but the backend
  models armature as extra inertia of the child body about the joint axis, and that route is on the tape
  (at 0.1 kg m^2: tape 0.0618, 0.00398, 0.0473, 0.893, 0.134 vs FD 0.0630, 0.00414, 0.0467, 0.891, 0.137 for
  panda_joint1, 2, 4, 6, 7).

Not from the tape (raise; use finite differences), see :data:`NOT_DIFFERENTIABLE`:

- ``drive_stiffness``: the tape gradient is wrong by orders of magnitude (panda_joint1: tape 0.0389 vs FD
  -1.7e-8). Cause, reproduced in a 10-line kernel: Newton 1.8's ``solve_body_joints`` normalises the
  ke-weighted drive target with an in-place ``axis_target_pos[i] /= axis_stiffness[i]`` in a loop, and Warp's
  adjoint of that statement passes the incoming adjoint through unchanged *as well as* through the division,
  adding ``target * dL/d(target)`` to dL/dke (and multiplying dL/dtarget by 1 + ke). Subtracting the spurious
  term (``target * tape_dL/dtarget / (1 + ke)``) recovers the sign but leaves 5-70 % errors (cancellation of two
  float32 terms ~1e6 times larger than the result), so it is not used. The damping target has the same
  pattern; it is harmless only because the velocity target is 0.
- ``joint_friction``: XPBD ignores ``Model.joint_friction`` (tape 0); the backend applies friction as a
  per-step joint force that this rollout does not model.
- ``body_inertia``: inertia follows ``body_mass`` here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from vlatwin.errors import VlatwinError

#: Why the other SimParams fields have no tape gradient (measured on the reach_ball stage, 150 steps at 600 Hz,
#: see the module docstring). Each entry is the tail of the one-line error.
NOT_DIFFERENTIABLE = {
    "drive_stiffness": (
        "the XPBD tape gradient is wrong here (measured on panda_joint1: tape 0.0389 vs finite difference -1.7e-08; "
        "Newton 1.8's joint kernel divides the weighted drive target in place and Warp's adjoint of that adds "
        "target * dL/dtarget to dL/dke); use finite differences"
    ),
    "joint_friction": (
        "the XPBD tape gradient is zero here (measured: tape 0 through Model.joint_friction, which XPBD ignores, vs "
        "finite difference 1.1e-05 on SimBackendNewton's per-step friction force, panda_joint1 at 0.5 N*m); "
        "use finite differences"
    ),
    "body_inertia": "inertia is scaled with body_mass here (constant density); use finite differences",
}


def _kernels():
    import warp as wp

    @wp.kernel
    def joint_sq_error(
        joint_q: wp.array(dtype=wp.float32),
        q_index: wp.array(dtype=wp.int32),
        measured: wp.array2d(dtype=wp.float32),
        row: int,
        loss: wp.array(dtype=wp.float32),
    ):
        i = wp.tid()
        d = joint_q[q_index[i]] - measured[row, i]
        wp.atomic_add(loss, 0, 0.5 * d * d)

    return joint_sq_error


class TapeRollout:
    """Differentiable XPBD rollout of a stage's robot (Warp tape) for sysid gradients.

    Args:
        stage_path: a vlatwin stage (``vlatwin scene build``), the same file ``SimBackendNewton.load`` takes.
        physics_dt: physics step [s] (the backend's ``info.physics_dt``).
        iterations: XPBD iterations per step (the backend's ``solver_iterations``).

    Parameters (``params`` of :meth:`loss` / :meth:`loss_and_gradient`) use :class:`vlatwin.sim.types.SimParams`
    field names and units (per radian, kg): ``drive_stiffness`` (J,), ``drive_damping`` (J,),
    ``joint_damping`` (J,, added to the drive's kd like ``SimBackendNewton.set_params`` does), ``joint_armature``
    (J,, added to the child body's inertia about the joint axis, prismatic: to its mass, like the backend does) and
    ``body_mass`` (B,) with every body's authored inertia scaled by ``mass / authored mass``. A field left out keeps
    the stage's authored value (armature and damping: 0). ``joint_friction`` must be zero or absent.

    The rollout uses position drives only: joint velocity targets are 0 and no feed-forward effort is applied.
    Targets are clipped to the joint limits like ``SimBackendNewton.set_joint_targets``.
    """

    GRADIENT_PARAMS = ("drive_damping", "joint_damping", "joint_armature", "body_mass")
    FORWARD_PARAMS = ("drive_stiffness", "drive_damping", "joint_damping", "joint_armature", "joint_friction", "body_mass")

    def __init__(self, stage_path, *, physics_dt: float, iterations: int = 4):
        from vlatwin.sim import newton_assets
        from vlatwin.sim.newton import _import_engine, _initial_contact_capacity, build_stage_model
        from vlatwin.usd.check import open_stage

        wp, newton = _import_engine()
        self._wp, self._newton = wp, newton
        builder = build_stage_model(open_stage(stage_path), stage_path, "convex_hull", wp, newton)
        self.model = model = builder.finalize(device="cpu", requires_grad=True)
        newton_assets.clamp_initial_joint_positions(model, newton)
        self.dt = float(physics_dt)
        self.iterations = int(iterations)
        self.solver = newton.solvers.SolverXPBD(model, iterations=self.iterations)

        joint_type = model.joint_type.numpy()
        one_dof = {int(newton.JointType.REVOLUTE), int(newton.JointType.PRISMATIC)}
        self._cmd_joints = np.array([j for j, t in enumerate(joint_type) if int(t) in one_dof], dtype=np.int64)
        self._cmd_q_idx = model.joint_q_start.numpy()[self._cmd_joints]
        self._cmd_qd_idx = model.joint_qd_start.numpy()[self._cmd_joints]
        labels = list(model.joint_label)
        self.joint_names: tuple[str, ...] = tuple(labels[j] for j in self._cmd_joints)
        self.body_paths: tuple[str, ...] = tuple(model.body_label)
        lower, upper = model.joint_limit_lower.numpy(), model.joint_limit_upper.numpy()
        self.joint_lower = lower[self._cmd_qd_idx].astype(np.float64)
        self.joint_upper = upper[self._cmd_qd_idx].astype(np.float64)

        # Authored values (the defaults of every parameter).
        self._ke0 = model.joint_target_ke.numpy().copy()
        self._kd0 = model.joint_target_kd.numpy().copy()
        self._mass0 = model.body_mass.numpy().astype(np.float64).copy()
        self._inertia0 = model.body_inertia.numpy().astype(np.float64).copy()
        self._joint_q0 = model.joint_q.numpy().copy()
        self._joint_qd0 = model.joint_qd.numpy().copy()
        self._target_q0 = model.control().joint_target_q.numpy().copy()
        joint_X_c = model.joint_X_c.numpy().astype(np.float64)
        axes = model.joint_axis.numpy().astype(np.float64)
        self._cmd_child = model.joint_child.numpy()[self._cmd_joints]
        self._cmd_revolute = joint_type[self._cmd_joints] == int(newton.JointType.REVOLUTE)
        self._cmd_axis_b = np.zeros((len(self._cmd_joints), 3))
        for i, (j, dof) in enumerate(zip(self._cmd_joints, self._cmd_qd_idx)):
            x, y, z, w = joint_X_c[j][3:7]
            self._cmd_axis_b[i] = _rotate_xyzw(np.array([x, y, z, w]), axes[dof])

        self._q_index = wp.array(self._cmd_q_idx.astype(np.int32), dtype=wp.int32, device=model.device)
        self._sq_error = _kernels()
        self._contact_capacity = _initial_contact_capacity(model, newton)
        self._make_pipeline()
        self._states: list = []
        self._controls: list = []
        self._ik: list = []
        self._applied: tuple | None = None

    # ------------------------------------------------------------------ setup
    def _make_pipeline(self) -> None:
        self._pipeline = self._newton.CollisionPipeline(
            self.model, broad_phase="explicit", rigid_contact_max=self._contact_capacity, requires_grad=True
        )
        self._contacts: list = []

    def _buffers(self, steps: int, windows: int, samples: int) -> None:
        model, wp = self.model, self._wp
        while len(self._states) < steps + 1:
            self._states.append(model.state(requires_grad=True))
        while len(self._contacts) < steps:
            self._contacts.append(self._pipeline.contacts())
        while len(self._controls) < windows:
            self._controls.append(model.control(requires_grad=False))
        while len(self._ik) < samples:
            self._ik.append((
                wp.zeros(model.joint_coord_count, dtype=float, device=model.device, requires_grad=True),
                wp.zeros(model.joint_dof_count, dtype=float, device=model.device, requires_grad=True),
            ))

    def _joint_param(self, params: dict, name: str, default: np.ndarray) -> np.ndarray:
        value = params.get(name)
        if value is None:
            return default
        value = np.asarray(value, dtype=np.float64)
        if value.shape != (len(self.joint_names),) or not np.all(np.isfinite(value)) or np.any(value < 0):
            raise VlatwinError(f"{name}: expected {len(self.joint_names)} finite values >= 0, got {value.tolist()}")
        return value

    def _apply_params(self, params: dict) -> None:
        """Write drive gains and inertial properties into the model (outside the tape, plain arrays)."""
        from vlatwin.sim.newton import with_armature

        unknown = set(params) - set(self.FORWARD_PARAMS)
        if unknown:
            name = sorted(unknown)[0]
            raise VlatwinError(f"TapeRollout: parameter {name!r} is not modelled here; {NOT_DIFFERENTIABLE.get(name, 'use finite differences')}")
        n = len(self.joint_names)
        friction = self._joint_param(params, "joint_friction", np.zeros(n))
        if np.any(friction > 0):
            raise VlatwinError(f"TapeRollout: joint_friction is not modelled here; {NOT_DIFFERENTIABLE['joint_friction']}")
        ke = self._joint_param(params, "drive_stiffness", self._ke0[self._cmd_qd_idx].astype(np.float64))
        kd = self._joint_param(params, "drive_damping", self._kd0[self._cmd_qd_idx].astype(np.float64))
        damping = self._joint_param(params, "joint_damping", np.zeros(n))
        armature = self._joint_param(params, "joint_armature", np.zeros(n))
        full_ke, full_kd = self._ke0.copy(), self._kd0.copy()
        full_ke[self._cmd_qd_idx] = ke
        full_kd[self._cmd_qd_idx] = kd + damping
        self.model.joint_target_ke.assign(full_ke.astype(np.float32))
        self.model.joint_target_kd.assign(full_kd.astype(np.float32))

        mass = params.get("body_mass")
        mass = self._mass0.copy() if mass is None else np.array(mass, dtype=np.float64)
        if mass.shape != self._mass0.shape or not np.all(np.isfinite(mass)) or np.any(mass < 0):
            raise VlatwinError(f"body_mass: expected {len(self._mass0)} finite masses >= 0 [kg], got shape {mass.shape}")
        scale = np.where(self._mass0 > 0, mass / np.where(self._mass0 > 0, self._mass0, 1.0), 1.0)
        mass, inertia, inv_mass, inv_inertia = with_armature(
            mass, self._inertia0 * scale[:, None, None], armature, self._cmd_child, self._cmd_revolute, self._cmd_axis_b
        )
        model = self.model
        model.body_mass.assign(mass.astype(np.float32))
        model.body_inv_mass.assign(inv_mass.astype(np.float32))
        model.body_inertia.assign(inertia.astype(np.float32))
        model.body_inv_inertia.assign(inv_inertia.astype(np.float32))
        self._applied = (mass, inertia, inv_mass, inv_inertia)

    # ---------------------------------------------------------------- rollout
    def _check_inputs(self, q0, qd0, targets, steps_per_target, sample_every, q_measured):
        n = len(self.joint_names)
        q0 = np.asarray(q0, dtype=np.float64)
        qd0 = np.zeros(n) if qd0 is None else np.asarray(qd0, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        if q0.shape != (n,) or qd0.shape != (n,):
            raise VlatwinError(f"q0 and qd0 must have {n} entries (one per joint of {self.joint_names})")
        if targets.ndim != 2 or targets.shape[1] != n or len(targets) == 0:
            raise VlatwinError(f"targets must be (K, {n}), got {targets.shape}")
        steps_per_target, sample_every = int(steps_per_target), int(sample_every)
        if steps_per_target < 1 or sample_every < 1:
            raise VlatwinError("steps_per_target and sample_every must be >= 1")
        steps = len(targets) * steps_per_target
        samples = steps // sample_every
        q_measured = np.asarray(q_measured, dtype=np.float64)
        if q_measured.shape != (samples, n):
            raise VlatwinError(
                f"q_measured must be ({samples}, {n}): joint positions after physics steps {sample_every}, "
                f"{2 * sample_every}, ... of the {steps}-step rollout; got {q_measured.shape}"
            )
        return q0, qd0, targets, steps_per_target, sample_every, q_measured

    def _forward(self, q0, qd0, targets, steps_per_target, sample_every, q_measured, *, tape=None):
        """Run the rollout (recording on ``tape`` when given); returns the loss array (1,)."""
        wp, newton, model = self._wp, self._newton, self.model
        steps = len(targets) * steps_per_target
        samples = steps // sample_every
        while True:
            self._buffers(steps, len(targets), samples)
            joint_q = self._joint_q0.copy()
            joint_qd = self._joint_qd0.copy()
            joint_q[self._cmd_q_idx] = np.clip(q0, self.joint_lower, self.joint_upper)
            joint_qd[self._cmd_qd_idx] = qd0
            state0 = self._states[0]
            newton.eval_fk(model, wp.array(joint_q, dtype=float, device=model.device), wp.array(joint_qd, dtype=float, device=model.device), state0)
            for k, control in enumerate(self._controls[: len(targets)]):
                target = self._target_q0.copy()
                target[self._cmd_q_idx] = np.clip(targets[k], self.joint_lower, self.joint_upper)
                control.joint_target_q.assign(target.astype(np.float32))
                control.joint_target_qd.zero_()
                control.joint_f.zero_()
            measured = wp.array(q_measured.astype(np.float32), dtype=wp.float32, device=model.device)
            loss = wp.zeros(1, dtype=wp.float32, device=model.device, requires_grad=True)
            if tape is not None:
                tape.reset()
            with _maybe(tape):
                # The solver's cached effective masses must be recomputed on the tape (else d/dmass = 0).
                self.solver.notify_model_changed(newton.ModelFlags.BODY_INERTIAL_PROPERTIES)
                for t in range(steps):
                    s_in, s_out, contacts = self._states[t], self._states[t + 1], self._contacts[t]
                    s_in.clear_forces()
                    self._pipeline.collide(s_in, contacts)
                    self.solver.step(s_in, s_out, self._controls[t // steps_per_target], contacts, self.dt)
                    if (t + 1) % sample_every == 0:
                        row = (t + 1) // sample_every - 1
                        ik_q, ik_qd = self._ik[row]
                        newton.eval_ik(model, s_out, ik_q, ik_qd)
                        wp.launch(self._sq_error, dim=len(self._cmd_q_idx), inputs=[ik_q, self._q_index, measured, row, loss], device=model.device)
            counts = [int(c.rigid_contact_count.numpy()[0]) for c in self._contacts[:steps]]
            if max(counts, default=0) < self._contact_capacity:
                break
            # A full contact buffer may have dropped contacts: grow it and rerun (as the backend does).
            self._contact_capacity *= 2
            self._make_pipeline()
        final = self._states[steps].body_qd.numpy()
        if not np.all(np.isfinite(final)):
            raise VlatwinError("TapeRollout: the simulation diverged (NaN body velocities); check the parameters")
        return loss

    def joint_trajectory(self, params: dict, q0, qd0, targets, steps_per_target: int, sample_every: int) -> np.ndarray:
        """The simulated joint positions (S, J) at the sample steps (forward only)."""
        targets = np.asarray(targets, dtype=np.float64)
        samples = len(targets) * int(steps_per_target) // int(sample_every)
        zeros = np.zeros((samples, len(self.joint_names)))
        args = self._check_inputs(q0, qd0, targets, steps_per_target, sample_every, zeros)
        self._apply_params(params)
        self._forward(*args)
        return np.stack([self._ik[r][0].numpy()[self._cmd_q_idx].astype(np.float64) for r in range(samples)]) if samples else zeros

    def loss(self, params, q0, qd0, targets, steps_per_target, sample_every, q_measured) -> float:
        """0.5 * sum((q_sim - q_measured)**2) over the samples (forward only; for finite differences)."""
        args = self._check_inputs(q0, qd0, targets, steps_per_target, sample_every, q_measured)
        self._apply_params(params)
        return float(self._forward(*args).numpy()[0])

    def loss_and_gradient(
        self,
        params: dict[str, np.ndarray],
        q0,
        qd0,
        targets: np.ndarray,
        steps_per_target: int,
        sample_every: int,
        q_measured: np.ndarray,
        wrt: Sequence[str],
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Roll out from joint state (q0, qd0) applying targets[k] (K, J) for steps_per_target physics steps each,
        sample joint positions every `sample_every` steps, loss = 0.5 * sum((q_sim - q_measured)**2) over the samples;
        returns loss and d loss / d param for each name in wrt (joint parameters per joint (J,), body_mass per body (B,)
        with the body inertia scaled with the mass, i.e. gradient with respect to a mass change at constant density).

        ``wrt`` names must be in :attr:`GRADIENT_PARAMS`; any other (``drive_stiffness``, ``joint_friction``, ...)
        raises :class:`VlatwinError` with what was measured (use finite differences for those).

        ``q_measured`` is (S, J) with S = K * steps_per_target // sample_every: row r is the joint position after
        physics step (r + 1) * sample_every. Gradients are float32-accurate (about 1e-3 relative on a loss
        that changes; see the tests for the measured agreement with finite differences).
        """
        wrt = tuple(wrt)
        for name in wrt:
            if name not in self.GRADIENT_PARAMS:
                reason = NOT_DIFFERENTIABLE.get(name, "it is not a parameter this rollout differentiates; use finite differences")
                raise VlatwinError(f"no tape gradient for {name}: {reason}")
        args = self._check_inputs(q0, qd0, targets, steps_per_target, sample_every, q_measured)
        self._apply_params(params)
        wp, model = self._wp, self.model
        tape = wp.Tape()
        loss = self._forward(*args, tape=tape)
        grads_of = (model.joint_target_ke, model.joint_target_kd, model.body_mass, model.body_inv_mass,
                    model.body_inertia, model.body_inv_inertia)
        for arr in grads_of:
            arr.grad.zero_()
        tape.backward(loss)
        out: dict[str, np.ndarray] = {}
        if "drive_damping" in wrt or "joint_damping" in wrt:
            g_kd = model.joint_target_kd.grad.numpy()[self._cmd_qd_idx].astype(np.float64)
            # passive damping and the drive's kd are one coefficient here (velocity targets are 0)
            out.update({name: g_kd.copy() for name in ("drive_damping", "joint_damping") if name in wrt})
        mass, inertia, inv_mass, inv_inertia = self._applied
        if "body_mass" in wrt or "joint_armature" in wrt:
            g_im = model.body_inv_mass.grad.numpy().astype(np.float64)
            g_i = model.body_inertia.grad.numpy().astype(np.float64).reshape(-1, 3, 3)
            g_ii = model.body_inv_inertia.grad.numpy().astype(np.float64).reshape(-1, 3, 3)
            safe_m = np.where(mass > 0, mass, 1.0)
            # d(1/m) = -dm / m^2; d(inv(I)) = -inv(I) dI inv(I)
            def through_inertia(b: int, d_inertia: np.ndarray) -> float:
                return float(np.sum(g_i[b] * d_inertia) - np.sum(g_ii[b] * (inv_inertia[b] @ d_inertia @ inv_inertia[b])))
        if "body_mass" in wrt:
            g_m = model.body_mass.grad.numpy().astype(np.float64)
            m0 = np.where(self._mass0 > 0, self._mass0, 1.0)
            grad = np.zeros(len(mass))
            for b in range(len(mass)):
                if mass[b] > 0 and self._mass0[b] > 0:  # I = I0 * m / m0 (constant density)
                    grad[b] = g_m[b] - g_im[b] / safe_m[b] ** 2 + through_inertia(b, self._inertia0[b] / m0[b])
            out["body_mass"] = grad
        if "joint_armature" in wrt:
            grad = np.zeros(len(self.joint_names))
            for i, b in enumerate(self._cmd_child):
                if self._cmd_revolute[i]:  # armature a adds a * axis axis^T to the child's inertia
                    grad[i] = through_inertia(b, np.outer(self._cmd_axis_b[i], self._cmd_axis_b[i]))
                else:  # prismatic: a adds to the child's mass
                    grad[i] = model.body_mass.grad.numpy()[b] - g_im[b] / safe_m[b] ** 2
            out["joint_armature"] = grad
        return float(loss.numpy()[0]), out


def compare_with_finite_differences(
    rollout: TapeRollout,
    params: dict[str, np.ndarray],
    q0,
    qd0,
    targets,
    steps_per_target: int,
    sample_every: int,
    q_measured,
    wrt: dict[str, Sequence[int]] | Sequence[str],
    *,
    rel_step: float = 1e-2,
) -> dict[str, tuple[np.ndarray, np.ndarray, float, float]]:
    """Tape gradient vs central finite differences of :meth:`TapeRollout.loss` for the same parameters.

    ``wrt``: parameter names (every component) or ``{name: component indices}``. Components not listed get
    NaN in both arrays. The finite-difference step is ``rel_step * |value|`` (absolute ``rel_step`` for a zero
    value); 1e-2 keeps the float32 rollout's noise (about 1e-7 relative on the loss) well below the signal. A
    component whose value is within one step of 0 gets a forward difference (parameters must stay >= 0).

    Returns ``{name: (tape, fd, seconds_tape, seconds_fd)}`` where ``seconds_tape`` is the time of one
    :meth:`TapeRollout.loss_and_gradient` call (shared by every name: it is one rollout plus one backward pass)
    and ``seconds_fd`` the time of the 2 * n forward rollouts for that name's n components.
    """
    if not isinstance(wrt, dict):
        wrt = {name: None for name in wrt}
    base = _full_params(rollout, params)
    start = time.perf_counter()
    _, tape = rollout.loss_and_gradient(base, q0, qd0, targets, steps_per_target, sample_every, q_measured, tuple(wrt))
    seconds_tape = time.perf_counter() - start
    out = {}
    for name, idx in wrt.items():
        value = base[name]
        idx = range(len(value)) if idx is None else idx
        fd = np.full(len(value), np.nan)
        tape_sel = np.full(len(value), np.nan)
        start = time.perf_counter()
        for i in idx:
            h = rel_step * abs(value[i]) if value[i] != 0 else rel_step
            offsets = (h, -h) if value[i] - h >= 0 else (h, 0.0)
            losses = []
            for offset in offsets:
                p = {k: v.copy() for k, v in base.items()}
                p[name][i] = value[i] + offset
                losses.append(rollout.loss(p, q0, qd0, targets, steps_per_target, sample_every, q_measured))
            fd[i] = (losses[0] - losses[1]) / (offsets[0] - offsets[1])
            tape_sel[i] = tape[name][i]
        out[name] = (tape_sel, fd, seconds_tape, time.perf_counter() - start)
    return out


def _full_params(rollout: TapeRollout, params: dict) -> dict[str, np.ndarray]:
    """``params`` with the stage's authored drive gains and masses filled in (float64 copies)."""
    full = {
        "drive_stiffness": rollout._ke0[rollout._cmd_qd_idx].astype(np.float64),
        "drive_damping": rollout._kd0[rollout._cmd_qd_idx].astype(np.float64),
        "body_mass": rollout._mass0.copy(),
        "joint_damping": np.zeros(len(rollout.joint_names)),
        "joint_armature": np.zeros(len(rollout.joint_names)),
    }
    full.update({k: np.array(v, dtype=np.float64) for k, v in params.items() if v is not None})
    return full


class _maybe:
    """``with tape`` when a tape is given, else nothing."""

    def __init__(self, tape):
        self._tape = tape

    def __enter__(self):
        if self._tape is not None:
            self._tape.__enter__()

    def __exit__(self, *exc):
        if self._tape is not None:
            self._tape.__exit__(*exc)


def _rotate_xyzw(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate a vector by an (x, y, z, w) quaternion."""
    u, w = q[:3], q[3]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)
