"""Isaac Sim backend: PhysX through isaacsim.core (World + articulation/rigid views), same seam as Newton.

Runs only inside Isaac Sim 5.x (a ``SimulationApp`` must exist before this module is used; Kit
imports happen inside the methods). Joint values cross the seam in radians / meters, exactly as
Isaac's core API reports them; only USD attributes use degrees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlatwin.errors import StageError, VlatwinError
from vlatwin.sim.base import SimBackend
from vlatwin.sim.types import Capabilities, JointCommand, SimModelInfo, SimState


def require_kit() -> None:
    """Fail with one line when Isaac Sim's Kit is not running in this process."""
    try:
        import omni.kit.app  # noqa: F401
    except ImportError:
        raise VlatwinError(
            "the isaacsim backend runs inside Isaac Sim only: start it with Isaac Sim's python "
            "(./python.sh standalone/run_sim.py CONFIG --backend isaacsim) or use --backend newton"
        ) from None


class SimBackendIsaac(SimBackend):
    """PhysX via ``isaacsim.core.api.World``.

    Args:
        physics_dt: step [s]; None reads ``physxScene:timeStepsPerSecond`` (else 1/600).
    """

    name = "isaacsim"

    def __init__(self, *, device: str | None = None, physics_dt: float | None = None, solver_iterations: int = 4, **_ignored):
        require_kit()
        self._device = device
        self._physics_dt = physics_dt
        self._iterations = solver_iterations
        self._info: SimModelInfo | None = None
        self.world = None

    def load(self, stage_path: str | Path) -> SimModelInfo:
        from isaacsim.core.api import World
        from isaacsim.core.prims import RigidPrim, SingleArticulation
        from isaacsim.core.utils.stage import get_current_stage, open_stage
        from pxr import UsdPhysics

        stage_path = Path(stage_path)
        if not stage_path.is_file():
            raise StageError(f"{stage_path}: USD file not found")
        if not open_stage(str(stage_path)):
            raise StageError(f"{stage_path}: Isaac Sim could not open the stage")
        stage = get_current_stage()
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
        self.bodies = RigidPrim(bodies, name="vlatwin_bodies")
        self.world.scene.add(self.bodies)  # views get their physics handles on world.reset()
        self.world.reset()
        # dof_properties: PhysX joint properties (structured array; limits in rad / m).
        props = self.robot.dof_properties
        lower, upper = props["lower"], props["upper"]
        joint_paths = tuple(f"{roots[0]}/joints/{n}" for n in self.robot.dof_names)
        self._dt = dt
        self._info = SimModelInfo(
            stage_path=str(stage_path),
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
        self.world.reset()
        self.robot.set_joint_positions(self._initial_q)
        self._target = self._initial_q.copy()
        self._steps = 0
        return self.get_state()

    def set_joint_targets(self, target_q) -> None:
        from isaacsim.core.utils.types import ArticulationAction

        target_q = np.asarray(target_q, dtype=np.float64)
        keep = np.isnan(target_q)
        self._target[~keep] = np.clip(target_q, self._info.joint_lower, self._info.joint_upper)[~keep]
        self.robot.apply_action(ArticulationAction(joint_positions=self._target))

    def step(self, command: JointCommand | None = None, *, num_steps: int = 1) -> None:
        if command is not None:
            self.set_joint_targets(command.target_q)
        for _ in range(num_steps):
            self.world.step(render=False)
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
        )

    def set_joint_positions(self, q, *, hold: bool = True) -> None:
        q = np.clip(np.asarray(q, dtype=np.float64), self._info.joint_lower, self._info.joint_upper)
        self.robot.set_joint_positions(q)
        if hold:
            self.set_joint_targets(q)

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
