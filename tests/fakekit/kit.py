"""A fake Kit: modules standing in for omni.* / carb / isaacsim.* that record every call with the thread
and whether an event loop was running, so the Isaac code paths run in CI without Isaac Sim.

Only what vlatwin touches is faked. Each fake records ``Call(name, args, kwargs, main_thread, in_loop)``;
tests assert on those (Kit's rules: main thread only; no synchronous update/reset/step inside the loop).

``Kit(api="5.1")`` fakes Isaac Sim 5.1's physics modules (``isaacsim.core.api.World``, ``isaacsim.core.prims``,
``isaacsim.core.utils.types``); ``Kit(api="6.0")`` fakes 6.0's (``SimulationManager`` with
``setup_simulation``, ``isaacsim.core.experimental.prims``, ``omni.timeline``) and makes the modules 6.0
deprecates unimportable, so a 6.0-path test fails if vlatwin touches them. The fakes' public names are
checked against the symbol indexes (``test_fake_physics_names_exist_in_the_symbol_indexes``).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Call:
    name: str
    args: tuple
    kwargs: dict
    main_thread: bool
    in_loop: bool


@dataclass
class Kit:
    calls: list[Call] = field(default_factory=list)
    settings: dict = field(default_factory=lambda: {"/rtx-transient/stableIds/enabled": True})
    asset_root: str | None = "omniverse://fake/Assets/Isaac/5.1"
    annotator_data: dict = field(default_factory=dict)
    stage: object = None
    #: Which Isaac Sim physics API the fake offers: "5.1" or "6.0".
    api: str = "5.1"
    #: Joint positions the fake articulation reports (2 DOFs, limits [0, 1]).
    dof_q: np.ndarray = field(default_factory=lambda: np.array([0.25, 0.5]))

    def record(self, call_name, *args, **kwargs):
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        self.calls.append(Call(call_name, args, kwargs, threading.current_thread() is threading.main_thread(), in_loop))

    def named(self, name):
        return [c for c in self.calls if c.name == name]

    def assert_kit_rules(self):
        """Every call on the main thread; no synchronous Kit call while an event loop runs."""
        off = [c.name for c in self.calls if not c.main_thread]
        assert not off, f"Kit called off the main thread: {off}"
        sync_in_loop = [c.name for c in self.calls if c.in_loop and c.name in SYNC_ONLY]
        assert not sync_in_loop, f"synchronous Kit calls inside the event loop: {sync_in_loop}"


SYNC_ONLY = {"app.update", "World.reset", "rep.orchestrator.step", "rep.orchestrator.wait_until_complete", "stage.open_stage"}


def _module(name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def install(monkeypatch, kit: Kit) -> Kit:
    """Put the fake modules in sys.modules (undone by monkeypatch)."""
    from pxr import Usd

    if kit.stage is None:
        kit.stage = Usd.Stage.CreateInMemory()

    class App:
        def update(self):
            kit.record("app.update")

        async def next_update_async(self):
            kit.record("app.next_update_async")

        def get_extension_manager(self):
            return types.SimpleNamespace(get_extension_path=lambda ext_id: "/fake/exts/vlatwin")

    app = App()

    class Settings:
        def get(self, path):
            return kit.settings.get(path)

        def set(self, path, value):
            kit.record("carb.settings.set", path, value)
            kit.settings[path] = value

    settings = Settings()

    def execute(name, **kwargs):
        kit.record(f"command.{name}", **kwargs)
        if name == "IsaacSensorCreateRtxLidar":
            path = kwargs["parent"].rstrip("/") + "/" + kwargs["path"].lstrip("/")
            prim = kit.stage.DefinePrim(path, "OmniLidar")
            return True, prim
        return True, None

    class Product:
        def __init__(self, path, size, name=None):
            self.path, self.size, self.name = str(path), tuple(size), name

        def destroy(self):
            kit.record("render_product.destroy", self.path)

    class Annotator:
        def __init__(self, name, init_params=None):
            self.name, self.init_params, self.params = name, init_params, {}

        def initialize(self, **kw):
            kit.record("annotator.initialize", self.name, **kw)
            self.params.update(kw)

        def attach(self, product):
            kit.record("annotator.attach", self.name, product)

        def detach(self):
            kit.record("annotator.detach", self.name)

        def get_data(self):
            kit.record("annotator.get_data", self.name)
            return kit.annotator_data[self.name]

    class Orchestrator:
        def set_capture_on_play(self, value):
            kit.record("rep.orchestrator.set_capture_on_play", value)

        def step(self, **kw):
            kit.record("rep.orchestrator.step", **kw)

        async def step_async(self, **kw):
            kit.record("rep.orchestrator.step_async", **kw)

        def wait_until_complete(self):
            kit.record("rep.orchestrator.wait_until_complete")

        async def wait_until_complete_async(self):
            kit.record("rep.orchestrator.wait_until_complete_async")

    def render_product(path, size, name=None, **kw):
        kit.record("rep.create.render_product", str(path), tuple(size), name=name)
        return Product(path, size, name)

    def get_annotator(name, init_params=None):
        kit.record("rep.get_annotator", name, init_params=init_params)
        return Annotator(name, init_params)

    rep = _module(
        "omni.replicator.core",
        orchestrator=Orchestrator(),
        create=types.SimpleNamespace(render_product=render_product),
        AnnotatorRegistry=types.SimpleNamespace(get_annotator=get_annotator),
        set_global_seed=lambda seed: kit.record("rep.set_global_seed", seed),
    )

    def get_assets_root_path(*, skip_check=False):
        kit.record("get_assets_root_path")
        if kit.asset_root is None:
            raise RuntimeError("Could not find assets root folder: omniverse://localhost/NVIDIA/Assets/Isaac/5.1")
        return kit.asset_root

    def open_stage(path):
        kit.record("stage.open_stage", path)
        kit.stage = Usd.Stage.Open(path)
        return True, kit.stage

    async def open_stage_async(path):
        kit.record("stage.open_stage_async", path)
        kit.stage = Usd.Stage.Open(path)
        return True, kit.stage

    def set_stage_units(*, meters_per_unit=None, kilograms_per_unit=None):
        kit.record("stage.set_stage_units", meters_per_unit=meters_per_unit, kilograms_per_unit=kilograms_per_unit)

    stage_mod = _module(
        "isaacsim.core.experimental.utils.stage",
        open_stage=open_stage,
        open_stage_async=open_stage_async,
        get_current_stage=lambda: kit.stage,
        set_stage_units=set_stage_units,
    )

    class Timeline:
        def play(self):
            kit.record("timeline.play")

        def stop(self):
            kit.record("timeline.stop")

        def commit(self):
            kit.record("timeline.commit")

    timeline = Timeline()

    omni = _module("omni")
    omni_kit = _module("omni.kit")
    omni_kit_app = _module("omni.kit.app", get_app=lambda: app)
    omni_kit_commands = _module("omni.kit.commands", execute=execute)
    omni_rep_pkg = _module("omni.replicator")
    carb = _module("carb")
    carb_settings = _module("carb.settings", get_settings=lambda: settings)
    modules = {
        "omni": omni,
        "omni.kit": omni_kit,
        "omni.kit.app": omni_kit_app,
        "omni.kit.commands": omni_kit_commands,
        "omni.replicator": omni_rep_pkg,
        "omni.replicator.core": rep,
        "carb": carb,
        "carb.settings": carb_settings,
        "isaacsim": _module("isaacsim"),
        "isaacsim.storage": _module("isaacsim.storage"),
        "isaacsim.storage.native": _module("isaacsim.storage.native", get_assets_root_path=get_assets_root_path),
        "isaacsim.core": _module("isaacsim.core"),
        "isaacsim.core.experimental": _module("isaacsim.core.experimental"),
        "isaacsim.core.experimental.utils": _module("isaacsim.core.experimental.utils", stage=stage_mod),
        "isaacsim.core.experimental.utils.stage": stage_mod,
        "omni.timeline": _module("omni.timeline", get_timeline_interface=lambda: timeline),
        "isaacsim.core.simulation_manager": _module(
            "isaacsim.core.simulation_manager", SimulationManager=simulation_manager_class(kit)
        ),
    }
    xprims = experimental_prims(kit)
    modules["isaacsim.core.experimental.prims"] = _module("isaacsim.core.experimental.prims", **xprims)
    if kit.api == "5.1":
        types_mod = _module("isaacsim.core.utils.types", ArticulationAction=ArticulationAction)
        modules.update(
            {
                "isaacsim.core.api": _module("isaacsim.core.api", World=_world_class(kit)),
                "isaacsim.core.prims": _module("isaacsim.core.prims", **core_prims(kit)),
                "isaacsim.core.utils": _module("isaacsim.core.utils", types=types_mod),
                "isaacsim.core.utils.types": types_mod,
            }
        )
    else:  # 6.0 still ships these, deprecated: vlatwin's 6.0 path must not import them
        modules.update({name: None for name in DEPRECATED_IN_6})
    omni.kit, omni.replicator, omni.timeline = omni_kit, omni_rep_pkg, modules["omni.timeline"]
    omni_kit.app, omni_kit.commands = omni_kit_app, omni_kit_commands
    omni_rep_pkg.core = rep
    carb.settings = carb_settings
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return kit


def _world_class(kit: Kit):
    class World:
        def __init__(self, **kw):
            kit.record("World", **kw)
            self.scene = types.SimpleNamespace(add=lambda obj: kit.record("World.scene.add", obj))
            self._initialized = False

        async def initialize_simulation_context_async(self):
            kit.record("World.initialize_simulation_context_async")
            self._initialized = True

        def reset(self):
            kit.record("World.reset")

        async def reset_async(self):
            kit.record("World.reset_async")
            assert self._initialized or not kit.named("World.initialize_simulation_context_async") is None

        def step(self, render=True):
            kit.record("World.step", render=render)

        def clear_instance(self):
            kit.record("World.clear_instance")

    return World


#: Modules of extensions Isaac Sim 6.0 deprecates that vlatwin's 5.1 physics path imports.
DEPRECATED_IN_6 = ("isaacsim.core.api", "isaacsim.core.prims", "isaacsim.core.utils", "isaacsim.core.utils.types")
N_DOF = 2


class WarpArray:
    """What the 6.0 experimental API returns: read with ``.numpy()``."""

    def __init__(self, values):
        self._values = np.asarray(values, dtype=np.float32)

    def numpy(self):
        return self._values.copy()


def _copy(value):
    return None if value is None else np.array(value, dtype=np.float64)


def simulation_manager_class(kit: Kit):
    """``isaacsim.core.simulation_manager.SimulationManager``: 6.0 has ``setup_simulation``, 5.1 does not."""

    class SimulationManager:
        @classmethod
        def initialize_physics(cls):
            kit.record("SimulationManager.initialize_physics")

        @classmethod
        def step(cls, *, steps=1, callback=None, update_fabric=False):
            kit.record("SimulationManager.step", steps=steps, update_fabric=update_fabric)

    if kit.api == "6.0":

        def setup_simulation(cls, dt=None, device=None):
            kit.record("SimulationManager.setup_simulation", dt=dt, device=device)

        SimulationManager.setup_simulation = classmethod(setup_simulation)
    return SimulationManager


@dataclass
class ArticulationAction:
    """``isaacsim.core.utils.types.ArticulationAction`` (5.1)."""

    joint_positions: object = None
    joint_velocities: object = None
    joint_efforts: object = None
    joint_indices: object = None


def _paths(paths):
    return [paths] if isinstance(paths, str) else list(paths)


def core_prims(kit: Kit) -> dict:
    """Isaac Sim 5.1's ``isaacsim.core.prims``: SingleArticulation, Articulation (view), RigidPrim."""

    class SingleArticulation:
        dof_names = [f"j{i + 1}" for i in range(N_DOF)]

        def __init__(self, prim_path, name="single_articulation", **kw):
            kit.record("core.prims.SingleArticulation", prim_path, name=name)

        @property
        def dof_properties(self):
            return {"lower": np.zeros(N_DOF), "upper": np.ones(N_DOF)}

        def get_joint_positions(self, joint_indices=None):
            return kit.dof_q.copy()

        def get_joint_velocities(self, joint_indices=None):
            return np.zeros(N_DOF)

        def get_measured_joint_efforts(self, joint_indices=None):
            return np.zeros(N_DOF)

        def set_joint_positions(self, positions, joint_indices=None):
            kit.record("core.prims.SingleArticulation.set_joint_positions", _copy(positions))

        def set_joint_velocities(self, velocities, joint_indices=None):
            kit.record("core.prims.SingleArticulation.set_joint_velocities", _copy(velocities))

        def set_joint_efforts(self, efforts, joint_indices=None):
            kit.record("core.prims.SingleArticulation.set_joint_efforts", _copy(efforts))

        def apply_action(self, control_actions):
            assert isinstance(control_actions, ArticulationAction)
            kit.record(
                "core.prims.SingleArticulation.apply_action",
                joint_positions=_copy(control_actions.joint_positions),
                joint_velocities=_copy(control_actions.joint_velocities),
            )

    class Articulation:
        def __init__(self, prim_paths_expr, name="articulation_prim_view", **kw):
            kit.record("core.prims.Articulation", prim_paths_expr, name=name)

        def get_gains(self, indices=None, joint_indices=None, clone=True):
            return np.full((1, N_DOF), 100.0), np.full((1, N_DOF), 10.0)

        def set_gains(self, kps=None, kds=None, indices=None, joint_indices=None, save_to_usd=False):
            kit.record("core.prims.Articulation.set_gains", kps=_copy(kps), kds=_copy(kds))

        def get_armatures(self, indices=None, joint_indices=None, clone=True):
            return np.zeros((1, N_DOF))

        def set_armatures(self, values, indices=None, joint_indices=None):
            kit.record("core.prims.Articulation.set_armatures", _copy(values))

    class RigidPrim:
        def __init__(self, prim_paths_expr, name="rigid_prim_view", **kw):
            self.count = len(_paths(prim_paths_expr))
            kit.record("core.prims.RigidPrim", _paths(prim_paths_expr), name=name)

        def get_world_poses(self, indices=None, usd=True):
            return np.zeros((self.count, 3)), np.tile([1.0, 0.0, 0.0, 0.0], (self.count, 1))

        def get_velocities(self, indices=None, clone=True):
            return np.zeros((self.count, 6))

        def set_world_poses(self, positions=None, orientations=None, indices=None, usd=True):
            kit.record("core.prims.RigidPrim.set_world_poses", positions=_copy(positions), orientations=_copy(orientations), indices=_copy(indices))

        def set_velocities(self, velocities, indices=None):
            kit.record("core.prims.RigidPrim.set_velocities", _copy(velocities), indices=_copy(indices))

        def get_masses(self, indices=None, clone=True):
            return np.ones(self.count)

        def set_masses(self, masses, indices=None):
            kit.record("core.prims.RigidPrim.set_masses", _copy(masses))

        def get_inertias(self, indices=None, clone=True):
            return np.tile(np.eye(3).reshape(-1), (self.count, 1))

        def set_inertias(self, values, indices=None):
            kit.record("core.prims.RigidPrim.set_inertias", _copy(values))

    return {"SingleArticulation": SingleArticulation, "Articulation": Articulation, "RigidPrim": RigidPrim}


def experimental_prims(kit: Kit) -> dict:
    """Isaac Sim 6.0's ``isaacsim.core.experimental.prims``: Articulation, RigidPrim (Warp arrays, batch axis first)."""

    class Articulation:
        dof_names = [f"j{i + 1}" for i in range(N_DOF)]

        def __init__(self, paths, **kw):
            kit.record("experimental.prims.Articulation", paths, **kw)

        def get_dof_limits(self, *, indices=None, dof_indices=None):
            return WarpArray(np.zeros((1, N_DOF))), WarpArray(np.ones((1, N_DOF)))

        def get_dof_positions(self, *, indices=None, dof_indices=None):
            return WarpArray(kit.dof_q[None])

        def get_dof_velocities(self, *, indices=None, dof_indices=None):
            return WarpArray(np.zeros((1, N_DOF)))

        def get_dof_projected_joint_forces(self, *, indices=None, dof_indices=None):
            return WarpArray(np.zeros((1, N_DOF)))

        def get_dof_gains(self, *, indices=None, dof_indices=None):
            return WarpArray(np.full((1, N_DOF), 100.0)), WarpArray(np.full((1, N_DOF), 10.0))

        def get_dof_armatures(self, *, indices=None, dof_indices=None):
            return WarpArray(np.zeros((1, N_DOF)))

        def _set(self, method, values, **kw):
            kit.record(f"experimental.prims.Articulation.{method}", _copy(values), **kw)

        def set_dof_positions(self, positions, *, indices=None, dof_indices=None):
            self._set("set_dof_positions", positions)

        def set_dof_velocities(self, velocities, *, indices=None, dof_indices=None):
            self._set("set_dof_velocities", velocities)

        def set_dof_position_targets(self, positions, *, indices=None, dof_indices=None):
            self._set("set_dof_position_targets", positions)

        def set_dof_velocity_targets(self, velocities, *, indices=None, dof_indices=None):
            self._set("set_dof_velocity_targets", velocities)

        def set_dof_efforts(self, efforts, *, indices=None, dof_indices=None):
            self._set("set_dof_efforts", efforts)

        def set_dof_armatures(self, armatures, *, indices=None, dof_indices=None):
            self._set("set_dof_armatures", armatures)

        def set_dof_gains(self, stiffnesses=None, dampings=None, *, indices=None, dof_indices=None, update_default_gains=True):
            kit.record("experimental.prims.Articulation.set_dof_gains", stiffnesses=_copy(stiffnesses), dampings=_copy(dampings))

    class RigidPrim:
        def __init__(self, paths, **kw):
            self.count = len(_paths(paths))
            kit.record("experimental.prims.RigidPrim", _paths(paths), **kw)

        def get_world_poses(self, *, indices=None):
            return WarpArray(np.zeros((self.count, 3))), WarpArray(np.tile([1.0, 0.0, 0.0, 0.0], (self.count, 1)))

        def get_velocities(self, *, indices=None):
            return WarpArray(np.zeros((self.count, 3))), WarpArray(np.zeros((self.count, 3)))

        def set_world_poses(self, positions=None, orientations=None, *, indices=None):
            kit.record("experimental.prims.RigidPrim.set_world_poses", positions=_copy(positions), orientations=_copy(orientations), indices=_copy(indices))

        def set_velocities(self, linear_velocities=None, angular_velocities=None, *, indices=None):
            kit.record(
                "experimental.prims.RigidPrim.set_velocities",
                linear_velocities=_copy(linear_velocities),
                angular_velocities=_copy(angular_velocities),
                indices=_copy(indices),
            )

        def get_masses(self, *, indices=None, inverse=False):
            return WarpArray(np.ones((self.count, 1)))

        def set_masses(self, masses, *, indices=None):
            kit.record("experimental.prims.RigidPrim.set_masses", _copy(masses))

        def get_inertias(self, *, indices=None, inverse=False):
            return WarpArray(np.tile(np.eye(3).reshape(-1), (self.count, 1)))

        def set_inertias(self, inertias, *, indices=None):
            kit.record("experimental.prims.RigidPrim.set_inertias", _copy(inertias))

    return {"Articulation": Articulation, "RigidPrim": RigidPrim}


def stable_id_map_bytes(entries: dict[int, str]) -> np.ndarray:
    """Encode {stable id: path} the way the StableIdMap annotator lays it out (see isaac_convert.decode_stable_id_map)."""
    head = len(entries) * 24
    labels = b""
    rows = []
    for key, path in entries.items():
        raw = path.encode()
        ids = [(key >> (32 * i)) & 0xFFFFFFFF for i in range(4)]
        rows.append([*ids, len(raw), head + len(labels)])
        labels += raw
    body = np.array(rows, dtype="<u4").tobytes() + labels
    return np.frombuffer(body + len(entries).to_bytes(4, "little"), dtype=np.uint8)


def object_ids_bytes(ids: list[int]) -> np.ndarray:
    return np.frombuffer(b"".join(int(i).to_bytes(16, "little") for i in ids), dtype=np.uint8)
