"""The embedded default backend: Newton (Warp) with the XPBD solver (or VBD for tight tracking).

CPU everywhere, CUDA where Warp sees a GPU. The step loop is one Warp graph per physics step
(collide + solver step + state copy-back), captured once after load, because eager Python launches
cost 20-100x on CPU. Joint targets are written into the captured control buffer in place.

Engine facts this relies on (measured, see the project's newton-cpu notes): Newton 1.8's USD importer
honours UsdPhysics drives (per-degree gains), limits and ``state:*:physics:position`` when the PhysX
schema resolver is active; XPBD is the CPU solver that keeps USD drive gains stable; the CPU
collision path has no SDF, so non-convex triangle meshes must be convex-hulled.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vlatwin._deps import require
from vlatwin.errors import StageError, VlatwinError
from vlatwin.sim import newton_assets
from vlatwin.sim.base import SimBackend, check_joint_array
from vlatwin.sim.types import Capabilities, JointCommand, SimModelInfo, SimParams, SimSnapshot, SimState
from vlatwin.utils.transforms import quat_wxyz_to_matrix

logger = logging.getLogger(__name__)

DEFAULT_PHYSICS_DT = 1.0 / 600.0
#: A body moving faster than this [m/s] after a step is treated as a blown-up simulation.
MAX_SANE_SPEED = 100.0
#: Steps between checks of the contact buffer's fill level (one 4-byte read each).
CONTACT_CHECK_STEPS = 16
#: Joint speed [rad/s | m/s] over which Coulomb friction ramps from 0 to its full value (a smooth sign(),
#: so a joint at rest is not pushed back and forth by a discontinuous force). Widened per joint where an
#: explicit force this steep would reverse the joint's motion within one step (light distal links).
FRICTION_VELOCITY = 0.01


class SimulationDivergedError(VlatwinError):
    """The simulation produced NaN or absurd velocities."""


def _import_engine():
    """Import warp + newton once, with the install hint when missing."""
    wp = require("warp", extra="newton")
    # Warp prints its banner and every module load to stdout; keep CLI output clean unless verbose.
    # (Warp's log levels use the logging module's numbers.)
    wp.config.log_level = logging.INFO if logging.getLogger("vlatwin").isEnabledFor(logging.INFO) else logging.WARNING
    newton = require("newton", extra="newton")
    return wp, newton


class SimBackendNewton(SimBackend):
    """Newton/XPBD implementation of :class:`SimBackend`.

    Args:
        device: Warp device (``cpu``, ``cuda:0``); None picks CUDA when available, else CPU.
        physics_dt: step [s]; None reads ``physxScene:timeStepsPerSecond`` from the stage, else 1/600.
        solver_iterations: XPBD iterations per step.
        use_graph: capture the step as a Warp graph (disable only to debug).
        mesh_collision: what to do with a triangle-mesh collider that has no convex approximation:
            ``convex_hull`` (default; replaced by its hull in memory, with a warning) or ``error``.
        reset_joint_noise: half-width [rad | m] of uniform noise added to the initial joint positions
            at each seeded :meth:`reset` (clipped to the limits).
        contact_capacity: initial rigid-contact slots (None: 8 per colliding moving shape); doubled
            automatically whenever a step fills them.
        solver: ``xpbd`` (fast, differentiable) or ``vbd`` (tight drive tracking, no gradients).
        measure_joint_efforts: report ``SimState.joint_effort`` as the wrench each joint transmitted in the
            last step (XPBD's ``body_parent_f`` observable; about 20 % slower stepping on CPU). Off: the
            commanded drive effort (PD law + feed-forward, as applied: XPBD does not clip it to the effort limits).
    """

    name = "newton"

    def __init__(
        self,
        *,
        device: str | None = None,
        physics_dt: float | None = None,
        solver_iterations: int = 4,
        use_graph: bool = True,
        mesh_collision: str = "convex_hull",
        reset_joint_noise: float = 0.0,
        contact_capacity: int | None = None,
        solver: str = "xpbd",
        measure_joint_efforts: bool = False,
    ):
        if solver not in ("xpbd", "vbd"):
            raise VlatwinError(f"unknown Newton solver {solver!r}; choose xpbd or vbd")
        if mesh_collision not in ("convex_hull", "error"):
            raise ValueError("mesh_collision must be 'convex_hull' or 'error'")
        self._wp, self._newton = _import_engine()
        if device is not None:
            try:
                self._wp.get_device(device)
            except (ValueError, RuntimeError):
                known = ", ".join(str(d) for d in self._wp.get_devices())
                raise VlatwinError(f"Warp device {device!r} is not available here; available: {known}") from None
        self._device = device
        self._physics_dt = physics_dt
        self._iterations = int(solver_iterations)
        self._use_graph = use_graph
        self._mesh_collision = mesh_collision
        self._reset_joint_noise = float(reset_joint_noise)
        self._requested_contact_capacity = contact_capacity
        self._solver_name = solver
        self._measure_efforts = bool(measure_joint_efforts)
        self._info: SimModelInfo | None = None
        self._graph = None
        self._host_views: dict[int, tuple] = {}
        self._host_views_ok = False
        self.model = None
        """The Newton ``Model`` (public so sensors can render the same scene)."""
        self.state = None
        """The current Newton ``State``."""
        self.control = None

    # ------------------------------------------------------------------ load
    def load(self, stage_path: str | Path) -> SimModelInfo:
        from vlatwin.usd.check import open_stage

        wp, newton = self._wp, self._newton
        stage = open_stage(stage_path)
        physics_dt = self._physics_dt or _authored_dt(stage) or DEFAULT_PHYSICS_DT
        builder = build_stage_model(stage, stage_path, self._mesh_collision, wp, newton)

        if self._solver_name == "vbd":
            builder.color()  # VBD solves bodies in independent colour groups
        self.model = builder.finalize(device=self._device)
        self._host_views = {}
        self._host_views_ok = self.model.device.is_cpu  # CPU arrays share memory with their numpy views
        if clamped := newton_assets.clamp_initial_joint_positions(self.model, newton):
            label, q, lo, hi = clamped[0]
            logger.warning(
                "%d joint positions start outside their limits (%s: %.4g not in [%.4g, %.4g] ...); they start at the "
                "nearest limit", len(clamped), label, q, lo, hi,
            )
        self.state = self.model.state()
        self._next_state = self.model.state()
        self.control = self.model.control()
        self._contact_capacity = self._requested_contact_capacity or _initial_contact_capacity(self.model, newton)
        self._make_collision_pipeline()
        if self._solver_name == "vbd":
            self._solver = newton.solvers.SolverVBD(self.model, iterations=self._iterations)
        else:
            self._solver = newton.solvers.SolverXPBD(self.model, iterations=self._iterations)
        self._dt = float(physics_dt)

        joint_type = self.model.joint_type.numpy()
        one_dof = {int(newton.JointType.REVOLUTE), int(newton.JointType.PRISMATIC)}
        self._cmd_joints = np.array([j for j, t in enumerate(joint_type) if int(t) in one_dof], dtype=np.int64)
        q_start = self.model.joint_q_start.numpy()
        qd_start = self.model.joint_qd_start.numpy()
        self._cmd_q_idx = q_start[self._cmd_joints]
        self._cmd_qd_idx = qd_start[self._cmd_joints]
        self._free_joint_of_body = {
            int(child): int(j)
            for j, (t, child) in enumerate(zip(joint_type, self.model.joint_child.numpy()))
            if int(t) == int(newton.JointType.FREE)
        }
        labels = list(self.model.joint_label)
        lower = self.model.joint_limit_lower.numpy()
        upper = self.model.joint_limit_upper.numpy()

        roots = [str(p.GetPath()) for p in stage.Traverse() if p.HasAPI(_usd_physics().ArticulationRootAPI)]
        self._info = SimModelInfo(
            stage_path=str(stage_path),
            physics_dt=self._dt,
            joint_names=tuple(labels[j] for j in self._cmd_joints),
            joint_lower=lower[self._cmd_qd_idx].astype(np.float64),
            joint_upper=upper[self._cmd_qd_idx].astype(np.float64),
            body_paths=tuple(self.model.body_label),
            shape_paths=tuple(self.model.shape_label),
            shape_body=self.model.shape_body.numpy().copy(),
            articulation_root=roots[0] if roots else "",
        )

        self._setup_joint_io()
        armature = [j for j in newton_assets.armature_joints(self.model) if j not in self._armature_applied]
        if armature:
            logger.warning(
                "%d joints author armature (%s ...), which %s ignores", len(armature), armature[0], self._solver_name
            )
        # Initial state: joint coordinates from the stage (incl. state:*:physics:position), bodies by FK.
        newton.eval_fk(self.model, self.model.joint_q, self.model.joint_qd, self.state)
        self._initial = {
            "joint_q": self.model.joint_q.numpy().copy(),
            "joint_qd": self.model.joint_qd.numpy().copy(),
            "target_q": self.control.joint_target_q.numpy().copy(),
        }
        self._target_host = self._initial["target_q"].copy()
        self._graph = None
        self.reset()
        newton_assets.check_start_overlaps(
            self.model, self.state, newton, dt=self._dt, stage_path=stage_path,
            pipeline=self._pipeline, contacts=self._contacts,
        )
        if self._use_graph:
            self._capture()
        return self._info

    def _make_collision_pipeline(self) -> None:
        # All shape pairs are known after finalize (nothing is added later), so the explicit broad phase
        # (pairs precomputed once) is exact and the fastest on CPU (measured vs nxn and sap). The contact
        # capacity starts small because XPBD's contact kernels run over every slot (Newton's default
        # estimate, 1815 slots for the tabletop, costs 35 % of the step) and grows when it fills up.
        self._pipeline = self._newton.CollisionPipeline(
            self.model, broad_phase="explicit", rigid_contact_max=self._contact_capacity
        )
        self._contacts = self._pipeline.contacts()

    def penetrations(self, min_depth: float = 0.0) -> list[tuple[str, str, float]]:
        """Body pairs whose collision surfaces overlap by more than ``min_depth`` [m] after the last step:
        ``(body_a, body_b, depth)`` with prim paths (``"world"`` for static geometry such as the table),
        deepest first. Read from the step's contact buffer with Newton's own signed separation
        (``dot(n, p1 - p0) - (margin0 + margin1)``, negative = overlap)."""
        self._require_loaded()
        c = self._contacts
        n = int(c.rigid_contact_count.numpy()[0])
        if n == 0:
            return []
        n = min(n, self._contact_capacity)
        shape_body = self.model.shape_body.numpy()
        s0, s1 = c.rigid_contact_shape0.numpy()[:n], c.rigid_contact_shape1.numpy()[:n]
        body_q = self.state.body_q.numpy().astype(np.float64)
        p0, p1 = c.rigid_contact_point0.numpy()[:n].astype(np.float64), c.rigid_contact_point1.numpy()[:n].astype(np.float64)
        normal = c.rigid_contact_normal.numpy()[:n].astype(np.float64)
        m0, m1 = c.rigid_contact_margin0.numpy()[:n], c.rigid_contact_margin1.numpy()[:n]
        paths = self._info.body_paths
        out: dict[tuple[str, str], float] = {}
        for k in range(n):
            a, b = int(s0[k]), int(s1[k])
            ba = int(shape_body[a]) if a >= 0 else -1
            bb = int(shape_body[b]) if b >= 0 else -1
            if a == b or ba == bb:
                continue
            wa = _transform_point(body_q[ba], p0[k]) if ba >= 0 else p0[k]
            wb = _transform_point(body_q[bb], p1[k]) if bb >= 0 else p1[k]
            depth = -(float(normal[k] @ (wb - wa)) - float(m0[k] + m1[k]))
            if depth <= min_depth:
                continue
            key = tuple(sorted((paths[ba] if 0 <= ba < len(paths) else "world", paths[bb] if 0 <= bb < len(paths) else "world")))
            out[key] = max(out.get(key, 0.0), depth)
        return sorted(((a, b, d) for (a, b), d in out.items()), key=lambda x: -x[2])

    def _host(self, array) -> np.ndarray:
        """``array`` as numpy for the step loop: on CPU a cached zero-copy view (``.numpy()`` costs ~4 us a
        call, several per ``advance``), elsewhere a fresh copy."""
        if not self._host_views_ok:
            return array.numpy()
        hit = self._host_views.get(id(array))
        if hit is None or hit[0] is not array:
            hit = self._host_views[id(array)] = (array, array.numpy())
        return hit[1]

    def _write(self, array, values) -> None:
        """``array.assign(values)`` (same float conversion), in place through the CPU view (~12x faster)."""
        if self._host_views_ok:
            self._host(array)[...] = values
        else:
            array.assign(values)

    def _contacts_full(self) -> bool:
        """Contacts beyond capacity are dropped; a full buffer means some may have been."""
        return int(self._host(self._contacts.rigid_contact_count)[0]) >= self._contact_capacity

    def _grow_contacts(self) -> None:
        self._contact_capacity *= 2
        logger.info("contact buffer full: growing it to %d slots", self._contact_capacity)
        self._make_collision_pipeline()
        if self._graph is not None:
            self._capture()

    def _run_steps(self, count: int) -> None:
        if self._graph is not None:
            launch, graph = self._wp.capture_launch, self._graph
            for _ in range(count):
                launch(graph)
        else:
            for _ in range(count):
                self._simulate_one()

    def _simulate_one(self) -> None:
        self.state.clear_forces()
        if self._passive_active:
            # Passive damping/friction from the joint velocities at the start of the step (XPBD ignores them).
            self._newton.eval_ik(self.model, self.state, self._ik_q, self._ik_qd)
            self._wp.launch(
                self._passive_kernel,
                dim=len(self._cmd_qd_idx),
                inputs=[self._ik_qd, self._dof_index, self._friction_dev, self._friction_v0_dev, self._effort_dev],
                outputs=[self.control.joint_f],
                device=self.model.device,
            )
        self._pipeline.collide(self.state, self._contacts)
        self._solver.step(
            self.state, self._next_state, self.control, self._contacts, self._dt, observables=self._observables
        )
        # Copy back instead of swapping so one captured graph serves every step (fixed buffers).
        self._wp.copy(self.state.body_q, self._next_state.body_q)
        self._wp.copy(self.state.body_qd, self._next_state.body_qd)

    def _capture(self) -> None:
        wp = self._wp
        # Warm the kernels outside the capture (first launches compile), then restore the state.
        saved_q, saved_qd = self.state.body_q.numpy().copy(), self.state.body_qd.numpy().copy()
        self._simulate_one()
        self.state.body_q.assign(saved_q)
        self.state.body_qd.assign(saved_qd)
        with wp.ScopedCapture(device=self.model.device) as capture:
            self._simulate_one()
        self._graph = capture.graph

    def _setup_joint_io(self) -> None:
        """Buffers for reading joint state and for the joint-space parameters the seam exposes."""
        wp, model = self._wp, self.model
        device = model.device
        self._ik_q = wp.zeros(model.joint_coord_count, dtype=float, device=device)
        self._ik_qd = wp.zeros(model.joint_dof_count, dtype=float, device=device)
        n = len(self._cmd_qd_idx)
        self._dof_index = wp.array(self._cmd_qd_idx.astype(np.int32), dtype=wp.int32, device=device)
        self._friction_dev = wp.zeros(n, dtype=float, device=device)
        self._friction_v0_dev = wp.full(n, FRICTION_VELOCITY, dtype=float, device=device)
        self._effort_dev = wp.zeros(n, dtype=float, device=device)
        self._passive_kernel = None
        self._passive_active = False
        self._target_qd_host = np.zeros(model.joint_dof_count, dtype=np.float32)
        self._effort_host = np.zeros(n, dtype=np.float64)
        self._qd_scale = np.ones(n)
        # Authored inertial properties: armature is added on top of them (see set_params).
        self._mass0 = model.body_mass.numpy().astype(np.float64).copy()
        self._body_com = model.body_com.numpy().astype(np.float64).copy()
        self._inertia0 = model.body_inertia.numpy().astype(np.float64).copy()
        self._armature = np.zeros(n)
        self._joint_damping = np.zeros(n)
        self._joint_friction = np.zeros(n)
        # Armature acts about the joint axis of the child body: that axis in the child's body frame.
        joint_X_c = model.joint_X_c.numpy()
        axes = model.joint_axis.numpy()
        self._cmd_child = model.joint_child.numpy()[self._cmd_joints]
        self._cmd_axis_b = np.zeros((n, 3))
        for i, (j, dof) in enumerate(zip(self._cmd_joints, self._cmd_qd_idx)):
            x, y, z, w = joint_X_c[j][3:7]
            self._cmd_axis_b[i] = quat_wxyz_to_matrix([w, x, y, z]) @ axes[dof]
        joint_type = model.joint_type.numpy()[self._cmd_joints]
        self._cmd_revolute = joint_type == int(self._newton.JointType.REVOLUTE)
        self._drive_kd0 = model.joint_target_kd.numpy()[self._cmd_qd_idx].astype(np.float64)
        self._cmd_X_c = joint_X_c[self._cmd_joints].astype(np.float64)
        # The measured joint effort is the axial part of the wrench each joint transmits to its child
        # (XPBD's BODY_PARENT_F observable); solvers without it fall back to the drive law.
        self._observables = None
        kind = "body_parent_f"
        if self._measure_efforts and kind in getattr(self._solver, "SUPPORTED_OBSERVABLES", ()):
            self._observables = self._solver.observables({kind})
        self._apply_authored_joint_dynamics()

    def _apply_authored_joint_dynamics(self) -> None:
        """Start from the passive damping, Coulomb friction and armature the stage authors on the commanded joints.

        Newton's importer puts them (per radian) into ``Model.joint_damping`` / ``joint_friction`` /
        ``joint_armature`` (from ``newton:damping``, ``newton:friction``, ``physxJoint:armature``; see
        ``vlatwin.usd.robot.author_dynamics``). XPBD and VBD read none of those arrays, so they are applied
        through :meth:`set_params` like fitted values (armature first, so the friction band of
        ``_set_passive`` sees the final inertia) and nothing counts twice. Armature is applied only where
        the joint's articulation is welded to the world: on a floating base the child-inertia stand-in also
        resists the whole robot turning (see ``newton_assets.armature_joints``), so there it stays ignored.
        All zero (nothing authored): nothing is written, the model is untouched.
        """
        model, newton = self.model, self._newton
        labels = [model.joint_label[j] for j in self._cmd_joints]
        values = {}
        for name in ("damping", "friction", "armature"):
            array = getattr(model, f"joint_{name}", None)
            value = np.zeros(len(labels)) if array is None else array.numpy()[self._cmd_qd_idx].astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(value) | (value < 0))
            if len(bad):
                raise StageError(
                    f"{self._info.stage_path}: {labels[bad[0]]}: authored joint {name} must be finite and >= 0, "
                    f"got {value[bad[0]]:g}"
                )
            values[name] = value
        fixed = newton_assets.immovable_bodies(model, newton)
        parent, child = model.joint_parent.numpy(), model.joint_child.numpy()
        joint_of_child = {int(c): j for j, c in enumerate(child)}
        for i, j in enumerate(self._cmd_joints):
            body = int(parent[j])
            welded = body == -1  # jointed straight to the world
            for _ in range(model.joint_count + 1):  # walk up to the base (the tree has no loops)
                welded = welded or body in fixed
                if welded or body == -1 or body not in joint_of_child:
                    break
                body = int(parent[joint_of_child[body]])
            if not welded:
                values["armature"][i] = 0.0
        self._armature_applied = {labels[i] for i in np.flatnonzero(values["armature"] > 0)}
        if np.any(values["armature"] > 0):
            self.set_params(SimParams(joint_armature=values["armature"]))
        passive = {f"joint_{k}": v for k, v in values.items() if k != "armature" and np.any(v > 0)}
        if passive:
            self.set_params(SimParams(**passive))

    # ------------------------------------------------------------ stepping
    def reset(self, *, seed: int | None = None) -> SimState:
        self._require_loaded()
        newton = self._newton
        joint_q = self._initial["joint_q"].copy()
        if seed is not None and self._reset_joint_noise > 0.0:
            rng = np.random.default_rng(seed)
            noise = rng.uniform(-self._reset_joint_noise, self._reset_joint_noise, size=len(self._cmd_q_idx))
            joint_q[self._cmd_q_idx] = np.clip(
                joint_q[self._cmd_q_idx] + noise, self._info.joint_lower, self._info.joint_upper
            )
        wp = self._wp
        q = wp.array(joint_q, dtype=float, device=self.model.device)
        qd = wp.array(self._initial["joint_qd"], dtype=float, device=self.model.device)
        newton.eval_fk(self.model, q, qd, self.state)
        self._next_state.body_q.assign(self.state.body_q)
        self._next_state.body_qd.assign(self.state.body_qd)
        self._target_host[:] = self._initial["target_q"]
        if seed is not None and self._reset_joint_noise > 0.0:
            self._target_host[self._cmd_q_idx] = joint_q[self._cmd_q_idx]  # hold the noisy start, not pull back
        self.control.joint_target_q.assign(self._target_host)
        self._target_qd_host[:] = 0.0
        self._write_target_qd()
        self._effort_host[:] = 0.0
        self._write_efforts()
        self._time = 0.0
        self._steps = 0
        if self._observables is not None:
            self._observables.body_parent_f.zero_()  # no wrench from the previous episode's last step
        return self.get_state()

    def advance(self, num_steps: int = 1) -> None:
        self._require_loaded()
        if int(num_steps) != num_steps or num_steps < 1:
            raise VlatwinError(f"advance: num_steps must be a whole number >= 1, got {num_steps}")
        done = 0
        body_q, body_qd = self.state.body_q, self.state.body_qd
        while done < num_steps:
            # Steps run in short chunks; a chunk that filled the contact buffer (contacts were dropped)
            # is rolled back and rerun with a bigger buffer, so results never depend on the capacity.
            chunk = min(CONTACT_CHECK_STEPS, num_steps - done)
            saved = (self._host(body_q).copy(), self._host(body_qd).copy())
            self._run_steps(chunk)
            while self._contacts_full():
                self.state.body_q.assign(saved[0])
                self.state.body_qd.assign(saved[1])
                self._grow_contacts()
                self._run_steps(chunk)
            done += chunk
        self._steps += num_steps
        self._time = self._steps * self._dt
        self._check_finite()

    def set_command(self, command: JointCommand) -> None:
        self._require_loaded()
        n = len(self._cmd_q_idx)
        if command.target_q is not None:
            self.set_joint_targets(command.target_q)
        if command.target_qd is not None:
            target_qd = check_joint_array(command.target_qd, n, "JointCommand.target_qd")
            keep = np.isnan(target_qd)
            self._target_qd_host[self._cmd_qd_idx[~keep]] = target_qd[~keep]
            self._write_target_qd()
        if command.effort is not None:
            effort = check_joint_array(command.effort, n, "JointCommand.effort")
            keep = np.isnan(effort)
            self._effort_host[~keep] = effort[~keep]
            self._write_efforts()

    def _write_efforts(self) -> None:
        if self._passive_active:
            self._effort_dev.assign(self._effort_host.astype(np.float32))
        else:
            joint_f = np.zeros(self.model.joint_dof_count, dtype=np.float32)
            joint_f[self._cmd_qd_idx] = self._effort_host
            self.control.joint_f.assign(joint_f)

    def set_joint_targets(self, target_q) -> None:
        """Write drive targets (J,) [rad | m]; NaN keeps a joint's current target."""
        target_q = check_joint_array(target_q, len(self._cmd_q_idx), "JointCommand.target_q")
        keep = np.isnan(target_q)
        clipped = np.clip(target_q, self._info.joint_lower, self._info.joint_upper)
        self._target_host[self._cmd_q_idx[~keep]] = clipped[~keep]
        self._write(self.control.joint_target_q, self._target_host)

    def _check_finite(self) -> None:
        body_qd = self._host(self.state.body_qd)
        # Fast path (every advance): all finite (a finite sum) and every linear speed surely below the limit
        # (|v| <= sqrt(3) max|v_i|); anything else takes the exact check below.
        if np.isfinite(body_qd.sum()) and np.abs(body_qd[:, :3]).max(initial=0.0) < MAX_SANE_SPEED / 1.75:
            return
        speed = np.linalg.norm(body_qd[:, :3], axis=1) if len(body_qd) else np.zeros(0)
        if not np.all(np.isfinite(body_qd)) or np.any(speed > MAX_SANE_SPEED):
            worst = int(np.nanargmax(np.where(np.isfinite(speed), speed, np.inf))) if len(speed) else 0
            raise SimulationDivergedError(
                f"simulation diverged at step {self._steps} (t={self._time:.4f} s): body "
                f"{self._info.body_paths[worst]} moves at {speed[worst]:.3g} m/s; check masses, drive gains "
                f"and overlapping colliders, or lower physics dt"
            )

    # -------------------------------------------------------------- access
    def get_state(self) -> SimState:
        self._require_loaded()
        self._newton.eval_ik(self.model, self.state, self._ik_q, self._ik_qd)
        body_q = self.state.body_q.numpy()
        body_qd = self.state.body_qd.numpy()
        # Newton stores (px, py, pz, qx, qy, qz, qw); the seam uses (w, x, y, z).
        pose = np.concatenate([body_q[:, :3], body_q[:, 6:7], body_q[:, 3:6]], axis=1).astype(np.float64)
        q = self._ik_q.numpy()[self._cmd_q_idx].astype(np.float64)
        qd = self._ik_qd.numpy()[self._cmd_qd_idx].astype(np.float64)
        return SimState(
            time=self._time,
            step=self._steps,
            joint_q=q,
            joint_qd=qd,
            body_pose_w=pose,
            body_vel_w=body_qd.astype(np.float64).copy(),
            joint_effort=self._measured_effort(body_q) if self._observables is not None else self._drive_effort(q, qd),
        )

    def _measured_effort(self, body_q: np.ndarray) -> np.ndarray:
        """Axial torque [N*m] (revolute) or force [N] (prismatic) each commanded joint transmitted in the last step."""
        wrench = self._observables.body_parent_f.numpy()[self._cmd_child].astype(np.float64)
        force_w, torque_w = wrench[:, :3], wrench[:, 3:]
        child_q = body_q[self._cmd_child].astype(np.float64)
        R = _quat_xyzw_to_matrices(child_q[:, 3:7])
        axis_w = np.einsum("nij,nj->ni", R, self._cmd_axis_b)
        # The wrench is referenced to the child's COM; take its moment about the joint anchor.
        lever_w = np.einsum("nij,nj->ni", R, self._body_com[self._cmd_child] - self._cmd_X_c[:, :3])
        moment = torque_w + np.cross(lever_w, force_w)
        return np.where(self._cmd_revolute, np.einsum("ni,ni->n", axis_w, moment), np.einsum("ni,ni->n", axis_w, force_w))

    def _drive_effort(self, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
        """What the actuators apply: the drive law at this state plus feed-forward.

        XPBD enforces drives as compliant constraints and reports no joint torques, so this is the
        torque a motor-current sensor would read for the commanded PD law (passive damping and friction
        are losses in the joint, not actuator output).

        Not clipped to ``joint_effort_limit``: XPBD does not enforce it, and the reading is what the drive
        applied. Measured on the Panda stage (57 kN*m/rad drives, 87 N*m limit): a 0.3 rad target step moves
        joint 4 by 0.11 rad in the first 1.7 ms step (thousands of N*m), and at rest the law reads 300+ N*m on
        joint 4 (5.5 mrad of sag). A report clipped at 87 (as before) claimed a saturation that never happened
        and hid the drive law from system identification: under ``sysid excite`` it read at the limit for 98 %
        of joint 4's samples, and the drive gains fitted from the rest came out up to 4.3 % off (now within 0.6 %).
        """
        ke = self.model.joint_target_ke.numpy()[self._cmd_qd_idx].astype(np.float64)
        kd = self._drive_kd0  # the model's kd also carries passive damping (see _write_damping)
        target_q = self._target_host[self._cmd_q_idx].astype(np.float64)
        target_qd = self._target_qd_host[self._cmd_qd_idx].astype(np.float64)
        return ke * (target_q - q) + kd * (target_qd - qd) + self._effort_host

    def set_joint_positions(self, q, *, hold: bool = True) -> None:
        self._require_loaded()
        q = check_joint_array(q, len(self._cmd_q_idx), "joint positions", allow_nan=False)
        self._teleport_joints(q, None, hold=hold)

    def set_joint_state(self, q, qd, *, hold: bool = True, keep_constraint_error: bool = False) -> None:
        self._require_loaded()
        n = len(self._cmd_q_idx)
        q = check_joint_array(q, n, "joint positions", allow_nan=False)
        qd = check_joint_array(qd, n, "joint velocities", allow_nan=False)
        self._teleport_joints(q, qd, hold=hold, keep_constraint_error=keep_constraint_error)
        if hold:
            self._target_qd_host[self._cmd_qd_idx] = qd
            self._write_target_qd()

    def _teleport_joints(self, q: np.ndarray, qd: np.ndarray | None, *, hold: bool, keep_constraint_error: bool = False) -> None:
        q = np.clip(q, self._info.joint_lower, self._info.joint_upper)
        wp, newton = self._wp, self._newton
        # Articulated bodies follow the new coordinates by FK; free bodies keep their current poses.
        newton.eval_ik(self.model, self.state, self._ik_q, self._ik_qd)
        full_q = self._ik_q.numpy().copy()
        full_q[self._cmd_q_idx] = q
        if qd is None:
            full_qd = np.zeros(self.model.joint_dof_count, dtype=np.float32)
        else:
            full_qd = self._ik_qd.numpy().copy()
            full_qd[self._cmd_qd_idx] = qd
        if keep_constraint_error:
            # XPBD keeps maximal coordinates: under load each body sits a little off where FK of the joint
            # angles puts it (joints stretch). Writing FK poses removes that stretch, and the solver rings
            # for seconds putting it back, so a re-sync that only corrects the joint angles must keep each
            # body's offset from its FK pose (pose: T_new = FK(q_new) * FK(q_now)^-1 * T_now, in the body frame).
            body_q_now = self.state.body_q.numpy().astype(np.float64)
            body_qd_now = self.state.body_qd.numpy().astype(np.float64)
            newton.eval_fk(self.model, self._ik_q, self._ik_qd, self.state)
            fk_now_q = self.state.body_q.numpy().astype(np.float64)
            fk_now_qd = self.state.body_qd.numpy().astype(np.float64)
        newton.eval_fk(
            self.model,
            wp.array(full_q, dtype=float, device=self.model.device),
            wp.array(full_qd, dtype=float, device=self.model.device),
            self.state,
        )
        if keep_constraint_error:
            fk_new_q = self.state.body_q.numpy().astype(np.float64)
            fk_new_qd = self.state.body_qd.numpy().astype(np.float64)
            body_q = _compose_offsets(fk_new_q, fk_now_q, body_q_now)
            body_qd = fk_new_qd + (body_qd_now - fk_now_qd)
            self.state.body_q.assign(wp.array(body_q.astype(np.float32), dtype=wp.transform, device=self.model.device))
            self.state.body_qd.assign(wp.array(body_qd.astype(np.float32), dtype=wp.spatial_vector, device=self.model.device))
        self._next_state.body_q.assign(self.state.body_q)
        self._next_state.body_qd.assign(self.state.body_qd)
        if hold:
            self.set_joint_targets(q)

    # ---------------------------------------------------------- parameters
    def get_params(self) -> SimParams:
        self._require_loaded()
        model = self.model
        return SimParams(
            joint_damping=self._joint_damping.copy(),
            joint_friction=self._joint_friction.copy(),
            joint_armature=self._armature.copy(),
            drive_stiffness=model.joint_target_ke.numpy()[self._cmd_qd_idx].astype(np.float64),
            drive_damping=self._drive_kd0.copy(),
            body_mass=self._mass0.copy(),
            body_inertia=self._inertia0.copy(),
        )

    def set_params(self, params: SimParams) -> None:
        """Apply parameters to the running model (the captured step graph keeps working: arrays change in place).

        How XPBD gets each one: drive gains natively; mass and inertia through the solver's inertial
        refresh (``notify_model_changed``); passive damping and Coulomb friction as a joint force computed
        each step from the joint velocity (XPBD ignores ``Model.joint_damping``/``joint_friction``);
        armature as extra inertia of the child body about the joint axis (prismatic: extra mass), which
        is exact for the last joint of a chain and an approximation for the others.
        """
        self._require_loaded()
        n, b = len(self._cmd_qd_idx), self.model.body_count
        model = self.model

        def joint_field(name):
            value = getattr(params, name)
            if value is None:
                return None
            value = check_joint_array(value, n, f"SimParams.{name}", allow_nan=False)
            if np.any(value < 0):
                raise VlatwinError(f"SimParams.{name}: values must be >= 0, got {value.tolist()}")
            return value

        damping, friction, armature = (joint_field(f) for f in ("joint_damping", "joint_friction", "joint_armature"))
        ke, kd = joint_field("drive_stiffness"), joint_field("drive_damping")
        mass = None if params.body_mass is None else np.asarray(params.body_mass, dtype=np.float64)
        inertia = None if params.body_inertia is None else np.asarray(params.body_inertia, dtype=np.float64)
        if mass is not None and (mass.shape != (b,) or not np.all(np.isfinite(mass)) or np.any(mass < 0)):
            raise VlatwinError(f"SimParams.body_mass: expected {b} finite masses >= 0 [kg], got shape {mass.shape}")
        if inertia is not None and (inertia.shape != (b, 3, 3) or not np.all(np.isfinite(inertia))):
            raise VlatwinError(f"SimParams.body_inertia: expected ({b}, 3, 3) finite inertia tensors, got shape {inertia.shape}")
        if ke is not None:
            full = model.joint_target_ke.numpy().copy()
            full[self._cmd_qd_idx] = ke
            model.joint_target_ke.assign(full)
        if kd is not None:
            self._drive_kd0 = kd
        if damping is not None:
            self._joint_damping = damping
        if damping is not None or kd is not None:
            self._write_damping()
        # Inertia before friction: the friction band (``_set_passive``) depends on the inertia about each joint,
        # so it must see this call's masses and armature, not the previous call's. Otherwise one set of
        # parameters gave different trajectories depending on what was set before (measured on the Panda with
        # armature 0.03 and friction 0.3 hidden: a fit's rollouts at the true values missed the robot by a
        # reduced chi^2 of 26 and 96 on joints 1 and 3, and the fitted friction came out 1-67 % low).
        inertial = mass is not None or inertia is not None or armature is not None
        if inertial:
            if mass is not None:
                self._mass0 = mass.copy()
            if inertia is not None:
                self._inertia0 = inertia.copy()
            if armature is not None:
                self._armature = armature
            self._write_inertia()
        if friction is not None:
            self._joint_friction = friction
        if friction is not None or (inertial and self._passive_active):
            self._set_passive(bool(np.any(self._joint_friction > 0)))

    def _write_damping(self) -> None:
        """Passive damping c joins the drive's damping term, which XPBD integrates implicitly (stable for any c):
        kd (tqd - qd) - c qd = (kd + c) (kd tqd / (kd + c) - qd), so the velocity target is rescaled to match."""
        kd_total = self._drive_kd0 + self._joint_damping
        full = self.model.joint_target_kd.numpy().copy()
        full[self._cmd_qd_idx] = kd_total
        self.model.joint_target_kd.assign(full)
        self._qd_scale = np.where(kd_total > 0, self._drive_kd0 / np.where(kd_total > 0, kd_total, 1.0), 1.0)
        self._write_target_qd()

    def _write_target_qd(self) -> None:
        scaled = self._target_qd_host.copy()
        scaled[self._cmd_qd_idx] *= self._qd_scale
        self.control.joint_target_qd.assign(scaled)

    def _set_passive(self, active: bool) -> None:
        self._friction_dev.assign(self._joint_friction.astype(np.float32))
        # Widest band needed so friction alone cannot reverse the child body's spin within one step.
        inertia = self.model.body_inertia.numpy().astype(np.float64)[self._cmd_child]
        mass = self.model.body_mass.numpy().astype(np.float64)[self._cmd_child]
        effective = np.where(
            self._cmd_revolute, np.einsum("ni,nij,nj->n", self._cmd_axis_b, inertia, self._cmd_axis_b), mass
        )
        v0 = np.maximum(FRICTION_VELOCITY, 2.0 * self._joint_friction * self._dt / np.maximum(effective, 1e-9))
        self._friction_v0_dev.assign(v0.astype(np.float32))
        if active != self._passive_active:
            if active and self._passive_kernel is None:
                from vlatwin.sim.newton_kernels import passive_joint_forces

                self._passive_kernel = passive_joint_forces
            self._passive_active = active
            if not active:
                self._write_efforts()
            if self._graph is not None:
                self._capture()  # the step gains (or loses) the passive-force kernels
        if active:
            self._write_efforts()

    def _write_inertia(self) -> None:
        mass, inertia, inv_mass, inv_inertia = with_armature(
            self._mass0, self._inertia0, self._armature, self._cmd_child, self._cmd_revolute, self._cmd_axis_b
        )
        model = self.model
        model.body_mass.assign(mass.astype(np.float32))
        model.body_inv_mass.assign(inv_mass.astype(np.float32))
        model.body_inertia.assign(inertia.astype(np.float32))
        model.body_inv_inertia.assign(inv_inertia.astype(np.float32))
        self._solver.notify_model_changed(self._newton.ModelFlags.BODY_INERTIAL_PROPERTIES)

    # ----------------------------------------------------------- snapshots
    def snapshot(self) -> SimSnapshot:
        self._require_loaded()
        return SimSnapshot(
            backend=self.name,
            time=self._time,
            step=self._steps,
            data={
                "stage": self._info.stage_path,
                "body_q": self.state.body_q.numpy().copy(),
                "body_qd": self.state.body_qd.numpy().copy(),
                "target_q": self._target_host.copy(),
                "target_qd": self._target_qd_host.copy(),
                "effort": self._effort_host.copy(),
            },
        )

    def restore(self, snapshot: SimSnapshot) -> None:
        self._require_loaded()
        if snapshot.backend != self.name or snapshot.data.get("stage") != self._info.stage_path:
            raise VlatwinError(
                f"snapshot was taken on {snapshot.backend} with {snapshot.data.get('stage')}; this backend is "
                f"{self.name} with {self._info.stage_path}"
            )
        data = snapshot.data
        for state in (self.state, self._next_state):
            state.body_q.assign(data["body_q"])
            state.body_qd.assign(data["body_qd"])
        self._target_host[:] = data["target_q"]
        self.control.joint_target_q.assign(self._target_host)
        self._target_qd_host[:] = data["target_qd"]
        self._write_target_qd()
        self._effort_host[:] = data["effort"]
        self._write_efforts()
        self._time, self._steps = snapshot.time, snapshot.step
        if self._observables is not None:
            self._observables.body_parent_f.zero_()

    def refit_render_scene(self) -> None:
        self.model.bvh_refit_shapes(self.state)

    def set_body_pose(self, path: str, pose_w, *, zero_velocity: bool = True) -> None:
        self._require_loaded()
        body = self._info.body_index(path)
        if body not in self._free_joint_of_body:
            raise VlatwinError(f"{path} is not a free rigid body (it is part of an articulation); move it with joint targets")
        pose_w = np.asarray(pose_w, dtype=np.float64)
        if pose_w.shape != (7,) or not np.all(np.isfinite(pose_w)):
            raise ValueError("pose_w must be 7 finite numbers (x, y, z, qw, qx, qy, qz)")
        norm = np.linalg.norm(pose_w[3:])
        if norm < 1e-9:
            raise VlatwinError(f"{path}: pose quaternion (w, x, y, z) is zero; give a rotation, e.g. (1, 0, 0, 0)")
        quat = pose_w[3:] / norm
        body_q = self.state.body_q.numpy().copy()
        body_q[body] = [*pose_w[:3], quat[1], quat[2], quat[3], quat[0]]
        self.state.body_q.assign(body_q)
        self._next_state.body_q.assign(body_q)
        if zero_velocity:
            body_qd = self.state.body_qd.numpy().copy()
            body_qd[body] = 0.0
            self.state.body_qd.assign(body_qd)
            self._next_state.body_qd.assign(body_qd)

    def set_body_velocity(self, path: str, linear_w, angular_w=(0.0, 0.0, 0.0)) -> None:
        """Set a free body's velocity: linear [m/s] of its centre of mass and angular [rad/s], world frame."""
        self._require_loaded()
        body = self._info.body_index(path)
        if body not in self._free_joint_of_body:
            raise VlatwinError(f"{path} is not a free rigid body (it is part of an articulation)")
        body_qd = self.state.body_qd.numpy().copy()
        body_qd[body, :3] = np.asarray(linear_w, dtype=np.float32)
        body_qd[body, 3:] = np.asarray(angular_w, dtype=np.float32)
        self.state.body_qd.assign(body_qd)
        self._next_state.body_qd.assign(body_qd)


    @property
    def capabilities(self) -> Capabilities:
        device = str(self.model.device) if self.model is not None else str(self._wp.get_preferred_device())
        return Capabilities(
            name=self.name,
            device=device,
            differentiable=self._solver_name == "xpbd",
            cameras=True,
            lidar=True,
            graph_capture=self._use_graph,
            effort_limits=False,  # neither XPBD nor VBD enforces Model.joint_effort_limit
        )

    def close(self) -> None:
        self._graph = None
        self._host_views = {}
        self.model = self.state = self._next_state = self.control = None
        self._info = None





def build_stage_model(stage, stage_path, mesh_collision: str, wp, newton):
    """A Newton ModelBuilder holding ``stage`` as the backend imports it (joint-loop check, preflight of external
    robots, USD import with Newton's and PhysX's schema resolvers, external robots added); not finalized."""
    newton_assets.check_joint_loops(stage, stage_path)
    external = _preflight(stage, Path(stage_path), mesh_collision)
    builder = newton.ModelBuilder()
    try:
        builder.add_usd(
            stage,
            enable_self_collisions=newton_assets.SELF_COLLISIONS_WHEN_UNAUTHORED,
            schema_resolvers=[newton.usd.SchemaResolverNewton(), newton.usd.SchemaResolverPhysx()],
            ignore_paths=[path for path, _, _ in external] or None,
        )
    except Exception as exc:  # the importer raises plain exceptions for broken physics authoring
        raise StageError(f"{stage_path}: Newton could not import the stage: {exc}") from None
    for prim_path, source, file_path in external:
        _add_external_robot(builder, stage, prim_path, source, file_path, wp, newton)
    newton_assets.align_revolute_axes_with_twist(builder, wp, newton)
    return builder

def with_armature(mass0, inertia0, armature, child, revolute, axis_b):
    """Body (mass, inertia, inverse mass, inverse inertia) with each joint's armature added to its child body:
    about the joint axis for a revolute joint (``axis_b``: the axis in the child's frame), as mass for a
    prismatic one. XPBD has no joint armature, so this is how the backend (and the tape rollout) applies it."""
    mass = np.array(mass0, dtype=np.float64)
    inertia = np.array(inertia0, dtype=np.float64)
    for i, body in enumerate(child):
        if armature[i] <= 0:
            continue
        if revolute[i]:
            inertia[body] += armature[i] * np.outer(axis_b[i], axis_b[i])
        else:
            mass[body] += armature[i]
    inv_mass = np.where(mass > 0, 1.0 / np.where(mass > 0, mass, 1.0), 0.0)
    inv_inertia = np.zeros_like(inertia)
    for b in range(len(inertia)):
        if mass[b] > 0 and abs(np.linalg.det(inertia[b])) > 1e-30:
            inv_inertia[b] = np.linalg.inv(inertia[b])
    return mass, inertia, inv_mass, inv_inertia

def _quat_xyzw_to_matrices(q: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions in Newton's (x, y, z, w) order to (N, 3, 3) rotation matrices."""
    x, y, z, w = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
        ],
        axis=1,
    )


def _initial_contact_capacity(model, newton) -> int:
    """Rigid-contact slots to start with: 8 per colliding shape on a moving body (at least 128)."""
    flags = model.shape_flags.numpy()
    collide = (flags & int(newton.ShapeFlags.COLLIDE_SHAPES)) != 0
    moving = model.shape_body.numpy() >= 0
    return max(128, 8 * int(np.count_nonzero(collide & moving)))


def _usd_physics():
    from pxr import UsdPhysics

    return UsdPhysics


def _authored_dt(stage) -> float | None:
    """Physics step from ``physxScene:timeStepsPerSecond`` on the stage's physics scene, if authored."""
    UsdPhysics = _usd_physics()
    for prim in stage.Traverse():
        if prim.IsA(UsdPhysics.Scene):
            attr = prim.GetAttribute("physxScene:timeStepsPerSecond")
            if attr and attr.HasAuthoredValue() and attr.Get():
                return 1.0 / float(attr.Get())
    return None


def _preflight(stage, stage_path: Path, mesh_collision: str) -> list[tuple[str, str, Path]]:
    """Reject stages Newton would mis-simulate, fix what has a documented fallback.

    Returns the URDF/MJCF placeholder robots to import separately: (prim path, source, file).
    """
    from pxr import UsdGeom

    UsdPhysics = _usd_physics()
    has_scene = has_root = False
    joints = []
    external = []
    for prim in stage.Traverse():
        if prim.IsA(UsdPhysics.Scene):
            has_scene = True
        if prim.HasAPI(UsdPhysics.ArticulationRootAPI):
            has_root = True
        if prim.IsA(UsdPhysics.Joint) and not prim.IsA(UsdPhysics.FixedJoint):
            joints.append(str(prim.GetPath()))
        source = prim.GetAttribute("vlatwin:robotSource")
        if source and source.HasAuthoredValue():
            asset = prim.GetAttribute("vlatwin:robotAsset").Get()
            file_path = None
            if asset:
                # Relative asset paths are anchored at the stage's folder (USD's rule for layers).
                file_path = Path(asset.resolvedPath) if asset.resolvedPath else stage_path.parent / asset.path
            if file_path is None or not file_path.is_file():
                raise StageError(f"{stage_path}: {prim.GetPath()}: robot file {asset.path if asset else '?'} not found")
            external.append((str(prim.GetPath()), str(source.Get()), file_path))
        # Only meshes on moving bodies need a convex stand-in: static triangle meshes collide fine on the CPU
        # path (measured: a box rests on a static bin's inner floor), and a hull would fill a bin or shelf.
        if prim.IsA(UsdGeom.Mesh) and prim.HasAPI(UsdPhysics.CollisionAPI) and _on_rigid_body(prim, UsdPhysics):
            approx = ""
            if prim.HasAPI(UsdPhysics.MeshCollisionAPI):
                approx = UsdPhysics.MeshCollisionAPI(prim).GetApproximationAttr().Get() or ""
            if approx in ("", "none", "meshSimplification"):
                if mesh_collision == "error":
                    raise StageError(
                        f"{stage_path}: {prim.GetPath()}: triangle-mesh collider without a convex approximation; "
                        "the Newton CPU path cannot collide non-convex meshes. Set physics:approximation = "
                        "\"convexHull\" (or \"convexDecomposition\"), or load with mesh_collision='convex_hull'"
                    )
                logger.warning("%s: non-convex mesh collider replaced by its convex hull for Newton", prim.GetPath())
                # Edit the session layer only: the file on disk is untouched.
                with _session_edit(stage):
                    UsdPhysics.MeshCollisionAPI.Apply(prim).CreateApproximationAttr(UsdPhysics.Tokens.convexHull)
    if not has_scene:
        raise StageError(f"{stage_path}: no UsdPhysics.Scene prim; add one (vlatwin scene build writes /World/PhysicsScene)")
    if not has_root and not external:
        hint = f" (joints found: {joints[0]} ...)" if joints else ""
        raise StageError(
            f"{stage_path}: no prim has UsdPhysics.ArticulationRootAPI{hint}; apply it to the robot's root prim "
            "so the robot is simulated as one articulation"
        )
    return external


def _on_rigid_body(prim, UsdPhysics) -> bool:
    """Whether ``prim`` moves with a rigid body (itself or an ancestor carries an enabled RigidBodyAPI)."""
    while prim and prim.IsValid() and not prim.IsPseudoRoot():
        if prim.HasAPI(UsdPhysics.RigidBodyAPI):
            enabled = prim.GetAttribute("physics:rigidBodyEnabled").Get()
            return enabled is not False
        prim = prim.GetParent()
    return False


class _session_edit:
    """Context manager that targets the stage's session layer."""

    def __init__(self, stage):
        self._stage = stage

    def __enter__(self):
        from pxr import Usd

        self._ctx = Usd.EditContext(self._stage, self._stage.GetSessionLayer())
        self._ctx.__enter__()

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def _add_external_robot(builder, stage, prim_path, source, file_path, wp, newton) -> None:
    """Import a URDF/MJCF robot with Newton's importers at the placeholder prim's world pose."""
    from pxr import UsdGeom

    from vlatwin.utils.transforms import matrix_to_quat_wxyz

    from vlatwin.robots.panda import ARM_DAMPING, ARM_STIFFNESS

    prim = stage.GetPrimAtPath(prim_path)
    matrix = np.array(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(0.0)).T
    if not np.all(np.isfinite(matrix)):
        raise StageError(f"{prim_path}: robot pose is not finite")
    w, x, y, z = matrix_to_quat_wxyz(matrix[:3, :3])
    xform = wp.transform(wp.vec3(*matrix[:3, 3]), wp.quat(x, y, z, w))
    # URDF carries no drive stiffness, so the importer takes the builder's default joint config:
    # give it the scene's drive gains [per rad] for this import only.
    stiffness = prim.GetAttribute("vlatwin:driveStiffness").Get() or ARM_STIFFNESS
    damping = prim.GetAttribute("vlatwin:driveDamping").Get()
    damping = ARM_DAMPING if damping is None else damping
    cfg = builder.default_joint_cfg
    saved = (cfg.target_ke, cfg.target_kd)
    cfg.target_ke, cfg.target_kd = float(stiffness), float(damping)
    try:
        if source == "urdf":
            builder.add_urdf(str(file_path), xform=xform, floating=False, enable_self_collisions=False)
        elif source == "mjcf":
            builder.add_mjcf(str(file_path), xform=xform, floating=False, enable_self_collisions=False)
        else:
            raise StageError(f"{prim_path}: unknown robot source {source!r}")
    except StageError:
        raise
    except Exception as exc:
        raise StageError(f"{file_path}: Newton could not import this {source.upper()} file: {exc}") from None
    finally:
        cfg.target_ke, cfg.target_kd = saved


def _quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (N, 3) vectors by (N, 4) (x, y, z, w) quaternions."""
    u, w = q[:, :3], q[:, 3:4]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def _compose_offsets(fk_new: np.ndarray, fk_now: np.ndarray, body_now: np.ndarray) -> np.ndarray:
    """Per body ``FK_new * FK_now^-1 * T_now`` for (N, 7) Warp transforms (p, q_xyzw): the body keeps its
    offset from its FK pose, expressed in the FK frame."""
    inv_q = fk_now[:, 3:].copy()
    inv_q[:, :3] *= -1.0
    # offset = FK_now^-1 * T_now
    off_q = newton_assets.quat_mul_xyzw(inv_q, body_now[:, 3:])
    off_p = _quat_rotate(inv_q, body_now[:, :3] - fk_now[:, :3])
    # T_new = FK_new * offset
    new_q = newton_assets.quat_mul_xyzw(fk_new[:, 3:], off_q)
    new_q /= np.linalg.norm(new_q, axis=1, keepdims=True)
    new_p = fk_new[:, :3] + _quat_rotate(fk_new[:, 3:], off_p)
    return np.concatenate([new_p, new_q], axis=1)


def _transform_point(pose: np.ndarray, point: np.ndarray) -> np.ndarray:
    """A Warp transform (p, q_xyzw) applied to a point."""
    return pose[:3] + _quat_rotate(pose[None, 3:], point[None, :])[0]
