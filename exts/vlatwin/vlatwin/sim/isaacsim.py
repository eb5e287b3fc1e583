"""Isaac Sim backend: PhysX through isaacsim.core (World + articulation/rigid views), same seam as Newton.

Runs only inside Isaac Sim 5.x (a ``SimulationApp`` must exist before this module is used; Kit
imports happen inside the methods). Joint values cross the seam in radians / meters, exactly as
Isaac's core API reports them; only USD attributes use degrees.

Two ways in, as Isaac's own samples do:

* standalone (a script that owns ``SimulationApp``): :meth:`SimBackendIsaac.load` / :meth:`reset`
  call ``World.reset()``;
* inside Kit's event loop (the extension window): ``await`` :meth:`load_async` / :meth:`reset_async`,
  which call ``World.initialize_simulation_context_async()`` and ``World.reset_async()`` like
  [IS] v5.1.0 source/extensions/isaacsim.examples.interactive/isaacsim/examples/interactive/base_sample/base_sample.py L44-53.
  ``World.reset()`` and ``step(render=True)`` are documented as not for that workflow
  ([IS] v5.1.0 source/extensions/isaacsim.core.api/python/impl/simulation_context/simulation_context.py L624-633, L672-680).

Physics is stepped with ``World.step(render=False)`` only (a physics-only step, allowed in both
workflows), always on Kit's main thread. Stage utilities come from ``isaacsim.core.experimental.utils.stage``,
which exists in 5.1 and is not deprecated in 6.0 (``isaacsim.core.utils`` is).
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


class SimBackendIsaac(SimBackend):
    """PhysX via ``isaacsim.core.api.World``.

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
        self.world = None

    def load(self, stage_path: str | Path) -> SimModelInfo:
        """Open the stage and set up PhysX (standalone workflow: no event loop may be running)."""
        require_main_thread("SimBackendIsaac.load")
        require_no_event_loop("SimBackendIsaac.load")
        stage_path = Path(stage_path)
        self._check_file(stage_path)
        ok, _ = stage_utils().open_stage(str(stage_path))
        self._build(stage_path, ok)
        self.world.reset()
        return self._after_first_reset()

    async def load_async(self, stage_path: str | Path) -> SimModelInfo:
        """:meth:`load` inside Kit's event loop (the extension window)."""
        require_main_thread("SimBackendIsaac.load_async")
        stage_path = Path(stage_path)
        self._check_file(stage_path)
        ok, _ = await stage_utils().open_stage_async(str(stage_path))
        self._build(stage_path, ok)
        # Without this a World made inside Kit's loop has no physics context (step() -> AttributeError).
        await self.world.initialize_simulation_context_async()
        await self.world.reset_async()
        return self._after_first_reset()

    @staticmethod
    def _check_file(stage_path: Path) -> None:
        if not stage_path.is_file():
            raise StageError(f"{stage_path}: USD file not found")

    def _build(self, stage_path: Path, opened: bool) -> None:
        from isaacsim.core.api import World
        from isaacsim.core.prims import Articulation, RigidPrim, SingleArticulation
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
        self.world = World(physics_dt=dt, rendering_dt=dt, stage_units_in_meters=1.0)
        self.robot = SingleArticulation(roots[0], name="vlatwin_robot")
        self.world.scene.add(self.robot)
        # The articulation view carries the joint-space parameter API (gains, friction, armature).
        self.view = Articulation(roots[0], name="vlatwin_robot_view")
        self.world.scene.add(self.view)
        self.bodies = RigidPrim(bodies, name="vlatwin_bodies")
        self.world.scene.add(self.bodies)  # views get their physics handles on the first reset
        self._stage_path, self._roots, self._bodies, self._dt = stage_path, roots, bodies, dt

    def _after_first_reset(self) -> SimModelInfo:
        roots, bodies, dt = self._roots, self._bodies, self._dt
        # dof_properties: PhysX joint properties (structured array; limits in rad / m).
        props = self.robot.dof_properties
        lower, upper = props["lower"], props["upper"]
        joint_paths = tuple(f"{roots[0]}/joints/{n}" for n in self.robot.dof_names)
        self._info = SimModelInfo(
            stage_path=str(self._stage_path),
            physics_dt=dt,
            joint_names=joint_paths,
            joint_lower=np.asarray(lower, dtype=np.float64),
            joint_upper=np.asarray(upper, dtype=np.float64),
            body_paths=tuple(bodies),
            articulation_root=roots[0],
        )
        self._initial_q = np.asarray(self.robot.get_joint_positions(), dtype=np.float64)
        self._target = self._initial_q.copy()
        self._steps = 0
        return self._info

    def reset(self, *, seed: int | None = None) -> SimState:
        require_main_thread("SimBackendIsaac.reset")
        require_no_event_loop("SimBackendIsaac.reset")
        self.world.reset()
        return self._after_reset(seed)

    async def reset_async(self, *, seed: int | None = None) -> SimState:
        """:meth:`reset` inside Kit's event loop."""
        require_main_thread("SimBackendIsaac.reset_async")
        await self.world.reset_async()
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
        self.robot.set_joint_positions(q)
        self.robot.set_joint_velocities(np.zeros_like(q))
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
        from isaacsim.core.utils.types import ArticulationAction

        self.robot.apply_action(ArticulationAction(joint_positions=self._target, joint_velocities=self._target_qd))
        self.robot.set_joint_efforts(self._effort)

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
        for _ in range(num_steps):
            self.world.step(render=False)  # physics only: renders happen where a sensor asks for one
        self._steps += num_steps

    def get_state(self) -> SimState:
        positions, orientations = self.bodies.get_world_poses()
        velocities = self.bodies.get_velocities()
        return SimState(
            time=self._steps * self._dt,
            step=self._steps,
            joint_q=np.asarray(self.robot.get_joint_positions(), dtype=np.float64),
            joint_qd=np.asarray(self.robot.get_joint_velocities(), dtype=np.float64),
            body_pose_w=np.concatenate([np.asarray(positions), np.asarray(orientations)], axis=1).astype(np.float64),
            body_vel_w=np.asarray(velocities, dtype=np.float64),
            # PhysX's joint-space forces the articulation's joints transmit (Isaac's "measured" efforts).
            joint_effort=np.asarray(self.robot.get_measured_joint_efforts(), dtype=np.float64),
        )

    def set_joint_positions(self, q, *, hold: bool = True) -> None:
        self.set_joint_state(q, np.zeros(len(self._target)), hold=hold)

    def set_joint_state(self, q, qd, *, hold: bool = True, keep_constraint_error: bool = False) -> None:
        # PhysX articulations are reduced-coordinate: joints do not stretch, so there is no offset to keep.
        del keep_constraint_error
        n = len(self._target)
        q = np.clip(check_joint_array(q, n, "joint positions", allow_nan=False), self._info.joint_lower, self._info.joint_upper)
        qd = check_joint_array(qd, n, "joint velocities", allow_nan=False)
        self.robot.set_joint_positions(q)
        self.robot.set_joint_velocities(qd)
        if hold:
            self._target_qd = qd.copy()
            self.set_joint_targets(q)

    def get_params(self) -> SimParams:
        view = self.view
        stiffness, damping = view.get_gains()
        return SimParams(
            joint_damping=np.zeros(len(self._target)),  # PhysX joints have no separate passive damping
            # PhysX's joint friction is a unitless coefficient, not a Coulomb torque: not reported as one.
            joint_friction=np.zeros(len(self._target)),
            joint_armature=np.asarray(view.get_armatures(), dtype=np.float64).reshape(-1),
            drive_stiffness=np.asarray(stiffness, dtype=np.float64).reshape(-1),
            drive_damping=np.asarray(damping, dtype=np.float64).reshape(-1),
            body_mass=np.asarray(self.bodies.get_masses(), dtype=np.float64).reshape(-1),
            body_inertia=np.asarray(self.bodies.get_inertias(), dtype=np.float64).reshape(-1, 3, 3),
        )

    def set_params(self, params: SimParams) -> None:
        view = self.view
        if params.joint_damping is not None and np.any(np.asarray(params.joint_damping) != 0):
            raise VlatwinError("SimParams.joint_damping: PhysX has no passive joint damping; fit drive_damping instead")
        if params.drive_stiffness is not None or params.drive_damping is not None:
            current = self.get_params()
            kps = current.drive_stiffness if params.drive_stiffness is None else np.asarray(params.drive_stiffness)
            kds = current.drive_damping if params.drive_damping is None else np.asarray(params.drive_damping)
            view.set_gains(kps=kps[None], kds=kds[None])
        if params.joint_friction is not None and np.any(np.asarray(params.joint_friction) != 0):
            raise VlatwinError(
                "SimParams.joint_friction: PhysX joint friction is a unitless coefficient, not a Coulomb torque [N*m]; "
                "fit friction on the newton backend"
            )
        if params.joint_armature is not None:
            view.set_armatures(np.asarray(params.joint_armature)[None])
        bodies = len(self._info.body_paths)
        if params.body_mass is not None:
            mass = np.asarray(params.body_mass, dtype=np.float64)
            if mass.shape != (bodies,) or not np.all(np.isfinite(mass)) or np.any(mass < 0):
                raise VlatwinError(f"SimParams.body_mass: expected {bodies} finite masses >= 0 [kg], got shape {mass.shape}")
            self.bodies.set_masses(mass)
        if params.body_inertia is not None:
            inertia = np.asarray(params.body_inertia, dtype=np.float64)
            if inertia.shape != (bodies, 3, 3) or not np.all(np.isfinite(inertia)):
                raise VlatwinError(f"SimParams.body_inertia: expected ({bodies}, 3, 3) finite tensors, got shape {inertia.shape}")
            self.bodies.set_inertias(inertia.reshape(-1, 9))

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
        self.robot.set_joint_positions(state.joint_q)
        self.robot.set_joint_velocities(state.joint_qd)
        # Links follow the joint state; only free bodies are placed through the rigid-body view (PhysX does
        # not take link poses from it, see set_body_pose).
        root = self._info.articulation_root + "/"
        free = np.array([i for i, path in enumerate(self._info.body_paths) if not path.startswith(root)], dtype=np.int64)
        if len(free):
            self.bodies.set_world_poses(
                positions=state.body_pose_w[free, :3], orientations=state.body_pose_w[free, 3:], indices=free
            )
            self.bodies.set_velocities(state.body_vel_w[free], indices=free)
        self._target, self._target_qd = snapshot.data["target"].copy(), snapshot.data["target_qd"].copy()
        self._effort = snapshot.data["effort"].copy()
        self._apply_action()
        self._steps = snapshot.step

    def set_body_pose(self, path: str, pose_w, *, zero_velocity: bool = True) -> None:
        index = self._info.body_index(path)
        if path.startswith(self._info.articulation_root + "/"):
            raise VlatwinError(f"{path} is part of the articulation; move it with joint targets")
        pose_w = np.asarray(pose_w, dtype=np.float64)
        self.bodies.set_world_poses(positions=pose_w[None, :3], orientations=pose_w[None, 3:], indices=np.array([index]))
        if zero_velocity:
            self.bodies.set_velocities(np.zeros((1, 6)), indices=np.array([index]))

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(name=self.name, device=self._device or "cuda:0", cameras=True, lidar=True)

    def close(self) -> None:
        if self.world is not None:
            self.world.clear_instance()
        self.world = None


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
