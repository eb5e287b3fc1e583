"""Isaac Sim backend: PhysX through Isaac's core API (one articulation + one rigid-body view), same seam as Newton.

Runs only inside Isaac Sim 5.1 or 6.x (a ``SimulationApp`` must exist before this module is used; Kit
imports happen inside the methods, so ``import vlatwin.sim.isaacsim`` works without Kit). Joint values
cross the seam in radians / meters, exactly as Isaac's core API reports them; only USD attributes use degrees.

Two physics APIs, chosen once per backend by :func:`physics_api` (a capability check, see there):

* **5.1** (:class:`PhysicsWorld51`): ``isaacsim.core.api.World`` + ``isaacsim.core.prims`` views +
  ``ArticulationAction``; 6.0 still ships these, deprecated.
* **6.x** (:class:`PhysicsManager60`): ``isaacsim.core.simulation_manager.SimulationManager`` +
  ``isaacsim.core.experimental.prims`` (not deprecated in 6.0). [IS6] = isaac-sim/IsaacSim at v6.0.1:

  - dt: ``SimulationManager.setup_simulation(dt=...)`` as the 6.0 extension sample does
    ([IS6] source/extensions/isaacsim.examples.base/isaacsim/examples/base/base_sample_experimental.py L79-82);
    ``set_physics_dt`` is deprecated there (source/extensions/isaacsim.core.simulation_manager/python/impl/simulation_manager.py L1695-1720).
  - reset: timeline stop + play (committed, as ``isaacsim.core.experimental.utils.app.stop/play`` do,
    source/extensions/isaacsim.core.experimental.utils/python/impl/app.py L97-188), then
    ``SimulationManager.initialize_physics()``, which is what 6.0's own (deprecated) ``World.reset`` does
    (source/deprecated/isaacsim.core.api/python/impl/simulation_context/simulation_context.py L680-685).
    It must be explicit: vlatwin runs with ``/app/player/playSimulations`` off and the play event only
    initializes physics when it is on (simulation_manager.py L613-635). Inside Kit's loop, one
    ``next_update_async`` after stop and after play, as base_sample_experimental.py L91-101.
  - stepping: ``SimulationManager.step(steps=n)`` (physics only; simulation_manager.py L905-959), as in
    source/extensions/isaacsim.replicator.examples/python/tests/test_scene_based_sdg.py L209-216.
  - joints: ``Articulation.set_dof_position_targets / set_dof_velocity_targets / set_dof_efforts /
    get_dof_positions / get_dof_limits / get_dof_projected_joint_forces ...``
    (source/extensions/isaacsim.core.experimental.prims/python/impl/articulation.py L771, L1496, L1626, L1752,
    L1855, L1951, L2054, L3087, L3183), as source/standalone_examples/api/isaacsim.core.experimental.api/control_frankas.py
    L97-143. Measured efforts = projected joint forces, which is what 5.1's ``get_measured_joint_efforts``
    reads ([IS] v5.1.0 source/extensions/isaacsim.core.prims/python/impl/articulation.py L1285-1345).
    Results are Warp arrays (shape ``(1, D)``): read with ``.numpy()``.

Two ways in, as Isaac's own samples do:

* standalone (a script that owns ``SimulationApp``): :meth:`SimBackendIsaac.load` / :meth:`reset`;
* inside Kit's event loop (the extension window): ``await`` :meth:`load_async` / :meth:`reset_async`.
  On 5.1 these call ``World.initialize_simulation_context_async()`` and ``World.reset_async()`` like
  [IS] v5.1.0 source/extensions/isaacsim.examples.interactive/isaacsim/examples/interactive/base_sample/base_sample.py L44-53.
  ``World.reset()`` and ``step(render=True)`` are documented as not for that workflow
  ([IS] v5.1.0 source/extensions/isaacsim.core.api/python/impl/simulation_context/simulation_context.py L624-633, L672-680).

Physics is stepped physics-only (5.1 ``World.step(render=False)``, 6.x ``SimulationManager.step``), always
on Kit's main thread. Stage utilities come from ``isaacsim.core.experimental.utils.stage``, which exists
in 5.1 and is not deprecated in 6.0 (``isaacsim.core.utils`` is).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from vlatwin.errors import StageError, VlatwinError
from vlatwin.sim.base import SimBackend, check_joint_array
from vlatwin.sim.types import Capabilities, JointCommand, SimModelInfo, SimParams, SimSnapshot, SimState


def require_kit() -> None:
    """Fail with one line when Isaac Sim's Kit is not running in this process."""
    try:
        import omni.kit.app  # noqa: F401
    except ImportError:
        raise VlatwinError(
            "the isaacsim backend runs inside Isaac Sim only: start it with Isaac Sim's python "
            "(./python.sh standalone/run_sim.py CONFIG --backend isaacsim) or use --backend newton"
        ) from None


def require_main_thread(what: str) -> None:
    """Kit, USD edits and Replicator run on Kit's main thread only: fail with one line elsewhere."""
    if threading.current_thread() is not threading.main_thread():
        raise VlatwinError(
            f"{what} called from thread {threading.current_thread().name!r}; Kit (physics, USD, Replicator) "
            "must be driven from its main thread"
        )


def require_no_event_loop(what: str) -> None:
    """Synchronous Kit calls (``World.reset``, ``app.update``, ``rep.orchestrator.step``) must not run inside
    Kit's event loop (a coroutine of the extension): there the ``*_async`` variants are awaited."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise VlatwinError(f"{what} is synchronous but was called inside a running event loop; use its async variant")


def stage_utils():
    """``isaacsim.core.experimental.utils.stage`` (Isaac Sim 5.1 and 6.0; replaces the deprecated isaacsim.core.utils.stage)."""
    import isaacsim.core.experimental.utils.stage as stage_utils

    return stage_utils


def physics_api() -> str:
    """``"6.0"`` when this Kit has Isaac Sim 6's physics API, else ``"5.1"`` (Kit only).

    A capability check on the API itself: ``SimulationManager.setup_simulation`` is part of the 6.0
    ``isaacsim.core.simulation_manager`` (simulation_manager.py L766-795 at v6.0.1) and absent from 5.1's
    (the 5.1.0 symbol index lists no such member), while the calls it replaces were deprecated in the same
    release. Probing the runtime's API with ``hasattr`` is how Isaac Sim itself adapts to what its runtime
    offers ([IS] v6.0.1 source/extensions/isaacsim.core.rendering_manager/python/impl/rendering_manager.py L196-201).
    Unlike the app version (``isaacsim.core.version.get_version`` returns empty strings when the
    VERSION file is missing, [IS] v6.0.1 source/extensions/isaacsim.core.version/isaacsim/core/version/extension.py
    L83-85), it cannot disagree with the module actually loaded. Evaluated per backend, not at import:
    this module is imported without Kit (``vlatwin.sim.factory``, the generate pipeline).
    """
    from isaacsim.core.simulation_manager import SimulationManager

    return "6.0" if hasattr(SimulationManager, "setup_simulation") else "5.1"


def _np(value) -> np.ndarray:
    """A Warp array (6.x experimental API) or array-like (5.1 API) as float64 numpy."""
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)


class PhysicsWorld51:
    """Isaac Sim 5.1: ``isaacsim.core.api.World`` with ``isaacsim.core.prims`` views (unchanged from 5.1)."""

    api = "5.1"

    def build(self, root: str, bodies: list[str], dt: float) -> None:
        from isaacsim.core.api import World
        from isaacsim.core.prims import Articulation, RigidPrim, SingleArticulation

        self.world = World(physics_dt=dt, rendering_dt=dt, stage_units_in_meters=1.0)
        self.robot = SingleArticulation(root, name="vlatwin_robot")
        self.world.scene.add(self.robot)
        # The articulation view carries the joint-space parameter API (gains, friction, armature).
        self.view = Articulation(root, name="vlatwin_robot_view")
        self.world.scene.add(self.view)
        self.bodies = RigidPrim(bodies, name="vlatwin_bodies")
        self.world.scene.add(self.bodies)  # views get their physics handles on the first reset

    def reset(self) -> None:
        self.world.reset()

    async def first_reset_async(self) -> None:
        # Without this a World made inside Kit's loop has no physics context (step() -> AttributeError).
        await self.world.initialize_simulation_context_async()
        await self.world.reset_async()

    async def reset_async(self) -> None:
        await self.world.reset_async()

    def step(self, num_steps: int) -> None:
        for _ in range(num_steps):
            self.world.step(render=False)  # physics only: renders happen where a sensor asks for one

    def dof_names(self) -> list[str]:
        return list(self.robot.dof_names)

    def dof_limits(self):
        # dof_properties: PhysX joint properties (structured array; limits in rad / m).
        props = self.robot.dof_properties
        return _np(props["lower"]), _np(props["upper"])

    def joint_q(self) -> np.ndarray:
        return _np(self.robot.get_joint_positions())

    def joint_qd(self) -> np.ndarray:
        return _np(self.robot.get_joint_velocities())

    def joint_effort(self) -> np.ndarray:
        return _np(self.robot.get_measured_joint_efforts())

    def set_joint_state(self, q, qd) -> None:
        self.robot.set_joint_positions(q)
        self.robot.set_joint_velocities(qd)

    def apply(self, target_q, target_qd, effort) -> None:
        from isaacsim.core.utils.types import ArticulationAction

        self.robot.apply_action(ArticulationAction(joint_positions=target_q, joint_velocities=target_qd))
        self.robot.set_joint_efforts(effort)

    def body_state(self):
        positions, orientations = self.bodies.get_world_poses()
        pose = np.concatenate([_np(positions), _np(orientations)], axis=1)
        return pose, _np(self.bodies.get_velocities())

    def set_body_poses(self, positions, orientations, indices) -> None:
        self.bodies.set_world_poses(positions=positions, orientations=orientations, indices=indices)

    def set_body_velocities(self, velocities, indices) -> None:
        self.bodies.set_velocities(velocities, indices=indices)

    def gains(self):
        stiffness, damping = self.view.get_gains()
        return _np(stiffness).reshape(-1), _np(damping).reshape(-1)

    def set_gains(self, kps, kds) -> None:
        self.view.set_gains(kps=kps[None], kds=kds[None])

    def armatures(self) -> np.ndarray:
        return _np(self.view.get_armatures()).reshape(-1)

    def set_armatures(self, armatures) -> None:
        self.view.set_armatures(armatures[None])

    def masses(self) -> np.ndarray:
        return _np(self.bodies.get_masses()).reshape(-1)

    def set_masses(self, masses) -> None:
        self.bodies.set_masses(masses)

    def inertias(self) -> np.ndarray:
        return _np(self.bodies.get_inertias()).reshape(-1, 3, 3)

    def set_inertias(self, inertias) -> None:
        self.bodies.set_inertias(inertias.reshape(-1, 9))

    def close(self) -> None:
        self.world.clear_instance()


class PhysicsManager60:
    """Isaac Sim 6.x: ``SimulationManager`` + ``isaacsim.core.experimental.prims`` (sources: module docstring)."""

    api = "6.0"

    def build(self, root: str, bodies: list[str], dt: float) -> None:
        from isaacsim.core.experimental.prims import Articulation, RigidPrim
        from isaacsim.core.simulation_manager import SimulationManager

        # What World(stage_units_in_meters=1.0, physics_dt=dt) did: meters, and dt on the physics scene
        # (setup_simulation creates /PhysicsScene when the stage has none, simulation_manager.py L787-793).
        stage_utils().set_stage_units(meters_per_unit=1.0)
        SimulationManager.setup_simulation(dt=dt)
        self.robot = Articulation(root)
        self.bodies = RigidPrim(bodies)

    @staticmethod
    def _timeline():
        import omni.timeline

        return omni.timeline.get_timeline_interface()

    def _stop(self) -> None:
        timeline = self._timeline()
        timeline.stop()
        timeline.commit()  # callbacks now: SimulationManager invalidates the physics views on stop

    def _play(self) -> None:
        timeline = self._timeline()
        timeline.play()
        timeline.commit()

    def reset(self) -> None:
        from isaacsim.core.simulation_manager import SimulationManager

        self._stop()
        self._play()
        SimulationManager.initialize_physics()  # no-op when already initialized

    async def first_reset_async(self) -> None:
        await self.reset_async()

    async def reset_async(self) -> None:
        import omni.kit.app
        from isaacsim.core.simulation_manager import SimulationManager

        app = omni.kit.app.get_app()
        self._stop()
        await app.next_update_async()
        self._play()
        await app.next_update_async()
        SimulationManager.initialize_physics()

    def step(self, num_steps: int) -> None:
        from isaacsim.core.simulation_manager import SimulationManager

        SimulationManager.step(steps=int(num_steps))

    def dof_names(self) -> list[str]:
        return list(self.robot.dof_names)

    def dof_limits(self):
        lower, upper = self.robot.get_dof_limits()
        return _np(lower)[0], _np(upper)[0]

    def joint_q(self) -> np.ndarray:
        return _np(self.robot.get_dof_positions())[0]

    def joint_qd(self) -> np.ndarray:
        return _np(self.robot.get_dof_velocities())[0]

    def joint_effort(self) -> np.ndarray:
        return _np(self.robot.get_dof_projected_joint_forces())[0]

    def set_joint_state(self, q, qd) -> None:
        self.robot.set_dof_positions(np.asarray(q)[None])
        self.robot.set_dof_velocities(np.asarray(qd)[None])

    def apply(self, target_q, target_qd, effort) -> None:
        self.robot.set_dof_position_targets(np.asarray(target_q)[None])
        self.robot.set_dof_velocity_targets(np.asarray(target_qd)[None])
        self.robot.set_dof_efforts(np.asarray(effort)[None])

    def body_state(self):
        positions, orientations = self.bodies.get_world_poses()  # orientations wxyz, as 5.1
        linear, angular = self.bodies.get_velocities()
        pose = np.concatenate([_np(positions), _np(orientations)], axis=1)
        return pose, np.concatenate([_np(linear), _np(angular)], axis=1)

    def set_body_poses(self, positions, orientations, indices) -> None:
        self.bodies.set_world_poses(positions=positions, orientations=orientations, indices=indices)

    def set_body_velocities(self, velocities, indices) -> None:
        velocities = np.asarray(velocities)
        self.bodies.set_velocities(linear_velocities=velocities[:, :3], angular_velocities=velocities[:, 3:], indices=indices)

    def gains(self):
        stiffness, damping = self.robot.get_dof_gains()
        return _np(stiffness).reshape(-1), _np(damping).reshape(-1)

    def set_gains(self, kps, kds) -> None:
        self.robot.set_dof_gains(stiffnesses=kps[None], dampings=kds[None])

    def armatures(self) -> np.ndarray:
        return _np(self.robot.get_dof_armatures()).reshape(-1)

    def set_armatures(self, armatures) -> None:
        self.robot.set_dof_armatures(armatures[None])

    def masses(self) -> np.ndarray:
        return _np(self.bodies.get_masses()).reshape(-1)

    def set_masses(self, masses) -> None:
        self.bodies.set_masses(masses[:, None])  # shape (N, 1)

    def inertias(self) -> np.ndarray:
        return _np(self.bodies.get_inertias()).reshape(-1, 3, 3)

    def set_inertias(self, inertias) -> None:
        self.bodies.set_inertias(inertias.reshape(-1, 9))

    def close(self) -> None:
        """Nothing to release: 6.x has no World singleton; the wrappers go with this object."""


def make_physics(api: str):
    return PhysicsManager60() if api == "6.0" else PhysicsWorld51()


class SimBackendIsaac(SimBackend):
    """PhysX via Isaac's core API: 5.1 ``World`` or 6.x ``SimulationManager`` (see :func:`physics_api`).

    Args:
        physics_dt: step [s]; None reads ``physxScene:timeStepsPerSecond`` (else 1/600).
    """

    name = "isaacsim"

    def __init__(
        self,
        *,
        device: str | None = None,
        physics_dt: float | None = None,
        solver_iterations: int = 4,
        reset_joint_noise: float = 0.0,
        **_ignored,
    ):
        require_kit()
        self._reset_joint_noise = float(reset_joint_noise)
        self._device = device
        self._physics_dt = physics_dt
        self._iterations = solver_iterations
        self._info: SimModelInfo | None = None
        self.physics = make_physics(physics_api())

    @property
    def api(self) -> str:
        """The Isaac Sim physics API in use: ``"5.1"`` or ``"6.0"``."""
        return self.physics.api

    def load(self, stage_path: str | Path) -> SimModelInfo:
        """Open the stage and set up PhysX (standalone workflow: no event loop may be running)."""
        require_main_thread("SimBackendIsaac.load")
        require_no_event_loop("SimBackendIsaac.load")
        stage_path = Path(stage_path)
        self._check_file(stage_path)
        ok, _ = stage_utils().open_stage(str(stage_path))
        self._build(stage_path, ok)
        self.physics.reset()
        return self._after_first_reset()

    async def load_async(self, stage_path: str | Path) -> SimModelInfo:
        """:meth:`load` inside Kit's event loop (the extension window)."""
        require_main_thread("SimBackendIsaac.load_async")
        stage_path = Path(stage_path)
        self._check_file(stage_path)
        ok, _ = await stage_utils().open_stage_async(str(stage_path))
        self._build(stage_path, ok)
        await self.physics.first_reset_async()
        return self._after_first_reset()

    @staticmethod
    def _check_file(stage_path: Path) -> None:
        if not stage_path.is_file():
            raise StageError(f"{stage_path}: USD file not found")

    def _build(self, stage_path: Path, opened: bool) -> None:
        from pxr import UsdPhysics

        if not opened:
            raise StageError(f"{stage_path}: Isaac Sim could not open the stage")
        stage = stage_utils().get_current_stage()
        _import_external_robots(stage)
        from vlatwin.sim.newton import _authored_dt

        dt = self._physics_dt or _authored_dt(stage) or 1.0 / 600.0
        roots = [str(p.GetPath()) for p in stage.Traverse() if p.HasAPI(UsdPhysics.ArticulationRootAPI)]
        if not roots:
            raise StageError(f"{stage_path}: no prim has UsdPhysics.ArticulationRootAPI; apply it to the robot's root prim")
        bodies = [str(p.GetPath()) for p in stage.Traverse() if p.HasAPI(UsdPhysics.RigidBodyAPI)]
        self.physics.build(roots[0], bodies, dt)
        self._stage_path, self._roots, self._bodies, self._dt = stage_path, roots, bodies, dt

    def _after_first_reset(self) -> SimModelInfo:
        roots, bodies, dt = self._roots, self._bodies, self._dt
        lower, upper = self.physics.dof_limits()
        joint_paths = tuple(f"{roots[0]}/joints/{n}" for n in self.physics.dof_names())
        self._info = SimModelInfo(
            stage_path=str(self._stage_path),
            physics_dt=dt,
            joint_names=joint_paths,
            joint_lower=np.asarray(lower, dtype=np.float64),
            joint_upper=np.asarray(upper, dtype=np.float64),
            body_paths=tuple(bodies),
            articulation_root=roots[0],
        )
        self._initial_q = self.physics.joint_q()
        self._target = self._initial_q.copy()
        self._steps = 0
        return self._info

    def reset(self, *, seed: int | None = None) -> SimState:
        require_main_thread("SimBackendIsaac.reset")
        require_no_event_loop("SimBackendIsaac.reset")
        self.physics.reset()
        return self._after_reset(seed)

    async def reset_async(self, *, seed: int | None = None) -> SimState:
        """:meth:`reset` inside Kit's event loop."""
        require_main_thread("SimBackendIsaac.reset_async")
        await self.physics.reset_async()
        return self._after_reset(seed)

    def _after_reset(self, seed: int | None) -> SimState:
        q = self._initial_q.copy()
        if seed is not None and self._reset_joint_noise > 0.0:
            # Same draw as the Newton backend: one uniform number per commanded joint from the seed.
            rng = np.random.default_rng(seed)
            q = np.clip(
                q + rng.uniform(-self._reset_joint_noise, self._reset_joint_noise, size=len(q)),
                self._info.joint_lower,
                self._info.joint_upper,
            )
        self.physics.set_joint_state(q, np.zeros_like(q))
        self._target = q.copy()
        self._target_qd = np.zeros_like(q)
        self._effort = np.zeros_like(q)
        self.set_joint_targets(q)
        self._steps = 0
        return self.get_state()

    def set_joint_targets(self, target_q) -> None:
        target_q = check_joint_array(target_q, len(self._target), "JointCommand.target_q")
        keep = np.isnan(target_q)
        self._target[~keep] = np.clip(target_q, self._info.joint_lower, self._info.joint_upper)[~keep]
        self._apply_action()

    def _apply_action(self) -> None:
        self.physics.apply(self._target, self._target_qd, self._effort)

    def set_command(self, command: JointCommand) -> None:
        n = len(self._target)
        if command.target_qd is not None:
            qd = check_joint_array(command.target_qd, n, "JointCommand.target_qd")
            self._target_qd[~np.isnan(qd)] = qd[~np.isnan(qd)]
        if command.effort is not None:
            effort = check_joint_array(command.effort, n, "JointCommand.effort")
            self._effort[~np.isnan(effort)] = effort[~np.isnan(effort)]
        if command.target_q is not None:
            self.set_joint_targets(command.target_q)
        else:
            self._apply_action()

    def advance(self, num_steps: int = 1) -> None:
        if int(num_steps) != num_steps or num_steps < 1:
            raise VlatwinError(f"advance: num_steps must be a whole number >= 1, got {num_steps}")
        require_main_thread("SimBackendIsaac.advance")
        self.physics.step(int(num_steps))
        self._steps += num_steps

    def get_state(self) -> SimState:
        pose, velocity = self.physics.body_state()
        return SimState(
            time=self._steps * self._dt,
            step=self._steps,
            joint_q=self.physics.joint_q(),
            joint_qd=self.physics.joint_qd(),
            body_pose_w=pose,
            body_vel_w=velocity,
            # PhysX's joint-space forces the articulation's joints transmit (Isaac's "measured" efforts).
            joint_effort=self.physics.joint_effort(),
        )

    def set_joint_positions(self, q, *, hold: bool = True) -> None:
        self.set_joint_state(q, np.zeros(len(self._target)), hold=hold)

    def set_joint_state(self, q, qd, *, hold: bool = True, keep_constraint_error: bool = False) -> None:
        # PhysX articulations are reduced-coordinate: joints do not stretch, so there is no offset to keep.
        del keep_constraint_error
        n = len(self._target)
        q = np.clip(check_joint_array(q, n, "joint positions", allow_nan=False), self._info.joint_lower, self._info.joint_upper)
        qd = check_joint_array(qd, n, "joint velocities", allow_nan=False)
        self.physics.set_joint_state(q, qd)
        if hold:
            self._target_qd = qd.copy()
            self.set_joint_targets(q)

    def get_params(self) -> SimParams:
        stiffness, damping = self.physics.gains()
        return SimParams(
            joint_damping=np.zeros(len(self._target)),  # PhysX joints have no separate passive damping
            # PhysX's joint friction is a unitless coefficient, not a Coulomb torque: not reported as one.
            joint_friction=np.zeros(len(self._target)),
            joint_armature=self.physics.armatures(),
            drive_stiffness=stiffness,
            drive_damping=damping,
            body_mass=self.physics.masses(),
            body_inertia=self.physics.inertias(),
        )

    def set_params(self, params: SimParams) -> None:
        if params.joint_damping is not None and np.any(np.asarray(params.joint_damping) != 0):
            raise VlatwinError("SimParams.joint_damping: PhysX has no passive joint damping; fit drive_damping instead")
        if params.drive_stiffness is not None or params.drive_damping is not None:
            current = self.get_params()
            kps = current.drive_stiffness if params.drive_stiffness is None else np.asarray(params.drive_stiffness)
            kds = current.drive_damping if params.drive_damping is None else np.asarray(params.drive_damping)
            self.physics.set_gains(kps, kds)
        if params.joint_friction is not None and np.any(np.asarray(params.joint_friction) != 0):
            raise VlatwinError(
                "SimParams.joint_friction: PhysX joint friction is a unitless coefficient, not a Coulomb torque [N*m]; "
                "fit friction on the newton backend"
            )
        if params.joint_armature is not None:
            self.physics.set_armatures(np.asarray(params.joint_armature))
        bodies = len(self._info.body_paths)
        if params.body_mass is not None:
            mass = np.asarray(params.body_mass, dtype=np.float64)
            if mass.shape != (bodies,) or not np.all(np.isfinite(mass)) or np.any(mass < 0):
                raise VlatwinError(f"SimParams.body_mass: expected {bodies} finite masses >= 0 [kg], got shape {mass.shape}")
            self.physics.set_masses(mass)
        if params.body_inertia is not None:
            inertia = np.asarray(params.body_inertia, dtype=np.float64)
            if inertia.shape != (bodies, 3, 3) or not np.all(np.isfinite(inertia)):
                raise VlatwinError(f"SimParams.body_inertia: expected ({bodies}, 3, 3) finite tensors, got shape {inertia.shape}")
            self.physics.set_inertias(inertia)

    def snapshot(self) -> SimSnapshot:
        state = self.get_state()
        return SimSnapshot(
            backend=self.name,
            time=state.time,
            step=state.step,
            data={
                "state": state,
                "target": self._target.copy(),
                "target_qd": self._target_qd.copy(),
                "effort": self._effort.copy(),
            },
        )

    def restore(self, snapshot: SimSnapshot) -> None:
        if snapshot.backend != self.name:
            raise VlatwinError(f"snapshot was taken on {snapshot.backend}, not {self.name}")
        state = snapshot.data["state"]
        self.physics.set_joint_state(state.joint_q, state.joint_qd)
        # Links follow the joint state; only free bodies are placed through the rigid-body view (PhysX does
        # not take link poses from it, see set_body_pose).
        root = self._info.articulation_root + "/"
        free = np.array([i for i, path in enumerate(self._info.body_paths) if not path.startswith(root)], dtype=np.int64)
        if len(free):
            self.physics.set_body_poses(state.body_pose_w[free, :3], state.body_pose_w[free, 3:], free)
            self.physics.set_body_velocities(state.body_vel_w[free], free)
        self._target, self._target_qd = snapshot.data["target"].copy(), snapshot.data["target_qd"].copy()
        self._effort = snapshot.data["effort"].copy()
        self._apply_action()
        self._steps = snapshot.step

    def set_body_pose(self, path: str, pose_w, *, zero_velocity: bool = True) -> None:
        index = self._info.body_index(path)
        if path.startswith(self._info.articulation_root + "/"):
            raise VlatwinError(f"{path} is part of the articulation; move it with joint targets")
        pose_w = np.asarray(pose_w, dtype=np.float64)
        self.physics.set_body_poses(pose_w[None, :3], pose_w[None, 3:], np.array([index]))
        if zero_velocity:
            self.physics.set_body_velocities(np.zeros((1, 6)), np.array([index]))

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(name=self.name, device=self._device or "cuda:0", cameras=True, lidar=True, effort_limits=True)

    def close(self) -> None:
        if self.physics is not None:
            self.physics.close()
        self.physics = None


def _import_external_robots(stage) -> None:
    """Replace vlatwin's URDF/MJCF placeholder prims by Isaac's importers' output, at the same pose."""
    import omni.kit.commands

    from vlatwin.usd.stage import set_local_pose

    for prim in list(stage.Traverse()):
        source = prim.GetAttribute("vlatwin:robotSource")
        if not source or not source.HasAuthoredValue():
            continue
        asset = prim.GetAttribute("vlatwin:robotAsset").Get()
        path = asset.resolvedPath or asset.path
        if source.Get() == "urdf":
            _, config = omni.kit.commands.execute("URDFCreateImportConfig")
            config.merge_fixed_joints = False
            config.fix_base = True
            config.make_default_prim = False
            config.create_physics_scene = False
            _, robot_path = omni.kit.commands.execute(
                "URDFParseAndImportFile", urdf_path=path, import_config=config, dest_path="", get_articulation_root=False
            )
        elif source.Get() == "mjcf":
            _, config = omni.kit.commands.execute("MJCFCreateImportConfig")
            config.fix_base = True
            config.make_default_prim = False
            config.create_physics_scene = False
            robot_path = f"{prim.GetPath()}/robot"
            omni.kit.commands.execute("MJCFCreateAsset", mjcf_path=path, import_config=config, prim_path=robot_path, dest_path="")
        else:
            raise StageError(f"{prim.GetPath()}: unknown robot source {source.Get()!r}")
        from pxr import UsdGeom

        T = np.array(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(0.0)).T
        robot = stage.GetPrimAtPath(robot_path)
        if robot and str(robot.GetPath()).startswith(str(prim.GetPath()) + "/"):
            continue  # imported under the placeholder: it inherits the pose
        set_local_pose(robot, pos=T[:3, 3], rot=T[:3, :3])
