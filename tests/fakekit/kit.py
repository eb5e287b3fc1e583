"""A fake Kit: modules standing in for omni.* / carb / isaacsim.* that record every call with the thread
and whether an event loop was running, so the Isaac code paths run in CI without Isaac Sim.

Only what vlatwin touches is faked. Each fake records ``Call(name, args, kwargs, main_thread, in_loop)``;
tests assert on those (Kit's rules: main thread only; no synchronous update/reset/step inside the loop).
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

    stage_mod = _module(
        "isaacsim.core.experimental.utils.stage",
        open_stage=open_stage,
        open_stage_async=open_stage_async,
        get_current_stage=lambda: kit.stage,
    )

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
        "isaacsim.core.api": _module("isaacsim.core.api", World=_world_class(kit)),
    }
    omni.kit, omni.replicator = omni_kit, omni_rep_pkg
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
